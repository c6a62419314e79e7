//! What an upload says about itself: its top-level imports, the Refract world version it
//! targets, and its source language (`producers` section). Parsing only; the host validates.

use refract_host::validate::WORLD_PACKAGE;
use wasmparser::{KnownCustom, Parser, Payload};

/// The world reported when a component imports nothing of ours.
pub const DEFAULT_WORLD: &str = "refract:automation/automation@0.1.6";

/// Facts read from a component binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComponentFacts {
    /// Top-level import names, sorted (`refract:automation/log@0.1.0`, `wasi:io/poll@0.2.6`).
    pub imports: Vec<String>,
    /// `refract:automation/automation@<version>`.
    pub world: String,
    /// `rust`, `js`, `python` or `other`; `None` when the binary does not say.
    pub language: Option<String>,
}

/// Reads the facts of `bytes` (already validated as a component by the host).
pub fn inspect(bytes: &[u8]) -> ComponentFacts {
    let mut imports = Vec::new();
    let mut language = None;
    let mut tool_language = None;
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                // Interface imports only; type imports (`invocation`, …) name no interface.
                for import in reader
                    .into_iter()
                    .flatten()
                    .filter(|i| i.name.name.contains(':'))
                {
                    let mut name = import.name.name.to_string();
                    if let Some(v) = import.name.version_suffix {
                        name.push_str(v);
                    }
                    imports.push(name);
                }
            }
            Payload::CustomSection(reader) if language.is_none() => {
                if let KnownCustom::Producers(producers) = reader.as_known() {
                    for field in producers.into_iter().flatten() {
                        match field.name {
                            "language" => {
                                if let Some(v) = field.values.into_iter().flatten().next() {
                                    language = Some(normalize_language(v.name));
                                }
                            }
                            "processed-by" => {
                                tool_language = tool_language.or(field
                                    .values
                                    .into_iter()
                                    .flatten()
                                    .find_map(|v| language_of_tool(v.name)));
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    imports.sort();
    imports.dedup();
    let language = language.or(tool_language);
    let version = imports
        .iter()
        .filter(|i| i.starts_with(WORLD_PACKAGE))
        .find_map(|i| i.split_once('@').map(|(_, v)| v.to_string()));
    let world = match version {
        Some(v) => format!("{WORLD_PACKAGE}/automation@{v}"),
        None => DEFAULT_WORLD.to_string(),
    };
    ComponentFacts {
        imports,
        world,
        language,
    }
}

/// The language a binding generator in `processed-by` implies (release builds often strip the
/// `language` field but keep the tools).
fn language_of_tool(tool: &str) -> Option<String> {
    let lang = match tool {
        t if t.starts_with("wit-bindgen-rust") => "rust",
        t if t.starts_with("componentize-js") || t.starts_with("jco") => "js",
        t if t.starts_with("componentize-py") => "python",
        _ => return None,
    };
    Some(lang.to_string())
}

/// Maps a producers `language` (or the upload's language header) to `rust|js|python|other`.
pub fn normalize_language(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "rust" => "rust",
        "js" | "javascript" | "typescript" => "js",
        "python" | "py" => "python",
        _ => "other",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_normalized_and_garbage_has_no_facts() {
        assert_eq!(normalize_language("Rust"), "rust");
        assert_eq!(normalize_language("JavaScript"), "js");
        assert_eq!(normalize_language("C"), "other");
        let facts = inspect(b"not wasm");
        assert!(facts.imports.is_empty());
        assert_eq!(facts.world, DEFAULT_WORLD);
    }
}
