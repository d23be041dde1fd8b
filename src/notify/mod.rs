//! Completion callbacks: the notify consumer.
//!
//! It consumes the `notify` queue, which the topology binds (through the
//! `terminal` exchange) to the terminal events alone: `completed` and
//! `dead_lettered`, including those the projector announces for messages
//! the broker dead-lettered itself. Each such event of a task that named a
//! callback becomes one signed POST ([`deliver`]). The event carries the
//! callback URL and the external id (see [`crate::events::Callback`]), so
//! the consumer keeps no state and scales alone, like a stage.
//!
//! Every delivery ends in exactly one of: acked (the receiver answered 2xx,
//! or the task named no callback), a broker-held retry queue
//! `notify.retry.{delay}` (5xx, 408, 429, timeouts, connection failures),
//! or the `notify.dlq` stream (another 4xx, a URL the policy refuses, the
//! tiers used up, an undecodable entry), each confirmed before the ack.
//! Delivery is at least once; the `X-Tenderflow-Delivery` header lets the
//! receiver drop repeats.
//!
//! Why not [`crate::runtime`]: the stage runtime is built around the work
//! envelope (decoding it, advancing it to the next stage, the task's
//! events); the notify consumer reads events and publishes no events, so it
//! shares the broker pieces (connections, confirms, the topology's retry
//! tiers and dead-letter stream) rather than the loop.

pub mod deliver;
pub mod policy;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use futures_util::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use lapin::types::{AMQPValue, ShortString};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::broker::{self, Outgoing, PublishLink, Publisher, header_int};
use crate::config::Settings;
use crate::events::{ErrorInfo, Event, EventKind};
use crate::metrics;
use crate::store::{Store, StoreError};
use crate::summary::Summary;
use crate::topology::Topology;
use deliver::{CallbackBody, CallbackError, CompactSummary, Sender};

/// The header counting a callback's attempts on its retried copies.
pub const ATTEMPT_HEADER: &str = "x-tf-notify-attempt";

/// How long a stopping consumer waits for deliveries sent before its cancel.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

struct Notifier {
    settings: Arc<Settings>,
    topology: Topology,
    publisher: Publisher,
    sender: Sender,
    store: Store,
}

/// What one delivery leads to.
enum Verdict {
    /// Nothing more to do: delivered, or no callback asked for.
    Done,
    /// Publish this (a retry copy, or a dead letter), then ack; counted
    /// in the metrics as `outcome` (`retried`, `dead_lettered`) of `kind`.
    Forward {
        message: Outgoing,
        outcome: &'static str,
        kind: String,
    },
}

/// Runs one notify consumer until `token` is cancelled: connects (with
/// backoff), declares the topology, consumes `notify` with `concurrency`
/// callbacks in flight, and starts over on a lost connection.
pub async fn run_notifier(
    settings: Arc<Settings>,
    concurrency: Option<u16>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings)?;
    let name = format!("tenderflow-{}-notify", topology.prefix());
    let notifier = Arc::new(Notifier {
        publisher: Publisher::new(
            Arc::clone(&settings),
            format!("{name}-publish"),
            topology.clone(),
        ),
        sender: Sender::new(&settings.notify)?,
        store: Store::from_settings(&settings)?,
        topology,
        settings,
    });
    let concurrency = concurrency
        .unwrap_or(notifier.settings.notify.concurrency)
        .max(1);
    let name = format!("{name}-consume");
    loop {
        // Publish first, on every (re)connect: a consumer with nowhere to
        // put a retry or a dead letter would only hold deliveries. (Most
        // deliveries publish nothing, so waiting for the first that does
        // would leave a lost publishing connection down unnoticed.)
        if notifier.publisher.link(&token).await.is_none() {
            notifier.publisher.close().await;
            return Ok(());
        }
        let Some(conn) = broker::connect(&notifier.settings, &name, &token).await else {
            notifier.publisher.close().await;
            return Ok(());
        };
        tracing::info!("notify consumer connected");
        match notifier.serve(&conn, concurrency, &token).await {
            Ok(()) => {
                let _ = broker::within("closing", conn.close(200, "shutting down".into())).await;
                notifier.publisher.close().await;
                tracing::info!("notify consumer stopped");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "notify connection lost; reconnecting"
                );
                let _ = broker::within("closing", conn.close(320, "reconnecting".into())).await;
            }
        }
    }
}

