//! Dead letters: what failed for good, kept in one RabbitMQ stream per
//! stage (`{stage}.dlq`).
//!
//! A stream is read without being taken from: reading a dead letter
//! changes nothing in the broker (no delivery count, no requeue, nothing
//! held unacked), and a stream declared without a maximum age or length
//! keeps every entry on every broker version. Whether a dead letter is
//! still waiting is written into the same stream: a replay appends a small
//! *settlement* entry naming the offsets it dealt with. The stream is thus
//! its own ledger: [`Entry::read`] turns each entry into a dead letter or a
//! settlement, and folding them in order gives the pending dead letters.
//! The projector keeps that fold as an index (so listing is a bounded query,
//! not a read of the queue), and `scan` folds the whole stream directly
//! for a caller without one.
//!
//! A replay publishes the message (confirmed) before it appends the
//! settlement (confirmed): nothing is lost; at worst a crash between the two
//! leaves the dead letter pending, and a second replay sends a copy the
//! idempotent stages absorb. Replaying N dead letters reads about N entries,
//! by their offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{Channel, Connection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::broker::{self, Outgoing, header_int, header_str, stream_offset, traceparent_for};
use crate::envelope::{Envelope, Stage};
use crate::events::{Callback, ErrorInfo, Event, EventKind};
use crate::topology::Topology;

/// Header of a settlement entry: the offset of the dead letter it settles.
pub const SETTLES_HEADER: &str = "x-tf-settles";
/// Header of a settlement entry: why (`replayed`, `superseded`).
pub const SETTLED_BY_HEADER: &str = "x-tf-settled-by";
/// Longest preview of a dead letter's body, in bytes.
pub const PREVIEW_BYTES: usize = 512;

/// One dead-lettered message, as its failure headers describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage whose queue it failed in.
    pub stage: Stage,
    /// Its offset in the stage's dead-letter stream: its id there.
    pub offset: u64,
    /// The task, when the message names one.
    pub task_id: Option<Uuid>,
    /// The error's kind (`invalid_message`, `panic`, `poison`, ...; for a
    /// message the broker dead-lettered itself, its reason, such as
    /// `delivery_limit`).
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
    /// Whether the broker dead-lettered it (its delivery limit), rather
    /// than a worker: such a message carries no failure headers of ours,
    /// and its task heard nothing until the projector read it here.
    pub by_broker: bool,
    /// The body's size in bytes.
    pub body_bytes: u64,
    /// The body's first [`PREVIEW_BYTES`] bytes, as text.
    pub preview: String,
    /// The task's callback, which the event announcing a broker's dead
    /// letter carries on to the notify consumer. Not part of the listing.
    #[serde(skip)]
    pub callback: Option<Callback>,
}

/// One entry of a dead-letter stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A message that failed for good.
    Letter(Box<DeadLetter>),
    /// The dead letter at this offset has been dealt with.
    Settles { offset: u64, by: String },
}

impl Entry {
    /// Reads a delivery from `stage`'s dead-letter stream; `None` when it
    /// carries no stream offset (not read from a stream).
    pub fn read(stage: Stage, delivery: &Delivery) -> Option<Entry> {
        let offset = stream_offset(delivery)?;
        Some(Entry::from_message(
            stage,
            offset,
            delivery.properties.headers(),
            &delivery.data,
        ))
    }

    /// An entry from its parts (what [`Entry::read`] takes off a delivery).
    pub fn from_message(
        stage: Stage,
        offset: u64,
        headers: &Option<FieldTable>,
        body: &[u8],
    ) -> Entry {
        if let Some(settled) =
            header_int(headers, SETTLES_HEADER).and_then(|o| u64::try_from(o).ok())
        {
            return Entry::Settles {
                offset: settled,
                by: header_str(headers, SETTLED_BY_HEADER).unwrap_or_else(|| "replayed".into()),
            };
        }
        Entry::Letter(Box::new(describe(stage, offset, headers, body)))
    }
}

