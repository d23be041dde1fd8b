//! Prometheus metrics of the stage workers and the broker's queues, and the
//! small server that exposes them on `metrics.addr`.
//!
//! The stage runtime records into one process-wide registry ([`global`]);
//! every series carries the topology prefix as a label, so several pipelines
//! (or tests) in one process or one Prometheus keep their numbers apart.
//! Queue depths come from passive declares, polled by [`poll_queues`].
//! `serve` adds the projector's own gauges to the same page (see
//! `http::health`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::envelope::Stage;
use crate::topology::Topology;

/// The content type of the text the metrics pages answer (OpenMetrics,
/// which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a per-stage series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// The topology prefix.
    pub prefix: String,
    /// The stage.
    pub stage: String,
}

/// Labels of a dead-letter count: the stage and the error's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    /// The topology prefix.
    pub prefix: String,
    /// The stage.
    pub stage: String,
    /// The error kind (`poison`, `timeout`, `invalid_message`, ...).
    pub kind: String,
}

/// Labels of a queue depth.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The topology prefix.
    pub prefix: String,
    /// The stage the queue belongs to.
    pub stage: String,
    /// `work` (the stage's queue) or `dead_letter`.
    pub queue: String,
}

/// Labels of a callback count: how the callback's delivery ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    /// The topology prefix.
    pub prefix: String,
    /// `delivered` (2xx), `retried` (into a tier) or `dead_lettered`.
    pub outcome: String,
    /// The dead letter's error kind (`callback_rejected`, ...); empty
    /// otherwise.
    pub kind: String,
}

/// Labels of a pipeline-wide series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrefixLabels {
    /// The topology prefix.
    pub prefix: String,
}

fn duration_histogram() -> Histogram {
    // 5 ms to about 80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric this process records.
pub struct Metrics {
    registry: Registry,
    handled: Family<StageLabels, Counter>,
    succeeded: Family<StageLabels, Counter>,
    retried: Family<StageLabels, Counter>,
    returned: Family<StageLabels, Counter>,
    dropped: Family<StageLabels, Counter>,
    unroutable: Family<StageLabels, Counter>,
    dead_lettered: Family<DeadLetterLabels, Counter>,
    duration: Family<StageLabels, Histogram, fn() -> Histogram>,
    in_hand: Family<StageLabels, Gauge>,
    queue_depth: Family<QueueLabels, Gauge>,
    stream_last_offset: Family<PrefixLabels, Gauge>,
    callbacks: Family<CallbackLabels, Counter>,
    stream_tails: Mutex<HashMap<String, StreamTail>>,
}

/// What the poller last read of a pipeline's events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTail {
    /// The offset of the stream's last entry; `None` when the stream was
    /// empty.
    pub last_offset: Option<u64>,
    /// When it was read.
    pub read_at: Instant,
}

