//! The policy maps of the kernel programs (`tracer-ebpf/src/maps.rs`), taken out of the
//! object once, with one small writer per kind of entry.

use aya::{
    Ebpf,
    maps::{
        Array, HashMap as BpfHashMap, MapData, MapError, PerCpuHashMap, PerCpuValues,
        lpm_trie::{Key, LpmTrie},
    },
};
use tracer_common::policy::{
    BinFollow, ExecCaps, GateHit, GateIntKey, GateStrKey, HookConfig, HookPoint,
    POLICY_COUNTERS_PER, PREFIX_MAX, PolicyCounters, STRING_MAX, ScopeKey, StrKey, StrPrefix,
};

use crate::policy::compile::{StrEntry, StrMap};

/// A map the store needs is missing from the object, or of another type.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("the eBPF object has no map `{0}`")]
    Missing(&'static str),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, TakeError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(TakeError::Missing(name))?;
    T::try_from(map).map_err(|source| TakeError::Map { name, source })
}

/// A failed write, with the map it was to.
#[derive(Debug, thiserror::Error)]
#[error("map `{map}`: {source}")]
pub struct WriteError {
    pub map: &'static str,
    #[source]
    pub source: MapError,
}

fn write(map: &'static str) -> impl FnOnce(MapError) -> WriteError {
    move |source| WriteError { map, source }
}

pub struct Maps {
    pub hooks: BpfHashMap<MapData, u32, HookConfig>,
    pub points: Array<MapData, HookPoint>,
    counters: PerCpuHashMap<MapData, u32, PolicyCounters>,
    gate_ints: BpfHashMap<MapData, GateIntKey, GateHit>,
    gate_strs: LpmTrie<MapData, GateStrKey, GateHit>,
    str_equal: BpfHashMap<MapData, StrKey, u8>,
    str_prefix: LpmTrie<MapData, StrPrefix, u8>,
    str_postfix: LpmTrie<MapData, StrPrefix, u8>,
    pub scope: BpfHashMap<MapData, ScopeKey, u8>,
    pub exec_paths: BpfHashMap<MapData, u32, StrKey>,
    pub exec_caps: BpfHashMap<MapData, u32, ExecCaps>,
    pub config: Array<MapData, u32>,
    pub follow: BpfHashMap<MapData, u32, u64>,
    pub bin_follow: Array<MapData, BinFollow>,
    pub syscall_points: Array<MapData, u32>,
    pub syscall_any: Array<MapData, u32>,
    pub btf_points: Array<MapData, u32>,
}

