//! Every example of the DSL reference (`docs/dsl.md`) runs here, so the reference cannot drift
//! from the interpreter.
//!
//! An example is a fenced block whose info string is `yaml example`, optionally followed by
//! `input=<JSON object>` (the run's initial locals, e.g. a webhook's `body`). It holds a whole
//! automation document. The fenced blocks after it, up to the next example, say what it does:
//! `json output` (the automation's output), `json events` (the `[type, payload]` pairs it
//! emitted, in order) or `json error` (the class of the error that stops it, when compiling or
//! running).

use serde_json::{Value, json};

use crate::interpreter::twin::{World, go_with};

const REFERENCE: &str = include_str!("../../../docs/dsl.md");

#[derive(Debug, Default)]
struct Example {
    line: usize,
    input: Option<Value>,
    yaml: String,
    output: Option<Value>,
    events: Option<Value>,
    error: Option<String>,
}

/// The examples of `text`, with what each one expects.
fn examples(text: &str) -> Vec<Example> {
    let mut found: Vec<Example> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let info = info.trim();
        let body: String = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim_start() != "```")
            .fold(String::new(), |acc, l| acc + l + "\n");
        let at = || format!("docs/dsl.md:{}", n + 1);
        if let Some(rest) = info.strip_prefix("yaml example") {
            let input = rest.trim().strip_prefix("input=").map(|j| {
                serde_json::from_str(j).unwrap_or_else(|e| panic!("{}: input: {e}", at()))
            });
            found.push(Example {
                line: n + 1,
                input,
                yaml: body,
                ..Example::default()
            });
            continue;
        }
        let Some(expects) = info.strip_prefix("json ") else {
            continue;
        };
        let Some(example) = found.last_mut() else {
            panic!("{}: an expectation before any example", at());
        };
        let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", at()));
        match expects.trim() {
            "output" => example.output = Some(value),
            "events" => example.events = Some(value),
            "error" => {
                let class = value.as_str().map(str::to_owned);
                example.error =
                    Some(class.unwrap_or_else(|| panic!("{}: an error is a class name", at())));
            }
            other => panic!("{}: unknown expectation {other:?}", at()),
        }
    }
    found
}

/// Runs one example; what differs from its expectations.
fn check(example: &Example) -> Result<(), String> {
    let doc = crate::from_yaml(&example.yaml).map_err(|e| format!("YAML: {e}"))?;
    let compiled = crate::compile_document(&doc);
    let (steps, output) = (doc["do"].clone(), doc.get("output").cloned());
    let result = match compiled {
        Err(e) => Err(e.rule),
        Ok(_) => {
            let mut world = World::default();
            let locals = example.input.clone().unwrap_or_else(|| json!({}));
            go_with(&mut world, steps, output.unwrap_or(Value::Null), locals)
                .map(|r| (r.output, world.emitted))
                .map_err(|e| e.class)
        }
    };
    match (result, &example.error) {
        (Err(class), Some(want)) if &class == want => Ok(()),
        (Err(class), _) => Err(format!("failed with {class}")),
        (Ok(_), Some(want)) => Err(format!("ran, but {want} was expected")),
        (Ok((output, emitted)), None) => {
            if let Some(want) = &example.output
                && &output != want
            {
                return Err(format!("output {output}, expected {want}"));
            }
            let emitted: Vec<Value> = emitted.into_iter().map(|(t, p, _)| json!([t, p])).collect();
            if let Some(want) = &example.events
                && &Value::Array(emitted.clone()) != want
            {
                return Err(format!("emitted {emitted:?}, expected {want}"));
            }
            if example.output.is_none() && example.events.is_none() {
                return Err("says nothing of what it does".into());
            }
            Ok(())
        }
    }
}

#[test]
fn every_example_of_the_reference_does_what_it_says() {
    let all = examples(REFERENCE);
    assert!(all.len() >= 15, "only {} examples found", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter_map(|e| {
            check(e)
                .err()
                .map(|why| format!("docs/dsl.md:{}: {why}", e.line))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_wrong_expectation_is_caught() {
    let text = "```yaml example\nname: x\ndo: []\noutput: 1\n```\n```json output\n2\n```\n";
    let all = examples(text);
    assert_eq!(all.len(), 1);
    assert!(check(&all[0]).unwrap_err().contains("expected 2"));
}
