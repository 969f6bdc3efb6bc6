//! A real OTLP receiver for tests, built from the OpenTelemetry protocol's definitions
//! (`opentelemetry-proto`'s generated server): the collector's gRPC
//! `LogsService/Export` and HTTP `POST /v1/logs` (protobuf body), both on one port of
//! 127.0.0.1 (HTTP/2 for gRPC, HTTP/1.1 for the other, told apart per connection).
//!
//! It keeps every record it accepted, with its resource, for assertions. It can be
//! stopped (the port refuses connections, open ones are cut) and started again on the
//! same port, told to answer the next requests with an error (UNAVAILABLE / 503, or the
//! permanent INVALID_ARGUMENT / 400), or to answer them slowly. It runs on a runtime of
//! its own, so that it keeps answering whatever the test's runtime is doing.

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener as StdListener},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
pub use opentelemetry_proto::tonic::{
    collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse},
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    logs::v1::LogRecord,
    resource::v1::Resource,
};
use prost::Message as _;
use serde_json::{Map, Value};
use tokio::{runtime::Runtime, task::JoinHandle};
use tonic::codegen::Service as _;

/// How a record came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Grpc,
    Http,
}

/// One accepted record, with the resource and scope it came under.
#[derive(Debug, Clone)]
pub struct Received {
    pub via: Via,
    pub resource: Resource,
    pub scope: InstrumentationScope,
    pub record: LogRecord,
}

impl Received {
    /// The record's attributes, `{key: value}` in JSON.
    pub fn attributes(&self) -> Map<String, Value> {
        key_values(&self.record.attributes)
    }

    /// One attribute, in JSON; `Null` when absent.
    pub fn attr(&self, key: &str) -> Value {
        self.attributes().remove(key).unwrap_or(Value::Null)
    }

    /// The resource's attributes, `{key: value}` in JSON.
    pub fn resource_attributes(&self) -> Map<String, Value> {
        key_values(&self.resource.attributes)
    }

    /// The body, in JSON.
    pub fn body(&self) -> Value {
        self.record.body.as_ref().map_or(Value::Null, to_json)
    }

    /// The `tracer.seq` attribute.
    pub fn seq(&self) -> Option<i64> {
        self.attr("tracer.seq").as_i64()
    }
}

/// Key-value pairs as a JSON object.
fn key_values(list: &[KeyValue]) -> Map<String, Value> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, to_json),
            )
        })
        .collect()
}

/// An AnyValue in JSON: key-value lists as objects, arrays as arrays, bytes as base64.
pub fn to_json(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::String(s.clone()),
        Some(V::BoolValue(b)) => Value::Bool(*b),
        Some(V::IntValue(i)) => Value::from(*i),
        Some(V::DoubleValue(d)) => Value::from(*d),
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
        Some(V::KvlistValue(l)) => Value::Object(key_values(&l.values)),
        Some(V::BytesValue(b)) => {
            use base64::Engine as _;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(V::StringValueStrindex(i)) => Value::String(format!("<string table {i}>")),
    }
}

/// What the next requests are answered.
#[derive(Default)]
struct Control {
    /// Answer UNAVAILABLE (gRPC) or 503 (HTTP) to this many.
    fail_next: u64,
    /// Answer INVALID_ARGUMENT (gRPC) or 400 (HTTP) to this many.
    reject_next: u64,
    /// Answer this many after `delay`.
    slow_next: u64,
    delay: Duration,
    /// Answer RESOURCE_EXHAUSTED (gRPC) or 429 with `Retry-After: retry_after` (HTTP) to
    /// this many.
    throttle_next: u64,
    retry_after: Duration,
    /// Accept this many, saying that `rejected` of each one's records were refused.
    partial_next: u64,
    rejected: i64,
    /// Accept this many with a body that is not protobuf (HTTP; a proxy's page).
    garbage_next: u64,
}

enum Answer {
    Ok,
    Unavailable,
    Invalid,
    Throttled(Duration),
    Partial(i64),
    Garbage,
}

