//! `cargo fuzz run client_ip`: see `astreinte::fuzzing::client_ip` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::client_ip(data));
