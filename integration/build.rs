//! The uprobe test binary is linked without RELRO: with it, the page that holds the USDT
//! semaphore is mapped twice (the end of the RELRO segment and the start of the data
//! segment), and the kernel raises the copy in the first mapping, which the program
//! never reads (bpftrace meets the same).
fn main() {
    println!("cargo:rustc-link-arg-bin=uprobe-target=-Wl,-z,norelro");
}
