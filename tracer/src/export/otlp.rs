//! The OTLP logs exporter: every event goes to an OpenTelemetry collector as one
//! LogRecord, over gRPC or HTTP/protobuf.
//!
//! - **Record**: the body is the event itself as a structured value (the JSON object as
//!   a key-value list, arrays as arrays); `event_name` and the attribute `event.name` are
//!   its kind (`process_exec`, ...); `time_unix_nano` is its `time`, severity INFO; the
//!   attributes follow the OpenTelemetry semantic conventions where they name the thing
//!   (`process.pid`, `k8s.pod.name`, `network.peer.address`, ...) and are `tracer.*`
//!   where they do not (`tracer.exec_id`, `tracer.policy.name`, `tracer.seq`). See
//!   [`record`]. The resource names the service (`tracer`, its version), `host.name`
//!   and `k8s.node.name`.
//! - **Queue**: [`OtlpExporter::send`] converts the event and puts the record in a
//!   bounded queue; it never waits and never fails. When the queue is full the *new*
//!   record is dropped and counted (as the OpenTelemetry SDK's batch processor does):
//!   what is queued goes out in the order it happened, and the counted drop, with the
//!   gap in `tracer.seq`, says what is missing.
//! - **Export**: a task on the agent's tokio runtime takes up to `max_batch` records
//!   (waiting `linger` for a batch to fill), sends them as one request, and on a failure
//!   worth another try (no connection, no answer within the timeout, gRPC UNAVAILABLE and
//!   the other retryable codes, HTTP 429/502/503/504) sends the same batch again after an
//!   exponential backoff (with jitter, and at least what `Retry-After` says), without
//!   end: new records keep queueing meanwhile (and dropping once the queue is full), and
//!   the queue drains at full speed when the collector is back. A permanent refusal (HTTP
//!   400, gRPC INVALID_ARGUMENT, ...) drops the batch and counts it, as do the records a
//!   partial success rejects. A request that timed out may still have been taken by the
//!   collector: delivery is at least once.
//! - **Logs**: through `tracing`, rate limited: the first failure, then one line at most
//!   every 30 s while the failure lasts, then one line when exports work again; each
//!   names the endpoint and the error.
//!
//! Why the protocol's own types (`opentelemetry-proto`, with tonic for gRPC and hyper
//! for HTTP) rather than `opentelemetry-otlp`'s `LogExporter`: that exporter turns every
//! failure into one `OTelSdkError::InternalFailure(String)`, so its caller cannot tell
//! a 503 from a 400 (retry or drop), it only logs a partial success's rejected count (no
//! exact drop count), and its retry is its own (a few tries, then the batch is lost,
//! uncounted). Building the request here keeps each of those decisions, and their
//! counts, in this module; the body is built straight from the JSON as a structured
//! value.

mod config;
pub mod record;
mod transport;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
};
use tokio::{sync::Notify, task::JoinHandle};

pub use config::{
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_LINGER, DEFAULT_MAX_BATCH,
    DEFAULT_QUEUE_SIZE, DEFAULT_TIMEOUT, OtlpConfig, Protocol,
};
use transport::{Outcome, Transport};

/// A retry waits at most this long for a collector's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// A failure that lasts is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// A flag or variable with a value that cannot be used.
    #[error("{setting} {value:?}: {reason}; {fix}")]
    Config {
        setting: String,
        value: String,
        reason: String,
        fix: String,
    },
    #[error("otlp: cannot make the client of {endpoint}: {reason}")]
    Client { endpoint: String, reason: String },
    #[error("otlp: the exporter runs on a tokio runtime, and none is running here")]
    NoRuntime,
}

impl OtlpError {
    fn config(setting: &str, value: &str, reason: &str, fix: &str) -> Self {
        OtlpError::Config {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
            fix: fix.to_owned(),
        }
    }
}

/// The exporter's counters. At any time `received == exported + dropped + queued`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpStats {
    /// Events given to `send`.
    pub received: u64,
    /// Records waiting now, or in the request under way.
    pub queued: u64,
    /// Records the collector accepted.
    pub exported: u64,
    /// Records that will never be exported: `dropped_queue_full + rejected`.
    pub dropped: u64,
    /// Of `dropped`: records that found the queue full.
    pub dropped_queue_full: u64,
    /// Of `dropped`: records the collector refused (a permanent error for their batch,
    /// or rejected in a partial success).
    pub rejected: u64,
    /// Export requests that failed (each try counts).
    pub failed_exports: u64,
    /// Export requests that were another try of a failed batch.
    pub retries: u64,
}

