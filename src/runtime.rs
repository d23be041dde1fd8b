//! The stage runtime, written once: consume, decode, call the handler,
//! publish the outcome with confirms, then ack.
//!
//! Every delivery ends in exactly one of: the next stage's queue (success),
//! a broker-held retry queue (transient failure), the stage's dead-letter
//! queue (permanent failure, attempts used up, undecodable, poison), or,
//! for a task cancelled in the store, a `dropped` event alone. The input
//! is acked only after everything that outcome publishes is confirmed; if a
//! publish fails the input is requeued, so a crash anywhere loses nothing.
//!
//! A message that keeps stopping its worker (it comes back unacknowledged
//! again and again) is poison: once it has been delivered
//! `stages.max_deliveries` times it is dead-lettered unhandled. Quorum queues
//! count returns in `x-delivery-count`; classic queues keep no count, so a
//! returned message (one the broker marks `redelivered`) is first published
//! again with its returns counted in [`RETURNS_HEADER`], and only that copy is
//! handled. The count thus survives any number of crashes, since the copy is
//! confirmed before the returned message is acked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

use crate::broker::{self, Outgoing, PublishLink, Publisher, header_int, header_str};
use crate::config::Settings;
use crate::envelope::{Envelope, Stage};
use crate::events::{ErrorInfo, Event, EventKind};
use crate::metrics::{self, Settled};
pub use crate::stages::Handler;
use crate::stages::{StageError, StageOutput};
use crate::store::Store;
use crate::telemetry::{self, TraceParent};
use crate::topology::Topology;

/// Where the runtime counts a message's returns when its queue does not.
pub const RETURNS_HEADER: &str = "x-tf-returns";

/// How long an attempt runs before its `started` event goes out. A quicker
/// attempt that succeeds publishes only its `succeeded` event, whose
/// duration says when it began: most small documents pass a stage in a
/// few milliseconds, and those `started` events were four of a document's
/// ten for the events stream and the projector to carry. A quick failure
/// still publishes both.
pub const ANNOUNCE_AFTER: Duration = Duration::from_millis(50);

/// The first wait before an outcome the broker returned (its queue
/// unbound) is published again; each further wait doubles, up to
/// [`UNROUTABLE_MAX_WAIT`].
const UNROUTABLE_FIRST_WAIT: Duration = Duration::from_millis(250);

/// The longest wait between publishes of a returned outcome.
const UNROUTABLE_MAX_WAIT: Duration = Duration::from_secs(5);

/// How long a stopping worker waits for deliveries the broker sent before
/// it saw the cancel.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// How one stage worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The stage to consume.
    pub stage: Stage,
    /// Messages in hand at once (the prefetch).
    pub concurrency: u16,
}

struct Worker<H> {
    stage: Stage,
    concurrency: u16,
    settings: Arc<Settings>,
    topology: Topology,
    handler: Arc<H>,
    handler_timeout: Duration,
    /// Publishing, on a connection apart from the consumer's.
    publisher: Publisher,
    /// Where cancelled tasks are marked (see [`Worker::cancelled`]).
    store: Store,
}

/// Runs one stage worker until `token` is cancelled: connects (retrying with
/// backoff), declares the topology, consumes, and on a lost connection starts
/// over. On cancellation it stops taking deliveries, finishes and acks what
/// is in hand, and returns.
pub async fn run_worker<H: Handler>(
    settings: Arc<Settings>,
    options: WorkerOptions,
    handler: Arc<H>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let topology = Topology::from_settings(&settings)?;
    metrics::global().worker_started(topology.prefix(), options.stage);
    let name = format!("tenderflow-{}-{}", topology.prefix(), options.stage);
    let store = Store::from_settings(&settings)?;
    let worker = Arc::new(Worker {
        stage: options.stage,
        concurrency: options.concurrency.max(1),
        publisher: Publisher::new(
            Arc::clone(&settings),
            format!("{name}-publish"),
            topology.clone(),
        ),
        topology,
        store,
        handler_timeout: Duration::from_millis(settings.stages.handler_timeout_ms),
        settings,
        handler,
    });
    let name = format!("{name}-consume");
    // Publish first: a consumer with nowhere to publish would only hold
    // deliveries.
    if worker.publisher.link(&token).await.is_none() {
        return Ok(());
    }
    loop {
        let Some(conn) = broker::connect(&worker.settings, &name, &token).await else {
            worker.publisher.close().await;
            return Ok(());
        };
        tracing::info!(stage = %worker.stage, "connected");
        match worker.serve(&conn, &token).await {
            Ok(()) => {
                let _ = broker::within("closing", conn.close(200, "shutting down".into())).await;
                worker.publisher.close().await;
                tracing::info!(stage = %worker.stage, "stopped");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(stage = %worker.stage, error = format!("{err:#}"), "connection lost; reconnecting");
                let _ = broker::within("closing", conn.close(320, "reconnecting".into())).await;
            }
        }
    }
}

