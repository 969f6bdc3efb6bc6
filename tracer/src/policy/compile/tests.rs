//! Tests of placing and compiling policies: policies written as YAML, parsed and
//! validated by [`parse::text_documents`], placed and compiled against a fake tracefs
//! and a kernel described by [`Kernel`].

use std::path::Path;

use tracer_common::policy::{
    ACTION_NOPOST, ACTION_NOTIFY_ENFORCER, ACTION_OVERRIDE, ACTION_POST, ACTION_SIGKILL,
    ACTION_SIGNAL, ARG_BYTES, ARG_CHAR_ARRAY, ARG_CURRENT_PID, ARG_DATA_LOC, ARG_INT,
    ARG_KERNEL_STRING, ARG_NEEDS_EQUAL, ARG_NEEDS_POSTFIX, ARG_NEEDS_PREFIX, ARG_SOCK, ARG_UINT,
    ARG_USER_BYTES, ARG_USER_STRING, ArgConfig, BIN_IN, BIN_NOT_IN, BIN_NOT_POSTFIX,
    BIN_NOT_PREFIX, BIN_POSTFIX, BIN_PREFIX, BinFollow, CAPS_EFFECTIVE, CAPS_INHERITABLE,
    CAPS_PERMITTED, HOOK_BINARY_EQUAL, HOOK_BINARY_POSTFIX, HOOK_BINARY_PREFIX, HOOK_CGROUP_SCOPE,
    HOOK_ENTRY_SOCK, HOOK_FD, HOOK_MONITOR, HOOK_RET_FD_SOCK, HOOK_SOCK_OWNER, HOOK_SOCK_TRIGGER,
    HP_DEP_CGROUP, HP_DEP_CRED, HP_DEP_NS, HP_KPROBE_GENERIC, HP_KPROBE_SYSCALL, HP_RETURN,
    HP_SAVE_ENTRY, HP_SOCK_RETURN, HP_VERDICT, KPROBE_ARG_BPRM, KPROBE_ARG_CRED, KPROBE_ARG_FIELDS,
    KPROBE_ARG_FILE, KPROBE_ARG_IOV_ITER, KPROBE_ARG_KIOCB, KPROBE_ARG_SKB, KPROBE_ARG_SOCK,
    KPROBE_ARG_SOCKADDR, KPROBE_ARG_SOCKET, KPROBE_IOV_LEN_AT, KPROBE_PATH_AT, KPROBE_STRUCT2_AT,
    KprobeLayout, LONG_PREFIX, NS_CGROUP, NS_IPC, NS_MNT, NS_NET, NS_PID, NS_PID_FOR_CHILDREN,
    NS_TIME, NS_TIME_FOR_CHILDREN, NS_USER, NS_UTS, OP_DADDR, OP_DPORT, OP_DPORT_PRIV, OP_EQUAL,
    OP_FAMILY, OP_GT, OP_LT, OP_MASK, OP_NOT_EQUAL, OP_NOT_POSTFIX, OP_NOT_PREFIX, OP_POSTFIX,
    OP_PREFIX, OP_PROTOCOL, OP_SADDR, OP_SPORT, OP_SPORT_PRIV, OP_STATE, PIDS_IN, PIDS_NOT_IN,
    RATE_GLOBAL, RATE_PROCESS, RATE_THREAD, RETURN_AT, SOCK_ARG_AT, SOCK_RETURN, SOCK_RETURN_AT,
    SOCK_TRACK, SOCK_UNTRACK, STACK_KERNEL, STACK_USER, SYSCALL_ENTER, SYSCALL_EXIT, SockLayout,
};

use super::{
    ArgOut, Compiled, Follow, GateFilter, GateValues, Hook, Ids, KprobeMeta, StrEntry, StrMap,
    compile,
};
use crate::policy::{
    facts::{Facts, Kernel},
    parse,
    place::{self, Attach, Half, KprobeSite, Probe, SYSCALL_WRAPPER_PREFIX},
    spec,
};

/// A kernel that runs hooks on tracepoints only.
const TRACEPOINTS: Kernel = Kernel {
    kprobes: false,
    fentry: false,
    lsm: false,
    raw_syscalls: false,
    raw_numbered: false,
    kprobes_off: "",
    lsm_off: crate::kernel::features::NO_BPF_LSM,
    kprobe_override: false,
    override_off: crate::kernel::features::NO_KPROBE_OVERRIDE,
};
/// Kprobes, and nothing else.
const KPROBES: Kernel = Kernel {
    kprobes: true,
    ..TRACEPOINTS
};
/// Kprobes and BPF trampolines, no BPF LSM.
const FENTRY: Kernel = Kernel {
    fentry: true,
    ..KPROBES
};
/// Everything, `--syscall-raw-tracepoints` included.
const FULL: Kernel = Kernel {
    kprobes: true,
    fentry: true,
    lsm: true,
    raw_syscalls: true,
    raw_numbered: true,
    kprobes_off: "",
    lsm_off: "",
    kprobe_override: true,
    override_off: "",
};

/// A tracefs root with the format files the tests read, as Linux 6.18 writes them (but
/// `sys_enter_nosuchcall`, a syscall no architecture has, and `sys_enter_sethostname`,
/// whose argument is made a char array: no syscall's is, and the raw tracepoints cannot
/// reproduce one).
fn tracefs() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temp dir");
    let common = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";
    let nr = "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n";
    for (sub, event, id, fields) in [
        (
            "syscalls",
            "sys_enter_getpgid",
            700,
            "\tfield:pid_t pid;\toffset:16;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_exit_getpgid",
            701,
            "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n",
        ),
        (
            "syscalls",
            "sys_enter_nosuchcall",
            702,
            "\tfield:long x;\toffset:16;\tsize:8;\tsigned:1;\n",
        ),
        (
            "syscalls",
            "sys_enter_openat",
            706,
            "\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_write",
            707,
            "\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_writev",
            708,
            "\tfield:unsigned long fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const struct iovec * vec;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned long vlen;\toffset:32;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_sethostname",
            709,
            "\tfield:char name[8];\toffset:16;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_connect",
            710,
            "\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_accept4",
            712,
            "\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * upeer_sockaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int * upeer_addrlen;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:int flags;\toffset:40;\tsize:8;\tsigned:0;\n",
        ),
        (
            "syscalls",
            "sys_enter_accept",
            714,
            "\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:struct sockaddr * upeer_sockaddr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int * upeer_addrlen;\toffset:32;\tsize:8;\tsigned:0;\n",
        ),
    ] {
        write_format(
            root.path(),
            sub,
            event,
            id,
            &format!("{common}{nr}{fields}"),
        );
    }
    for (sub, event, id, fields) in [
        (
            "raw_syscalls",
            "sys_enter",
            703,
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n",
        ),
        (
            "raw_syscalls",
            "sys_exit",
            715,
            "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n",
        ),
        (
            "sock",
            "inet_sock_set_state",
            705,
            "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n",
        ),
        (
            "sched",
            "sched_process_fork",
            704,
            "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n",
        ),
        (
            "sched",
            "sched_switch",
            716,
            "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n",
        ),
    ] {
        write_format(root.path(), sub, event, id, &format!("{common}{fields}"));
    }
    root
}

fn write_format(root: &Path, sub: &str, event: &str, id: u32, fields: &str) {
    let dir = root.join("events").join(sub).join(event);
    std::fs::create_dir_all(&dir).expect("tracefs dir");
    std::fs::write(
        dir.join("format"),
        format!("name: {event}\nID: {id}\nformat:\n{fields}\nprint fmt: \"\"\n"),
    )
    .expect("format file");
}

/// `text` without the indentation all its lines share (a policy written indented in a
/// test).
fn dedent(text: &str) -> String {
    let margin = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", &l[margin..]))
        .collect()
}

/// A policy `t` whose `spec` is `body` (written indented).
fn policy(body: &str) -> String {
    let spec: String = dedent(body).lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n{spec}"
    )
}

/// The validated spec of the one document of `text`.
fn spec_of(text: &str) -> spec::Policy {
    let mut docs = parse::text_documents("t.yaml", text).expect("parses");
    assert_eq!(docs.len(), 1);
    docs.remove(0).spec
}

/// `text` compiled for `kernel` as policy 0, the first of its kind.
/// `text` compiled on `kernel`; an error also when a hook cannot run there (the reasons
/// of those that cannot: the store loads the others, the tests look at one at a time).
fn compile_on(root: &Path, kernel: Kernel, text: &str) -> Result<Compiled, String> {
    let c = compile(
        &spec_of(text),
        0,
        &mut Ids::default(),
        &Facts::new(kernel, root),
    )
    .map_err(|e| e.to_string())?;
    if c.unplaced.is_empty() {
        Ok(c)
    } else {
        let reasons: Vec<String> = c.unplaced.iter().map(ToString::to_string).collect();
        Err(reasons.join("; "))
    }
}

/// The hooks of a policy of one kprobe (`call: {hook}`, the rest of it following).
fn compile_kprobe(root: &Path, hook: &str, kernel: Kernel) -> Result<Vec<Hook>, String> {
    let text = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: {hook}"
    );
    compile_on(root, kernel, &text).map(|c| c.hooks)
}

/// The hook of a policy of one tracepoint (`{hook}`, its subsystem and event) whose
/// arguments are `args`, on `kernel`.
fn compile_one(root: &Path, hook: &str, args: &str, kernel: Kernel) -> Result<Hook, String> {
    let text = format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  tracepoints:\n  - {hook}\n    args:\n{args}"
    );
    let c = compile_on(root, kernel, &text)?;
    Ok(c.hooks.into_iter().next().expect("one hook"))
}

/// The only hook of `text`, compiled on a kernel of tracepoints.
fn only_hook(root: &Path, text: &str) -> Hook {
    let c = compile_on(root, TRACEPOINTS, text).expect("compiles");
    assert_eq!(c.hooks.len(), 1);
    c.hooks.into_iter().next().expect("one hook")
}

fn tracepoint(subsystem: &str, event: &str) -> Attach {
    Attach::Tracepoint {
        subsystem: subsystem.into(),
        event: event.into(),
    }
}

fn function(name: &str, program: Probe, ret: bool) -> Attach {
    Attach::Function {
        name: name.into(),
        program,
        ret,
    }
}

fn getpgid() -> u32 {
    syscalls::Sysno::getpgid.id() as u32
}

// --- Ported from the monolithic compiler's tests. ---

#[test]
fn socket_kprobes_compile_for_a_kprobe_or_for_the_tracepoint() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: tcp_connect
          syscall: false
          args:
          - index: 0
            type: sock
        - call: tcp_close
          syscall: false
          args:
          - index: 0
            type: sock
        ",
    );
    for kernel in [KPROBES, TRACEPOINTS] {
        let kprobes = kernel.kprobes;
        let c = compile_on(root.path(), kernel, &text).expect("compiles");
        assert_eq!(c.hooks.len(), 2);
        let (connect, close) = (&c.hooks[0], &c.hooks[1]);
        assert_eq!(
            connect.kprobe,
            Some(KprobeMeta {
                call: "tcp_connect".into(),
                on_kprobe: kprobes,
                ret: false,
                returns_value: false,
                sock: true,
                from_fd: false,
                program: Probe::Kprobe,
                why_not: "",
            })
        );
        assert_eq!(
            (connect.subsystem.as_str(), connect.event.as_str()),
            ("sock", "inet_sock_set_state")
        );
        let l = connect.config.sock;
        // The record's layout, from the format file, for both: a kprobe writes its
        // socket's fields where the tracepoint has them.
        assert_eq!(
            (
                l.skaddr, l.oldstate, l.newstate, l.sport, l.dport, l.family, l.protocol,
                l.saddr_v6, l.daddr_v6
            ),
            (8, 16, 20, 24, 26, 28, 30, 40, 56)
        );
        assert_eq!(l.protocol_is, 6);
        // On the tracepoint a hook runs on some transitions only; a kprobe reports the
        // state at the call.
        assert_eq!(connect.config.flags & HOOK_SOCK_TRIGGER != 0, !kprobes);
        assert_eq!(l.old_states, 1 << 7, "tcp_connect leaves CLOSE");
        assert_eq!(l.new_states, 1 << 2, "for SYN_SENT");
        assert_eq!(l.report_old, u16::from(kprobes));
        assert_eq!(close.config.sock.report_old, 1);
        assert_eq!(
            close.kprobe.as_ref().map(|k| k.call.as_str()),
            Some("tcp_close")
        );
        // Where it runs: the function, whose program writes the socket in the layout the
        // hook point carries; or the tracepoint, whose record has it.
        if kprobes {
            assert_eq!(
                connect.point.attach,
                function("tcp_connect", Probe::Kprobe, false)
            );
            assert_eq!(connect.point.sock, l);
        } else {
            assert_eq!(
                connect.point.attach,
                tracepoint("sock", "inet_sock_set_state")
            );
            assert_eq!(connect.point.sock, SockLayout::default());
        }
        assert_eq!(
            connect.point.flags & (HP_KPROBE_GENERIC | HP_KPROBE_SYSCALL),
            0,
            "a socket function's record is the tracepoint's"
        );
    }
}

