//! String comparisons as map lookups, not byte loops: `Equal` in a hash map, `Prefix`
//! and `Postfix` (reversed) in LPM tries, each key prefixed by the filter's id. A
//! string's keys are built once per capture ([`build_keys`]); each filter then sets its
//! id in them and looks up ([`str_lookup`]).

use tracer_common::policy::{
    ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX, ArgValue,
    HOOK_BINARY_EQUAL, HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX, LONG_PREFIX, OP_EQUAL, OP_PREFIX,
    PREFIX_MAX, STRING_MAX,
};

use crate::maps::{
    ARG_EQUAL_KEYS, ARG_POSTFIX_KEYS, ARG_PREFIX_KEYS, BIN_VALUE, BINARY_SLOT, EXEC_PATHS,
    LONG_KEY, STR_EQUAL, STR_POSTFIX, STR_PREFIX,
};

/// The lookup keys of the string in `v` that `flags` (`ARG_NEEDS_*`) ask for, in key slot
/// `i`: each from the one read of the string.
#[inline(never)]
pub(crate) fn build_keys(v: &ArgValue, flags: u8, i: u32) {
    let len = v.len & (STRING_MAX as u32 - 1);
    // The `Equal` key is also where a `Prefix` longer than an LPM key is checked from.
    if flags & (ARG_NEEDS_EQUAL | ARG_NEEDS_PREFIX) != 0
        && let Some(key) = ARG_EQUAL_KEYS.get_ptr_mut(i)
    {
        // SAFETY: this CPU's slot of a per-CPU array.
        let key = unsafe { &mut *key };
        key.len = len;
        copy_words(&v.str, &mut key.data);
    }
    let affix = if len as usize > PREFIX_MAX {
        PREFIX_MAX as u32
    } else {
        len
    };
    if flags & ARG_NEEDS_PREFIX != 0
        && let Some(key) = ARG_PREFIX_KEYS.get_ptr_mut(i)
    {
        // SAFETY: as above.
        let key = unsafe { &mut *key };
        key.prefix_len = 32 + 8 * affix;
        copy_words(&v.str, &mut key.data.data);
    }
    if flags & ARG_NEEDS_POSTFIX != 0
        && let Some(key) = ARG_POSTFIX_KEYS.get_ptr_mut(i)
    {
        // SAFETY: as above.
        let key = unsafe { &mut *key };
        key.prefix_len = 32 + 8 * affix;
        // Reversed: the last byte first. Bytes past `len` are outside the prefix length.
        let last = len.wrapping_sub(1) as usize;
        for j in 0..PREFIX_MAX {
            key.data.data[j] = v.str[last.wrapping_sub(j) & (STRING_MAX - 1)];
        }
    }
}

/// Builds the binary's lookup keys (key slot `BINARY_SLOT`) from `EXEC_PATHS`; false
/// when the process's binary is not known.
#[inline(always)]
pub(crate) fn binary_keys(hook_flags: u32, tgid: u32) -> bool {
    tracer_binary_keys(hook_flags, tgid) != 0
}

/// [`binary_keys`], as a global function (exported, so its BTF says so): the verifier
/// checks its loops once, on their own, wherever it is called from.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_binary_keys(hook_flags: u32, tgid: u32) -> i32 {
    // SAFETY: a map value, read while this program runs.
    let (Some(path), Some(v)) = (unsafe { EXEC_PATHS.get(tgid) }, BIN_VALUE.get_ptr_mut(0)) else {
        return 0;
    };
    // SAFETY: this CPU's scratch value.
    let v = unsafe { &mut *v };
    v.kind = u32::from(ARG_KERNEL_STRING);
    v.len = path.len;
    copy_words(&path.data, &mut v.str);
    let mut flags = 0;
    if hook_flags & HOOK_BINARY_EQUAL != 0 {
        flags |= ARG_NEEDS_EQUAL;
    }
    if hook_flags & HOOK_BINARY_PREFIX != 0 {
        flags |= ARG_NEEDS_PREFIX;
    }
    if hook_flags & HOOK_BINARY_POSTFIX != 0 {
        flags |= ARG_NEEDS_POSTFIX;
    }
    build_keys(v, flags, BINARY_SLOT);
    1
}

