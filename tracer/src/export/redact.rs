//! Secrets out of arguments before anything leaves the agent: Tetragon's
//! `--redaction-filters`, JSON objects one per line, `{"redact":
//! ["--password(?:\\s+|=)(\\S*)"], "binary_regex": ["mysql$"]}`. In the `arguments` of
//! every process object of an event (`process`, `parent`) whose binary matches
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

    /// Redacts the arguments of `event`'s process objects in place.
    pub fn apply(&self, event: &mut Value) {
        let kind = kind_of(event).to_owned();
        let Some(body) = event.get_mut(&kind) else {
            return;
        };
        for key in ["process", "parent"] {
            let Some(process) = body.get_mut(key) else {
                continue;
            };
            let binary = process["binary"].as_str().unwrap_or("").to_owned();
            let Some(Value::String(args)) = process.get_mut("arguments") else {
                continue;
            };
            for r in &self.0 {
                if r.binary.is_empty() || r.binary.iter().any(|b| b.is_match(&binary)) {
                    for re in &r.redact {
                        *args = redact(re, args);
                    }
                }
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
