//! A policy as a Kubernetes object: JSON as the API server sends it, made into a
//! TracingPolicy document as the watch makes it, then parsed and checked as a file is
//! (nothing is loaded), for both kinds of object.

#![no_main]

use kube::api::DynamicObject;
use libfuzzer_sys::fuzz_target;
use tracer::policy::objects::{Change, Kind, object_change};

fuzz_target!(|data: &[u8]| {
    let Ok(obj) = serde_json::from_slice::<DynamicObject>(data) else {
        return;
    };
    for kind in [Kind::Cluster, Kind::Namespaced] {
        let Change::Apply { document, key, .. } = object_change(kind, &obj) else {
            panic!("an object is applied");
        };
        let _ = key.policy_name();
        match tracer::policy::parse::text_documents("fuzz-object", &document) {
            Ok(docs) => {
                for w in docs.iter().flat_map(|d| &d.warnings) {
                    let _ = w.to_string();
                }
            }
            Err(errors) => {
                for e in &errors {
                    let _ = e.to_string();
                }
            }
        }
    }
});
