//! `--export-allowlist` and `--export-denylist`: the input is the allowlist's text, a
//! NUL, the denylist's text, a NUL, and an event (JSON, optional); what parses is applied
//! to the event and to fixed ones.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tracer::export::filter::Filters;

fuzz_target!(|data: &[u8]| {
    let p = common::parts(data, 3);
    match Filters::parse(&p[0], &p[1]) {
        Ok(filters) => {
            for event in common::events(&p[2]) {
                let _ = filters.verdict(&event);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
