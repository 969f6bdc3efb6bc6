//! The export stage, the last of the data path: every event, from the pipeline or held
//! for its pod, goes through the same steps before any sink sees it, so each sink gets
//! the same events with the same numbers:
//!
//! 1. [`filter`]: `--export-allowlist` / `--export-denylist` (counted as filtered);
//! 2. `--export-rate-limit` (counted, and said in the stream by `rate_limit_info`);
//! 3. [`redact`]: `--redaction-filters` on the arguments and environment variables;
//! 4. [`fields`]: `--field-filters` (per event type);
//! 5. `seq`, the agent's sequence number (a gap in it is a line that never arrived);
//! 6. the sinks: [`json`] lines to stdout or to the [`file`], rotated; [`otlp`] log
//!    records to an OpenTelemetry collector.
//!
//! The agent's own events (`event_loss`, `rate_limit_info`) skip steps 1 to 4. A sink
//! that cannot take events (a full disk) counts them, and once it writes again the stream
//! gets an `event_loss` saying how many, of which types, and since when.

pub mod fields;
pub mod file;
pub mod filter;
pub mod json;
pub mod otlp;
pub mod redact;

use std::{
    collections::BTreeMap,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    clock::Clock,
    event::{Body, Event},
    metrics::{Metrics, SinkCounts},
};

/// What is exported, and how (the flags).
#[derive(Debug)]
pub struct Settings {
    pub filters: filter::Filters,
    pub fields: fields::FieldFilters,
    pub redact: redact::Redactions,
    /// Events per minute (`--export-rate-limit`); `None`: no limit.
    pub rate_limit: Option<u64>,
    /// Bytes of lines a sink holds while its writes fail (`--export-buffer-size`).
    pub buffer_bytes: usize,
    /// `--export-tetragon-strict`: only what Tetragon's protobuf definition has; no
    /// `seq`, no `event_loss` lines (their counts stay in the log and the metrics).
    pub tetragon_strict: bool,
    /// The last `seq` in the export file ([`file::last_seq`]): numbers go on from it, or
    /// from the kernel's if that is later.
    pub last_seq: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            filters: Default::default(),
            fields: Default::default(),
            redact: Default::default(),
            rate_limit: None,
            buffer_bytes: json::MAX_PENDING,
            tetragon_strict: false,
            last_seq: 0,
        }
    }
}

/// An event with its sequence number, as one JSON object (without it in strict mode).
#[derive(serde::Serialize)]
struct Numbered<'a, T: serde::Serialize> {
    #[serde(flatten)]
    event: &'a T,
    /// A 64-bit counter, so a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<crate::event::Decimal>,
}

/// A token bucket of `per_minute` tokens, refilled continuously.
struct RateLimit {
    per_minute: u64,
    tokens: f64,
    at: Instant,
    dropped: u64,
    /// The previous report (or the start), RFC 3339.
    since: String,
}

