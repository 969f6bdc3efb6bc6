//! A policy file: YAML text through the parser and the checks, as `tracer policy
//! validate` runs them (nothing is loaded). Every outcome is an error list or documents,
//! and each error and warning can be written.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match tracer::policy::parse::text_documents("fuzz.yaml", &text) {
        Ok(docs) => {
            for doc in &docs {
                // What `tracer policy validate` reads of each document.
                let _ = doc.policy.metadata.name.len();
                for w in &doc.warnings {
                    let _ = w.to_string();
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused policy says why");
            for e in &errors {
                let _ = e.to_string();
            }
        }
    }
});