#[test]
fn syscall_kprobes_compile_onto_the_syscall_tracepoint_layout() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: sys_getpgid
          syscall: true
          args:
          - index: 0
            type: int
          selectors:
          - matchArgs:
            - index: 0
              operator: Equal
              values: [42]
        ",
    );
    for kprobes in [true, false] {
        // Raw routing everywhere: it can apply to the tracepoint, never to the kprobe.
        let kernel = Kernel {
            kprobes,
            raw_syscalls: true,
            raw_numbered: true,
            ..TRACEPOINTS
        };
        let c = compile_on(root.path(), kernel, &text).expect("compiles");
        let h = &c.hooks[0];
        assert_eq!(
            h.kprobe,
            Some(KprobeMeta {
                call: format!("{SYSCALL_WRAPPER_PREFIX}getpgid"),
                on_kprobe: kprobes,
                ret: false,
                returns_value: false,
                sock: false,
                from_fd: false,
                program: Probe::Kprobe,
                why_not: "",
            })
        );
        assert_eq!(
            (h.subsystem.as_str(), h.event.as_str()),
            ("syscalls", "sys_enter_getpgid")
        );
        // Argument 0 of the function is the record's first argument, at 16.
        assert_eq!(h.config.nargs, 1);
        assert_eq!(h.config.args[0].offset, 16);
        assert_eq!(h.config.args[0].kind, ARG_INT);
        assert_eq!(h.point.flags & HP_KPROBE_SYSCALL != 0, kprobes);
        // On its tracepoint it can be routed as any syscall hook; on a kprobe never.
        let expected = if kprobes {
            function(
                &format!("{SYSCALL_WRAPPER_PREFIX}getpgid"),
                Probe::Kprobe,
                false,
            )
        } else {
            Attach::RawSyscall {
                dir: SYSCALL_ENTER,
                nr: Some(getpgid()),
            }
        };
        assert_eq!(h.point.attach, expected);
    }
    // The wrapper's own name is the syscall too.
    let wrapper = compile_kprobe(
        root.path(),
        &format!("{SYSCALL_WRAPPER_PREFIX}getpgid\n    syscall: true\n"),
        TRACEPOINTS,
    )
    .expect("compiles");
    assert_eq!(wrapper[0].event, "sys_enter_getpgid");
    let e =
        compile_kprobe(root.path(), "do_sys_openat2\n    syscall: true\n", KPROBES).unwrap_err();
    assert!(e.contains("write sys_NAME"), "{e}");
    let e =
        compile_kprobe(root.path(), "sys_nosuchcall\n    syscall: true\n", KPROBES).unwrap_err();
    assert!(e.contains("is not a syscall"), "{e}");
}

#[test]
fn kprobes_on_other_functions_need_kprobes() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: security_file_open
          syscall: false
          args:
          - index: 0
            type: file
          - index: 1
            type: int
          selectors:
          - matchArgs:
            - index: 0
              operator: Prefix
              values: [/etc/]
        ",
    );
    let c = compile_on(root.path(), KPROBES, &text).expect("compiles where kprobes work");
    let h = &c.hooks[0];
    assert_eq!(
        h.kprobe,
        Some(KprobeMeta {
            call: "security_file_open".into(),
            on_kprobe: true,
            ret: false,
            returns_value: false,
            sock: false,
            from_fd: false,
            program: Probe::Kprobe,
            why_not: "",
        })
    );
    assert_ne!(h.point.flags & HP_KPROBE_GENERIC, 0);
    // The file's path, where the program writes it; the int, argument 1's register.
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
    );
    assert_eq!(
        (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
        (0, KPROBE_ARG_FILE)
    );
    assert_eq!(h.point.kprobe, h.config.kprobe, "the program reads it");
    assert_eq!(
        (h.config.args[1].kind, h.config.args[1].offset),
        (ARG_INT, 24)
    );
    assert_eq!(h.args[0].out, ArgOut::File);
    assert_eq!(h.runs_on(), "kprobe security_file_open runs on a kprobe");
    let e = compile_on(root.path(), TRACEPOINTS, &text).unwrap_err();
    assert!(
        e.contains("a kprobe on `security_file_open` needs kprobes"),
        "{e}"
    );
}

#[test]
fn function_hooks_prefer_fentry_and_override_on_bpf_lsm() {
    let root = tracefs();
    let full = Kernel {
        kprobes: true,
        fentry: true,
        lsm: true,
        ..TRACEPOINTS
    };
    let compile_kp = |hook: &str, kernel: Kernel| compile_kprobe(root.path(), hook, kernel);
    let program = |h: &Hook| h.kprobe.as_ref().map(|k| k.program);
    // Entry hooks on fentry, return halves on kretprobes; plain kprobes without
    // trampolines.
    let open =
        "security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n";
    let h = compile_kp(open, full).expect("compiles");
    assert_eq!(program(&h[0]), Some(Probe::Fentry));
    assert_eq!(
        h[0].point.attach,
        function("security_file_open", Probe::Fentry, false)
    );
    assert_eq!(h[0].runs_on(), "kprobe security_file_open runs on fentry");
    let no_trampolines = Kernel {
        fentry: false,
        lsm: false,
        ..full
    };
    assert_eq!(
        program(&compile_kp(open, no_trampolines).expect("compiles")[0]),
        Some(Probe::Kprobe)
    );
    let ret = "sys_getpgid\n    syscall: true\n    return: true\n    args:\n    - index: 0\n      type: int\n";
    let h = compile_kp(ret, full).expect("compiles");
    assert_eq!(
        (program(&h[0]), program(&h[1])),
        (Some(Probe::Fentry), Some(Probe::Kprobe))
    );
    // Override: a BPF LSM program on the security hook, with its error.
    let deny = format!(
        "{open}    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [/etc/]\n      matchActions:\n      - action: Override\n        argError: -13\n"
    );
    let h = compile_kp(&deny, full).expect("compiles");
    assert_eq!(program(&h[0]), Some(Probe::Lsm));
    assert_eq!(
        h[0].point.attach,
        function("security_file_open", Probe::Lsm, false)
    );
    assert_eq!(h[0].config.selectors[0].override_error, -13);
    assert_ne!(h[0].config.selectors[0].actions & ACTION_OVERRIDE, 0);
    assert_eq!(
        h[0].runs_on(),
        "kprobe security_file_open runs on the BPF LSM hook file_open (to Override it)"
    );
    for (kernel, hook, expected) in [
        (
            no_trampolines,
            deny.clone(),
            "and none runs here: this kernel does not run BPF LSM programs",
        ),
        (
            full,
            deny.replace("security_file_open", "vfs_open"),
            "`Override` on vfs_open, not a `security_*` function (those run as BPF LSM programs), takes a kprobe that overrides its return, and none can here: this kernel cannot override",
        ),
        (
            Kernel {
                kprobes: false,
                ..full
            },
            deny.clone(),
            "needs kprobes, which are not available here",
        ),
    ] {
        let e = compile_kp(&hook, kernel).unwrap_err();
        assert!(e.contains(expected), "{expected}: {e}");
    }
    // Override on a return probe (Tetragon's CVE-2023-2640 form): the return probe
    // posts, with the return value, and its twin overrides at the call, posting nothing.
    let cve = "security_inode_copy_up_xattr\n    syscall: false\n    return: true\n    args:\n    - index: 0\n      type: string\n    returnArg:\n      index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"security.capability\"]\n      matchActions:\n      - action: Override\n        argError: 1\n";
    let h = compile_kp(cve, full).expect("compiles");
    assert_eq!(
        h.iter().map(program).collect::<Vec<_>>(),
        [Some(Probe::Fentry), Some(Probe::Kprobe), Some(Probe::Lsm)],
        "entry, return, and the call's override"
    );
    let (ret, twin) = (&h[1], &h[2]);
    let actions = ret.config.selectors[0].actions;
    assert_eq!(
        (actions & ACTION_POST, actions & ACTION_OVERRIDE),
        (ACTION_POST, 0)
    );
    assert_eq!(ret.args.len(), 2, "the string and the return value");
    assert_eq!(twin.config.selectors[0].override_error, 1);
    let actions = twin.config.selectors[0].actions;
    assert_eq!(
        actions & (ACTION_OVERRIDE | ACTION_NOPOST),
        ACTION_OVERRIDE | ACTION_NOPOST,
        "NoPost: the kernel posts nothing"
    );
    assert_eq!(
        twin.runs_on(),
        "kprobe security_inode_copy_up_xattr runs on the BPF LSM hook inode_copy_up_xattr (to Override it)"
    );
    // Without BPF LSM the twin cannot run, said by name; the return probe still does.
    let c = compile(
        &spec_of(&format!("apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  kprobes:\n  - call: {cve}")),
        0,
        &mut Ids::default(),
        &Facts::new(no_trampolines, root.path()),
    )
    .expect("compiles");
    assert_eq!(c.hooks.len(), 2);
    assert_eq!(c.unplaced.len(), 1);
    assert!(
        c.unplaced[0].to_string().contains(
            "kprobe security_inode_copy_up_xattr (its Override, at the call): `Override` on security_inode_copy_up_xattr runs as a BPF LSM program, and none runs here: this kernel does not run BPF LSM programs"
        ),
        "{}",
        c.unplaced[0]
    );
}

#[test]
fn struct_arguments_of_any_function() {
    let root = tracefs();
    let compile_kp = |hook: &str| {
        compile_kprobe(root.path(), hook, KPROBES)
            .map(|hooks| hooks.into_iter().next().expect("one hook"))
    };
    // A socket: its fields where the program writes them, in the tracepoint's layout,
    // with the socket operators; the size in its register.
    let h = compile_kp("udp_sendmsg\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    - index: 2\n      type: size_t\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n        values: [\"53\"]\n").expect("compiles");
    assert_eq!(
        (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
        (0, KPROBE_ARG_SOCK)
    );
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_SOCK, KPROBE_PATH_AT)
    );
    assert_ne!(
        h.config.sock,
        SockLayout::default(),
        "the tracepoint's layout"
    );
    assert_eq!(h.config.sock.dport, 26);
    assert_eq!(h.point.sock, h.config.sock, "the program writes it so");
    assert_eq!(
        (h.config.args[1].kind, h.config.args[1].offset),
        (ARG_UINT, 32)
    );
    assert_eq!((h.args[0].out, h.args[1].out), (ArgOut::Sock, ArgOut::Size));
    assert_eq!(h.config.selectors[0].filters[0].op, OP_DPORT);
    // A cred: its values as bytes; reported, not filtered on.
    let h = compile_kp(
        "commit_creds\n    syscall: false\n    args:\n    - index: 0\n      type: cred\n",
    )
    .expect("compiles");
    assert_eq!(h.config.kprobe.struct_kind, KPROBE_ARG_CRED);
    assert_eq!(
        (
            h.config.args[0].kind,
            h.config.args[0].offset,
            h.config.args[0].size
        ),
        (ARG_BYTES, KPROBE_PATH_AT, 64)
    );
    assert_eq!(h.args[0].out, ArgOut::Cred);
    let e = compile_kp("commit_creds\n    syscall: false\n    args:\n    - index: 0\n      type: cred\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n").unwrap_err();
    assert!(
        e.contains("is a `cred`, which is reported, not filtered on yet"),
        "{e}"
    );
    // A linux_binprm: the path of its file, a string for the string operators.
    let h = compile_kp("security_bprm_check\n    syscall: false\n    args:\n    - index: 0\n      type: linux_binprm\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Postfix\n        values: [\"/busybox\"]\n").expect("compiles");
    assert_eq!(h.config.kprobe.struct_kind, KPROBE_ARG_BPRM);
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
    );
    assert_eq!(h.args[0].out, ArgOut::LinuxBinprm);
    assert_eq!(h.config.selectors[0].filters[0].op, OP_POSTFIX);
    // A packet: its headers in the socket layout, with the socket operators.
    let h = compile_kp("ip_output\n    syscall: false\n    args:\n    - index: 2\n      type: skb\n    selectors:\n    - matchArgs:\n      - index: 2\n        operator: DAddr\n        values: [10.0.0.0/8]\n").expect("compiles");
    assert_eq!(
        (h.config.kprobe.struct_arg, h.config.kprobe.struct_kind),
        (2, KPROBE_ARG_SKB)
    );
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_SOCK, KPROBE_PATH_AT)
    );
    assert_eq!(h.args[0].out, ArgOut::Skb);
    assert_eq!(h.config.selectors[0].filters[0].op, OP_DADDR);
    // A path takes the whole struct region: no second struct beside it.
    let e = compile_kp("security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n    - index: 1\n      type: cred\n").unwrap_err();
    assert!(e.contains("this is one too many"), "{e}");
}