impl<H: Handler> Worker<H> {
    /// Consumes on one connection until cancelled (`Ok`) or the connection
    /// fails (`Err`). Either way, waits for the deliveries in hand.
    async fn serve(
        self: &Arc<Self>,
        conn: &Connection,
        token: &CancellationToken,
    ) -> anyhow::Result<()> {
        let setup = conn.create_channel().await?;
        self.topology.apply(&setup).await?;
        let _ = broker::within("closing", setup.close(200, "declared".into())).await;
        let tag = format!("tenderflow-{}-{}", self.stage, uuid::Uuid::now_v7());
        let queue = self.topology.stage_queue(self.stage);
        let (channel, mut consumer) =
            broker::open_consumer(conn, &queue, &tag, self.concurrency).await?;
        let in_hand = TaskTracker::new();
        let mut probe = broker::probe_timer();
        let outcome = loop {
            tokio::select! {
                _ = token.cancelled() => break Ok(()),
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let worker = Arc::clone(self);
                        let token = token.clone();
                        in_hand.spawn(async move { worker.process(delivery, &token).await });
                    }
                    Some(Err(err)) => break Err(anyhow!(err).context("consuming")),
                    None => break Err(anyhow!("the broker cancelled the consumer")),
                },
                _ = probe.tick() => {
                    if !broker::answers(conn, &channel, &queue).await {
                        break Err(anyhow!("the broker stopped answering on this connection"));
                    }
                }
            }
        };
        if outcome.is_ok() {
            // Stop new deliveries. Those the broker sent before the cancel
            // are handled like the rest: returned unhandled, each would
            // count as a failed delivery and bring it closer to poison.
            let _ = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
            while let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(DRAIN_WAIT, consumer.next()).await
            {
                let worker = Arc::clone(self);
                let token = token.clone();
                in_hand.spawn(async move { worker.process(delivery, &token).await });
            }
        }
        in_hand.close();
        in_hand.wait().await;
        if outcome.is_ok() {
            let _ = broker::within("closing", channel.close(200, "done".into())).await;
        }
        outcome
    }

    /// Handles one delivery, then acks it, or requeues it if its outcome could
    /// not be published. An outcome whose work message is confirmed is never
    /// redone for want of its events: those are sent again (they are
    /// idempotent by id) until confirmed, then the delivery is acked.
    async fn process(&self, delivery: Delivery, token: &CancellationToken) {
        let span = tracing::info_span!(
            "delivery",
            stage = %self.stage,
            task_id = tracing::field::Empty,
            attempt = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_span_id = tracing::field::Empty,
        );
        let traceparent = header_str(delivery.properties.headers(), "traceparent");
        telemetry::adopt_parent(&span, traceparent.as_deref());
        let _in_hand = metrics::global().delivery(self.topology.prefix(), self.stage);
        async {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            let Some(mut link) = self.publisher.link(token).await else {
                // Stopping before a publishing connection could be made.
                let _ = broker::within("requeueing", delivery.acker.nack(requeue)).await;
                return;
            };
            let mut result = self.settle(&link, &delivery).await;
            let mut delay = UNROUTABLE_FIRST_WAIT;
            let ack = loop {
                match result {
                    Ok(settled) => break Some(settled),
                    Err(Unsettled::Unsent(err)) => {
                        tracing::error!(error = format!("{err:#}"), "could not publish the outcome; requeueing the message");
                        self.publisher.discard(&link).await;
                        break None;
                    }
                    Err(Unsettled::Unroutable { outcome, error }) => {
                        // Requeued, the message would be back at once, fail
                        // the same way, and count towards poison; held, it
                        // waits for its queue, and the stage takes no more
                        // than its prefetch meanwhile.
                        tracing::warn!(error = format!("{error:#}"), retry_in_ms = delay.as_millis() as u64, "the broker returned the outcome: no queue is bound for it; holding the message and publishing it again");
                        self.repair(&link).await;
                        tokio::select! {
                            _ = token.cancelled() => break None,
                            () = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(UNROUTABLE_MAX_WAIT);
                        let Some(next) = self.publisher.link(token).await else {
                            break None;
                        };
                        link = next;
                        result = publish_outcome(&link, outcome).await;
                    }
                    Err(Unsettled::EventsPending {
                        events,
                        settled,
                        forwarded,
                        error,
                    }) => {
                        tracing::warn!(error = format!("{error:#}"), "the outcome is out but its events are not; sending them again");
                        self.give_up_or_repair(&link, &error).await;
                        // Without a forward, a redo loses nothing and
                        // publishes the events again.
                        break (self.send_events(events, token).await || forwarded)
                            .then_some(settled);
                    }
                }
            };
            let acked = match ack {
                Some(settled) => {
                    metrics::global().settled(self.topology.prefix(), self.stage, &settled);
                    broker::within("acking", delivery.acker.ack(BasicAckOptions::default())).await
                }
                None => broker::within("requeueing", delivery.acker.nack(requeue)).await,
            };
            if let Err(err) = acked {
                tracing::warn!(error = %err, "ack failed; the broker will deliver the message again");
            }
        }
        .instrument(span)
        .await
    }

    /// Sends `events` until the broker confirms them, over a new
    /// publishing connection when the old one failed. Gives up only when the
    /// worker stops (answers `false`): the events of a confirmed forward are
    /// then lost, and the next stage's events move the task on.
    async fn send_events(&self, events: Vec<Event>, token: &CancellationToken) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            let Some(link) = self.publisher.link(token).await else {
                break;
            };
            match link.events.send(events.clone()).await.wait().await {
                Ok(()) => return true,
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "events not confirmed; trying again"
                    );
                    self.give_up_or_repair(&link, &err).await;
                }
            }
            tokio::select! {
                _ = token.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        tracing::error!(
            events = events.len(),
            "stopping with events of a published outcome unconfirmed"
        );
        false
    }

    /// After a publish on `link` failed with `err`: a returned (unroutable)
    /// publish leaves the connection sound, so the link stays and the
    /// topology is declared again ([`Worker::repair`]); any other failure
    /// gives the link up, and the next one connects anew.
    async fn give_up_or_repair(&self, link: &PublishLink, err: &anyhow::Error) {
        if broker::is_unroutable(err) {
            self.repair(link).await;
        } else {
            self.publisher.discard(link).await;
        }
    }

    /// Counts a returned publish and declares the topology again, which
    /// binds a queue of the pipeline that was unbound.
    async fn repair(&self, link: &PublishLink) {
        metrics::global().unroutable(self.topology.prefix(), self.stage);
        if let Err(err) = self.publisher.redeclare(link).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "could not declare the topology again; reconnecting"
            );
            self.publisher.discard(link).await;
        }
    }

    /// Decides the delivery's outcome and publishes it with confirms.
    async fn settle(&self, link: &PublishLink, delivery: &Delivery) -> Result<Settled, Unsettled> {
        let headers = delivery.properties.headers();
        let counted = header_int(headers, RETURNS_HEADER).unwrap_or(0);
        let returns = match header_int(headers, "x-delivery-count") {
            Some(broker_count) => broker_count.max(counted),
            // A returned message its queue did not count: count it first.
            None if delivery.redelivered => {
                return publish_outcome(link, self.recount(delivery, counted + 1)).await;
            }
            None => counted,
        };
        let envelope = match Envelope::decode(&delivery.data, self.stage) {
            Ok(envelope) => envelope,
            Err(err) => {
                let outcome = self.undecodable(delivery, err.to_string());
                return publish_outcome(link, outcome).await;
            }
        };
        let span = Span::current();
        span.record("task_id", tracing::field::display(envelope.task_id));
        span.record("attempt", envelope.attempt);
        // This hop is a child of the one that published the message.
        let incoming = header_str(headers, "traceparent")
            .and_then(|h| TraceParent::parse(&h))
            .unwrap_or_else(|| TraceParent::for_task(envelope.task_id));
        let traceparent = telemetry::start_hop(&span, &incoming).header();
        match self.cancelled(&envelope).await {
            Ok(false) => {}
            Ok(true) => return publish_outcome(link, self.drop_cancelled(&envelope)).await,
            Err(err) => {
                // Not knowing is not running: the attempt waits its retry.
                let started = Event::about(&envelope, EventKind::Started);
                let mut outcome = self.outcome(
                    &envelope,
                    &delivery.data,
                    Err(err),
                    Duration::ZERO,
                    &traceparent,
                );
                outcome.events.insert(0, started);
                return publish_outcome(link, outcome).await;
            }
        }
        let deliveries = returns + 1;
        if deliveries >= i64::from(self.settings.stages.max_deliveries) {
            let error = ErrorInfo {
                kind: "poison".into(),
                message: format!(
                    "delivered {deliveries} times without being acknowledged: handling it keeps stopping the worker"
                ),
            };
            let mut outcome = self.dead_letter(&envelope, &delivery.data, &error, &traceparent);
            outcome.events.splice(0..0, self.facts(&envelope));
            return publish_outcome(link, outcome).await;
        }
        let started = Event::about(&envelope, EventKind::Started);
        let facts = self.facts(&envelope);
        let clock = Instant::now();
        let handler = self.run_handler(envelope.clone());
        tokio::pin!(handler);
        // An attempt still running after `ANNOUNCE_AFTER` says so at once,
        // so the view shows it running; a quicker one's outcome says it all.
        let (result, announced) = tokio::select! {
            biased;
            result = &mut handler => (result, None),
            () = tokio::time::sleep(ANNOUNCE_AFTER) => {
                let mut announce = facts.clone();
                announce.push(started.clone());
                let announced = link.events.send(announce).await;
                (handler.await, Some(announced))
            }
        };
        metrics::global().handler_took(self.topology.prefix(), self.stage, clock.elapsed());
        let mut outcome = self.outcome(
            &envelope,
            &delivery.data,
            result,
            clock.elapsed(),
            &traceparent,
        );
        if announced.is_none() {
            if outcome.settled != Settled::Succeeded {
                // A failure keeps its whole story: the attempt began, then this.
                outcome.events.insert(0, started.clone());
            }
            // Announced, the facts went out with `started`.
            outcome.events.splice(0..0, facts.iter().cloned());
        }
        let forwarded = outcome.work.is_some();
        let settled = publish_outcome(link, outcome).await?;
        if let Some(announced) = announced
            && let Err(error) = announced.wait().await
        {
            return Err(Unsettled::EventsPending {
                events: facts.into_iter().chain([started]).collect(),
                settled,
                forwarded,
                error,
            });
        }
        Ok(settled)
    }

    /// Whether the task was cancelled: one look at its marker in the
    /// store per delivery. Not cached: a positive answer buys nothing (a
    /// dropped message is not forwarded, so the task seldom comes back),
    /// and a cached one would drop the message of a forced replay, which
    /// removes the marker.
    async fn cancelled(&self, envelope: &Envelope) -> Result<bool, StageError> {
        self.store
            .is_cancelled(envelope.task_id)
            .await
            .map_err(|e| match e {
                // Refused credentials are refused at the stage's own read
                // too: say so now rather than retry the look.
                crate::store::StoreError::Denied(_) => StageError::from(e),
                e => StageError::transient(format!(
                    "could not tell whether the task is cancelled: {e}"
                )),
            })
    }

    /// A cancelled task's delivery: acked with a `dropped` event, nothing
    /// forwarded, nothing dead-lettered. A retry that comes back from its
    /// tier ends here too.
    fn drop_cancelled(&self, envelope: &Envelope) -> Outcome {
        tracing::info!("the task is cancelled; dropping its message");
        Outcome {
            work: None,
            events: vec![Event::about(envelope, EventKind::Dropped)],
            settled: Settled::Dropped,
        }
    }

    /// What this stage states of the task whatever the attempt's outcome:
    /// at ingest, the task's `received` event, so that a task published by
    /// another system with its first message alone has its documents and
    /// options in the view. It is the same event as the submitter's
    /// (see [`Event::received`]): a copy changes nothing.
    fn facts(&self, envelope: &Envelope) -> Vec<Event> {
        match self.stage {
            Stage::Ingest => vec![Event::received(envelope)],
            _ => Vec::new(),
        }
    }

    /// Runs the handler in its own task, with a time limit; a panic or an
    /// overrun becomes a permanent error.
    async fn run_handler(&self, envelope: Envelope) -> Result<StageOutput, StageError> {
        // The handler's own logs belong to the delivery's span too.
        let task = tokio::spawn(self.handler.handle(envelope).instrument(Span::current()));
        let abort = task.abort_handle();
        match tokio::time::timeout(self.handler_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(err)) if err.is_panic() => Err(StageError::permanent(
                "panic",
                panic_message(err.into_panic()),
            )),
            Ok(Err(err)) => Err(StageError::transient(format!(
                "handler task ended early: {err}"
            ))),
            Err(_) => {
                abort.abort();
                Err(StageError::permanent(
                    "timeout",
                    format!(
                        "the {} stage ran past its limit of {} ms and was abandoned",
                        self.stage,
                        self.handler_timeout.as_millis()
                    ),
                ))
            }
        }
    }

    /// What to publish for a handler's result.
    fn outcome(
        &self,
        envelope: &Envelope,
        body: &[u8],
        result: Result<StageOutput, StageError>,
        took: Duration,
        traceparent: &str,
    ) -> Outcome {
        match result {
            Ok(output) => self.success(envelope, output, took, traceparent),
            Err(err) => {
                let retry = self.topology.retry_queue(self.stage, envelope.attempt);
                match (err.is_transient(), retry) {
                    (true, Some((queue, delay_ms))) => {
                        self.retry(envelope, &err, &queue, delay_ms, traceparent)
                    }
                    _ => {
                        let mut error = bounded(err.info());
                        if err.is_transient() {
                            error.message = format!(
                                "gave up after {} attempts: {}",
                                envelope.attempt, error.message
                            );
                        }
                        self.dead_letter(envelope, body, &error, traceparent)
                    }
                }
            }
        }
    }

    /// On to the next stage, or, after the last, the `completed` event.
    fn success(
        &self,
        envelope: &Envelope,
        output: StageOutput,
        took: Duration,
        traceparent: &str,
    ) -> Outcome {
        if let Some(of) = output.duplicate_of {
            tracing::info!(duplicate_of = %of, "the task repeats an earlier one; acknowledged without work");
            return Outcome {
                work: None,
                events: vec![Event::about(envelope, EventKind::Duplicate { of })],
                settled: Settled::Succeeded,
            };
        }
        let succeeded = Event::about(
            envelope,
            EventKind::Succeeded {
                artifact: output.produced.clone(),
                duration_ms: took.as_millis() as u64,
                files: output.files.clone(),
            },
        );
        match self.stage.next() {
            Some(next) => {
                let forward = envelope.advance(next, output.artifacts);
                Outcome {
                    work: Some(
                        Outgoing::new(
                            self.topology.work_exchange(),
                            next.as_str(),
                            forward.encode(),
                        )
                        .for_task(envelope.task_id, Some(traceparent)),
                    ),
                    events: vec![succeeded],
                    settled: Settled::Succeeded,
                }
            }
            None => {
                let mut events = vec![succeeded];
                if let Some(summary) = output.artifacts.summary {
                    events.push(Event::about(envelope, EventKind::Completed { summary }));
                }
                Outcome {
                    work: None,
                    events,
                    settled: Settled::Succeeded,
                }
            }
        }
    }

    /// Into the retry queue of the tier this attempt reached.
    fn retry(
        &self,
        envelope: &Envelope,
        err: &StageError,
        queue: &str,
        delay_ms: u64,
        traceparent: &str,
    ) -> Outcome {
        let now = Utc::now();
        let mut again = envelope.clone();
        again.attempt += 1;
        again.first_failure_at = Some(envelope.first_failure_at.unwrap_or(now));
        let due_at = now + chrono::Duration::milliseconds(delay_ms as i64);
        tracing::warn!(error = %err, delay_ms, "attempt failed; retrying later");
        let mut event = Event::about(
            envelope,
            EventKind::RetryScheduled {
                error: bounded(err.info()),
                due_at,
            },
        );
        event.at = now;
        Outcome {
            work: Some(
                Outgoing::new("", queue, again.encode())
                    .for_task(envelope.task_id, Some(traceparent)),
            ),
            events: vec![event],
            settled: Settled::Retried,
        }
    }

    /// A returned message, back into the stage's queue as a new message
    /// with its returns counted, unhandled; the copy is what gets handled.
    fn recount(&self, delivery: &Delivery, returns: i64) -> Outcome {
        tracing::warn!(
            returns,
            "a message came back unacknowledged (a worker stopped with it in hand); counting it"
        );
        let mut again = Outgoing::new(
            "",
            self.topology.stage_queue(self.stage),
            delivery.data.to_vec(),
        );
        // Its trace context and any other headers travel with it.
        again.headers = delivery.properties.headers().clone().unwrap_or_default();
        again.task_id = crate::envelope::loose_task_id(&delivery.data);
        Outcome {
            work: Some(again.int_header(RETURNS_HEADER, returns)),
            events: Vec::new(),
            settled: Settled::Returned,
        }
    }

    /// Into the stage's dead-letter queue, with the failure headers.
    fn dead_letter(
        &self,
        envelope: &Envelope,
        body: &[u8],
        error: &ErrorInfo,
        traceparent: &str,
    ) -> Outcome {
        tracing::error!(kind = %error.kind, error = %error.message, "dead-lettering the message");
        let failure = Failure {
            stage: self.stage,
            error: error.clone(),
            attempts: envelope.attempt,
            first_failure_at: envelope.first_failure_at.unwrap_or_else(Utc::now),
            last_failure_at: Utc::now(),
        };
        let parked = Outgoing::new(
            "",
            self.topology.dead_letter_queue(self.stage),
            body.to_vec(),
        );
        Outcome {
            work: Some(
                failure
                    .stamp(parked)
                    .header("x-tf-task-id", envelope.task_id.to_string())
                    .for_task(envelope.task_id, Some(traceparent)),
            ),
            events: vec![Event::about(
                envelope,
                EventKind::DeadLettered {
                    error: error.clone(),
                },
            )],
            settled: Settled::DeadLettered(error.kind.clone()),
        }
    }

    /// A body that is not an envelope goes to the dead-letter queue as it
    /// came, with the reason; if it names a task, that task hears of it.
    fn undecodable(&self, delivery: &Delivery, reason: String) -> Outcome {
        tracing::error!(error = %reason, "undecodable message; dead-lettering it");
        let now = Utc::now();
        let failure = Failure {
            stage: self.stage,
            error: bounded(ErrorInfo {
                kind: "invalid_message".into(),
                message: reason,
            }),
            attempts: 1,
            first_failure_at: now,
            last_failure_at: now,
        };
        let mut parked = failure.stamp(Outgoing::new(
            "",
            self.topology.dead_letter_queue(self.stage),
            delivery.data.clone(),
        ));
        let mut events = Vec::new();
        if let Some(task_id) = crate::envelope::loose_task_id(&delivery.data) {
            parked = parked.header("x-tf-task-id", task_id.to_string());
            events.push(Event {
                // A task with a callback hears of it even so.
                callback: crate::events::Callback::loose(&delivery.data),
                schema: crate::events::EVENT_SCHEMA,
                event_id: uuid::Uuid::now_v7(),
                task_id,
                stage: self.stage,
                attempt: 1,
                at: now,
                kind: EventKind::DeadLettered {
                    error: failure.error.clone(),
                },
            });
        }
        Outcome {
            work: Some(parked),
            events,
            settled: Settled::DeadLettered(failure.error.kind),
        }
    }
}

