//! Submitting documents: store (or reference) them, publish the task's
//! first message and its `received` event, with confirms. And following a
//! task's events until it ends.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::broker::{self, ConfirmChannels, Outgoing, traceparent_for};
use crate::config::Settings;
use crate::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use crate::events::{Event, EventKind};
use crate::idempotency::{self, Claim, Claimed};
use crate::notify::policy::CallbackPolicy;
use crate::parse::sniff;
use crate::store::{Store, sha256_hex};
use crate::topology::Topology;

mod inputs;

pub use inputs::{DOCUMENT_EXTENSIONS, Gathered, Problem, gather};

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Over `store.max_document_bytes`.
    #[error("{filename} has {size} bytes, over the limit of {max}")]
    TooLarge {
        filename: String,
        size: u64,
        max: u64,
    },
    /// Not a type tenderflow parses (or empty, or corrupt at the container level).
    #[error("{filename}: {message}")]
    Unsupported { filename: String, message: String },
    /// The request itself is wrong (no documents, bad options).
    #[error("{0}")]
    Invalid(String),
    /// The callback URL is one tenderflow will not call (see
    /// `notify.allowed_hosts`).
    #[error("callback_url refused: {0}")]
    Callback(String),
    /// The idempotency key is held by another task, submitted with other
    /// documents, options or external id, within the window.
    #[error(
        "the idempotency key {key:?} belongs to task {first}, submitted with other documents, \
         options or external_id; use a new key for a new request"
    )]
    Conflict { key: String, first: Uuid },
    /// The store or the broker failed; try again later.
    #[error("could not submit: {0:#}")]
    Unavailable(anyhow::Error),
}

/// The client's own references of a submission, both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// Its reference for the task (a project id): 1 to 200 characters.
    pub external_id: Option<String>,
    /// Makes the submission idempotent (see [`crate::idempotency`]).
    pub idempotency_key: Option<String>,
    /// Where to POST the task's outcome when it ends; `None`:
    /// `notify.default_url`, if set. A URL the callback policy refuses
    /// fails the submission, before anything is stored, rather than the
    /// callback later.
    pub callback_url: Option<String>,
}

impl Refs {
    /// Checks both against the envelope's rules.
    pub fn check(&self) -> Result<(), SubmitError> {
        if let Some(id) = &self.external_id {
            crate::envelope::check_external_id(id).map_err(SubmitError::Invalid)?;
        }
        if let Some(key) = &self.idempotency_key {
            crate::envelope::check_idempotency_key(key).map_err(SubmitError::Invalid)?;
        }
        Ok(())
    }
}

/// What a submission led to.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new task, published.
    New(Box<Envelope>),
    /// The same request came before under its idempotency key: this is the
    /// task it started, and nothing new was published.
    Existing(Uuid),
}

impl Submitted {
    /// The task the submission answers with.
    pub fn task_id(&self) -> Uuid {
        match self {
            Submitted::New(envelope) => envelope.task_id,
            Submitted::Existing(task_id) => *task_id,
        }
    }
}

/// A document to submit: its name and bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    pub bytes: Bytes,
}

/// How each task of a bulk submission ([`Submitter::submit_all`]) is made.
#[derive(Debug, Clone)]
pub struct Bulk {
    /// The options of every task.
    pub options: TaskOptions,
    /// The references of every task (an idempotency key fits one task only).
    pub refs: Refs,
    /// Publish the files' paths rather than store their bytes.
    pub by_reference: bool,
    /// Tasks in hand at once: read, stored, published and waiting for
    /// their confirms.
    pub jobs: usize,
}

/// Publishes new tasks. Reconnects when its connection was lost.
///
/// Tasks submitted at once share its one connection, each on a confirm
/// channel of its own until its confirms are in (see
/// [`ConfirmChannels`]): a task whose ingest message the broker returned
/// is never reported submitted for another task's confirm.
pub struct Submitter {
    settings: Arc<Settings>,
    topology: Topology,
    store: Store,
    link: Mutex<Option<Link>>,
    /// Links opened so far: numbers them, so that of several tasks whose
    /// publish failed on one link only the first replaces it.
    links_opened: std::sync::atomic::AtomicU64,
}

