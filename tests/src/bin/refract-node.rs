//! The `refract` command line, linked into this package so that its end-to-end tests can start
//! real service processes (`CARGO_BIN_EXE_refract-node`) without building the CLI package's
//! binary separately.

fn main() -> std::process::ExitCode {
    refract::cli::main()
}
