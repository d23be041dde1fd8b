//! The message that travels between stages.
//!
//! Messages carry references and small results, never document bytes. The
//! JSON layout is versioned by `schema`; a message of another version is
//! refused (dead-lettered), never guessed at.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::package::Role;
use crate::summary::SummaryDocument;

/// Version of the envelope layout this build reads and writes.
pub const ENVELOPE_SCHEMA: u32 = 1;

/// A pipeline stage.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Ingest,
    Parse,
    Filter,
    Extract,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Ingest, Stage::Parse, Stage::Filter, Stage::Extract];

    /// The stage's name as used in queue names, config and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Parse => "parse",
            Stage::Filter => "filter",
            Stage::Extract => "extract",
        }
    }

    /// The stage after this one, or `None` for the last.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Ingest => Some(Stage::Parse),
            Stage::Parse => Some(Stage::Filter),
            Stage::Filter => Some(Stage::Extract),
            Stage::Extract => None,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| {
                format!("unknown stage {s:?} (expected ingest, parse, filter or extract)")
            })
    }
}

/// A reference to a document the task is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DocumentRef {
    /// Where the bytes are: `file:///abs/path`, a percent-encoded file URL
    /// on storage the workers share, beneath one of `store.allowed_roots`;
    /// or `store:originals/<sha256>` for a document already in the
    /// document store. Any other scheme is refused (`unsupported_uri`).
    pub uri: String,
    /// Hex SHA-256 of the bytes (either case), as the submitter computed
    /// it; ingest checks it (`checksum_mismatch`).
    pub sha256: String,
    /// Size in bytes, as the submitter saw it; ingest checks it
    /// (`size_mismatch`).
    pub size: u64,
    /// Media type; the submitter's guess until ingest sniffs the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The file's name, for people; the type is read from the bytes.
    pub filename: String,
}

/// A reference to an artifact in the document store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactRef {
    /// Object key in the store (content addressed).
    pub key: String,
    /// Hex SHA-256 of the artifact bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One file of the task and what ingest took it as: a submitted document,
/// or a file unpacked from a submitted zip package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFile {
    /// The file's name: as submitted, or its path inside the package.
    pub name: String,
    /// What it was taken as.
    pub role: Role,
    /// The submitted package it came out of, for an unpacked file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Its stored bytes (for a nested package, the package's).
    pub stored: ArtifactRef,
    /// Its media type, when tenderflow reads the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Why it was taken as its role, for people.
    pub reason: String,
}

impl TaskFile {
    /// The document list of the summary: each file with its role and, for
    /// the main document and the amendments, the number their evidence
    /// gives them.
    pub fn summary_documents(files: &[TaskFile]) -> Vec<SummaryDocument> {
        let mut extracted = 0;
        files
            .iter()
            .map(|file| {
                let document = matches!(file.role, Role::Main | Role::Amendment).then(|| {
                    extracted += 1;
                    extracted - 1
                });
                SummaryDocument {
                    name: file.name.clone(),
                    role: file.role,
                    document,
                    sha256: file.stored.sha256.clone(),
                    reason: file.reason.clone(),
                }
            })
            .collect()
    }
}

/// The artifacts produced so far. `originals`, `parsed` and `classified`
/// run parallel to each other: the main document, then its amendments in
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Artifacts {
    /// Each document's stored original (ingest): the submitted documents,
    /// or the main document and amendments taken out of a package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub originals: Vec<ArtifactRef>,
    /// Every file of the task with its role (ingest): the main document and
    /// the amendments in the order of `originals`, then attachments and
    /// packages. Empty in messages written before packages existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<TaskFile>,
    /// Each document's parsed form (parse).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parsed: Vec<ArtifactRef>,
    /// Each document's classified chunks (filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classified: Vec<ArtifactRef>,
    /// The task's summary (extract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ArtifactRef>,
}