fn describe(stage: Stage, offset: u64, headers: &Option<FieldTable>, body: &[u8]) -> DeadLetter {
    let envelope = Envelope::decode(body, stage).ok();
    let task_id = envelope
        .as_ref()
        .map(|e| e.task_id)
        .or_else(|| header_str(headers, "x-tf-task-id").and_then(|t| t.parse().ok()))
        .or_else(|| crate::envelope::loose_task_id(body));
    let ours = header_str(headers, "x-tf-error-kind");
    // Messages the broker dead-lettered itself (its delivery limit) carry
    // only its own x-first-death-reason header.
    let broker_reason = header_str(headers, "x-first-death-reason");
    let by_broker = ours.is_none();
    let error_kind = ours
        .or_else(|| broker_reason.clone())
        .unwrap_or_else(|| "unknown".into());
    let error_message = header_str(headers, "x-tf-error-message").unwrap_or_else(|| {
        match broker_reason.as_deref() {
            Some("delivery_limit") => format!(
                "dead-lettered by the broker: the {stage} queue's delivery limit was reached \
                 (the message was returned too many times, e.g. its worker died on it)"
            ),
            Some(reason) => format!("dead-lettered by the broker: {reason}"),
            None => "no failure headers".into(),
        }
    });
    let death_time = death_time(headers).map(|t| t.to_rfc3339());
    DeadLetter {
        stage,
        offset,
        task_id,
        error_kind,
        error_message,
        attempts: header_int(headers, "x-tf-attempts")
            .or_else(|| header_int(headers, "x-delivery-count"))
            .or_else(|| envelope.as_ref().map(|e| i64::from(e.attempt)))
            .unwrap_or(0),
        first_failure_at: header_str(headers, "x-tf-first-failure-at")
            .or_else(|| death_time.clone()),
        last_failure_at: header_str(headers, "x-tf-last-failure-at").or(death_time),
        filenames: envelope
            .as_ref()
            .map(|e| e.documents.iter().map(|d| d.filename.clone()).collect())
            .unwrap_or_default(),
        replayable: envelope.is_some(),
        by_broker,
        body_bytes: body.len() as u64,
        preview: preview(body),
        callback: Callback::loose(body),
    }
}

/// The body's first bytes as text, cut at a character boundary.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(PREVIEW_BYTES)]);
    let mut text = text.into_owned();
    // A multi-byte character cut by the limit shows as one replacement
    // character at the end; drop it.
    if body.len() > PREVIEW_BYTES && text.ends_with('\u{FFFD}') {
        text.pop();
    }
    text
}

/// When the broker dead-lettered the message: the newest `time` of its
/// `x-death` records.
fn death_time(headers: &Option<FieldTable>) -> Option<DateTime<Utc>> {
    let deaths = match headers.as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(array) => array.clone(),
        _ => FieldArray::default(),
    };
    deaths
        .as_slice()
        .iter()
        .filter_map(|death| match death {
            AMQPValue::FieldTable(table) => match table.inner().get("time")? {
                AMQPValue::Timestamp(t) => DateTime::from_timestamp(i64::try_from(*t).ok()?, 0),
                _ => None,
            },
            _ => None,
        })
        .max()
}

