//! A Kubernetes API server for the tests, in-process: real HTTP list and watch of pods,
//! nodes, ReplicaSets and Jobs, as the agent's client (kube's watcher) talks to a real one:
//! resource versions, `fieldSelector=spec.nodeName=...`, chunked watch streams with
//! bookmarks, a 410 Gone (`Expired`) for a watch from a version it no longer has, and
//! dropped connections.
//!
//! Plain (`ApiServer::start`), it serves `http://` to anyone. With TLS
//! (`ApiServer::start_tls`) it is what an agent in a pod meets: HTTPS with a certificate of
//! the cluster's own CA, the service account's files the kubelet mounts (`ca.crt`, `token`,
//! `namespace`), every request authenticated by its bearer token (401 without it), and
//! authorized by RBAC against the ClusterRole of `manifests/rbac.yaml` (403 when no rule
//! grants it).

use std::{
    collections::BTreeMap,
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{
    ServerConfig, ServerConnection, StreamOwned,
    crypto::{CryptoProvider, ring},
    pki_types::PrivatePkcs8KeyDer,
};
use serde::Deserialize;
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

/// The RBAC the agent is deployed with: its ServiceAccount, ClusterRole and binding.
/// Built in (rather than read at run time) so that `test-apiserver` finds it wherever it
/// runs, a test VM included.
const RBAC_MANIFEST: &str = include_str!("../../manifests/rbac.yaml");

/// The namespace of the agent's service account, as the kubelet writes it to `namespace`.
const NAMESPACE: &str = "tracer-system";

/// Who a request with the service account's token is, to the API server.
const USER: &str = "system:serviceaccount:tracer-system:tracer";

/// The answer to a path that names no kind served.
const NOT_FOUND: &str =
    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;

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
    /// Request lines served, for tests to assert on (`GET /api/v1/pods?...`), and those
    /// refused, after their status code (`401 GET ...`, `403 GET ...`).
    requests: Vec<String>,
    /// Status patches received: (object name, patch body).
    status_patches: Vec<(String, Value)>,
    /// Wrong answers to give: (list path, whether to a watch, the fault, how many more
    /// times).
    faults: Vec<(String, bool, Fault, usize)>,
}

/// A wrong answer the server gives instead of its own (`ApiServer::fault`), as a broken
/// or hostile API server (or what stands in front of it) does.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An HTTP error: its status line (`500 Internal Server Error`), extra headers
    /// (`Retry-After: 1`) and body.
    Status {
        status: &'static str,
        headers: Vec<String>,
        body: String,
    },
    /// 200 OK with a body that is not JSON.
    NotJson,
    /// Takes the request and never answers, until the client goes away.
    Hang,
    /// A watch that opens (200, chunked) and then sends nothing, ever.
    SilentWatch,
    /// A watch whose first event is a line that is not JSON
    /// (`{"type":"ADDED","object":,}`), in its place; the stream goes on as usual after it.
    BrokenLine,
    /// A watch that never ends: bookmarks every second, whatever `timeoutSeconds` says.
    Endless,
    /// A list of every object of the kind: the field selector ignored.
    IgnoreSelector,
}

/// An API server for the tests: the objects it holds, what it was asked, and (with TLS)
/// the service account an in-cluster client authenticates as.
pub struct ApiServer {
    url: String,
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
    /// With TLS: what requests are checked against, and where the account's files are.
    tls: Option<Tls>,
}

/// A TLS server's service account: its token and rules, and the directory of the files
/// the kubelet would mount for it.
struct Tls {
    access: Arc<Access>,
    dir: PathBuf,
}