impl RateLimit {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_minute as f64 / 60.0;
        self.tokens = (self.tokens + refill).min(self.per_minute as f64);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

/// The JSON lines sink and what it could not take since its last loss report.
struct JsonOut {
    name: &'static str,
    sink: json::JsonSink<Box<dyn Write>>,
    lost: BTreeMap<String, u64>,
    total_lost: u64,
    since: String,
    /// For the log: when it last said that writes fail.
    said: Option<Instant>,
}

/// The OTLP sink and its drops already said in the stream.
struct OtlpOut {
    exporter: otlp::OtlpExporter,
    reported_dropped: u64,
    /// The last `event_loss` went into a full queue: its own drop is not news.
    sent_into_full: bool,
    since: String,
    queue_size: usize,
}

pub struct Export {
    settings: Settings,
    otlp: Option<OtlpOut>,
    /// The sinks' bound, for messages.
    buffer_bytes: usize,
    rate: Option<RateLimit>,
    json: JsonOut,
    seq: u64,
    /// Where `seq` is kept for the next agent (`handover`), and the number kept there:
    /// numbers are taken from it in blocks, so a number given is never given again.
    handover: Option<(crate::handover::Handover, u64)>,
    metrics: Arc<Metrics>,
    node: String,
}

impl Export {
    /// `out` is `stdout` or `export_file` (`sink_name`).
    pub fn new(
        settings: Settings,
        out: Box<dyn Write>,
        sink_name: &'static str,
        otlp: Option<(otlp::OtlpExporter, usize)>,
        node: String,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The events' own fields follow the mode too (`event::TETRAGON_STRICT`).
        crate::event::set_tetragon_strict(settings.tetragon_strict);
        let rate = settings.rate_limit.map(|per_minute| RateLimit {
            per_minute,
            tokens: per_minute as f64,
            at: Instant::now(),
            dropped: 0,
            since: Clock::now_rfc3339(),
        });
        let bound = settings.buffer_bytes;
        let seq = settings.last_seq;
        Self {
            buffer_bytes: bound,
            otlp: otlp.map(|(exporter, queue_size)| OtlpOut {
                exporter,
                reported_dropped: 0,
                sent_into_full: false,
                since: Clock::now_rfc3339(),
                queue_size,
            }),
            settings,
            rate,
            json: JsonOut {
                name: sink_name,
                sink: json::JsonSink::with_bound(out, bound),
                lost: BTreeMap::new(),
                total_lost: 0,
                since: Clock::now_rfc3339(),
                said: None,
            },
            seq,
            handover: None,
            metrics,
            node,
        }
    }

    /// Numbers on from `seq`, the previous agent's last (or from the export file's, if
    /// later), keeping the numbers given in `handover` for the next agent.
    pub fn resume(&mut self, seq: u64, handover: crate::handover::Handover) {
        self.seq = self.seq.max(seq);
        self.handover = Some((handover, self.seq));
    }

    /// The last number given.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The hand-over state, for the agent's last words.
    pub fn take_handover(&mut self) -> Option<crate::handover::Handover> {
        self.handover.take().map(|(h, _)| h)
    }

    /// The next `seq`. Beyond the numbers kept for the next agent, a block more is kept
    /// first (one map write per `SEQ_BLOCK` lines): an agent killed before it could say
    /// its last number leaves a gap, never a number given twice.
    fn next_seq(&mut self) -> u64 {
        const SEQ_BLOCK: u64 = 4096;
        self.seq += 1;
        if let Some((handover, kept)) = &mut self.handover
            && self.seq > *kept
        {
            *kept = self.seq + SEQ_BLOCK;
            handover.seq(*kept);
        }
        self.seq
    }

    /// Events need their JSON form before the sinks: filters and such read or change it.
    fn needs_value(&self) -> bool {
        !self.settings.filters.is_empty()
            || !self.settings.fields.is_empty()
            || !self.settings.redact.is_empty()
            || self.otlp.is_some()
    }

    /// Exports one event of the pipeline.
    pub fn event(&mut self, ev: &Event<'_>) {
        if ev.is_agents() {
            self.agents(ev);
            return;
        }
        let kind = ev.kind();
        self.metrics.event(kind, ev.policy());
        if self.needs_value() {
            match serde_json::to_value(ev) {
                Ok(v) => self.steps(v, kind),
                Err(e) => tracing::error!("an event could not be encoded: {e}"),
            }
            return;
        }
        if !self.admit() {
            return;
        }
        let seq = self.next_seq();
        let line = Numbered {
            event: ev,
            seq: (!self.settings.tetragon_strict).then(|| crate::event::Decimal(seq.into())),
        };
        self.send_json(&line, kind);
    }

    /// Exports an event already in JSON form (one that waited for its pod).
    pub fn value(&mut self, v: Value) {
        let kind = filter::kind_of(&v).to_owned();
        let policy = v[&kind]["policy_name"].as_str().map(str::to_owned);
        self.metrics.event(&kind, policy.as_deref());
        self.steps(v, &kind);
    }