impl DeadLetter {
    /// The `dead_lettered` event a dead letter of the broker's own stands
    /// for: its task heard nothing when the broker parked it. Its id is
    /// derived from the entry, so every projector that reads the entry
    /// (again, or a replica) announces the same event, which the fold
    /// takes once. `None` for letters a worker parked (their event went
    /// out with them) and for those that name no task.
    pub fn broker_event(&self, queue: &str, body_sha256: &str) -> Option<Event> {
        if !self.by_broker {
            return None;
        }
        let task_id = self.task_id?;
        let mut hash = Sha256::new();
        for part in [
            queue,
            &self.offset.to_string(),
            self.last_failure_at.as_deref().unwrap_or(""),
            body_sha256,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        let at = self
            .last_failure_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        Some(Event {
            callback: self.callback.clone(),
            schema: crate::events::EVENT_SCHEMA,
            event_id: uuid::Builder::from_custom_bytes(bytes).into_uuid(),
            task_id,
            stage: self.stage,
            attempt: u32::try_from(self.attempts.max(1)).unwrap_or(u32::MAX),
            at,
            kind: EventKind::DeadLettered {
                error: ErrorInfo {
                    kind: self.error_kind.clone(),
                    message: self.error_message.clone(),
                },
            },
        })
    }
}

/// The pending dead letters of a stream's entries, oldest first: every
/// letter no later settlement names.
pub fn pending(entries: impl IntoIterator<Item = Entry>) -> Vec<DeadLetter> {
    let mut letters = BTreeMap::new();
    let mut settled = BTreeSet::new();
    for entry in entries {
        match entry {
            Entry::Letter(letter) => {
                letters.insert(letter.offset, *letter);
            }
            Entry::Settles { offset, .. } => {
                settled.insert(offset);
            }
        }
    }
    letters
        .into_values()
        .filter(|l| !settled.contains(&l.offset))
        .collect()
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Tasks put back on a stage's queue.
    pub replayed: Vec<Uuid>,
    /// The dead letters settled: the replayed ones and, for a task with
    /// several, the older ones the replay stands for.
    pub settled: Vec<u64>,
    /// Selected dead letters that could not be replayed, with the reason;
    /// they stay pending.
    pub skipped: Vec<(Option<Uuid>, String)>,
}

/// Replays `letters` (pending dead letters of `stage`): each task's newest
/// goes back to the queue of `from` (its own stage, or an earlier one, whose
/// artifacts are then made again) with its attempts reset, its task gets a
/// `replayed` event for every stage from `from` to `stage`, and its dead
/// letters are settled. A task's older dead letters at the stage are
/// settled with it (they stand for the same work).
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    stage: Stage,
    letters: &[DeadLetter],
    from: Stage,
) -> anyhow::Result<ReplayReport> {
    anyhow::ensure!(
        from <= stage,
        "cannot replay {stage} dead letters from {from}: it comes after {stage}"
    );
    let mut report = ReplayReport::default();
    // Each task's newest letter stands for its others. (A replayable letter
    // is a valid envelope, so it names its task.)
    let mut groups: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    for letter in letters.iter().filter(|l| l.stage == stage) {
        match letter.task_id.filter(|_| letter.replayable) {
            Some(task) => groups.entry(task).or_default().push(letter.offset),
            None => report.skipped.push((
                letter.task_id,
                format!("not replayable: {}", letter.error_message),
            )),
        }
    }
    let newest: Vec<u64> = groups
        .values()
        .filter_map(|offsets| offsets.iter().max().copied())
        .collect();
    let fetched = fetch(conn, topology, stage, &newest).await?;
    let channel = broker::confirm_channel(conn).await?;
    for (task, offsets) in groups {
        let newest = *offsets.iter().max().expect("a group has an offset");
        let Some(delivery) = fetched.get(&newest) else {
            report.skipped.push((
                Some(task),
                format!("the dead letter at offset {newest} is no longer in the stream"),
            ));
            continue;
        };
        let envelope = match Envelope::decode(&delivery.data, stage) {
            Ok(envelope) => envelope,
            Err(err) => {
                report
                    .skipped
                    .push((Some(task), format!("not replayable: {err}")));
                continue;
            }
        };
        publish_replay(&channel, topology, &envelope, from).await?;
        let settlements: Vec<Outgoing> = offsets
            .iter()
            .map(|&offset| settlement(topology, stage, offset, offset == newest))
            .collect();
        broker::publish_all(&channel, &settlements).await?;
        report.replayed.push(envelope.task_id);
        report.settled.extend(offsets);
    }
    let _ = channel.close(200, "replayed".into()).await;
    Ok(report)
}

async fn publish_replay(
    channel: &Channel,
    topology: &Topology,
    envelope: &Envelope,
    from: Stage,
) -> anyhow::Result<()> {
    let fresh = envelope.rewound_to(from);
    let traceparent = traceparent_for(envelope.task_id);
    let mut messages = vec![
        Outgoing::new(topology.work_exchange(), from.as_str(), fresh.encode())
            .for_task(envelope.task_id, Some(&traceparent)),
    ];
    // Every stage the task runs through again starts a new epoch in the
    // view, so the old failure no longer counts.
    for again in Stage::ALL
        .into_iter()
        .filter(|s| *s >= from && *s <= envelope.stage)
    {
        let mut at_stage = fresh.clone();
        at_stage.stage = again;
        let mut event = Event::about(&at_stage, EventKind::Replayed);
        event.at = Utc::now();
        messages.push(Outgoing::event(topology, &event, Some(&traceparent)));
    }
    broker::publish_all(channel, &messages).await
}

