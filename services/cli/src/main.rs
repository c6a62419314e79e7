//! `refract`: run the platform (`serve`), one of its services, or deploy an automation.

/// mimalloc rather than glibc's malloc: the platform allocates and frees many short-lived
/// buffers across threads (events, JSON, guest stores), where glibc's per-thread arenas cost
/// CPU in consolidation and keep freed memory as RSS (see the webhook benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    refract::cli::main()
}
