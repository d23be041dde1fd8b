//! Task events: what every stage reports to the events stream.
//!
//! The projector folds these into the task view. Each event has a unique id
//! (so a duplicate can be recognised) and its own time (so the fold does not
//! depend on arrival order).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{ArtifactRef, Envelope, Stage, TaskFile, TaskOptions};

/// Version of the event layout.
pub const EVENT_SCHEMA: u32 = 1;

/// What went wrong, as the task view and the dead-letter headers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorInfo {
    /// A stable, machine-readable kind: `transient`, `unsupported_type`,
    /// `invalid_message`, `panic`, `timeout`, ...
    pub kind: String,
    /// A sentence for people.
    pub message: String,
}

/// A document of the task as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DocumentInfo {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The task was submitted.
    Received {
        documents: Vec<DocumentInfo>,
        options: TaskOptions,
        /// The submitter's reference for the task, when it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
    },
    /// A stage started an attempt.
    Started,
    /// A stage finished an attempt and handed the task on.
    Succeeded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact: Option<ArtifactRef>,
        duration_ms: u64,
        /// Every file of the task with its role, as ingest sorted them
        /// (ingest only; absent from other stages and older events).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<TaskFile>,
    },
    /// A stage failed an attempt and will try again at `due_at`.
    RetryScheduled {
        error: ErrorInfo,
        due_at: DateTime<Utc>,
    },
    /// A stage gave up: the message is in its dead-letter queue.
    DeadLettered { error: ErrorInfo },
    /// A dead-lettered message was put back on its stage's queue.
    Replayed,
    /// The last stage finished: the summary is stored.
    Completed { summary: ArtifactRef },
    /// Ingest found the task's idempotency key claimed by another task
    /// with the same documents and options, within the window: this task
    /// was acknowledged without work, and `of` is the task to follow.
    Duplicate { of: Uuid },
    /// The task was cancelled (`DELETE /v1/tasks/{id}`): its stages drop
    /// its messages from now on. Its stage is the furthest the task had
    /// reached. Ends the task, unless a forced replay (a later
    /// `replayed`) runs it again.
    Cancelled {
        /// Who asked (where the request came from).
        by: String,
        /// Why, as the caller said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A stage dropped a delivery of a cancelled task: acked, not handled,
    /// not forwarded, not dead-lettered.
    Dropped,
}

impl EventKind {
    /// Whether the task ends here, for now: what the notify consumer
    /// calls back about. A replayed task that then completes ends again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Completed { .. } | EventKind::DeadLettered { .. }
        )
    }

    /// The kind's name, as in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Received { .. } => "received",
            EventKind::Started => "started",
            EventKind::Succeeded { .. } => "succeeded",
            EventKind::RetryScheduled { .. } => "retry_scheduled",
            EventKind::DeadLettered { .. } => "dead_lettered",
            EventKind::Replayed => "replayed",
            EventKind::Completed { .. } => "completed",
            EventKind::Duplicate { .. } => "duplicate",
            EventKind::Cancelled { .. } => "cancelled",
            EventKind::Dropped => "dropped",
        }
    }
}

/// Where a task's completion callback goes, and the submitter's id for
/// the task. Carried by the task's terminal events, so the notify consumer
/// (see [`crate::notify`]) needs no store of its own to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Callback {
    /// The URL the callback is POSTed to, as submitted.
    pub url: String,
    /// The submitter's own id for the task, echoed in the callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl Callback {
    /// The callback the task of `envelope` asked for, if any.
    pub fn of(envelope: &Envelope) -> Option<Callback> {
        envelope.callback_url.as_ref().map(|url| Callback {
            url: url.clone(),
            external_id: envelope.external_id.clone(),
        })
    }

    /// The callback a body that is not a valid envelope names, when it
    /// names one: so that the task still hears that it failed.
    pub fn loose(body: &[u8]) -> Option<Callback> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let text = |key: &str| value.get(key)?.as_str().map(str::to_string);
        Some(Callback {
            url: text("callback_url")?,
            external_id: text("external_id"),
        })
    }
}

/// One task event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Layout version: 1 ([`EVENT_SCHEMA`]).
    #[schemars(extend("const" = EVENT_SCHEMA))]
    pub schema: u32,
    /// Unique per event (UUID v7; a `received` event's is a UUID v8 derived
    /// from the task id, the same however often it is published).
    pub event_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// The stage the event is about.
    pub stage: Stage,
    /// The attempt at that stage.
    pub attempt: u32,
    /// When it happened, by the publisher's clock.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// On a terminal event (`completed`, `dead_lettered`) of a task that
    /// named a callback: where to call back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
}

