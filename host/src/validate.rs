//! Upload validation: is it a component, and does it target our world?
//!
//! Order follows `spec/http-api.md` §5.3: preamble first (cheap, before Cranelift), then, on the
//! compiled component's type, the world check: `run` exported, every import either ours or in the
//! minimal WASI subset the host links.

use wasmparser::{Encoding, Parser, Payload};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{HostError, NotAComponent};

/// Our package; imports of any of its interfaces are allowed.
pub const WORLD_PACKAGE: &str = "refract:automation";
/// The only export the world requires.
pub const RUN_EXPORT: &str = "run";

/// WASI interfaces the host links (with a context that grants nothing: no preopens, no env, no
/// args, stdin closed, no sockets). Rust's std imports the `wasi:cli` and `wasi:io` ones even when
/// unused, so they must be accepted; ComponentizeJS's WASI adapter imports `wasi:filesystem`,
/// linked with no preopened directory (nothing to open); componentize-py's CPython imports
/// `wasi:sockets`, linked with every use denied (no TCP, no UDP, no name lookup, no address
/// allowed): outbound HTTP goes through our `http` interface only. `wasi:http` is not linked.
const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
];
/// WASI versions the linked implementation serves (semver-compatible 0.2.x).
const WASI_VERSION_PREFIX: &str = "0.2.";
/// Versions of our package this host serves.
/// A 0.1.0 to 0.1.5 component links against the 0.1.6 definitions (wasmtime matches
/// semver-compatible imports).
const WORLD_VERSIONS: &[&str] = &[
    "0.1.0", "0.1.1", "0.1.2", "0.1.3", "0.1.4", "0.1.5", "0.1.6",
];

/// Checks the preamble: WebAssembly, component layer, supported version.
pub fn check_preamble(bytes: &[u8]) -> Result<(), HostError> {
    let invalid = |reason| Err(HostError::InvalidComponent { reason });
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return invalid(NotAComponent::NotWasm);
    }
    match Parser::new(0).parse(bytes, true) {
        Ok(wasmparser::Chunk::Parsed {
            payload: Payload::Version { encoding, .. },
            ..
        }) => match encoding {
            Encoding::Component => Ok(()),
            Encoding::Module => invalid(NotAComponent::CoreModule),
        },
        // A known magic with an unknown version or layer.
        Ok(_) | Err(_) => invalid(NotAComponent::UnsupportedVersion),
    }
}

/// Is `name` (a component import name such as `wasi:io/poll@0.2.6`) one we link?
pub fn import_allowed(name: &str) -> bool {
    let (iface, version) = match name.split_once('@') {
        Some((i, v)) => (i, v),
        None => (name, ""),
    };
    if let Some(rest) = iface.strip_prefix(WORLD_PACKAGE) {
        return rest.starts_with('/') && WORLD_VERSIONS.contains(&version);
    }
    ALLOWED_WASI.contains(&iface) && version.starts_with(WASI_VERSION_PREFIX)
}

/// The world check on a compiled component: names of missing exports and forbidden imports.
pub fn check_world(engine: &Engine, component: &Component) -> Result<(), HostError> {
    let ty = component.component_type();
    let mut forbidden: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| !import_allowed(name))
        .collect();
    forbidden.sort();
    let has_run = ty.exports(engine).any(|(name, _)| name == RUN_EXPORT);
    let missing: Vec<String> = if has_run {
        Vec::new()
    } else {
        vec![RUN_EXPORT.to_owned()]
    };
    if forbidden.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(HostError::WorldMismatch {
            missing_exports: missing,
            forbidden_imports: forbidden,
            detail: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_classification() {
        let reason = |b: &[u8]| match check_preamble(b) {
            Err(HostError::InvalidComponent { reason }) => Some(reason),
            _ => None,
        };
        assert_eq!(
            reason(b"hello world, not wasm"),
            Some(NotAComponent::NotWasm)
        );
        assert_eq!(reason(b""), Some(NotAComponent::NotWasm));
        assert_eq!(reason(b"\0asm\x01\0\0\0"), Some(NotAComponent::CoreModule));
        assert_eq!(reason(b"\0asm\x0d\0\x01\0"), None);
        assert_eq!(
            reason(b"\0asm\x63\0\x09\0"),
            Some(NotAComponent::UnsupportedVersion)
        );
    }

    #[test]
    fn import_names() {
        assert!(import_allowed("refract:automation/events@0.1.0"));
        assert!(!import_allowed("refract:automation/events@0.2.0"));
        assert!(!import_allowed("refract:automationx/events@0.1.0"));
        assert!(import_allowed("wasi:io/poll@0.2.6"));
        assert!(import_allowed("wasi:cli/stderr@0.2.0"));
        assert!(import_allowed("wasi:filesystem/preopens@0.2.6"));
        // Linked with every use denied (componentize-py's CPython imports them).
        assert!(import_allowed("wasi:sockets/tcp@0.2.6"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.6"));
        assert!(!import_allowed("wasi:io/poll@0.3.0"));
        assert!(!import_allowed("evil:net/raw"));
    }
}