/// Struct arguments of the corpus's policies: two sockets in the two halves of the
/// region, fields at offsets from this kernel's BTF, an iov_iter beside a path.
#[test]
fn struct_arguments_read_field_by_field() {
    if !std::path::Path::new(crate::kernel::btf::VMLINUX_BTF).exists() {
        eprintln!("SKIPPED struct_arguments_read_field_by_field: no kernel BTF here");
        return;
    }
    let root = tracefs();
    let compile_kp = |hook: &str| {
        compile_kprobe(root.path(), hook, KPROBES)
            .map(|hooks| hooks.into_iter().next().expect("one hook"))
    };
    // security_socket_connect(socket, sockaddr, addrlen): the socket in the first half,
    // the address in the second, both with the socket operators.
    let h = compile_kp("security_socket_connect\n    syscall: false\n    args:\n    - index: 0\n      type: socket\n    - index: 1\n      type: sockaddr\n    - index: 2\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Protocol\n        values: [IPPROTO_TCP]\n      - index: 1\n        operator: Family\n        values: [AF_INET]\n      - index: 1\n        operator: SPort\n        values: [\"80\"]\n").expect("compiles");
    let k = h.config.kprobe;
    assert_eq!(
        (k.struct_arg, k.struct_kind, k.struct2_arg, k.struct2_kind),
        (0, KPROBE_ARG_SOCKET, 1, KPROBE_ARG_SOCKADDR as u8)
    );
    assert_eq!(
        (h.config.args[0].offset, h.config.args[1].offset),
        (KPROBE_PATH_AT, KPROBE_STRUCT2_AT)
    );
    assert_eq!(
        (h.args[0].out, h.args[1].out),
        (ArgOut::Sock, ArgOut::Sockaddr)
    );
    assert_eq!(h.config.selectors[0].filters[2].op, OP_SPORT);
    // bpf_map: five fields read into the first half, reported as bytes.
    let h = compile_kp("security_bpf_map_create\n    syscall: false\n    args:\n    - index: 0\n      type: bpf_map\n").expect("compiles");
    assert_eq!(h.config.kprobe.struct_kind, KPROBE_ARG_FIELDS);
    let reads: Vec<_> = h.point.fields.iter().filter(|f| f.kind != 0).collect();
    assert_eq!(reads.len(), 5);
    assert_eq!(
        (
            h.config.args[0].kind,
            h.config.args[0].offset,
            h.config.args[0].size
        ),
        (ARG_BYTES, KPROBE_PATH_AT, 32)
    );
    assert_eq!(reads[4].dst, 16, "the name after four u32");
    assert_eq!(
        h.args[0].out,
        ArgOut::Struct(super::structs::StructType::BpfMap)
    );
    let e = compile_kp("security_bpf_map_create\n    syscall: false\n    args:\n    - index: 0\n      type: bpf_map\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"1\"]\n").unwrap_err();
    assert!(
        e.contains("is a `bpf_map`, which is reported, not filtered on yet"),
        "{e}"
    );
    // net_device: its name, a string the string operators filter.
    let h = compile_kp("dev_hard_start_xmit\n    syscall: false\n    args:\n    - index: 1\n      type: net_device\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: Equal\n        values: [lo]\n").expect("compiles");
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
    );
    assert_eq!(h.point.fields[0].arg, 1);
    assert_eq!(h.point.fields[0].kind, tracer_common::policy::FIELD_STR);
    // A socket and a struct of fields: the fields take the first half, the socket moves.
    let h = compile_kp("some_function\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    - index: 1\n      type: user_namespace\n").expect("compiles");
    assert_eq!(
        (h.config.kprobe.struct_kind, h.config.kprobe.struct2_kind),
        (KPROBE_ARG_FIELDS, KPROBE_ARG_SOCK as u8)
    );
    assert_eq!(
        (h.config.args[0].offset, h.config.args[1].offset),
        (KPROBE_STRUCT2_AT, KPROBE_PATH_AT)
    );
    // tty_write(kiocb, iov_iter): the file's path, and the user buffer as bytes, its
    // address over the argument's register and its size at KPROBE_IOV_LEN_AT.
    let h = compile_kp("tty_write\n    syscall: false\n    args:\n    - index: 0\n      type: kiocb\n    - index: 1\n      type: iov_iter\n      maxData: true\n").expect("compiles");
    let k = h.config.kprobe;
    assert_eq!(
        (k.struct_kind, k.struct2_kind, k.struct2_arg),
        (KPROBE_ARG_KIOCB, KPROBE_ARG_IOV_ITER as u8, 1)
    );
    assert_ne!(
        k.iter_ubuf, k.iter_iovec,
        "from the kernel's enum iter_type"
    );
    assert_eq!(
        (
            h.config.args[1].kind,
            h.config.args[1].offset,
            h.config.args[1].len_at
        ),
        (ARG_USER_BYTES, 24, KPROBE_IOV_LEN_AT as u8)
    );
    assert_eq!(
        (h.args[0].out, h.args[1].out),
        (ArgOut::File, ArgOut::Bytes)
    );
    // cap_capable(cred, user_namespace, cap, opts): the number, filtered as an integer.
    let h = compile_kp("cap_capable\n    syscall: false\n    args:\n    - index: 1\n      type: user_namespace\n    - index: 2\n      type: capability\n    selectors:\n    - matchArgs:\n      - index: 2\n        operator: Equal\n        values: [\"21\"]\n").expect("compiles");
    assert_eq!(h.args[1].out, ArgOut::Capability);
    assert_eq!(
        (h.config.args[1].kind, h.config.args[1].offset),
        (ARG_INT, 32)
    );
    // A path and a struct of fields do not share the region.
    let e = compile_kp("some_function\n    syscall: false\n    args:\n    - index: 0\n      type: dentry\n    - index: 1\n      type: module\n").unwrap_err();
    assert!(e.contains("this is one too many"), "{e}");
    // resolve: four pointers from a linux_binprm to the grandparent's comm, in place.
    let h = compile_kp("security_bprm_check\n    syscall: false\n    args:\n    - index: 0\n      type: string\n      resolve: mm.owner.real_parent.real_parent.comm\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [bash]\n").expect("compiles");
    let f = h.point.fields[0];
    assert_eq!(
        (f.arg, f.kind, f.derefs, f.size),
        (0, tracer_common::policy::FIELD_STR, 4, 16)
    );
    assert!(f.chain.iter().all(|c| *c != 0) && f.at != 0, "{f:?}");
    assert_eq!(f.chain[2], f.chain[3], "real_parent twice");
    assert_eq!(
        (h.config.args[0].kind, h.config.args[0].offset),
        (ARG_CHAR_ARRAY, KPROBE_PATH_AT)
    );
    assert_eq!(h.args[0].out, ArgOut::String);
    // Through a pointer to a pointer (`struct cred **new`), and a second resolve after
    // the first's bytes.
    let h = compile_kp("security_inode_copy_up\n    syscall: false\n    args:\n    - index: 1\n      type: int\n      resolve: user.uid.val\n    - index: 1\n      type: uint32\n      resolve: euid.val\n").expect("compiles");
    let (a, b) = (h.point.fields[0], h.point.fields[1]);
    assert_eq!((a.derefs, a.chain[0], a.size), (2, 0, 4), "{a:?}");
    assert_eq!((b.derefs, b.chain[0], b.dst), (1, 0, 8), "{b:?}");
    assert_eq!(
        (
            h.config.args[0].kind,
            h.config.args[1].kind,
            h.config.args[1].offset
        ),
        (ARG_INT, ARG_UINT, KPROBE_PATH_AT + 8)
    );
    // Named errors: a member that is not there, a type that does not fit, a syscall.
    let e = compile_kp("security_bprm_check\n    syscall: false\n    args:\n    - index: 0\n      type: string\n      resolve: mm.no_such\n").unwrap_err();
    assert!(e.contains("has no member `no_such`"), "{e}");
    let e = compile_kp("security_bprm_check\n    syscall: false\n    args:\n    - index: 0\n      type: int\n      resolve: filename\n").unwrap_err();
    assert!(
        e.contains("ends on a string, which is not read as `int`"),
        "{e}"
    );
    let e = compile_kp("sys_openat\n    syscall: true\n    args:\n    - index: 1\n      type: int\n      resolve: x\n").unwrap_err();
    assert!(e.contains("not yet of a syscall's"), "{e}");
}

#[test]
fn return_probes_compile_to_two_halves() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: sys_getpgid
          syscall: true
          return: true
          args:
          - index: 0
            type: int
          returnArg:
            index: 0
            type: int
          selectors:
          - matchReturnArgs:
            - index: 0
              operator: Equal
              values: [-3]
        ",
    );
    for kprobes in [true, false] {
        // Raw routing everywhere: never for the halves, which find each other by hook
        // point.
        let kernel = Kernel {
            kprobes,
            raw_syscalls: true,
            raw_numbered: true,
            ..TRACEPOINTS
        };
        let c = compile_on(root.path(), kernel, &text).expect("compiles");
        assert_eq!(c.hooks.len(), 2);
        let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
        assert_ne!(entry.point.flags & HP_SAVE_ENTRY, 0);
        assert_eq!(entry.config.nsel, 0, "the entry only keeps its record");
        assert_ne!(ret.point.flags & HP_RETURN, 0);
        assert_eq!(ret.point.flags & HP_SAVE_ENTRY, 0);
        assert_eq!(ret.pair, Some(0));
        assert_eq!(ret.kprobe.as_ref().map(|k| k.ret), Some(true));
        assert_eq!(entry.kprobe.as_ref().map(|k| k.ret), Some(false));
        // The argument, then the return value at RETURN_AT, which the filter reads.
        assert_eq!(ret.config.nargs, 2);
        assert_eq!(
            (ret.config.args[1].offset, ret.config.args[1].kind),
            (RETURN_AT, ARG_INT)
        );
        assert_eq!(ret.config.selectors[0].filters[0].arg, 1);
        assert_eq!(ret.config.selectors[0].filters[0].values[0] as i64, -3);
        assert_eq!(ret.kprobe.as_ref().map(|k| k.returns_value), Some(true));
        // Without kprobes, on the syscall's enter and exit tracepoints.
        let events = (entry.event.as_str(), ret.event.as_str());
        let wrapper = format!("{SYSCALL_WRAPPER_PREFIX}getpgid");
        if kprobes {
            assert_eq!(
                (&entry.point.attach, &ret.point.attach),
                (
                    &function(&wrapper, Probe::Kprobe, false),
                    &function(&wrapper, Probe::Kprobe, true)
                )
            );
            assert_eq!(
                ret.runs_on(),
                format!("the return of kprobe {wrapper} runs on a kretprobe")
            );
        } else {
            assert_eq!(events, ("sys_enter_getpgid", "sys_exit_getpgid"));
            assert_eq!(
                (&entry.point.attach, &ret.point.attach),
                (
                    &tracepoint("syscalls", "sys_enter_getpgid"),
                    &tracepoint("syscalls", "sys_exit_getpgid")
                )
            );
        }
    }
}

#[test]
fn inet_csk_accept_returns_the_accepted_socket() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: inet_csk_accept
          syscall: false
          return: true
          args:
          - index: 0
            type: sock
          returnArg:
            index: 0
            type: sock
        ",
    );
    let c = compile_on(root.path(), KPROBES, &text).expect("compiles where kprobes work");
    let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
    assert_ne!(entry.point.flags & HP_SAVE_ENTRY, 0);
    let flags = ret.point.flags;
    assert_ne!(flags & HP_RETURN, 0);
    assert_ne!(flags & HP_SOCK_RETURN, 0);
    assert_eq!(
        ret.config.flags & HOOK_SOCK_TRIGGER,
        0,
        "on a kprobe, no transitions"
    );
    assert_eq!(
        (ret.config.args[1].kind, ret.config.args[1].offset),
        (ARG_SOCK, SOCK_RETURN_AT)
    );
    assert_eq!(ret.args[1].out, ArgOut::Sock);
    // Without kprobes: on the accept syscalls, each an entry that keeps the listening
    // descriptor and a return that reads both sockets from their descriptors.
    let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles on the accept syscalls");
    let events: Vec<(&str, &str)> = c
        .hooks
        .iter()
        .map(|h| (h.subsystem.as_str(), h.event.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("syscalls", "sys_enter_accept4"),
            ("syscalls", "sys_exit_accept4"),
            ("syscalls", "sys_enter_accept"),
            ("syscalls", "sys_exit_accept"),
        ]
    );
    assert_eq!((c.hooks[1].pair, c.hooks[3].pair), (Some(0), Some(2)));
    let ret = &c.hooks[1];
    assert_eq!(
        ret.config.flags & (HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK),
        HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK
    );
    assert_eq!(ret.point.flags & HP_SOCK_RETURN, 0);
    assert_eq!(ret.config.kprobe.sock_types, 1 << 1, "SOCK_STREAM only");
    assert_eq!(
        [ret.config.args[0].offset, ret.config.args[1].offset],
        [SOCK_ARG_AT, SOCK_RETURN_AT]
    );
    assert_eq!(ret.config.sock.daddr_v6, 56, "the tracepoint's layout");
    assert_eq!(
        ret.kprobe
            .as_ref()
            .map(|k| (k.ret, k.returns_value, k.from_fd)),
        Some((true, true, true))
    );
    // The return value of inet_csk_accept is a socket: on the syscalls, an fd.
    let text = text.replace("    type: sock\n", "    type: int\n");
    let e = compile_on(root.path(), TRACEPOINTS, &text).unwrap_err();
    assert!(
        e.contains("inet_csk_accept takes its argument 0 as `type: sock`"),
        "{e}"
    );
}

#[test]
fn sockets_are_tracked_from_a_return_and_untracked_by_an_action() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: sk_alloc
          syscall: false
          return: true
          args:
          - index: 1
            type: int
          returnArg:
            index: 0
            type: sock
          returnArgAction: TrackSock
          selectors:
          - matchArgs:
            - index: 1
              operator: Equal
              values: ['2', '10']
            matchActions:
            - action: NoPost
        - call: __sk_free
          syscall: false
          args:
          - index: 0
            type: sock
          selectors:
          - matchActions:
            - action: UntrackSock
              argSock: 0
        - call: tcp_close
          syscall: false
          args:
          - index: 0
            type: sock
        ",
    );
    let c = compile_on(root.path(), KPROBES, &text).expect("compiles where kprobes work");
    let ret = c
        .hooks
        .iter()
        .find(|h| h.event == "sk_alloc" && h.point.flags & HP_RETURN != 0)
        .expect("the return half");
    assert_ne!(
        ret.point.flags & HP_SOCK_RETURN,
        0,
        "the returned socket is read"
    );
    assert_eq!(
        (ret.config.args[1].kind, ret.config.args[1].offset),
        (ARG_SOCK, SOCK_RETURN_AT)
    );
    assert_ne!(ret.config.sock.skaddr, 0, "the generic socket layout");
    assert_eq!(
        ret.config.selectors[0].sock_action,
        SOCK_TRACK | SOCK_RETURN | 1,
        "the returned socket, argument 1, tracked when the selector matches"
    );
    assert_ne!(ret.config.selectors[0].actions & ACTION_NOPOST, 0);
    let free = c
        .hooks
        .iter()
        .find(|h| h.event == "__sk_free")
        .expect("__sk_free");
    assert_eq!(free.config.selectors[0].sock_action, SOCK_UNTRACK);
    assert_ne!(
        free.config.selectors[0].actions & ACTION_POST,
        0,
        "posts, as Tetragon"
    );
    for h in [ret, free] {
        assert_ne!(
            h.config.flags & HOOK_SOCK_OWNER,
            0,
            "{}: a socket argument",
            h.event
        );
    }
    let close = c
        .hooks
        .iter()
        .find(|h| h.kprobe.as_ref().is_some_and(|k| k.call == "tcp_close"))
        .expect("tcp_close");
    assert_eq!(close.config.selectors[0].sock_action, 0);
    assert_ne!(
        close.config.flags & HOOK_SOCK_OWNER,
        0,
        "its events are the owner's"
    );
}

