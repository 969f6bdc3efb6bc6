//! `--redaction-filters`: the input is the flag's text, a NUL, and an event (JSON,
//! optional); what parses redacts the event and fixed ones.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tracer::export::redact::Redactions;

fuzz_target!(|data: &[u8]| {
    let p = common::parts(data, 2);
    match Redactions::parse(&p[0]) {
        Ok(redact) => {
            for mut event in common::events(&p[1]) {
                redact.apply(&mut event);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
