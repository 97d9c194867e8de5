//! `cargo fuzz run accounts_csv`: see `astreinte::fuzzing::accounts_csv` for what it drives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| astreinte::fuzzing::accounts_csv(data));
