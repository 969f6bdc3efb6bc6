//! Selectors, one small function per matcher: `matchPIDs`, `matchBinaries`,
//! `matchNamespaces`, `matchCapabilities` on the process, `matchArgs` on the captured
//! arguments. A selector matches when every filter in it holds; a hook's selectors are
//! tried in order and the first that matches decides.

use aya_ebpf::helpers::generated::{bpf_get_current_cgroup_id, bpf_get_current_task};
use tracer_common::policy::{
    ACTION_POST, ARG_INT, ARG_SOCK, ARG_UINT, ArgFilter, ArgValue, BIN_IN, BIN_NOT_IN,
    BIN_NOT_POSTFIX, BIN_NOT_PREFIX, BIN_POSTFIX, BIN_PREFIX, BinaryFilter, HOOK_CGROUP_SCOPE,
    HookConfig, MAX_ARG_FILTERS, MAX_CAP_FILTERS, MAX_INT_VALUES, MAX_NS_FILTERS, MAX_NS_VALUES,
    MAX_PIDS, MAX_SELECTORS, NS_USER, OP_DADDR, OP_DPORT, OP_DPORT_PRIV, OP_EQUAL, OP_FAMILY,
    OP_GT, OP_LT, OP_MASK, OP_NOT_EQUAL, OP_NOT_POSTFIX, OP_NOT_PREFIX, OP_POSTFIX, OP_PREFIX,
    OP_PROTOCOL, OP_SADDR, OP_SPORT, OP_SPORT_PRIV, OP_STATE, PIDS_IN, PIDS_NOT_IN, PidFilter,
    ScopeKey, SelectorConfig, SockValue, TracepointEvent,
};

use super::{NO, PAST_LAST, YES, strings::str_lookup};
use crate::{
    kread,
    maps::{BINARY_SLOT, EXEC_CAPS, FOLLOW, POLICY_SCOPE, SOCK_KEYS, STR_PREFIX},
};

/// The first selector that matches: (its index, its actions, its signal).
#[inline(always)]
pub(super) fn select(
    cfg: &HookConfig,
    ev: &TracepointEvent,
    pid: u32,
    binary_known: bool,
) -> Option<(u32, u16, u32)> {
    if cfg.nsel == 0 {
        // No selectors: every hit is posted, as in Tetragon.
        return Some((0, ACTION_POST, 0));
    }
    for s in 0..MAX_SELECTORS as u32 {
        match tracer_selector_matches(cfg, s, ev, pid, u32::from(binary_known)) {
            PAST_LAST => break,
            NO => {}
            _ => {
                let sel = selector_at(cfg, s);
                return Some((s, sel.actions, u32::from(sel.signal)));
            }
        }
    }
    None
}

// The matchers below are global functions (exported, so their BTF says so): the
// verifier checks each once, on its own, rather than again for every selector, filter
// and call site, which keeps the programs within its budget. They take numbers and
// pointers to whole records (a hook, this CPU's event), which may be null to the verifier
// (not in fact), and find the selector or filter by its index, masked: a pointer into the
// middle of a record, moving with a loop, is refused by kernels before 6.8 when they
// cannot bound the loop's counter exactly.

/// The selector at index `s` of `cfg` (masked into the array).
#[inline(always)]
fn selector_at(cfg: &HookConfig, s: u32) -> &SelectorConfig {
    &cfg.selectors[s as usize & (MAX_SELECTORS - 1)]
}

/// Whether every filter of selector `s` of `cfg` holds (`YES`, `NO`, `PAST_LAST`): the
/// process's first, then the arguments.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_selector_matches(
    cfg: *const HookConfig,
    s: u32,
    ev: *const TracepointEvent,
    pid: u32,
    binary_known: u32,
) -> i32 {
    // SAFETY: pointers to map values (a hook, this CPU's event).
    let (Some(cfg), Some(ev)) = (unsafe { cfg.as_ref() }, unsafe { ev.as_ref() }) else {
        return NO;
    };
    match tracer_process_matches(cfg, s, pid, binary_known) {
        YES => {}
        other => return other,
    }
    for f in 0..MAX_ARG_FILTERS as u32 {
        match tracer_filter_matches(cfg, s, f, ev) {
            NO => return NO,
            PAST_LAST => break,
            _ => {}
        }
    }
    YES
}

