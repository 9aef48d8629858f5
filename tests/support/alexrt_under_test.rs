//! The `alexrt` program as the end-to-end tests run it: the same entry point as
//! `runtime/src/main.rs`, built by Cargo for this package's tests.

fn main() -> std::process::ExitCode {
    alexrt::cli::main()
}
