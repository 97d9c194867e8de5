//! `cargo fuzz run sip_message_text`: `sip_message` on valid UTF-8 only (with `fuzz/sip.dict`,
//! the mutations stay close to real SIP text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| astreinte::fuzzing::sip_message_text(text));
