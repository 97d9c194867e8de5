//! `cargo fuzz run config`: see `astreinte::fuzzing::config` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::config(data));