/// The settlement entry for the dead letter at `offset`.
fn settlement(topology: &Topology, stage: Stage, offset: u64, replayed: bool) -> Outgoing {
    Outgoing::new("", topology.dead_letter_queue(stage), Vec::new())
        .int_header(SETTLES_HEADER, offset as i64)
        .header(
            SETTLED_BY_HEADER,
            if replayed { "replayed" } else { "superseded" },
        )
}

/// Entries a read of the stream asks the broker for at a time.
const PREFETCH: u16 = 200;
/// Offsets closer than this are read in one pass rather than two.
const RUN_GAP: u64 = 32;
/// Longest wait for the next entry of a read.
const READ_WAIT: Duration = Duration::from_secs(5);
/// Quiet time after the last known entry at which a whole read ends.
const SCAN_IDLE: Duration = Duration::from_millis(300);

/// The entries of `stage`'s dead-letter stream at `offsets` (those still
/// in it), by offset. Reads about as many entries as asked for: offsets
/// close together are read in one pass, distant ones each from their own.
pub async fn fetch(
    conn: &Connection,
    topology: &Topology,
    stage: Stage,
    offsets: &[u64],
) -> anyhow::Result<BTreeMap<u64, Delivery>> {
    let wanted: BTreeSet<u64> = offsets.iter().copied().collect();
    let mut found = BTreeMap::new();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &offset in &wanted {
        match runs.last_mut() {
            Some((_, end)) if offset - *end <= RUN_GAP => *end = offset,
            _ => runs.push((offset, offset)),
        }
    }
    let queue = topology.dead_letter_queue(stage);
    for (start, end) in runs {
        let channel = conn.create_channel().await?;
        let mut consumer =
            stream_consumer(&channel, &queue, AMQPValue::LongLongInt(start as i64)).await?;
        loop {
            let next = match tokio::time::timeout(READ_WAIT, consumer.next()).await {
                Ok(Some(next)) => next?,
                // Past the stream's end: the rest are not there.
                Ok(None) | Err(_) => break,
            };
            let ack = next.acker.ack(BasicAckOptions::default());
            broker::within("acking a stream entry", ack).await?;
            let Some(offset) = stream_offset(&next) else {
                continue;
            };
            if wanted.contains(&offset) {
                found.insert(offset, next);
            }
            if offset >= end {
                break;
            }
        }
        let _ = channel.close(200, "read".into()).await;
    }
    Ok(found)
}

/// Every pending dead letter of `stage`, by folding its whole stream: for
/// callers without the projector's index (tests, tools). Changes nothing.
///
/// Reads up to the entry that was last when it began (a passive declare's
/// count of a stream's entries trails by seconds, so the last offset is
/// read off the stream's tail).
pub async fn scan(
    conn: &Connection,
    topology: &Topology,
    stage: Stage,
) -> anyhow::Result<Vec<DeadLetter>> {
    let queue = topology.dead_letter_queue(stage);
    let Some(last) = crate::metrics::stream_last_offset(conn, &queue).await? else {
        return Ok(Vec::new());
    };
    let channel = conn.create_channel().await?;
    let mut consumer =
        stream_consumer(&channel, &queue, AMQPValue::LongString("first".into())).await?;
    let mut entries = Vec::new();
    // Up to the last entry the tail showed, then whatever follows without
    // a pause (the tail read can miss what arrived while it looked).
    let mut wait = READ_WAIT;
    loop {
        let next = match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Some(next)) => next?,
            Ok(None) => anyhow::bail!("the broker cancelled the reader of {queue}"),
            Err(_) if wait == READ_WAIT => anyhow::bail!(
                "{queue} stopped at {} of its {} entries",
                entries.len(),
                last + 1
            ),
            Err(_) => break,
        };
        let ack = next.acker.ack(BasicAckOptions::default());
        broker::within("acking a stream entry", ack).await?;
        if stream_offset(&next).is_some_and(|o| o >= last) {
            wait = SCAN_IDLE;
        }
        entries.extend(Entry::read(stage, &next));
    }
    let _ = channel.close(200, "read".into()).await;
    Ok(pending(entries))
}