#[test]
fn udp_connects_are_read_at_the_return() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: inet_dgram_connect
          syscall: false
          args:
          - index: 0
            type: socket
          selectors:
          - matchArgs:
            - index: 0
              operator: DPort
              values: [\"53\"]
        ",
    );
    for kernel in [KPROBES, TRACEPOINTS] {
        let kprobes = kernel.kprobes;
        let c = compile_on(root.path(), kernel, &text).expect("compiles");
        assert_eq!(
            c.hooks.len(),
            2,
            "an entry and a return, without `return: true`"
        );
        let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
        let expected = if kprobes {
            [
                ("kprobe", "inet_dgram_connect"),
                ("kprobe", "inet_dgram_connect"),
            ]
        } else {
            [
                ("syscalls", "sys_enter_connect"),
                ("syscalls", "sys_exit_connect"),
            ]
        };
        assert_eq!(
            [
                (entry.subsystem.as_str(), entry.event.as_str()),
                (ret.subsystem.as_str(), ret.event.as_str())
            ],
            expected
        );
        assert_ne!(entry.point.flags & HP_SAVE_ENTRY, 0);
        assert_eq!(entry.point.flags & HP_KPROBE_GENERIC != 0, kprobes);
        let fd = if kprobes { 0 } else { HOOK_FD };
        assert_eq!(
            ret.config.flags & (HOOK_ENTRY_SOCK | HOOK_FD | HOOK_RET_FD_SOCK),
            HOOK_ENTRY_SOCK | fd
        );
        assert_eq!(ret.config.kprobe.sock_types, (1 << 2) | (1 << 3));
        assert_eq!(
            (ret.config.args[0].kind, ret.config.args[0].offset),
            (ARG_SOCK, SOCK_ARG_AT)
        );
        // The return value follows the socket; the DPort filter is on argument 0.
        assert_eq!(ret.config.nargs, 2);
        assert_eq!(ret.args[1].out, ArgOut::Int);
        assert_eq!(ret.config.selectors[0].filters[0].op, OP_DPORT);
        assert_eq!(ret.config.selectors[0].filters[0].values[0], 53);
        assert_eq!(
            ret.kprobe
                .as_ref()
                .map(|k| (k.ret, k.returns_value, k.from_fd)),
            Some((true, true, !kprobes))
        );
    }
    // Its argument is a `struct socket *`: `type: socket`.
    let text = text.replace("type: socket", "type: sock");
    let e = compile_on(root.path(), KPROBES, &text).unwrap_err();
    assert!(
        e.contains("inet_dgram_connect takes its argument 0 as `type: socket`"),
        "{e}"
    );
}

/// A hook on every syscall (`raw_syscalls`) runs on the raw tracepoint where the kernel's
/// syscall registers can be read; a hook on one syscall only with
/// `--syscall-raw-tracepoints` too (its own tracepoint costs the others less).
#[test]
fn which_syscall_hooks_run_on_the_raw_tracepoints() {
    let root = tracefs();
    let one = "subsystem: syscalls\n    event: sys_enter_getpgid";
    let every = "subsystem: raw_syscalls\n    event: sys_enter";
    // (raw syscalls, --syscall-raw-tracepoints) -> (one syscall, every one)
    for (raw_syscalls, raw_numbered, expected) in [
        (true, false, (false, true)),
        (true, true, (true, true)),
        (false, true, (false, false)),
        (false, false, (false, false)),
    ] {
        let kernel = Kernel {
            raw_syscalls,
            raw_numbered,
            ..TRACEPOINTS
        };
        let routed = |hook: &str| {
            let h = compile_one(root.path(), hook, "    - index: 4\n", kernel).expect("compiles");
            matches!(h.point.attach, Attach::RawSyscall { .. })
        };
        assert_eq!(
            (routed(one), routed(every)),
            expected,
            "{raw_syscalls} {raw_numbered}"
        );
    }
}

#[test]
fn syscall_hooks_route_to_the_raw_tracepoints() {
    let root = tracefs();
    let attach =
        |hook: &str, args: &str| compile_one(root.path(), hook, args, FULL).map(|h| h.point.attach);
    assert_eq!(
        attach(
            "subsystem: syscalls\n    event: sys_enter_getpgid",
            "    - index: 5\n    - index: 3\n    - index: 4\n"
        ),
        Ok(Attach::RawSyscall {
            dir: SYSCALL_ENTER,
            nr: Some(getpgid())
        })
    );
    assert_eq!(
        attach(
            "subsystem: syscalls\n    event: sys_exit_getpgid",
            "    - index: 5\n"
        ),
        Ok(Attach::RawSyscall {
            dir: SYSCALL_EXIT,
            nr: Some(getpgid())
        })
    );
    assert_eq!(
        attach(
            "subsystem: raw_syscalls\n    event: sys_enter",
            "    - index: 4\n"
        ),
        Ok(Attach::RawSyscall {
            dir: SYSCALL_ENTER,
            nr: None
        })
    );
    assert_eq!(
        attach(
            "subsystem: raw_syscalls\n    event: sys_exit",
            "    - index: 5\n"
        ),
        Ok(Attach::RawSyscall {
            dir: SYSCALL_EXIT,
            nr: None
        })
    );
    // Not a syscall of this architecture: its own tracepoint.
    assert_eq!(
        attach(
            "subsystem: syscalls\n    event: sys_enter_nosuchcall",
            "    - index: 5\n"
        ),
        Ok(tracepoint("syscalls", "sys_enter_nosuchcall"))
    );
    // Not a syscall tracepoint.
    assert_eq!(
        attach(
            "subsystem: sched\n    event: sched_process_fork",
            "    - index: 5\n"
        ),
        Ok(tracepoint("sched", "sched_process_fork"))
    );
}

#[test]
fn common_fields_other_than_the_pid_are_refused() {
    let root = tracefs();
    let hook = "subsystem: syscalls\n    event: sys_enter_getpgid";
    let h = compile_one(root.path(), hook, "    - index: 3\n", TRACEPOINTS).unwrap();
    assert_eq!(h.config.args[0].kind, ARG_CURRENT_PID);
    let e = compile_one(root.path(), hook, "    - index: 0\n", TRACEPOINTS).unwrap_err();
    assert_eq!(
        e,
        "policy t: syscalls/sys_enter_getpgid: args[0]: `common_type` cannot be read: the kernel overwrites a record's common fields before a BPF program sees it (common_pid can be read; the process is in every event)"
    );
}

// --- Selectors, one matcher at a time (`compile/selectors.rs`). ---

/// A policy on `sys_enter_openat` reading `dfd` (an integer) and `filename` (a string in
/// user memory), with `selectors` (written as under `selectors:`).
fn openat(selectors: &str) -> String {
    let selectors: String = dedent(selectors)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    policy(&format!(
        "tracepoints:\n- subsystem: syscalls\n  event: sys_enter_openat\n  args:\n  - index: 5\n    type: int\n  - index: 6\n    type: string\n  selectors:\n{selectors}"
    ))
}

#[test]
fn match_pids_lower_to_a_pid_filter() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchPIDs:
              - operator: In
                values: [1, 2, 300]
            - matchPIDs:
              - operator: NotIn
                values: [7]
            ",
        ),
    );
    let p = h.config.selectors[0].pids;
    assert_eq!((p.op, p.n, p.follow, p.namespace), (PIDS_IN, 3, 0, 0));
    assert_eq!(p.values[..3], [1, 2, 300]);
    let p = h.config.selectors[1].pids;
    assert_eq!((p.op, p.n, p.values[0]), (PIDS_NOT_IN, 1, 7));
    assert_eq!(
        h.process, HP_VERDICT,
        "a process filter, on nothing that changes"
    );
}

/// `followForks`: the listed processes' descendants count as listed, through a `FOLLOW`
/// bit (the filter holds 1 + the bit) the store sets for them.
#[test]
fn follow_forks_takes_a_follow_bit() {
    let root = tracefs();
    let text = openat(
        "
        - matchPIDs:
          - operator: In
            values: [1, 2]
            followForks: true
            isNamespacePID: true
        ",
    );
    // Bit 0 is some other policy's.
    let mut ids = Ids {
        next_filter: 0,
        follow_used: 1,
    };
    let c = compile(
        &spec_of(&text),
        0,
        &mut ids,
        &Facts::new(TRACEPOINTS, root.path()),
    )
    .expect("compiles");
    let p = c.hooks[0].config.selectors[0].pids;
    assert_eq!((p.follow, p.namespace), (2, 1));
    assert_eq!(
        c.follow,
        [Follow::Pids {
            bit: 1,
            pids: vec![1, 2],
            namespace: true,
        }]
    );
    assert_eq!(ids.follow_used, 0b11);
}

#[test]
fn follow_bits_run_out() {
    let root = tracefs();
    let text = openat(
        "
        - matchPIDs:
          - operator: In
            values: [1]
            followForks: true
        ",
    );
    let mut ids = Ids {
        next_filter: 0,
        follow_used: u64::MAX,
    };
    let e = compile(
        &spec_of(&text),
        0,
        &mut ids,
        &Facts::new(TRACEPOINTS, root.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("all 64 followForks/followChildren filters are in use"),
        "{e}"
    );
}

#[test]
fn match_binaries_operators_lower_to_their_maps_and_lookup_keys() {
    let root = tracefs();
    for (op, code, map, flag) in [
        ("In", BIN_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
        ("NotIn", BIN_NOT_IN, StrMap::Equal, HOOK_BINARY_EQUAL),
        ("Prefix", BIN_PREFIX, StrMap::Prefix, HOOK_BINARY_PREFIX),
        (
            "NotPrefix",
            BIN_NOT_PREFIX,
            StrMap::Prefix,
            HOOK_BINARY_PREFIX,
        ),
        ("Postfix", BIN_POSTFIX, StrMap::Postfix, HOOK_BINARY_POSTFIX),
        (
            "NotPostfix",
            BIN_NOT_POSTFIX,
            StrMap::Postfix,
            HOOK_BINARY_POSTFIX,
        ),
    ] {
        let text = openat(&format!(
            "
            - matchBinaries:
              - operator: {op}
                values: [/usr/bin/curl, /bin/sh]
            "
        ));
        let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
        let h = &c.hooks[0];
        let b = h.config.selectors[0].binary;
        assert_eq!((b.op, b.id, b.follow), (code, 1, 0), "{op}");
        assert_eq!(
            h.config.flags & (HOOK_BINARY_EQUAL | HOOK_BINARY_PREFIX | HOOK_BINARY_POSTFIX),
            flag,
            "{op}: the lookup key the binary needs"
        );
        // Postfix values reversed: the map is an LPM trie on the path's end.
        let value = |v: &str| {
            let mut bytes = v.as_bytes().to_vec();
            if map == StrMap::Postfix {
                bytes.reverse();
            }
            StrEntry {
                map,
                filter_id: 1,
                value: bytes,
            }
        };
        assert_eq!(
            c.strings,
            [value("/usr/bin/curl"), value("/bin/sh")],
            "{op}"
        );
        assert_eq!(h.process, HP_VERDICT, "{op}");
        assert!(c.follow.is_empty());
    }
}

/// `followChildren`: a process whose binary matches, and its descendants, get a
/// `FOLLOW` bit at exec (`BIN_FOLLOW`), by the filter's strings.
#[test]
fn follow_children_takes_a_follow_bit_and_its_filter() {
    let root = tracefs();
    let text = openat(
        "
        - matchBinaries:
          - operator: Prefix
            values: [/usr/]
            followChildren: true
        ",
    );
    let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
    let b = c.hooks[0].config.selectors[0].binary;
    assert_eq!((b.op, b.id, b.follow), (BIN_PREFIX, 1, 1));
    assert_eq!(
        c.follow,
        [Follow::Binary(BinFollow {
            op: BIN_PREFIX,
            bit: 0,
            id: 1,
            ..Default::default()
        })]
    );
    assert_eq!(
        c.strings,
        [StrEntry {
            map: StrMap::Prefix,
            filter_id: 1,
            value: b"/usr/".to_vec(),
        }]
    );
}

#[test]
fn follow_children_is_refused_with_the_not_operators() {
    for op in ["NotIn", "NotPrefix", "NotPostfix"] {
        let text = openat(&format!(
            "
            - matchBinaries:
              - operator: {op}
                values: [/usr/bin/curl]
                followChildren: true
            "
        ));
        let errors = parse::text_documents("t.yaml", &text).expect_err("refused");
        assert!(
            errors.iter().any(|e| e.message.contains(&format!(
                "followChildren goes with In, Prefix or Postfix, not `{op}`"
            ))),
            "{op}: {errors:?}"
        );
    }
}

/// Each namespace's filter, and what its verdict is read from: the user namespace from
/// the credentials, the pid namespace from the pid (fixed for the process's life), the
/// others from `nsproxy`.
#[test]
fn match_namespaces_lower_to_namespace_filters_and_their_dependencies() {
    let root = tracefs();
    for (name, code, dep) in [
        ("Uts", NS_UTS, HP_DEP_NS),
        ("Ipc", NS_IPC, HP_DEP_NS),
        ("Mnt", NS_MNT, HP_DEP_NS),
        ("Pid", NS_PID, 0),
        ("PidForChildren", NS_PID_FOR_CHILDREN, HP_DEP_NS),
        ("Net", NS_NET, HP_DEP_NS),
        ("Time", NS_TIME, HP_DEP_NS),
        ("TimeForChildren", NS_TIME_FOR_CHILDREN, HP_DEP_NS),
        ("Cgroup", NS_CGROUP, HP_DEP_NS),
        ("User", NS_USER, HP_DEP_CRED),
    ] {
        let text = openat(&format!(
            "
            - matchNamespaces:
              - namespace: {name}
                operator: NotIn
                values: [\"4026531838\", \"4026532200\"]
            "
        ));
        let h = only_hook(root.path(), &text);
        let n = h.config.selectors[0].namespaces[0];
        assert_eq!((n.ns, n.op, n.n), (code, PIDS_NOT_IN, 2), "{name}");
        assert_eq!(n.values[..2], [4026531838, 4026532200], "{name}");
        assert_eq!(h.process, HP_VERDICT | dep, "{name}");
    }
    // Several filters: their dependencies together.
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchNamespaces:
              - namespace: Pid
                operator: In
                values: [\"1\"]
              - namespace: User
                operator: In
                values: [\"2\"]
              - namespace: Net
                operator: In
                values: [\"3\"]
            ",
        ),
    );
    let ns = h.config.selectors[0].namespaces;
    assert_eq!(
        ns.map(|n| (n.ns, n.op, n.values[0])),
        [
            (NS_PID, PIDS_IN, 1),
            (NS_USER, PIDS_IN, 2),
            (NS_NET, PIDS_IN, 3),
            (0, 0, 0)
        ]
    );
    assert_eq!(h.process, HP_VERDICT | HP_DEP_CRED | HP_DEP_NS);
}

/// `host_ns` is the host's namespace of the filter's kind: the initial namespaces' fixed
/// inode numbers (`PROC_*_INIT_INO`).
#[test]
fn host_ns_is_the_host_namespace_inode() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchNamespaces:
              - namespace: Uts
                operator: In
                values: [host_ns, \"42\"]
              - namespace: Pid
                operator: NotIn
                values: [host_ns]
              - namespace: User
                operator: In
                values: [host_ns]
            ",
        ),
    );
    let ns = h.config.selectors[0].namespaces;
    assert_eq!((ns[0].n, &ns[0].values[..2]), (2, &[0xEFFF_FFFE, 42][..]));
    assert_eq!((ns[1].op, ns[1].values[0]), (PIDS_NOT_IN, 0xEFFF_FFFC));
    assert_eq!(ns[2].values[0], 0xEFFF_FFFD);
}

#[test]
fn match_capabilities_lower_to_a_set_and_a_mask() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchCapabilities:
              - operator: In
                values: [CAP_CHOWN, CAP_SYS_ADMIN]
              - type: Permitted
                operator: NotIn
                values: [CAP_NET_RAW]
            - matchCapabilities:
              - type: Inheritable
                operator: In
                values: [CAP_BPF]
            ",
        ),
    );
    let caps = h.config.selectors[0].caps;
    // The type defaults to Effective; one bit per capability, CAP_CHOWN bit 0.
    assert_eq!(
        (caps[0].set, caps[0].op, caps[0].mask, caps[0].host_userns),
        (CAPS_EFFECTIVE, PIDS_IN, (1 << 0) | (1 << 21), 0)
    );
    assert_eq!(
        (caps[1].set, caps[1].op, caps[1].mask),
        (CAPS_PERMITTED, PIDS_NOT_IN, 1 << 13)
    );
    let caps = h.config.selectors[1].caps;
    assert_eq!((caps[0].set, caps[0].mask), (CAPS_INHERITABLE, 1 << 39));
    assert_eq!(
        h.process,
        HP_VERDICT | HP_DEP_CRED,
        "read from the credentials"
    );
}