/// The OTLP exporter: [`send`](Self::send) each event, [`shutdown`](Self::shutdown) at
/// the end.
pub struct OtlpExporter {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    queue_size: usize,
    max_batch: usize,
    endpoint: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<LogRecord>,
    in_flight: u64,
    closing: bool,
    stats: OtlpStats,
    /// When a full queue was last logged, and the drops since.
    drop_logged: Option<Instant>,
    drops_unlogged: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl OtlpExporter {
    /// Starts the export task on the current tokio runtime (a current-thread one is
    /// fine). Connects at the first export: a collector that is not up yet is no error.
    pub fn start(config: OtlpConfig) -> Result<OtlpExporter, OtlpError> {
        if config.queue_size == 0 {
            return Err(OtlpError::config(
                "--otlp-queue-size",
                "0",
                "must be at least 1",
                "give the most records to keep while the collector is away, e.g. 8192",
            ));
        }
        if config.max_batch == 0 {
            return Err(OtlpError::config(
                "max_batch",
                "0",
                "must be at least 1",
                "give the most records of one request, e.g. 512",
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
        let transport = Transport::new(&config)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            queue_size: config.queue_size,
            max_batch: config.max_batch,
            endpoint: config.endpoint.to_string(),
        });
        tracing::info!(
            "otlp: exporting events as log records to {} over {} (queue of {} records)",
            config.endpoint,
            config.protocol,
            config.queue_size
        );
        let worker = runtime.spawn(run(shared.clone(), transport, config));
        Ok(OtlpExporter {
            shared,
            worker: Some(worker),
        })
    }

    /// Queues `event` (one Tetragon-shaped JSON object) for export; when the queue is
    /// full it is dropped and counted instead. Never waits.
    pub fn send(&self, event: &serde_json::Value) {
        // A full queue is found before the conversion, which it would waste.
        if self.count_if_full() {
            return;
        }
        let record = record::log_record(event, now_ns());
        let wake = {
            let mut s = self.shared.lock();
            if s.queue.len() >= self.shared.queue_size {
                drop(s);
                // Filled by another thread since.
                self.count_if_full();
                return;
            }
            s.stats.received += 1;
            s.queue.push_back(record);
            let n = s.queue.len();
            n == 1 || n == self.shared.max_batch
        };
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Counts a received record as dropped when the queue is full.
    fn count_if_full(&self) -> bool {
        let mut s = self.shared.lock();
        if s.queue.len() < self.shared.queue_size {
            return false;
        }
        s.stats.received += 1;
        s.stats.dropped_queue_full += 1;
        s.drops_unlogged += 1;
        let due = s.drop_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            let first = s.drop_logged.is_none();
            s.drop_logged = Some(Instant::now());
            let (since, total) = (s.drops_unlogged, s.stats.dropped_queue_full);
            s.drops_unlogged = 0;
            drop(s);
            if first {
                tracing::warn!(
                    "otlp: the queue of {} records for {} is full (exports fail or are slow): \
                     new records are dropped and counted",
                    self.shared.queue_size,
                    self.shared.endpoint
                );
            } else {
                tracing::warn!(
                    "otlp: the queue for {} is still full: {since} records dropped since the \
                     last report, {total} in all",
                    self.shared.endpoint
                );
            }
        }
        true
    }

    /// The counters now.
    pub fn stats(&self) -> OtlpStats {
        stats(&self.shared.lock())
    }

    /// Exports what is queued, trying until `deadline` is over, then stops. Returns the
    /// final counters: `queued` is what could not be exported (and is logged).
    pub async fn shutdown(mut self, deadline: Duration) -> OtlpStats {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(worker) = self.worker.take() {
            let abort = worker.abort_handle();
            if tokio::time::timeout(deadline, worker).await.is_err() {
                abort.abort();
            }
        }
        let stats = self.stats();
        if stats.queued > 0 {
            tracing::warn!(
                "otlp: {} records not exported to {} at shutdown (not within {} ms); \
                 {} exported, {} dropped in all",
                stats.queued,
                self.shared.endpoint,
                deadline.as_millis(),
                stats.exported,
                stats.dropped
            );
        } else {
            tracing::info!(
                "otlp: stopped: {} records exported to {}, {} dropped",
                stats.exported,
                self.shared.endpoint,
                stats.dropped
            );
        }
        stats
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

fn stats(s: &State) -> OtlpStats {
    let mut stats = s.stats;
    stats.queued = s.queue.len() as u64 + s.in_flight;
    stats.dropped = stats.dropped_queue_full + stats.rejected;
    stats
}

/// The export task: batches, exports, retries.
async fn run(shared: Arc<Shared>, transport: Transport, config: OtlpConfig) {
    let resource = record::resource(&config.host_name, &config.node_name);
    let scope = record::scope();
    let mut health = Health::new(shared.endpoint.clone());
    loop {
        // A first record.
        loop {
            {
                let s = shared.lock();
                if !s.queue.is_empty() {
                    break;
                }
                if s.closing {
                    return;
                }
            }
            shared.wake.notified().await;
        }
        // More, for a while, unless the batch is full or the exporter is closing.
        let linger = tokio::time::Instant::now() + config.linger;
        loop {
            {
                let s = shared.lock();
                if s.queue.len() >= shared.max_batch || s.closing {
                    break;
                }
            }
            tokio::select! {
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(linger) => break,
            }
        }
        let batch: Vec<LogRecord> = {
            let mut s = shared.lock();
            let n = s.queue.len().min(shared.max_batch);
            s.in_flight = n as u64;
            s.queue.drain(..n).collect()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource.clone()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope.clone()),
                    log_records: batch,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        export(&shared, &transport, &config, &request, &mut health).await;
    }
}

/// Exports one batch, trying again until it is taken or refused for good.
async fn export(
    shared: &Shared,
    transport: &Transport,
    config: &OtlpConfig,
    request: &ExportLogsServiceRequest,
    health: &mut Health,
) {
    let n = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum::<u64>();
    let mut backoff = config.backoff_initial;
    loop {
        match transport.export(request, config.timeout).await {
            Outcome::Done { rejected, message } => {
                let rejected = rejected.min(n);
                {
                    let mut s = shared.lock();
                    s.in_flight = 0;
                    s.stats.exported += n - rejected;
                    s.stats.rejected += rejected;
                }
                health.ok();
                if rejected > 0 {
                    health.refused(
                        rejected,
                        &format!("partial success: {rejected} of {n} rejected: {message}"),
                    );
                }
                return;
            }
            Outcome::Permanent { error } => {
                {
                    let mut s = shared.lock();
                    s.in_flight = 0;
                    s.stats.failed_exports += 1;
                    s.stats.rejected += n;
                }
                health.refused(n, &error);
                return;
            }
            Outcome::Retry { error, after } => {
                let now = {
                    let mut s = shared.lock();
                    s.stats.failed_exports += 1;
                    stats(&s)
                };
                health.failed(&error, &now);
                let delay = jitter(backoff).max(after.unwrap_or_default().min(MAX_RETRY_AFTER));
                tokio::time::sleep(delay).await;
                shared.lock().stats.retries += 1;
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
}

/// `d` from 80% to 120%, so that the agents of many nodes do not retry in step.
fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    // A cheap spread of the clock's low bits over 0..400.
    let spread = nanos.wrapping_mul(2_654_435_761) % 400;
    d.mul_f64(f64::from(800 + spread) / 1000.0)
}

/// What the log has said of the collector, so that a failure is said once and then at
/// most every `LOG_EVERY`.
struct Health {
    endpoint: String,
    failing: Option<Failing>,
    refused_logged: Option<Instant>,
    refused_unlogged: u64,
}

struct Failing {
    since: Instant,
    tries: u64,
    logged: Instant,
}

impl Health {
    fn new(endpoint: String) -> Self {
        Health {
            endpoint,
            failing: None,
            refused_logged: None,
            refused_unlogged: 0,
        }
    }

    fn failed(&mut self, error: &str, stats: &OtlpStats) {
        match &mut self.failing {
            None => {
                tracing::warn!(
                    "otlp: export to {} failed, retrying with backoff: {error}",
                    self.endpoint
                );
                let now = Instant::now();
                self.failing = Some(Failing {
                    since: now,
                    tries: 1,
                    logged: now,
                });
            }
            Some(f) => {
                f.tries += 1;
                if f.logged.elapsed() >= LOG_EVERY {
                    f.logged = Instant::now();
                    tracing::warn!(
                        "otlp: export to {} still failing ({} tries in {} s; {} records queued, \
                         {} dropped so far): {error}",
                        self.endpoint,
                        f.tries,
                        f.since.elapsed().as_secs(),
                        stats.queued,
                        stats.dropped
                    );
                }
            }
        }
    }

    fn ok(&mut self) {
        if let Some(f) = self.failing.take() {
            tracing::info!(
                "otlp: exporting to {} again, after {} failed tries over {} s",
                self.endpoint,
                f.tries,
                f.since.elapsed().as_secs()
            );
        }
    }

    fn refused(&mut self, records: u64, error: &str) {
        // The collector answers: a failure streak is over.
        self.failing = None;
        self.refused_unlogged += records;
        if self.refused_logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                "otlp: the collector at {} refused records, dropped: {} since the last report \
                 ({error})",
                self.endpoint,
                self.refused_unlogged
            );
            self.refused_logged = Some(Instant::now());
            self.refused_unlogged = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    fn event(seq: u64) -> serde_json::Value {
        json!({
            "process_exec": {"process": {"pid": seq, "binary": "/bin/true"}},
            "node_name": "n",
            "time": "2026-01-01T00:00:00Z",
            "seq": seq.to_string()
        })
    }

    fn config(protocol: Protocol, queue_size: usize) -> OtlpConfig {
        let mut c = OtlpConfig::new(
            &format!("http://127.0.0.1:{}", closed_port()),
            protocol,
            "n",
        )
        .unwrap();
        c.queue_size = queue_size;
        c.timeout = Duration::from_millis(500);
        c.backoff_initial = Duration::from_millis(10);
        c.backoff_max = Duration::from_millis(50);
        c
    }

    #[tokio::test]
    async fn queue_bound_drops_new_records_and_counts_them() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let exporter = OtlpExporter::start(config(protocol, 10)).unwrap();
            // The export task does not run while this loop does (one thread): the
            // queue takes 10, the other 15 are dropped.
            for seq in 1..=25 {
                exporter.send(&event(seq));
            }
            let s = exporter.stats();
            assert_eq!(s.received, 25);
            assert_eq!(s.queued, 10);
            assert_eq!(s.dropped_queue_full, 15);
            assert_eq!(s.dropped, 15);
            assert_eq!(s.exported, 0);

            // The collector is not there: tries fail, and are tried again.
            let start = Instant::now();
            while exporter.stats().retries < 2 {
                assert!(start.elapsed() < Duration::from_secs(30), "no retries");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The task took the 10 as one batch, retried (and counted as queued): the
            // queue has room for 10 more.
            assert_eq!(exporter.stats().queued, 10);
            for seq in 26..=40 {
                exporter.send(&event(seq));
            }
            let s = exporter.stats();
            assert_eq!(s.received, 40);
            assert_eq!(s.queued, 20);
            assert_eq!(s.dropped_queue_full, 20);
            assert_eq!(s.received, s.exported + s.dropped + s.queued);
            assert!(s.failed_exports >= 2);
            assert_eq!(s.rejected, 0);

            let end = exporter.shutdown(Duration::from_millis(100)).await;
            assert_eq!(end.queued, s.queued, "nothing could be exported");
            assert_eq!(end.exported, 0);
        }
    }

    #[tokio::test]
    async fn start_checks_its_settings() {
        let mut c = config(Protocol::Grpc, 0);
        let e = OtlpExporter::start(c.clone()).err().unwrap().to_string();
        assert!(e.starts_with("--otlp-queue-size \"0\""), "{e}");
        c.queue_size = 1;
        c.max_batch = 0;
        assert!(OtlpExporter::start(c).is_err());
    }

    #[tokio::test]
    async fn https_endpoints_set_up_tls() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let c = OtlpConfig::new("https://127.0.0.1:1", protocol, "n").unwrap();
            let exporter = OtlpExporter::start(c).unwrap();
            exporter.shutdown(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn start_needs_a_runtime() {
        let e = OtlpExporter::start(config(Protocol::Grpc, 1))
            .err()
            .unwrap();
        assert!(matches!(e, OtlpError::NoRuntime), "{e}");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(800) && d < Duration::from_millis(1200));
        }
    }
}