/// Per-task options; each defaults to `rules`, the built-in backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskOptions {
    /// Backend of the filter stage: `rules` or `openai`.
    #[serde(default = "default_model")]
    pub filter_model: String,
    /// Backend of the extract stage: `rules` or `openai`.
    #[serde(default = "default_model")]
    pub extract_model: String,
}

fn default_model() -> String {
    "rules".to_string()
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            filter_model: default_model(),
            extract_model: default_model(),
        }
    }
}

/// The message body every stage consumes, and the one message another
/// system publishes to start a task (routing key `ingest` on the work
/// exchange). Only `schema`, `task_id` and `documents` are required; every
/// other field has a default, so an outside producer writes just those.
/// Unknown fields are refused: a misspelt field is an error, not a silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tenderflow work envelope, schema 1")]
pub struct Envelope {
    /// Layout version: 1. A message of another version is dead-lettered
    /// (`invalid_message`), never guessed at.
    #[schemars(extend("const" = ENVELOPE_SCHEMA))]
    pub schema: u32,
    /// The task: a UUID chosen by the producer, unique per task (v7
    /// preferred, as tenderflow makes them; v4 is accepted).
    pub task_id: Uuid,
    /// The stage this message is for; a new task's is `ingest`.
    #[serde(default = "first_stage")]
    pub stage: Stage,
    /// 1 for the first try at this stage, counting up through retries.
    #[serde(default = "first_attempt")]
    #[schemars(range(min = 1))]
    pub attempt: u32,
    /// What was submitted: the main document first, then its amendments in
    /// order; or one zip package, which ingest unpacks. At least one.
    #[schemars(length(min = 1))]
    pub documents: Vec<DocumentRef>,
    /// What earlier stages produced; a new task has none (omit it).
    #[serde(default)]
    pub artifacts: Artifacts,
    /// Per-task options; omitted, the rule-based backends.
    #[serde(default)]
    pub options: TaskOptions,
    /// When the task was submitted (RFC 3339); omitted, the time ingest
    /// first reads the message.
    #[serde(default = "Utc::now")]
    // The default is the reading time, not a constant the schema can show.
    #[schemars(transform = without_default)]
    pub submitted_at: DateTime<Utc>,
    /// When this stage first failed for this task, while retrying (RFC
    /// 3339; set by tenderflow, omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<DateTime<Utc>>,
    /// The submitter's own reference for the task (a project id, say): 1
    /// to 200 characters, no control characters. Shown in the task view;
    /// `GET /v1/tasks?external_id=` finds its tasks. Not unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub external_id: Option<String>,
    /// Makes submitting the task idempotent: 1 to 255 visible ASCII
    /// characters. Ingest starts the first task under a key; another task
    /// with the same key and the same documents, options and external id
    /// within `store.idempotency_window_ms` is acknowledged without work (its
    /// view ends `duplicate`, naming the first task); one with other
    /// documents is dead-lettered (`idempotency_conflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[\x21-\x7e]+$"))]
    pub idempotency_key: Option<String>,
    /// Where to POST the task's outcome when it completes or fails for good
    /// (an `https` URL on a host of `notify.allowed_hosts`; see the README's
    /// "Completion callbacks"). Carried unchanged through the stages into
    /// the terminal events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// Longest `external_id`, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;
/// Longest idempotency key, in bytes (visible ASCII).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Checks a client's reference: 1 to [`MAX_EXTERNAL_ID_CHARS`]
/// characters, none of them a control character (they would break logs
/// and terminals, and no real project id has one).
pub fn check_external_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 {
        return Err("external_id is empty; leave it out instead".into());
    }
    if chars > MAX_EXTERNAL_ID_CHARS {
        return Err(format!(
            "external_id has {chars} characters, over the limit of {MAX_EXTERNAL_ID_CHARS}"
        ));
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!(
            "external_id holds the control character {:?}; use printable text",
            c
        ));
    }
    Ok(())
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] visible
/// ASCII characters (no spaces), what fits an HTTP header as it is and
/// what clients make keys of (UUIDs, hashes, ids joined by dashes).
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the idempotency key is empty".into());
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(format!(
            "the idempotency key has {} bytes, over the limit of {MAX_IDEMPOTENCY_KEY_BYTES}",
            key.len()
        ));
    }
    if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(
            "the idempotency key must be visible ASCII characters (no spaces or control characters)"
                .into(),
        );
    }
    Ok(())
}