/// `matchCapabilityChanges` lowers as `matchCapabilities` does, marked as a change (on the
/// set's difference from the process's at exec), and counts with it against the bound.
#[test]
fn match_capability_changes_lower_to_a_change_filter() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchCapabilities:
              - operator: In
                values: [CAP_SYS_ADMIN]
              matchCapabilityChanges:
              - type: Permitted
                operator: NotIn
                values: [CAP_NET_RAW, CAP_CHOWN]
            ",
        ),
    );
    let caps = h.config.selectors[0].caps;
    assert_eq!(
        (caps[0].set, caps[0].op, caps[0].change, caps[0].mask),
        (CAPS_EFFECTIVE, PIDS_IN, 0, 1 << 21)
    );
    assert_eq!(
        (caps[1].set, caps[1].op, caps[1].change, caps[1].mask),
        (CAPS_PERMITTED, PIDS_NOT_IN, 1, (1 << 13) | 1)
    );
    assert_eq!(h.process, HP_VERDICT | HP_DEP_CRED);
    let over = openat(
        "
        - matchCapabilities:
          - operator: In
            values: [CAP_SYS_ADMIN]
          - operator: In
            values: [CAP_BPF]
          matchCapabilityChanges:
          - operator: In
            values: [CAP_NET_RAW]
        ",
    );
    let e = compile_on(root.path(), TRACEPOINTS, &over).expect_err("three filters");
    assert!(
        e.contains("at most 2 matchCapabilities and matchCapabilityChanges filters per selector"),
        "{e}"
    );
}

/// `NotifyEnforcer` lowers to its bit with `argError` and `argSig`; the policy's
/// `enforcers` (a list of syscalls, a syscall by name) go on the enforcer program where a
/// kprobe can override a return, and elsewhere are each named as not running, with why.
#[test]
fn notify_enforcer_and_its_enforcers() {
    let root = tracefs();
    let text = policy(
        "
        lists:
        - name: dups
          type: syscalls
          values: [sys_dup, __ia32_sys_dup]
        enforcers:
        - calls: [list:dups, sys_dup2]
        tracepoints:
        - subsystem: syscalls
          event: sys_enter_openat
          args:
          - index: 5
            type: int
          selectors:
          - matchActions:
            - action: NotifyEnforcer
              argError: -1
              argSig: 9
        ",
    );
    let c = compile_on(root.path(), FULL, &text).expect("compiles");
    let w = SYSCALL_WRAPPER_PREFIX;
    assert_eq!(
        c.enforcers,
        [
            format!("{w}dup"),
            "__ia32_sys_dup".into(),
            format!("{w}dup2")
        ]
    );
    let sel = c.hooks[0].config.selectors[0];
    assert_eq!(sel.actions, ACTION_NOTIFY_ENFORCER | ACTION_POST);
    assert_eq!((sel.override_error, sel.signal), (-1, 9));
    let e = compile_on(root.path(), TRACEPOINTS, &text).expect_err("no kprobe override");
    assert!(
        e.starts_with(&format!(
            "enforcer {w}dup: {}",
            crate::kernel::features::NO_KPROBE_OVERRIDE
        )),
        "{e}"
    );
}

/// `Set` writes a USDT probe point's argument in the process's memory: elsewhere it is
/// refused, naming the hook.
#[test]
fn set_goes_on_usdt_probe_points_only() {
    let root = tracefs();
    let text = openat(
        "
        - matchActions:
          - action: Set
            argIndex: 0
            argValue: 32
        ",
    );
    let e = compile_on(root.path(), TRACEPOINTS, &text).expect_err("a tracepoint cannot Set");
    assert!(
        e.contains("selectors[0]: `Set` writes a USDT probe point's argument in the process's memory: it goes on `usdts`, not on tracepoint syscalls/sys_enter_openat"),
        "{e}"
    );
}

/// `isNamespaceCapability`: the filter holds only for a process in another user
/// namespace than the host's, whose inode the filter carries.
#[test]
fn is_namespace_capability_names_the_host_user_namespace() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchCapabilities:
              - operator: In
                values: [CAP_SYS_ADMIN]
                isNamespaceCapability: true
            ",
        ),
    );
    assert_eq!(h.config.selectors[0].caps[0].host_userns, 0xEFFF_FFFD);
}

#[test]
fn integer_filters_lower_their_operator_and_values() {
    let root = tracefs();
    for (op, code, values, expected) in [
        ("Equal", OP_EQUAL, "[1, 0x10]", vec![1, 16]),
        ("NotEqual", OP_NOT_EQUAL, "[-100]", vec![-100i64 as u64]),
        ("GT", OP_GT, "[3]", vec![3]),
        ("GreaterThan", OP_GT, "[3]", vec![3]),
        ("LT", OP_LT, "[5]", vec![5]),
        ("LessThan", OP_LT, "[5]", vec![5]),
        ("Mask", OP_MASK, "[0x241]", vec![0x241]),
    ] {
        let text = openat(&format!(
            "
            - matchArgs:
              - index: 5
                operator: {op}
                values: {values}
            "
        ));
        let h = only_hook(root.path(), &text);
        let s = h.config.selectors[0];
        assert_eq!(s.nfilters, 1, "{op}");
        let f = s.filters[0];
        assert_eq!((f.arg, f.op, f.negate, f.id), (0, code, 0, 0), "{op}");
        assert_eq!(f.values[..f.nvals as usize], expected, "{op}");
        assert_eq!(h.config.args[0].flags, 0, "{op}: an integer needs no key");
        assert_eq!(h.process, 0, "{op}: no process filter");
    }
    // The filter names the argument by its position among the hook's arguments.
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 6
                operator: Equal
                values: [/etc/passwd]
              - index: 5
                operator: Equal
                values: [\"-100\"]
            ",
        ),
    );
    let f = h.config.selectors[0].filters;
    assert_eq!((f[0].arg, f[1].arg), (1, 0));
    assert_eq!(h.config.selectors[0].nfilters, 2);
}

#[test]
fn integer_filters_take_at_most_four_values() {
    let root = tracefs();
    let text = openat(
        "
        - matchArgs:
          - index: 5
            operator: Equal
            values: [1, 2, 3, 4]
        ",
    );
    compile_on(root.path(), TRACEPOINTS, &text).expect("four fit");
    let e = compile_on(
        root.path(),
        TRACEPOINTS,
        &text.replace("[1, 2, 3, 4]", "[1, 2, 3, 4, 5]"),
    )
    .unwrap_err();
    assert!(
        e.contains("at most 4 integer values per filter (got 5)"),
        "{e}"
    );
}