/// Entries in a dead-letter stream (dead letters and settlements), read off
/// its tail: such a stream keeps every entry from offset 0, and a passive
/// declare's count of a stream trails by seconds.
pub async fn entries(conn: &Connection, queue: &str) -> anyhow::Result<u64> {
    let last = crate::metrics::stream_last_offset(conn, queue).await?;
    Ok(last.map_or(0, |l| l + 1))
}

/// A consumer of `queue` (a stream) from `offset` on its own channel.
pub async fn stream_consumer(
    channel: &Channel,
    queue: &str,
    offset: AMQPValue,
) -> anyhow::Result<lapin::Consumer> {
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-stream-offset".into(), offset);
    let tag = format!("dlq-read-{}", Uuid::now_v7());
    Ok(channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            arguments,
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{LongString, ShortString};

    fn headers(pairs: &[(&str, AMQPValue)]) -> Option<FieldTable> {
        let mut table = FieldTable::default();
        for (k, v) in pairs {
            table.insert(ShortString::from(*k), v.clone());
        }
        Some(table)
    }

    fn text(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s))
    }

    fn worker_letter(offset: u64) -> Entry {
        Entry::from_message(
            Stage::Parse,
            offset,
            &headers(&[
                ("x-tf-error-kind", text("corrupt_document")),
                ("x-tf-error-message", text("not a PDF")),
                ("x-tf-attempts", AMQPValue::LongLongInt(3)),
            ]),
            b"{\"not\": \"an envelope\"}",
        )
    }

    #[test]
    fn settlements_take_letters_out_of_the_pending_list() {
        let entries = vec![
            worker_letter(0),
            worker_letter(1),
            Entry::from_message(
                Stage::Parse,
                2,
                &headers(&[(SETTLES_HEADER, AMQPValue::LongLongInt(0))]),
                b"",
            ),
            worker_letter(3),
        ];
        let offsets: Vec<u64> = pending(entries).iter().map(|l| l.offset).collect();
        assert_eq!(offsets, vec![1, 3]);
    }

    #[test]
    fn a_worker_letter_reads_its_headers_and_is_no_broker_letter() {
        let Entry::Letter(letter) = worker_letter(7) else {
            panic!("a letter");
        };
        assert_eq!(letter.error_kind, "corrupt_document");
        assert_eq!(letter.attempts, 3);
        assert!(!letter.by_broker);
        assert!(!letter.replayable);
        assert!(letter.broker_event("q", "00").is_none());
    }

    #[test]
    fn a_broker_letter_stands_for_a_dead_lettered_event_with_a_stable_id() {
        let task = Uuid::now_v7();
        let body = format!("{{\"task_id\": \"{task}\"}}");
        let entry = Entry::from_message(
            Stage::Filter,
            12,
            &headers(&[("x-first-death-reason", text("delivery_limit"))]),
            body.as_bytes(),
        );
        let Entry::Letter(letter) = entry else {
            panic!("a letter");
        };
        assert!(letter.by_broker);
        assert_eq!(letter.task_id, Some(task));
        assert_eq!(letter.error_kind, "delivery_limit");
        let one = letter.broker_event("tf.filter.dlq", "ab").unwrap();
        let two = letter.broker_event("tf.filter.dlq", "ab").unwrap();
        assert_eq!(one.event_id, two.event_id);
        assert_ne!(
            one.event_id,
            letter.broker_event("tf.filter.dlq", "cd").unwrap().event_id
        );
        assert_eq!(one.task_id, task);
        assert_eq!(one.stage, Stage::Filter);
        assert!(
            matches!(one.kind, EventKind::DeadLettered { ref error } if error.kind == "delivery_limit")
        );
    }

    #[test]
    fn previews_are_bounded_and_cut_at_a_character() {
        let body = "标".repeat(400); // 1200 bytes
        let shown = preview(body.as_bytes());
        assert!(shown.len() <= PREVIEW_BYTES);
        assert!(shown.chars().all(|c| c == '标'));
        assert_eq!(preview(b"short"), "short");
    }
}