#[derive(Default)]
struct Inner {
    records: Mutex<Vec<Received>>,
    control: Mutex<Control>,
    requests: AtomicU64,
    error_answers: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// Decides the answer to one request, and keeps its records if it is OK.
    async fn take(&self, via: Via, request: ExportLogsServiceRequest) -> Answer {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (answer, delay) = {
            let mut c = lock(&self.control);
            let delay = (c.slow_next > 0).then(|| {
                c.slow_next -= 1;
                c.delay
            });
            let answer = if c.fail_next > 0 {
                c.fail_next -= 1;
                Answer::Unavailable
            } else if c.reject_next > 0 {
                c.reject_next -= 1;
                Answer::Invalid
            } else if c.throttle_next > 0 {
                c.throttle_next -= 1;
                Answer::Throttled(c.retry_after)
            } else if c.partial_next > 0 {
                c.partial_next -= 1;
                Answer::Partial(c.rejected)
            } else if c.garbage_next > 0 {
                c.garbage_next -= 1;
                Answer::Garbage
            } else {
                Answer::Ok
            };
            (answer, delay)
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        match answer {
            Answer::Ok | Answer::Partial(_) | Answer::Garbage => {
                let mut records = lock(&self.records);
                for rl in request.resource_logs {
                    let resource = rl.resource.unwrap_or_default();
                    for sl in rl.scope_logs {
                        let scope = sl.scope.unwrap_or_default();
                        for record in sl.log_records {
                            records.push(Received {
                                via,
                                resource: resource.clone(),
                                scope: scope.clone(),
                                record,
                            });
                        }
                    }
                }
            }
            Answer::Unavailable | Answer::Invalid | Answer::Throttled(_) => {
                self.error_answers.fetch_add(1, Ordering::Relaxed);
            }
        }
        answer
    }
}

/// The gRPC service.
struct Collector(Arc<Inner>);

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        match self.0.take(Via::Grpc, request.into_inner()).await {
            Answer::Ok | Answer::Garbage => {
                Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
            }
            Answer::Partial(rejected) => Ok(tonic::Response::new(partial(rejected))),
            Answer::Unavailable => Err(tonic::Status::unavailable("receiver told to fail")),
            Answer::Invalid => Err(tonic::Status::invalid_argument("receiver told to refuse")),
            Answer::Throttled(_) => Err(tonic::Status::resource_exhausted(
                "receiver told to throttle",
            )),
        }
    }
}

/// An answer that accepts the request but refuses `rejected` of its records.
fn partial(rejected: i64) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: Some(
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: "receiver told to refuse some".into(),
            },
        ),
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

type Response = http::Response<tonic::body::Body>;

fn answer(status: http::StatusCode, body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(tonic::body::Body::new(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    resp
}

fn error(status: http::StatusCode, code: i32, message: &str) -> Response {
    let body = RpcStatus {
        code,
        message: message.to_owned(),
    }
    .encode_to_vec();
    answer(status, body)
}

/// `POST /v1/logs`.
async fn http_logs(inner: Arc<Inner>, req: http::Request<Incoming>) -> Response {
    use http::StatusCode as S;
    if req.method() != http::Method::POST {
        return error(S::METHOD_NOT_ALLOWED, 12, "POST only");
    }
    let protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    if !protobuf {
        return error(S::UNSUPPORTED_MEDIA_TYPE, 3, "application/x-protobuf only");
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(S::BAD_REQUEST, 3, &format!("body: {e}")),
    };
    let request = match ExportLogsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return error(S::BAD_REQUEST, 3, &format!("not a request: {e}")),
    };
    match inner.take(Via::Http, request).await {
        Answer::Ok => answer(S::OK, ExportLogsServiceResponse::default().encode_to_vec()),
        Answer::Unavailable => error(S::SERVICE_UNAVAILABLE, 14, "receiver told to fail"),
        Answer::Invalid => error(S::BAD_REQUEST, 3, "receiver told to refuse"),
        Answer::Throttled(after) => {
            let mut resp = error(S::TOO_MANY_REQUESTS, 8, "receiver told to throttle");
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(after.as_secs()),
            );
            resp
        }
        Answer::Partial(rejected) => answer(S::OK, partial(rejected).encode_to_vec()),
        Answer::Garbage => {
            let mut resp = answer(S::OK, b"<html><body>OK</body></html>".to_vec());
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html"),
            );
            resp
        }
    }
}

