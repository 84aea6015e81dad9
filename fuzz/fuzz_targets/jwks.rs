#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| senderbound_fuzz::jwks(data));