/// How a delivery ended, as the runtime reports it once its outcome is
/// published and confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Handed on to the next stage (or completed).
    Succeeded,
    /// Sent to a retry tier.
    Retried,
    /// Parked in the dead-letter queue, with the error's kind.
    DeadLettered(String),
    /// Came back unacknowledged from a worker that stopped with it in hand,
    /// and was queued again with its returns counted.
    Returned,
    /// Its task was cancelled: acked unhandled.
    Dropped,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tenderflow");
        let metrics = Metrics {
            handled: Family::default(),
            succeeded: Family::default(),
            retried: Family::default(),
            returned: Family::default(),
            dropped: Family::default(),
            unroutable: Family::default(),
            dead_lettered: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            in_hand: Family::default(),
            queue_depth: Family::default(),
            stream_last_offset: Family::default(),
            callbacks: Family::default(),
            stream_tails: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages_handled",
            "Deliveries a stage worker took, whatever their outcome",
            metrics.handled.clone(),
        );
        registry.register(
            "messages_succeeded",
            "Deliveries handed on to the next stage (or completed), confirmed",
            metrics.succeeded.clone(),
        );
        registry.register(
            "messages_retried",
            "Deliveries sent to a retry tier after a transient failure, confirmed",
            metrics.retried.clone(),
        );
        registry.register(
            "messages_returned",
            "Deliveries that came back unacknowledged from a stopped worker and were counted (classic queues)",
            metrics.returned.clone(),
        );
        registry.register(
            "messages_dropped",
            "Deliveries of cancelled tasks, acked unhandled",
            metrics.dropped.clone(),
        );
        registry.register(
            "publishes_unroutable",
            "Publishes (work messages or event batches) the broker returned because no queue is bound to take them; each is published again",
            metrics.unroutable.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Deliveries parked in the dead-letter queue, by error kind, confirmed",
            metrics.dead_lettered.clone(),
        );
        registry.register(
            "handler_duration_seconds",
            "Time a stage's handler took on one attempt",
            metrics.duration.clone(),
        );
        registry.register(
            "messages_in_hand",
            "Deliveries a stage worker holds unacknowledged right now",
            metrics.in_hand.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in a stage's work or dead-letter queue (passive declare, polled)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "events_stream_last_offset",
            "Offset of the events stream's last entry (polled)",
            metrics.stream_last_offset.clone(),
        );
        registry.register(
            "callbacks",
            "Completion callbacks by outcome (delivered, retried, dead_lettered), confirmed",
            metrics.callbacks.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    fn stage(prefix: &str, stage: Stage) -> StageLabels {
        StageLabels {
            prefix: prefix.to_string(),
            stage: stage.as_str().to_string(),
        }
    }

    /// A worker of `stage` starts: its counters are served from zero before
    /// anything happens, so that a rule's `rate()` or `increase()` sees the
    /// first event (a series that appears at 1 shows no increase) and the
    /// page names every metric the alert rules and the board use.
    pub fn worker_started(&self, prefix: &str, stage: Stage) {
        let labels = Self::stage(prefix, stage);
        for counter in [
            &self.handled,
            &self.succeeded,
            &self.retried,
            &self.returned,
            &self.unroutable,
        ] {
            drop(counter.get_or_create(&labels));
        }
        drop(self.in_hand.get_or_create(&labels));
        drop(self.duration.get_or_create(&labels));
    }

    /// A delivery was taken; the returned guard counts it in hand until
    /// dropped.
    pub fn delivery(&'static self, prefix: &str, stage: Stage) -> InHand {
        let labels = Self::stage(prefix, stage);
        self.handled.get_or_create(&labels).inc();
        self.in_hand.get_or_create(&labels).inc();
        InHand {
            gauge: self.in_hand.get_or_create(&labels).clone(),
        }
    }

    /// A handler attempt took `took`.
    pub fn handler_took(&self, prefix: &str, stage: Stage, took: Duration) {
        self.duration
            .get_or_create(&Self::stage(prefix, stage))
            .observe(took.as_secs_f64());
    }

    /// A delivery's outcome was published and confirmed.
    pub fn settled(&self, prefix: &str, stage: Stage, settled: &Settled) {
        let labels = Self::stage(prefix, stage);
        match settled {
            Settled::Succeeded => self.succeeded.get_or_create(&labels).inc(),
            Settled::Retried => self.retried.get_or_create(&labels).inc(),
            Settled::Returned => self.returned.get_or_create(&labels).inc(),
            Settled::Dropped => self.dropped.get_or_create(&labels).inc(),
            Settled::DeadLettered(kind) => self
                .dead_lettered
                .get_or_create(&DeadLetterLabels {
                    prefix: labels.prefix,
                    stage: labels.stage,
                    kind: kind.clone(),
                })
                .inc(),
        };
    }

    /// A callback was delivered, or its retry or dead letter confirmed;
    /// `kind` is the dead letter's error kind.
    pub fn callback(&self, prefix: &str, outcome: &str, kind: &str) {
        self.callbacks
            .get_or_create(&CallbackLabels {
                prefix: prefix.to_string(),
                outcome: outcome.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The broker returned a publish of `stage` as unroutable.
    pub fn unroutable(&self, prefix: &str, stage: Stage) {
        self.unroutable
            .get_or_create(&Self::stage(prefix, stage))
            .inc();
    }

    /// Sets the depth of one queue.
    pub fn set_queue_depth(&self, prefix: &str, stage: Stage, queue: QueueKind, depth: u32) {
        self.queue_depth
            .get_or_create(&QueueLabels {
                prefix: prefix.to_string(),
                stage: stage.as_str().to_string(),
                queue: queue.as_str().to_string(),
            })
            .set(i64::from(depth));
    }

    /// Records a read of the events stream's tail: the offset of its last
    /// entry, or `None` when it is empty (the gauge then stays unset).
    pub fn set_stream_last_offset(&self, prefix: &str, offset: Option<u64>) {
        if let Some(offset) = offset {
            self.stream_last_offset
                .get_or_create(&PrefixLabels {
                    prefix: prefix.to_string(),
                })
                .set(i64::try_from(offset).unwrap_or(i64::MAX));
        }
        let tail = StreamTail {
            last_offset: offset,
            read_at: Instant::now(),
        };
        self.stream_tails
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(prefix.to_string(), tail);
    }

    /// The last read of the events stream's tail, if it was ever read: an
    /// empty stream is a read too, unlike [`Self::stream_last_offset`].
    pub fn stream_tail(&self, prefix: &str) -> Option<StreamTail> {
        self.stream_tails
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(prefix)
            .copied()
    }

    /// The last polled offset of the events stream's last entry, if polled
    /// (and the stream had one).
    pub fn stream_last_offset(&self, prefix: &str) -> Option<i64> {
        let labels = PrefixLabels {
            prefix: prefix.to_string(),
        };
        // `get` does not create the series, so an unpolled stream stays absent.
        self.stream_last_offset.get(&labels).map(|g| g.get())
    }

    /// The registry's series as text, without the closing `# EOF` (so that
    /// another registry's series can follow).
    pub fn encode_into(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }

    /// The whole page: this registry's series and the closing `# EOF`.
    pub fn page(&self) -> String {
        let mut out = String::new();
        let _ = self.encode_into(&mut out);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// Which queue of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// The stage's work queue.
    Work,
    /// The stage's dead-letter queue.
    DeadLetter,
}

impl QueueKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Work => "work",
            QueueKind::DeadLetter => "dead_letter",
        }
    }
}

/// Counts one delivery in hand while it lives.
pub struct InHand {
    gauge: Gauge,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// This process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Polls the depth of `stages`' work and dead-letter queues (and the
/// events stream's last offset, when `stream` is set) every
/// `metrics.poll_interval_ms`, with passive declares on a connection of
/// its own, until `token` is cancelled. A failed poll reconnects; it never
/// stops the process.
pub async fn poll_queues(
    settings: Arc<Settings>,
    stages: Vec<Stage>,
    stream: bool,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings)?;
    let interval = Duration::from_millis(settings.metrics.poll_interval_ms);
    // Not "tenderflow-{prefix}-...": that names the connections doing the
    // pipeline's work (tests cut them by that name).
    let name = format!("tenderflow-metrics-{}", topology.prefix());
    // The first poll comes soon, since readiness waits for it; later ones
    // every interval.
    let mut wait = interval.min(FIRST_POLL);
    loop {
        let Some(conn) = crate::broker::connect(&settings, &name, &token).await else {
            return Ok(());
        };
        let result = async {
            let channel = conn.create_channel().await?;
            loop {
                // Waiting first leaves the process time to declare the
                // topology: a passive declare of a missing queue fails.
                tokio::select! {
                    () = token.cancelled() => {
                        // The channel first, then the connection: a clean
                        // stop must not log a connection error.
                        let _ = channel.close(200, "metrics poller stopping".into()).await;
                        return anyhow::Ok(());
                    }
                    () = tokio::time::sleep(wait) => {}
                }
                wait = interval;
                poll_once(&conn, &channel, &topology, &stages, stream).await?;
            }
        }
        .await;
        let _ = conn.close(200, "metrics poller stopping".into()).await;
        match result {
            Ok(()) => return Ok(()),
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "polling queue depths failed; reconnecting"
                );
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    () = tokio::time::sleep(interval) => {}
                }
            }
        }
    }
}

