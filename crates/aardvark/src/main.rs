//! The `aardvark` binary: everything lives in the library's `cli` module.

/// The server builds large answers (a page of 1,000 principals is megabytes), and glibc's
/// allocator hands such buffers back to the kernel after each request and faults them in
/// again on the next: perf put 44% of a loaded server's time in the kernel, most of it page
/// faults under `memmove`. mimalloc keeps them; its `override` feature makes SQLite's own
/// allocations (the page text it puts together) use it too.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aardvark::cli::main()
}
