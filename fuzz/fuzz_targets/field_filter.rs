//! `--field-filters`: the input is the flag's text, a NUL, and an event (JSON,
//! optional); what parses is applied to the event and to fixed ones.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tracer::export::fields::FieldFilters;

fuzz_target!(|data: &[u8]| {
    let p = common::parts(data, 2);
    match FieldFilters::parse(&p[0]) {
        Ok(fields) => {
            for mut event in common::events(&p[1]) {
                fields.apply(&mut event);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