/// The connection and confirm channels tasks are published on.
struct Link {
    number: u64,
    channels: ConfirmChannels,
}

impl Submitter {
    /// A submitter for the pipeline the settings describe. Connects lazily.
    pub fn new(settings: Arc<Settings>) -> anyhow::Result<Submitter> {
        Ok(Submitter {
            topology: Topology::from_settings(&settings)?,
            store: Store::from_settings(&settings)?,
            settings,
            link: Mutex::new(None),
            links_opened: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Checks what every task of a submission shares (its options and
    /// references, the callback against the policy) before anything is
    /// read, stored or connected: a bulk submit with a wrong option fails
    /// once, not once for each file.
    pub fn check(&self, options: &TaskOptions, refs: &Refs) -> Result<(), SubmitError> {
        check_options(options)?;
        refs.check()?;
        self.with_callback(refs.clone()).map(|_| ())
    }

    /// Opens the connection now: a command that submits many files fails
    /// once, at the start, when the broker cannot be reached, rather than
    /// once for each file.
    pub async fn connect(&self) -> anyhow::Result<()> {
        self.channels().await.map(|_| ())
    }

    /// Submits each of `tasks` (a main document then its amendments, read
    /// from disk), `bulk.jobs` at once. Each result comes once its task is
    /// published and confirmed, or has failed, in no set order: a slow
    /// file holds up no other. Every original is on disk (in a local store,
    /// synced) before its task is published, as in [`Submitter::submit_with`].
    pub fn submit_all<'a>(
        &'a self,
        tasks: Vec<Vec<PathBuf>>,
        bulk: &'a Bulk,
    ) -> impl futures_util::Stream<Item = (Vec<PathBuf>, Result<Submitted, SubmitError>)> + 'a {
        futures_util::stream::iter(tasks)
            .map(move |paths| async move {
                let submitted = self.submit_paths(&paths, bulk).await;
                (paths, submitted)
            })
            .buffer_unordered(bulk.jobs.max(1))
    }

    /// One task of files on disk: their bytes stored, or their paths
    /// published by reference.
    pub async fn submit_paths(
        &self,
        paths: &[PathBuf],
        bulk: &Bulk,
    ) -> Result<Submitted, SubmitError> {
        let options = bulk.options.clone();
        let refs = bulk.refs.clone();
        if bulk.by_reference {
            return self.submit_by_reference_with(paths, options, refs).await;
        }
        let mut uploads = Vec::with_capacity(paths.len());
        for path in paths {
            uploads.push(self.read_upload(path).await?);
        }
        self.submit_with(uploads, options, refs).await
    }

    /// The file at `path` as an upload; one over the size limit is refused
    /// before it is read.
    async fn read_upload(&self, path: &Path) -> Result<Upload, SubmitError> {
        let unreadable = |e: std::io::Error| SubmitError::Invalid(format!("cannot read it: {e}"));
        let metadata = tokio::fs::metadata(path).await.map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(SubmitError::Invalid("not a file".into()));
        }
        let max = self.settings.store.max_document_bytes;
        if metadata.len() > max {
            return Err(SubmitError::TooLarge {
                filename: file_name(path),
                size: metadata.len(),
                max,
            });
        }
        let bytes = tokio::fs::read(path).await.map_err(unreadable)?;
        Ok(Upload {
            filename: file_name(path),
            bytes: Bytes::from(bytes),
        })
    }

    /// One task of `uploads`: the first is the main document, the rest its
    /// amendments in order.
    pub async fn submit(
        &self,
        uploads: Vec<Upload>,
        options: TaskOptions,
    ) -> Result<Envelope, SubmitError> {
        match self.submit_with(uploads, options, Refs::default()).await? {
            Submitted::New(envelope) => Ok(*envelope),
            Submitted::Existing(_) => unreachable!("without a key every submission is new"),
        }
    }

    /// [`Submitter::submit`] with the client's references: under an
    /// idempotency key already used for the same request, the earlier task.
    pub async fn submit_with(
        &self,
        uploads: Vec<Upload>,
        options: TaskOptions,
        refs: Refs,
    ) -> Result<Submitted, SubmitError> {
        check_options(&options)?;
        refs.check()?;
        let refs = self.with_callback(refs)?;
        if uploads.is_empty() {
            return Err(SubmitError::Invalid(
                "a task needs at least one document".into(),
            ));
        }
        let mut documents = Vec::with_capacity(uploads.len());
        for upload in uploads {
            let media_type = self.check_upload(&upload.filename, &upload.bytes)?;
            let stored = self
                .store
                .put_original(upload.bytes)
                .await
                .map_err(|e| SubmitError::Unavailable(e.into()))?;
            documents.push(DocumentRef {
                uri: format!("store:{}", stored.key),
                sha256: stored.sha256,
                size: stored.size,
                media_type: Some(media_type.to_string()),
                filename: upload.filename,
            });
        }
        self.start(documents, options, refs).await
    }

    /// One task whose documents stay where they are, on storage the workers
    /// share; ingest checks the paths against its allowed roots.
    pub async fn submit_by_reference(
        &self,
        paths: &[PathBuf],
        options: TaskOptions,
    ) -> Result<Envelope, SubmitError> {
        match self
            .submit_by_reference_with(paths, options, Refs::default())
            .await?
        {
            Submitted::New(envelope) => Ok(*envelope),
            Submitted::Existing(_) => unreachable!("without a key every submission is new"),
        }
    }

    /// [`Submitter::submit_by_reference`] with the client's references.
    pub async fn submit_by_reference_with(
        &self,
        paths: &[PathBuf],
        options: TaskOptions,
        refs: Refs,
    ) -> Result<Submitted, SubmitError> {
        check_options(&options)?;
        refs.check()?;
        let refs = self.with_callback(refs)?;
        let mut documents = Vec::with_capacity(paths.len());
        for path in paths {
            let absolute = std::path::absolute(path)
                .map_err(|e| SubmitError::Invalid(format!("{}: {e}", path.display())))?;
            let bytes = tokio::fs::read(&absolute)
                .await
                .map_err(|e| SubmitError::Invalid(format!("{}: {e}", path.display())))?;
            let uri = url::Url::from_file_path(&absolute).map_err(|()| {
                SubmitError::Invalid(format!("{} has no file URL", path.display()))
            })?;
            documents.push(DocumentRef {
                uri: uri.to_string(),
                sha256: sha256_hex(&bytes),
                size: bytes.len() as u64,
                media_type: None,
                filename: file_name(path),
            });
        }
        if documents.is_empty() {
            return Err(SubmitError::Invalid(
                "a task needs at least one document".into(),
            ));
        }
        self.start(documents, options, refs).await
    }

    /// Publishes a new task of `documents`, after claiming its idempotency
    /// key when it has one. The claim comes first, so that of two
    /// submissions at once (on any replica) only one publishes; a claim
    /// whose task could not be published is given up, so the client's
    /// retry with the same key starts the task.
    async fn start(
        &self,
        documents: Vec<DocumentRef>,
        options: TaskOptions,
        refs: Refs,
    ) -> Result<Submitted, SubmitError> {
        let mut envelope = Envelope::new_task(documents, options);
        envelope.external_id = refs.external_id;
        envelope.idempotency_key = refs.idempotency_key;
        envelope.callback_url = refs.callback_url;
        let Some(key) = envelope.idempotency_key.clone() else {
            self.publish_task(&envelope).await?;
            return Ok(Submitted::New(Box::new(envelope)));
        };
        let mine = Claim::of(&envelope, Utc::now());
        let window = self.settings.store.idempotency_window();
        let claimed = idempotency::claim(&self.store, &key, &mine, window, mine.claimed_at)
            .await
            .map_err(|e| SubmitError::Unavailable(e.into()))?;
        match claimed {
            Claimed::Won | Claimed::Ours => {}
            Claimed::Duplicate(held) => return Ok(Submitted::Existing(held.task_id)),
            Claimed::Conflict(held) => {
                return Err(SubmitError::Conflict {
                    key,
                    first: held.task_id,
                });
            }
        }
        if let Err(err) = self.publish_task(&envelope).await {
            if let Err(release) = idempotency::release(&self.store, &key, envelope.task_id).await {
                tracing::warn!(error = %release, "could not give up the claim of an unpublished task");
            }
            return Err(err);
        }
        Ok(Submitted::New(Box::new(envelope)))
    }

    /// `refs` with the task's callback: the one asked for, else the
    /// configured default; checked against the callback policy.
    fn with_callback(&self, mut refs: Refs) -> Result<Refs, SubmitError> {
        let notify = &self.settings.notify;
        refs.callback_url = refs
            .callback_url
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .or_else(|| notify.default_url.clone());
        if let Some(url) = &refs.callback_url {
            CallbackPolicy::from_settings(notify)
                .check(url)
                .map_err(|refused| SubmitError::Callback(refused.to_string()))?;
        }
        Ok(refs)
    }

    fn check_upload(&self, filename: &str, bytes: &[u8]) -> Result<&'static str, SubmitError> {
        let max = self.settings.store.max_document_bytes;
        if bytes.len() as u64 > max {
            return Err(SubmitError::TooLarge {
                filename: filename.to_string(),
                size: bytes.len() as u64,
                max,
            });
        }
        sniff::sniff(bytes, filename).map_err(|e| SubmitError::Unsupported {
            filename: filename.to_string(),
            message: e.message,
        })
    }

