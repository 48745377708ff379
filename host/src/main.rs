//! The `tta-host` binary; everything lives in the library's `cli` module.

/// mimalloc frees memory another thread allocated without contention; reports are made
/// on call threads and freed on the export thread (see `benches/overhead/`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tta_host::cli::main())
}