impl ApiServer {
    /// A plain-HTTP server on a port of its own, that asks nobody who they are.
    pub fn start() -> ApiServer {
        let (listener, port) = bind();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let s = state.clone();
        accept(listener, move |conn| serve(conn, &s, None));
        ApiServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            tls: None,
        }
    }

    /// An HTTPS server as a cluster's: a CA of its own (generated) signs its certificate,
    /// for `127.0.0.1`, `localhost` and `kubernetes.default.svc`; `dir` gets the service
    /// account's files (`ca.crt`, `token`, `namespace`; made if missing) as the kubelet
    /// mounts them in a pod; requests need that token, and RBAC grants what the
    /// ClusterRole of `manifests/rbac.yaml` does.
    pub fn start_tls(dir: &Path) -> ApiServer {
        ApiServer::start_tls_with_rules(dir, RBAC_MANIFEST)
    }

    /// [`ApiServer::start_tls`], with the rules of the ClusterRole in `rbac_yaml` (YAML
    /// documents, as `manifests/rbac.yaml`) instead: the agent deployed with other RBAC.
    pub fn start_tls_with_rules(dir: &Path, rbac_yaml: &str) -> ApiServer {
        let access = Arc::new(Access {
            token: random_token(),
            rules: cluster_role_rules(rbac_yaml),
        });
        let ca = certificate_authority();
        write_service_account(dir, &ca.pem(), &access.token);
        let config = server_config(&ca);
        let (listener, port) = bind();
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let (s, a) = (state.clone(), access.clone());
        accept(listener, move |tcp| {
            let Ok(conn) = ServerConnection::new(config.clone()) else {
                return;
            };
            serve(StreamOwned::new(conn, tcp), &s, Some(&a));
        });
        ApiServer {
            url: format!("https://127.0.0.1:{port}"),
            port,
            state,
            tls: Some(Tls {
                access,
                dir: dir.to_owned(),
            }),
        }
    }

    /// Where the server is: `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's port on 127.0.0.1 (`KUBERNETES_SERVICE_PORT` for an in-cluster client).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// With TLS, the service account's bearer token that requests must carry.
    pub fn token(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.access.token.as_str())
    }

    /// With TLS, the directory of the service account's files (`ca.crt`, `token`,
    /// `namespace`): what a pod has at `/var/run/secrets/kubernetes.io/serviceaccount`.
    pub fn service_account_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.dir.as_path())
    }

    /// A kubeconfig in `dir` for this server (with TLS: its CA and the account's token).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let (authority, token) = match &self.tls {
            Some(tls) => (
                format!(
                    "    certificate-authority: {}\n",
                    tls.dir.join("ca.crt").display()
                ),
                tls.access.token.as_str(),
            ),
            None => (String::new(), "test"),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n{authority}users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\n",
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

    /// Answers the next `times` requests for `path` (a kind's list path:
    /// `/api/v1/pods`) with `fault` instead: watches if `watch`, else lists.
    pub fn fault(&self, path: &str, watch: bool, fault: Fault, times: usize) {
        let (lock, cvar) = &*self.state;
        let mut st = lock.lock().expect("lock");
        st.faults.push((path.to_owned(), watch, fault, times));
        cvar.notify_all();
    }

    /// How many of the faults set for `path` are still to be given.
    pub fn faults_left(&self, path: &str) -> usize {
        let st = self.state.0.lock().expect("lock");
        st.faults
            .iter()
            .filter(|(p, ..)| p == path)
            .map(|(.., n)| n)
            .sum()
    }

    /// Many objects at once (a huge cluster), told to the watches as one.
    pub fn apply_all(&self, objects: impl IntoIterator<Item = Value>) {
        let (lock, cvar) = &*self.state;
        let mut st = lock.lock().expect("lock");
        for mut object in objects {
            st.rv += 1;
            object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            let key = key(&object);
            st.objects.insert(key, object);
        }
        // Whoever watches from before this must list again.
        st.oldest = st.rv;
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

    /// The request lines served so far, and those refused after their status code
    /// (`401 GET /api/v1/pods?...`, `403 GET ...`).
    pub fn requests(&self) -> Vec<String> {
        self.state.0.lock().expect("lock").requests.clone()
    }
}

/// A listener on a free port of 127.0.0.1, and that port.
fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the API server");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

/// Accepts connections on a thread of its own, and serves each on a thread of its own.
fn accept(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let serve = serve.clone();
            thread::spawn(move || serve(conn));
        }
    });
}

/// A cluster's CA: a self-signed certificate that may sign others.
fn certificate_authority() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("generate the CA's key");
    CertifiedIssuer::self_signed(params, key).expect("sign the CA's certificate")
}