fn first_stage() -> Stage {
    Stage::Ingest
}

fn first_attempt() -> u32 {
    1
}

fn without_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// Why a message body could not be read as an [`Envelope`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not valid JSON: {0}")]
    Json(String),
    #[error("message has schema version {found}, this build reads {ENVELOPE_SCHEMA}")]
    Schema { found: u64 },
    #[error("message is not a valid envelope: {0}")]
    Shape(String),
    #[error("message is for stage {found}, but arrived on the {expected} queue")]
    WrongStage { expected: Stage, found: Stage },
    #[error("message is invalid: {0}")]
    Invalid(String),
}

impl Envelope {
    /// A new task's first message, for ingest.
    pub fn new_task(documents: Vec<DocumentRef>, options: TaskOptions) -> Self {
        Envelope {
            schema: ENVELOPE_SCHEMA,
            task_id: Uuid::now_v7(),
            stage: Stage::Ingest,
            attempt: 1,
            documents,
            artifacts: Artifacts::default(),
            options,
            submitted_at: Utc::now(),
            first_failure_at: None,
            external_id: None,
            idempotency_key: None,
            callback_url: None,
        }
    }

    /// Reads a message body meant for `expected`, checking the version first so
    /// that a message of another version gets a clear reason.
    pub fn decode(body: &[u8], expected: Stage) -> Result<Self, DecodeError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
        match value.get("schema").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(ENVELOPE_SCHEMA) => {}
            Some(found) => return Err(DecodeError::Schema { found }),
            None => return Err(DecodeError::Shape("missing field `schema`".into())),
        }
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| DecodeError::Shape(e.to_string()))?;
        if envelope.stage != expected {
            return Err(DecodeError::WrongStage {
                expected,
                found: envelope.stage,
            });
        }
        if envelope.documents.is_empty() {
            return Err(DecodeError::Invalid("the task has no documents".into()));
        }
        if envelope.attempt == 0 {
            return Err(DecodeError::Invalid("attempt must be 1 or more".into()));
        }
        if let Some(id) = &envelope.external_id {
            check_external_id(id).map_err(DecodeError::Invalid)?;
        }
        if let Some(key) = &envelope.idempotency_key {
            check_idempotency_key(key).map_err(DecodeError::Invalid)?;
        }
        Ok(envelope)
    }

    /// This message as it would be for `stage`, an earlier stage or its
    /// own, on a first attempt: the artifacts of `stage` and after are
    /// dropped, so they are made again (a replay from an earlier stage).
    pub fn rewound_to(&self, stage: Stage) -> Envelope {
        let mut fresh = self.clone();
        fresh.stage = stage;
        fresh.attempt = 1;
        fresh.first_failure_at = None;
        let artifacts = &mut fresh.artifacts;
        if stage <= Stage::Extract {
            artifacts.summary = None;
        }
        if stage <= Stage::Filter {
            artifacts.classified.clear();
        }
        if stage <= Stage::Parse {
            artifacts.parsed.clear();
        }
        if stage <= Stage::Ingest {
            artifacts.originals.clear();
            artifacts.files.clear();
        }
        fresh
    }

    /// The JSON body of this message.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serialises")
    }

    /// The names of the documents to parse, parallel to
    /// `artifacts.originals`: from `artifacts.files` once ingest has sorted
    /// them, else (a message of an older build) the submitted names.
    pub fn document_names(&self) -> Vec<&str> {
        if self.artifacts.files.is_empty() {
            return self.documents.iter().map(|d| d.filename.as_str()).collect();
        }
        self.artifacts
            .files
            .iter()
            .filter(|f| matches!(f.role, Role::Main | Role::Amendment))
            .map(|f| f.name.as_str())
            .collect()
    }

    /// This task's message for the next stage, with the artifacts so far.
    pub fn advance(&self, next: Stage, artifacts: Artifacts) -> Envelope {
        Envelope {
            stage: next,
            attempt: 1,
            artifacts,
            first_failure_at: None,
            ..self.clone()
        }
    }
}