/// Why a delivery's outcome is not wholly out.
enum Unsettled {
    /// Its work message is not confirmed: nothing of it may count, and the
    /// delivery is requeued.
    Unsent(anyhow::Error),
    /// The broker returned its work message: no queue is bound to take it
    /// (see [`broker::Unroutable`]). Nothing of it counts; the outcome is
    /// published again, as it is, once the queue can take it.
    Unroutable {
        outcome: Outcome,
        error: anyhow::Error,
    },
    /// Its work message (if it has one) is confirmed, its events are not.
    EventsPending {
        events: Vec<Event>,
        settled: Settled,
        /// Whether a work message went out, which a redo would duplicate.
        forwarded: bool,
        error: anyhow::Error,
    },
}

impl From<anyhow::Error> for Unsettled {
    fn from(err: anyhow::Error) -> Self {
        Unsettled::Unsent(err)
    }
}

/// Publishes an outcome and waits for every confirm; answers what the
/// outcome was, for the metrics.
async fn publish_outcome(link: &PublishLink, outcome: Outcome) -> Result<Settled, Unsettled> {
    let work = match &outcome.work {
        Some(message) => Some(link.publish(message).await?),
        None => None,
    };
    let forwarded = work.is_some();
    let events = link.events.send(outcome.events.clone()).await;
    if let Some(work) = work
        && let Err(error) = work.wait().await
    {
        if broker::is_unroutable(&error) {
            return Err(Unsettled::Unroutable { outcome, error });
        }
        return Err(Unsettled::Unsent(error));
    }
    match events.wait().await {
        Ok(()) => Ok(outcome.settled),
        Err(error) => Err(Unsettled::EventsPending {
            events: outcome.events,
            settled: outcome.settled,
            forwarded,
            error,
        }),
    }
}

