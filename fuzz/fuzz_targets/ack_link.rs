//! `cargo fuzz run ack_link`: see `astreinte::fuzzing::ack_link` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::ack_link(data));
