//! The document store: originals and artifacts, content addressed.
//!
//! Keys are derived from the SHA-256 of the bytes, so writing the same
//! artifact twice (a redelivered message) changes nothing.
//!
//! The default store is a local folder, read and written directly: a small
//! object (most artifacts) costs a few system calls on the calling task.
//! Through `object_store`'s local backend every read and write went to the
//! blocking pool (a read twice), and those hand-offs, with the file calls,
//! showed as a fifth of the pipeline's CPU.
//! `store.url` names any other store `object_store` knows.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::envelope::ArtifactRef;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing is stored under the key.
    #[error("nothing is stored at {0}")]
    NotFound(String),
    /// The store failed; trying again later may work.
    #[error("document store error: {0}")]
    Unavailable(String),
    /// The store refused the credentials (S3's 401 or 403): trying again
    /// changes nothing until an operator fixes the keys or the policy.
    #[error("the document store refused access: {0}")]
    Denied(String),
}

/// A remote store's error, classified: a refusal of the credentials is
/// not a passing failure, and must not be retried as one.
fn remote_error(err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { path, .. } => StoreError::NotFound(path),
        e @ (object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }) => StoreError::Denied(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

/// The document store.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    /// A local folder (`store.root`).
    Folder(Arc<Folder>),
    /// Whatever `store.url` names.
    Remote(Arc<dyn ObjectStore>),
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    /// The store the settings name: `store.url` if set, else the folder
    /// `store.root` (created if missing).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Store> {
        let backend = match &settings.store.url {
            Some(url) => {
                let url = url::Url::parse(url)
                    .with_context(|| format!("store.url {url:?} is not a URL"))?;
                let (store, prefix) = if url.scheme() == "s3" {
                    s3(&url, &settings.store)?
                } else {
                    let options = std::env::vars()
                        .filter(|(k, _)| k.starts_with("AWS_"))
                        .map(|(k, v)| (k.to_ascii_lowercase(), v));
                    object_store::parse_url_opts(&url, options)
                        .with_context(|| format!("opening store {url}"))?
                };
                Backend::Remote(Arc::new(object_store::prefix::PrefixStore::new(
                    store, prefix,
                )))
            }
            None => {
                let root = &settings.store.root;
                std::fs::create_dir_all(root)
                    .with_context(|| format!("creating store folder {}", root.display()))?;
                let root = std::fs::canonicalize(root)
                    .with_context(|| format!("opening store folder {}", root.display()))?;
                Backend::Folder(Arc::new(Folder::open(root)?))
            }
        };
        Ok(Store { backend })
    }

    /// Looks once at the store and fails when it refuses the credentials:
    /// what a command checks before it starts anything, so that a wrong
    /// key is a clear error at start-up rather than every task dead-lettered
    /// as `store_denied`. A store that is merely unreachable is no error
    /// here (the stages retry it), and a local folder has nothing to check.
    pub async fn check_access(&self) -> anyhow::Result<()> {
        let Backend::Remote(_) = &self.backend else {
            return Ok(());
        };
        match self.is_cancelled(uuid::Uuid::nil()).await {
            Ok(_) => Ok(()),
            Err(StoreError::Denied(message)) => Err(anyhow::anyhow!(
                "the document store refused the credentials (check store.access_key_id and \
                 store.secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and \
                 the policy on the bucket): {message}"
            )),
            Err(err) => {
                tracing::warn!(error = %err, "document store unreachable at start-up");
                Ok(())
            }
        }
    }

    /// Stores a document's original bytes under `originals/<sha256>`, unless
    /// they are there already (originals can be large: a look first is
    /// cheaper than writing them again). An original is the only copy of
    /// what a user handed in, so in a local folder it is on disk (synced)
    /// before this returns, as the broker's persistent messages are before
    /// it confirms them.
    ///
    /// Writes at once share their folder's sync: each file is synced on its
    /// own, and one sync of `originals/` then covers every file renamed into
    /// it before that sync began (see [`FolderSyncs`]), so a bulk submit
    /// pays one folder sync per batch rather than one per document.
    pub async fn put_original(&self, bytes: Bytes) -> Result<ArtifactRef, StoreError> {
        let sha256 = sha256_hex(&bytes);
        let key = format!("originals/{sha256}");
        if self.exists(&key).await {
            let size = bytes.len() as u64;
            // Another write of the same bytes may have renamed the file in
            // and not yet synced the folder: the caller publishes once this
            // returns, so the name must be on disk first. Shared with the
            // other writes, this costs a sync only when no other is due.
            if let Backend::Folder(folder) = &self.backend {
                let path = folder.path(&key)?;
                let folder = Arc::clone(folder);
                blocking(move || folder.sync_folder_of(&path))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("syncing {key}: {e}")))?;
            }
            return Ok(ArtifactRef { key, sha256, size });
        }
        self.put(key, sha256, bytes, Durability::Synced).await
    }

    /// Stores a JSON artifact of `kind` (`parsed`, `classified`, `summary`).
    /// Artifacts are derived, so they are left to the page cache: one lost
    /// in a power cut is made again by replaying the stage that made it.
    pub async fn put_json<T: serde::Serialize>(
        &self,
        kind: &str,
        value: &T,
    ) -> Result<ArtifactRef, StoreError> {
        let bytes = Bytes::from(
            serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        let sha256 = sha256_hex(&bytes);
        let key = format!("artifacts/{kind}/{sha256}.json");
        self.put(key, sha256, bytes, Durability::Cached).await
    }

    async fn put(
        &self,
        key: String,
        sha256: String,
        bytes: Bytes,
        durability: Durability,
    ) -> Result<ArtifactRef, StoreError> {
        let size = bytes.len() as u64;
        // Content addressed: writing again replaces the bytes with the same
        // bytes, atomically, so a redelivered stage needs no look first (a
        // look would cost every write a round trip to the store).
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(&key)?;
                let folder = Arc::clone(folder);
                let write = move || folder.write(&path, &bytes, durability);
                // A sync waits for the disk: never on the calling task.
                if size <= INLINE_MAX && durability == Durability::Cached {
                    write()
                } else {
                    blocking(write).await
                }
                .map_err(|e| StoreError::Unavailable(format!("writing {key}: {e}")))?;
            }
            Backend::Remote(inner) if size > MULTIPART_PART as u64 => {
                put_in_parts(inner.as_ref(), &key, bytes).await?;
            }
            Backend::Remote(inner) => {
                inner
                    .put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes))
                    .await
                    .map_err(remote_error)?;
            }
        }
        Ok(ArtifactRef { key, sha256, size })
    }

    /// Whether something is stored at `key` (an error counts as no).
    async fn exists(&self, key: &str) -> bool {
        match &self.backend {
            Backend::Folder(folder) => folder.path(key).is_ok_and(|path| path.is_file()),
            Backend::Remote(inner) => inner.head(&Path::from(key)).await.is_ok(),
        }
    }

    /// The bytes at `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(key)?;
                let file = match std::fs::File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::NotFound(key.to_string()));
                    }
                    Err(e) => return Err(StoreError::Unavailable(format!("reading {key}: {e}"))),
                };
                let size = file.metadata().map_or(u64::MAX, |m| m.len());
                let read = move || -> std::io::Result<Bytes> {
                    let mut file = file;
                    let mut bytes = Vec::new();
                    file.read_to_end(&mut bytes)?;
                    Ok(Bytes::from(bytes))
                };
                if size <= INLINE_MAX {
                    read()
                } else {
                    blocking(read).await
                }
                .map_err(|e| StoreError::Unavailable(format!("reading {key}: {e}")))
            }
            Backend::Remote(inner) => match inner.get(&Path::from(key)).await {
                Ok(result) => result.bytes().await.map_err(remote_error),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(StoreError::NotFound(key.to_string()))
                }
                Err(e) => Err(remote_error(e)),
            },
        }
    }

    /// The artifact's bytes, checked against its recorded SHA-256.
    pub async fn get_artifact(&self, artifact: &ArtifactRef) -> Result<Bytes, StoreError> {
        let bytes = self.get(&artifact.key).await?;
        if sha256_hex(&bytes) != artifact.sha256 {
            return Err(StoreError::Unavailable(format!(
                "{} does not match its recorded SHA-256",
                artifact.key
            )));
        }
        Ok(bytes)
    }

    /// A JSON artifact, read back. A large one is checked and decoded on
    /// the blocking pool: a parsed document of many pages takes
    /// milliseconds of CPU that would hold up the API and the projector on
    /// the runtime's threads.
    pub async fn get_json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        artifact: &ArtifactRef,
    ) -> Result<T, StoreError> {
        let bytes = self.get(&artifact.key).await?;
        let decode = {
            let artifact = artifact.clone();
            move || {
                if sha256_hex(&bytes) != artifact.sha256 {
                    return Err(StoreError::Unavailable(format!(
                        "{} does not match its recorded SHA-256",
                        artifact.key
                    )));
                }
                serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "{} is not the expected JSON: {e}",
                        artifact.key
                    ))
                })
            }
        };
        if artifact.size <= INLINE_MAX {
            return decode();
        }
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// [`Store::put_json`] of a value it may keep. One made from at most
    /// [`INLINE_MAX`] bytes (`made_from`: the size of what it was computed
    /// from) is encoded and hashed on the calling task, like a small
    /// object's write: microseconds, where the hand-over to the blocking
    /// pool and back costs more than that on two cores. A larger one is
    /// encoded and hashed on the blocking pool, off the runtime's threads.
    pub async fn put_json_owned<T: serde::Serialize + Send + 'static>(
        &self,
        kind: &str,
        value: T,
        made_from: u64,
    ) -> Result<ArtifactRef, StoreError> {
        let encode = move || {
            serde_json::to_vec(&value).map(|bytes| {
                let sha256 = sha256_hex(&bytes);
                (Bytes::from(bytes), sha256)
            })
        };
        let encoded = if made_from <= INLINE_MAX {
            encode()
        } else {
            tokio::task::spawn_blocking(encode)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
        };
        let (bytes, sha256) = encoded.map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let key = format!("artifacts/{kind}/{sha256}.json");
        self.put(key, sha256, bytes, Durability::Cached).await
    }
}

