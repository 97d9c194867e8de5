//! `cargo fuzz run sip_message`: see `astreinte::fuzzing::sip_message` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::sip_message(data));
