//! `loader: true` policies (Tetragon's `loader.yaml`, from the corpus): a `process_loader`
//! event for each executable mapping of a file, read from the kernel's perf mmap records;
//! the perf events open while such a policy is loaded, and close with the last one.

use std::{
    fs,
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use base64::Engine as _;
use integration::{Agent, corpus::corpus, of_kind, privileged, real, run};
use serde_json::Value;

/// The file this test process maps whose path ends with `suffix` (its libc, its ld.so):
/// `/bin/true` maps the same ones.
fn mapped(suffix: &str) -> String {
    let maps = fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains(suffix))
        .unwrap_or_else(|| panic!("no mapping of *{suffix}* in this process:\n{maps}"))
        .to_owned()
}

/// The GNU build id of an ELF file, from its `.note.gnu.build-id` section, found by name
/// through the section headers (the agent reads the program headers' `PT_NOTE`s: another
/// way to the same bytes). 64-bit little-endian files only.
fn build_id_of(path: &str) -> Vec<u8> {
    let f = fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert_eq!(&f[..4], b"\x7fELF", "{path} is not ELF");
    assert_eq!((f[4], f[5]), (2, 1), "{path}: not 64-bit little-endian");
    let u16_at = |at: usize| u16::from_le_bytes([f[at], f[at + 1]]) as usize;
    let u32_at =
        |at: usize| u32::from_le_bytes(f[at..at + 4].try_into().expect("4 bytes")) as usize;
    let u64_at =
        |at: usize| u64::from_le_bytes(f[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(section(shstrndx) + 0x18);
    for i in 0..shnum {
        let sh = section(i);
        let name_at = strtab + u32_at(sh);
        let name_end = name_at
            + f[name_at..]
                .iter()
                .position(|b| *b == 0)
                .expect("a section name");
        if &f[name_at..name_end] != b".note.gnu.build-id" {
            continue;
        }
        let note = u64_at(sh + 0x18);
        let (namesz, descsz, kind) = (u32_at(note), u32_at(note + 4), u32_at(note + 8));
        assert_eq!((namesz, kind), (4, 3), "{path}: a GNU build id note");
        assert_eq!(&f[note + 12..note + 16], b"GNU\0");
        return f[note + 16..note + 16 + descsz].to_vec();
    }
    panic!("{path} has no .note.gnu.build-id section");
}

/// How many CPUs are online (`0-3,6`: 5).
fn online_cpus() -> usize {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs");
    text.trim()
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>().expect("a CPU") - a.parse::<usize>().expect("a CPU") + 1
            }
            None => 1,
        })
        .sum()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Waits until `agent` has written a `process_loader` event `found` accepts.
fn wait_for_loader(agent: &Agent, what: &str, found: impl Fn(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let events = agent.events();
        if of_kind(&events, "process_loader").into_iter().any(&found) {
            return events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no process_loader event of {what}; agent stderr:\n{}",
            agent.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Tetragon's `loader.yaml`: running `/bin/true` reports its libc and its ld.so, each
/// with the build id of its ELF note, as the new program's (its pid and binary, this
/// test as its parent), under the policy's name.
#[test]
fn a_program_s_libraries_are_reported_with_their_build_ids() {
    if !privileged("a_program_s_libraries_are_reported_with_their_build_ids") {
        return;
    }
    let policy = corpus().join("loader.yaml");
    let agent = Agent::start(&["--tracing-policy", policy.to_str().expect("utf-8")]);
    agent.wait_for_log("loader: reading the executable mappings");
    let libc = real(&mapped("/libc.so.6"));
    let ld_so = real(&mapped("/ld-linux"));
    let (pid, out) = run(Command::new("/bin/true").arg("tracer-loader-test"));
    assert!(out.status.success());
    let events = wait_for_loader(&agent, "/bin/true's libc", |e| {
        e["process"]["pid"] == pid && e["path"] == libc.as_str()
    });
    let ours: Vec<&Value> = of_kind(&events, "process_loader")
        .into_iter()
        .filter(|e| e["process"]["pid"] == pid)
        .collect();
    let binary = real("/bin/true");
    for (path, what) in [(&libc, "libc"), (&ld_so, "ld.so")] {
        let e = ours
            .iter()
            .find(|e| e["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no process_loader of {what} ({path}) among {ours:#?}"));
        assert_eq!(e["process"]["pid"], pid, "{what}");
        assert_eq!(e["process"]["binary"], binary.as_str(), "{what}");
        assert_eq!(e["process"]["arguments"], "tracer-loader-test", "{what}");
        assert_eq!(e["parent"]["pid"], std::process::id(), "{what}");
        assert_eq!(e["policy_name"], "loader", "{what}");
        assert_eq!(
            e["buildid"],
            base64(&build_id_of(path)).as_str(),
            "{what}: the build id of {path}'s ELF note"
        );
        assert_eq!(
            e["process"]["exec_id"],
            integration::exec_of(&events, pid).expect("its exec")["process"]["exec_id"],
            "{what}: the exec'd program's process"
        );
    }
    // Only executable mappings of files: one event each for libc and ld.so (their
    // read-only and data segments are not executable).
    for path in [&libc, &ld_so] {
        assert_eq!(
            ours.iter().filter(|e| e["path"] == path.as_str()).count(),
            1,
            "{path}: {ours:#?}"
        );
    }
    // The binary itself, mapped by the kernel during the exec (attributed to the program
    // or, had the agent read it between the mapping and the exec record, to the process
    // before the exec: the same pid either way).
    wait_for_loader(&agent, "/bin/true itself", |e| {
        e["process"]["pid"] == pid && e["path"] == binary.as_str()
    });
}

/// The perf events (`anon_inode:[perf_event]` descriptors, one per online CPU) are open
/// only while a `loader: true` policy is loaded: none before, none after it is removed,
/// and no `process_loader` events then.
#[test]
fn the_mappings_are_read_only_while_a_loader_policy_is_loaded() {
    if !privileged("the_mappings_are_read_only_while_a_loader_policy_is_loaded") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = Agent::start(&["--tracing-policy-dir", dir.path().to_str().expect("utf-8")]);
    let perf_fds = || {
        fs::read_dir(format!("/proc/{}/fd", agent.pid()))
            .expect("the agent's descriptors")
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l == Path::new("anon_inode:[perf_event]"))
            .count()
    };
    let before = perf_fds();
    let cpus = online_cpus();
    fs::copy(corpus().join("loader.yaml"), dir.path().join("loader.yaml")).expect("copy");
    agent.wait_for_log("loader: reading the executable mappings");
    assert_eq!(perf_fds(), before + cpus, "one perf event per online CPU");
    let (pid, _) = run(&mut Command::new("/bin/true"));
    wait_for_loader(&agent, "/bin/true while loaded", |e| {
        e["process"]["pid"] == pid
    });
    fs::remove_file(dir.path().join("loader.yaml")).expect("remove the policy");
    agent.wait_for_log("stopped reading the executable mappings");
    assert_eq!(perf_fds(), before, "the perf events are closed");
    let (pid, _) = run(&mut Command::new("/bin/true"));
    let events = agent.sync();
    assert!(
        of_kind(&events, "process_loader")
            .iter()
            .all(|e| e["process"]["pid"] != pid),
        "a process_loader event after the policy was removed"
    );
    assert!(
        integration::exit_of(&events, pid).is_some(),
        "the program ran and was traced"
    );
}