    /// Steps 1 to 6 on an event's JSON form.
    fn steps(&mut self, mut v: Value, kind: &str) {
        match self.settings.filters.verdict(&v) {
            filter::Verdict::Export => {}
            filter::Verdict::NotAllowed => return self.metrics.filtered("allowlist"),
            filter::Verdict::Denied => return self.metrics.filtered("denylist"),
        }
        if !self.admit() {
            return;
        }
        self.settings.redact.apply(&mut v);
        self.settings.fields.apply(&mut v);
        let seq = self.next_seq();
        if let Some(obj) = v.as_object_mut()
            && !self.settings.tetragon_strict
        {
            obj.insert("seq".into(), Value::String(seq.to_string()));
        }
        self.send_json(&v, kind);
        if let Some(o) = &self.otlp {
            o.exporter.send(&v);
        }
    }

    /// The rate limit's verdict.
    fn admit(&mut self) -> bool {
        let admitted = self.rate.as_mut().is_none_or(RateLimit::take);
        if !admitted {
            self.metrics.rate_limited();
        }
        admitted
    }

    /// The agent's own event: numbered and sent, never filtered. In strict mode an
    /// `event_loss` is not written (Tetragon has no such event): the log has said it, and
    /// the metrics count it.
    fn agents(&mut self, ev: &Event<'_>) {
        if self.settings.tetragon_strict && matches!(ev.body, Body::EventLoss { .. }) {
            return;
        }
        self.metrics.event(ev.kind(), None);
        let seq = self.next_seq();
        let line = Numbered {
            event: ev,
            seq: (!self.settings.tetragon_strict).then(|| crate::event::Decimal(seq.into())),
        };
        self.send_json(&line, ev.kind());
        if let Some(o) = &self.otlp {
            match serde_json::to_value(&line) {
                Ok(v) => o.exporter.send(&v),
                Err(e) => tracing::error!("an event could not be encoded: {e}"),
            }
        }
    }

    fn send_json(&mut self, line: &impl serde::Serialize, kind: &str) {
        if self.json.name == "null" {
            self.json.sink.count_unwritten();
            return;
        }
        match self.json.sink.push_value(line) {
            Ok(true) => {}
            Ok(false) => {
                *self.json.lost.entry(kind.to_owned()).or_default() += 1;
                self.json.total_lost += 1;
            }
            Err(e) => tracing::error!("an event could not be encoded: {e}"),
        }
    }

    /// Writes what the sinks hold. A sink that fails keeps its lines for the next flush
    /// (up to its bound); the failure is logged at most every ten seconds.
    pub fn flush(&mut self) {
        let result = self.json.sink.flush();
        // The metrics stay in step with every batch: a scrape (served between batches)
        // always sees counters that add up.
        self.observe();
        if let Err(e) = result
            && self
                .json
                .said
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.json.said = Some(Instant::now());
            tracing::error!(
                "writing events to {} failed: {e}; they wait (up to {} KiB) and are tried again, then dropped and counted",
                self.json.name,
                self.buffer_bytes >> 10
            );
        }
    }