/// Whether the string of argument `arg` (longer than `PREFIX_MAX`) starts with one of
/// filter `id`'s `Prefix` values that are too long for the LPM trie: those sit in
/// `STR_EQUAL` under `id | LONG_PREFIX` with their own length, so the string is looked
/// up truncated to each length from its own down to `PREFIX_MAX + 1` (at most 7 lookups,
/// and only for strings that long).
#[inline(never)]
fn long_prefix(id: u32, arg: u32) -> bool {
    let (Some(full), Some(key)) = (ARG_EQUAL_KEYS.get_ptr_mut(arg), LONG_KEY.get_ptr_mut(0)) else {
        return false;
    };
    // SAFETY: this CPU's key slot for `arg` (built with the prefix keys) and this CPU's
    // scratch key.
    let (full, key) = unsafe { (&*full, &mut *key) };
    let len = full.len;
    if len as usize <= PREFIX_MAX {
        return false;
    }
    key.id = id | LONG_PREFIX;
    // Zero-padded past `len`, as the hash map's keys are.
    copy_words(&full.data, &mut key.data);
    for back in 0..STRING_MAX - 1 - PREFIX_MAX {
        let l = (STRING_MAX - 1 - back) as u32;
        if l <= len {
            key.len = l;
            // SAFETY: a lookup with a fully initialised key.
            #[allow(
                clippy::needless_borrows_for_generic_args,
                reason = "by value, the 264-byte key would be copied to the stack"
            )]
            if unsafe { STR_EQUAL.get(&*key) }.is_some() {
                return true;
            }
        }
        // The next length down: drop this last byte.
        key.data[(l as usize - 1) & (STRING_MAX - 1)] = 0;
    }
    false
}

/// Zeroes `buf` eight bytes at a time.
#[inline(always)]
pub(crate) fn zero(buf: &mut [u8; STRING_MAX]) {
    let words = buf.as_mut_ptr().cast::<u64>();
    for w in 0..STRING_MAX / 8 {
        // SAFETY: `w * 8 + 8 <= STRING_MAX`; unaligned writes are fine for the verifier's
        // map-value memory and done bytewise by the compiler if needed.
        unsafe { words.add(w).write_unaligned(0) };
    }
}

/// Copies the first `N` bytes of `src` into `dst`, eight at a time (`N` a multiple of 8).
#[inline(always)]
pub(crate) fn copy_words<const N: usize>(src: &[u8; STRING_MAX], dst: &mut [u8; N]) {
    let (s, d) = (src.as_ptr().cast::<u64>(), dst.as_mut_ptr().cast::<u64>());
    for w in 0..N / 8 {
        // SAFETY: `w * 8 + 8 <= N <= STRING_MAX`.
        unsafe { d.add(w).write_unaligned(s.add(w).read_unaligned()) };
    }
}

/// Whether the string of argument `arg` is among filter `id`'s strings (`OP_EQUAL`), or
/// starts (`OP_PREFIX`) or ends (`OP_POSTFIX`) with one of them.
#[inline(always)]
pub(crate) fn str_lookup(kind: u8, id: u32, arg: u32) -> bool {
    match kind {
        OP_EQUAL => match ARG_EQUAL_KEYS.get_ptr_mut(arg) {
            Some(key) => {
                // SAFETY: this CPU's key slot for `arg`, filled by `capture`.
                let key = unsafe { &mut *key };
                key.id = id;
                // SAFETY: a lookup with a fully initialised key.
                #[allow(
                    clippy::needless_borrows_for_generic_args,
                    reason = "by value, the 264-byte key would be copied to the stack"
                )]
                let hit = unsafe { STR_EQUAL.get(&*key) }.is_some();
                hit
            }
            None => false,
        },
        OP_PREFIX => {
            let hit = match ARG_PREFIX_KEYS.get_ptr_mut(arg) {
                Some(key) => {
                    // SAFETY: as above.
                    let key = unsafe { &mut *key };
                    key.data.id = id.to_be_bytes();
                    STR_PREFIX.get(&*key).is_some()
                }
                None => false,
            };
            hit || long_prefix(id, arg)
        }
        _ => match ARG_POSTFIX_KEYS.get_ptr_mut(arg) {
            Some(key) => {
                // SAFETY: as above.
                let key = unsafe { &mut *key };
                key.data.id = id.to_be_bytes();
                STR_POSTFIX.get(&*key).is_some()
            }
            None => false,
        },
    }
}
