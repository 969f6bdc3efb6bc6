//! A Kubernetes API server for the tests, in-process: real HTTP list and watch of pods,
//! nodes, ReplicaSets and Jobs, as the agent's client (kube's watcher) talks to a real one:
//! resource versions, `fieldSelector=spec.nodeName=...`, chunked watch streams with
//! bookmarks, a 410 Gone (`Expired`) for a watch from a version it no longer has, and
//! dropped connections.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The kinds served: (kind, list path, apiVersion).
const KINDS: [(&str, &str, &str); 6] = [
    ("Pod", "/api/v1/pods", "v1"),
    ("Node", "/api/v1/nodes", "v1"),
    ("ReplicaSet", "/apis/apps/v1/replicasets", "apps/v1"),
    ("Job", "/apis/batch/v1/jobs", "batch/v1"),
    (
        "TracingPolicy",
        "/apis/tracer.dev/v1alpha1/tracingpolicies",
        "tracer.dev/v1alpha1",
    ),
    (
        "TracingPolicyNamespaced",
        "/apis/tracer.dev/v1alpha1/tracingpoliciesnamespaced",
        "tracer.dev/v1alpha1",
    ),
];

#[derive(Default)]
struct State {
    /// The last resource version given out.
    rv: u64,
    /// (kind, namespace, name) -> object (with its `metadata.resourceVersion`).
    objects: BTreeMap<(String, String, String), Value>,
    /// What watches stream: (resource version, kind, type, object).
    history: Vec<(u64, String, &'static str, Value)>,
    /// A watch from a version below this is answered 410 Gone.
    oldest: u64,
    /// Bumped to close every open watch.
    cut: u64,
    /// Request lines served, for tests to assert on (`GET /api/v1/pods?...`).
    requests: Vec<String>,
    /// Status patches received: (object name, patch body).
    status_patches: Vec<(String, Value)>,
}

pub struct ApiServer {
    url: String,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl ApiServer {
    pub fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API server");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let s = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                thread::spawn(move || serve(conn, &s));
            }
        });
        ApiServer { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig in `dir` for this server.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user:\n    token: test\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    /// Creates or replaces an object, and tells the watches (`ADDED` or `MODIFIED`).
    pub fn apply(&self, object: Value) {
        self.put(object, true);
    }

    /// Creates or replaces an object without telling the open watches: only a list (after
    /// a 410 Gone) finds it, as after events a watch missed.
    pub fn apply_unseen(&self, object: Value) {
        self.put(object, false);
    }

    fn put(&self, mut object: Value, tell: bool) {
        let (lock, cvar) = &*self.state;
        let mut st = lock.lock().expect("lock");
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key(&object);
        let ty = if st.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key.clone(), object.clone());
        if tell {
            st.history.push((rv, key.0, ty, object));
        } else {
            // Whoever watches from before this must list again.
            st.oldest = rv;
        }
        cvar.notify_all();
    }

    /// Deletes an object, and tells the watches (`DELETED`).
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let (lock, cvar) = &*self.state;
        let mut st = lock.lock().expect("lock");
        let key = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        if let Some(mut object) = st.objects.remove(&key) {
            st.rv += 1;
            let rv = st.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            st.history.push((rv, key.0, "DELETED", object));
        }
        cvar.notify_all();
    }

    /// The status patches received so far: (object name, body).
    pub fn status_patches(&self) -> Vec<(String, Value)> {
        self.state.0.lock().expect("lock").status_patches.clone()
    }

    /// Closes every open watch connection, as a restarting API server does; the clients
    /// reconnect from their last version.
    pub fn cut_watches(&self) {
        let (lock, cvar) = &*self.state;
        lock.lock().expect("lock").cut += 1;
        cvar.notify_all();
    }

    /// The request lines served so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.0.lock().expect("lock").requests.clone()
    }
}

fn key(object: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&object["kind"]),
        s(&object["metadata"]["namespace"]),
        s(&object["metadata"]["name"]),
    )
}

/// Whether `object` passes a `fieldSelector`: `spec.nodeName=NAME` (the node's pods)
/// and `metadata.name=NAME` (the node itself) are the ones the agent uses.
fn selected(object: &Value, field_selector: Option<&str>) -> bool {
    let Some((field, value)) = field_selector.and_then(|f| f.split_once('=')) else {
        return true;
    };
    match field {
        "spec.nodeName" => object["spec"]["nodeName"] == value,
        "metadata.name" => object["metadata"]["name"] == value,
        _ => true,
    }
}