/// A `list:NAME` value is its list's syscalls, by number (`sys_` or not).
#[test]
fn list_values_expand_to_syscall_numbers() {
    let root = tracefs();
    let body = |values: &str| {
        policy(&format!(
            "
            lists:
            - name: net
              type: syscalls
              values: {values}
            tracepoints:
            - subsystem: raw_syscalls
              event: sys_enter
              args:
              - index: 4
              selectors:
              - matchArgs:
                - index: 4
                  operator: Equal
                  values: [\"list:net\", \"0\"]
            "
        ))
    };
    let h = only_hook(root.path(), &body("[sys_connect, accept4]"));
    let f = h.config.selectors[0].filters[0];
    use syscalls::Sysno;
    assert_eq!(
        f.values[..f.nvals as usize],
        [Sysno::connect.id() as u64, Sysno::accept4.id() as u64, 0]
    );
    // Expanded, the values count against the integer limit.
    let e = compile_on(
        root.path(),
        TRACEPOINTS,
        &body("[connect, accept, accept4, bind]"),
    )
    .unwrap_err();
    assert!(
        e.contains("at most 4 integer values per filter (got 5)"),
        "{e}"
    );
}

/// A string filter's values go to the map of its operator (its negation shares it),
/// keyed by a filter id of their own; `Postfix` values reversed; the argument gets the
/// lookup key its filters need.
#[test]
fn string_filters_register_their_values_by_map() {
    let root = tracefs();
    for (op, code, map, needs) in [
        ("Equal", OP_EQUAL, StrMap::Equal, ARG_NEEDS_EQUAL),
        ("NotEqual", OP_NOT_EQUAL, StrMap::Equal, ARG_NEEDS_EQUAL),
        ("Prefix", OP_PREFIX, StrMap::Prefix, ARG_NEEDS_PREFIX),
        ("NotPrefix", OP_NOT_PREFIX, StrMap::Prefix, ARG_NEEDS_PREFIX),
        ("Postfix", OP_POSTFIX, StrMap::Postfix, ARG_NEEDS_POSTFIX),
        (
            "NotPostfix",
            OP_NOT_POSTFIX,
            StrMap::Postfix,
            ARG_NEEDS_POSTFIX,
        ),
    ] {
        let text = openat(&format!(
            "
            - matchArgs:
              - index: 6
                operator: {op}
                values: [/etc/passwd, /tmp]
            "
        ));
        let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
        let h = &c.hooks[0];
        let f = h.config.selectors[0].filters[0];
        assert_eq!((f.arg, f.op, f.id, f.nvals), (1, code, 1, 0), "{op}");
        let value = |v: &str| {
            let mut bytes = v.as_bytes().to_vec();
            if map == StrMap::Postfix {
                bytes.reverse();
            }
            StrEntry {
                map,
                filter_id: 1,
                value: bytes,
            }
        };
        assert_eq!(c.strings, [value("/etc/passwd"), value("/tmp")], "{op}");
        assert_eq!(h.config.args[1].flags, needs, "{op}");
        assert_eq!(h.config.args[0].flags, 0, "{op}: the other argument");
    }
    // Filters of several selectors on one argument: each its own id, the argument every
    // key they need.
    let c = compile_on(
        root.path(),
        TRACEPOINTS,
        &openat(
            "
            - matchArgs:
              - index: 6
                operator: Prefix
                values: [/etc/]
            - matchArgs:
              - index: 6
                operator: NotPostfix
                values: [.conf]
            ",
        ),
    )
    .expect("compiles");
    let h = &c.hooks[0];
    assert_eq!(
        (
            h.config.selectors[0].filters[0].id,
            h.config.selectors[1].filters[0].id
        ),
        (1, 2)
    );
    assert_eq!(h.config.args[1].flags, ARG_NEEDS_PREFIX | ARG_NEEDS_POSTFIX);
    assert_eq!(
        c.strings,
        [
            StrEntry {
                map: StrMap::Prefix,
                filter_id: 1,
                value: b"/etc/".to_vec(),
            },
            StrEntry {
                map: StrMap::Postfix,
                filter_id: 2,
                value: b"fnoc.".to_vec(),
            },
        ]
    );
}

/// A `Prefix` value longer than an LPM key holds goes to the hash map, whole, under its
/// filter id with `LONG_PREFIX`.
#[test]
fn prefix_values_longer_than_an_lpm_key_go_to_the_equal_map() {
    let root = tracefs();
    let long = format!("/{}", "a".repeat(249));
    let text = openat(&format!(
        "
        - matchArgs:
          - index: 6
            operator: Prefix
            values: [/short/, {long}]
        "
    ));
    let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
    assert_eq!(
        c.strings,
        [
            StrEntry {
                map: StrMap::Prefix,
                filter_id: 1,
                value: b"/short/".to_vec(),
            },
            StrEntry {
                map: StrMap::Equal,
                filter_id: 1 | LONG_PREFIX,
                value: long.into_bytes(),
            },
        ]
    );
    assert_eq!(c.hooks[0].config.selectors[0].filters[0].id, 1);
}

#[test]
fn socket_operators_lower_to_their_codes_and_addresses() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: tcp_connect
          args:
          - index: 0
            type: sock
          selectors:
          - matchArgs:
            - index: 0
              operator: DAddr
              values: [10.0.0.0/8, \"fd00::/8\"]
            - index: 0
              operator: NotDPort
              values: [\"53\", \"80\"]
            - index: 0
              operator: SPortPriv
            - index: 0
              operator: NotSAddr
              values: [192.168.1.1]
          - matchArgs:
            - index: 0
              operator: Protocol
              values: [IPPROTO_UDP]
            - index: 0
              operator: Family
              values: [AF_INET6]
            - index: 0
              operator: State
              values: [TCP_SYN_SENT]
            - index: 0
              operator: NotDPortPriv
        ",
    );
    let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
    let h = &c.hooks[0];
    let f = h.config.selectors[0].filters;
    assert_eq!(
        (f[0].op, f[0].negate, f[0].id, f[0].nvals),
        (OP_DADDR, 0, 1, 0)
    );
    assert_eq!((f[1].op, f[1].negate, f[1].nvals), (OP_DPORT, 1, 2));
    assert_eq!(f[1].values[..2], [53, 80]);
    assert_eq!((f[2].op, f[2].negate, f[2].nvals), (OP_SPORT_PRIV, 0, 0));
    assert_eq!((f[3].op, f[3].negate, f[3].id), (OP_SADDR, 1, 2));
    let f = h.config.selectors[1].filters;
    assert_eq!(
        f.map(|f| (f.op, f.negate, f.values[0])),
        [
            (OP_PROTOCOL, 0, 17),
            (OP_FAMILY, 0, 10),
            (OP_STATE, 0, 2),
            (OP_DPORT_PRIV, 1, 0)
        ]
    );
    // Addresses as IPv6, IPv4 mapped, with their prefix length over 128 bits.
    let mapped = |a: [u8; 4]| {
        let mut v = vec![0u8; 10];
        v.extend([0xff, 0xff]);
        v.extend(a);
        v
    };
    let mut fd00 = vec![0u8; 16];
    fd00[0] = 0xfd;
    assert_eq!(
        c.strings,
        [
            StrEntry {
                map: StrMap::Cidr(96 + 8),
                filter_id: 1,
                value: mapped([10, 0, 0, 0]),
            },
            StrEntry {
                map: StrMap::Cidr(8),
                filter_id: 1,
                value: fd00,
            },
            StrEntry {
                map: StrMap::Cidr(128),
                filter_id: 2,
                value: mapped([192, 168, 1, 1]),
            },
        ]
    );
    assert_eq!(h.config.args[0].flags, 0, "a socket needs no string key");
}

#[test]
fn actions_lower_to_their_bits() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 5
                operator: Equal
                values: [1]
            - matchActions:
              - action: NoPost
            - matchActions:
              - action: Sigkill
            - matchActions:
              - action: Signal
                argSig: 10
            - matchActions:
              - action: Post
              - action: Signal
                argSig: 19
            ",
        ),
    );
    let s = &h.config.selectors;
    assert_eq!(h.config.nsel, 5);
    assert_eq!(s[0].actions, ACTION_POST, "no actions: Post");
    assert_eq!(s[1].actions, ACTION_NOPOST);
    assert_eq!(s[2].actions, ACTION_SIGKILL | ACTION_POST);
    assert_eq!(
        (s[3].actions, s[3].signal),
        (ACTION_SIGNAL | ACTION_POST, 10)
    );
    assert_eq!(
        (s[4].actions, s[4].signal),
        (ACTION_SIGNAL | ACTION_POST, 19)
    );
    assert!(s.iter().all(|s| s.override_error == 0));
    // Override, with its error (on a kprobe; see function_hooks_prefer_fentry_...).
    let deny = compile_kprobe(
        root.path(),
        "security_file_open\n    args:\n    - index: 0\n      type: file\n    selectors:\n    - matchActions:\n      - action: Override\n        argError: -1\n",
        FULL,
    )
    .expect("compiles");
    let s = deny[0].config.selectors[0];
    assert_eq!(
        (s.actions, s.override_error),
        (ACTION_OVERRIDE | ACTION_POST, -1)
    );
}

/// `rateLimit`: at most one event per window (in ns), per thread, process or the whole
/// system.
#[test]
fn rate_limits_and_their_scope() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchActions:
              - action: Post
                rateLimit: 1m
            - matchActions:
              - action: Post
                rateLimit: \"30\"
                rateLimitScope: process
            - matchActions:
              - action: Post
                rateLimit: 2h
                rateLimitScope: global
            - matchActions:
              - action: Post
            ",
        ),
    );
    let s = &h.config.selectors;
    assert_eq!(
        [0, 1, 2, 3].map(|i| (s[i].rate_limit_ns, s[i].rate_scope)),
        [
            (60_000_000_000, RATE_THREAD),
            (30_000_000_000, RATE_PROCESS),
            (7_200_000_000_000, RATE_GLOBAL),
            (0, RATE_THREAD),
        ]
    );
}

/// `kernelStackTrace` and `userStackTrace` on `Post`: the selector's stack bits; on
/// another action nothing (validation says so).
#[test]
fn stack_traces_lower_to_their_bits() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchActions:
              - action: Post
                kernelStackTrace: true
                userStackTrace: true
            - matchActions:
              - action: Post
                userStackTrace: true
                kernelStackTrace: false
            - matchActions:
              - action: Sigkill
                kernelStackTrace: true
            - matchActions:
              - action: Post
            ",
        ),
    );
    let s = &h.config.selectors;
    assert_eq!(
        [0, 1, 2, 3].map(|i| s[i].stack),
        [STACK_KERNEL | STACK_USER, STACK_USER, 0, 0]
    );
    assert_eq!(s[0].actions, ACTION_POST);
}

/// What one selector holds, past which a policy is refused: namespace filters and their
/// values, capability filters, argument filters, pids, socket filter values.
#[test]
fn selectors_over_the_kernel_limits_are_refused() {
    let root = tracefs();
    let ns = |n: usize, values: &str| {
        let filters: String = (0..n)
            .map(|_| format!("\n  - namespace: Net\n    operator: In\n    values: {values}"))
            .collect();
        openat(&format!("- matchNamespaces:{filters}\n"))
    };
    let caps = |n: usize| {
        let filters: String = (0..n)
            .map(|_| "\n  - operator: In\n    values: [CAP_BPF]")
            .collect();
        openat(&format!("- matchCapabilities:{filters}\n"))
    };
    let args = |n: usize| {
        let filters: String = (0..n)
            .map(|_| "\n  - index: 5\n    operator: Equal\n    values: [1]")
            .collect();
        openat(&format!("- matchArgs:{filters}\n"))
    };
    let pids = |n: usize| {
        let values: Vec<String> = (1..=n).map(|p| p.to_string()).collect();
        openat(&format!(
            "- matchPIDs:\n  - operator: In\n    values: [{}]\n",
            values.join(", ")
        ))
    };
    let dports = |n: usize| {
        let values: Vec<String> = (1..=n).map(|p| format!("\"{p}\"")).collect();
        policy(&format!(
            "kprobes:\n- call: tcp_connect\n  args:\n  - index: 0\n    type: sock\n  selectors:\n  - matchArgs:\n    - index: 0\n      operator: DPort\n      values: [{}]\n",
            values.join(", ")
        ))
    };
    for (fits, over, expected) in [
        (
            ns(4, "[\"1\"]"),
            ns(5, "[\"1\"]"),
            "at most 4 matchNamespaces filters",
        ),
        (
            ns(1, "[\"1\", \"2\", \"3\", \"4\"]"),
            ns(1, "[\"1\", \"2\", \"3\", \"4\", \"5\"]"),
            "matchNamespaces[0]: at most 4 values",
        ),
        (
            caps(2),
            caps(3),
            "at most 2 matchCapabilities and matchCapabilityChanges filters per selector",
        ),
        (
            args(4),
            args(5),
            "at most 4 matchArgs and matchReturnArgs filters per selector",
        ),
        (
            pids(8),
            pids(9),
            "at most one matchPIDs of 8 values is supported",
        ),
        (
            dports(4),
            dports(5),
            "at most 4 values per socket filter (got 5)",
        ),
    ] {
        compile_on(root.path(), TRACEPOINTS, &fits).expect(expected);
        let e = compile_on(root.path(), TRACEPOINTS, &over).unwrap_err();
        assert!(e.contains(expected), "{expected}: {e}");
        assert!(e.contains("selectors[0]"), "{e}");
    }
}

// --- Argument gate candidates (`Hook::gates`). ---

/// `Equal` on an integer argument, and `Equal` or `Prefix` on a string argument (in user
/// memory here), are what an argument gate can look up: the argument as it is read,
/// without its lookup keys, and the values.
#[test]
fn equal_and_prefix_filters_are_gate_candidates() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 5
                operator: Equal
                values: [\"-100\", 3]
            - matchArgs:
              - index: 6
                operator: Equal
                values: [/etc/passwd]
            - matchArgs:
              - index: 6
                operator: Prefix
                values: [/etc/, /usr/]
            ",
        ),
    );
    let int = ArgConfig {
        offset: 16,
        size: 8,
        kind: ARG_INT,
        ..Default::default()
    };
    let string = ArgConfig {
        offset: 24,
        size: 8,
        kind: ARG_USER_STRING,
        ..Default::default()
    };
    assert_eq!(
        h.config.args[1],
        ArgConfig {
            flags: ARG_NEEDS_EQUAL | ARG_NEEDS_PREFIX,
            ..string
        }
    );
    assert_eq!(
        h.gates,
        [
            vec![GateFilter {
                read: int,
                values: GateValues::Ints(vec![-100i64 as u64, 3]),
            }],
            vec![GateFilter {
                read: string,
                values: GateValues::Strings {
                    values: vec![b"/etc/passwd".to_vec()],
                    prefix: false,
                },
            }],
            vec![GateFilter {
                read: string,
                values: GateValues::Strings {
                    values: vec![b"/etc/".to_vec(), b"/usr/".to_vec()],
                    prefix: true,
                },
            }],
        ]
    );
}

/// Strings in the record (a char array, a `__data_loc` string), in kernel memory, and
/// the path a kprobe resolved are gate candidates as user strings are; the current pid
/// as integers are.
#[test]
fn strings_of_every_kind_and_the_pid_are_gate_candidates() {
    let root = tracefs();
    let kind = |text: &str, kernel: Kernel| {
        let c = compile_on(root.path(), kernel, text).expect("compiles");
        let gates = &c.hooks[0].gates;
        assert_eq!(gates.len(), 1);
        gates[0].iter().map(|g| g.read.kind).collect::<Vec<_>>()
    };
    let record = |event: &str, index: u32| {
        policy(&format!(
            "
            tracepoints:
            - subsystem: sched
              event: {event}
              args:
              - index: {index}
              - index: 3
              selectors:
              - matchArgs:
                - index: {index}
                  operator: Equal
                  values: [bash]
                - index: 3
                  operator: Equal
                  values: [\"1\"]
            "
        ))
    };
    assert_eq!(
        kind(&record("sched_switch", 4), TRACEPOINTS),
        [ARG_CHAR_ARRAY, ARG_CURRENT_PID]
    );
    assert_eq!(
        kind(&record("sched_process_fork", 4), TRACEPOINTS),
        [ARG_DATA_LOC, ARG_CURRENT_PID]
    );
    let kprobe = |ty: &str| {
        policy(&format!(
            "
            kprobes:
            - call: do_something
              args:
              - index: 1
                type: {ty}
              selectors:
              - matchArgs:
                - index: 1
                  operator: Prefix
                  values: [/etc/]
            "
        ))
    };
    assert_eq!(kind(&kprobe("string"), KPROBES), [ARG_KERNEL_STRING]);
    assert_eq!(kind(&kprobe("file"), KPROBES), [ARG_CHAR_ARRAY]);
}

/// What a gate cannot decide for a hook: negations, `Postfix`, comparisons, masks,
/// buffers read by size, and sockets.
#[test]
fn other_filters_are_not_gate_candidates() {
    let root = tracefs();
    for (index, op, values) in [
        (5, "NotEqual", "[1]"),
        (5, "GT", "[1]"),
        (5, "LT", "[1]"),
        (5, "Mask", "[1]"),
        (6, "NotEqual", "[/etc/passwd]"),
        (6, "NotPrefix", "[/etc/]"),
        (6, "Postfix", "[passwd]"),
        (6, "NotPostfix", "[passwd]"),
    ] {
        let h = only_hook(
            root.path(),
            &openat(&format!(
                "
                - matchArgs:
                  - index: {index}
                    operator: {op}
                    values: {values}
                "
            )),
        );
        assert_eq!(h.gates, [Vec::<GateFilter>::new()], "{op} on {index}");
    }
    // A buffer read by its size (`char_buf` with `sizeArgIndex`).
    let h = only_hook(
        root.path(),
        &policy(
            "
            tracepoints:
            - subsystem: syscalls
              event: sys_enter_write
              args:
              - index: 6
                type: char_buf
                sizeArgIndex: 8
              selectors:
              - matchArgs:
                - index: 6
                  operator: Equal
                  values: [secret]
            ",
        ),
    );
    assert_eq!(h.config.args[0].kind, ARG_USER_BYTES);
    assert_eq!(h.gates, [Vec::<GateFilter>::new()]);
    // A socket.
    let h = only_hook(
        root.path(),
        &policy(
            "
            kprobes:
            - call: tcp_connect
              args:
              - index: 0
                type: sock
              selectors:
              - matchArgs:
                - index: 0
                  operator: DPort
                  values: [\"443\"]
            ",
        ),
    );
    assert_eq!(h.gates, [Vec::<GateFilter>::new()]);
}

/// One list of candidates per selector, in order: a selector without argument filters
/// has none (it cannot be covered).
#[test]
fn gates_are_listed_per_selector() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 5
                operator: Equal
                values: [1]
              - index: 6
                operator: Prefix
                values: [/etc/]
            - matchPIDs:
              - operator: In
                values: [1]
            - matchArgs:
              - index: 5
                operator: GT
                values: [1]
              - index: 5
                operator: Equal
                values: [2]
            ",
        ),
    );
    let kinds: Vec<Vec<u8>> = h
        .gates
        .iter()
        .map(|s| s.iter().map(|g| g.read.kind).collect())
        .collect();
    assert_eq!(
        kinds,
        [vec![ARG_INT, ARG_USER_STRING], vec![], vec![ARG_INT]]
    );
}

