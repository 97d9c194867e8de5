//! `cargo fuzz run wav_recovery`: see `astreinte::fuzzing::wav_recovery` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::wav_recovery(data));
