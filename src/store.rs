//! The document store: originals and artifacts, content addressed.
//!
//! Keys are derived from the SHA-256 of the bytes, so writing the same
//! artifact twice (a redelivered message) changes nothing.

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
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
}

/// The document store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    /// The store the settings name: `store.url` if set, else the folder
    /// `store.root` (created if missing).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Store> {
        let inner: Arc<dyn ObjectStore> = match &settings.store.url {
            Some(url) => {
                let url = url::Url::parse(url)
                    .with_context(|| format!("store.url {url:?} is not a URL"))?;
                let options = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, prefix) = object_store::parse_url_opts(&url, options)
                    .with_context(|| format!("opening store {url}"))?;
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            }
            None => {
                let root = &settings.store.root;
                std::fs::create_dir_all(root)
                    .with_context(|| format!("creating store folder {}", root.display()))?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .with_context(|| format!("opening store folder {}", root.display()))?,
                )
            }
        };
        Ok(Store { inner })
    }

    /// Stores a document's original bytes under `originals/<sha256>`, unless
    /// they are there already (originals can be large: a look first is
    /// cheaper than writing them again).
    pub async fn put_original(&self, bytes: Bytes) -> Result<ArtifactRef, StoreError> {
        let sha256 = sha256_hex(&bytes);
        let key = format!("originals/{sha256}");
        if self.inner.head(&Path::from(key.as_str())).await.is_ok() {
            let size = bytes.len() as u64;
            return Ok(ArtifactRef { key, sha256, size });
        }
        self.put(key, sha256, bytes).await
    }

    /// Stores a JSON artifact of `kind` (`parsed`, `classified`, `summary`).
    pub async fn put_json<T: serde::Serialize>(
        &self,
        kind: &str,
        value: &T,
    ) -> Result<ArtifactRef, StoreError> {
        let bytes = Bytes::from(
            serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        let sha256 = sha256_hex(&bytes);
        self.put(format!("artifacts/{kind}/{sha256}.json"), sha256, bytes)
            .await
    }

    async fn put(
        &self,
        key: String,
        sha256: String,
        bytes: Bytes,
    ) -> Result<ArtifactRef, StoreError> {
        let size = bytes.len() as u64;
        // Content addressed: writing again replaces the bytes with the same
        // bytes, atomically, so a redelivered stage needs no look first (a
        // look would cost every write a round trip to the store).
        self.inner
            .put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(ArtifactRef { key, sha256, size })
    }

    /// The bytes at `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = Path::from(key);
        match self.inner.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string())),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(key.to_string())),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
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

    /// A JSON artifact, read back.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        artifact: &ArtifactRef,
    ) -> Result<T, StoreError> {
        let bytes = self.get_artifact(artifact).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Unavailable(format!("{} is not the expected JSON: {e}", artifact.key))
        })
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
}
