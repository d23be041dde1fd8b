//! Dead-letter queues: list what failed, and replay it.
//!
//! Both read the queue with `basic.get`, holding the messages unacked while
//! they work, so a crash part-way puts everything back. A replayed message is
//! published to its stage's queue (confirmed) before it is acked off the
//! dead-letter queue: nothing is lost; at worst a crash between the two
//! leaves a copy in both, which the idempotent stages absorb.

use chrono::Utc;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use uuid::Uuid;

use crate::broker::{self, Outgoing, header_int, header_str, traceparent_for};
use crate::envelope::{Envelope, Stage};
use crate::events::{Event, EventKind};
use crate::topology::Topology;

/// One dead-lettered message, as its failure headers describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The task, when the message names one.
    pub task_id: Option<Uuid>,
    /// The stage whose queue it failed in.
    pub stage: Stage,
    /// The error's kind (`invalid_message`, `panic`, `poison`, ...).
    pub error_kind: String,
    /// The error, for people.
    pub error_message: String,
    /// Attempts made at the stage.
    pub attempts: i64,
    /// First and last failure, RFC 3339.
    pub first_failure_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// The documents' names, when the body is a valid envelope.
    pub filenames: Vec<String>,
    /// Whether the body is a valid envelope (only those can be replayed).
    pub replayable: bool,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only these tasks (all, when empty).
    pub task_ids: Vec<Uuid>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Tasks put back on their stage's queue.
    pub replayed: Vec<Uuid>,
    /// Selected messages that could not be replayed, with the reason; they
    /// stay in the dead-letter queue.
    pub skipped: Vec<(Option<Uuid>, String)>,
}

/// The stage's dead letters, oldest first. Leaves the queue as it was.
pub async fn list(
    channel: &Channel,
    topology: &Topology,
    stage: Stage,
) -> anyhow::Result<Vec<DeadLetter>> {
    let held = take_all(channel, topology, stage).await?;
    let letters = held.iter().map(|d| describe(stage, d)).collect();
    requeue(held).await;
    Ok(letters)
}

/// Replays the stage's dead letters that `filter` selects: each goes back to
/// the stage's queue with its attempts reset, and its task gets a `replayed`
/// event.
pub async fn replay(
    channel: &Channel,
    topology: &Topology,
    stage: Stage,
    filter: &ReplayFilter,
) -> anyhow::Result<ReplayReport> {
    let held = take_all(channel, topology, stage).await?;
    let mut report = ReplayReport::default();
    let mut keep = Vec::new();
    for delivery in held {
        let letter = describe(stage, &delivery);
        let selected = filter
            .limit
            .is_none_or(|limit| report.replayed.len() < limit)
            && (filter.task_ids.is_empty()
                || letter.task_id.is_some_and(|t| filter.task_ids.contains(&t)));
        if !selected {
            keep.push(delivery);
            continue;
        }
        match Envelope::decode(&delivery.data, stage) {
            Ok(envelope) => {
                replay_one(channel, topology, &envelope).await?;
                delivery.acker.ack(BasicAckOptions::default()).await?;
                report.replayed.push(envelope.task_id);
            }
            Err(err) => {
                report
                    .skipped
                    .push((letter.task_id, format!("not replayable: {err}")));
                keep.push(delivery);
            }
        }
    }
    requeue(keep).await;
    Ok(report)
}

async fn replay_one(
    channel: &Channel,
    topology: &Topology,
    envelope: &Envelope,
) -> anyhow::Result<()> {
    let mut fresh = envelope.clone();
    fresh.attempt = 1;
    fresh.first_failure_at = None;
    let traceparent = traceparent_for(envelope.task_id);
    let mut event = Event::about(&fresh, EventKind::Replayed);
    event.at = Utc::now();
    let messages = [
        Outgoing::new(
            topology.work_exchange(),
            envelope.stage.as_str(),
            fresh.encode(),
        )
        .for_task(envelope.task_id, Some(&traceparent)),
        Outgoing::event(topology, &event, Some(&traceparent)),
    ];
    broker::publish_all(channel, &messages).await
}

/// Gets every message now in the dead-letter queue, unacked.
async fn take_all(
    channel: &Channel,
    topology: &Topology,
    stage: Stage,
) -> anyhow::Result<Vec<Delivery>> {
    let queue = topology.dead_letter_queue(stage);
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let count = channel
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await?
        .message_count();
    // Neither the count nor one empty `basic.get` is the whole truth while
    // messages that were just requeued (by an earlier listing) are still on
    // their way back: keep asking for a moment before calling the queue done.
    let mut held = Vec::with_capacity(count as usize);
    let mut misses = 0;
    while misses < 20 {
        match channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        {
            Some(message) => {
                held.push(message.delivery);
                misses = 0;
            }
            None if held.len() >= count as usize && misses >= 4 => break,
            None => {
                misses += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
    }
    Ok(held)
}

async fn requeue(held: Vec<Delivery>) {
    for delivery in held {
        let requeue = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        if let Err(err) = delivery.acker.nack(requeue).await {
            tracing::warn!(error = %err, "could not requeue a dead letter; the broker will when the channel closes");
        }
    }
}

fn describe(stage: Stage, delivery: &Delivery) -> DeadLetter {
    let headers = delivery.properties.headers();
    let envelope = Envelope::decode(&delivery.data, stage).ok();
    let task_id = envelope
        .as_ref()
        .map(|e| e.task_id)
        .or_else(|| header_str(headers, "x-tf-task-id").and_then(|t| t.parse().ok()));
    // Messages the broker dead-lettered itself (its delivery limit) carry
    // only its own x-first-death-reason header.
    let broker_reason = header_str(headers, "x-first-death-reason");
    DeadLetter {
        task_id,
        stage,
        error_kind: header_str(headers, "x-tf-error-kind")
            .or_else(|| broker_reason.clone())
            .unwrap_or_else(|| "unknown".into()),
        error_message: header_str(headers, "x-tf-error-message").unwrap_or_else(|| {
            match broker_reason {
                Some(reason) => format!("dead-lettered by the broker: {reason}"),
                None => "no failure headers".into(),
            }
        }),
        attempts: header_int(headers, "x-tf-attempts").unwrap_or(0),
        first_failure_at: header_str(headers, "x-tf-first-failure-at"),
        last_failure_at: header_str(headers, "x-tf-last-failure-at"),
        filenames: envelope
            .as_ref()
            .map(|e| e.documents.iter().map(|d| d.filename.clone()).collect())
            .unwrap_or_default(),
        replayable: envelope.is_some(),
    }
}
