//! The ingest stage: check each document reference and store its bytes,
//! content addressed.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{StageContext, StageError, StageOutput};
use crate::envelope::{ArtifactRef, DocumentRef, Envelope};
use crate::parse::sniff;
use crate::store::{StoreError, sha256_hex};

/// Checks and stores every document of the task.
pub async fn handle(
    context: &StageContext,
    envelope: &Envelope,
) -> Result<StageOutput, StageError> {
    let mut artifacts = envelope.artifacts.clone();
    let mut originals = Vec::with_capacity(envelope.documents.len());
    for document in &envelope.documents {
        let bytes = fetch(context, document).await?;
        check(context, document, &bytes)?;
        sniff::sniff(&bytes, &document.filename)
            .map_err(|e| StageError::permanent(e.kind, e.message))?;
        let stored = match document.uri.strip_prefix("store:") {
            // Already in the store under its checksum, which `check` has
            // just verified: nothing to write.
            Some(key) => ArtifactRef {
                key: key.to_string(),
                sha256: document.sha256.to_ascii_lowercase(),
                size: bytes.len() as u64,
            },
            None => context.store.put_original(bytes).await?,
        };
        originals.push(stored);
    }
    let produced = originals.first().cloned();
    artifacts.originals = originals;
    Ok(StageOutput {
        artifacts,
        produced,
    })
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

/// Reads a file only if it resolves (symlinks followed) under an allowed
/// root, is a regular file, and is not over the size limit.
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
    let real = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StageError::permanent("not_found", format!("{} does not exist", path.display()))
            }
            _ => StageError::permanent("unreadable", format!("{}: {e}", path.display())),
        })?;
    let mut allowed = false;
    for root in roots {
        if let Ok(root) = tokio::fs::canonicalize(root).await
            && real.starts_with(&root)
        {
            allowed = true;
        }
    }
    if !allowed {
        return Err(StageError::permanent(
            "forbidden_path",
            format!("{} resolves outside the allowed roots", path.display()),
        ));
    }
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|e| StageError::permanent("unreadable", format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(StageError::permanent(
            "not_a_file",
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_large(meta.len(), max_bytes));
    }
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|e| StageError::transient(format!("reading {}: {e}", path.display())))?;
    Ok(Bytes::from(bytes))
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
    use super::*;

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
    }
}