/// Small records that are written once and never overwritten: the claims
/// of idempotency keys ([`crate::idempotency`]). Unlike artifacts, their
/// keys are not content addressed, so "first writer wins" must be the
/// store's, not ours: across API replicas only the store sees every write.
impl Store {
    /// Writes `bytes` at `key` only if nothing is there: `Ok(true)` when
    /// this write made it, `Ok(false)` when the key was already taken. In
    /// a folder the bytes are staged, synced and hard-linked into place (a
    /// link fails when the name exists, and a reader never sees a part);
    /// on S3 a put with `If-None-Match: *`.
    pub async fn create_new(&self, key: &str, bytes: Bytes) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(key)?;
                let folder = Arc::clone(folder);
                blocking(move || folder.create_new(&path, &bytes))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("writing {key}: {e}")))
            }
            Backend::Remote(inner) => {
                let options = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                match inner
                    .put_opts(&Path::from(key), PutPayload::from_bytes(bytes), options)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(remote_error(e)),
                }
            }
        }
    }

    /// The keys directly beneath the folder `prefix` (no trailing slash),
    /// in no particular order; none when it does not exist.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Folder(folder) => {
                let dir = folder.path(prefix)?;
                let folder_key = prefix.to_string();
                blocking(move || {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                        Err(e) => return Err(e),
                    };
                    let mut keys = Vec::new();
                    for entry in entries {
                        let name = entry?.file_name();
                        keys.push(format!("{folder_key}/{}", name.to_string_lossy()));
                    }
                    Ok(keys)
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("listing {}: {e}", prefix)))
            }
            Backend::Remote(inner) => {
                use futures_util::TryStreamExt as _;
                let listed: Vec<object_store::ObjectMeta> = inner
                    .list(Some(&Path::from(prefix)))
                    .try_collect()
                    .await
                    .map_err(remote_error)?;
                Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
            }
        }
    }

    /// Deletes `key`; nothing there is no error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(key)?;
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(StoreError::Unavailable(format!("deleting {key}: {e}")))
                    }
                    _ => Ok(()),
                }
            }
            Backend::Remote(inner) => match inner.delete(&Path::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(remote_error(e)),
            },
        }
    }
}

