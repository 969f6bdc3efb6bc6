//! The tracer's kernel programs. Data path: a hook in `hooks/` reads what it needs
//! through `kread` (kernel struct fields at offsets from `globals::OFFSETS`), fills a
//! fixed-size record of `tracer-common` and submits it through `emit` to the `EVENTS`
//! ring buffer, counting every record the ring buffer could not take.
#![no_std]
#![no_main]

mod emit;
mod globals;
mod hooks;
mod kread;
mod maps;
mod policy;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a loaded program: the verifier rejects any path that reaches it.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
