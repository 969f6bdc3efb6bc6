//! The lifecycle on real distribution kernels (Debian's 6.1 and 6.12 under qemu), where
//! `task_struct` and friends have other layouts than on the host and
//! `sched_process_exit` has no `group_dead` argument: the same binary, offsets resolved
//! from each kernel's own BTF.

use std::time::Duration;

use integration::{exit_of, flags, of_kind, vm};
use serde_json::Value;

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
echo ===KERNEL
uname -r
# tracefs is left unmounted: the agent mounts it.
/tracer run --node-name vm-node > /tmp/events 2> /tmp/agent.err &
AGENT=$!
i=0
while ! grep -q "tracer ready" /tmp/agent.err; do
  sleep 0.2; i=$((i+1)); [ $i -gt 1500 ] && break
done
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
i=0
while [ $i -lt 20 ]; do
  /bin/true vm-marker-$i
  j=0
  while ! grep -q "vm-marker-$i\".*process_exit\|process_exit.*\"vm-marker-$i\"" /tmp/events; do
    sleep 0.2; j=$((j+1)); [ $j -gt 50 ] && break
  done
  grep -q "process_exit.*\"vm-marker-$i\"" /tmp/events && break
  i=$((i+1))
done
kill -INT $AGENT
wait $AGENT
echo "AGENT_EXIT=$?"
echo ===EVENTS
cat /tmp/events
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
    let initramfs = vm::initramfs(&agent_bin(), INIT);
    for (name, kernel) in kernels {
        let console = vm::boot(&kernel, &initramfs, Duration::from_secs(600));
        let fail = |what: &str| -> ! { panic!("{name}: {what}\nconsole:\n{console}") };
        let release = vm::section(&console, "KERNEL").unwrap_or_else(|| fail("no output"));
        println!("{name}: booted {}", release.trim());
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
        let events: Vec<Value> = vm::section(&console, "EVENTS")
            .unwrap_or_else(|| fail("no events"))
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| fail(&format!("{e}: {l}"))))
            .collect();
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
        assert!(
            execs
                .iter()
                .any(|e| e["process"]["binary"] == "/bin/busybox"
                    && e["parent"]["pid"] == echo["parent"]["pid"]
                    && e["process"]["arguments"].is_null()),
            "{name}: cat, with no arguments, under the same shell"
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
    }
}
