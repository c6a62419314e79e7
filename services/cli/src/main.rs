//! `refract`: run the platform (`serve`), one of its services, or deploy an automation.

fn main() -> std::process::ExitCode {
    refract::cli::main()
}
