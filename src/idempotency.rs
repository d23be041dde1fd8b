//! Idempotent submission: the claim of an idempotency key.
//!
//! A key is claimed in the document store, the one place every API replica
//! and every ingest worker shares, with a create-if-absent write (a hard
//! link in a folder, `If-None-Match: *` on S3): of two submits at once,
//! exactly one write succeeds, and the other reads the winner's claim. A
//! map in one process's memory would let two replicas start two tasks.
//!
//! A key's claims are generations, `idempotency/<sha256 of key>/<n>.json`,
//! the highest the one in force. A claim older than the window is not
//! overwritten but followed by generation `n + 1`, again created only if
//! absent, so replacing a stale claim is as race-free as the first claim:
//! an overwrite would need a compare-and-swap the folder store lacks.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::TaskOptions;
use crate::store::{Store, StoreError, sha256_hex};

/// What a claim records: which task holds the key, for which request,
/// since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The task that holds the key.
    pub task_id: Uuid,
    /// [`fingerprint`] of its request.
    pub fingerprint: String,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
}

impl Claim {
    /// The claim `envelope`'s task makes at `now`: its request's
    /// fingerprint, the same whether the API or ingest claims it.
    pub fn of(envelope: &crate::envelope::Envelope, now: DateTime<Utc>) -> Claim {
        Claim {
            task_id: envelope.task_id,
            fingerprint: fingerprint(
                envelope.documents.iter().map(|d| d.sha256.as_str()),
                &envelope.options,
                envelope.external_id.as_deref(),
            ),
            claimed_at: now,
        }
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is now this task's: go on.
    Won,
    /// The key was this task's already (a redelivery, or ingest after the
    /// API claimed it): go on.
    Ours,
    /// Another task holds it, for the same request: that task is the answer.
    Duplicate(Claim),
    /// Another task holds it, for another request.
    Conflict(Claim),
}

/// The fingerprint of a request: its documents' SHA-256 (in order, lower
/// case), its options and its external id. Two submissions under one key
/// with the same fingerprint are the same request sent twice.
pub fn fingerprint<'a>(
    documents: impl IntoIterator<Item = &'a str>,
    options: &TaskOptions,
    external_id: Option<&str>,
) -> String {
    let documents: Vec<String> = documents.into_iter().map(str::to_ascii_lowercase).collect();
    let canonical = serde_json::json!({
        "documents": documents,
        "filter_model": options.filter_model,
        "extract_model": options.extract_model,
        "external_id": external_id,
    });
    sha256_hex(canonical.to_string().as_bytes())
}

/// The store folder of a key's claims: the key's SHA-256, so any key the
/// checks let through is a plain file name.
fn folder(key: &str) -> String {
    format!("idempotency/{}", sha256_hex(key.as_bytes()))
}

fn generation_key(folder: &str, generation: u64) -> String {
    format!("{folder}/{generation:010}.json")
}

