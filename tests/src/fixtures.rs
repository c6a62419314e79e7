//! Building the guest fixtures.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The fixtures workspace.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Where the guests are built: `$CARGO_TARGET_DIR/guests`, else `<workspace>/target/guests`.
pub fn guest_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("guests"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests"),
    }
}

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds every fixture (once per process) and returns the folder holding the `.wasm` files.
pub fn build_all() -> anyhow::Result<PathBuf> {
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> anyhow::Result<PathBuf> {
    let target = guest_target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = fixtures_dir().join("Cargo.toml");
    // `fixture-minimal` is no_std: built alone, or feature unification would turn wit-bindgen's
    // `std` back on for it.
    for selection in [
        &["--workspace", "--exclude", "fixture-minimal"][..],
        &["-p", "fixture-minimal"][..],
    ] {
        let status = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(&manifest)
            .args(selection)
            .env("CARGO_TARGET_DIR", &target)
            // Flags meant for the host build must not leak into the guest build.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .with_context(|| format!("running {cargo} build for {}", manifest.display()))?;
        if !status.success() {
            bail!(
                "building the guest fixtures failed ({status}); run: cargo build --release --target wasm32-wasip2 --manifest-path {} {}",
                manifest.display(),
                selection.join(" ")
            );
        }
    }
    Ok(target.join("wasm32-wasip2").join("release"))
}

/// The bytes of fixture `name` (`hostile`, `trivial`, `minimal`, `bad-import`, `no-run`,
/// `world-0-1-1`).
pub fn fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = build_all()?.join(format!("fixture_{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}
