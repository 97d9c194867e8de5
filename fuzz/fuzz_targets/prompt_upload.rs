//! `cargo fuzz run prompt_upload`: see `astreinte::fuzzing::prompt_upload` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::prompt_upload(data));