async fn route(inner: Arc<Inner>, req: http::Request<Incoming>) -> Result<Response, Infallible> {
    let path = req.uri().path();
    if path == "/v1/logs" {
        return Ok(http_logs(inner, req).await);
    }
    if path.starts_with("/opentelemetry.proto.collector.logs.v1.LogsService/") {
        return LogsServiceServer::new(Collector(inner)).call(req).await;
    }
    Ok(error(http::StatusCode::NOT_FOUND, 5, "no such path"))
}

/// Accepts connections until aborted; aborting it cuts every connection too.
async fn serve(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let inner = inner.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| route(inner.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// How long the waits for records take at most.
pub const WAIT: Duration = Duration::from_secs(60);

/// The receiver. Dropping it stops it.
pub struct Receiver {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    inner: Arc<Inner>,
    server: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free port of 127.0.0.1.
    pub fn start() -> Receiver {
        Self::start_on(0)
    }

    /// Starts on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-receiver")
            .enable_all()
            .build()
            .expect("the receiver's runtime");
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)));
        let addr = listener.local_addr().expect("the receiver's address");
        let mut r = Receiver {
            runtime: Some(runtime),
            addr,
            inner: Arc::default(),
            server: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: StdListener) {
        let runtime = self.runtime.as_ref().expect("the receiver's runtime");
        let _entered = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        self.server = Some(runtime.spawn(serve(listener, self.inner.clone())));
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for either protocol (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops answering: the port refuses connections, and open ones are cut.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Starts again on the same port (after `stop`).
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "the receiver is running");
        let listener = bind(self.addr);
        self.serve(listener);
    }

    /// The next `n` requests are answered UNAVAILABLE (gRPC) or 503 (HTTP).
    pub fn fail_next(&self, n: u64) {
        lock(&self.inner.control).fail_next = n;
    }

    /// The next `n` requests are answered INVALID_ARGUMENT (gRPC) or 400 (HTTP).
    pub fn reject_next(&self, n: u64) {
        lock(&self.inner.control).reject_next = n;
    }

    /// The next `n` requests are answered after `delay`.
    pub fn slow_next(&self, n: u64, delay: Duration) {
        let mut c = lock(&self.inner.control);
        c.slow_next = n;
        c.delay = delay;
    }

    /// The next `n` requests are answered RESOURCE_EXHAUSTED (gRPC) or 429 with
    /// `Retry-After` (HTTP; whole seconds).
    pub fn throttle_next(&self, n: u64, retry_after: Duration) {
        let mut c = lock(&self.inner.control);
        c.throttle_next = n;
        c.retry_after = retry_after;
    }

    /// The next `n` requests are accepted with a partial success: `rejected` of the
    /// records refused (the receiver keeps them all).
    pub fn partial_next(&self, n: u64, rejected: i64) {
        let mut c = lock(&self.inner.control);
        c.partial_next = n;
        c.rejected = rejected;
    }

    /// The next `n` requests are accepted with a body that is not protobuf (over HTTP;
    /// over gRPC an empty answer).
    pub fn garbage_next(&self, n: u64) {
        lock(&self.inner.control).garbage_next = n;
    }

    /// Every record accepted so far.
    pub fn records(&self) -> Vec<Received> {
        lock(&self.inner.records).clone()
    }

    /// Export requests received so far (answered or not yet).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Requests answered with an error, as told.
    pub fn error_answers(&self) -> u64 {
        self.inner.error_answers.load(Ordering::Relaxed)
    }

    /// Waits (up to [`WAIT`]) until `done` holds of the records; returns them.
    pub async fn wait_until(
        &self,
        what: &str,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let records = self.records();
            if done(&records) {
                return records;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}: {} records received, {} requests",
                records.len(),
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` records are in.
    pub async fn wait_for_records(&self, n: usize) -> Vec<Received> {
        self.wait_until(&format!("{n} records"), |r| r.len() >= n)
            .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Binds `addr`, waiting a little while a port just closed is still taken.
fn bind(addr: SocketAddr) -> StdListener {
    let start = Instant::now();
    loop {
        match StdListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true).expect("a non-blocking listener");
                return l;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && start.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot listen on {addr}: {e}"),
        }
    }
}