/// A task's cancellation as the store keeps it, at `cancelled/<task_id>`:
/// the one place every stage worker can look without the projector's
/// database (workers are separate processes, often on other machines, and
/// share only the broker and the store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CancelMarker {
    /// The task.
    pub task_id: uuid::Uuid,
    /// When it was cancelled, by the API's clock.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who asked: the API records where the request came from.
    pub by: String,
    /// Why, as the caller said, if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Store {
    fn cancel_key(task_id: uuid::Uuid) -> String {
        format!("cancelled/{task_id}")
    }

    /// The task's cancel marker, if it is cancelled. A marker that is not
    /// one (cut short by hand, say) still says the task is cancelled: a
    /// worker must not run a task someone meant to stop.
    pub async fn cancel_marker(
        &self,
        task_id: uuid::Uuid,
    ) -> Result<Option<CancelMarker>, StoreError> {
        let key = Self::cancel_key(task_id);
        match self.get(&key).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(%task_id, error = %e, "unreadable cancel marker; the task counts as cancelled");
                CancelMarker {
                    task_id,
                    at: chrono::DateTime::UNIX_EPOCH,
                    by: "unknown".into(),
                    reason: Some(format!("unreadable marker: {e}")),
                }
            }))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the task is cancelled: what a stage asks before every
    /// delivery. On a local folder one `stat` of a missing file (a few
    /// microseconds, no read); on S3 one HEAD request.
    pub async fn is_cancelled(&self, task_id: uuid::Uuid) -> Result<bool, StoreError> {
        let key = Self::cancel_key(task_id);
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(&key)?;
                match std::fs::metadata(&path) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(StoreError::Unavailable(format!("looking at {key}: {e}"))),
                }
            }
            Backend::Remote(inner) => match inner.head(&Path::from(key.as_str())).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(remote_error(e)),
            },
        }
    }

    /// Writes the task's cancel marker, synced (a cancel must survive a
    /// power cut as a submitted original does). Callers keep the first
    /// marker of a task: see the API's cancel, which reads before it writes.
    pub async fn put_cancel_marker(&self, marker: &CancelMarker) -> Result<(), StoreError> {
        let bytes = Bytes::from(
            serde_json::to_vec(marker).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        let sha256 = sha256_hex(&bytes);
        self.put(
            Self::cancel_key(marker.task_id),
            sha256,
            bytes,
            Durability::Synced,
        )
        .await
        .map(|_| ())
    }

    /// Removes the task's cancel marker (a forced replay); no marker is
    /// no error.
    pub async fn remove_cancel_marker(&self, task_id: uuid::Uuid) -> Result<(), StoreError> {
        let key = Self::cancel_key(task_id);
        match &self.backend {
            Backend::Folder(folder) => {
                let path = folder.path(&key)?;
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        if let Some(dir) = path.parent() {
                            std::fs::File::open(dir)
                                .and_then(|d| d.sync_all())
                                .map_err(|e| {
                                    StoreError::Unavailable(format!("syncing {key}: {e}"))
                                })?;
                        }
                        Ok(())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::Unavailable(format!("removing {key}: {e}"))),
                }
            }
            Backend::Remote(inner) => match inner.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(remote_error(e)),
            },
        }
    }
}