impl Event {
    /// An event about the attempt `envelope` describes.
    pub fn about(envelope: &Envelope, kind: EventKind) -> Self {
        Event {
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id: envelope.task_id,
            stage: envelope.stage,
            attempt: envelope.attempt,
            at: Utc::now(),
            callback: kind.is_terminal().then(|| Callback::of(envelope)).flatten(),
            kind,
        }
    }

    /// When the attempt this event tells of began, if it says: a `started`
    /// at its own time, a `succeeded` its duration earlier (a quick attempt
    /// publishes no `started`; see [`crate::runtime::ANNOUNCE_AFTER`]).
    pub fn attempt_began(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            EventKind::Started => Some(self.at),
            EventKind::Succeeded { duration_ms, .. } => {
                Some(self.at - chrono::Duration::milliseconds(duration_ms as i64))
            }
            _ => None,
        }
    }

    /// The `received` event of a task: its documents and options.
    ///
    /// Both the submitter (beside the task's first message, so the task
    /// shows at once) and ingest (on every delivery, so a task published by
    /// another system with one message gets it too) publish it. Everything
    /// in it comes from what the envelope says of the task as submitted,
    /// and its id is derived from the task id, so the copies are one event
    /// to the fold, which keeps one event per id: announced or not,
    /// retried or replayed, the view is the same. (A flag in the envelope
    /// saying "already announced" would be simpler to read but would trust
    /// every producer to set it right, and a lost announcement could not
    /// be made good.)
    pub fn received(envelope: &Envelope) -> Self {
        let documents = envelope
            .documents
            .iter()
            .map(|d| DocumentInfo {
                filename: d.filename.clone(),
                sha256: d.sha256.clone(),
                size: d.size,
            })
            .collect();
        Event {
            schema: EVENT_SCHEMA,
            event_id: received_id(envelope.task_id),
            task_id: envelope.task_id,
            stage: Stage::Ingest,
            attempt: 1,
            at: envelope.submitted_at,
            kind: EventKind::Received {
                documents,
                options: envelope.options.clone(),
                external_id: envelope.external_id.clone(),
            },
            callback: None,
        }
    }

    /// Whether the notify consumer needs this event: a terminal event of a
    /// task that named a callback.
    pub fn calls_back(&self) -> bool {
        self.kind.is_terminal() && self.callback.is_some()
    }

    /// The routing key of an entry of this event alone: its kind's name
    /// when the notify consumer needs it (the notify queue binds to
    /// `completed` and `dead_lettered`), else `events`, which nothing but
    /// the events stream takes. A task without a callback thus leaves
    /// nothing in the notify queue, whether a notify consumer runs or not.
    pub fn routing_key(&self) -> &'static str {
        if self.calls_back() {
            self.kind.name()
        } else {
            "events"
        }
    }

    /// The `cancelled` event of a task's cancel marker, about `stage`. Its
    /// id is derived from the marker, so publishing it again (a cancel
    /// asked twice, or retried after a failed publish) is one event to the
    /// fold.
    pub fn cancelled(marker: &crate::store::CancelMarker, stage: Stage) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(b"tenderflow cancelled ")
            .chain_update(marker.task_id.as_bytes())
            .chain_update(marker.at.to_rfc3339().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Event {
            schema: EVENT_SCHEMA,
            event_id: Uuid::new_v8(bytes),
            task_id: marker.task_id,
            stage,
            attempt: 1,
            at: marker.at,
            kind: EventKind::Cancelled {
                by: marker.by.clone(),
                reason: marker.reason.clone(),
            },
            // A cancel is the client's own doing: it is not called back.
            callback: None,
        }
    }

    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always serialises")
    }
}

