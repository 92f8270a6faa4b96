//! The `aardvark` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    aardvark::cli::main()
}