/// Objects above this size go to a remote store in parts of this size,
/// several at once: one PUT of a large original would be one long request
/// that a blip on the network makes start again from the first byte, and
/// S3 takes at most 5 GiB in one. Its parts are slices of the bytes in
/// hand, not copies. 8 MiB is above S3's least part (5 MiB).
pub const MULTIPART_PART: usize = 8 * 1024 * 1024;

/// Parts of one upload in flight at once: enough to fill a link, few
/// enough to bound what waits in buffers.
const MULTIPART_CONCURRENCY: usize = 4;

/// `bytes` stored at `key` as a multipart upload; a failed upload is
/// aborted, so that the store does not keep (and bill) its parts.
async fn put_in_parts(store: &dyn ObjectStore, key: &str, bytes: Bytes) -> Result<(), StoreError> {
    let upload = store
        .put_multipart(&Path::from(key))
        .await
        .map_err(remote_error)?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
    let mut rest = bytes;
    while !rest.is_empty() {
        if let Err(e) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
            let _ = writer.abort().await;
            return Err(remote_error(e));
        }
        let part = rest.split_to(rest.len().min(MULTIPART_PART));
        writer.put(part);
    }
    writer.finish().await.map(|_| ()).map_err(remote_error)
}

/// How long one S3 request is retried by the client before the stage
/// sees the failure: brief blips (a dropped connection, a 503) are taken
/// in place; a longer outage becomes a transient stage error, retried on
/// the pipeline's own tiers (`retry.delays_ms`), which outlast it without
/// holding a handler past its timeout.
const S3_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// The S3 store of `url` (`s3://bucket/prefix`) and its prefix: the
/// `AWS_*` environment, then the keys of `store.*`, which win.
fn s3(
    url: &url::Url,
    settings: &crate::config::StoreSettings,
) -> anyhow::Result<(Box<dyn ObjectStore>, Path)> {
    use object_store::aws::AmazonS3Builder;
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url.as_str())
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: S3_RETRY,
            ..Default::default()
        });
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose());
    }
    let store = builder
        .build()
        .with_context(|| format!("opening the S3 store {url}"))?;
    let prefix = Path::from_url_path(url.path())
        .with_context(|| format!("store.url {url} has an unusable path"))?;
    Ok((Box::new(store), prefix))
}