/// The API server's TLS: a certificate signed by `ca` for the names an in-cluster client
/// reaches it by (`kubernetes.default.svc`, and here `127.0.0.1` and `localhost`).
fn server_config(ca: &Issuer<'_, KeyPair>) -> Arc<ServerConfig> {
    let names = ["127.0.0.1", "localhost", "kubernetes.default.svc"].map(str::to_owned);
    let mut params = CertificateParams::new(names).expect("valid names");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("generate the server's key");
    let cert = params
        .signed_by(&key, ca)
        .expect("sign the server's certificate");
    let config = ServerConfig::builder_with_provider(Arc::new(crypto()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("the server's certificate and key");
    Arc::new(config)
}

/// The cryptography of TLS and of the token: rustls's on *ring*, as the agent's client.
fn crypto() -> CryptoProvider {
    ring::default_provider()
}

/// A service account's token: random, as only the API server and the pod know it.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    crypto()
        .secure_random
        .fill(&mut bytes)
        .expect("random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The files the kubelet mounts in a pod for its service account (`dir` made if missing).
fn write_service_account(dir: &Path, ca_pem: &str, token: &str) {
    std::fs::create_dir_all(dir).expect("make the service account's directory");
    std::fs::write(dir.join("ca.crt"), ca_pem).expect("write ca.crt");
    std::fs::write(dir.join("token"), token).expect("write token");
    std::fs::write(dir.join("namespace"), NAMESPACE).expect("write namespace");
}

/// What a TLS server checks of each request: who sends it (the bearer token) and what
/// they may do (the ClusterRole's rules, bound to the service account).
struct Access {
    token: String,
    rules: Vec<Rule>,
}

impl Access {
    /// Why a request is refused, if it is: 401 without the token, 403 when no rule grants
    /// it. Requests for no resource (`/version`, `/api`) are granted, as the API server's
    /// `system:discovery` role does for every authenticated user.
    fn refusal(&self, request: &Request) -> Option<Refusal> {
        if !self.authenticates(request.authorization.as_deref()) {
            return Some(Refusal::unauthorized());
        }
        let attributes = Attributes::of(&request.method, &request.target)?;
        let granted = self.rules.iter().any(|rule| rule.grants(&attributes));
        (!granted).then(|| Refusal::forbidden(&attributes))
    }

    /// Whether an `Authorization` header carries the account's token.
    fn authenticates(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|a| a.split_once(' '))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.token
            })
    }
}

/// A request refused: its status code, status line and `Status` object.
struct Refusal {
    code: u16,
    status: &'static str,
    body: Value,
}

impl Refusal {
    /// A request without a valid token, as the API server answers it.
    fn unauthorized() -> Refusal {
        Refusal {
            code: 401,
            status: "401 Unauthorized",
            body: failure(401, "Unauthorized", "Unauthorized"),
        }
    }

    /// A request RBAC denies, with the API server's message and details.
    fn forbidden(a: &Attributes) -> Refusal {
        let qualified = if a.group.is_empty() {
            a.resource.to_owned()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        let object = match a.name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        let scope = match a.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let message = format!(
            "{object} is forbidden: User \"{USER}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
            a.verb,
            a.full_resource(),
            a.group
        );
        let mut body = failure(403, "Forbidden", &message);
        body["details"] = a.details();
        Refusal {
            code: 403,
            status: "403 Forbidden",
            body,
        }
    }
}

/// A `Status` object of a failed request.
fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// A resource request as RBAC sees it (the API server's `RequestInfo`): its verb, API
/// group, resource (and subresource), namespace and object name.
#[derive(Debug, PartialEq)]
struct Attributes<'a> {
    verb: &'static str,
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> Attributes<'a> {
    /// The attributes of a request, or `None` for a path that names no resource
    /// (`/version`, `/api`, `/apis/GROUP/VERSION`). Paths are `/api/v1/...` (the core
    /// group) or `/apis/GROUP/VERSION/...`, then `[namespaces/NS/]RESOURCE[/NAME[/SUB]]`.
    fn of(method: &str, target: &'a str) -> Option<Attributes<'a>> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _, rest @ ..] => ("", rest),
            ["apis", group, _, rest @ ..] => (*group, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
            _ => (None, rest),
        };
        let (resource, name, subresource) = match *rest {
            [] => return None,
            [resource] => (resource, None, None),
            [resource, name] => (resource, Some(name), None),
            [resource, name, sub, ..] => (resource, Some(name), Some(sub)),
        };
        Some(Attributes {
            verb: verb(method, name.is_some(), query),
            group,
            resource,
            subresource,
            namespace,
            name,
        })
    }

    /// The resource as RBAC rules name it: `pods`, or `tracingpolicies/status`.
    fn full_resource(&self) -> String {
        match self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.to_owned(),
        }
    }

    /// The `details` of a 403's `Status`: the object's name, group and resource.
    fn details(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(name) = self.name {
            details.insert("name".to_owned(), json!(name));
        }
        if !self.group.is_empty() {
            details.insert("group".to_owned(), json!(self.group));
        }
        details.insert("kind".to_owned(), json!(self.resource));
        Value::Object(details)
    }
}