async fn poll_once(
    conn: &lapin::Connection,
    channel: &lapin::Channel,
    topology: &Topology,
    stages: &[Stage],
    stream: bool,
) -> anyhow::Result<()> {
    let metrics = global();
    let prefix = topology.prefix();
    // The stream first: readiness waits for it (see `http::health`).
    if stream {
        let last = stream_tail(conn, &topology.events_queue(), GAUGE_TAIL_MAX).await?;
        metrics.set_stream_last_offset(prefix, last);
    }
    for &stage in stages {
        let work = depth(channel, &topology.stage_queue(stage)).await?;
        metrics.set_queue_depth(prefix, stage, QueueKind::Work, work);
        let dead = depth(channel, &topology.dead_letter_queue(stage)).await?;
        metrics.set_queue_depth(prefix, stage, QueueKind::DeadLetter, dead);
    }
    Ok(())
}

/// Messages in `queue`, by a passive declare (which fails, closing the
/// channel, when the queue does not exist).
async fn depth(channel: &lapin::Channel, queue: &str) -> anyhow::Result<u32> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .with_context(|| format!("passive declare of {queue}"))?;
    Ok(declared.message_count())
}

/// Longest wait before the first poll.
const FIRST_POLL: Duration = Duration::from_secs(1);
/// Longest a stream-tail read waits for its first entry.
const TAIL_FIRST_WAIT: Duration = Duration::from_millis(500);
/// Quiet time after which the stream's tail counts as read.
const TAIL_IDLE: Duration = Duration::from_millis(50);
/// Longest a stream-tail read follows the stream after its first entry
/// (under a steady flow of events).
const TAIL_MAX: Duration = Duration::from_secs(1);
/// Longest the queue-depth poller's tail read follows the events stream.
/// Its gauge is read again a poll later, so a tail 0.1 s old serves as
/// well as one 1 s old; following for a whole second under a steady flow
/// had the broker deliver the poller a fifth of what it delivered the
/// projector.
const GAUGE_TAIL_MAX: Duration = Duration::from_millis(100);

