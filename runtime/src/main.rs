//! `alexrt`: the runtime's command line, all of it in the library's [`alexrt::cli`].

fn main() -> std::process::ExitCode {
    alexrt::cli::main()
}