/// A request's verb, as the API server derives it from the method: a GET of a collection
/// is a `list`, or a `watch` with `watch=true`; a DELETE of one is a `deletecollection`.
fn verb(method: &str, named: bool, query: &str) -> &'static str {
    match method {
        "GET" | "HEAD" if named => "get",
        "GET" | "HEAD" if watching(&params(query)) => "watch",
        "GET" | "HEAD" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "",
    }
}

/// One rule of a ClusterRole: what it grants, `*` granting everything of its field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    /// When given, only the objects of these names.
    #[serde(default)]
    resource_names: Vec<String>,
}

impl Rule {
    /// Whether this rule grants a request, as RBAC matches them: verb, group, resource
    /// (`RESOURCE/SUB` for a subresource, `*/SUB` for any resource's), and names.
    fn grants(&self, a: &Attributes) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let resource = a.full_resource();
        let resource_granted = any(&self.resources, &resource)
            || a.subresource.is_some_and(|sub| {
                self.resources
                    .iter()
                    .any(|r| r.strip_prefix("*/") == Some(sub))
            });
        let name_granted = self.resource_names.is_empty()
            || a.name
                .is_some_and(|n| self.resource_names.iter().any(|r| r == n));
        any(&self.verbs, a.verb)
            && any(&self.api_groups, a.group)
            && resource_granted
            && name_granted
    }
}

/// One YAML document of an RBAC manifest: its kind, and a ClusterRole's rules.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// The rules of the ClusterRole among the YAML documents of `yaml`.
fn cluster_role_rules(yaml: &str) -> Vec<Rule> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| Option::<Document>::deserialize(doc).expect("RBAC YAML"))
        .find(|doc| doc.kind == "ClusterRole")
        .expect("a ClusterRole in the RBAC YAML")
        .rules
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

/// One HTTP request: its request line, credentials and body.
struct Request {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Reads the next request of a connection, or `None` when it ends.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("GET").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    // Headers, up to the blank line.
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("authorization") {
            authorization = Some(v.trim().to_owned());
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        authorization,
        body,
    })
}

/// Serves one connection (plain TCP, or TLS over it): requests one after another
/// (keep-alive) until a watch ends it; with `access`, each checked first.
fn serve<S: Read + Write>(conn: S, state: &(Mutex<State>, Condvar), access: Option<&Access>) {
    let mut reader = BufReader::new(conn);
    while let Some(request) = read_request(&mut reader) {
        let out = reader.get_mut();
        if let Some(refusal) = access.and_then(|a| a.refusal(&request)) {
            log(
                state,
                format!("{} {} {}", refusal.code, request.method, request.target),
            );
            if respond(out, refusal.status, &refusal.body.to_string()).is_err() {
                return;
            }
            continue;
        }
        let open = match request.method.as_str() {
            "PATCH" => {
                patch(out, state, &request.target, &request.body);
                true
            }
            "GET" => {
                log(state, format!("GET {}", request.target));
                get(out, state, &request.target)
            }
            method => {
                log(state, format!("{method} {}", request.target));
                let message = "the server does not allow this method on the requested resource";
                let body = failure(405, "MethodNotAllowed", message).to_string();
                respond(out, "405 Method Not Allowed", &body).is_ok()
            }
        };
        if !open {
            return;
        }
    }
}