/// Objects up to this size are read and written on the calling task: a
/// few system calls on the page cache take microseconds. Larger ones go to
/// the blocking pool, so that a big original does not hold up a runtime
/// thread.
pub const INLINE_MAX: u64 = 64 * 1024;

/// Whether a write waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Synced before the write returns.
    Synced,
    /// Left in the page cache for the kernel to write back.
    Cached,
}

/// `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// A local folder holding the store's objects, one file per key.
#[derive(Debug)]
struct Folder {
    root: PathBuf,
    /// Where writes begin, apart from the objects: a writer killed
    /// mid-write leaves its part here, never beside the objects.
    staging: PathBuf,
    /// The syncs of the folders synced writes rename into.
    syncs: FolderSyncs,
}

/// Folder syncs shared by the writes that wait for them (a group commit).
///
/// A synced write renames its file into a folder, then needs that folder
/// synced before it returns. A write that asks while a sync of the folder
/// is running waits for it to end, then for one more, which covers its
/// rename and those of every write that asked meanwhile: however many
/// writes run at once, a folder is synced at most twice per batch of them,
/// and a lone write still syncs at once. A failed sync covers nothing: the
/// next write in line syncs again.
#[derive(Debug, Default)]
struct FolderSyncs {
    folders: std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<FolderSync>>>,
}

/// The syncs of one folder: requests are numbered, and `covered` is the
/// last request that a finished sync began after.
#[derive(Debug, Default)]
struct FolderSync {
    asked: std::sync::atomic::AtomicU64,
    /// Held during a sync, so that one runs at a time.
    covered: std::sync::Mutex<u64>,
    /// Syncs done, for the tests.
    done: std::sync::atomic::AtomicU64,
}

impl FolderSyncs {
    /// Syncs `dir`, or waits for a sync of it that began after this call;
    /// blocks (call it on the blocking pool).
    fn sync(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let folder = {
            let mut folders = self
                .folders
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(folders.entry(dir.to_path_buf()).or_default())
        };
        folder.sync(dir)
    }
}

impl FolderSync {
    fn sync(&self, dir: &std::path::Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        // Asked after this write's rename: a sync that reads `asked` at
        // this number or later began after the rename, and covers it.
        let ticket = self.asked.fetch_add(1, SeqCst) + 1;
        let mut covered = self
            .covered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *covered >= ticket {
            return Ok(());
        }
        let upto = self.asked.load(SeqCst);
        std::fs::File::open(dir)?.sync_all()?;
        self.done.fetch_add(1, SeqCst);
        *covered = upto;
        Ok(())
    }
}

/// Staged files older than this when a store opens are leftovers of a
/// stopped writer, and are deleted.
const STALE_STAGED: std::time::Duration = std::time::Duration::from_secs(3600);

