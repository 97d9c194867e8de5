//! `cargo fuzz run sdp`: see `astreinte::fuzzing::sdp` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::sdp(data));
