//! Secrets out of arguments and environments before anything leaves the agent:
//! Tetragon's `--redaction-filters`, JSON objects one per line, `{"redact":
//! ["--password(?:\\s+|=)(\\S*)"], "binary_regex": ["mysql$"]}`. In the `arguments` and
//! each `KEY=VALUE` of the `environment_variables` of every process object of an event
//! (`process`, `parent`, `ancestors`) whose binary matches
//! `binary_regex` (any binary when it is absent), what each capture group of a `redact`
//! expression matched becomes `*****`; an expression without a group redacts its whole
//! match.

use regex::Regex;
use serde_json::Value;

use super::filter::{FilterError, kind_of, parse_objects};

pub const REDACTED: &str = "*****";

#[derive(Debug)]
struct Redaction {
    redact: Vec<Regex>,
    binary: Vec<Regex>,
}

#[derive(Debug, Default)]
pub struct Redactions(Vec<Redaction>);

impl Redactions {
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        parse_objects(
            "--redaction-filters",
            text,
            r#"{"redact":["--password(?:\\s+|=)(\\S*)"]}"#,
            Redaction::from_json,
        )
        .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Redacts the arguments and environment variables of `event`'s process objects
    /// (`process`, `parent`, each of `ancestors`) in place.
    pub fn apply(&self, event: &mut Value) {
        let kind = kind_of(event).to_owned();
        let Some(body) = event.get_mut(&kind).and_then(Value::as_object_mut) else {
            return;
        };
        let mut objects: Vec<&mut Value> = Vec::new();
        for (key, value) in body.iter_mut() {
            match (key.as_str(), value) {
                ("process" | "parent", v @ Value::Object(_)) => objects.push(v),
                ("ancestors", Value::Array(list)) => objects.extend(list.iter_mut()),
                _ => {}
            }
        }
        for process in objects {
            self.apply_to_process(process);
        }
    }

    fn apply_to_process(&self, process: &mut Value) {
        let binary = process["binary"].as_str().unwrap_or("").to_owned();
        let rules: Vec<&Regex> = self
            .0
            .iter()
            .filter(|r| r.binary.is_empty() || r.binary.iter().any(|b| b.is_match(&binary)))
            .flat_map(|r| r.redact.iter())
            .collect();
        if rules.is_empty() {
            return;
        }
        if let Some(Value::String(args)) = process.get_mut("arguments") {
            for re in &rules {
                *args = redact(re, args);
            }
        }
        // As Tetragon: each variable as `KEY=VALUE`, split back at its first `=`.
        if let Some(Value::Array(vars)) = process.get_mut("environment_variables") {
            for var in vars {
                let key = var["Key"].as_str().unwrap_or("");
                let value = var["Value"].as_str().unwrap_or("");
                let mut text = format!("{key}={value}");
                for re in &rules {
                    text = redact(re, &text);
                }
                let (key, value) = text.split_once('=').unwrap_or((&text, ""));
                let mut out = serde_json::Map::new();
                // protojson leaves empty strings out.
                for (k, v) in [("Key", key), ("Value", value)] {
                    if !v.is_empty() {
                        out.insert(k.into(), v.into());
                    }
                }
                *var = Value::Object(out);
            }
        }
    }
}

/// `text` with what `re`'s groups (or, without groups, its whole match) matched redacted.
fn redact(re: &Regex, text: &str) -> String {
    let mut spans = Vec::new();
    for caps in re.captures_iter(text) {
        if caps.len() == 1 {
            if let Some(m) = caps.get(0) {
                spans.push(m.range());
            }
        } else {
            spans.extend(caps.iter().skip(1).flatten().map(|m| m.range()));
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        if span.start < at || span.is_empty() {
            continue;
        }
        out.push_str(&text[at..span.start]);
        out.push_str(REDACTED);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

impl Redaction {
    fn from_json(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or("not a JSON object: write one object per line")?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "redact" | "binary_regex") {
                return Err(format!(
                    "`{key}` is not a redaction filter key; the keys are redact and binary_regex"
                ));
            }
        }
        let list = |key: &str| -> Result<Vec<Regex>, String> {
            match obj.get(key) {
                None => Ok(Vec::new()),
                Some(v) => v
                    .as_array()
                    .ok_or_else(|| format!("`{key}` is a list of regular expressions"))?
                    .iter()
                    .map(|s| {
                        let s = s.as_str().ok_or_else(|| format!("`{key}` holds strings"))?;
                        Regex::new(s)
                            .map_err(|e| format!("`{key}`: `{s}` is not a regular expression: {e}"))
                    })
                    .collect(),
            }
        };
        let redact = list("redact")?;
        if redact.is_empty() {
            return Err(
                "`redact` is missing: a list of regular expressions whose groups are redacted"
                    .into(),
            );
        }
        Ok(Self {
            redact,
            binary: list("binary_regex")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_are_redacted_in_process_and_parent() {
        let r = Redactions::parse(
            r#"{"redact": ["--password(?:\\s+|=)(\\S*)"]}
{"redact": ["token=[^ ]*"], "binary_regex": ["curl$"]}"#,
        )
        .unwrap();
        let mut e = json!({"process_exec": {
            "process": {"binary": "/usr/bin/mysql", "arguments": "-u root --password hunter2 --password=x2 db token=abc"},
            "parent": {"binary": "/usr/bin/curl", "arguments": "-H token=abc --password=p"}}});
        r.apply(&mut e);
        assert_eq!(
            e["process_exec"]["process"]["arguments"],
            "-u root --password ***** --password=***** db token=abc",
            "the second filter is for curl only"
        );
        assert_eq!(
            e["process_exec"]["parent"]["arguments"],
            "-H ***** --password=*****"
        );
    }

    #[test]
    fn environment_variables_and_ancestors_are_redacted_too() {
        let r = Redactions::parse(r#"{"redact": ["(?:PASSWORD|TOKEN)=(.*)", "--key=(\\w+)"]}"#)
            .unwrap();
        let mut e = json!({"process_kprobe": {
            "process": {"binary": "/app", "arguments": "",
                "environment_variables": [
                    {"Key": "DB_PASSWORD", "Value": "hunter2"},
                    {"Key": "HOME", "Value": "/root"},
                    {"Key": "API_TOKEN", "Value": "a=b"}]},
            "ancestors": [{"binary": "/bin/sh", "arguments": "-c \"run --key=s3cret\""}]}});
        r.apply(&mut e);
        let body = &e["process_kprobe"];
        assert_eq!(
            body["process"]["environment_variables"],
            json!([
                {"Key": "DB_PASSWORD", "Value": "*****"},
                {"Key": "HOME", "Value": "/root"},
                {"Key": "API_TOKEN", "Value": "*****"}])
        );
        assert_eq!(body["ancestors"][0]["arguments"], "-c \"run --key=*****\"");
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = Redactions::parse("{\"binary_regex\": [\"x\"]}").unwrap_err();
        assert!(e.message.contains("`redact` is missing"), "{e}");
        let e = Redactions::parse("\n{\"redact\": [\"(\"]}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .starts_with("--redaction-filters, filter 1 (line 2)"),
            "{e}"
        );
    }
}