impl Maps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, TakeError> {
        Ok(Self {
            hooks: take(ebpf, "HOOKS")?,
            points: take(ebpf, "HOOK_POINTS")?,
            counters: take(ebpf, "POLICY_COUNTERS")?,
            gate_ints: take(ebpf, "GATE_INTS")?,
            gate_strs: take(ebpf, "GATE_STRS")?,
            str_equal: take(ebpf, "STR_EQUAL")?,
            str_prefix: take(ebpf, "STR_PREFIX")?,
            str_postfix: take(ebpf, "STR_POSTFIX")?,
            scope: take(ebpf, "POLICY_SCOPE")?,
            exec_paths: take(ebpf, "EXEC_PATHS")?,
            exec_caps: take(ebpf, "EXEC_CAPS")?,
            config: take(ebpf, "CONFIG")?,
            follow: take(ebpf, "FOLLOW")?,
            bin_follow: take(ebpf, "BIN_FOLLOW")?,
            syscall_points: take(ebpf, "SYSCALL_POINTS")?,
            syscall_any: take(ebpf, "SYSCALL_ANY")?,
            btf_points: take(ebpf, "BTF_POINTS")?,
        })
    }

    pub fn put_hook(&mut self, config: &HookConfig) -> Result<(), WriteError> {
        self.hooks
            .insert(config.id, config, 0)
            .map_err(write("HOOKS"))
    }

    pub fn put_point(&mut self, id: u32, point: &HookPoint) -> Result<(), WriteError> {
        self.points.set(id, point, 0).map_err(write("HOOK_POINTS"))
    }

    /// Zeroed counters for policy `id`, on every CPU.
    pub fn reset_counters(&mut self, id: u32) -> Result<(), WriteError> {
        let cpus = aya::util::nr_cpus().unwrap_or(1);
        let zero =
            PerCpuValues::try_from(vec![[0u64; POLICY_COUNTERS_PER]; cpus]).map_err(|e| {
                WriteError {
                    map: "POLICY_COUNTERS",
                    source: MapError::IoError(e),
                }
            })?;
        self.counters
            .insert(id, zero, 0)
            .map_err(write("POLICY_COUNTERS"))
    }

    /// Policy `id`'s counters, summed over CPUs.
    pub fn counters(&self, id: u32) -> PolicyCounters {
        let mut sum = [0u64; POLICY_COUNTERS_PER];
        if let Ok(values) = self.counters.get(&id, 0) {
            for cpu in values.iter() {
                for (s, v) in sum.iter_mut().zip(cpu) {
                    *s += v;
                }
            }
        }
        sum
    }

    pub fn remove_counters(&mut self, id: u32) {
        let _ = self.counters.remove(&id);
    }

    pub fn put_gate_int(&mut self, key: GateIntKey, hit: &GateHit) -> Result<(), WriteError> {
        self.gate_ints
            .insert(key, hit, 0)
            .map_err(write("GATE_INTS"))
    }

    pub fn put_gate_str(&mut self, key: &Key<GateStrKey>, hit: &GateHit) -> Result<(), WriteError> {
        self.gate_strs
            .insert(key, hit, 0)
            .map_err(write("GATE_STRS"))
    }

    pub fn remove_gate_int(&mut self, key: &GateIntKey) {
        let _ = self.gate_ints.remove(key);
    }

    pub fn remove_gate_str(&mut self, key: &Key<GateStrKey>) {
        let _ = self.gate_strs.remove(key);
    }

    /// Writes (or with `insert` false removes) a filter's string value.
    pub fn string(&mut self, s: &StrEntry, insert: bool) -> Result<(), WriteError> {
        let mut data = [0u8; STRING_MAX];
        let n = s.value.len().min(STRING_MAX - 1);
        data[..n].copy_from_slice(&s.value[..n]);
        let lpm = |bits: u32, bytes: &[u8]| {
            let mut prefix = [0u8; PREFIX_MAX];
            let n = bytes.len().min(PREFIX_MAX);
            prefix[..n].copy_from_slice(&bytes[..n]);
            Key::new(
                32 + bits,
                StrPrefix {
                    id: s.filter_id.to_be_bytes(),
                    data: prefix,
                },
            )
        };
        let (map, name, key) = match s.map {
            StrMap::Equal => {
                let key = StrKey {
                    id: s.filter_id,
                    len: n as u32,
                    data,
                };
                return if insert {
                    self.str_equal.insert(key, 1, 0)
                } else {
                    self.str_equal.remove(&key)
                }
                .map_err(write("STR_EQUAL"));
            }
            StrMap::Cidr(bits) => (
                &mut self.str_prefix,
                "STR_PREFIX",
                lpm(u32::from(bits), &s.value[..s.value.len().min(16)]),
            ),
            StrMap::Prefix => {
                let n = n.min(PREFIX_MAX);
                (
                    &mut self.str_prefix,
                    "STR_PREFIX",
                    lpm(8 * n as u32, &data[..n]),
                )
            }
            StrMap::Postfix => {
                let n = n.min(PREFIX_MAX);
                (
                    &mut self.str_postfix,
                    "STR_POSTFIX",
                    lpm(8 * n as u32, &data[..n]),
                )
            }
        };
        if insert {
            map.insert(&key, 1, 0)
        } else {
            map.remove(&key)
        }
        .map_err(write(name))
    }

    pub fn set_config(&mut self, bits: u32) -> Result<(), WriteError> {
        self.config.set(0, bits, 0).map_err(write("CONFIG"))
    }
}