/// The `task_id` of a body that is not a valid envelope, when it has one:
/// so that a task hears of a message about it that could not be read.
pub fn loose_task_id(body: &[u8]) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("task_id")?.as_str()?.parse().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new task of one stored Markdown document.
    pub(crate) fn sample() -> Envelope {
        Envelope::new_task(
            vec![DocumentRef {
                uri: "store:originals/ab".into(),
                sha256: "ab".into(),
                size: 3,
                media_type: None,
                filename: "a.md".into(),
            }],
            TaskOptions::default(),
        )
    }

    #[test]
    fn a_message_without_files_still_decodes_and_names_its_documents() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["artifacts"] = serde_json::json!({"originals": [
            {"key": "originals/ab", "sha256": "ab", "size": 3}
        ]});
        let old = Envelope::decode(value.to_string().as_bytes(), Stage::Ingest).unwrap();
        assert!(old.artifacts.files.is_empty());
        assert_eq!(old.document_names(), vec!["a.md"]);
    }

    #[test]
    fn document_names_follow_the_files_main_and_amendments() {
        let stored = ArtifactRef {
            key: "originals/cd".into(),
            sha256: "cd".into(),
            size: 1,
        };
        let file = |name: &str, role| TaskFile {
            name: name.into(),
            role,
            package: Some("pkg.zip".into()),
            stored: stored.clone(),
            media_type: None,
            reason: String::new(),
        };
        let mut env = sample();
        env.artifacts.files = vec![
            file("招标文件.txt", Role::Main),
            file("补遗1.txt", Role::Amendment),
            file("图纸.dwg", Role::Attachment),
        ];
        assert_eq!(env.document_names(), vec!["招标文件.txt", "补遗1.txt"]);
        assert_eq!(Envelope::decode(&env.encode(), Stage::Ingest).unwrap(), env);
    }

    #[test]
    fn rewinding_drops_what_the_stage_and_later_ones_make() {
        let art = |key: &str| ArtifactRef {
            key: key.into(),
            sha256: key.into(),
            size: 1,
        };
        let mut env = sample();
        env.stage = Stage::Extract;
        env.attempt = 4;
        env.first_failure_at = Some(Utc::now());
        env.artifacts.originals = vec![art("o")];
        env.artifacts.parsed = vec![art("p")];
        env.artifacts.classified = vec![art("c")];
        let filter = env.rewound_to(Stage::Filter);
        assert_eq!(filter.stage, Stage::Filter);
        assert_eq!(filter.attempt, 1);
        assert!(filter.first_failure_at.is_none());
        assert_eq!(filter.artifacts.parsed, vec![art("p")]);
        assert!(filter.artifacts.classified.is_empty());
        let parse = env.rewound_to(Stage::Parse);
        assert_eq!(parse.artifacts.originals, vec![art("o")]);
        assert!(parse.artifacts.parsed.is_empty());
        let ingest = env.rewound_to(Stage::Ingest);
        assert!(ingest.artifacts.originals.is_empty());
        assert_eq!(ingest.documents, env.documents);
        // Its own stage keeps every artifact before it.
        assert_eq!(
            env.rewound_to(Stage::Extract).artifacts.classified,
            vec![art("c")]
        );
    }

    #[test]
    fn an_outside_producer_writes_only_the_required_fields() {
        // As the README's example: a UUID v4, a file by reference, and
        // nothing tenderflow can fill in itself.
        let body = br#"{
            "schema": 1,
            "task_id": "3f0b6c1e-8a44-4c2b-9d6e-2f1a7c5b9e10",
            "documents": [{
                "uri": "file:///srv/tenders/notice.md",
                "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                "size": 3,
                "filename": "notice.md"
            }]
        }"#;
        let before = Utc::now();
        let env = Envelope::decode(body, Stage::Ingest).unwrap();
        assert_eq!(env.task_id.get_version_num(), 4);
        assert_eq!(env.stage, Stage::Ingest);
        assert_eq!(env.attempt, 1);
        assert_eq!(env.options, TaskOptions::default());
        assert_eq!(env.artifacts, Artifacts::default());
        assert!(env.submitted_at >= before && env.submitted_at <= Utc::now());
        assert!(env.first_failure_at.is_none());
        // Once read, the time is the message's: a retry keeps it.
        let again = Envelope::decode(&env.encode(), Stage::Ingest).unwrap();
        assert_eq!(again.submitted_at, env.submitted_at);
    }

    #[test]
    fn a_misspelt_field_is_refused_by_name() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["submited_at"] = "2026-01-01T00:00:00Z".into();
        let err = Envelope::decode(value.to_string().as_bytes(), Stage::Ingest).unwrap_err();
        assert!(err.to_string().contains("submited_at"), "{err}");
    }

    #[test]
    fn client_references_are_checked() {
        assert!(check_external_id("proj-42").is_ok());
        assert!(check_external_id(&"项".repeat(MAX_EXTERNAL_ID_CHARS)).is_ok());
        let long = check_external_id(&"项".repeat(MAX_EXTERNAL_ID_CHARS + 1)).unwrap_err();
        assert!(long.contains("201 characters"), "{long}");
        assert!(check_external_id("").is_err());
        assert!(check_external_id("a\nb").unwrap_err().contains("control"));
        assert!(check_idempotency_key("0b7e-4f1a:retry/1").is_ok());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES)).is_ok());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1)).is_err());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key("键").is_err());
    }

    #[test]
    fn an_envelope_with_a_bad_reference_is_invalid() {
        let mut env = sample();
        env.external_id = Some("x".repeat(MAX_EXTERNAL_ID_CHARS + 1));
        let err = Envelope::decode(&env.encode(), Stage::Ingest).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid(_)), "{err}");
        let mut env = sample();
        env.idempotency_key = Some("tab\tkey".into());
        let err = Envelope::decode(&env.encode(), Stage::Ingest).unwrap_err();
        assert!(matches!(err, DecodeError::Invalid(_)), "{err}");
        let mut env = sample();
        env.external_id = Some("项目-7".into());
        env.idempotency_key = Some("k-1".into());
        assert_eq!(Envelope::decode(&env.encode(), Stage::Ingest).unwrap(), env);
    }

    #[test]
    fn round_trips() {
        let env = sample();
        assert_eq!(Envelope::decode(&env.encode(), Stage::Ingest).unwrap(), env);
    }

    #[test]
    fn refuses_other_schema_versions_with_a_reason() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["schema"] = 2.into();
        let err = Envelope::decode(value.to_string().as_bytes(), Stage::Ingest).unwrap_err();
        assert!(matches!(err, DecodeError::Schema { found: 2 }), "{err}");
    }

    #[test]
    fn refuses_garbage_missing_fields_and_wrong_stage() {
        assert!(matches!(
            Envelope::decode(b"\xff\x00", Stage::Ingest),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Envelope::decode(br#"{"schema":1}"#, Stage::Ingest),
            Err(DecodeError::Shape(_))
        ));
        assert!(matches!(
            Envelope::decode(&sample().encode(), Stage::Parse),
            Err(DecodeError::WrongStage { .. })
        ));
    }
}