    /// The periodic reports: `rate_limit_info` for what the rate limit left out, an
    /// `event_loss` for what a sink that writes again could not take; and the sinks'
    /// counters in the metrics.
    pub fn report(&mut self) {
        if let Some(r) = &mut self.rate
            && r.dropped > 0
        {
            let dropped = std::mem::take(&mut r.dropped);
            let since = std::mem::replace(&mut r.since, Clock::now_rfc3339());
            tracing::warn!("--export-rate-limit left out {dropped} events since {since}");
            let node = self.node.clone();
            self.agents(&Event {
                body: Body::RateLimitInfo {
                    number_of_dropped_process_events: dropped.to_string(),
                    since,
                },
                node_name: &node,
                time: crate::clock::Timestamp::now(),
            });
        }
        if !self.json.lost.is_empty() && !self.json.sink.is_failing() {
            let lost = std::mem::take(&mut self.json.lost);
            let count: u64 = lost.values().sum();
            let since = std::mem::replace(&mut self.json.since, Clock::now_rfc3339());
            tracing::warn!(
                "{count} events could not be written to {} since {since}",
                self.json.name
            );
            let node = self.node.clone();
            self.agents(&Event {
                body: Body::EventLoss {
                    place: self.json.name,
                    reason: format!(
                        "writes to {} failed and its buffer of {} KiB was full (--export-buffer-size)",
                        self.json.name,
                        self.buffer_bytes >> 10
                    ),
                    lost: lost.into_iter().map(|(k, n)| (k, n.to_string())).collect(),
                    count: count.to_string(),
                    total_lost: self.json.total_lost.to_string(),
                    since,
                },
                node_name: &node,
                time: crate::clock::Timestamp::now(),
            });
        }
        self.otlp_losses();
        self.observe();
    }

    /// An `event_loss` for the records the OTLP queue could not take (or the collector
    /// refused), in both sinks: at once, even while the queue stays full (a dead
    /// collector), where the collector's copy is dropped too, and counted by the next
    /// one, which waits for another drop or for room.
    fn otlp_losses(&mut self) {
        let Some(o) = &mut self.otlp else {
            return;
        };
        let stats = o.exporter.stats();
        let full = stats.queued as usize >= o.queue_size;
        let own = u64::from(std::mem::take(&mut o.sent_into_full));
        if stats.dropped <= o.reported_dropped + if full { own } else { 0 } {
            o.sent_into_full = own == 1;
            return;
        }
        o.sent_into_full = full;
        let count = stats.dropped - o.reported_dropped;
        o.reported_dropped = stats.dropped;
        let since = std::mem::replace(&mut o.since, Clock::now_rfc3339());
        let queue_size = o.queue_size;
        tracing::warn!("{count} events could not be sent to the OTLP collector since {since}");
        let node = self.node.clone();
        self.agents(&Event {
            body: Body::EventLoss {
                place: "otlp",
                reason: format!(
                    "the collector was unreachable or refused them, and the queue of {queue_size} was full (--otlp-queue-size)"
                ),
                lost: BTreeMap::new(),
                count: count.to_string(),
                total_lost: stats.dropped.to_string(),
                since,
            },
            node_name: &node,
            time: crate::clock::Timestamp::now(),
        });
    }

    /// Flushes the OTLP queue, waiting up to `deadline` (at exit).
    pub async fn shutdown(&mut self, deadline: Duration) {
        if let Some(o) = self.otlp.take() {
            let stats = o.exporter.shutdown(deadline).await;
            let l = otlp_counts(&stats);
            self.metrics.sink("otlp", l);
        }
    }

    /// The sinks' counters, into the metrics.
    pub fn observe(&self) {
        if let Some(o) = &self.otlp {
            self.metrics.sink("otlp", otlp_counts(&o.exporter.stats()));
        }
        let s = &self.json.sink;
        self.metrics.sink(
            self.json.name,
            SinkCounts {
                exported: s.written(),
                bytes: s.written_bytes(),
                errors: s.errors(),
                dropped: s.dropped(),
                queued: s.pending_lines(),
            },
        );
    }

    /// Lines written whole by the JSON sink.
    pub fn written(&self) -> u64 {
        self.json.sink.written()
    }

    /// Events the sinks still hold (unwritten at exit: lost).
    pub fn pending(&self) -> u64 {
        self.json.sink.pending_lines()
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

/// The OTLP exporter's counters as a sink's.
fn otlp_counts(s: &otlp::OtlpStats) -> SinkCounts {
    SinkCounts {
        exported: s.exported,
        bytes: 0,
        errors: s.failed_exports,
        dropped: s.dropped,
        queued: s.queued,
    }
}
