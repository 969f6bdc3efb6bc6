//! The entries of a process's eBPF maps, counted with the bpf(2) syscall: the maps are
//! found through its descriptors (`/proc/PID/fdinfo`: `map_id`, `map_type`), each is
//! opened by id, and its keys walked with `BPF_MAP_GET_NEXT_KEY`. Maps whose size does
//! not change (arrays, ring buffers, perf event arrays) are left out; the inner maps of
//! a map of maps are counted with it.

use std::{collections::BTreeMap, fs, os::fd::OwnedFd};

use std::os::fd::{AsRawFd as _, FromRawFd as _};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

const HASH: u32 = 1;
const PERCPU_HASH: u32 = 5;
const STACK_TRACE: u32 = 7;
const LRU_HASH: u32 = 9;
const LRU_PERCPU_HASH: u32 = 10;
const LPM_TRIE: u32 = 11;
const ARRAY_OF_MAPS: u32 = 12;
const HASH_OF_MAPS: u32 = 13;

/// One map's count.
#[derive(Clone, Debug)]
pub struct MapCount {
    pub name: String,
    pub entries: u64,
    pub max_entries: u64,
}

/// `bpf(cmd, attr)` with a zeroed 128-byte attribute holding `words` at its start.
fn bpf(cmd: libc::c_long, words: &[u64]) -> std::io::Result<libc::c_long> {
    let mut attr = [0u64; 16];
    attr[..words.len()].copy_from_slice(words);
    // SAFETY: bpf(2) reads (and for some commands writes) at most `size` bytes of
    // `attr`, a live local of that size; the pointers inside it are to live locals of
    // the sizes the kernel was told (the caller's).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn map_fd_by_id(id: u32) -> std::io::Result<OwnedFd> {
    let fd = bpf(BPF_MAP_GET_FD_BY_ID, &[u64::from(id)])?;
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The map's type, key size, max entries and name (`bpf_map_info`).
fn map_info(fd: &OwnedFd) -> std::io::Result<(u32, u32, u32, u32, String)> {
    // bpf_map_info: type, id, key_size, value_size, max_entries, map_flags (u32 each),
    // name[16], ...: 80 bytes is more than the fields read here.
    let mut info = [0u8; 80];
    let raw = u32::try_from(fd.as_raw_fd()).unwrap_or(0);
    bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        &[
            u64::from(raw) | ((info.len() as u64) << 32),
            info.as_mut_ptr() as u64,
        ],
    )?;
    let word = |i: usize| u32::from_ne_bytes([info[i], info[i + 1], info[i + 2], info[i + 3]]);
    let name = info[24..40]
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    Ok((word(0), word(8), word(12), word(16), name))
}

/// The keys of a map, walked with GET_NEXT_KEY (each `key_size` bytes).
fn keys(fd: &OwnedFd, key_size: u32) -> Vec<Vec<u8>> {
    let raw = u64::from(u32::try_from(fd.as_raw_fd()).unwrap_or(0));
    let size = key_size as usize;
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut next = vec![0u8; size.max(1)];
    loop {
        // The first call has no key (a null pointer): the first key.
        let key = out.last().map_or(0, |k| k.as_ptr() as u64);
        if bpf(BPF_MAP_GET_NEXT_KEY, &[raw, key, next.as_mut_ptr() as u64]).is_err() {
            return out;
        }
        out.push(next[..size].to_vec());
        // A map that changes under the walk could cycle; a walk never returns more
        // keys than the map holds.
        if out.len() > 1 << 24 {
            return out;
        }
    }
}

/// The inner map ids of a map of maps (each value is one).
fn inner_ids(fd: &OwnedFd, keys: &[Vec<u8>]) -> Vec<u32> {
    let raw = u64::from(u32::try_from(fd.as_raw_fd()).unwrap_or(0));
    keys.iter()
        .filter_map(|k| {
            let mut id = 0u32;
            bpf(
                BPF_MAP_LOOKUP_ELEM,
                &[raw, k.as_ptr() as u64, (&raw mut id) as u64],
            )
            .ok()?;
            Some(id)
        })
        .collect()
}

/// The ids of the maps process `pid` holds descriptors of.
fn map_ids(pid: i32) -> BTreeMap<u32, ()> {
    let mut ids = BTreeMap::new();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in fds.filter_map(Result::ok) {
        let Ok(info) = fs::read_to_string(fd.path()) else {
            continue;
        };
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.insert(id, ());
        }
    }
    ids
}

/// Counts the entries of the maps of `pid` whose size can change, by map (name and id).
pub fn count(pid: i32) -> anyhow::Result<Vec<MapCount>> {
    let mut out = Vec::new();
    for id in map_ids(pid).into_keys() {
        let Ok(fd) = map_fd_by_id(id) else {
            // Gone since the fdinfo was read.
            continue;
        };
        let (kind, key_size, _value_size, max, name) = map_info(&fd).map_err(|e| {
            anyhow::anyhow!("bpf(BPF_OBJ_GET_INFO_BY_FD) on map {id}: {e} (run as root)")
        })?;
        match kind {
            HASH | PERCPU_HASH | STACK_TRACE | LRU_HASH | LRU_PERCPU_HASH | LPM_TRIE => {
                out.push(MapCount {
                    name: format!("{name}#{id}"),
                    entries: keys(&fd, key_size).len() as u64,
                    max_entries: u64::from(max),
                });
            }
            ARRAY_OF_MAPS | HASH_OF_MAPS => {
                let ks = keys(&fd, key_size);
                let mut entries = 0;
                let mut inner_max = 0;
                for inner in inner_ids(&fd, &ks) {
                    let Ok(ifd) = map_fd_by_id(inner) else {
                        continue;
                    };
                    let Ok((_, iks, _, imax, _)) = map_info(&ifd) else {
                        continue;
                    };
                    entries += keys(&ifd, iks).len() as u64;
                    inner_max += u64::from(imax);
                }
                let outer = if kind == HASH_OF_MAPS {
                    ks.len() as u64
                } else {
                    0
                };
                out.push(MapCount {
                    name: format!("{name}#{id}"),
                    entries: outer + entries,
                    max_entries: u64::from(max) + inner_max,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}