/// Records a request line (or a refusal) for the tests.
fn log(state: &(Mutex<State>, Condvar), line: String) {
    state.0.lock().expect("lock").requests.push(line);
}

/// Answers a request with a JSON body.
fn respond(out: &mut impl Write, status: &str, body: &str) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The parameters of a query string, percent-decoded.
fn params(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect()
}

/// Whether a GET asks for a watch (`watch=true` or `watch=1`).
fn watching(params: &BTreeMap<String, String>) -> bool {
    matches!(params.get("watch").map(String::as_str), Some("true" | "1"))
}

/// A GET: the list of a kind, or a watch of it. Whether the connection stays open (a
/// watch ends it).
fn get(out: &mut (impl Read + Write), state: &(Mutex<State>, Condvar), target: &str) -> bool {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = params(query);
    let Some((kind, _, api_version)) = KINDS.iter().find(|(_, p, _)| *p == path) else {
        return respond(out, "404 Not Found", NOT_FOUND).is_ok();
    };
    let mut fields = params.get("fieldSelector").map(String::as_str);
    let fault = take_fault(state, path, watching(&params));
    match &fault {
        Some(Fault::Status {
            status,
            headers,
            body,
        }) => {
            let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            return out
                .write_all(head.as_bytes())
                .and_then(|()| out.flush())
                .is_ok();
        }
        Some(Fault::NotJson) => {
            return respond(out, "200 OK", "<html><body>502 Bad Gateway</body></html>").is_ok();
        }
        Some(Fault::Hang) => {
            // Until the client leaves.
            let _ = io::copy(out, &mut io::sink());
            return false;
        }
        Some(Fault::SilentWatch) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if out
                .write_all(head.as_bytes())
                .and_then(|()| out.flush())
                .is_ok()
            {
                let _ = io::copy(out, &mut io::sink());
            }
            return false;
        }
        Some(Fault::IgnoreSelector) => fields = None,
        _ => {}
    }
    if !watching(&params) {
        return list(out, state, kind, api_version, fields).is_ok();
    }
    let from: u64 = params
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = match fault {
        Some(Fault::Endless) => u64::MAX / 4,
        _ => params
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64),
    };
    let bookmarks = matches!(fault, Some(Fault::Endless))
        || params
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
    let truncate = matches!(fault, Some(Fault::BrokenLine));
    watch(
        out,
        state,
        kind,
        api_version,
        fields,
        from,
        timeout,
        (bookmarks, truncate),
    );
    false
}

/// The fault to give to a request for `path` (a watch if `watch`), if one is set.
fn take_fault(state: &(Mutex<State>, Condvar), path: &str, watch: bool) -> Option<Fault> {
    let mut st = state.0.lock().expect("lock");
    let i = st
        .faults
        .iter()
        .position(|(p, w, _, n)| p == path && *w == watch && *n > 0)?;
    st.faults[i].3 -= 1;
    Some(st.faults[i].2.clone())
}

/// The objects of a kind that pass the field selector, at the latest version.
fn list(
    out: &mut impl Write,
    state: &(Mutex<State>, Condvar),
    kind: &str,
    api_version: &str,
    fields: Option<&str>,
) -> io::Result<()> {
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
    respond(out, "200 OK", &body)
}

/// A status patch (`PATCH <kind path>/<name>/status`, a merge patch): recorded, and
/// answered with the object as patched.
fn patch(out: &mut impl Write, state: &(Mutex<State>, Condvar), target: &str, body: &[u8]) {
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
    let _ = match object {
        Some(o) => respond(out, "200 OK", &o.to_string()),
        None => respond(out, "404 Not Found", NOT_FOUND),
    };
}