/// The generations present in `folder`, highest first.
async fn generations(store: &Store, folder: &str) -> Result<Vec<u64>, StoreError> {
    let mut found: Vec<u64> = store
        .list(folder)
        .await?
        .iter()
        .filter_map(|key| key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// How often a claim is tried again after losing a race before it gives
/// up: each lost race means another writer made progress, so a few are
/// plenty.
const ATTEMPTS: usize = 8;

/// Claims `key` for `mine`, answering what was found. A claim of another
/// task older than `window` at `now` gives way to this one.
pub async fn claim(
    store: &Store,
    key: &str,
    mine: &Claim,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    let folder = folder(key);
    let body = Bytes::from(serde_json::to_vec(mine).expect("a claim always serialises"));
    for _ in 0..ATTEMPTS {
        let present = generations(store, &folder).await?;
        let Some(&current) = present.first() else {
            if store
                .create_new(&generation_key(&folder, 0), body.clone())
                .await?
            {
                return Ok(Claimed::Won);
            }
            continue;
        };
        let held = match read(store, &generation_key(&folder, current)).await {
            Ok(held) => held,
            // Deleted after a newer one was made: look again.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if held.task_id == mine.task_id {
            return Ok(Claimed::Ours);
        }
        if now - held.claimed_at < window {
            return Ok(if held.fingerprint == mine.fingerprint {
                Claimed::Duplicate(held)
            } else {
                Claimed::Conflict(held)
            });
        }
        if store
            .create_new(&generation_key(&folder, current + 1), body.clone())
            .await?
        {
            // The older generations no longer count; a failed delete
            // leaves only clutter.
            for old in present {
                let _ = store.delete(&generation_key(&folder, old)).await;
            }
            return Ok(Claimed::Won);
        }
    }
    Err(StoreError::Unavailable(format!(
        "the idempotency key is contended: {ATTEMPTS} claims in a row lost a race"
    )))
}

/// Gives `key` up if `task_id` holds it: its task was never published, so
/// the client's retry with the same key must be able to start it.
pub async fn release(store: &Store, key: &str, task_id: Uuid) -> Result<(), StoreError> {
    let folder = folder(key);
    if let Some(&current) = generations(store, &folder).await?.first() {
        let at = generation_key(&folder, current);
        match read(store, &at).await {
            Ok(held) if held.task_id == task_id => store.delete(&at).await?,
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read(store: &Store, key: &str) -> Result<Claim, StoreError> {
    let bytes = store.get(key).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Unavailable(format!("the claim at {key} is unreadable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn store(url: Option<&str>, dir: &std::path::Path) -> Store {
        let mut settings = Settings::load(None).unwrap();
        settings.store.root = dir.to_path_buf();
        settings.store.url = url.map(str::to_string);
        Store::from_settings(&settings).unwrap()
    }

    fn claim_of(fingerprint: &str, claimed_at: DateTime<Utc>) -> Claim {
        Claim {
            task_id: Uuid::now_v7(),
            fingerprint: fingerprint.into(),
            claimed_at,
        }
    }

    async fn the_life_of_a_key(store: Store) {
        let window = chrono::Duration::hours(24);
        let now = Utc::now();
        let first = claim_of("a", now);
        assert_eq!(
            claim(&store, "k", &first, window, now).await.unwrap(),
            Claimed::Won
        );
        assert_eq!(
            claim(&store, "k", &first, window, now).await.unwrap(),
            Claimed::Ours
        );
        let same = claim_of("a", now);
        assert_eq!(
            claim(&store, "k", &same, window, now).await.unwrap(),
            Claimed::Duplicate(first.clone())
        );
        let other = claim_of("b", now);
        assert_eq!(
            claim(&store, "k", &other, window, now).await.unwrap(),
            Claimed::Conflict(first.clone())
        );
        // Another key is another claim.
        assert_eq!(
            claim(&store, "k2", &other, window, now).await.unwrap(),
            Claimed::Won
        );
        // A day later the key is free again, for one task only.
        let later = now + window + chrono::Duration::seconds(1);
        let next = claim_of("b", later);
        assert_eq!(
            claim(&store, "k", &next, window, later).await.unwrap(),
            Claimed::Won
        );
        let again = claim_of("b", later);
        assert_eq!(
            claim(&store, "k", &again, window, later).await.unwrap(),
            Claimed::Duplicate(next.clone())
        );
        // Released, the key can be claimed at once.
        release(&store, "k", next.task_id).await.unwrap();
        assert_eq!(
            claim(&store, "k", &again, window, later).await.unwrap(),
            Claimed::Won
        );
        // Releasing another task's claim leaves it.
        release(&store, "k", first.task_id).await.unwrap();
        assert_eq!(
            claim(&store, "k", &same, window, later).await.unwrap(),
            Claimed::Conflict(again)
        );
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        the_life_of_a_key(store(None, dir.path())).await;
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_in_an_object_store() {
        let dir = tempfile::tempdir().unwrap();
        the_life_of_a_key(store(Some("memory:///"), dir.path())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_claims_at_once_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(None, dir.path());
        let now = Utc::now();
        let window = chrono::Duration::hours(1);
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let store = store.clone();
            racers.spawn(async move {
                let mine = claim_of("a", now);
                claim(&store, "race", &mine, window, now).await.unwrap()
            });
        }
        let results = racers.join_all().await;
        let won = results.iter().filter(|r| **r == Claimed::Won).count();
        assert_eq!(won, 1, "{results:?}");
        let held: Vec<Uuid> = results
            .iter()
            .filter_map(|r| match r {
                Claimed::Duplicate(claim) => Some(claim.task_id),
                _ => None,
            })
            .collect();
        assert_eq!(held.len(), 15);
        assert!(held.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn the_fingerprint_is_of_the_documents_options_and_reference() {
        let options = TaskOptions::default();
        let base = fingerprint(["AB", "cd"], &options, None);
        assert_eq!(base, fingerprint(["ab", "CD"], &options, None));
        assert_ne!(base, fingerprint(["cd", "ab"], &options, None));
        assert_ne!(base, fingerprint(["ab", "cd"], &options, Some("p")));
        let openai = TaskOptions {
            extract_model: "openai".into(),
            ..TaskOptions::default()
        };
        assert_ne!(base, fingerprint(["ab", "cd"], &openai, None));
    }
}