// --- What the process verdict needs (`Hook::process`). ---

#[test]
fn args_only_hooks_need_no_verdict() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 5
                operator: Equal
                values: [1]
            - matchActions:
              - action: Sigkill
            ",
        ),
    );
    assert_eq!(h.process, 0);
    assert_eq!(h.config.flags & HOOK_CGROUP_SCOPE, 0);
}

/// The verdict is needed when any selector has a process filter, and depends on what
/// any of them reads.
#[test]
fn process_filters_of_any_selector_set_the_verdict() {
    let root = tracefs();
    let h = only_hook(
        root.path(),
        &openat(
            "
            - matchArgs:
              - index: 5
                operator: Equal
                values: [1]
            - matchBinaries:
              - operator: In
                values: [/bin/sh]
            - matchNamespaces:
              - namespace: Mnt
                operator: In
                values: [\"1\"]
            ",
        ),
    );
    assert_eq!(h.process, HP_VERDICT | HP_DEP_NS);
}

/// A pod-scoped policy (a podSelector, a containerSelector, a `TracingPolicyNamespaced`)
/// runs its hooks only in some cgroups: each hook is flagged, and its verdict depends on
/// the process's cgroup.
#[test]
fn pod_scoped_policies_depend_on_the_cgroup() {
    let root = tracefs();
    let body = "
        tracepoints:
        - subsystem: syscalls
          event: sys_enter_getpgid
          args:
          - index: 5
        ";
    let scoped = [
        policy(&format!(
            "{body}\n        podSelector:\n          matchLabels:\n            app: web\n"
        )),
        policy(&format!(
            "{body}\n        containerSelector:\n          matchLabels:\n            name: web\n"
        )),
        policy(body).replace(
            "kind: TracingPolicy\nmetadata:\n",
            "kind: TracingPolicyNamespaced\nmetadata:\n  namespace: shop\n",
        ),
    ];
    for text in &scoped {
        let c = compile_on(root.path(), TRACEPOINTS, text).expect("compiles");
        assert!(c.scope.is_some(), "{text}");
        let h = &c.hooks[0];
        assert_ne!(h.config.flags & HOOK_CGROUP_SCOPE, 0, "{text}");
        assert_eq!(h.process, HP_VERDICT | HP_DEP_CGROUP, "{text}");
    }
    let c = compile_on(root.path(), TRACEPOINTS, &policy(body)).expect("compiles");
    assert!(c.scope.is_none());
    assert_eq!(c.hooks[0].process, 0);
}

/// The entry half of a return probe keeps every call's record: it evaluates nothing,
/// reports nothing, and needs no verdict or gate.
#[test]
fn the_entry_half_has_no_selectors_gates_or_verdict() {
    let root = tracefs();
    let text = policy(
        "
        kprobes:
        - call: sys_getpgid
          syscall: true
          return: true
          args:
          - index: 0
            type: int
          message: getpgid
          tags: [t1]
          selectors:
          - matchPIDs:
            - operator: In
              values: [1]
            matchArgs:
            - index: 0
              operator: Equal
              values: [1]
        ",
    );
    let c = compile_on(root.path(), TRACEPOINTS, &text).expect("compiles");
    let (entry, ret) = (&c.hooks[0], &c.hooks[1]);
    assert_eq!((entry.config.nsel, entry.process), (0, 0));
    assert!(entry.gates.is_empty());
    assert_eq!((entry.message.as_deref(), entry.tags.len()), (None, 0));
    assert_eq!((ret.config.nsel, ret.process), (1, HP_VERDICT));
    assert_eq!(ret.gates.len(), 1);
    assert_eq!(
        (ret.message.as_deref(), ret.tags.as_slice()),
        (Some("getpgid"), ["t1".to_owned()].as_slice())
    );
}

#[test]
fn monitor_policies_flag_their_hooks() {
    let root = tracefs();
    let body = "
        options:
        - name: policy-mode
          value: monitor
        tracepoints:
        - subsystem: syscalls
          event: sys_enter_getpgid
          args:
          - index: 5
        ";
    let c = compile_on(root.path(), TRACEPOINTS, &policy(body)).expect("compiles");
    assert!(c.monitor);
    assert_ne!(c.hooks[0].config.flags & HOOK_MONITOR, 0);
}

#[test]
fn a_hook_traced_twice_in_one_policy_is_refused() {
    let root = tracefs();
    let text = policy(
        "
        tracepoints:
        - subsystem: syscalls
          event: sys_enter_getpgid
        - subsystem: syscalls
          event: sys_enter_getpgid
        ",
    );
    let e = compile_on(root.path(), TRACEPOINTS, &text).unwrap_err();
    assert!(
        e.contains("syscalls/sys_enter_getpgid: is traced twice"),
        "{e}"
    );
}

/// The old compiler keyed the check by the function hooked: `sys_getpgid` and its
/// wrapper are one function.
#[test]
fn a_syscall_kprobe_under_both_its_names_is_traced_twice() {
    let root = tracefs();
    let text = policy(&format!(
        "
        kprobes:
        - call: sys_getpgid
          syscall: true
        - call: {SYSCALL_WRAPPER_PREFIX}getpgid
          syscall: true
        "
    ));
    let compiled = compile_on(root.path(), KPROBES, &text).map(|c| c.hooks.len());
    assert!(
        compiled
            .as_ref()
            .is_err_and(|e| e.contains("is traced twice")),
        "{compiled:?}"
    );
}

// --- Placement (`place.rs`). ---

/// What a placed unit is, for comparing: its record's tracepoint, its half, and for a
/// kprobe (on the function, generic, a socket function, read at its return).
type Placed = (String, String, Half, Option<(bool, bool, bool, bool)>);

fn placed(root: &Path, kernel: Kernel, text: &str) -> Result<Vec<Placed>, String> {
    let spec = spec_of(text);
    let facts = Facts::new(kernel, root);
    let units = place::units(&spec.hooks[0], &facts).map_err(|e| e.to_string())?;
    Ok(units
        .iter()
        .map(|u| {
            (
                u.subsystem.clone(),
                u.event.clone(),
                u.half,
                u.kprobe.map(|k| {
                    (
                        k.on_kprobe,
                        k.generic,
                        k.sock.is_some(),
                        k.at_return.is_some(),
                    )
                }),
            )
        })
        .collect())
}

fn unit(
    subsystem: &str,
    event: &str,
    half: Half,
    kprobe: Option<(bool, bool, bool, bool)>,
) -> Placed {
    (subsystem.into(), event.into(), half, kprobe)
}

/// Where each kind of hook's record comes from, with kprobes and without: a
/// tracepoint's own; a syscall's `sys_enter_NAME`; `sock:inet_sock_set_state` for the
/// socket functions; the argument registers of any other function (kprobes only); and
/// the socket functions read at their return in two halves, on the syscalls that stand
/// for them without kprobes.
#[test]
fn units_place_each_kind_of_hook_with_and_without_kprobes() {
    use Half::{Entry, Return, Whole};
    let root = tracefs();
    let kprobe = |call: &str| policy(&format!("kprobes:\n- call: {call}\n"));
    let fork = policy("tracepoints:\n- subsystem: sched\n  event: sched_process_fork\n");
    let syscall = policy("kprobes:\n- call: sys_getpgid\n  syscall: true\n");
    let syscall_ret = policy("kprobes:\n- call: sys_getpgid\n  syscall: true\n  return: true\n");
    let accept = policy(
        "kprobes:\n- call: inet_csk_accept\n  return: true\n  args:\n  - index: 0\n    type: sock\n",
    );
    for kernel in [KPROBES, TRACEPOINTS] {
        let on = kernel.kprobes;
        let at = |text: &str| placed(root.path(), kernel, text);
        assert_eq!(
            at(&fork),
            Ok(vec![unit("sched", "sched_process_fork", Whole, None)])
        );
        assert_eq!(
            at(&syscall),
            Ok(vec![unit(
                "syscalls",
                "sys_enter_getpgid",
                Whole,
                Some((on, false, false, false))
            )])
        );
        assert_eq!(
            at(&syscall_ret),
            Ok(vec![
                unit(
                    "syscalls",
                    "sys_enter_getpgid",
                    Entry,
                    Some((on, false, false, false))
                ),
                unit(
                    "syscalls",
                    "sys_exit_getpgid",
                    Return,
                    Some((on, false, false, false))
                ),
            ])
        );
        for call in ["tcp_connect", "tcp_close", "inet_csk_listen_start"] {
            assert_eq!(
                at(&kprobe(call)),
                Ok(vec![unit(
                    "sock",
                    "inet_sock_set_state",
                    Whole,
                    Some((on, false, true, false))
                )]),
                "{call}"
            );
        }
        let dgram = at(&kprobe("inet_dgram_connect")).expect("placed");
        let accepted = at(&accept).expect("placed");
        let generic = at(&kprobe("security_file_open"));
        if on {
            let k = Some((true, true, false, true));
            assert_eq!(
                dgram,
                [
                    unit("kprobe", "inet_dgram_connect", Entry, k),
                    unit("kprobe", "inet_dgram_connect", Return, k)
                ]
            );
            // A plain socket function on a kprobe and a kretprobe.
            let k = Some((true, false, true, false));
            assert_eq!(
                accepted,
                [
                    unit("sock", "inet_sock_set_state", Entry, k),
                    unit("sock", "inet_sock_set_state", Return, k)
                ]
            );
            assert_eq!(
                generic,
                Ok(vec![unit(
                    "kprobe",
                    "security_file_open",
                    Whole,
                    Some((true, true, false, false))
                )])
            );
        } else {
            let k = Some((false, false, false, true));
            assert_eq!(
                dgram,
                [
                    unit("syscalls", "sys_enter_connect", Entry, k),
                    unit("syscalls", "sys_exit_connect", Return, k)
                ]
            );
            assert_eq!(
                accepted,
                [
                    unit("syscalls", "sys_enter_accept4", Entry, k),
                    unit("syscalls", "sys_exit_accept4", Return, k),
                    unit("syscalls", "sys_enter_accept", Entry, k),
                    unit("syscalls", "sys_exit_accept", Return, k),
                ]
            );
            let e = generic.unwrap_err();
            assert!(e.contains("needs kprobes"), "{e}");
        }
    }
}

/// A syscall's record is its `sys_enter_NAME`'s fields after the common ones and
/// `__syscall_nr`, numbered from 0 as the function's arguments are.
#[test]
fn a_syscall_record_numbers_its_arguments_from_zero() {
    let root = tracefs();
    let spec = spec_of(&policy("kprobes:\n- call: sys_openat\n  syscall: true\n"));
    let facts = Facts::new(TRACEPOINTS, root.path());
    let units = place::units(&spec.hooks[0], &facts).expect("placed");
    let names: Vec<&str> = units[0]
        .format
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["dfd", "filename", "flags", "mode"]);
}

/// The kernel function a kprobe hook is on: a `syscall: true` kprobe's is the syscall's
/// wrapper, whichever name the policy gives it; a tracepoint has none.
#[test]
fn units_name_the_function_a_kprobe_is_on() {
    let root = tracefs();
    let wrapper = format!("{SYSCALL_WRAPPER_PREFIX}getpgid");
    for (text, kernel, expected) in [
        (
            policy("kprobes:\n- call: sys_getpgid\n  syscall: true\n  return: true\n"),
            TRACEPOINTS,
            vec![wrapper.as_str(), wrapper.as_str()],
        ),
        (
            policy(&format!("kprobes:\n- call: {wrapper}\n  syscall: true\n")),
            KPROBES,
            vec![wrapper.as_str()],
        ),
        (
            policy("kprobes:\n- call: security_file_open\n"),
            KPROBES,
            vec!["security_file_open"],
        ),
        (
            policy("kprobes:\n- call: inet_dgram_connect\n"),
            TRACEPOINTS,
            vec!["inet_dgram_connect", "inet_dgram_connect"],
        ),
        (
            policy("tracepoints:\n- subsystem: sched\n  event: sched_process_fork\n"),
            KPROBES,
            vec![""],
        ),
    ] {
        let spec = spec_of(&text);
        let facts = Facts::new(kernel, root.path());
        let units = place::units(&spec.hooks[0], &facts).expect("placed");
        let functions: Vec<&str> = units.iter().map(|u| u.function.as_str()).collect();
        assert_eq!(functions, expected, "{text}");
    }
}