/// Serves one connection: requests one after another (keep-alive) until a watch ends it.
fn serve(conn: TcpStream, state: &(Mutex<State>, Condvar)) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Headers, up to the blank line; a PATCH has a body.
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let method = line.split_whitespace().next().unwrap_or("GET").to_owned();
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        if method == "PATCH" {
            let mut body = vec![0u8; length];
            if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                return;
            }
            patch(&mut out, state, &target, &body);
            continue;
        }
        state
            .0
            .lock()
            .expect("lock")
            .requests
            .push(format!("GET {target}"));
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let params: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), decode(v)))
            .collect();
        let Some((kind, _, api_version)) = KINDS.iter().find(|(_, p, _)| *p == path) else {
            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
            let _ = write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            continue;
        };
        let fields = params.get("fieldSelector").map(String::as_str);
        if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) {
            let from: u64 = params
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let timeout = params
                .get("timeoutSeconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(290u64);
            let bookmarks = params
                .get("allowWatchBookmarks")
                .is_some_and(|v| v == "true");
            watch(
                &mut out,
                state,
                kind,
                api_version,
                fields,
                from,
                timeout,
                bookmarks,
            );
            return;
        }
        let st = state.0.lock().expect("lock");
        let items: Vec<&Value> = st
            .objects
            .iter()
            .filter(|((k, _, _), o)| k == kind && selected(o, fields))
            .map(|(_, o)| o)
            .collect();
        let body = json!({
            "kind": format!("{kind}List"),
            "apiVersion": api_version,
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        })
        .to_string();
        drop(st);
        if write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .is_err()
        {
            return;
        }
    }
}

/// A status patch (`PATCH <kind path>/<name>/status`, a merge patch): recorded, and
/// answered with the object as patched.
fn patch(out: &mut TcpStream, state: &(Mutex<State>, Condvar), target: &str, body: &[u8]) {
    let path = target.split('?').next().unwrap_or(target);
    let name = path
        .strip_suffix("/status")
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("")
        .to_owned();
    let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut st = state.0.lock().expect("lock");
    st.requests.push(format!("PATCH {target}"));
    st.status_patches.push((name.clone(), patch.clone()));
    let object = st
        .objects
        .iter_mut()
        .find(|((_, _, n), _)| *n == name)
        .map(|(_, o)| {
            o["status"] = patch["status"].clone();
            o.clone()
        });
    drop(st);
    let (code, body) = match object {
        Some(o) => ("200 OK", o.to_string()),
        None => (
            "404 Not Found",
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#
                .to_owned(),
        ),
    };
    let _ = write!(
        out,
        "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// A watch stream from version `from`: the history after it, then what comes, with a
/// bookmark every second, until `timeout`, a cut, or the client leaves.
#[allow(clippy::too_many_arguments, reason = "the request's parameters")]
fn watch(
    out: &mut TcpStream,
    state: &(Mutex<State>, Condvar),
    kind: &str,
    api_version: &str,
    fields: Option<&str>,
    from: u64,
    timeout: u64,
    bookmarks: bool,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = |out: &mut TcpStream, v: Value| -> bool {
        let line = format!("{v}\n");
        write!(out, "{:x}\r\n{line}\r\n", line.len()).is_ok() && out.flush().is_ok()
    };
    let (lock, cvar) = state;
    let mut st = lock.lock().expect("lock");
    if from < st.oldest || from > st.rv {
        let gone = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from} ({})", st.oldest),
            "reason": "Expired", "code": 410}});
        drop(st);
        chunk(out, gone);
        let _ = out.write_all(b"0\r\n\r\n");
        return;
    }
    let cut = st.cut;
    let end = Instant::now() + Duration::from_secs(timeout);
    let mut sent = from;
    let mut last_bookmark = Instant::now();
    loop {
        let new: Vec<(u64, Value)> = st
            .history
            .iter()
            .filter(|(rv, k, _, o)| *rv > sent && k == kind && selected(o, fields))
            .map(|(rv, _, ty, o)| (*rv, json!({"type": ty, "object": o})))
            .collect();
        let latest = st.rv;
        drop(st);
        for (rv, ev) in new {
            if !chunk(out, ev) {
                return;
            }
            sent = rv;
        }
        if bookmarks && last_bookmark.elapsed() >= Duration::from_secs(1) {
            let mark = json!({"type": "BOOKMARK", "object": {
                "kind": kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": latest.to_string()}}});
            if !chunk(out, mark) {
                return;
            }
            sent = sent.max(latest);
            last_bookmark = Instant::now();
        }
        st = lock.lock().expect("lock");
        if st.cut != cut {
            // Dropped, without the stream's end: as a server that goes away.
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
        if Instant::now() >= end {
            drop(st);
            let _ = out.write_all(b"0\r\n\r\n");
            return;
        }
        st = cvar
            .wait_timeout(st, Duration::from_millis(200))
            .expect("wait")
            .0;
    }
}

/// Percent-decodes a query value.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