impl Folder {
    /// The store at `root`, cleaning up what stopped writers left staged.
    fn open(root: PathBuf) -> anyhow::Result<Folder> {
        let staging = root.join(".staging");
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("creating {}", staging.display()))?;
        let mut removed = 0;
        for entry in std::fs::read_dir(&staging)?.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_STAGED);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "deleted stale partial writes from the store");
        }
        Ok(Folder {
            root,
            staging,
            syncs: FolderSyncs::default(),
        })
    }

    /// The file of `key`. Keys are the store's own (`originals/<sha256>`,
    /// `artifacts/<kind>/<sha256>.json`), but they arrive in messages, so
    /// anything else (an empty part, one that begins with a dot, a
    /// character outside `[A-Za-z0-9._-]`) names nothing rather than a path
    /// outside the objects.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let mut path = self.root.clone();
        for part in key.split('/') {
            let plain = !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain {
                return Err(StoreError::NotFound(key.to_string()));
            }
            path.push(part);
        }
        Ok(path)
    }

    /// Writes `bytes` to `path` atomically: into a new file in the staging
    /// folder, then renamed into place, so a reader sees the old bytes or
    /// the new, never a part. Creates the object's folder on first use.
    /// [`Durability::Synced`] syncs the file before the rename and the folder
    /// after it, so the object survives a power cut once this returns.
    fn write(
        &self,
        path: &std::path::Path,
        bytes: &[u8],
        durability: Durability,
    ) -> std::io::Result<()> {
        let dir = path.parent().expect("a store key has a folder");
        let name = path.file_name().expect("a store key has a name");
        let temp = self.staging.join(format!(
            "{}.{}",
            name.to_string_lossy(),
            uuid::Uuid::now_v7().simple()
        ));
        let durable = durability == Durability::Synced;
        let written = std::fs::File::create_new(&temp)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                if durable {
                    file.sync_all()?;
                }
                Ok(())
            })
            .and_then(|()| match std::fs::rename(&temp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)?;
                    if durable {
                        // The new folder's own name must be on disk too.
                        let parent = dir.parent().expect("an object's folder is in the root");
                        std::fs::File::open(parent)?.sync_all()?;
                    }
                    std::fs::rename(&temp, path)
                }
                other => other,
            })
            .and_then(|()| {
                if durable {
                    self.syncs.sync(dir)?;
                }
                Ok(())
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
    /// Syncs the folder of the object at `path` (shared with the writes
    /// that need it at the same time: see [`FolderSyncs`]).
    fn sync_folder_of(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.syncs
            .sync(path.parent().expect("a store key has a folder"))
    }

    /// Writes `bytes` at `path` unless something is there (see
    /// [`Store::create_new`]).
    fn create_new(&self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<bool> {
        let dir = path.parent().expect("a store key has a folder");
        let name = path.file_name().expect("a store key has a name");
        let temp = self.staging.join(format!(
            "{}.{}",
            name.to_string_lossy(),
            uuid::Uuid::now_v7().simple()
        ));
        let staged = std::fs::File::create_new(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        let linked = staged.and_then(|()| match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).and_then(|()| std::fs::hard_link(&temp, path))
            }
            other => other,
        });
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                std::fs::File::open(dir)?.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        let mut settings = Settings::load(None).unwrap();
        settings.store.root = dir.to_path_buf();
        Store::from_settings(&settings).unwrap()
    }

    #[tokio::test]
    async fn content_addressed_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let a = store
            .put_original(Bytes::from_static(b"tender"))
            .await
            .unwrap();
        let b = store
            .put_original(Bytes::from_static(b"tender"))
            .await
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key, format!("originals/{}", sha256_hex(b"tender")));
        assert_eq!(
            store.get_artifact(&a).await.unwrap(),
            Bytes::from_static(b"tender")
        );
        let json = store
            .put_json("summary", &serde_json::json!({"k": 1}))
            .await
            .unwrap();
        let back: serde_json::Value = store.get_json(&json).await.unwrap();
        assert_eq!(back["k"], 1);
        // A redelivered stage writes its artifact again: same key, same bytes.
        let again = store
            .put_json("summary", &serde_json::json!({"k": 1}))
            .await
            .unwrap();
        assert_eq!(again, json);
        let back: serde_json::Value = store.get_json(&again).await.unwrap();
        assert_eq!(back["k"], 1);
        assert!(matches!(
            store.get("originals/none").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn keys_that_are_not_plain_name_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        let store = store(&dir.path().join("store"));
        for key in [
            "../secret",
            "originals/../../secret",
            "/secret",
            "originals//x",
            "originals/./x",
            ".staging/x",
            "originals/x y",
            "",
        ] {
            assert!(
                matches!(store.get(key).await, Err(StoreError::NotFound(_))),
                "{key:?}"
            );
        }
    }

    #[test]
    fn writes_waiting_on_a_folder_sync_share_the_next_one() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(FolderSync::default());
        // A sync in progress: every write that asks now must wait for it.
        let running = sync.covered.lock().unwrap();
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (sync, dir) = (Arc::clone(&sync), dir.path().to_path_buf());
                std::thread::spawn(move || sync.sync(&dir))
            })
            .collect();
        while sync.asked.load(SeqCst) < 8 {
            std::thread::yield_now();
        }
        drop(running);
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        assert_eq!(sync.done.load(SeqCst), 1, "one sync covers the 8 writes");
        // A write that asks after that sync began gets a sync of its own.
        sync.sync(dir.path()).unwrap();
        assert_eq!(sync.done.load(SeqCst), 2);
    }

    #[test]
    fn a_failed_folder_sync_covers_nothing() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let sync = FolderSync::default();
        assert!(sync.sync(&dir.path().join("gone")).is_err());
        sync.sync(dir.path()).unwrap();
        assert_eq!(sync.done.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn originals_written_at_once_are_all_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let writes = (0..32).map(|i| store.put_original(Bytes::from(format!("tender {i}"))));
        let stored = futures_util::future::join_all(writes).await;
        for (i, stored) in stored.into_iter().enumerate() {
            let stored = stored.unwrap();
            assert_eq!(store.get(&stored.key).await.unwrap(), format!("tender {i}"));
        }
        // The same bytes again, at once: found stored, their folder synced.
        let again = (0..4).map(|_| store.put_original(Bytes::from_static(b"tender 0")));
        for stored in futures_util::future::join_all(again).await {
            assert_eq!(
                stored.unwrap().key,
                format!("originals/{}", sha256_hex(b"tender 0"))
            );
        }
    }

    #[tokio::test]
    async fn large_objects_round_trip_through_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let big = Bytes::from(vec![7u8; INLINE_MAX as usize * 3 + 1]);
        let stored = store.put_original(big.clone()).await.unwrap();
        assert_eq!(stored.size, big.len() as u64);
        assert_eq!(store.get_artifact(&stored).await.unwrap(), big);
        // Nothing is left beside it or in staging: the staged file was
        // renamed into place.
        let names = |folder: &str| -> Vec<_> {
            std::fs::read_dir(dir.path().join(folder))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect()
        };
        assert_eq!(names("originals").len(), 1, "{:?}", names("originals"));
        assert!(names(".staging").is_empty(), "{:?}", names(".staging"));
    }

    #[tokio::test]
    async fn a_write_cut_short_leaves_nothing_beside_the_objects_and_is_cleaned_later() {
        let dir = tempfile::tempdir().unwrap();
        let stored = store(dir.path())
            .put_json("summary", &serde_json::json!({"k": 1}))
            .await
            .unwrap();
        // What a writer killed mid-write leaves, an hour and more ago.
        let part = dir.path().join(".staging/abc.json.0123");
        std::fs::write(&part, b"{\"k\"").unwrap();
        let old = std::time::SystemTime::now() - STALE_STAGED * 2;
        std::fs::File::options()
            .write(true)
            .open(&part)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fresh = dir.path().join(".staging/def.json.4567");
        std::fs::write(&fresh, b"{").unwrap();
        let listed: Vec<_> = std::fs::read_dir(dir.path().join("artifacts/summary"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(listed.len(), 1, "{listed:?}");
        // Opening the store again deletes the stale part, not a fresh one
        // (another writer may be busy with it).
        let store = store(dir.path());
        assert!(!part.exists());
        assert!(fresh.exists());
        let back: serde_json::Value = store.get_json(&stored).await.unwrap();
        assert_eq!(back["k"], 1);
    }

    #[tokio::test]
    async fn a_cancel_marker_is_seen_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let task_id = uuid::Uuid::now_v7();
        assert!(!store.is_cancelled(task_id).await.unwrap());
        assert_eq!(store.cancel_marker(task_id).await.unwrap(), None);
        let marker = CancelMarker {
            task_id,
            at: chrono::Utc::now(),
            by: "api".into(),
            reason: Some("withdrawn by the purchaser".into()),
        };
        store.put_cancel_marker(&marker).await.unwrap();
        assert!(store.is_cancelled(task_id).await.unwrap());
        assert_eq!(store.cancel_marker(task_id).await.unwrap(), Some(marker));
        assert!(dir.path().join(format!("cancelled/{task_id}")).is_file());
        // Another task is not cancelled by it.
        assert!(!store.is_cancelled(uuid::Uuid::now_v7()).await.unwrap());
        store.remove_cancel_marker(task_id).await.unwrap();
        assert!(!store.is_cancelled(task_id).await.unwrap());
        // Removing what is not there is no error.
        store.remove_cancel_marker(task_id).await.unwrap();
    }
}
