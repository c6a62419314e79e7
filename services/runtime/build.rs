//! Builds the DSL interpreter component (`services/dsl-interpreter`, wasm32-wasip2, release)
//! and hands its path to `src/dsl.rs`, which embeds it: the runtime ships its interpreter, so
//! `cargo run -p refract -- serve` from a fresh clone runs DSL automations with nothing else
//! to build.
//!
//! The nested cargo gets its own target dir next to the outer one (the outer one is locked for
//! the whole build) and a clean environment (no outer target, flags or clippy wrapper).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir.join("../..");
    for watched in [
        "services/dsl-interpreter/src",
        "services/dsl-interpreter/Cargo.toml",
        "services/dsl-interpreter/Cargo.lock",
        "services/dsl-interpreter/.cargo/config.toml",
        "services/dsl/src",
        "services/dsl/Cargo.toml",
        "guest-sdk/src",
        "guest-sdk/macro/src",
        "guest-sdk/Cargo.toml",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = interpreter_target_dir(&out_dir);
    let manifest = root.join("services/dsl-interpreter/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ensure_wasm_target();
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        // Its `.cargo/config.toml` (linker settings) applies only when cargo runs there.
        .current_dir(root.join("services/dsl-interpreter"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the DSL interpreter component failed ({s}); is the wasm32-wasip2 target installed \
             (`rustup target add wasm32-wasip2`)? Command: cargo build --release --target wasm32-wasip2 --manifest-path {}",
            manifest.display()
        ),
        Err(e) => panic!("could not run {cargo:?} to build the DSL interpreter component: {e}"),
    }
    let wasm = target_dir.join("wasm32-wasip2/release/refract_dsl_interpreter.wasm");
    println!(
        "cargo:rustc-env=REFRACT_DSL_INTERPRETER_WASM={}",
        wasm.display()
    );
}

/// rustup installs the targets of `rust-toolchain.toml` only when it installs the toolchain
/// itself: on a machine that already had this toolchain, `wasm32-wasip2` is missing and the
/// first build would stop here. Under rustup (which sets `RUSTUP_TOOLCHAIN`), add the target
/// to the toolchain in use when its standard library is not there; elsewhere, the panic
/// below says what to do.
fn ensure_wasm_target() {
    let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN") else {
        return;
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        return;
    };
    if sysroot.join("lib/rustlib/wasm32-wasip2/lib").is_dir() {
        return;
    }
    println!(
        "cargo:warning=the wasm32-wasip2 target is missing from this toolchain; installing it with rustup"
    );
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2", "--toolchain"])
        .arg(&toolchain)
        .status();
    if !matches!(added, Ok(s) if s.success()) {
        println!("cargo:warning=`rustup target add wasm32-wasip2` failed: {added:?}");
    }
}

/// `<outer target dir>/refract-dsl-interpreter`, found from OUT_DIR
/// (`<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`), so every profile and every
/// `cargo check`/`clippy`/`test` of the runtime shares one warm interpreter build. Falls back
/// to OUT_DIR itself.
fn interpreter_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(
            || out_dir.join("dsl-interpreter"),
            |t| t.join("refract-dsl-interpreter"),
        )
}
