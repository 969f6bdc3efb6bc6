//! The lifecycle on real distribution kernels (Debian's 6.1 and 6.12 under qemu), where
//! `task_struct` and friends have other layouts than on the host and
//! `sched_process_exit` has no `group_dead` argument: the same binary, offsets resolved
//! from each kernel's own BTF.

use std::{collections::BTreeMap, path::Path, time::Duration};

use integration::{exit_of, flags, of_kind, vm};
use serde_json::Value;

/// What every guest runs first: busybox's applets, the kernel's file systems, its
/// release, loopback.
const PREAMBLE: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
echo ===KERNEL
uname -r
ip link set lo up
"#;

/// The guest of the lifecycle test, after [`PREAMBLE`].
const INIT: &str = r#"mkdir -p /etc
echo 'root:x:0:0::/:/bin/sh' > /etc/passwd
echo 'vmtester:x:1234:1234::/tmp:/bin/sh' >> /etc/passwd
printf 'root:x:0:\nvmtester:x:1234:\n' > /etc/group
cat > /tmp/net.yaml <<'POLICY'
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-connect
spec:
  kprobes:
  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DAddr
        values: ["127.0.0.0/8"]
  - call: tcp_close
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["4242", "4243"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-open
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["/tmp/vm-open"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-file
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["/tmp/vm-file"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-ret
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    return: true
    args:
    - index: 1
      type: string
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: ["/tmp/vm-ret"]
      matchReturnArgs:
      - index: 0
        operator: Equal
        values: ["-2"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-accept
spec:
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
    selectors:
    - matchArgs:
      - index: 0
        operator: SPort
        values: ["4242", "4243"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-udp
spec:
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
        values: ["53"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-structs
spec:
  kprobes:
  - call: udp_sendmsg
    syscall: false
    args:
    - index: 0
      type: sock
    - index: 2
      type: size_t
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["53"]
  - call: ip_output
    syscall: false
    args:
    - index: 2
      type: skb
    selectors:
    - matchArgs:
      - index: 2
        operator: DPort
        values: ["53"]
  - call: commit_creds
    syscall: false
    args:
    - index: 0
      type: cred
  - call: security_bprm_check
    syscall: false
    args:
    - index: 0
      type: linux_binprm
    selectors:
    - matchArgs:
      - index: 0
        operator: Postfix
        values: ["/bb-copy"]
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-override
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["/tmp/vm-deny"]
      matchActions:
      - action: Override
        argError: -13
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-lsm
spec:
  lsmhooks:
  - hook: file_open
    message: "an LSM hook"
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["/tmp/vm-lsm"]
      matchActions:
      - action: Override
        argError: -1
POLICY
cat > /tmp/types.yaml <<'POLICY'
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-types
spec:
  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: Family
        values: [AF_INET, AF_INET6]
  - call: dev_hard_start_xmit
    syscall: false
    args:
    - index: 1
      type: net_device
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: [lo]
  - call: cap_capable
    syscall: false
    args:
    - index: 1
      type: user_namespace
    - index: 2
      type: capability
    selectors:
    - matchArgs:
      - index: 2
        operator: Equal
        values: ["7"]
  - call: security_inode_follow_link
    syscall: false
    args:
    - index: 0
      type: dentry
    selectors:
    - matchArgs:
      - index: 0
        operator: Postfix
        values: [vm-link]
  - call: pipe_write
    syscall: false
    args:
    - index: 0
      type: kiocb
    - index: 1
      type: iov_iter
      maxData: true
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values: [PIPE-MARK]
  - call: security_file_open
    syscall: false
    return: true
    args:
    - index: 0
      type: file
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["/tmp/vm-retdeny"]
      matchActions:
      - action: Override
        argError: -13
  lsmhooks:
  - hook: bprm_check_security
    args:
    - index: 0
      type: string
      resolve: mm.owner.real_parent.real_parent.comm
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-socktrack
spec:
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
        values: ["2"]
      matchActions:
      - action: NoPost
  - call: tcp_rcv_established
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["4244"]
      matchActions:
      - action: Post
        kernelStackTrace: true
  - call: __sk_free
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DPort
        values: ["4244"]
      matchActions:
      - action: UntrackSock
---
apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vm-usdt-set
spec:
  usdts:
  - path: /uprobe-target
    provider: tracer_test
    name: set
    args:
    - index: 0
      type: int32
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["7"]
      matchActions:
      - action: Set
        argIndex: 0
        argValue: 32
POLICY
echo secret > /tmp/vm-deny-file
echo secret > /tmp/vm-retdeny-file
echo lsm-secret > /tmp/vm-lsm-file
# A connection to a listener on loopback, then a marker whose exit event shows that
# the agent has written everything before it. (A shell, not `true`: busybox runs its
# own applets without an exec.)
connect_and_sync() {
  echo "STEP connect to $1"
  # Both ends keep their input open, so that neither shuts its sending side down (busybox
  # nc does at the end of its input): the client, stopped after a second, closes from
  # ESTABLISHED.
  sleep 5 | nc -l -p $1 > /dev/null &
  sleep 1
  sleep 2 | timeout 1 nc 127.0.0.1 $1
  sleep 1
  # UDP connects (busybox's nslookup connects its socket to the server), IPv4 and IPv6.
  nslookup vm.test 127.0.0.1 > /dev/null 2>&1
  nslookup vm.test ::1 > /dev/null 2>&1
  # New credentials (su to uid 1234), and an exec of a file of its own.
  su -s /bin/sh vmtester -c 'exit 0'
  cp /bin/busybox /tmp/bb-copy
  /tmp/bb-copy true
  # Denied where the Override policy runs (EACCES), read where it does not.
  echo "DENY-$1: $(cat /tmp/vm-deny-file 2>&1)"
  echo "LSM-$1: $(cat /tmp/vm-lsm-file 2>&1)"
  cat /tmp/vm-open-$1 2>/dev/null
  echo x > /tmp/vm-file-$1
  cat /tmp/vm-file-$1 > /dev/null
  cat /tmp/vm-ret-$1 2>/dev/null
  echo x > /tmp/vm-ret-ok-$1
  cat /tmp/vm-ret-ok-$1 > /dev/null
  echo "STEP sync on $2"
  i=0
  while [ $i -lt 20 ] && kill -0 $AGENT 2>/dev/null; do
    /bin/sh -c 'exit 0' $2-$i
    j=0
    while ! grep -q "process_exit.*$2-$i" $3; do
      sleep 0.2; j=$((j+1)); [ $j -gt 50 ] && break
    done
    grep -q "process_exit.*$2-$i" $3 && break
    i=$((i+1))
  done
}
# tracefs is left unmounted: the agent mounts it. Without KVM the kernel takes 10-30 s
# to verify each fentry program, one per function: the load takes minutes.
/tracer run --node-name vm-node --tracing-policy-optional --enable-process-cred --enable-process-ns --enable-process-environment-variables --filter-environment-variables VMTEST --enable-ancestors base,kprobe,tracepoint,uprobe,lsm,usdt,loader --tracing-policy /tmp/net.yaml --tracing-policy /tmp/types.yaml > /tmp/events 2> /tmp/agent.err &
AGENT=$!
i=0
while ! grep -q "tracer ready" /tmp/agent.err && kill -0 $AGENT 2>/dev/null; do
  sleep 0.5; i=$((i+1)); [ $i -gt 2400 ] && break
done
echo "STEP agent up after $i polls"
kill -0 $AGENT 2>/dev/null || cat /tmp/agent.err
mkdir -p "/tmp/work dir"
cd "/tmp/work dir"
/bin/sh -c '/bin/echo "a b" c | /bin/cat > /dev/null'
ln -s /bin/busybox true
./true relative
sleep 30 &
SLEEPER=$!
echo "SLEEPER=$SLEEPER"
sleep 1
kill -9 $SLEEPER
/bin/sh -c 'exit 7'
cd /
# A set-user-ID root file run by a user; an environment variable the filter keeps.
cp /bin/busybox /tmp/suid-bb
chmod 4755 /tmp/suid-bb
su -s /bin/sh vmtester -c '/tmp/suid-bb true suid-check'
VMTEST=vm-env /bin/sh -c 'exit 0' env-check
# Struct arguments (vm-types): a symlink followed, a write to a pipe.
echo t > /tmp/vm-target
ln -s /tmp/vm-target /tmp/vm-link
cat /tmp/vm-link > /dev/null
echo PIPE-MARK-4242 | cat > /dev/null
# Socket tracking (vm-socktrack): the server's reply reaches the client's socket in a
# softirq that runs in the server's context; the events are the client's, which
# created the socket.
(sleep 1; echo SOCK-REPLY) | nc -l -p 4244 > /dev/null &
sleep 0.5
sleep 3 | timeout 2 nc 127.0.0.1 4244 > /dev/null
sleep 1
# Set on a USDT probe point (vm-usdt-set): the value 7 in the target's memory becomes
# 32; 8 is left alone.
echo "USDT-SET: $(/uprobe-target --set 7) $(/uprobe-target --set 8)"
# Override on a return probe: denied at the call, reported at the return.
echo "RETDENY: $(cat /tmp/vm-retdeny-file 2>&1)"
connect_and_sync 4242 net-marker /tmp/events
echo "STEP sync on vm-marker"
i=0
while [ $i -lt 20 ] && kill -0 $AGENT 2>/dev/null; do
  /bin/sh -c 'exit 0' vm-marker-$i
  j=0
  while ! grep -q "process_exit.*vm-marker-$i" /tmp/events; do
    sleep 0.2; j=$((j+1)); [ $j -gt 50 ] && break
  done
  grep -q "process_exit.*vm-marker-$i" /tmp/events && break
  i=$((i+1))
done
kill -INT $AGENT
wait $AGENT
echo "AGENT_EXIT=$?"
# The same policy on the tracepoint that stands for the kprobes.
/tracer run --node-name vm-node --tracing-policy-optional --disable-kprobes --tracing-policy /tmp/net.yaml > /tmp/events2 2> /tmp/agent2.err &
AGENT=$!
i=0
while ! grep -q "tracer ready" /tmp/agent2.err && kill -0 $AGENT 2>/dev/null; do
  sleep 0.5; i=$((i+1)); [ $i -gt 2400 ] && break
done
echo "STEP second agent up after $i polls"
connect_and_sync 4243 net2-marker /tmp/events2
kill -INT $AGENT
wait $AGENT
echo ===STATUS
/tracer status --tracing-policy /tmp/net.yaml 2>&1
echo ===EVENTS2
grep process_kprobe /tmp/events2 | gzip -c | base64
echo ===STDERR2
cat /tmp/agent2.err
# Compressed: the serial console of an emulated machine is slow.
echo ===EVENTS
gzip -c /tmp/events | base64
echo ===STDERR
cat /tmp/agent.err
echo ===END
poweroff -f
"#;

fn agent_bin() -> std::path::PathBuf {
    std::env::var_os("TRACER_BIN")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/tracer").into())
}

#[test]
fn lifecycle_on_distribution_kernels() {
    let kernels = vm::kernels();
    if kernels.is_empty() {
        if std::env::var_os("TRACER_SKIP_VM").is_some() {
            println!("SKIPPED lifecycle_on_distribution_kernels: TRACER_SKIP_VM is set");
            return;
        }
        panic!(
            "no kernels to boot: TRACER_VM_KERNELS is empty; run the tests with `cargo xtask test` \
             (or set TRACER_SKIP_VM=1 to skip this test, reported as a skip)"
        );
    }
    let mut extra = vm::Cpio::default();
    let target = env!("CARGO_BIN_EXE_uprobe-target");
    extra.file(
        "uprobe-target",
        0o755,
        &std::fs::read(target).expect("the USDT target"),
    );
    let initramfs = vm::initramfs_with(&agent_bin(), &format!("{PREAMBLE}{INIT}"), extra);
    let proto = integration::proto::Proto::generate();
    for (name, kernel) in kernels {
        let started = std::time::Instant::now();
        let console = vm::boot(&kernel, &initramfs, Duration::from_secs(3600));
        println!("{name}: the guest ran for {:.0?}", started.elapsed());
        let fail = |what: &str| -> ! { panic!("{name}: {what}\nconsole:\n{console}") };
        let release = vm::section(&console, "KERNEL").unwrap_or_else(|| fail("no output"));
        println!("{name}: booted {}", release.trim());
        // What the kernel runs, by `tracer status`: the matrix of the README.
        let status = vm::section(&console, "STATUS").unwrap_or_else(|| fail("no status"));
        println!("{name}: tracer status\n{status}");
        for row in [
            "tracepoint",
            "raw tracepoint",
            "BTF tracepoint",
            "kprobe   ",
            "kretprobe",
            "fentry",
            "fexit",
        ] {
            assert!(
                status
                    .lines()
                    .any(|l| l.starts_with(row) && l.contains(" yes")),
                "{name}: {row} works on this kernel: {status}"
            );
        }
        assert!(
            status.contains("kprobe tcp_connect runs on fentry"),
            "{name}: {status}"
        );
        let stderr = vm::section(&console, "STDERR").unwrap_or_else(|| fail("no agent log"));
        if !stderr.contains("tracer ready") {
            fail("the agent never got ready");
        }
        assert!(stderr.contains("mounted tracefs"), "{name}: {stderr}");
        assert!(
            stderr.contains("hooks=3"),
            "{name}: every hook attached: {stderr}"
        );
        assert!(
            stderr.contains("(program sched_process_exit_live)"),
            "{name}: before 6.16 the exit hook reads signal_struct.live: {stderr}"
        );
        assert!(
            console.contains("AGENT_EXIT=0"),
            "{name}: clean exit: {console}"
        );
        let lines = vm::section_gz(&console, "EVENTS").unwrap_or_else(|| fail("no events"));
        let events: Vec<Value> = lines
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| fail(&format!("{e}: {l}"))))
            .collect();
        // Every line as Tetragon's proto has it (the kprobe, LSM, USDT and struct
        // arguments this host cannot produce), the tracer's additions aside.
        let verdict = proto.check(&lines, false);
        assert!(
            verdict.errors.is_empty(),
            "{name}: {} of {} lines differ from protojson:\n{}",
            verdict.errors.len(),
            verdict.checked,
            verdict.errors.join("\n")
        );
        println!(
            "{name}: {} lines decode with Tetragon's proto",
            verdict.checked
        );
        let execs = of_kind(&events, "process_exec");
        let find = |args: &str| {
            execs
                .iter()
                .find(|e| e["process"]["arguments"] == args)
                .unwrap_or_else(|| fail(&format!("no exec with arguments {args}")))
        };

        // The pipeline: argv, cwd (a tmpfs mount, crossed on the way to /), the parent.
        let echo = find(r#""a b" c"#);
        assert_eq!(echo["process"]["binary"], "/bin/busybox", "{name}");
        assert_eq!(echo["process"]["cwd"], "/tmp/work dir", "{name}");
        assert_eq!(
            echo["parent"]["arguments"], r#"-c "/bin/echo \"a b\" c | /bin/cat > /dev/null""#,
            "{name}"
        );
        assert_eq!(echo["process"]["parent_exec_id"], echo["parent"]["exec_id"]);
        assert_eq!(
            echo["process"]["auid"], 4294967295u32,
            "{name}: no login uid at boot"
        );
        assert_eq!(flags(&echo["process"]), ["execve"], "{name}");
        // `--enable-process-cred`, `--enable-process-ns`, read at the exec on this kernel's
        // layouts; `--enable-ancestors`: the init script's shell, above the parent.
        let p = &echo["process"];
        for f in ["suid", "sgid", "fsuid", "fsgid"] {
            assert_eq!(p["process_credentials"][f], 0, "{name}: {f}: {p}");
        }
        assert!(
            p["cap"]["effective"]
                .as_array()
                .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN")),
            "{name}: {p}"
        );
        // Every namespace, the time ones too (both kernels have them).
        for ns in tracer::process::procfs::NS_FILES {
            assert!(
                p["ns"][ns]["inum"].as_u64().is_some_and(|n| n > 0),
                "{name}: {ns}: {p}"
            );
            assert_eq!(p["ns"][ns]["is_host"], true, "{name}: {ns}: {p}");
        }
        assert!(
            echo["ancestors"]
                .as_array()
                .is_some_and(|a| a.last().is_some_and(|init| init["pid"] == 1)),
            "{name}: {echo}"
        );
        assert!(
            execs
                .iter()
                .any(|e| e["process"]["binary"] == "/bin/busybox"
                    && e["parent"]["pid"] == echo["parent"]["pid"]
                    && e["process"]["arguments"].is_null()),
            "{name}: cat, with no arguments, under the same shell"
        );

        // An ordinary exec has no binary properties (its file has links); a set-user-ID
        // root file run by a user raised its privileges (`per_clear` read at the exec).
        assert!(p.get("binary_properties").is_none(), "{name}: {p}");
        let suid = &find("true suid-check")["process"];
        assert_eq!(
            suid["binary_properties"],
            serde_json::json!({"setuid": 0, "privileges_changed": ["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]}),
            "{name}: {suid}"
        );
        assert_eq!(suid["process_credentials"]["uid"], 1234, "{name}: {suid}");
        // The environment, read at the exec, filtered to the variable asked for.
        let env = &find("-c \"exit 0\" env-check")["process"];
        assert_eq!(
            env["environment_variables"],
            serde_json::json!([{"Key": "VMTEST", "Value": "vm-env"}]),
            "{name}: {env}"
        );

        // Relative path, through a symlink.
        let rel = find("relative");
        assert_eq!(rel["process"]["binary"], "/bin/busybox", "{name}");
        assert_eq!(rel["process"]["cwd"], "/tmp/work dir", "{name}");

        // Killed by a signal, and an exit status.
        let sleeper = find("30");
        let pid = sleeper["process"]["pid"].as_u64().unwrap() as u32;
        let x = exit_of(&events, pid).unwrap_or_else(|| fail("no exit of the sleeper"));
        assert_eq!(x["signal"], "SIGKILL", "{name}");
        assert_eq!(x["process"]["exec_id"], sleeper["process"]["exec_id"]);
        let seven = find(r#"-c "exit 7""#);
        let pid = seven["process"]["pid"].as_u64().unwrap() as u32;
        assert_eq!(
            exit_of(&events, pid).unwrap_or_else(|| fail("no exit 7"))["status"],
            7
        );

        // One exit per process, even without `group_dead`.
        let mut exits: Vec<&Value> = of_kind(&events, "process_exit")
            .into_iter()
            .map(|x| &x["process"]["exec_id"])
            .collect();
        let n = exits.len();
        exits.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned());
        exits.dedup();
        assert_eq!(exits.len(), n, "{name}: duplicate exits");
        println!("{name}: {} execs, {n} exits checked", execs.len());

        // The network policy on real kprobes, then on the tracepoint that stands for
        // them (--disable-kprobes): the same events, but for what a kprobe sees that the
        // tracepoint cannot (the source port, chosen after the state change).
        assert!(
            stderr.contains("kernel: kprobes available"),
            "{name}: {stderr}"
        );
        for call in ["tcp_connect", "tcp_close"] {
            assert!(
                stderr.contains(&format!("policy vm-connect: kprobe {call} runs on fentry")),
                "{name}: {stderr}"
            );
        }
        for e in of_kind(&events, "process_kprobe") {
            println!(
                "{name} on kprobes: {} {} pid {}",
                e["function_name"], e["args"][0]["sock_arg"], e["process"]["pid"]
            );
        }
        let on_kprobe = network(&events, 4242);
        let stderr2 =
            vm::section(&console, "STDERR2").unwrap_or_else(|| fail("no second agent log"));
        assert!(
            stderr2.contains("kernel: kprobes available, but policies' kprobes run on the tracepoints that stand for them (kprobes are off: --disable-kprobes)"),
            "{name}: {stderr2}"
        );
        // The first agent left its hooks pinned (the BPF file system mounted by it), its
        // policies' (on kprobes, fentry) with them; the second read their events while
        // it loaded its own, then took over, with the processes the first saved.
        assert!(
            stderr.contains("policies left running ("),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("took over the hooks pinned at /sys/fs/bpf/tracer (generation 2, ")
                && stderr2.contains("policies (")
                && stderr2.contains("run on until this agent's are loaded")
                && stderr2.contains("processes from the agent before"),
            "{name}: {stderr2}"
        );
        assert!(
            !stderr2.contains("compiles otherwise here"),
            "{name}: {stderr2}"
        );
        assert!(
            !stderr2.contains("cannot be read here"),
            "{name}: {stderr2}"
        );
        assert!(!stderr.contains("is not left running"), "{name}: {stderr}");
        assert!(
            stderr2.contains("policy vm-connect: kprobe tcp_connect runs on the tracepoint sock/inet_sock_set_state"),
            "{name}: {stderr2}"
        );
        let events2: Vec<Value> = vm::section_gz(&console, "EVENTS2")
            .unwrap_or_else(|| fail("no events of the second agent"))
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| fail(&format!("{e}: {l}"))))
            .collect();
        for e in of_kind(&events2, "process_kprobe") {
            println!(
                "{name} on the tracepoint: {} {} pid {}",
                e["function_name"], e["args"][0]["sock_arg"], e["process"]["pid"]
            );
        }
        let on_tracepoint = network(&events2, 4243);
        for (what, [connect, close]) in [("kprobe", &on_kprobe), ("tracepoint", &on_tracepoint)] {
            let (c, x) = (
                &connect["args"][0]["sock_arg"],
                &close["args"][0]["sock_arg"],
            );
            assert_eq!(c["cookie"], x["cookie"], "{name} {what}: one socket");
            assert_eq!(c["state"], "TCP_SYN_SENT", "{name} {what}");
            assert_ne!(x["sport"], 0, "{name} {what}: {close}");
            assert_eq!(x["state"], "TCP_ESTABLISHED", "{name} {what}: {close}");
            assert_eq!(
                connect["process"]["pid"], close["process"]["pid"],
                "{name} {what}"
            );
            assert_eq!(
                connect["process"]["binary"], "/bin/busybox",
                "{name} {what}"
            );
        }
        assert_ne!(
            on_kprobe[0]["args"][0]["sock_arg"]["sport"], 0,
            "{name}: a kprobe on tcp_connect sees the source port"
        );
        assert_eq!(
            on_tracepoint[0]["args"][0]["sock_arg"].get("sport"),
            None,
            "{name}: the tracepoint runs before the port is chosen (a port 0 is left out)"
        );
        // Everything else agrees.
        for i in 0..2 {
            let (k, t) = (&on_kprobe[i], &on_tracepoint[i]);
            for f in ["function_name", "policy_name", "action"] {
                assert_eq!(k[f], t[f], "{name}: {f}");
            }
            for f in ["family", "type", "protocol", "saddr", "daddr", "state"] {
                assert_eq!(
                    k["args"][0]["sock_arg"][f], t["args"][0]["sock_arg"][f],
                    "{name}: {f} of {}",
                    k["function_name"]
                );
            }
        }
        println!("{name}: kprobe and tracepoint network events agree");

        // A syscall kprobe in Tetragon's form: on a kprobe, then on the syscall's tracepoint.
        assert!(
            stderr.contains("policy vm-open: kprobe __x64_sys_openat runs on fentry"),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("policy vm-open: kprobe __x64_sys_openat runs on the tracepoint syscalls/sys_enter_openat (kprobes are off: --disable-kprobes)"),
            "{name}: {stderr2}"
        );
        for (run, events, port) in [("kprobe", &events, 4242), ("tracepoint", &events2, 4243)] {
            let opens: Vec<&Value> = of_kind(events, "process_kprobe")
                .into_iter()
                .filter(|e| e["policy_name"] == "vm-open")
                .collect();
            assert_eq!(opens.len(), 1, "{name} {run}: {opens:#?}");
            assert_eq!(
                opens[0]["function_name"], "__x64_sys_openat",
                "{name} {run}"
            );
            assert_eq!(
                opens[0]["args"][0]["string_arg"],
                format!("/tmp/vm-open-{port}"),
                "{name} {run}"
            );
            assert_eq!(
                opens[0]["process"]["binary"], "/bin/busybox",
                "{name} {run}"
            );
        }
        println!(
            "{name}: the syscall kprobe gives the same event on a kprobe and on the tracepoint"
        );

        // A kprobe on any function, with a `file` argument resolved to its path: on
        // kprobes only; without them the policy is refused, saying why.
        let files: Vec<&Value> = of_kind(&events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == "vm-file")
            .collect();
        assert_eq!(files.len(), 2, "{name}: the write and the read: {files:#?}");
        for e in &files {
            assert_eq!(e["function_name"], "security_file_open", "{name}");
            assert_eq!(
                e["args"][0]["file_arg"]["path"], "/tmp/vm-file-4242",
                "{name}"
            );
            assert_eq!(e["process"]["binary"], "/bin/busybox", "{name}");
        }
        assert!(
            stderr.contains("policy vm-file: kprobe security_file_open runs on fentry"),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("policy refused")
                && stderr2.contains("a kprobe on `security_file_open` needs kprobes"),
            "{name}: {stderr2}"
        );
        assert!(
            !events2
                .iter()
                .any(|e| e["process_kprobe"]["policy_name"] == "vm-file"),
            "{name}"
        );
        println!("{name}: security_file_open with a file argument");

        // A return probe: on a kretprobe, then on `sys_exit_openat`; only the failed open.
        assert!(
            stderr.contains(
                "policy vm-ret: the return of kprobe __x64_sys_openat runs on a kretprobe"
            ),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("policy vm-ret: the return of kprobe __x64_sys_openat runs on the tracepoint syscalls/sys_exit_openat"),
            "{name}: {stderr2}"
        );
        for (run, events, port) in [("kretprobe", &events, 4242), ("tracepoint", &events2, 4243)] {
            let rets: Vec<&Value> = of_kind(events, "process_kprobe")
                .into_iter()
                .filter(|e| e["policy_name"] == "vm-ret")
                .collect();
            assert_eq!(rets.len(), 1, "{name} {run}: {rets:#?}");
            assert_eq!(
                rets[0]["args"][0]["string_arg"],
                format!("/tmp/vm-ret-{port}"),
                "{name} {run}"
            );
            assert_eq!(rets[0]["return"]["int_arg"], -2, "{name} {run}");
        }
        println!(
            "{name}: the return probe gives the same event on a kretprobe and on the tracepoint"
        );

        // inet_csk_accept on a kprobe and a kretprobe, then on the accept syscalls: the
        // listening socket and the accepted one, the peer of the connect above.
        assert!(
            stderr.contains(
                "policy vm-accept: the return of kprobe inet_csk_accept runs on a kretprobe"
            ),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("policy vm-accept: the return of kprobe inet_csk_accept runs on the tracepoint syscalls/sys_exit_accept, on the sockets of its file descriptors"),
            "{name}: {stderr2}"
        );
        let mut accepted_by = Vec::new();
        for (run, events, port) in [("kprobe", &events, 4242), ("tracepoint", &events2, 4243)] {
            let accepts: Vec<&Value> = of_kind(events, "process_kprobe")
                .into_iter()
                .filter(|e| e["policy_name"] == "vm-accept")
                .collect();
            assert_eq!(accepts.len(), 1, "{name} {run}: {accepts:#?}");
            let (listening, accepted) = (
                &accepts[0]["args"][0]["sock_arg"],
                &accepts[0]["return"]["sock_arg"],
            );
            assert_eq!(accepts[0]["function_name"], "inet_csk_accept", "{name}");
            assert_eq!(accepts[0]["process"]["binary"], "/bin/busybox", "{name}");
            assert_eq!(listening["sport"], port, "{name} {run}");
            assert_eq!(listening["state"], "TCP_LISTEN", "{name} {run}");
            assert_eq!(accepted["sport"], port, "{name} {run}");
            // busybox's listener is a dual-stack IPv6 socket: the peer as IPv4-mapped.
            assert!(
                accepted["daddr"] == "::ffff:127.0.0.1" && accepted["family"] == "AF_INET6"
                    || accepted["daddr"] == "127.0.0.1" && accepted["family"] == "AF_INET",
                "{name} {run}: {accepted}"
            );
            assert_eq!(accepted["state"], "TCP_ESTABLISHED", "{name} {run}");
            assert_eq!(accepted["protocol"], "IPPROTO_TCP", "{name} {run}");
            assert_eq!(accepted["type"], "SOCK_STREAM", "{name} {run}");
            assert_ne!(accepted["cookie"], listening["cookie"], "{name} {run}");
            accepted_by.push(accepts[0].clone());
        }
        // The accepted socket's peer is the connecting socket (whose port the close
        // shows: the tracepoint's tcp_connect runs before the port is chosen).
        for (accept, close) in [
            (&accepted_by[0], &on_kprobe[1]),
            (&accepted_by[1], &on_tracepoint[1]),
        ] {
            assert_eq!(
                accept["return"]["sock_arg"]["dport"], close["args"][0]["sock_arg"]["sport"],
                "{name}: the accepted socket's peer is the connecting socket"
            );
        }
        for f in ["family", "type", "protocol", "saddr", "daddr", "state"] {
            for which in ["args", "return"] {
                let pick = |e: &Value| {
                    if which == "args" {
                        e["args"][0]["sock_arg"][f].clone()
                    } else {
                        e["return"]["sock_arg"][f].clone()
                    }
                };
                assert_eq!(
                    pick(&accepted_by[0]),
                    pick(&accepted_by[1]),
                    "{name}: {which} {f} of inet_csk_accept"
                );
            }
        }
        println!("{name}: inet_csk_accept with the accepted socket, on kprobes and on accept");

        // UDP connects (inet_dgram_connect) on a kprobe and a kretprobe, then on the
        // connect syscall: the socket as connected, with the port the kernel chose.
        assert!(
            stderr.contains(
                "policy vm-udp: the return of kprobe inet_dgram_connect runs on a kretprobe"
            ),
            "{name}: {stderr}"
        );
        assert!(
            stderr2.contains("policy vm-udp: the return of kprobe inet_dgram_connect runs on the tracepoint syscalls/sys_exit_connect, on the sockets of its file descriptors"),
            "{name}: {stderr2}"
        );
        let mut udp_by = Vec::new();
        for (run, events) in [("kprobe", &events), ("tracepoint", &events2)] {
            let udp: Vec<&Value> = of_kind(events, "process_kprobe")
                .into_iter()
                .filter(|e| e["policy_name"] == "vm-udp")
                .collect();
            assert_eq!(udp.len(), 2, "{name} {run}: IPv4 and IPv6: {udp:#?}");
            for (e, family, addr) in [
                (udp[0], "AF_INET", "127.0.0.1"),
                (udp[1], "AF_INET6", "::1"),
            ] {
                let s = &e["args"][0]["sock_arg"];
                assert_eq!(e["function_name"], "inet_dgram_connect", "{name} {run}");
                assert_eq!(e["process"]["binary"], "/bin/busybox", "{name} {run}");
                assert_eq!(e["return"]["int_arg"], 0, "{name} {run}: {e}");
                assert_eq!(s["family"], family, "{name} {run}: {e}");
                assert_eq!(s["type"], "SOCK_DGRAM", "{name} {run}: {e}");
                assert_eq!(s["protocol"], "IPPROTO_UDP", "{name} {run}: {e}");
                assert_eq!(s["daddr"], addr, "{name} {run}: {e}");
                assert_eq!(s["saddr"], addr, "{name} {run}: {e}");
                assert_eq!(s["dport"], 53, "{name} {run}: {e}");
                assert_ne!(s["sport"], 0, "{name} {run}: the port chosen: {e}");
            }
            udp_by.push(udp.iter().map(|e| (*e).clone()).collect::<Vec<_>>());
        }
        for (k, t) in udp_by[0].iter().zip(&udp_by[1]) {
            for f in [
                "family", "type", "protocol", "saddr", "daddr", "dport", "state",
            ] {
                assert_eq!(
                    k["args"][0]["sock_arg"][f], t["args"][0]["sock_arg"][f],
                    "{name}: {f} of a UDP connect"
                );
            }
        }
        println!("{name}: UDP connects give the same events on kprobes and on connect");

        // Struct arguments of any function, on kprobes (refused without them).
        let structs = |call: &str| -> Vec<&Value> {
            of_kind(&events, "process_kprobe")
                .into_iter()
                .filter(|e| e["policy_name"] == "vm-structs" && e["function_name"] == call)
                .collect()
        };
        let sends = structs("udp_sendmsg");
        assert!(!sends.is_empty(), "{name}: nslookup's query");
        for e in &sends {
            let s = &e["args"][0]["sock_arg"];
            assert_eq!(s["daddr"], "127.0.0.1", "{name}: {e}");
            assert_eq!(s["dport"], 53, "{name}: {e}");
            assert_eq!(s["protocol"], "IPPROTO_UDP", "{name}: {e}");
            assert_ne!(s["sport"], 0, "{name}: {e}");
            let size: u64 = e["args"][1]["size_arg"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!(size > 12, "{name}: a DNS query's bytes: {e}");
        }
        let packets = structs("ip_output");
        assert!(!packets.is_empty(), "{name}: nslookup's query, sent");
        for e in &packets {
            let p = &e["args"][0]["skb_arg"];
            assert_eq!(p["family"], "AF_INET", "{name}: {e}");
            assert_eq!(p["protocol"], "IPPROTO_UDP", "{name}: {e}");
            assert_eq!(p["saddr"], "127.0.0.1", "{name}: {e}");
            assert_eq!(p["daddr"], "127.0.0.1", "{name}: {e}");
            assert_eq!(p["dport"], 53, "{name}: {e}");
            assert_ne!(p["sport"], 0, "{name}: {e}");
            // IPv4 and UDP headers and a DNS query.
            assert!(p["len"].as_u64().unwrap_or(0) > 20 + 8 + 12, "{name}: {e}");
        }
        let creds = structs("commit_creds");
        let su = creds
            .iter()
            .find(|e| e["args"][0]["process_credentials_arg"]["uid"] == 1234)
            .unwrap_or_else(|| fail("no commit_creds to uid 1234"));
        let c = &su["args"][0]["process_credentials_arg"];
        for f in ["gid", "euid", "egid", "suid", "sgid", "fsuid", "fsgid"] {
            assert_eq!(c[f], 1234, "{name}: {f} of {c}");
        }
        // An empty set is left out, as protojson leaves out an empty list.
        assert_eq!(
            c["caps"]["effective"],
            serde_json::Value::Null,
            "{name}: {c}"
        );
        let root = creds
            .iter()
            .find(|e| e["args"][0]["process_credentials_arg"]["euid"] == 0)
            .unwrap_or_else(|| fail("no commit_creds as root"));
        let effective = root["args"][0]["process_credentials_arg"]["caps"]["effective"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            effective.contains(&Value::from("CAP_SYS_ADMIN"))
                && effective.contains(&Value::from("CAP_CHOWN")),
            "{name}: {root}"
        );
        let bprm = structs("security_bprm_check");
        assert_eq!(bprm.len(), 1, "{name}: {bprm:#?}");
        assert_eq!(
            bprm[0]["args"][0]["linux_binprm_arg"]["path"], "/tmp/bb-copy",
            "{name}"
        );
        for call in [
            "udp_sendmsg",
            "ip_output",
            "commit_creds",
            "security_bprm_check",
        ] {
            assert!(
                stderr.contains(&format!("policy vm-structs: kprobe {call} runs on fentry")),
                "{name}: {stderr}"
            );
        }
        assert!(
            stderr2.contains("policy refused")
                && stderr2.contains("a kprobe on `udp_sendmsg` needs kprobes"),
            "{name}: {stderr2}"
        );
        println!("{name}: sock, skb, size_t, cred and linux_binprm arguments of any function");

        // Override on a BPF LSM hook: the open fails with the policy's error where it
        // runs; without kprobes the policy is refused and the file is read.
        assert!(
            stderr.contains("policy vm-override: kprobe security_file_open runs on the BPF LSM hook file_open (to Override it)"),
            "{name}: {stderr}"
        );
        assert!(
            console.contains("DENY-4242: cat: can't open '/tmp/vm-deny-file': Permission denied"),
            "{name}: the open was overridden with EACCES: {console}"
        );
        assert!(
            console.contains("DENY-4243: secret"),
            "{name}: without the policy the file is read: {console}"
        );
        let denied: Vec<&Value> = of_kind(&events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == "vm-override")
            .collect();
        assert_eq!(denied.len(), 1, "{name}: {denied:#?}");
        assert_eq!(denied[0]["action"], "KPROBE_ACTION_OVERRIDE", "{name}");
        assert_eq!(denied[0]["function_name"], "security_file_open", "{name}");
        assert_eq!(
            denied[0]["args"][0]["file_arg"]["path"], "/tmp/vm-deny-file",
            "{name}"
        );
        assert_eq!(denied[0]["process"]["binary"], "/bin/busybox", "{name}");
        assert!(
            stderr2.contains("policy refused") && stderr2.contains("vm-override"),
            "{name}: {stderr2}"
        );
        println!("{name}: Override on a BPF LSM hook denies the open");

        // An LSM hook of `spec.lsmhooks`, its `file` argument and Override: process_lsm.
        assert!(
            stderr.contains("policy vm-lsm: lsm file_open runs on the BPF LSM hook file_open"),
            "{name}: {stderr}"
        );
        assert!(
            console
                .contains("LSM-4242: cat: can't open '/tmp/vm-lsm-file': Operation not permitted"),
            "{name}: the open was overridden with EPERM: {console}"
        );
        assert!(
            console.contains("LSM-4243: lsm-secret"),
            "{name}: without BPF LSM (--disable-kprobes) the file is read: {console}"
        );
        let lsm: Vec<&Value> = of_kind(&events, "process_lsm")
            .into_iter()
            .filter(|e| e["policy_name"] == "vm-lsm")
            .collect();
        assert_eq!(lsm.len(), 1, "{name}: {lsm:#?}");
        assert_eq!(lsm[0]["function_name"], "file_open", "{name}");
        assert_eq!(lsm[0]["action"], "KPROBE_ACTION_OVERRIDE", "{name}");
        assert_eq!(lsm[0]["message"], "an LSM hook", "{name}");
        assert_eq!(
            lsm[0]["args"][0]["file_arg"]["path"], "/tmp/vm-lsm-file",
            "{name}"
        );
        assert_eq!(lsm[0]["process"]["binary"], "/bin/busybox", "{name}");
        assert!(
            stderr2.contains("policy refused")
                && stderr2.contains("vm-lsm")
                && stderr2.contains("runs as a BPF LSM program, and none runs here: kprobes are off: --disable-kprobes"),
            "{name}: {stderr2}"
        );
        println!("{name}: an lsmhooks hook reports and denies the open");
        struct_arguments(&name, &events);
        socket_tracking(&name, &events);
        usdt_set(&name, &console, &events);
    }
}

/// The `vm-usdt-set` policy: `Set` wrote 32 over the 7 the target passed in memory (it
/// printed what it read back after the probe), left 8 alone, and said so in one event.
fn usdt_set(name: &str, console: &str, events: &[Value]) {
    assert!(
        console.contains("USDT-SET: set 32 set 8"),
        "{name}: the probe writes the matching value only: {console}"
    );
    let set: Vec<&Value> = of_kind(events, "process_usdt")
        .into_iter()
        .filter(|e| e["policy_name"] == "vm-usdt-set")
        .collect();
    assert_eq!(set.len(), 1, "{name}: {set:?}");
    assert_eq!(set[0]["action"], "KPROBE_ACTION_SET", "{name}");
    assert_eq!(set[0]["provider"], "tracer_test", "{name}");
    assert_eq!(set[0]["name"], "set", "{name}");
    assert_eq!(set[0]["path"], "/uprobe-target", "{name}");
    assert_eq!(set[0]["process"]["binary"], "/uprobe-target", "{name}");
    assert_eq!(
        set[0]["args"],
        serde_json::json!([{"int_arg": 7}]),
        "{name}: the value before the write"
    );
    println!("{name}: a USDT Set wrote the probed process's memory");
}

/// The `vm-socktrack` policy's events: on the client's socket, tracked from its
/// `sk_alloc`, each event is the client's, wherever the kernel ran it (the server's
/// reply is received in a softirq in the server's context); its free untracks it.
fn socket_tracking(name: &str, events: &[Value]) {
    let of = |call: &str| -> Vec<&Value> {
        of_kind(events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == "vm-socktrack" && e["function_name"] == call)
            .collect()
    };
    assert!(of("sk_alloc").is_empty(), "{name}: NoPost");
    let client = of_kind(events, "process_exec")
        .into_iter()
        .find(|e| e["process"]["arguments"] == "127.0.0.1 4244")
        .unwrap_or_else(|| panic!("{name}: no exec of the client"));
    let received = of("tcp_rcv_established");
    assert!(!received.is_empty(), "{name}: the reply received");
    for e in received.iter().chain(of("__sk_free").iter()) {
        assert_eq!(
            e["process"]["exec_id"], client["process"]["exec_id"],
            "{name}: the client's socket: {e}"
        );
        assert_eq!(e["process"]["pid"], client["process"]["pid"], "{name}");
        let sock = &e["args"][0]["sock_arg"];
        assert_eq!(sock["dport"], 4244, "{name}: {e}");
        assert_eq!(sock["daddr"], "127.0.0.1", "{name}: {e}");
        assert_eq!(sock["family"], "AF_INET", "{name}: {e}");
    }
    // The kernel stack of a receive: the TCP receive path under the softirq.
    for e in &received {
        let symbols: Vec<&str> = e["kernel_stack_trace"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: a kernel stack: {e}"))
            .iter()
            .filter_map(|f| f["symbol"].as_str())
            .collect();
        assert!(
            symbols
                .iter()
                .any(|s| *s == "tcp_v4_rcv" || *s == "tcp_v4_do_rcv"),
            "{name}: {symbols:?}"
        );
        assert!(
            e["kernel_stack_trace"][0].get("address").is_none(),
            "{name}: no addresses without --expose-stack-addresses"
        );
    }
    let freed = of("__sk_free");
    assert_eq!(
        freed.len(),
        1,
        "{name}: the client's socket freed once: {freed:?}"
    );
    assert_eq!(freed[0]["action"], "KPROBE_ACTION_UNTRACKSOCK", "{name}");
    println!(
        "{name}: socket tracking: {} receives on the client's socket, each the client's, with its kernel stack",
        received.len()
    );
}

/// The `vm-types` policy's events: struct arguments read field by field, at offsets
/// from each kernel's BTF.
fn struct_arguments(name: &str, events: &[Value]) {
    let of = |call: &str| -> Vec<&Value> {
        of_kind(events, "process_kprobe")
            .into_iter()
            .filter(|e| e["policy_name"] == "vm-types" && e["function_name"] == call)
            .collect()
    };
    // security_socket_connect(socket, sockaddr, addrlen): nc's connect to 127.0.0.1:4242.
    let connects = of("security_socket_connect");
    let tcp = connects
        .iter()
        .find(|e| e["args"][1]["sockaddr_arg"]["port"] == 4242)
        .unwrap_or_else(|| panic!("{name}: no connect to port 4242: {connects:#?}"));
    assert_eq!(
        tcp["args"][1]["sockaddr_arg"],
        serde_json::json!({"family": "AF_INET", "addr": "127.0.0.1", "port": 4242}),
        "{name}"
    );
    assert_eq!(
        tcp["args"][0]["sock_arg"]["protocol"], "IPPROTO_TCP",
        "{name}"
    );
    assert_eq!(tcp["args"][0]["sock_arg"]["family"], "AF_INET", "{name}");
    assert_eq!(tcp["args"][2]["int_arg"], 16, "{name}: sizeof(sockaddr_in)");
    assert!(
        connects.iter().any(|e| e["args"][1]["sockaddr_arg"]
            == serde_json::json!({"family": "AF_INET6", "addr": "::1", "port": 53})),
        "{name}: nslookup's connect to [::1]:53: {connects:#?}"
    );
    // dev_hard_start_xmit(skb, dev): packets on loopback, the device by name.
    let xmit = of("dev_hard_start_xmit");
    assert!(!xmit.is_empty(), "{name}: no packet sent on lo");
    assert!(
        xmit.iter().all(|e| e["args"][0]["string_arg"] == "lo"),
        "{name}: {xmit:#?}"
    );
    // cap_capable(cred, user_namespace, cap, opts): su's CAP_SETUID check.
    let caps = of("cap_capable");
    let cap = caps
        .first()
        .unwrap_or_else(|| panic!("{name}: no CAP_SETUID check"));
    assert_eq!(
        cap["args"][1]["capability_arg"],
        serde_json::json!({"value": 7, "name": "CAP_SETUID"}),
        "{name}"
    );
    let ns = &cap["args"][0]["user_ns_arg"];
    assert_eq!(
        (ns["level"].as_i64(), ns["uid"].as_u64()),
        (Some(0), Some(0)),
        "{name}: {ns}"
    );
    assert_eq!(ns["ns"]["is_host"], true, "{name}: {ns}");
    assert_eq!(
        ns["ns"]["inum"], 4026531837u32,
        "{name}: the initial user namespace: {ns}"
    );
    // security_inode_follow_link(dentry, ...): the link's path within its file system
    // (the tmpfs mounted on /tmp), as a dentry knows it.
    let links = of("security_inode_follow_link");
    assert!(
        links
            .iter()
            .any(|e| e["args"][0]["path_arg"]["path"] == "/vm-link"),
        "{name}: {links:#?}"
    );
    // pipe_write(kiocb, iov_iter): the pipe's file and the bytes written, filtered on
    // in the kernel (`Prefix`); `ITER_UBUF` or `ITER_IOVEC`, as the kernel builds it.
    use base64::Engine as _;
    let pipes = of("pipe_write");
    assert_eq!(pipes.len(), 1, "{name}: only the mark's write: {pipes:#?}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            pipes[0]["args"][1]["bytes_arg"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or_default();
    assert_eq!(bytes, b"PIPE-MARK-4242\n", "{name}: {}", pipes[0]);
    assert!(
        pipes[0]["args"][0]["file_arg"]["path"].is_string(),
        "{name}: {}",
        pipes[0]
    );
    let path = pipes[0]["args"][0]["file_arg"]["path"].clone();
    // resolve: the exec'ing process's grandparent's comm, four pointers from the
    // linux_binprm (init's grandchildren: `init`; its children: the idle task's).
    let resolved: Vec<&str> = of_kind(events, "process_lsm")
        .into_iter()
        .filter(|e| e["policy_name"] == "vm-types")
        .filter_map(|e| e["args"][0]["string_arg"].as_str())
        .collect();
    for comm in ["init", "swapper/0"] {
        assert!(resolved.contains(&comm), "{name}: {comm} in {resolved:?}");
    }
    // Override with return: true: the open denied at the call (its twin on the BPF LSM
    // hook), the event posted at the return with the value the override gave.
    let denied: Vec<&Value> = of("security_file_open")
        .into_iter()
        .filter(|e| e["args"][0]["file_arg"]["path"] == "/tmp/vm-retdeny-file")
        .collect();
    assert_eq!(denied.len(), 1, "{name}: {denied:#?}");
    assert_eq!(denied[0]["return"]["int_arg"], -13, "{name}: {}", denied[0]);
    assert_eq!(denied[0]["action"], "KPROBE_ACTION_POST", "{name}");
    println!(
        "{name}: struct arguments: sockaddr, socket, net_device, user_namespace, capability, dentry, kiocb ({path}), iov_iter, resolve; Override on a return probe"
    );
}

/// The guest of the corpus walk, after [`PREAMBLE`]: one agent with every example policy that validates
/// (function hooks on kprobes, `--disable-fentry`: one program for all functions, where
/// fentry would have the emulated kernel verify one per function for minutes), stopped
/// once ready; its log says how each policy loaded.
const CORPUS_INIT: &str = r#"ARGS=""
for f in /corpus/*; do ARGS="$ARGS --tracing-policy $f"; done
# The tests' API server, for the pod-scoped policies (`modules-nohost.yaml`).
mkdir -p /tmp/kube
sleep 100000 | /test-apiserver /tmp/kube > /tmp/kube/path 2>/tmp/kube/err &
while [ ! -s /tmp/kube/path ]; do sleep 0.2; done
export KUBECONFIG=$(cat /tmp/kube/path)
/tracer run --node-name vm-node --tracing-policy-optional --disable-fentry $ARGS > /tmp/agent.out 2> /tmp/agent.err &
AGENT=$!
i=0
while ! grep -q "tracer ready" /tmp/agent.err && kill -0 $AGENT 2>/dev/null; do
  sleep 0.5; i=$((i+1)); [ $i -gt 3600 ] && break
done
echo "STEP agent up after $i polls"
/usr/bin/bash -c 'exit 0'
T=/home/jolsa/tetragon/contrib/tester-progs
echo "TETRAGON-USDT: $($T/usdt --tetragon) / $($T/usdt-override --tetragon)"
sleep 2
kill -INT $AGENT
wait $AGENT
echo "AGENT_EXIT=$?"
echo ===STDERR
gzip -c /tmp/agent.err | base64
echo ===EVENTS
grep -E '"process_(uprobe|usdt)"' /tmp/agent.out | gzip -c | base64
echo ===END
poweroff -f
"#;

/// The tests' API server (a cluster for the pod-scoped policies), and the guest's files
/// that the corpus's uprobe and USDT policies name: bash at
/// `/usr/bin/bash` (and `/bin/bash`, as on a merged-/usr system), libc also at
/// `/lib64/libc.so.6` (where Fedora keeps it: `uprobe-binaries.yaml`), and a test program
/// with the probe points of `usdt.yaml` and `usdt-set.yaml` at the paths they name (a
/// Tetragon developer's build of its test programs).
fn corpus_binaries(c: &mut vm::Cpio) {
    c.binary(
        "test-apiserver",
        Path::new(env!("CARGO_BIN_EXE_test-apiserver")),
    );
    // The agent's Kubernetes client loads the system's CA certificates even for a server
    // over plain HTTP, as in a node's image.
    c.file(
        "etc/ssl/certs/ca-certificates.crt",
        0o644,
        &std::fs::read("/etc/ssl/certs/ca-certificates.crt")
            .expect("the system's CA certificates (Debian's ca-certificates)"),
    );
    c.binary("usr/bin/bash", Path::new("/usr/bin/bash"));
    c.symlink("bin/bash", "/usr/bin/bash");
    c.symlink("lib64/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6");
    let target = std::fs::read(env!("CARGO_BIN_EXE_uprobe-target")).expect("the USDT target");
    for name in ["usdt", "usdt-override"] {
        c.file(
            &format!("home/jolsa/tetragon/contrib/tester-progs/{name}"),
            0o755,
            &target,
        );
    }
}

/// What the corpus's uprobe and USDT policies report when their triggers run: bash's
/// `main` and `_start` (`uprobe.yaml`, `uprobe-host.yaml`), libc's `malloc` in bash only
/// (`uprobe-binaries.yaml`), `test:usdt3` with its two arguments (`usdt.yaml`), and
/// `tetragon:test_4B` with `Set` writing 32 over its first argument (`usdt-set.yaml`),
/// which the program read back.
fn corpus_triggers(
    kernel: &str,
    console: &str,
    events: &[Value],
    policy_of: &dyn Fn(&str) -> String,
) {
    let uprobes = of_kind(events, "process_uprobe");
    let uprobe = |file: &str, symbol: &str| -> &Value {
        let policy = policy_of(file);
        let hits: Vec<&&Value> = uprobes
            .iter()
            .filter(|e| e["policy_name"] == policy.as_str() && e["symbol"] == symbol)
            .collect();
        assert!(
            !hits.is_empty(),
            "{kernel}: {file}: no {symbol}: {uprobes:#?}"
        );
        for e in &hits {
            assert_eq!(
                e["process"]["binary"], "/usr/bin/bash",
                "{kernel}: {file}: {e}"
            );
            assert_eq!(e["action"], "KPROBE_ACTION_POST", "{kernel}: {file}: {e}");
        }
        hits[0]
    };
    let main = uprobe("uprobe.yaml", "main");
    assert_eq!(main["path"], "/bin/bash", "{kernel}: {main}");
    assert_eq!(
        main["process"]["arguments"], "-c \"exit 0\"",
        "{kernel}: {main}"
    );
    let start = uprobe("uprobe-host.yaml", "_start");
    assert_eq!(
        start["path"], "/procRoot/1/root/usr/bin/bash",
        "{kernel}: {start}"
    );
    let malloc = uprobe("uprobe-binaries.yaml", "malloc");
    assert_eq!(malloc["path"], "/lib64/libc.so.6", "{kernel}: {malloc}");
    assert!(
        uprobes
            .iter()
            .all(|e| e["policy_name"] != policy_of("uprobe-pid.yaml").as_str()),
        "{kernel}: uprobe-pid.yaml names another pid"
    );
    assert!(
        console.contains("TETRAGON-USDT: test_4B 1 2 3 / test_4B 32 2 3"),
        "{kernel}: Set writes the first argument in the program usdt-set.yaml names only: {console}"
    );
    let usdts = of_kind(events, "process_usdt");
    let usdt = |file: &str| -> Vec<&&Value> {
        let policy = policy_of(file);
        usdts
            .iter()
            .filter(|e| e["policy_name"] == policy.as_str())
            .collect()
    };
    let usdt3 = usdt("usdt.yaml");
    assert_eq!(usdt3.len(), 1, "{kernel}: {usdts:#?}");
    assert_eq!(usdt3[0]["provider"], "test", "{kernel}");
    assert_eq!(usdt3[0]["name"], "usdt3", "{kernel}");
    assert_eq!(
        usdt3[0]["path"], "/home/jolsa/tetragon/contrib/tester-progs/usdt",
        "{kernel}"
    );
    assert_eq!(
        usdt3[0]["args"],
        serde_json::json!([{"int_arg": 7}, {"long_arg": "-9"}]),
        "{kernel}"
    );
    let set = usdt("usdt-set.yaml");
    assert_eq!(set.len(), 1, "{kernel}: {usdts:#?}");
    assert_eq!(set[0]["provider"], "tetragon", "{kernel}");
    assert_eq!(set[0]["name"], "test_4B", "{kernel}");
    assert_eq!(set[0]["action"], "KPROBE_ACTION_SET", "{kernel}");
    assert_eq!(
        set[0]["process"]["binary"], "/home/jolsa/tetragon/contrib/tester-progs/usdt-override",
        "{kernel}"
    );
    assert_eq!(
        set[0]["args"],
        serde_json::json!([{"int_arg": 1}, {"int_arg": 2}, {"int_arg": 3}]),
        "{kernel}: the values before the write"
    );
    println!("{kernel}: the corpus's uprobes and USDT probe points report their triggers");
}

/// Example policies the tracer refuses on a kernel with kprobes and BPF LSM, for what it
/// does not do yet (the README's table says so): the test fails when one loads.
const VM_NOT_YET: &[(&str, &str)] = &[];

/// Tetragon's example policies that validate, loaded together on each kernel: each loads
/// fully, partly (every hook that does not run named with its reason), or is refused
/// only because none of its hooks can run there (the tests' API server is the cluster of
/// the pod-scoped ones). Prints the table of the README.
#[test]
fn tetragon_examples_on_distribution_kernels() {
    let kernels = vm::kernels();
    if kernels.is_empty() {
        if std::env::var_os("TRACER_SKIP_VM").is_some() {
            println!("SKIPPED tetragon_examples_on_distribution_kernels: TRACER_SKIP_VM is set");
            return;
        }
        panic!("no kernels to boot: run the tests with `cargo xtask test`");
    }
    let dir = integration::corpus::corpus();
    let mut files = Vec::new();
    integration::corpus::policies(&dir, &dir, &mut files);
    // Copies under /corpus, each named after its file: the corpus reuses names
    // (`connect`, `lsm`, ...), and one agent holds one policy of a name.
    let mut copies = Vec::new();
    let mut invalid = 0;
    for (i, (name, path)) in files.iter().enumerate() {
        if tracer::policy::parse::file(path).is_err() {
            invalid += 1;
            continue;
        }
        let text = std::fs::read_to_string(path).expect("read a corpus file");
        let mut renamed = String::new();
        let mut in_metadata = false;
        let mut done = false;
        for line in text.lines() {
            if line.starts_with("metadata:") {
                in_metadata = true;
            } else if in_metadata && !done && line.trim_start().starts_with("name:") {
                renamed.push_str(&format!("  name: corpus-{i}\n"));
                done = true;
                continue;
            }
            renamed.push_str(line);
            renamed.push('\n');
        }
        copies.push((name.clone(), format!("corpus/c{i}.yaml"), renamed));
    }
    let mut initramfs = vm::Cpio::default();
    corpus_binaries(&mut initramfs);
    initramfs.dir("corpus");
    for (_, at, text) in &copies {
        initramfs.file(at, 0o644, text.as_bytes());
    }
    let initramfs =
        vm::initramfs_with(&agent_bin(), &format!("{PREAMBLE}{CORPUS_INIT}"), initramfs);
    for (kernel_name, kernel) in kernels {
        let started = std::time::Instant::now();
        let console = vm::boot(&kernel, &initramfs, Duration::from_secs(3600));
        println!("{kernel_name}: the guest ran for {:.0?}", started.elapsed());
        let fail = |what: &str| -> ! { panic!("{kernel_name}: {what}\nconsole:\n{console}") };
        let release = vm::section(&console, "KERNEL").unwrap_or_else(|| fail("no output"));
        let stderr = vm::section_gz(&console, "STDERR").unwrap_or_else(|| fail("no agent log"));
        if !stderr.contains("tracer ready") {
            fail(&format!("the agent never got ready:\n{stderr}"));
        }
        let mut table: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut wrong = Vec::new();
        for (name, at, _) in &copies {
            let source = format!("/{at}");
            let line = stderr.lines().find(|l| {
                l.contains(&format!("from {source}:")) || l.contains(&format!("refused: {source}:"))
            });
            let not_yet = VM_NOT_YET.iter().find(|(file, _)| file == name);
            let state = match line {
                Some(l) if l.contains("policy refused") => {
                    if l.contains("none of its hooks can run here: ") {
                        "refused here"
                    } else if not_yet.is_some_and(|(_, why)| l.contains(why)) {
                        "refused: not supported yet"
                    } else {
                        wrong.push(format!("{name}: {l}"));
                        "refused"
                    }
                }
                Some(l) if l.contains(" partly loaded from ") => "partly",
                Some(l) if l.contains(" loaded from ") => "fully",
                _ => {
                    wrong.push(format!("{name}: no outcome in the log"));
                    "unknown"
                }
            };
            if state != "fully" {
                // Why, hook by hook, for the README's table.
                let policy = format!("policy corpus-{}", &at["corpus/c".len()..at.len() - 5]);
                for l in stderr.lines().filter(|l| {
                    l.contains(&format!("{policy}: ")) || l.contains(&format!("{source}: "))
                }) {
                    println!(
                        "{kernel_name}: {name}: {}",
                        l.split_once("policy ").map_or(l, |(_, r)| r)
                    );
                }
            }
            table.entry(state).or_default().push(name);
        }
        println!(
            "{kernel_name} ({}): {} files, {invalid} not valid yet",
            release.trim(),
            files.len()
        );
        for (state, names) in &table {
            println!(
                "{kernel_name}: {state}: {} ({})",
                names.len(),
                names.join(", ")
            );
        }
        assert!(
            wrong.is_empty(),
            "{kernel_name}: refused for another reason than the kernel:\n{}\nlog:\n{stderr}",
            wrong.join("\n")
        );
        for (file, _) in VM_NOT_YET {
            assert!(
                table
                    .get("refused: not supported yet")
                    .is_some_and(|n| n.contains(file)),
                "{kernel_name}: {file} is no longer refused for what the tracer lacks: take it off VM_NOT_YET and update the README's table"
            );
        }
        assert!(
            console.contains("AGENT_EXIT=0"),
            "{kernel_name}: clean exit: {console}"
        );
        let events: Vec<Value> = vm::section_gz(&console, "EVENTS")
            .unwrap_or_else(|| fail("no events"))
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| fail(&format!("{e}: {l}"))))
            .collect();
        let policy_of = |file: &str| -> String {
            let (_, at, _) = copies
                .iter()
                .find(|(name, _, _)| name == file)
                .unwrap_or_else(|| panic!("{file} in the corpus"));
            format!("corpus-{}", &at["corpus/c".len()..at.len() - 5])
        };
        corpus_triggers(&kernel_name, &console, &events, &policy_of);
    }
}

/// The client's `tcp_connect` and `tcp_close` events of the connection to `port`.
fn network(events: &[Value], port: u16) -> [Value; 2] {
    let of = |call: &str| -> Value {
        let hits: Vec<&Value> = of_kind(events, "process_kprobe")
            .into_iter()
            .filter(|e| e["function_name"] == call && e["args"][0]["sock_arg"]["dport"] == port)
            .collect();
        assert_eq!(hits.len(), 1, "one {call} to port {port}: {hits:#?}");
        let e = hits[0].clone();
        assert_eq!(e["policy_name"], "vm-connect");
        assert_eq!(e["action"], "KPROBE_ACTION_POST");
        let s = &e["args"][0]["sock_arg"];
        assert_eq!(s["family"], "AF_INET", "{e}");
        assert_eq!(s["type"], "SOCK_STREAM", "{e}");
        assert_eq!(s["protocol"], "IPPROTO_TCP", "{e}");
        assert_eq!(s["saddr"], "127.0.0.1", "{e}");
        assert_eq!(s["daddr"], "127.0.0.1", "{e}");
        e
    };
    [of("tcp_connect"), of("tcp_close")]
}
