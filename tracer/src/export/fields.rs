//! Which fields of an event are exported: Tetragon's `--field-filters`, JSON objects one
//! per line, `{"fields": "process.binary,process.pod.name", "event_set":
//! ["PROCESS_EXEC"], "invert_event_set": false, "action": "INCLUDE"}`. Paths are inside
//! the event's body (`process.binary` of a `process_exec`); `INCLUDE` keeps only the
//! fields listed (and what leads to them), `EXCLUDE` removes them. The filters apply in
//! order, each to the events of its `event_set` (all when empty; all others with
//! `invert_event_set`). `node_name`, `time` and `seq` always stay.

use serde_json::{Map, Value};

use super::filter::{FilterError, event_type, kind_of, parse_objects};

#[derive(Debug)]
struct FieldFilter {
    /// Each path split at its dots.
    fields: Vec<Vec<String>>,
    event_set: Vec<&'static str>,
    invert: bool,
    include: bool,
}

#[derive(Debug, Default)]
pub struct FieldFilters(Vec<FieldFilter>);

impl FieldFilters {
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        parse_objects(
            "--field-filters",
            text,
            r#"{"fields":"process.binary,process.pod.name","action":"INCLUDE"}"#,
            FieldFilter::from_json,
        )
        .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies the filters to `event` in place.
    pub fn apply(&self, event: &mut Value) {
        let kind = kind_of(event).to_owned();
        let Some(body) = event.get_mut(&kind) else {
            return;
        };
        for f in &self.0 {
            let listed = f.event_set.is_empty() || f.event_set.contains(&kind.as_str());
            if listed == f.invert && !f.event_set.is_empty() {
                continue;
            }
            if f.include {
                let kept = include(body, &f.fields);
                *body = kept;
            } else {
                for path in &f.fields {
                    remove(body, path);
                }
            }
        }
    }
}

impl FieldFilter {
    fn from_json(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or("not a JSON object: write one object per line")?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "fields" | "event_set" | "invert_event_set" | "action"
            ) {
                return Err(format!(
                    "`{key}` is not a field filter key; the keys are fields, event_set, invert_event_set, action"
                ));
            }
        }
        let fields: Vec<Vec<String>> = obj
            .get("fields")
            .and_then(Value::as_str)
            .ok_or("`fields` is missing: a comma-separated list of paths such as \"process.binary,process.pod.name\"")?
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split('.').map(str::to_owned).collect())
            .collect();
        if fields.is_empty() {
            return Err("`fields` lists no path".into());
        }
        let event_set = match obj.get("event_set") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or("`event_set` is a list such as [\"PROCESS_EXEC\"]")?
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| "`event_set` holds strings".to_owned())
                        .and_then(event_type)
                })
                .collect::<Result<_, _>>()?,
        };
        let invert = match obj.get("invert_event_set") {
            None => false,
            Some(v) => v.as_bool().ok_or("`invert_event_set` is true or false")?,
        };
        let include = match obj.get("action").and_then(Value::as_str) {
            Some("INCLUDE") => true,
            Some("EXCLUDE") => false,
            _ => return Err("`action` is \"INCLUDE\" or \"EXCLUDE\"".into()),
        };
        Ok(Self {
            fields,
            event_set,
            invert,
            include,
        })
    }
}

/// The parts of `v` on the `paths`, and nothing else.
fn include(v: &Value, paths: &[Vec<String>]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        let mut src = v;
        let mut found = true;
        for key in path {
            match src.get(key) {
                Some(next) => src = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for (i, key) in path.iter().enumerate() {
            let Some(obj) = dst.as_object_mut() else {
                break;
            };
            if i + 1 == path.len() {
                obj.insert(key.clone(), src.clone());
                break;
            }
            dst = obj
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for key in parents {
        match at.get_mut(key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(obj) = at.as_object_mut() {
        obj.remove(last);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev() -> Value {
        json!({"process_exec": {"process": {"binary": "/bin/ls", "arguments": "-l", "pid": 1,
                 "pod": {"name": "p", "namespace": "n"}},
               "parent": {"binary": "/bin/sh"}},
               "node_name": "node", "time": "t", "seq": "1"})
    }

    #[test]
    fn include_keeps_the_paths_and_the_envelope() {
        let f = FieldFilters::parse(
            r#"{"fields":"process.binary,process.pod.name,nope.x","action":"INCLUDE"}"#,
        )
        .unwrap();
        let mut e = ev();
        f.apply(&mut e);
        assert_eq!(
            e,
            json!({"process_exec": {"process": {"binary": "/bin/ls", "pod": {"name": "p"}}},
                   "node_name": "node", "time": "t", "seq": "1"})
        );
    }

    #[test]
    fn exclude_removes_and_event_sets_choose() {
        let f = FieldFilters::parse(
            r#"{"fields":"process.arguments, parent","event_set":["PROCESS_EXEC"],"action":"EXCLUDE"}
{"fields":"process.pid","event_set":["PROCESS_EXEC"],"invert_event_set":true,"action":"EXCLUDE"}"#,
        )
        .unwrap();
        let mut e = ev();
        f.apply(&mut e);
        let p = &e["process_exec"]["process"];
        assert!(p.get("arguments").is_none() && e["process_exec"].get("parent").is_none());
        assert_eq!(p["pid"], 1, "the inverted filter is not for execs");
        let mut exit = json!({"process_exit": {"process": {"pid": 1, "arguments": "-l"}}});
        f.apply(&mut exit);
        assert_eq!(
            exit,
            json!({"process_exit": {"process": {"arguments": "-l"}}})
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = FieldFilters::parse("{\"fields\":\"a\",\"action\":\"KEEP\"}").unwrap_err();
        assert_eq!((e.index, e.line), (1, 1));
        assert!(e.message.contains("INCLUDE"), "{e}");
        let e = FieldFilters::parse("\n{\"action\":\"INCLUDE\"}").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("`fields` is missing"), "{e}");
        let e =
            FieldFilters::parse("{\"fields\":\"a\",\"action\":\"INCLUDE\",\"x\":1}").unwrap_err();
        assert!(e.message.contains("`x` is not a field filter key"), "{e}");
    }
}
