//! The `tta-host` binary; everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tta_host::cli::main())
}
