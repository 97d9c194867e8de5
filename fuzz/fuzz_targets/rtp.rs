//! `cargo fuzz run rtp`: see `astreinte::fuzzing::rtp` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::rtp(data));