/// The id of a task's `received` event: a UUID v8 of the task id's
/// SHA-256, the same wherever and however often it is made.
fn received_id(task_id: Uuid) -> Uuid {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(b"tenderflow received ")
        .chain_update(task_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// Reads one entry of the events stream: a single event, or a batch of
/// events (a JSON array), as the stages publish them. Entries of another
/// schema version are refused with the reason.
pub fn decode_entry(body: &[u8]) -> Result<Vec<Event>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let events: Vec<Event> = if value.is_array() {
        serde_json::from_value(value).map_err(|e| e.to_string())?
    } else {
        vec![serde_json::from_value(value).map_err(|e| e.to_string())?]
    };
    if let Some(event) = events.iter().find(|e| e.schema != EVENT_SCHEMA) {
        return Err(format!(
            "event schema {} is not {EVENT_SCHEMA}",
            event.schema
        ));
    }
    Ok(events)
}

/// The body of a batch of events.
pub fn encode_batch(events: &[&Event]) -> Vec<u8> {
    serde_json::to_vec(events).expect("events always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_is_the_same_event_from_the_submitter_and_from_ingest() {
        let submitted = crate::envelope::tests::sample();
        let announced = Event::received(&submitted);
        // Ingest reads the message later, perhaps on a retry.
        let mut retried = submitted.clone();
        retried.attempt = 3;
        retried.first_failure_at = Some(Utc::now());
        let at_ingest = Event::received(&retried);
        assert_eq!(at_ingest, announced);
        assert_eq!(at_ingest.at, submitted.submitted_at);
        assert_eq!(at_ingest.stage, Stage::Ingest);
        // Each task has its own.
        let other = Envelope {
            task_id: Uuid::now_v7(),
            ..submitted.clone()
        };
        assert_ne!(Event::received(&other).event_id, announced.event_id);
        let view = crate::projector::view::fold([&announced, &at_ingest]).unwrap();
        assert_eq!(view.events, 1);
        assert_eq!(view.documents.len(), 1);
        assert_eq!(view.created_at, submitted.submitted_at);
    }

    #[test]
    fn only_terminal_events_carry_the_callback() {
        let mut envelope = crate::envelope::tests::sample();
        envelope.callback_url = Some("https://hooks.example.com/t".into());
        envelope.external_id = Some("bid-7".into());
        let callback = Callback::of(&envelope).unwrap();
        assert_eq!(callback.external_id.as_deref(), Some("bid-7"));
        let summary = ArtifactRef {
            key: "artifacts/summary/ab.json".into(),
            sha256: "ab".into(),
            size: 2,
        };
        let completed = Event::about(&envelope, EventKind::Completed { summary });
        assert_eq!(completed.callback.as_ref(), Some(&callback));
        let json: serde_json::Value = serde_json::from_slice(&completed.encode()).unwrap();
        assert_eq!(json["callback"]["url"], "https://hooks.example.com/t");
        assert_eq!(decode_entry(&completed.encode()).unwrap(), vec![completed]);
        assert!(
            Event::about(&envelope, EventKind::Started)
                .callback
                .is_none()
        );
        assert!(Event::received(&envelope).callback.is_none());
        // A body that is no envelope still names its callback.
        let loose =
            Callback::loose(br#"{"schema": 9, "task_id": "x", "callback_url": "https://h/t"}"#)
                .unwrap();
        assert_eq!(loose.url, "https://h/t");
        assert!(Callback::loose(b"{}").is_none());
        // No callback, nothing in the JSON.
        let plain = crate::envelope::tests::sample();
        let done = Event::about(
            &plain,
            EventKind::DeadLettered {
                error: ErrorInfo {
                    kind: "x".into(),
                    message: "y".into(),
                },
            },
        );
        assert!(
            !String::from_utf8(done.encode())
                .unwrap()
                .contains("callback")
        );
    }

    #[test]
    fn a_cancel_published_again_is_the_same_event() {
        let marker = crate::store::CancelMarker {
            task_id: Uuid::now_v7(),
            at: Utc::now(),
            by: "api".into(),
            reason: Some("withdrawn".into()),
        };
        let first = Event::cancelled(&marker, Stage::Parse);
        assert_eq!(Event::cancelled(&marker, Stage::Parse), first);
        assert_eq!(first.at, marker.at);
        let json: serde_json::Value = serde_json::from_slice(&first.encode()).unwrap();
        assert_eq!(json["kind"], "cancelled");
        assert_eq!(json["reason"], "withdrawn");
        // A later cancel (after a forced replay lifted the first) is another.
        let later = crate::store::CancelMarker {
            at: marker.at + chrono::Duration::seconds(1),
            ..marker
        };
        assert_ne!(
            Event::cancelled(&later, Stage::Parse).event_id,
            first.event_id
        );
    }

    #[test]
    fn events_round_trip_with_a_flat_kind_tag() {
        let event = Event {
            schema: EVENT_SCHEMA,
            event_id: Uuid::now_v7(),
            task_id: Uuid::now_v7(),
            stage: Stage::Parse,
            attempt: 2,
            at: Utc::now(),
            kind: EventKind::RetryScheduled {
                error: ErrorInfo {
                    kind: "transient".into(),
                    message: "store unavailable".into(),
                },
                due_at: Utc::now(),
            },
            callback: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
        assert_eq!(json["kind"], "retry_scheduled");
        assert_eq!(json["stage"], "parse");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(decode_entry(&event.encode()).unwrap(), vec![event.clone()]);
        let batch = encode_batch(&[&event, &event]);
        assert_eq!(decode_entry(&batch).unwrap(), vec![event.clone(), event]);
        assert!(decode_entry(b"[{\"schema\": 9}]").is_err());
        assert!(decode_entry(b"nonsense").is_err());
    }
}