    /// Publishes the task's `received` event and its ingest message, and
    /// waits for both confirms; retries once on a fresh connection.
    pub async fn publish_task(&self, envelope: &Envelope) -> Result<(), SubmitError> {
        let traceparent = traceparent_for(envelope.task_id);
        let messages = [
            Outgoing::event(
                &self.topology,
                &Event::received(envelope),
                Some(&traceparent),
            ),
            Outgoing::new(
                self.topology.work_exchange(),
                Stage::Ingest.as_str(),
                envelope.encode(),
            )
            .for_task(envelope.task_id, Some(&traceparent)),
        ];
        let mut last = None;
        for _ in 0..2 {
            let (number, channels) = self.channels().await.map_err(SubmitError::Unavailable)?;
            match channels.publish_all(&messages).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    // The tasks in flight beside this one failed on the
                    // same link, or are still waiting on it: replace it
                    // once, not once per task.
                    let mut link = self.link.lock().await;
                    if link.as_ref().is_some_and(|l| l.number == number) {
                        *link = None;
                    }
                    last = Some(err);
                }
            }
        }
        Err(SubmitError::Unavailable(
            last.expect("two attempts were made"),
        ))
    }

    /// The link's number and channels, opening a link when there is none
    /// or it was lost.
    async fn channels(&self) -> anyhow::Result<(u64, ConfirmChannels)> {
        let mut link = self.link.lock().await;
        if let Some(open) = link.as_ref()
            && open.channels.connected()
        {
            return Ok((open.number, open.channels.clone()));
        }
        let conn = Arc::new(broker::connect_once(&self.settings, "tenderflow-submit").await?);
        let channel = broker::confirm_channel(&conn).await?;
        self.topology.apply(&channel).await?;
        let channels = ConfirmChannels::new(conn, Some(channel));
        let number = self
            .links_opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *link = Some(Link {
            number,
            channels: channels.clone(),
        });
        Ok((number, channels))
    }
}

