//! `refract`: the one binary. Its subcommands arrive with the platform issue.

fn main() {
    eprintln!("refract: no subcommands yet (the platform issue adds serve, gateway, runtime, ...)");
    std::process::exit(2);
}