/// Whether the filters of selector `s` of `cfg` on the process (`matchPIDs`,
/// `matchBinaries`, `matchNamespaces`, `matchCapabilities`) hold for the current one,
/// `pid` (`YES`, `NO`, `PAST_LAST`); its binary's keys are built (`binary_known`) when a
/// filter needs them.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_process_matches(
    cfg: *const HookConfig,
    s: u32,
    pid: u32,
    binary_known: u32,
) -> i32 {
    // SAFETY: a pointer to a map value (a hook).
    let Some(cfg) = (unsafe { cfg.as_ref() }) else {
        return NO;
    };
    if s >= cfg.nsel {
        return PAST_LAST;
    }
    let sel = selector_at(cfg, s);
    let binary_known = binary_known != 0;
    let follow = if sel.pids.follow != 0 || sel.binary.follow != 0 {
        // SAFETY: a map value, copied out.
        unsafe { FOLLOW.get(pid) }.copied().unwrap_or(0)
    } else {
        0
    };
    i32::from(
        pids_match(&sel.pids, pid, follow)
            && binary_matches(&sel.binary, binary_known, follow)
            && namespaces_match(sel)
            && caps_match(sel, pid),
    )
}

/// Whether hook `cfg` can match the current process `pid` whatever the call's arguments
/// (1, else 0): its policy applies here, and some selector's process filters hold (or it
/// has none). `binary_known`: 1 when the binary's lookup keys are built.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_may_match(cfg: *const HookConfig, pid: u32, binary_known: u32) -> i32 {
    // SAFETY: a pointer to a map value of `HOOKS`.
    let Some(cfg) = (unsafe { cfg.as_ref() }) else {
        return 0;
    };
    if cfg.flags & HOOK_CGROUP_SCOPE != 0 && !in_scope(cfg.policy_id) {
        return 0;
    }
    if cfg.nsel == 0 {
        return 1;
    }
    for s in 0..MAX_SELECTORS as u32 {
        match tracer_process_matches(cfg, s, pid, binary_known) {
            YES => return 1,
            PAST_LAST => break,
            _ => {}
        }
    }
    0
}

#[inline(always)]
fn pids_match(p: &PidFilter, pid: u32, follow: u64) -> bool {
    if p.op != PIDS_IN && p.op != PIDS_NOT_IN {
        return true;
    }
    // `isNamespacePID`: the values are pids in the process's own pid namespace.
    let pid = if p.namespace != 0 {
        // SAFETY: helper without arguments.
        kread::ns_tgid(unsafe { bpf_get_current_task() }).unwrap_or(0)
    } else {
        pid
    };
    // `followForks`: the listed processes' descendants count as listed.
    let mut found = p.follow != 0 && follow & (1u64 << ((p.follow - 1) & 63)) != 0;
    for i in 0..MAX_PIDS {
        if i < p.n as usize && p.values[i] == pid {
            found = true;
        }
    }
    found == (p.op == PIDS_IN)
}

/// `matchNamespaces`: every filter holds (a namespace that cannot be read matches only
/// `NotIn`).
#[inline(always)]
fn namespaces_match(sel: &SelectorConfig) -> bool {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    for f in 0..MAX_NS_FILTERS {
        let nf = &sel.namespaces[f];
        if nf.ns == 0 {
            break;
        }
        let inum = kread::ns_inum(task, nf.ns);
        let mut found = false;
        for i in 0..MAX_NS_VALUES {
            if i < nf.n as usize && inum == Some(nf.values[i]) {
                found = true;
            }
        }
        if found != (nf.op == PIDS_IN) {
            return false;
        }
    }
    true
}

/// `matchCapabilities`: `In` holds when the set has any capability of the mask, `NotIn`
/// when it has none. `matchCapabilityChanges` (`change`), on the set's difference from
/// its value at the exec of process `pid`: `In` holds when a capability of the mask
/// differs, `NotIn` when only others do; neither for a process whose exec is not known.
#[inline(always)]
fn caps_match(sel: &SelectorConfig, pid: u32) -> bool {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    for f in 0..MAX_CAP_FILTERS {
        let cf = &sel.caps[f];
        if cf.set == 0 {
            break;
        }
        if cf.host_userns != 0 && kread::ns_inum(task, NS_USER) == Some(cf.host_userns) {
            return false;
        }
        let now = kread::caps(task, cf.set);
        let holds = if cf.change == 0 {
            now.is_some_and(|c| c & cf.mask != 0) == (cf.op == PIDS_IN)
        } else {
            // SAFETY: a map value, copied out.
            match (now, unsafe { EXEC_CAPS.get(pid) }.copied()) {
                (Some(now), Some(at_exec)) => {
                    let was = at_exec[usize::from(cf.set.wrapping_sub(1)) % 3];
                    if (was ^ now) & cf.mask != 0 {
                        cf.op == PIDS_IN
                    } else {
                        was != now && cf.op != PIDS_IN
                    }
                }
                _ => false,
            }
        };
        if !holds {
            return false;
        }
    }
    true
}