/// The program each kind of hook is attached with, on kernels with less and more: hooks
/// on functions need kprobes, prefer fentry, and `Override` on BPF LSM.
#[test]
fn hook_points_attach_where_the_kernel_runs_them() {
    let root = tracefs();
    let lsm = Kernel {
        lsm: true,
        ..FENTRY
    };
    let fentry_only = Kernel {
        fentry: true,
        ..TRACEPOINTS
    };
    let wrapper = format!("{SYSCALL_WRAPPER_PREFIX}getpgid");
    let fork = policy("tracepoints:\n- subsystem: sched\n  event: sched_process_fork\n");
    let syscall = policy("kprobes:\n- call: sys_getpgid\n  syscall: true\n");
    let connect = policy("kprobes:\n- call: tcp_connect\n  args:\n  - index: 0\n    type: sock\n");
    let open =
        policy("kprobes:\n- call: security_file_open\n  args:\n  - index: 0\n    type: file\n");
    let deny = policy(
        "kprobes:\n- call: security_file_open\n  args:\n  - index: 0\n    type: file\n  selectors:\n  - matchActions:\n    - action: Override\n      argError: -1\n",
    );
    let point = |kernel: Kernel, text: &str| {
        compile_on(root.path(), kernel, text)
            .map(|c| (c.hooks[0].point.attach.clone(), c.hooks[0].point.flags))
    };
    for kernel in [TRACEPOINTS, fentry_only, KPROBES, FENTRY, lsm] {
        let program = match (kernel.kprobes, kernel.fentry) {
            (true, true) => Some(Probe::Fentry),
            (true, false) => Some(Probe::Kprobe),
            _ => None,
        };
        let what = format!("{kernel:?}");
        assert_eq!(
            point(kernel, &fork),
            Ok((tracepoint("sched", "sched_process_fork"), 0)),
            "{what}"
        );
        match program {
            Some(p) => {
                assert_eq!(
                    point(kernel, &syscall),
                    Ok((function(&wrapper, p, false), HP_KPROBE_SYSCALL)),
                    "{what}"
                );
                assert_eq!(
                    point(kernel, &connect),
                    Ok((function("tcp_connect", p, false), 0)),
                    "{what}"
                );
                assert_eq!(
                    point(kernel, &open),
                    Ok((function("security_file_open", p, false), HP_KPROBE_GENERIC)),
                    "{what}"
                );
            }
            None => {
                assert_eq!(
                    point(kernel, &syscall),
                    Ok((tracepoint("syscalls", "sys_enter_getpgid"), 0)),
                    "{what}"
                );
                assert_eq!(
                    point(kernel, &connect),
                    Ok((tracepoint("sock", "inet_sock_set_state"), 0)),
                    "{what}"
                );
                assert!(point(kernel, &open).is_err(), "{what}");
            }
        }
        let denied = point(kernel, &deny);
        if kernel.lsm {
            assert_eq!(
                denied,
                Ok((
                    function("security_file_open", Probe::Lsm, false),
                    HP_KPROBE_GENERIC
                ))
            );
        } else {
            assert!(denied.is_err(), "{what}");
        }
    }
}

#[test]
fn probe_program_picks_lsm_fentry_or_kprobe() {
    let lsm = Kernel {
        lsm: true,
        ..FENTRY
    };
    let site = |call, on_kprobe, kernel| KprobeSite {
        call,
        sock: None,
        generic: true,
        on_kprobe,
        at_return: None,
        generic_sock: None,
        user: false,
        lsm: false,
        raw_tp: false,
        kernel,
    };
    let open = |on_kprobe, kernel| site("security_file_open", on_kprobe, kernel);
    assert_eq!(
        place::probe_program(None, Half::Whole, false),
        Ok(Probe::Kprobe)
    );
    let e = place::probe_program(None, Half::Whole, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("goes on a kprobe, not on a tracepoint"), "{e}");
    // fentry at the call, a kretprobe at the return.
    for (half, expected) in [
        (Half::Whole, Probe::Fentry),
        (Half::Entry, Probe::Fentry),
        (Half::Return, Probe::Kprobe),
    ] {
        assert_eq!(
            place::probe_program(Some(&open(true, FENTRY)), half, false),
            Ok(expected),
            "{half:?}"
        );
    }
    assert_eq!(
        place::probe_program(Some(&open(true, KPROBES)), Half::Whole, false),
        Ok(Probe::Kprobe)
    );
    assert_eq!(
        place::probe_program(Some(&open(false, FENTRY)), Half::Whole, false),
        Ok(Probe::Kprobe),
        "on a tracepoint that stands for it: no program of its own"
    );
    assert_eq!(
        place::probe_program(Some(&open(true, lsm)), Half::Whole, true),
        Ok(Probe::Lsm)
    );
    // Another function (a syscall) where a kprobe can override a return.
    let with_override = Kernel {
        kprobe_override: true,
        override_off: "",
        ..lsm
    };
    assert_eq!(
        place::probe_program(
            Some(&site("__x64_sys_linkat", true, with_override)),
            Half::Whole,
            true
        ),
        Ok(Probe::Override)
    );
    for (k, half, expected) in [
        (
            open(true, lsm),
            Half::Return,
            "cannot go with `return: true`",
        ),
        (
            open(true, lsm),
            Half::Entry,
            "cannot go with `return: true`",
        ),
        (
            open(false, lsm),
            Half::Whole,
            "needs security_file_open itself hooked",
        ),
        (
            site("vfs_open", true, lsm),
            Half::Whole,
            "takes a kprobe that overrides its return, and none can here",
        ),
        (
            open(true, FENTRY),
            Half::Whole,
            "and none runs here: this kernel does not run BPF LSM programs",
        ),
    ] {
        let e = place::probe_program(Some(&k), half, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{expected}: {e}");
    }
}

/// A hook on every syscall shares the raw `sys_enter`/`sys_exit` tracepoint when the
/// kernel's syscall registers can be read (`raw_syscalls`), `--syscall-raw-tracepoints`
/// or not.
#[test]
fn raw_syscalls_hooks_route_when_the_kernel_reads_syscall_registers() {
    let root = tracefs();
    for (event, dir, index) in [
        ("sys_enter", SYSCALL_ENTER, 4),
        ("sys_exit", SYSCALL_EXIT, 5),
    ] {
        let hook = format!("subsystem: raw_syscalls\n    event: {event}");
        let args = format!("    - index: {index}\n");
        for numbered in [false, true] {
            let kernel = Kernel {
                raw_syscalls: true,
                raw_numbered: numbered,
                ..TRACEPOINTS
            };
            let h = compile_one(root.path(), &hook, &args, kernel).expect("compiles");
            assert_eq!(h.point.attach, Attach::RawSyscall { dir, nr: None });
            assert_eq!(
                h.runs_on(),
                format!("raw_syscalls/{event} runs on the raw tracepoint {event}, every syscall")
            );
        }
        let kernel = Kernel {
            raw_numbered: true,
            ..TRACEPOINTS
        };
        let h = compile_one(root.path(), &hook, &args, kernel).expect("compiles");
        assert_eq!(h.point.attach, tracepoint("raw_syscalls", event));
    }
}

/// A hook on one syscall shares the raw tracepoint only with `--syscall-raw-tracepoints`
/// (`raw_numbered`): by default its own tracepoint costs the other syscalls less.
#[test]
fn one_syscall_hooks_route_only_with_raw_numbered() {
    let root = tracefs();
    let hook = "subsystem: syscalls\n    event: sys_enter_openat";
    let args = "    - index: 5\n    - index: 6\n";
    let openat = syscalls::Sysno::openat.id() as u32;
    let routed = Kernel {
        raw_syscalls: true,
        raw_numbered: true,
        ..TRACEPOINTS
    };
    let h = compile_one(root.path(), hook, args, routed).expect("compiles");
    assert_eq!(
        h.point.attach,
        Attach::RawSyscall {
            dir: SYSCALL_ENTER,
            nr: Some(openat)
        }
    );
    assert_eq!(
        h.runs_on(),
        format!(
            "syscalls/sys_enter_openat runs on the raw tracepoint sys_enter, syscall {openat} filtered in the program"
        )
    );
    let h = compile_one(
        root.path(),
        hook,
        args,
        Kernel {
            raw_numbered: false,
            ..routed
        },
    )
    .expect("compiles");
    assert_eq!(h.point.attach, tracepoint("syscalls", "sys_enter_openat"));
    assert_eq!(
        h.runs_on(),
        "syscalls/sys_enter_openat runs on its tracepoint"
    );
}

/// The raw tracepoint's record holds the syscall number and argument (or return value)
/// words only: a hook that reads anything else stays on its own tracepoint.
#[test]
fn arguments_the_raw_record_lacks_keep_a_hook_on_its_tracepoint() {
    let root = tracefs();
    // A char array in the record.
    let h = compile_one(
        root.path(),
        "subsystem: syscalls\n    event: sys_enter_sethostname",
        "    - index: 5\n",
        FULL,
    )
    .expect("compiles");
    assert_eq!(h.config.args[0].kind, ARG_CHAR_ARRAY);
    assert_eq!(
        h.point.attach,
        tracepoint("syscalls", "sys_enter_sethostname")
    );
    // A buffer read by its size.
    let h = compile_one(
        root.path(),
        "subsystem: syscalls\n    event: sys_enter_write",
        "    - index: 5\n    - index: 6\n      type: char_buf\n      sizeArgIndex: 8\n",
        FULL,
    )
    .expect("compiles");
    assert_eq!(h.config.args[1].kind, ARG_USER_BYTES);
    assert_eq!(h.point.attach, tracepoint("syscalls", "sys_enter_write"));
    // An iovec, of a syscall kprobe run on its tracepoint.
    let text = policy(
        "
        kprobes:
        - call: sys_writev
          syscall: true
          args:
          - index: 1
            type: char_iovec
            sizeArgIndex: 3
        ",
    );
    let kernel = Kernel {
        kprobes: false,
        ..FULL
    };
    let c = compile_on(root.path(), kernel, &text).expect("compiles");
    assert_eq!(
        c.hooks[0].point.attach,
        tracepoint("syscalls", "sys_enter_writev")
    );
    // The same hooks reading argument words only are routed.
    let h = compile_one(
        root.path(),
        "subsystem: syscalls\n    event: sys_enter_write",
        "    - index: 5\n    - index: 6\n    - index: 7\n",
        FULL,
    )
    .expect("compiles");
    assert!(matches!(h.point.attach, Attach::RawSyscall { .. }));
}

#[test]
fn return_probes_on_socket_functions_at_the_call_are_refused() {
    let root = tracefs();
    for call in ["tcp_connect", "tcp_close", "inet_csk_listen_start"] {
        let text = policy(&format!(
            "kprobes:\n- call: {call}\n  return: true\n  args:\n  - index: 0\n    type: sock\n"
        ));
        for kernel in [KPROBES, TRACEPOINTS] {
            let e = compile_on(root.path(), kernel, &text).unwrap_err();
            assert!(
                e.contains(&format!("return probes on {call} are not supported yet")),
                "{e}"
            );
        }
    }
}

/// Hooks share a hook point (one attachment, one list) when their points are equal:
/// selectors do not matter, the record the program builds does.
#[test]
fn hooks_on_one_function_share_a_point_whatever_their_selectors() {
    let root = tracefs();
    let open = |args: &str, selectors: &str| {
        let text = policy(&format!(
            "kprobes:\n- call: security_file_open\n  args:\n{args}  selectors:\n{selectors}"
        ));
        let c = compile_on(root.path(), FENTRY, &text).expect("compiles");
        c.hooks[0].point.clone()
    };
    let file = "  - index: 0\n    type: file\n";
    let a = open(
        file,
        "  - matchArgs:\n    - index: 0\n      operator: Prefix\n      values: [/etc/]\n",
    );
    let b = open(
        file,
        "  - matchPIDs:\n    - operator: In\n      values: [1]\n",
    );
    assert_eq!(a, b);
    assert_eq!(
        a.kprobe,
        KprobeLayout {
            struct_arg: 0,
            struct_kind: KPROBE_ARG_FILE,
            ..Default::default()
        }
    );
    // Another struct read: another record, another point.
    let c = open(
        "  - index: 0\n    type: path\n",
        "  - matchPIDs:\n    - operator: In\n      values: [1]\n",
    );
    assert_ne!(a, c);
}

/// A `generated_ftrace` list as a kprobe call: one hook per kernel function the
/// pattern matches (from tracefs's `available_filter_functions`); none: unplaced, saying
/// so. A kprobe with `ignore.callNotFound` on a function the kernel lacks is left out.
#[test]
fn generated_ftrace_lists_and_ignored_missing_calls() {
    let root = tracefs();
    std::fs::write(
        root.path().join("available_filter_functions"),
        "ksys_read\nksys_write\nvfs_read\nksys_sync [ext4]\n",
    )
    .unwrap();
    let text = |pattern: &str| {
        policy(&format!(
            r#"
            lists:
            - name: ksys
              type: generated_ftrace
              pattern: "{pattern}"
            kprobes:
            - call: "list:ksys"
            - call: no_such_function
              ignore:
                callNotFound: true
            - call: vfs_read
              ignore:
                callNotFound: true
            "#
        ))
    };
    let c = compile_on(root.path(), KPROBES, &text("^ksys_*")).expect("compiles");
    let calls: Vec<String> = c.hooks.iter().map(Hook::label).collect();
    assert_eq!(
        calls,
        [
            "kprobe ksys_read",
            "kprobe ksys_sync",
            "kprobe ksys_write",
            "kprobe vfs_read"
        ]
    );
    let e = compile_on(root.path(), KPROBES, &text("^nothing_")).unwrap_err();
    assert_eq!(
        e,
        "kprobe list:ksys: no kernel function matches `^nothing_`"
    );
}

/// `syscall64` (a syscall's number, `raw_syscalls`' `id`) is written as `syscall_id`, and
/// read by the kind that marks a 32-bit syscall's number.
#[test]
fn syscall64_arguments_are_syscall_ids() {
    let root = tracefs();
    let h = compile_one(
        root.path(),
        "subsystem: raw_syscalls\n    event: sys_enter",
        "    - index: 4\n      type: syscall64\n",
        TRACEPOINTS,
    )
    .expect("compiles");
    assert_eq!(h.args[0].out, ArgOut::SyscallId);
    assert_eq!(h.config.args[0].kind, tracer_common::policy::ARG_SYSCALL64);
}
