//! The agent's metrics in the Prometheus conventions, and its health, served over HTTP by
//! `--metrics-server ADDR`: `/metrics` (the text exposition format), `/healthz` (the
//! agent's loop is turning: liveness) and `/readyz` (it is tracing: readiness).
//!
//! Every event the export stage takes is counted once by type (`tracer_events_total`),
//! and, per sink, ends up exported, filtered, rate limited, dropped or still queued:
//! `tracer_events_total = tracer_events_filtered_total + tracer_export_ratelimit_events_dropped_total
//! + tracer_events_exported_total{sink} + tracer_export_dropped_events_total{sink}
//! + tracer_export_queue_events{sink}`. What the kernel could not hand over is
//! `tracer_kernel_events_lost_total`.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Labels = Vec<(&'static str, String)>;

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_owned())]
}

pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    policy_events: Family<Labels, Counter>,
    filtered: Family<Labels, Counter>,
    rate_limited: Counter,
    exported: Family<Labels, Counter>,
    exported_bytes: Family<Labels, Counter>,
    export_errors: Family<Labels, Counter>,
    export_dropped: Family<Labels, Counter>,
    queue: Family<Labels, Gauge>,
    kernel_events: Family<Labels, Counter>,
    kernel_lost: Family<Labels, Counter>,
    decode_errors: Counter,
    stacks_lost: Family<Labels, Counter>,
    cache_size: Gauge,
    cache_capacity: Gauge,
    cache_evictions: Counter,
    cache_misses: Counter,
    policies: Family<Labels, Gauge>,
    policy_hooks: Family<Labels, Gauge>,
    policy_hook_points: Family<Labels, Gauge>,
    policy_kernel: Family<Vec<(&'static str, String)>, Counter>,
    /// `events` of the agent's own event types, looked up without building labels (one
    /// count per event on the hot path).
    known_types: [(&'static str, Counter); crate::event::KINDS.len()],
    /// `policy_events`, likewise, once a policy has had an event.
    known_policies: Mutex<HashMap<String, Counter>>,
    /// The last value of each counter kept elsewhere (the kernel's, the cache's, the
    /// sinks'), so that each observation adds what is new.
    last: Mutex<HashMap<String, u64>>,
    /// Seconds since the epoch of the agent loop's last turn.
    heartbeat: AtomicU64,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tracer");
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        let events: Family<Labels, Counter> = reg!(
            "events",
            "Events the export stage took, by type",
            Family::default()
        );
        let policy_events: Family<Labels, Counter> = reg!(
            "policy_events",
            "Events of each tracing policy",
            Family::default()
        );
        let filtered = reg!(
            "events_filtered",
            "Events left out by --export-allowlist or --export-denylist",
            Family::default()
        );
        let rate_limited = reg!(
            "export_ratelimit_events_dropped",
            "Events dropped by --export-rate-limit",
            Counter::default()
        );
        let exported = reg!(
            "events_exported",
            "Events written or handed over, by sink",
            Family::default()
        );
        let exported_bytes = reg!(
            "events_exported_bytes",
            "Bytes of events written, by sink",
            Family::default()
        );
        let export_errors = reg!(
            "export_errors",
            "Failed writes or export attempts, by sink",
            Family::default()
        );
        let export_dropped = reg!(
            "export_dropped_events",
            "Events a sink could not take (its queue was full while it failed), by sink",
            Family::default()
        );
        let queue = reg!(
            "export_queue_events",
            "Events waiting in a sink's queue",
            Family::default()
        );
        let kernel_events = reg!(
            "kernel_events",
            "Records the kernel handed over, by kind",
            Family::default()
        );
        let kernel_lost = reg!(
            "kernel_events_lost",
            "Records the kernel could not hand over (ring buffer full), by kind",
            Family::default()
        );
        let decode_errors = reg!(
            "decode_errors",
            "Malformed records from the kernel",
            Counter::default()
        );
        let stacks_lost = reg!(
            "stack_traces_lost",
            "Stack traces a policy event asked for and goes out without, by stack (kernel, user) and reason (collision: the kernel's map had another stack in its slot; unavailable: no stack to take there; gone: deleted before it was read; error)",
            Family::default()
        );
        let cache_size = reg!(
            "process_cache_size",
            "Processes in the process cache",
            Gauge::default()
        );
        let cache_capacity = reg!(
            "process_cache_capacity",
            "Most processes the process cache holds",
            Gauge::default()
        );
        let cache_evictions = reg!(
            "process_cache_evictions",
            "Processes evicted from the full process cache",
            Counter::default()
        );
        let cache_misses = reg!(
            "process_cache_misses",
            "Lookups of processes the cache did not hold",
            Counter::default()
        );
        let policies = reg!(
            "tracingpolicy_loaded",
            "Tracing policies by state (loaded, partly_loaded, error)",
            Family::default()
        );
        let policy_hooks = reg!(
            "policy_hooks",
            "Policy hooks in the kernel's maps (of=loaded), and the most they hold (of=capacity, --policy-capacity)",
            Family::default()
        );
        let policy_hook_points = reg!(
            "policy_hook_points",
            "Hook points (tracepoints, syscalls, functions) policies hook (of=loaded), and the most there can be (of=capacity, --policy-hook-points)",
            Family::default()
        );
        let policy_kernel = reg!(
            "policy_kernel_hits",
            "Hook hits of each policy in the kernel, by stage (seen, matched, posted, lost, rate_limited)",
            Family::default()
        );
        let known_types =
            crate::event::KINDS.map(|t| (t, events.get_or_create(&label("type", t)).clone()));
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
            .set(1);
        registry.register("build_info", "The agent's version", build);
        Self {
            registry,
            events,
            policy_events,
            filtered,
            rate_limited,
            exported,
            exported_bytes,
            export_errors,
            export_dropped,
            queue,
            kernel_events,
            kernel_lost,
            decode_errors,
            stacks_lost,
            cache_size,
            cache_capacity,
            cache_evictions,
            cache_misses,
            policies,
            policy_hooks,
            policy_hook_points,
            policy_kernel,
            known_types,
            known_policies: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
            heartbeat: AtomicU64::new(now_secs()),
            ready: AtomicBool::new(false),
        }
    }

    pub fn event(&self, kind: &str, policy: Option<&str>) {
        match self.known_types.iter().find(|(t, _)| *t == kind) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                self.events.get_or_create(&label("type", kind)).inc();
            }
        }
        if let Some(p) = policy.filter(|p| !p.is_empty()) {
            let mut known = self
                .known_policies
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match known.get(p) {
                Some(c) => {
                    c.inc();
                }
                None => {
                    let c = self
                        .policy_events
                        .get_or_create(&label("policy", p))
                        .clone();
                    c.inc();
                    known.insert(p.to_owned(), c);
                }
            }
        }
    }

    pub fn filtered(&self, filter: &'static str) {
        self.filtered.get_or_create(&label("filter", filter)).inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn decode_error(&self) {
        self.decode_errors.inc();
    }

    /// A stack trace an event goes out without (`stack`: kernel or user).
    pub fn stack_trace_lost(&self, stack: &str, reason: &'static str) {
        self.stacks_lost
            .get_or_create(&vec![
                ("stack", stack.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// A sink's totals now (each a count since the agent started).
    pub fn sink(&self, sink: &str, s: SinkCounts) {
        let l = label("sink", sink);
        self.advance(
            &self.exported.get_or_create(&l),
            &format!("exported/{sink}"),
            s.exported,
        );
        self.advance(
            &self.exported_bytes.get_or_create(&l),
            &format!("bytes/{sink}"),
            s.bytes,
        );
        self.advance(
            &self.export_errors.get_or_create(&l),
            &format!("errors/{sink}"),
            s.errors,
        );
        self.advance(
            &self.export_dropped.get_or_create(&l),
            &format!("dropped/{sink}"),
            s.dropped,
        );
        self.queue
            .get_or_create(&l)
            .set(i64::try_from(s.queued).unwrap_or(i64::MAX));
    }

    /// The kernel's totals by kind: records handed over and lost.
    pub fn kernel(&self, kind: &str, emitted: u64, lost: u64) {
        let l = label("kind", kind);
        self.advance(
            &self.kernel_events.get_or_create(&l),
            &format!("k/{kind}"),
            emitted,
        );
        self.advance(
            &self.kernel_lost.get_or_create(&l),
            &format!("kl/{kind}"),
            lost,
        );
    }

    pub fn cache(&self, size: usize, capacity: usize, evictions: u64, misses: u64) {
        self.cache_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.cache_capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        self.advance(&self.cache_evictions, "cache/evictions", evictions);
        self.advance(&self.cache_misses, "cache/misses", misses);
    }

    /// How many policies are in each state now.
    pub fn policies(&self, loaded: usize, partly: usize, error: usize) {
        for (state, n) in [
            ("loaded", loaded),
            ("partly_loaded", partly),
            ("error", error),
        ] {
            self.policies
                .get_or_create(&label("state", state))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Policy hooks and hook points loaded, and the most there can be.
    pub fn policy_sizes(&self, s: crate::policy::store::Sizes) {
        for (family, loaded, capacity) in [
            (&self.policy_hooks, s.hooks, s.hooks_capacity),
            (
                &self.policy_hook_points,
                s.hook_points,
                s.hook_points_capacity,
            ),
        ] {
            for (of, n) in [("loaded", loaded), ("capacity", capacity)] {
                family
                    .get_or_create(&label("of", of))
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// A policy's kernel counters now.
    pub fn policy_kernel(&self, policy: &str, stages: [(&'static str, u64); 5]) {
        for (stage, n) in stages {
            let l = vec![("policy", policy.to_owned()), ("stage", stage.to_owned())];
            self.advance(
                &self.policy_kernel.get_or_create(&l),
                &format!("p/{policy}/{stage}"),
                n,
            );
        }
    }

    /// Adds to `counter` what `total` has grown by since the last call for `key` (a total
    /// that went down was reset, as a reloaded policy's: all of it is new).
    fn advance(&self, counter: &Counter, key: &str, total: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let before = last.insert(key.to_owned(), total).unwrap_or(0);
        let new = if total >= before {
            total - before
        } else {
            total
        };
        if new > 0 {
            counter.inc_by(new);
        }
    }

    /// The agent's loop turned.
    pub fn beat(&self) {
        self.heartbeat.store(now_secs(), Ordering::Relaxed);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!("metrics: encoding failed: {e}");
        }
        out
    }

    /// Every series of the exposition text but the build's, as `series=value` words on
    /// one line: the counters as they stand at exit, for the log, once no scrape can
    /// read them.
    pub fn totals(&self) -> String {
        self.text()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("tracer_build_info"))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(series, value)| format!("{series}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn healthy(&self) -> bool {
        now_secs().saturating_sub(self.heartbeat.load(Ordering::Relaxed)) <= HEALTH_STALE_SECS
    }
}

/// The loop turns at least every second (its timers); past this it is stuck.
const HEALTH_STALE_SECS: u64 = 10;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A sink's totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkCounts {
    pub exported: u64,
    pub bytes: u64,
    pub errors: u64,
    pub dropped: u64,
    pub queued: u64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-server {addr}: cannot listen: {source}; choose a free address such as :2112 or 127.0.0.1:2112"
)]
pub struct ServeError {
    addr: String,
    #[source]
    source: std::io::Error,
}

/// `:2112` (every address, IPv6 and IPv4: `[::]:2112`, see [`listen`]) or `HOST:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("[::]{s}")
    } else {
        s.to_owned()
    };
    full.parse()
        .map_err(|e| format!("`{s}` is not an address such as :2112 or 127.0.0.1:2112 ({e})"))
}

/// The most connections the metrics server keeps open at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may wait before (or between) requests.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest a connection to the metrics server stays open.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// A listener on `addr`. IPv6's any address (`[::]`, what `:PORT` means) takes IPv4
/// connections too (`IPV6_V6ONLY` off, whatever the system's default); where the kernel
/// has no IPv6, IPv4's any address is used instead, saying so.
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use std::os::fd::AsRawFd as _;
    use tokio::net::TcpSocket;
    let bind = |socket: TcpSocket, addr| {
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    if !(addr.is_ipv6() && addr.ip().is_unspecified()) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        return bind(socket, addr);
    }
    let dual = TcpSocket::new_v6().and_then(|socket| {
        let off: libc::c_int = 0;
        // SAFETY: the descriptor is `socket`'s, open for the call; the option's value is
        // a c_int that outlives the call, and its size is the one given.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&raw const off).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        bind(socket, addr)
    });
    match dual {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
            ) =>
        {
            let v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!("metrics: no IPv6 here ({e}): listening on IPv4 only ({v4})");
            bind(TcpSocket::new_v4()?, v4)
        }
        other => other,
    }
}

/// Listens on `addr` and serves `/metrics`, `/healthz` and `/readyz` in the background.
/// Returns the bound address (`:0` picks a free port).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr, ServeError> {
    use http_body_util::Full;
    use hyper::{Response, StatusCode, body::Bytes, service::service_fn};

    let listener = listen(addr).map_err(|source| ServeError {
        addr: addr.to_string(),
        source,
    })?;
    let bound = listener.local_addr().map_err(|source| ServeError {
        addr: addr.to_string(),
        source,
    })?;
    // A bound on open connections, and on how long one lasts: scrapers and probes take
    // milliseconds, and idle connections must not take the agent's file descriptors.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics: accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!("metrics: {MAX_CONNECTIONS} connections open already: one refused");
                drop(stream);
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let (status, ctype, body) = match req.uri().path() {
                            "/metrics" => (
                                StatusCode::OK,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                metrics.text(),
                            ),
                            "/healthz" if metrics.healthy() => {
                                (StatusCode::OK, "text/plain", "ok\n".into())
                            }
                            "/healthz" => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain",
                                "the agent's loop is stuck\n".into(),
                            ),
                            "/readyz" if metrics.ready.load(Ordering::Relaxed) => {
                                (StatusCode::OK, "text/plain", "ready\n".into())
                            }
                            "/readyz" => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain",
                                "not tracing yet\n".into(),
                            ),
                            _ => (
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "not found: try /metrics, /healthz or /readyz\n".into(),
                            ),
                        };
                        Response::builder()
                            .status(status)
                            .header("content-type", ctype)
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    // A connection that sends no request for this long is closed.
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(IDLE_TIMEOUT)
                    .serve_connection(io, service);
                match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                    Ok(Err(e)) => tracing::debug!("metrics: a connection ended: {e}"),
                    Err(_) => tracing::debug!(
                        "metrics: a connection closed after {CONNECTION_LIFETIME:?}"
                    ),
                    Ok(Ok(())) => {}
                }
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_by_label_and_totals_kept_elsewhere() {
        let m = Metrics::new();
        m.event("process_exec", None);
        m.event("process_kprobe", Some("p"));
        m.filtered("denylist");
        m.sink(
            "file",
            SinkCounts {
                exported: 5,
                bytes: 100,
                errors: 1,
                dropped: 2,
                queued: 3,
            },
        );
        m.sink(
            "file",
            SinkCounts {
                exported: 7,
                ..Default::default()
            },
        );
        m.kernel("exec", 10, 1);
        m.policy_kernel(
            "p",
            [
                ("seen", 4),
                ("matched", 2),
                ("posted", 2),
                ("lost", 0),
                ("rate_limited", 0),
            ],
        );
        m.policy_kernel(
            "p",
            [
                ("seen", 1),
                ("matched", 0),
                ("posted", 0),
                ("lost", 0),
                ("rate_limited", 0),
            ],
        );
        m.policy_sizes(crate::policy::store::Sizes {
            hooks: 1000,
            hook_points: 1,
            hooks_capacity: 16384,
            hook_points_capacity: 4096,
        });
        let text = m.text();
        for line in [
            "tracer_policy_hooks{of=\"loaded\"} 1000",
            "tracer_policy_hooks{of=\"capacity\"} 16384",
            "tracer_policy_hook_points{of=\"loaded\"} 1",
            "tracer_policy_hook_points{of=\"capacity\"} 4096",
            "tracer_events_total{type=\"process_exec\"} 1",
            "tracer_policy_events_total{policy=\"p\"} 1",
            "tracer_events_filtered_total{filter=\"denylist\"} 1",
            "tracer_events_exported_total{sink=\"file\"} 7",
            "tracer_export_dropped_events_total{sink=\"file\"} 2",
            "tracer_export_queue_events{sink=\"file\"} 0",
            "tracer_kernel_events_lost_total{kind=\"exec\"} 1",
            // Reset (a reloaded policy): the new total adds on.
            "tracer_policy_kernel_hits_total{policy=\"p\",stage=\"seen\"} 5",
            "tracer_build_info{version=",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let totals = m.totals();
        assert!(
            totals.contains("tracer_events_total{type=\"process_exec\"}=1 "),
            "{totals}"
        );
        assert!(!totals.contains("build_info") && !totals.contains('#'));
    }

    /// `:PORT` listens on IPv6 and IPv4 both: `[::1]` and `127.0.0.1` answer.
    #[tokio::test]
    async fn an_empty_host_listens_on_ipv6_and_ipv4() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = parse_addr(":0").expect("valid");
        let bound = serve(addr, Arc::new(Metrics::new())).await.expect("listen");
        assert!(bound.is_ipv6(), "{bound}");
        for host in ["[::1]", "127.0.0.1"] {
            let mut s = tokio::net::TcpStream::connect(format!("{host}:{}", bound.port()))
                .await
                .unwrap_or_else(|e| panic!("connect to {host}: {e}"));
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
                .await
                .expect("request");
            let mut text = String::new();
            s.read_to_string(&mut text).await.expect("response");
            assert!(
                text.starts_with("HTTP/1.") && text.contains(" 503 "),
                "{host}: {text}"
            );
            assert!(text.ends_with("not tracing yet\n"), "{host}: {text}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr(":2112").unwrap().port(), 2112);
        assert_eq!(parse_addr(":2112").unwrap().to_string(), "[::]:2112");
        assert!(parse_addr("127.0.0.1:9").is_ok());
        assert!(parse_addr("localhost").is_err());
    }
}
