//! `followForks` and `followChildren`: a process matched by such a filter gets the
//! filter's bit in `FOLLOW`, and its descendants inherit it (`hooks/process.rs`, at fork
//! and exec). The kernel keeps the bits of processes to come; this gives them to the
//! processes running when the policy loads (from /proc), and puts the `followChildren`
//! filters where the exec hook evaluates them (`BIN_FOLLOW`).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use tracer_common::policy::{
    BinFollow, FOLLOW_BINARIES, LONG_PREFIX, MAX_BIN_FOLLOW, TRACK_BINARIES,
};

use super::maps::{Maps, WriteError};
use crate::{
    policy::compile::{Compiled, Follow, StrEntry, StrMap},
    process::procfs,
};

/// The `FOLLOW` bits a compiled policy uses.
pub fn bits(c: &Compiled) -> u64 {
    c.follow
        .iter()
        .map(|f| match f {
            Follow::Pids { bit, .. } => 1u64 << bit,
            Follow::Binary(b) => 1u64 << b.bit,
        })
        .fold(0, |a, b| a | b)
}

/// Installs the follow filters of `compiled`, for the processes under `proc_root`.
pub fn install(
    maps: &mut Maps,
    compiled: &Compiled,
    proc_root: &Path,
    cgroup_root: &Path,
) -> Result<(), WriteError> {
    for f in &compiled.follow {
        if let Follow::Binary(b) = f {
            add_binary_filter(maps, *b)?;
        }
    }
    mark(maps, compiled, proc_root, cgroup_root)
}

/// Gives the follow bits of `compiled`'s filters to the processes under `proc_root` that
/// match them, and to their descendants.
pub fn mark(
    maps: &mut Maps,
    compiled: &Compiled,
    proc_root: &Path,
    cgroup_root: &Path,
) -> Result<(), WriteError> {
    if compiled.follow.is_empty() {
        return Ok(());
    }
    let procs = procfs::scan(proc_root, cgroup_root);
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in &procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    for f in &compiled.follow {
        let (bit, roots): (u8, Vec<u32>) = match f {
            Follow::Pids {
                bit,
                pids,
                namespace: false,
            } => (*bit, pids.clone()),
            // Pids as each process's own namespace numbers it (`NSpid`).
            Follow::Pids {
                bit,
                pids,
                namespace: true,
            } => (
                *bit,
                procs
                    .iter()
                    .filter(|p| {
                        std::fs::read_to_string(proc_root.join(p.pid.to_string()).join("status"))
                            .ok()
                            .and_then(|s| procfs::parse_ns_pid(&s))
                            .is_some_and(|n| pids.contains(&n))
                    })
                    .map(|p| p.pid)
                    .collect(),
            ),
            Follow::Binary(b) => {
                let values: Vec<&StrEntry> = compiled
                    .strings
                    .iter()
                    .filter(|s| s.filter_id & !LONG_PREFIX == b.id)
                    .collect();
                (
                    b.bit,
                    procs
                        .iter()
                        .filter(|p| binary_matches(&values, &p.binary))
                        .map(|p| p.pid)
                        .collect(),
                )
            }
        };
        // The roots and every descendant.
        let mut todo = roots;
        let mut seen = HashSet::new();
        while let Some(pid) = todo.pop() {
            if !seen.insert(pid) {
                continue;
            }
            let old = maps.follow.get(&pid, 0).unwrap_or(0);
            maps.follow
                .insert(pid, old | (1u64 << bit), 0)
                .map_err(|source| WriteError {
                    map: "FOLLOW",
                    source,
                })?;
            todo.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    set_config(maps)
}

/// Removes the follow filters whose bits are `bits`, and those bits from every process.
pub fn uninstall(maps: &mut Maps, bits: u64) {
    if bits == 0 {
        return;
    }
    for i in 0..MAX_BIN_FOLLOW {
        if maps
            .bin_follow
            .get(&i, 0)
            .is_ok_and(|e| e.op != 0 && bits & (1u64 << e.bit) != 0)
        {
            let _ = maps.bin_follow.set(i, BinFollow::default(), 0);
        }
    }
    let keys: Vec<u32> = maps.follow.keys().filter_map(Result::ok).collect();
    for pid in keys {
        if let Ok(v) = maps.follow.get(&pid, 0)
            && v & bits != 0
        {
            let _ = maps.follow.insert(pid, v & !bits, 0);
        }
    }
    let _ = set_config(maps);
}

/// Puts a `followChildren` filter in the first free slot of `BIN_FOLLOW`.
fn add_binary_filter(maps: &mut Maps, b: BinFollow) -> Result<(), WriteError> {
    let full = || WriteError {
        map: "BIN_FOLLOW",
        source: aya::maps::MapError::OutOfBounds {
            index: MAX_BIN_FOLLOW,
            max_entries: MAX_BIN_FOLLOW,
        },
    };
    let slot = (0..MAX_BIN_FOLLOW)
        .find(|i| maps.bin_follow.get(i, 0).is_ok_and(|e| e.op == 0))
        .ok_or_else(full)?;
    maps.bin_follow
        .set(slot, b, 0)
        .map_err(|source| WriteError {
            map: "BIN_FOLLOW",
            source,
        })
}

/// Whether `path` matches one of a binary filter's values, as the kernel compares them.
fn binary_matches(values: &[&StrEntry], path: &str) -> bool {
    values.iter().any(|v| match v.map {
        StrMap::Equal if v.filter_id & LONG_PREFIX != 0 => path.as_bytes().starts_with(&v.value),
        StrMap::Equal => path.as_bytes() == v.value.as_slice(),
        StrMap::Cidr(_) => false,
        StrMap::Prefix => path.as_bytes().starts_with(&v.value),
        StrMap::Postfix => {
            let mut rev = v.value.clone();
            rev.reverse();
            path.as_bytes().ends_with(&rev)
        }
    })
}

/// `CONFIG[0]`: the kernel keeps binaries, and evaluates `followChildren` filters at
/// exec when there are some.
fn set_config(maps: &mut Maps) -> Result<(), WriteError> {
    let any_binary =
        (0..MAX_BIN_FOLLOW).any(|i| maps.bin_follow.get(&i, 0).is_ok_and(|e| e.op != 0));
    maps.set_config(TRACK_BINARIES | if any_binary { FOLLOW_BINARIES } else { 0 })
}
