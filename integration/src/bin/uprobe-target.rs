//! `uprobe-target NAME...`: the uprobe and USDT tests' workload. Calls
//! `tracer_test_greet(i, NAME)` for each argument, in order (`i` counting from 1), and
//! prints what it returns: a function with an integer and a string argument, in the
//! symbol table under its own name, for a uprobe to hook by symbol or by file offset.
//! Before each call it passes the USDT probe point `tracer_test:greet` (`.note.stapsdt`)
//! with `i`, the name's length (a 32-bit signed value) and the name; and
//! `tracer_test:lazy`, guarded by its semaphore (its arguments computed only while the
//! semaphore is raised, that is while a probe is attached), with `-i`.
//!
//! `uprobe-target --set N` (x86-64): passes the USDT probe point `tracer_test:set` with
//! one argument, the 32-bit value N in memory (`-4@0(%reg)`: what a `Set` action can
//! write), and prints `set V` with the value read back after the probe.
//!
//! `uprobe-target --tetragon` (x86-64): passes the probe points of Tetragon's USDT
//! examples, `test:usdt3` (7, -9) and `tetragon:test_4B` (three 32-bit values in memory,
//! 1, 2 and 3), and prints `test_4B A B C` with the values read back after the probe.
//!
//! `uprobe-target --stack` (x86-64): calls `tracer_test_caller`, which calls
//! `tracer_test_framed`, prints `called`, and waits for its standard input to close, so
//! that the agent reads its mappings while it runs (the stack trace test).

use std::ffi::{CStr, CString, c_char};

/// The probed function: the length of `name` plus `n` (something to compute, so that
/// the call is not folded away).
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn tracer_test_greet(n: i64, name: *const c_char) -> i64 {
    // SAFETY: the caller passes a NUL-terminated string.
    let len = unsafe { CStr::from_ptr(name) }.to_bytes().len() as i64;
    std::hint::black_box(len + n)
}

// The stack trace test's probed function, with a frame of its own (`push %rbp; mov
// %rsp,%rbp`, whatever the compiler does with the rest of the binary): probed after
// those two instructions (4 bytes in), a walk of the user stack by frame pointers finds
// the return address into its caller.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl tracer_test_framed",
    ".type tracer_test_framed,@function",
    "tracer_test_framed:",
    "push %rbp",
    "mov %rsp, %rbp",
    "lea 1(%rdi), %rax",
    "pop %rbp",
    "ret",
    ".size tracer_test_framed, .-tracer_test_framed",
    options(att_syntax)
);

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    /// `n + 1`.
    fn tracer_test_framed(n: i64) -> i64;
}

/// The caller the stack trace test looks for.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_test_caller(n: i64) -> i64 {
    // SAFETY: a function of this file's assembly, which only computes on its argument.
    unsafe { tracer_test_framed(std::hint::black_box(n)) }
}

/// A USDT probe point whose arguments are all in memory, at offsets from the register
/// that holds `$at` (`$args`: the note's argument string, `{at}` standing for that
/// register), which is what a `Set` action can write: a `nop` and a note in its own
/// section, laid out as the SystemTap SDT format says (the `probe` crate's layout).
#[cfg(target_arch = "x86_64")]
macro_rules! probe_in_memory {
    ($provider:literal, $name:literal, $args:literal, $at:expr) => {
        std::arch::asm!(
            "990: nop",
            ".pushsection .note.stapsdt,\"?\",\"note\"",
            ".balign 4",
            ".4byte 992f-991f, 994f-993f, 3",
            "991: .asciz \"stapsdt\"",
            "992: .balign 4",
            "993: .8byte 990b",
            ".8byte _.stapsdt.base",
            ".8byte 0",
            concat!(".asciz \"", $provider, "\""),
            concat!(".asciz \"", $name, "\""),
            concat!(".asciz \"", $args, "\""),
            "994: .balign 4",
            ".popsection",
            ".ifndef _.stapsdt.base",
            ".pushsection .stapsdt.base,\"aGR\",\"progbits\",.stapsdt.base,comdat",
            ".weak _.stapsdt.base",
            ".hidden _.stapsdt.base",
            "_.stapsdt.base: .space 1",
            ".size _.stapsdt.base, 1",
            ".popsection",
            ".endif",
            at = in(reg) $at,
            options(nostack, preserves_flags, att_syntax),
        )
    };
}

/// Passes `tracer_test:set` with `value`'s memory as its argument (the note says 4 signed
/// bytes at 0 from the register that holds its address), and returns the value then.
#[cfg(target_arch = "x86_64")]
fn probe_set(value: i32) -> i32 {
    let mut cell = value;
    let at = &raw mut cell;
    // SAFETY: a `nop` and a note (see the macro); `at` points to `cell`, which lives
    // across the `nop`. The probe may change `cell` (that is the test): it is read back
    // volatile.
    unsafe {
        probe_in_memory!("tracer_test", "set", "-4@0({at})", at);
        at.read_volatile()
    }
}

/// The probe points of Tetragon's USDT examples (`usdt.yaml`, `usdt-set.yaml`), for the
/// corpus test: `test:usdt3` with a 32-bit 7 and a 64-bit -9, then `tetragon:test_4B`
/// with three 32-bit values in memory (1, 2, 3); returns those three after the probe.
#[cfg(target_arch = "x86_64")]
fn probe_tetragon() -> [i32; 3] {
    let a: i32 = std::hint::black_box(7);
    let b: i64 = std::hint::black_box(-9);
    probe::probe!(test, usdt3, a, b);
    let mut cells = [1i32, 2, 3];
    let at = cells.as_mut_ptr();
    // SAFETY: as in `probe_set`: `at` points to the three cells, which live across the
    // `nop`, and are read back volatile.
    unsafe {
        probe_in_memory!(
            "tetragon",
            "test_4B",
            "-4@0({at}) -4@4({at}) -4@8({at})",
            at
        );
        [
            at.read_volatile(),
            at.add(1).read_volatile(),
            at.add(2).read_volatile(),
        ]
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::env::args().nth(1).as_deref() == Some("--set") {
        let n = std::env::args()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        println!("set {}", probe_set(n));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::env::args().nth(1).as_deref() == Some("--tetragon") {
        let [a, b, c] = probe_tetragon();
        println!("test_4B {a} {b} {c}");
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::env::args().nth(1).as_deref() == Some("--stack") {
        println!("called {}", tracer_test_caller(41));
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        return;
    }
    for (i, name) in std::env::args().skip(1).enumerate() {
        let Ok(c) = CString::new(name) else {
            continue;
        };
        let n = i as i64 + 1;
        let len = c.as_bytes().len() as i32;
        probe::probe!(tracer_test, greet, n, len, c.as_ptr());
        probe::probe_lazy!(tracer_test, lazy, -n);
        // SAFETY: a NUL-terminated string that outlives the call.
        let r = unsafe { tracer_test_greet(i as i64 + 1, std::hint::black_box(c.as_ptr())) };
        println!("{r}");
    }
}
