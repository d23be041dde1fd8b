//! The ingest stage: check each document reference and store its bytes,
//! content addressed; unpack a zip package into the task's files and sort
//! them into the main document, its amendments and attachments
//! ([`crate::package`]), so that parse never sees an archive.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{StageContext, StageError, StageOutput};
use crate::envelope::{ArtifactRef, DocumentRef, Envelope, Role, TaskFile};
use crate::idempotency::{self, Claim, Claimed};
use crate::package::{self, Member, PackageLimits, Unpacked};
use crate::parse::sniff;
use crate::store::{Store, StoreError, sha256_hex};

/// Checks and stores every document of the task, unpacks a package, and
/// reports every file with its role.
pub async fn handle(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<StageOutput, StageError> {
    let mut artifacts = envelope.artifacts.clone();
    let mut submitted = Vec::with_capacity(envelope.documents.len());
    let mut package = None;
    for document in &envelope.documents {
        let bytes = fetch(context, document).await?;
        check(context, document, &bytes)?;
        let media_type = sniff::sniff(&bytes, &document.filename)?;
        let stored = match document.uri.strip_prefix("store:") {
            // Already in the store under its checksum, which `check` has
            // just verified: nothing to write.
            Some(key) => ArtifactRef {
                key: key.to_string(),
                sha256: document.sha256.to_ascii_lowercase(),
                size: bytes.len() as u64,
            },
            None => context.store.put_original(bytes.clone()).await?,
        };
        if media_type == sniff::ZIP {
            package = Some((document.filename.clone(), bytes, stored.clone()));
        }
        submitted.push(TaskFile {
            name: document.filename.clone(),
            role: Role::Main,
            package: None,
            stored,
            media_type: Some(media_type.to_string()),
            reason: String::new(),
        });
    }
    if let Some(first) = claim_key(context, envelope).await? {
        return Ok(StageOutput {
            artifacts: envelope.artifacts.clone(),
            produced: None,
            files: Vec::new(),
            duplicate_of: Some(first),
        });
    }
    let files = match package {
        Some(_) if submitted.len() > 1 => {
            return Err(StageError::permanent(
                "mixed_package",
                "a zip package must be submitted alone, as its own task: \
                 submit the package, or its documents without it",
            ));
        }
        Some((name, bytes, stored)) => unpack(context, name, bytes, stored).await?,
        None => as_submitted(submitted),
    };
    artifacts.originals = files
        .iter()
        .filter(|f| matches!(f.role, Role::Main | Role::Amendment))
        .map(|f| f.stored.clone())
        .collect();
    artifacts.files = files.clone();
    Ok(StageOutput {
        produced: artifacts.originals.first().cloned(),
        artifacts,
        files,
        duplicate_of: None,
    })
}

/// Claims the task's idempotency key, once its documents are checked (so
/// the fingerprint is of the bytes, not of what the producer said): the
/// task that holds the key already, when this one repeats it. The API
/// claims the key before it publishes, with the same task id, so here its
/// claim is found to be the task's own. Another request under a held key
/// is dead-lettered: nothing can be done with it but to look at it.
async fn claim_key(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<Option<uuid::Uuid>, StageError> {
    let Some(key) = &envelope.idempotency_key else {
        return Ok(None);
    };
    let now = chrono::Utc::now();
    let mine = Claim::of(envelope, now);
    let window = context.settings.store.idempotency_window();
    match idempotency::claim(&context.store, key, &mine, window, now).await {
        Ok(Claimed::Won | Claimed::Ours) => Ok(None),
        Ok(Claimed::Duplicate(held)) => Ok(Some(held.task_id)),
        Ok(Claimed::Conflict(held)) => Err(StageError::permanent(
            "idempotency_conflict",
            format!(
                "the idempotency key {key:?} belongs to task {}, submitted with other \
                 documents, options or external_id; publish a new request with a new key",
                held.task_id
            ),
        )),
        Err(err) => Err(StageError::transient(format!(
            "claiming the idempotency key: {err}"
        ))),
    }
}

/// Documents submitted one by one keep the submitter's order: the first is
/// the main document, the rest its amendments.
fn as_submitted(mut files: Vec<TaskFile>) -> Vec<TaskFile> {
    for (i, file) in files.iter_mut().enumerate() {
        if i == 0 {
            file.reason = "submitted first: the main document".to_string();
        } else {
            file.role = Role::Amendment;
            file.reason = format!("submitted after the main document: amendment {i}");
        }
    }
    files
}

/// Unpacks the package (on the blocking pool: decompression is CPU work),
/// stores each file as it comes out, and sorts the files by the package
/// rules. The package itself is listed last.
async fn unpack(
    context: &StageContext,
    name: String,
    bytes: Bytes,
    stored: ArtifactRef,
) -> Result<Vec<TaskFile>, StageError> {
    let limits = PackageLimits {
        max_entry_bytes: context.settings.store.max_document_bytes,
        ..PackageLimits::default()
    };
    let store = context.store.clone();
    let runtime = tokio::runtime::Handle::current();
    let package_name = name.clone();
    let unpacked = tokio::task::spawn_blocking(move || {
        unpack_and_store(&bytes, &limits, &store, &runtime, &package_name)
    })
    .await;
    let mut files = match unpacked {
        Ok(result) => result?,
        Err(join) if join.is_panic() => {
            return Err(StageError::permanent(
                "panic",
                "unpacking the package panicked",
            ));
        }
        Err(join) => return Err(StageError::transient(join.to_string())),
    };
    let size = stored.size;
    files.push(TaskFile {
        name: name.clone(),
        role: Role::Package,
        package: None,
        stored,
        media_type: Some(sniff::ZIP.to_string()),
        reason: format!(
            "the submitted zip package ({size} bytes), unpacked into {} files",
            files.len()
        ),
    });
    Ok(files)
}

/// Unpacks `bytes`, storing each file as it comes out (so only one is held
/// at a time), then assigns the roles. A store failure is carried out of the
/// unpacker's callback as itself, so it stays transient.
fn unpack_and_store(
    bytes: &[u8],
    limits: &PackageLimits,
    store: &Store,
    runtime: &tokio::runtime::Handle,
    package_name: &str,
) -> Result<Vec<TaskFile>, StageError> {
    let mut stored: Vec<(Unpacked, ArtifactRef)> = Vec::new();
    let mut store_error = None;
    let unpacked = package::unpack(bytes, limits, &mut |mut file| {
        let data = Bytes::from(std::mem::take(&mut file.bytes));
        match runtime.block_on(store.put_original(data)) {
            Ok(artifact) => {
                stored.push((file, artifact));
                Ok(())
            }
            Err(err) => {
                store_error = Some(err);
                Err(crate::parse::ParseError::new("store", "the store failed"))
            }
        }
    });
    if let Some(err) = store_error {
        return Err(err.into());
    }
    unpacked?;
    let members: Vec<Member> = stored
        .iter()
        .map(|(file, artifact)| Member {
            name: &file.name,
            size: artifact.size,
            media_type: file.media_type.as_ref().ok().copied(),
            unreadable: file.media_type.as_ref().err().map(|e| e.message.as_str()),
            is_package: file.is_package,
        })
        .collect();
    let roles = package::assign_roles(&members)?;
    Ok(roles
        .into_iter()
        .map(|assigned| {
            let (file, artifact) = &stored[assigned.index];
            TaskFile {
                name: file.name.clone(),
                role: assigned.role,
                package: Some(package_name.to_string()),
                stored: artifact.clone(),
                media_type: file.media_type.as_ref().ok().map(|t| t.to_string()),
                reason: assigned.reason,
            }
        })
        .collect())
}

/// The bytes a reference points at.
async fn fetch(context: &StageContext, document: &DocumentRef) -> Result<Bytes, StageError> {
    if let Some(key) = document.uri.strip_prefix("store:") {
        if !is_original_key(key) {
            return Err(StageError::permanent(
                "invalid_reference",
                format!(
                    "{} is not a stored original (store:originals/<sha256>)",
                    document.uri
                ),
            ));
        }
        return context.store.get(key).await.map_err(|err| match err {
            StoreError::NotFound(_) => StageError::permanent(
                "not_found",
                format!("{} is not in the document store", document.uri),
            ),
            other => other.into(),
        });
    }
    if document.uri.starts_with("file://") {
        let path = url::Url::parse(&document.uri)
            .ok()
            .and_then(|url| url.to_file_path().ok())
            .ok_or_else(|| {
                StageError::permanent(
                    "invalid_reference",
                    format!("{} is not a file URL", document.uri),
                )
            })?;
        let settings = &context.settings.store;
        return read_allowed(&path, &settings.allowed_roots, settings.max_document_bytes).await;
    }
    Err(StageError::permanent(
        "unsupported_uri",
        format!(
            "{} is neither a store: nor a file:// reference",
            document.uri
        ),
    ))
}

/// Whether `key` names a stored original: `originals/` and a hex SHA-256,
/// as the store writes them. Anything else (`..`, a key too long for the
/// file system) is refused before the store sees it.
fn is_original_key(key: &str) -> bool {
    key.strip_prefix("originals/").is_some_and(|hash| {
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Reads a file only if it lies beneath an allowed root, reached without
/// passing through a symbolic link, is a regular file, and is not over the
/// size limit.
///
/// The path is checked against the roots as written before anything is
/// opened, so nothing is learnt about files elsewhere (not even whether
/// they exist). The root is opened (it may itself be a link: the operator
/// chose it), then every component below it with `O_NOFOLLOW`, relative
/// to the directory opened before: a link planted inside the root, or a
/// directory swapped for one between the check and the read, is refused
/// instead of followed. The size is taken from the open file, and at most
/// the limit and one byte are read, so a file that grows (or a device
/// such as `/dev/zero`) cannot exhaust the worker.
pub async fn read_allowed(
    path: &Path,
    roots: &[PathBuf],
    max_bytes: u64,
) -> Result<Bytes, StageError> {
    if roots.is_empty() {
        return Err(StageError::permanent(
            "forbidden_path",
            "by-reference documents are refused: no store.allowed_roots are configured",
        ));
    }
    let path = path.to_path_buf();
    let roots = roots.to_vec();
    tokio::task::spawn_blocking(move || read_beneath(&path, &roots, max_bytes))
        .await
        .map_err(|e| StageError::transient(format!("reading a by-reference document: {e}")))?
}

fn read_beneath(path: &Path, roots: &[PathBuf], max_bytes: u64) -> Result<Bytes, StageError> {
    use std::io::Read as _;
    let forbidden = || {
        StageError::permanent(
            "forbidden_path",
            format!(
                "{} is not beneath the allowed roots, or passes through a symbolic link",
                path.display()
            ),
        )
    };
    let (root, rest) = beneath(path, roots).ok_or_else(forbidden)?;
    let unreadable = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => {
            StageError::permanent("not_found", format!("{} does not exist", path.display()))
        }
        _ if matches!(
            e.raw_os_error(),
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error()
                || code == rustix::io::Errno::NOTDIR.raw_os_error()
        ) =>
        {
            forbidden()
        }
        _ => StageError::permanent("unreadable", format!("{}: {e}", path.display())),
    };
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(
        &root,
        flags | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| unreadable(e.into()))?;
    let last = rest.len().saturating_sub(1);
    for (i, component) in rest.iter().enumerate() {
        let more = if i < last {
            rustix::fs::OFlags::DIRECTORY
        } else {
            // A FIFO must not block the open.
            rustix::fs::OFlags::NONBLOCK
        };
        dir = rustix::fs::openat(
            &dir,
            component.as_os_str(),
            flags | rustix::fs::OFlags::NOFOLLOW | more,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| unreadable(e.into()))?;
    }
    let file = std::fs::File::from(dir);
    let meta = file.metadata().map_err(unreadable)?;
    if rest.is_empty() || !meta.is_file() {
        return Err(StageError::permanent(
            "not_a_file",
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_large(meta.len(), max_bytes));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StageError::transient(format!("reading {}: {e}", path.display())))?;
    if bytes.len() as u64 > max_bytes {
        return Err(StageError::permanent(
            "too_large",
            format!(
                "{} grew past the limit of {max_bytes} bytes while it was read",
                path.display()
            ),
        ));
    }
    Ok(Bytes::from(bytes))
}

/// The root `path` lies beneath, as written (the root itself or its
/// resolved form), and the components below it; `None` for a relative
/// path, one with `..`, or one under no root.
fn beneath(path: &Path, roots: &[PathBuf]) -> Option<(PathBuf, Vec<std::ffi::OsString>)> {
    use std::path::Component;
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    for root in roots {
        let forms = [Some(root.clone()), std::fs::canonicalize(root).ok()];
        for form in forms.into_iter().flatten() {
            if let Ok(rest) = path.strip_prefix(&form) {
                let rest = rest
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(name) => Some(name.to_os_string()),
                        _ => None,
                    })
                    .collect();
                return Some((form, rest));
            }
        }
    }
    None
}

/// Size and checksum against what the submitter recorded.
fn check(context: &StageContext, document: &DocumentRef, bytes: &[u8]) -> Result<(), StageError> {
    let max = context.settings.store.max_document_bytes;
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(StageError::permanent(
            "empty",
            format!("{} is empty (0 bytes)", document.filename),
        ));
    }
    if size > max {
        return Err(too_large(size, max));
    }
    if size != document.size {
        return Err(StageError::permanent(
            "size_mismatch",
            format!(
                "{} has {size} bytes, the reference says {}",
                document.filename, document.size
            ),
        ));
    }
    let sha256 = sha256_hex(bytes);
    if !sha256.eq_ignore_ascii_case(&document.sha256) {
        return Err(StageError::permanent(
            "checksum_mismatch",
            format!(
                "{} has SHA-256 {sha256}, the reference says {}",
                document.filename, document.sha256
            ),
        ));
    }
    Ok(())
}

fn too_large(size: u64, max: u64) -> StageError {
    StageError::permanent(
        "too_large",
        format!("the document has {size} bytes, over the limit of {max}"),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Settings;
    use crate::envelope::{Stage, TaskOptions};

    fn context(root: &Path) -> StageContext {
        let mut settings = Settings::load(None).unwrap();
        settings.store.root = root.to_path_buf();
        let settings = Arc::new(settings);
        StageContext {
            store: Store::from_settings(&settings).unwrap(),
            settings,
        }
    }

    async fn submitted(context: &StageContext, name: &str, bytes: Vec<u8>) -> DocumentRef {
        let stored = context
            .store
            .put_original(Bytes::from(bytes))
            .await
            .unwrap();
        DocumentRef {
            uri: format!("store:{}", stored.key),
            sha256: stored.sha256,
            size: stored.size,
            media_type: None,
            filename: name.to_string(),
        }
    }

    #[tokio::test]
    async fn a_package_is_unpacked_stored_and_sorted_for_parse() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path());
        let zip = crate::parse::zipread::test_zip(&[
            ("图纸/总图.dwg", b"AC1032\0\x01"),
            ("补遗1.md", "# 补遗\n\n截止时间推迟".as_bytes()),
            ("招标文件.md", "# 招标文件".as_bytes()),
        ]);
        let document = submitted(&context, "pkg.zip", zip).await;
        let envelope = Envelope::new_task(vec![document], TaskOptions::default());
        let output = handle(&context, &envelope).await.unwrap();

        let sorted: Vec<(&str, Role)> = output
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.role))
            .collect();
        assert_eq!(
            sorted,
            vec![
                ("招标文件.md", Role::Main),
                ("补遗1.md", Role::Amendment),
                ("图纸/总图.dwg", Role::Attachment),
                ("pkg.zip", Role::Package),
            ]
        );
        assert_eq!(output.artifacts.files, output.files);
        let originals: Vec<&ArtifactRef> = output.files[..2].iter().map(|f| &f.stored).collect();
        assert_eq!(
            output.artifacts.originals.iter().collect::<Vec<_>>(),
            originals
        );
        // Every file is in the store as it was in the package.
        let drawing = context
            .store
            .get_artifact(&output.files[2].stored)
            .await
            .unwrap();
        assert_eq!(drawing.as_ref(), b"AC1032\0\x01");
        // Parse gets the main document and the amendment, by name.
        let next = envelope.advance(Stage::Parse, output.artifacts);
        assert_eq!(next.document_names(), vec!["招标文件.md", "补遗1.md"]);
    }

    #[tokio::test]
    async fn documents_submitted_one_by_one_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let context = context(dir.path());
        let documents = vec![
            submitted(&context, "a.md", b"# main".to_vec()).await,
            submitted(&context, "b.md", b"# second".to_vec()).await,
        ];
        let envelope = Envelope::new_task(documents, TaskOptions::default());
        let output = handle(&context, &envelope).await.unwrap();
        let roles: Vec<Role> = output.files.iter().map(|f| f.role).collect();
        assert_eq!(roles, vec![Role::Main, Role::Amendment]);
        assert_eq!(output.artifacts.originals.len(), 2);
        let rar = submitted(&context, "x.rar", b"Rar!\x1A\x07\x00...".to_vec()).await;
        let envelope = Envelope::new_task(vec![rar], TaskOptions::default());
        let err = handle(&context, &envelope).await.unwrap_err();
        assert_eq!(err.info().kind, "unsupported_archive");
    }

    #[test]
    fn only_sha256_keys_under_originals_are_stored_originals() {
        assert!(is_original_key(&format!("originals/{}", sha256_hex(b"x"))));
        for key in [
            "originals/00",
            "originals/../../etc/passwd",
            "artifacts/summary/x.json",
            &format!("originals/{}", "0".repeat(10_000)),
            &format!("originals/{}", sha256_hex(b"x").to_uppercase()),
        ] {
            assert!(!is_original_key(key), "{key}");
        }
    }

    #[tokio::test]
    async fn references_must_stay_under_the_allowed_roots() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let inside = root.path().join("a.md");
        std::fs::write(&inside, "# 招标公告").unwrap();
        let secret = outside.path().join("secret.txt");
        std::fs::write(&secret, "secret").unwrap();
        let link = root.path().join("escape.txt");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let roots = vec![root.path().to_path_buf()];

        assert_eq!(
            read_allowed(&inside, &roots, 1024).await.unwrap().as_ref(),
            "# 招标公告".as_bytes()
        );
        let kind = |r: Result<Bytes, StageError>| r.unwrap_err().info().kind;
        assert_eq!(
            kind(read_allowed(&link, &roots, 1024).await),
            "forbidden_path"
        );
        assert_eq!(
            kind(read_allowed(&secret, &roots, 1024).await),
            "forbidden_path"
        );
        assert_eq!(
            kind(read_allowed(&root.path().join("none"), &roots, 1024).await),
            "not_found"
        );
        assert_eq!(kind(read_allowed(&inside, &roots, 3).await), "too_large");
        assert_eq!(
            kind(read_allowed(&inside, &[], 1024).await),
            "forbidden_path"
        );
        assert_eq!(
            kind(read_allowed(root.path(), &roots, 1024).await),
            "not_a_file"
        );
        // A link beneath the root is refused even when it points inside.
        let inner_link = root.path().join("also-a.md");
        std::os::unix::fs::symlink(&inside, &inner_link).unwrap();
        assert_eq!(
            kind(read_allowed(&inner_link, &roots, 1024).await),
            "forbidden_path"
        );
        // So is a linked directory on the way.
        let linked_dir = root.path().join("dir");
        std::os::unix::fs::symlink(outside.path(), &linked_dir).unwrap();
        assert_eq!(
            kind(read_allowed(&linked_dir.join("secret.txt"), &roots, 1024).await),
            "forbidden_path"
        );
        // ".." never climbs out, and nothing is said of what is outside.
        let climb = root.path().join("..").join("elsewhere");
        let err = read_allowed(&climb, &roots, 1024).await.unwrap_err().info();
        assert_eq!(err.kind, "forbidden_path");
        assert!(!err.message.contains("does not exist"));
        // A device is no regular file, and is not read.
        let dev = vec![PathBuf::from("/dev")];
        assert_eq!(
            kind(read_allowed(Path::new("/dev/zero"), &dev, 1024).await),
            "not_a_file"
        );
        // A sub-folder is walked.
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/b.md"), "b").unwrap();
        assert_eq!(
            read_allowed(&root.path().join("sub/b.md"), &roots, 1024)
                .await
                .unwrap()
                .as_ref(),
            b"b"
        );
    }
}
