//! `--metrics-server ADDR`: `:2112` or `HOST:PORT`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(addr) = tracer::metrics::parse_addr(&text) {
        // What parses is an address that writes back as one.
        let again = tracer::metrics::parse_addr(&addr.to_string());
        assert_eq!(again, Ok(addr));
    }
});
