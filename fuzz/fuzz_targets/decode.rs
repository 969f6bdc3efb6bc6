//! The ring buffer's records: arbitrary bytes where the kernel's records would be. A
//! record decodes or is an error, never a panic; it decodes the same from an aligned
//! buffer (read in place) as from a misaligned one (copied); the socket and credential
//! values of a tracepoint record's arguments read without a panic, and so does an
//! environment record's area, whose variables come back from its JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::decode::{
    EnvJson, RawEvent, cred_value, decode, path_from_components, sock_value, split_args,
};

fuzz_target!(|data: &[u8]| {
    // Aligned at 8, as the ring buffer's records are.
    let mut aligned: Vec<u64> = vec![0; data.len().div_ceil(8)];
    // SAFETY: `aligned` holds at least `data.len()` bytes; u64 accepts any bytes.
    let aligned_bytes =
        unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), data.len()) };
    aligned_bytes.copy_from_slice(data);
    let in_place = decode(aligned_bytes);
    // One byte off: the copying path.
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let copied = decode(&shifted[1..]);
    assert_eq!(in_place, copied, "in place and copied decode alike");
    match in_place {
        Ok(RawEvent::Tracepoint(tp)) => {
            for arg in &tp.args {
                let _ = sock_value(arg);
                let _ = cred_value(arg);
            }
        }
        Ok(RawEvent::Env(env)) => {
            let json = EnvJson::decode(env.area.clone(), None);
            assert_eq!(json.to_vars().len(), json.len(), "every variable back");
            assert!(json.is_from(&env.area));
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = path_from_components(data);
    let _ = split_args(data);
});