/// `matchBinaries`: a process whose binary is not known matches only the `Not*`
/// operators.
#[inline(always)]
fn binary_matches(b: &BinaryFilter, known: bool, follow: u64) -> bool {
    let (kind, negate) = match b.op {
        BIN_IN => (OP_EQUAL, false),
        BIN_NOT_IN => (OP_EQUAL, true),
        BIN_PREFIX => (OP_PREFIX, false),
        BIN_NOT_PREFIX => (OP_PREFIX, true),
        BIN_POSTFIX => (OP_POSTFIX, false),
        BIN_NOT_POSTFIX => (OP_POSTFIX, true),
        _ => return true,
    };
    // `followChildren`: a descendant of a matching binary matches too.
    let followed = b.follow != 0 && follow & (1u64 << ((b.follow - 1) & 63)) != 0;
    let hit = followed || (known && str_lookup(kind, b.id, BINARY_SLOT));
    hit != negate
}

/// Whether filter `f` of selector `s` of `cfg` holds for the argument it names in `ev`
/// (`YES`, `NO`, `PAST_LAST`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_filter_matches(
    cfg: *const HookConfig,
    s: u32,
    f: u32,
    ev: *const TracepointEvent,
) -> i32 {
    // SAFETY: pointers to map values (a hook, this CPU's event).
    let (Some(cfg), Some(ev)) = (unsafe { cfg.as_ref() }, unsafe { ev.as_ref() }) else {
        return 0;
    };
    let sel = selector_at(cfg, s);
    if f >= u32::from(sel.nfilters) {
        return PAST_LAST;
    }
    let filter = &sel.filters[f as usize & (MAX_ARG_FILTERS - 1)];
    let arg = filter.arg as usize;
    match ev.args.get(arg) {
        Some(v) => i32::from(filter_matches(filter, v, arg as u32)),
        None => NO,
    }
}

#[inline(always)]
fn filter_matches(f: &ArgFilter, v: &ArgValue, arg: u32) -> bool {
    let is_string = !matches!(v.kind as u8, ARG_INT | ARG_UINT);
    let signed = v.kind as u8 == ARG_INT;
    match f.op {
        OP_EQUAL | OP_NOT_EQUAL => {
            let eq = if is_string {
                str_lookup(OP_EQUAL, f.id, arg)
            } else {
                any_int(f, |x| x == v.int)
            };
            eq == (f.op == OP_EQUAL)
        }
        OP_GT => any_int(f, |x| {
            if signed {
                (v.int as i64) > (x as i64)
            } else {
                v.int > x
            }
        }),
        OP_LT => any_int(f, |x| {
            if signed {
                (v.int as i64) < (x as i64)
            } else {
                v.int < x
            }
        }),
        OP_MASK => any_int(f, |x| v.int & x != 0),
        OP_PREFIX | OP_NOT_PREFIX => str_lookup(OP_PREFIX, f.id, arg) == (f.op == OP_PREFIX),
        OP_SADDR..=OP_STATE => sock_matches(f, v) != (f.negate != 0),
        OP_POSTFIX | OP_NOT_POSTFIX => str_lookup(OP_POSTFIX, f.id, arg) == (f.op == OP_POSTFIX),
        _ => false,
    }
}

/// A socket operator, before `Not`.
#[inline(always)]
fn sock_matches(f: &ArgFilter, v: &ArgValue) -> bool {
    if v.kind != u32::from(ARG_SOCK) {
        return false;
    }
    // SAFETY: `capture_sock` wrote a SockValue at the start of `str`.
    let s = unsafe { v.str.as_ptr().cast::<SockValue>().read_unaligned() };
    match f.op {
        OP_SADDR | OP_DADDR => {
            let slot = u32::from(f.op == OP_DADDR);
            match SOCK_KEYS.get_ptr_mut(slot) {
                Some(key) => {
                    // SAFETY: this CPU's key slot, built by `capture_sock`.
                    let key = unsafe { &mut *key };
                    key.data.id = f.id.to_be_bytes();
                    STR_PREFIX.get(&*key).is_some()
                }
                None => false,
            }
        }
        OP_SPORT_PRIV => s.sport < 1024,
        OP_DPORT_PRIV => s.dport < 1024,
        _ => {
            let x = u64::from(match f.op {
                OP_SPORT => s.sport,
                OP_DPORT => s.dport,
                OP_PROTOCOL => s.protocol,
                OP_FAMILY => s.family,
                _ => s.state,
            });
            any_int(f, |val| val == x)
        }
    }
}

#[inline(always)]
fn any_int(f: &ArgFilter, pred: impl Fn(u64) -> bool) -> bool {
    let mut hit = false;
    for i in 0..MAX_INT_VALUES {
        if i < f.nvals as usize && pred(f.values[i]) {
            hit = true;
        }
    }
    hit
}

/// Whether the current task's cgroup is one policy `policy_id` applies to.
#[inline(never)]
pub(super) fn in_scope(policy_id: u32) -> bool {
    let key = ScopeKey {
        policy_id,
        _pad: 0,
        // SAFETY: helper without arguments.
        cgroup: unsafe { bpf_get_current_cgroup_id() },
    };
    // SAFETY: a lookup whose value is only tested for presence.
    unsafe { POLICY_SCOPE.get(key) }.is_some()
}
