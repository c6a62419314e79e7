//! How commands print: with `--json`, one JSON document on stdout (the API's answer, for
//! scripts); otherwise tables and short lines for people.

use std::io::Write;

use anyhow::Context;
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde_json::Value;

/// Writes `value` as one pretty-printed JSON document and a newline.
pub fn json(out: &mut dyn Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

/// Writes `rows` under `header` as a borderless, left-aligned table.
pub fn table(out: &mut dyn Write, header: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for line in table.lines() {
        // Every cell is padded by one space: the first column needs none on its left.
        let line = line.strip_prefix(' ').unwrap_or(&line);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A localized text (a string, or `{lang: text}`) as one line: the string, else the English
/// text, else the first one.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .get("en")
            .or_else(|| map.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_table_aligns_its_columns_without_borders() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["SLUG", "NAME"],
            vec![
                vec!["hello".into(), "Hello".into()],
                vec!["a".into(), "Bonjour tout le monde".into()],
            ],
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("SLUG"), "{out}");
        let col = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(col(lines[0], "NAME"), col(lines[1], "Hello"), "{out}");
        assert_eq!(col(lines[0], "NAME"), col(lines[2], "Bonjour"), "{out}");
    }

    #[test]
    fn localized_texts_read_as_one_line() {
        assert_eq!(text(&json!("Hello")), "Hello");
        assert_eq!(text(&json!({"fr": "Bonjour", "en": "Hello"})), "Hello");
        assert_eq!(text(&json!({"fr": "Bonjour"})), "Bonjour");
        assert_eq!(text(&Value::Null), "");
    }
}