/// What one delivery leads to: at most one message (to the next stage, a
/// retry queue or the dead-letter queue) and the task's events.
struct Outcome {
    work: Option<Outgoing>,
    events: Vec<Event>,
    /// What it is, for the metrics.
    settled: Settled,
}

/// Why a message was dead-lettered, as headers on it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    pub error: ErrorInfo,
    pub attempts: u32,
    pub first_failure_at: DateTime<Utc>,
    pub last_failure_at: DateTime<Utc>,
}

impl Failure {
    /// Adds the failure headers to a message.
    pub fn stamp(&self, message: Outgoing) -> Outgoing {
        message
            .header("x-tf-stage", self.stage.as_str())
            .header("x-tf-error-kind", self.error.kind.clone())
            .header("x-tf-error-message", self.error.message.clone())
            .int_header("x-tf-attempts", i64::from(self.attempts))
            .header("x-tf-first-failure-at", self.first_failure_at.to_rfc3339())
            .header("x-tf-last-failure-at", self.last_failure_at.to_rfc3339())
    }
}

/// Longest error message, in bytes, carried in a failure header or an
/// event. Headers travel in one AMQP frame (128 KiB by default): a longer
/// one makes the broker close the connection, so the outcome could never be
/// published and the message would go round until the poison check.
const MAX_ERROR_MESSAGE: usize = 2048;

/// `error` with its message cut to [`MAX_ERROR_MESSAGE`] bytes, saying so.
fn bounded(mut error: ErrorInfo) -> ErrorInfo {
    if error.message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !error.message.is_char_boundary(end) {
            end -= 1;
        }
        let total = error.message.len();
        error.message.truncate(end);
        error.message.push_str(&format!("… ({total} bytes in all)"));
    }
    error
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into());
    format!("the handler panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut_to_fit_a_header() {
        let long = ErrorInfo {
            kind: "invalid_reference".into(),
            message: "模".repeat(MAX_ERROR_MESSAGE),
        };
        let cut = bounded(long);
        assert!(
            cut.message.len() <= MAX_ERROR_MESSAGE + 32,
            "{}",
            cut.message.len()
        );
        assert!(
            cut.message
                .ends_with(&format!("({} bytes in all)", 3 * MAX_ERROR_MESSAGE))
        );
        let short = ErrorInfo {
            kind: "x".into(),
            message: "short".into(),
        };
        assert_eq!(bounded(short.clone()), short);
    }
}