/// A watch stream from version `from`: the history after it, then what comes, with a
/// bookmark every second, until `timeout`, a cut, or the client leaves.
#[allow(clippy::too_many_arguments, reason = "the request's parameters")]
fn watch<W: Write>(
    out: &mut W,
    state: &(Mutex<State>, Condvar),
    kind: &str,
    api_version: &str,
    fields: Option<&str>,
    from: u64,
    timeout: u64,
    (bookmarks, mut truncate): (bool, bool),
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = |out: &mut W, v: Value, truncate: bool| -> bool {
        let line = if truncate {
            "{\"type\":\"ADDED\",\"object\":,}\n".to_owned()
        } else {
            format!("{v}\n")
        };
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
        chunk(out, gone, false);
        let _ = out.write_all(b"0\r\n\r\n").and_then(|()| out.flush());
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
            if !chunk(out, ev, std::mem::take(&mut truncate)) {
                return;
            }
            sent = rv;
        }
        if bookmarks && last_bookmark.elapsed() >= Duration::from_secs(1) {
            let mark = json!({"type": "BOOKMARK", "object": {
                "kind": kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": latest.to_string()}}});
            if !chunk(out, mark, false) {
                return;
            }
            sent = sent.max(latest);
            last_bookmark = Instant::now();
        }
        st = lock.lock().expect("lock");
        if st.cut != cut {
            // Dropped, without the stream's end: as a server that goes away (the caller
            // drops the connection).
            return;
        }
        if Instant::now() >= end {
            drop(st);
            let _ = out.write_all(b"0\r\n\r\n").and_then(|()| out.flush());
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

#[cfg(test)]
mod tests {
    use rustls::{
        ClientConfig, ClientConnection, RootCertStore,
        pki_types::{CertificateDer, ServerName, pem::PemObject as _},
    };

    use super::*;

    /// The message of a 403 for a watch of pods, word for word as the API server's.
    const WATCH_PODS_FORBIDDEN: &str = "pods is forbidden: User \"system:serviceaccount:tracer-system:tracer\" cannot watch resource \"pods\" in API group \"\" at the cluster scope";

    /// A TLS client of `server` that trusts only the CA in its `ca.crt`, as the agent in a
    /// pod does, reaching it by `name`.
    fn connect(
        server: &ApiServer,
        name: &str,
    ) -> BufReader<StreamOwned<ClientConnection, TcpStream>> {
        let dir = server.service_account_dir().expect("a TLS server");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(dir.join("ca.crt")).expect("read ca.crt"))
            .expect("the CA");
        let config = ClientConfig::builder_with_provider(Arc::new(crypto()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).expect("a server name");
        let conn = ClientConnection::new(Arc::new(config), name).expect("a TLS client");
        let tcp = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        BufReader::new(StreamOwned::new(conn, tcp))
    }

    /// Sends a request, and reads the status code and headers of its answer.
    fn send(
        conn: &mut BufReader<impl Read + Write>,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Vec<String>) {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            conn.get_mut(),
            "{method} {target} HTTP/1.1\r\nHost: kubernetes.default.svc\r\n{auth}Content-Type: application/merge-patch+json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send the request");
        conn.get_mut().flush().expect("send the request");
        let mut line = String::new();
        conn.read_line(&mut line).expect("the status line");
        let code = line.split_whitespace().nth(1).expect("a status code");
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).expect("a header");
            if h == "\r\n" {
                break;
            }
            headers.push(h.trim().to_ascii_lowercase());
        }
        (code.parse().expect("a status code"), headers)
    }

    /// One request on a connection of its own by `kubernetes.default.svc`: the status code
    /// and the JSON body of the answer.
    fn request(
        server: &ApiServer,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut conn = connect(server, "kubernetes.default.svc");
        let (code, headers) = send(&mut conn, method, target, token, body);
        let length = headers
            .iter()
            .find_map(|h| h.strip_prefix("content-length:"))
            .expect("a Content-Length")
            .trim()
            .parse()
            .expect("a length");
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).expect("the body");
        (code, serde_json::from_slice(&body).expect("a JSON body"))
    }

    fn pod(name: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1",
               "metadata": {"name": name, "namespace": "default", "uid": name},
               "spec": {"nodeName": "node-1"}})
    }

    #[test]
    fn the_manifests_cluster_role_lets_the_agent_read_pods() {
        let rules = cluster_role_rules(RBAC_MANIFEST);
        let pods = rules
            .iter()
            .find(|r| r.api_groups == [""] && r.resources.iter().any(|r| r == "pods"))
            .expect("a rule on pods");
        for verb in ["get", "list", "watch"] {
            assert!(pods.verbs.iter().any(|v| v == verb), "{verb}: {pods:?}");
        }
        let granted = |method, target| {
            let a = Attributes::of(method, target).expect("a resource request");
            rules.iter().any(|r| r.grants(&a))
        };
        assert!(granted("GET", "/api/v1/pods?watch=true"));
        assert!(granted(
            "GET",
            "/apis/apps/v1/namespaces/default/replicasets/rs"
        ));
        assert!(granted(
            "PATCH",
            "/apis/tracer.dev/v1alpha1/tracingpolicies/p/status"
        ));
        assert!(!granted(
            "PATCH",
            "/apis/tracer.dev/v1alpha1/tracingpolicies/p"
        ));
        assert!(!granted("DELETE", "/api/v1/namespaces/default/pods/p"));
        assert!(!granted("GET", "/api/v1/secrets"));
    }

    #[test]
    fn requests_map_to_rbac_attributes() {
        let a = |method, target| Attributes::of(method, target).expect("a resource request");
        assert_eq!(
            a(
                "GET",
                "/api/v1/pods?fieldSelector=spec.nodeName%3Dn&watch=1"
            ),
            Attributes {
                verb: "watch",
                group: "",
                resource: "pods",
                subresource: None,
                namespace: None,
                name: None
            }
        );
        assert_eq!(
            a(
                "GET",
                "/apis/apps/v1/namespaces/ns/replicasets/rs?watch=true"
            ),
            Attributes {
                verb: "get",
                group: "apps",
                resource: "replicasets",
                subresource: None,
                namespace: Some("ns"),
                name: Some("rs")
            }
        );
        let status = a("PUT", "/apis/tracer.dev/v1alpha1/tracingpolicies/p/status");
        assert_eq!(
            (status.verb, status.full_resource().as_str()),
            ("update", "tracingpolicies/status")
        );
        assert_eq!(a("GET", "/api/v1/namespaces/ns").resource, "namespaces");
        assert_eq!(a("DELETE", "/api/v1/pods").verb, "deletecollection");
        assert_eq!(a("POST", "/api/v1/namespaces/ns/pods").verb, "create");
        assert_eq!(Attributes::of("GET", "/version"), None);
        assert_eq!(Attributes::of("GET", "/apis/apps/v1"), None);
    }

    #[test]
    fn no_token_is_unauthorized() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        let unauthorized = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401});
        let target = "/api/v1/pods?limit=500";
        assert_eq!(
            request(&server, "GET", target, None, ""),
            (401, unauthorized.clone())
        );
        assert_eq!(
            request(&server, "GET", target, Some("not-the-token"), ""),
            (401, unauthorized)
        );
        assert_eq!(
            server.requests(),
            [format!("401 GET {target}"), format!("401 GET {target}")]
        );
    }

    #[test]
    fn service_account_files_as_the_kubelet_mounts_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let account = dir.path().join("serviceaccount");
        let server = ApiServer::start_tls(&account);
        assert_eq!(server.url(), format!("https://127.0.0.1:{}", server.port()));
        assert_eq!(server.service_account_dir(), Some(account.as_path()));
        let read = |f| std::fs::read_to_string(account.join(f)).expect("a file");
        assert_eq!(Some(read("token").as_str()), server.token());
        assert_eq!(read("namespace"), "tracer-system");
        assert!(read("ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));
        let kubeconfig =
            std::fs::read_to_string(server.kubeconfig(dir.path())).expect("kubeconfig");
        assert!(kubeconfig.contains(&format!(
            "certificate-authority: {}",
            account.join("ca.crt").display()
        )));
        assert!(kubeconfig.contains(&format!("token: {}", read("token"))));
    }

    #[test]
    fn the_certificate_serves_every_name_of_the_server() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        for name in ["127.0.0.1", "localhost", "kubernetes.default.svc"] {
            let mut conn = connect(&server, name);
            let (code, _) = send(&mut conn, "GET", "/api/v1/nodes", server.token(), "");
            assert_eq!(code, 200, "{name}");
        }
    }

    #[test]
    fn a_list_with_the_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        server.apply(pod("a"));
        let target = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1";
        let (code, list) = request(&server, "GET", target, server.token(), "");
        assert_eq!(code, 200, "{list}");
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"][0]["metadata"]["name"], "a");
        assert_eq!(server.requests(), [format!("GET {target}")]);
    }

    #[test]
    fn writing_pods_is_forbidden() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        server.apply(pod("a"));
        let (code, status) = request(&server, "POST", "/api/v1/pods", server.token(), "{}");
        assert_eq!(code, 403, "{status}");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert_eq!(
            status["message"],
            "pods is forbidden: User \"system:serviceaccount:tracer-system:tracer\" cannot create resource \"pods\" in API group \"\" at the cluster scope"
        );
        let target = "/api/v1/namespaces/default/pods/a";
        let (code, status) = request(&server, "DELETE", target, server.token(), "");
        assert_eq!(code, 403, "{status}");
        assert_eq!(
            status["message"],
            "pods \"a\" is forbidden: User \"system:serviceaccount:tracer-system:tracer\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(status["details"], json!({"name": "a", "kind": "pods"}));
        assert_eq!(
            server.requests(),
            [
                "403 POST /api/v1/pods".to_owned(),
                format!("403 DELETE {target}")
            ]
        );
    }

    #[test]
    fn a_status_patch_of_a_tracing_policy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        server.apply(
            json!({"kind": "TracingPolicy", "apiVersion": "tracer.dev/v1alpha1",
                            "metadata": {"name": "p"}, "spec": {}}),
        );
        let path = "/apis/tracer.dev/v1alpha1/tracingpolicies/p";
        let body = r#"{"status":{"state":"enabled"}}"#;
        let (code, object) = request(
            &server,
            "PATCH",
            &format!("{path}/status"),
            server.token(),
            body,
        );
        assert_eq!(code, 200, "{object}");
        assert_eq!(object["status"]["state"], "enabled");
        assert_eq!(
            server.status_patches(),
            [("p".to_owned(), json!({"status": {"state": "enabled"}}))]
        );
        // The object itself is not the agent's to change.
        let (code, status) = request(&server, "PATCH", path, server.token(), body);
        assert_eq!(code, 403, "{status}");
        assert_eq!(
            status["details"],
            json!({"name": "p", "group": "tracer.dev", "kind": "tracingpolicies"})
        );
    }

    #[test]
    fn a_watch_streams_over_tls() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = ApiServer::start_tls(dir.path());
        server.apply(pod("a"));
        let mut conn = connect(&server, "kubernetes.default.svc");
        let target = "/api/v1/pods?watch=true&resourceVersion=0&timeoutSeconds=1";
        let (code, headers) = send(&mut conn, "GET", target, server.token(), "");
        assert_eq!(code, 200);
        assert!(
            headers.contains(&"transfer-encoding: chunked".to_owned()),
            "{headers:?}"
        );
        let mut size = String::new();
        conn.read_line(&mut size).expect("a chunk's size");
        let mut event = String::new();
        conn.read_line(&mut event).expect("a chunk");
        let event: Value = serde_json::from_str(&event).expect("an event");
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], "a");
    }

    #[test]
    fn a_watch_without_its_rule_is_forbidden() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rbac = "kind: ClusterRole\nrules:\n- apiGroups: [\"\"]\n  resources: [\"pods\"]\n  verbs: [\"get\", \"list\"]\n";
        let server = ApiServer::start_tls_with_rules(dir.path(), rbac);
        let (code, _) = request(&server, "GET", "/api/v1/pods", server.token(), "");
        assert_eq!(code, 200);
        let target = "/api/v1/pods?watch=true&resourceVersion=1";
        let (code, status) = request(&server, "GET", target, server.token(), "");
        assert_eq!(code, 403, "{status}");
        assert_eq!(
            status,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": WATCH_PODS_FORBIDDEN, "reason": "Forbidden",
                   "details": {"kind": "pods"}, "code": 403})
        );
        assert!(server.requests().contains(&format!("403 GET {target}")));
    }

    #[test]
    fn plain_http_asks_nobody() {
        let server = ApiServer::start();
        assert_eq!(server.token(), None);
        let tcp = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        let mut conn = BufReader::new(tcp);
        let (code, _) = send(&mut conn, "GET", "/api/v1/pods", None, "");
        assert_eq!(code, 200);
        assert_eq!(server.requests(), ["GET /api/v1/pods"]);
    }
}