/// The offset of the stream's last entry, or `None` when it is empty.
///
/// A passive declare does not count a stream's entries (it answers 0), so
/// this reads the tail: a consumer from `last` (the start of the stream's
/// last chunk) takes entries until none comes for a moment, and keeps the
/// highest offset.
pub async fn stream_last_offset(
    conn: &lapin::Connection,
    queue: &str,
) -> anyhow::Result<Option<u64>> {
    stream_tail(conn, queue, TAIL_MAX).await
}

/// [`stream_last_offset`], following the stream for at most `follow`
/// after its first entry.
async fn stream_tail(
    conn: &lapin::Connection,
    queue: &str,
    follow: Duration,
) -> anyhow::Result<Option<u64>> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .context("stream prefetch")?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("last".into()),
    );
    let tag = format!("metrics-tail-{}", uuid::Uuid::now_v7());
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await
        .with_context(|| format!("reading the tail of {queue}"))?;
    let mut first_at: Option<tokio::time::Instant> = None;
    let mut last = None;
    let mut wait = TAIL_FIRST_WAIT;
    while first_at.is_none_or(|at| at.elapsed() < follow) {
        let Ok(next) = tokio::time::timeout(wait, consumer.next()).await else {
            break;
        };
        let Some(delivery) = next.transpose()? else {
            break;
        };
        last = last.max(crate::broker::stream_offset(&delivery));
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .context("acking a stream entry")?;
        first_at.get_or_insert_with(tokio::time::Instant::now);
        wait = TAIL_IDLE;
    }
    let _ = channel.close(200, "tail read".into()).await;
    Ok(last)
}

/// Serves `GET /metrics` (this process's registry) and `GET /healthz` on
/// `addr` until `token` is cancelled: the per-worker metrics address.
pub async fn serve(addr: SocketAddr, token: CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on metrics.addr {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async { ([(header::CONTENT_TYPE, CONTENT_TYPE)], global().page()) }),
        )
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        );
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .context("the metrics server failed")
}