fn check_options(options: &TaskOptions) -> Result<(), SubmitError> {
    for (name, value) in [
        ("filter_model", &options.filter_model),
        ("extract_model", &options.extract_model),
    ] {
        if !matches!(value.as_str(), "rules" | "openai") {
            return Err(SubmitError::Invalid(format!(
                "{name} must be rules or openai, not {value:?}"
            )));
        }
    }
    Ok(())
}

/// The last component of a path, for people.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// How a followed task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The summary is stored.
    Completed { summary_key: String },
    /// A stage dead-lettered it.
    Failed {
        stage: Stage,
        kind: String,
        message: String,
    },
    /// Ingest found it repeats task `of` under the same idempotency key,
    /// and did nothing with it.
    Duplicate { of: Uuid },
    /// It was cancelled (`tenderflow cancel`).
    Cancelled { reason: Option<String> },
}

/// Reads task events from the events stream, from shortly before `since`.
pub struct Follower {
    _conn: Connection,
    consumer: lapin::Consumer,
    since: chrono::DateTime<chrono::Utc>,
    buffered: std::collections::VecDeque<Event>,
}

impl Follower {
    /// Starts reading the stream at `since`: events of the followed tasks
    /// stamped earlier are ignored (so a dead letter from before a replay does
    /// not count as the replay's outcome). The stream is read from a few
    /// seconds earlier, since its timestamp offsets are coarse.
    pub async fn start(
        settings: &Settings,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Follower> {
        let (conn, channel, topology) = broker::open(settings, "tenderflow-follow").await?;
        channel.basic_qos(1000, BasicQosOptions::default()).await?;
        let mut arguments = FieldTable::default();
        let start = (since.timestamp() - 5).max(0) as u64;
        arguments.insert("x-stream-offset".into(), AMQPValue::Timestamp(start));
        let consumer = channel
            .basic_consume(
                topology.events_queue().as_str().into(),
                format!("tenderflow-follow-{}", Uuid::now_v7())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .context("reading the events stream")?;
        Ok(Follower {
            _conn: conn,
            consumer,
            since,
            buffered: std::collections::VecDeque::new(),
        })
    }

    /// The next event stamped at or after `since`; entries of the stream
    /// that are not events are skipped.
    pub async fn next_event(&mut self) -> anyhow::Result<Event> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                if event.at >= self.since {
                    return Ok(event);
                }
                continue;
            }
            let delivery = self
                .consumer
                .next()
                .await
                .context("the events stream closed")?
                .context("reading the events stream")?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            if let Ok(events) = crate::events::decode_entry(&delivery.data) {
                self.buffered.extend(events);
            }
        }
    }

    /// Follows `tasks` until each has completed, failed or been cancelled
    /// (a cancel outranks a completion or failure seen with it), calling `on_event`
    /// for each of their events.
    pub async fn wait(
        mut self,
        tasks: &[Uuid],
        mut on_event: impl FnMut(&Event),
    ) -> anyhow::Result<BTreeMap<Uuid, Outcome>> {
        let wanted: HashSet<Uuid> = tasks.iter().copied().collect();
        let mut outcomes = BTreeMap::new();
        // An event can be in the stream twice (ingest states `received`
        // again, an outcome published again): each is told once, as the
        // fold takes it once.
        let mut told: HashSet<Uuid> = HashSet::new();
        while outcomes.len() < wanted.len() {
            let event = self.next_event().await?;
            if !wanted.contains(&event.task_id) || !told.insert(event.event_id) {
                continue;
            }
            on_event(&event);
            let cancelled = matches!(
                outcomes.get(&event.task_id),
                Some(Outcome::Cancelled { .. })
            );
            match &event.kind {
                EventKind::Cancelled { reason, .. } => {
                    outcomes.insert(
                        event.task_id,
                        Outcome::Cancelled {
                            reason: reason.clone(),
                        },
                    );
                }
                _ if cancelled => {}
                EventKind::Completed { summary } => {
                    outcomes.insert(
                        event.task_id,
                        Outcome::Completed {
                            summary_key: summary.key.clone(),
                        },
                    );
                }
                EventKind::Duplicate { of } => {
                    outcomes.insert(event.task_id, Outcome::Duplicate { of: *of });
                }
                EventKind::DeadLettered { error } => {
                    outcomes.insert(
                        event.task_id,
                        Outcome::Failed {
                            stage: event.stage,
                            kind: error.kind.clone(),
                            message: error.message.clone(),
                        },
                    );
                }
                _ => {}
            }
        }
        Ok(outcomes)
    }
}