impl Notifier {
    /// Consumes on one connection until cancelled (`Ok`) or the connection
    /// fails (`Err`); either way waits for the callbacks in hand.
    async fn serve(
        self: &Arc<Self>,
        conn: &Connection,
        concurrency: u16,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let setup = conn.create_channel().await?;
        self.topology.apply(&setup).await?;
        let _ = broker::within("closing", setup.close(200, "declared".into())).await;
        let tag = format!("tenderflow-notify-{}", uuid::Uuid::now_v7());
        let queue = self.topology.notify_queue();
        let (channel, mut consumer) =
            broker::open_consumer(conn, &queue, &tag, concurrency).await?;
        let in_hand = TaskTracker::new();
        let mut probe = broker::probe_timer();
        let outcome = loop {
            tokio::select! {
                _ = token.cancelled() => break Ok(()),
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let notifier = Arc::clone(self);
                        let token = token.clone();
                        in_hand.spawn(async move { notifier.process(delivery, &token).await });
                    }
                    Some(Err(err)) => break Err(anyhow!(err).context("consuming")),
                    None => break Err(anyhow!("the broker cancelled the consumer")),
                },
                _ = probe.tick() => {
                    if !broker::answers(conn, &channel, &queue).await {
                        break Err(anyhow!("the broker stopped answering on this connection"));
                    }
                    // Most deliveries publish nothing, so a lost publishing
                    // connection would stay down until a retry or a dead
                    // letter needs it: look at it with each probe, and
                    // connect it again now if it is gone.
                    if self.publisher.link(token).await.is_none() {
                        break Ok(());
                    }
                }
            }
        };
        if outcome.is_ok() {
            let _ = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(DRAIN_WAIT, consumer.next()).await
            {
                let notifier = Arc::clone(self);
                let token = token.clone();
                in_hand.spawn(async move { notifier.process(delivery, &token).await });
            }
        }
        in_hand.close();
        in_hand.wait().await;
        if outcome.is_ok() {
            let _ = broker::within("closing", channel.close(200, "done".into())).await;
        }
        outcome
    }

    /// Handles one delivery, then acks it once what it leads to is
    /// confirmed; requeues it when that could not be published.
    async fn process(&self, delivery: Delivery, token: &CancellationToken) {
        let attempt = header_int(delivery.properties.headers(), ATTEMPT_HEADER)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1)
            .max(1);
        let span = tracing::info_span!("callback", task_id = tracing::field::Empty, attempt,);
        async {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            let verdict = self.verdict(&delivery, attempt).await;
            let settled = match verdict {
                Verdict::Done => true,
                Verdict::Forward {
                    message,
                    outcome,
                    kind,
                } => {
                    let forwarded = match self.publisher.link(token).await {
                        Some(link) => self.forward(&link, &message).await,
                        None => false,
                    };
                    if forwarded {
                        metrics::global().callback(self.topology.prefix(), outcome, &kind);
                    }
                    forwarded
                }
            };
            let result = if settled {
                broker::within("acking", delivery.acker.ack(BasicAckOptions::default())).await
            } else {
                broker::within("requeueing", delivery.acker.nack(requeue)).await
            };
            if let Err(err) = result {
                tracing::warn!(error = %err, "ack failed; the broker will deliver the event again");
            }
        }
        .instrument(span)
        .await
    }

    /// Publishes a retry copy or a dead letter and waits for its confirm.
    async fn forward(&self, link: &PublishLink, message: &Outgoing) -> bool {
        let confirmed = match link.publish(message).await {
            Ok(pending) => pending.wait().await,
            Err(err) => Err(err),
        };
        match confirmed {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    "could not publish the callback's outcome; requeueing it"
                );
                self.publisher.discard(link).await;
                false
            }
        }
    }

    /// Makes the callbacks of one entry and decides what follows.
    async fn verdict(&self, delivery: &Delivery, attempt: u32) -> Verdict {
        let events = match crate::events::decode_entry(&delivery.data) {
            Ok(events) => events,
            Err(reason) => {
                let error = ErrorInfo {
                    kind: "invalid_message".into(),
                    message: format!("not a task event: {reason}"),
                };
                tracing::error!(error = %error.message, "undecodable entry; dead-lettering it");
                return Verdict::Forward {
                    message: self.dead_letter(delivery, None, &error, attempt),
                    outcome: "dead_lettered",
                    kind: error.kind,
                };
            }
        };
        for event in events.iter().filter(|e| e.kind.is_terminal()) {
            tracing::Span::current().record("task_id", tracing::field::display(event.task_id));
            let Err(err) = self.call_back(event).await else {
                continue;
            };
            let retry = self.topology.notify_retry_queue(attempt);
            return match (&err, retry) {
                (CallbackError::Transient(_), Some((queue, delay_ms))) => {
                    tracing::warn!(error = %err, delay_ms, "callback failed; trying again later");
                    Verdict::Forward {
                        message: self.retry(delivery, &queue, attempt + 1),
                        outcome: "retried",
                        kind: String::new(),
                    }
                }
                _ => {
                    let mut error = err.info();
                    if matches!(err, CallbackError::Transient(_)) {
                        error.message =
                            format!("gave up after {attempt} attempts: {}", error.message);
                    }
                    tracing::error!(kind = %error.kind, error = %error.message, "callback failed for good; dead-lettering it");
                    Verdict::Forward {
                        message: self.dead_letter(delivery, Some(event), &error, attempt),
                        outcome: "dead_lettered",
                        kind: error.kind,
                    }
                }
            };
        }
        Verdict::Done
    }

    /// One event's callback, when its task asked for one.
    async fn call_back(&self, event: &Event) -> Result<(), CallbackError> {
        let Some(callback) = &event.callback else {
            tracing::debug!("the task named no callback");
            return Ok(());
        };
        let summary = match &event.kind {
            EventKind::Completed { summary } => {
                match self.store.get_json::<Summary>(summary).await {
                    Ok(summary) => Some(CompactSummary::of(&summary)),
                    Err(e @ (StoreError::Unavailable(_) | StoreError::Denied(_))) => {
                        return Err(CallbackError::Transient(format!(
                            "reading the summary: {e}"
                        )));
                    }
                    Err(StoreError::NotFound(key)) => {
                        tracing::warn!(%key, "the summary is gone from the store; calling back without it");
                        None
                    }
                }
            }
            _ => None,
        };
        let public_url = self.settings.notify.public_url.as_deref();
        let Some(body) = CallbackBody::for_event(event, public_url, summary) else {
            return Ok(());
        };
        self.sender
            .send(
                &callback.url,
                event.kind.name(),
                event.event_id,
                body.encode(),
            )
            .await?;
        tracing::info!(state = body_state(event), "callback delivered");
        metrics::global().callback(self.topology.prefix(), "delivered", "");
        Ok(())
    }

    /// The entry again, into the retry tier after `attempt - 1`, counting.
    fn retry(&self, delivery: &Delivery, queue: &str, attempt: u32) -> Outgoing {
        let mut again = Outgoing::new("", queue, delivery.data.to_vec());
        again.headers = delivery.properties.headers().clone().unwrap_or_default();
        again.headers.insert(
            ShortString::from(ATTEMPT_HEADER),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        again.task_id = crate::envelope::loose_task_id(&delivery.data);
        again
    }

    /// The entry into `notify.dlq`, with headers that say why.
    fn dead_letter(
        &self,
        delivery: &Delivery,
        event: Option<&Event>,
        error: &ErrorInfo,
        attempts: u32,
    ) -> Outgoing {
        let mut parked = Outgoing::new(
            "",
            self.topology.notify_dead_letter_queue(),
            delivery.data.to_vec(),
        )
        .header("x-tf-stage", "notify")
        .header("x-tf-error-kind", error.kind.clone())
        .header(
            "x-tf-error-message",
            error.message.chars().take(2048).collect::<String>(),
        )
        .int_header("x-tf-attempts", i64::from(attempts))
        .header("x-tf-last-failure-at", Utc::now().to_rfc3339());
        if let Some(event) = event {
            parked = parked
                .header("x-tf-task-id", event.task_id.to_string())
                .header("x-tf-delivery-id", event.event_id.to_string());
            parked.task_id = Some(event.task_id);
        }
        parked
    }
}

fn body_state(event: &Event) -> &'static str {
    match event.kind {
        EventKind::Completed { .. } => "done",
        _ => "failed",
    }
}
