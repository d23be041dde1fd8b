//! The store on S3, against a real S3-compatible server on loopback: moto
//! (`tests/s3/moto_server.py`), started per test on a free port and killed
//! by PID when the test ends, even on a panic. It checks every request's
//! signature, so wrong credentials are refused as AWS refuses them.
//!
//! The server needs a Python with the packages of `tests/s3/requirements.txt`,
//! named by `TENDERFLOW_S3_PYTHON`; `.ci/run` makes that virtual
//! environment. Without it these tests skip with a loud message, and under
//! `CI=true` they fail.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use tenderflow::config::{Secret, Settings};
use tenderflow::envelope::Stage;
use tenderflow::events::EventKind;
use tenderflow::store::{MULTIPART_PART, Store, sha256_hex};
use tenderflow::submit::{Outcome, Submitter};
use uuid::Uuid;

use crate::helpers::{TestPipeline, failure, free_port, outcomes};
use crate::proxy::Proxy;

/// A moto server of one test, killed when the test ends.
struct Moto {
    child: Child,
    addr: SocketAddr,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// A fresh server with one bucket, or `None` (the test is skipped)
    /// when there is no Python to run it.
    fn start(dir: &Path) -> Option<Moto> {
        let Some(python) = std::env::var_os("TENDERFLOW_S3_PYTHON") else {
            let message = "SKIPPED the S3 test: TENDERFLOW_S3_PYTHON is not set \
                           (`.ci/run` makes a virtual environment with moto and sets it)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n*** {message} ***\n");
            return None;
        };
        let port = free_port();
        let bucket = format!("tf-{}", Uuid::now_v7().simple());
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/moto_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&bucket)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting the moto server");
        let stdout = child.stdout.take().unwrap();
        let mut moto = Moto {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            bucket,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        let mut lines = BufReader::new(stdout).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("ready ") => break line,
                Some(Ok(_)) => continue,
                _ => panic!(
                    "the moto server stopped before it was ready: {}",
                    std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
                ),
            }
        };
        let keys: serde_json::Value = serde_json::from_str(&ready["ready ".len()..]).unwrap();
        moto.access_key_id = keys["access_key_id"].as_str().unwrap().to_string();
        moto.secret_access_key = keys["secret_access_key"].as_str().unwrap().to_string();
        Some(moto)
    }

    /// Points `settings`' store at this server (through `endpoint`), under
    /// the bucket's `prefix`.
    fn configure(&self, settings: &mut Settings, endpoint: SocketAddr, prefix: &str) {
        settings.store.url = Some(format!("s3://{}/{prefix}", self.bucket));
        settings.store.endpoint = Some(format!("http://{endpoint}"));
        settings.store.region = Some("us-east-1".into());
        settings.store.access_key_id = Some(self.access_key_id.clone());
        settings.store.secret_access_key = Some(Secret::new(self.secret_access_key.clone()));
    }

    /// The bucket, seen directly (not through tenderflow's store).
    fn bucket(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_endpoint(format!("http://{}", self.addr))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .build()
            .unwrap()
    }

    /// Every key in the bucket.
    async fn keys(&self) -> Vec<String> {
        use futures_util::TryStreamExt as _;
        self.bucket()
            .list(None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap()
    }
}

/// Objects at the folder `folder` of `keys`.
fn under<'a>(keys: &'a [String], folder: &str) -> Vec<&'a String> {
    keys.iter().filter(|k| k.starts_with(folder)).collect()
}

#[tokio::test]
async fn the_pipeline_runs_on_s3_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let pipeline = TestPipeline::new(|settings, _| moto.configure(settings, moto.addr, "e2e"));
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    let done = outcomes(follower, &tasks, 120).await;
    let Outcome::Completed { summary_key } = &done[&tasks[0]] else {
        panic!("{:?}", done[&tasks[0]]);
    };
    let keys = moto.keys().await;
    for folder in [
        "e2e/originals/",
        "e2e/artifacts/parsed/",
        "e2e/artifacts/classified/",
        "e2e/artifacts/summary/",
    ] {
        assert_eq!(under(&keys, folder).len(), 1, "{folder} in {keys:?}");
    }
    assert!(
        keys.contains(&format!("e2e/{summary_key}")),
        "{summary_key} in {keys:?}"
    );
    // Nothing went to the local folder instead.
    assert!(!pipeline.settings.store.root.join("originals").exists());
    pipeline.assert_nothing_dead_lettered().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn an_object_written_twice_is_one_object_and_a_claim_is_taken_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let mut settings = Settings::load(None).unwrap();
    moto.configure(&mut settings, moto.addr, "twice");
    let store = Store::from_settings(&settings).unwrap();
    let value = serde_json::json!({"title": "road works", "lots": 3});
    let first = store.put_json("summary", &value).await.unwrap();
    let second = store.put_json("summary", &value).await.unwrap();
    assert_eq!(first, second);
    let original = Bytes::from_static(b"an original, handed in twice");
    let a = store.put_original(original.clone()).await.unwrap();
    let b = store.put_original(original.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(store.get_artifact(&a).await.unwrap(), original);
    let back: serde_json::Value = store.get_json(&second).await.unwrap();
    assert_eq!(back, value);
    let keys = moto.keys().await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    // Claims (idempotency keys) are not content addressed: the second
    // writer is told the key is taken (a conditional PUT on S3).
    assert!(
        store
            .create_new("claims/k", Bytes::from_static(b"1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_new("claims/k", Bytes::from_static(b"2"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("claims/k").await.unwrap(),
        Bytes::from_static(b"1")
    );
}

#[tokio::test]
async fn a_large_original_goes_up_in_parts_and_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let mut settings = Settings::load(None).unwrap();
    moto.configure(&mut settings, moto.addr, "large");
    let store = Store::from_settings(&settings).unwrap();
    // Two whole parts and a short one, every byte of it telling.
    let len = MULTIPART_PART * 2 + 12_345;
    let big = Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let stored = store.put_original(big.clone()).await.unwrap();
    assert_eq!(stored.size, len as u64);
    assert_eq!(stored.sha256, sha256_hex(&big));
    let back = store.get_artifact(&stored).await.unwrap();
    assert_eq!(back.len(), len);
    assert_eq!(sha256_hex(&back), stored.sha256);
    // S3 tags an object put in parts with its part count.
    let meta = moto
        .bucket()
        .head(&object_store::path::Path::from(format!(
            "large/{}",
            stored.key
        )))
        .await
        .unwrap();
    assert_eq!(meta.size, len as u64);
    let e_tag = meta.e_tag.unwrap_or_default();
    assert!(e_tag.trim_matches('"').ends_with("-3"), "ETag {e_tag}");
    // An artifact below the part size is one plain PUT.
    let small = store
        .put_json("parsed", &serde_json::json!({"k": 1}))
        .await
        .unwrap();
    let meta = moto
        .bucket()
        .head(&object_store::path::Path::from(format!(
            "large/{}",
            small.key
        )))
        .await
        .unwrap();
    assert!(!meta.e_tag.unwrap_or_default().contains('-'));
}

#[tokio::test]
async fn a_missing_object_dead_letters_with_what_remakes_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let pipeline = TestPipeline::new(|settings, _| moto.configure(settings, moto.addr, "lost"));
    // Everything but filter: the parsed artifact waits for it.
    for stage in [Stage::Ingest, Stage::Parse, Stage::Extract] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    let filter_queue = pipeline.topology().stage_queue(Stage::Filter);
    let mut waiting = 0;
    for _ in 0..120 {
        waiting = pipeline.depth(&filter_queue).await;
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(waiting, 1, "the parsed task waits for filter");
    let parsed = under(&moto.keys().await, "lost/artifacts/parsed/")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(parsed.len(), 1, "{parsed:?}");
    moto.bucket()
        .delete(&object_store::path::Path::from(parsed[0].as_str()))
        .await
        .unwrap();
    pipeline.start(Stage::Filter, pipeline.real_handler(Stage::Filter));
    let done = outcomes(follower, &tasks, 60).await;
    let (stage, kind, message) = failure(&done[&tasks[0]]);
    assert_eq!(stage, Stage::Filter);
    assert_eq!(kind, "missing_artifact");
    assert!(message.contains("--from parse"), "{message}");
    pipeline.teardown().await;
}

#[tokio::test]
async fn an_s3_outage_is_retried_and_the_task_ends_done() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let proxy = Proxy::start(moto.addr).await.unwrap();
    let pipeline = TestPipeline::new(|settings, _| {
        moto.configure(settings, proxy.addr(), "outage");
        settings.retry.delays_ms = vec![1_500, 3_000, 6_000];
    });
    let follower = pipeline.follower().await;
    // Stored while the server is up; then it goes away before any stage
    // reads it, and comes back, same port, same data, 4 s later.
    let tasks = pipeline.submit_files(&["en_itt.md"]).await;
    proxy.refuse(true);
    proxy.cut();
    pipeline.start_all();
    let back = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        proxy.refuse(false);
        proxy
    });
    let retries = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&retries);
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        follower.wait(&tasks, move |event| {
            if let EventKind::RetryScheduled { error, .. } = &event.kind {
                seen.lock().unwrap().push((event.stage, error.kind.clone()));
            }
        }),
    )
    .await
    .expect("the task ends in time")
    .unwrap();
    let _proxy = back.await.unwrap();
    assert!(
        matches!(done[&tasks[0]], Outcome::Completed { .. }),
        "{:?}",
        done[&tasks[0]]
    );
    let retries = retries.lock().unwrap().clone();
    assert!(!retries.is_empty(), "the outage made no attempt fail");
    assert!(
        retries.iter().all(|(_, kind)| kind == "transient"),
        "{retries:?}"
    );
    pipeline.assert_nothing_dead_lettered().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn wrong_credentials_dead_letter_at_once_as_store_denied() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    // The workers' secret is wrong; the submitter's is right, so the
    // original is in the store and only the stages are refused.
    let pipeline = TestPipeline::new(|settings, _| {
        moto.configure(settings, moto.addr, "denied");
        settings.store.secret_access_key = Some(Secret::new("not-the-secret"));
    });
    let mut good = (*pipeline.settings).clone();
    moto.configure(&mut good, moto.addr, "denied");
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let submitter = Submitter::new(Arc::new(good)).unwrap();
    let upload = tenderflow::submit::Upload {
        filename: "en_itt.md".into(),
        bytes: Bytes::from(std::fs::read(crate::helpers::corpus("en_itt.md")).unwrap()),
    };
    let envelope = submitter
        .submit(vec![upload], Default::default())
        .await
        .unwrap();
    let tasks = [envelope.task_id];
    let retries = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&retries);
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        follower.wait(&tasks, move |event| {
            if matches!(event.kind, EventKind::RetryScheduled { .. }) {
                *seen.lock().unwrap() += 1;
            }
        }),
    )
    .await
    .expect("the task ends in time")
    .unwrap();
    let (stage, kind, message) = failure(&done[&tasks[0]]);
    assert_eq!(stage, Stage::Ingest);
    assert_eq!(kind, "store_denied");
    assert!(message.contains("credentials"), "{message}");
    assert_eq!(*retries.lock().unwrap(), 0, "a refusal is not retried");
    pipeline.teardown().await;
}

/// `tenderflow worker ingest` with the store's keys as environment
/// variables, its output to `log`.
fn worker_with_store_keys(pipeline: &TestPipeline, moto: &Moto, secret: &str, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["worker", "ingest"])
        .envs(crate::procs::settings_env(&pipeline.settings))
        .env(
            "TENDERFLOW__STORE__URL",
            format!("s3://{}/cli", moto.bucket),
        )
        .env(
            "TENDERFLOW__STORE__ENDPOINT",
            format!("http://{}", moto.addr),
        )
        .env("TENDERFLOW__STORE__REGION", "us-east-1")
        .env("TENDERFLOW__STORE__ACCESS_KEY_ID", &moto.access_key_id)
        .env("TENDERFLOW__STORE__SECRET_ACCESS_KEY", secret)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting tenderflow worker")
}

#[tokio::test]
async fn a_worker_given_a_refused_key_stops_at_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        return;
    };
    let pipeline = TestPipeline::new(|_, _| {});
    let refused_log = dir.path().join("refused.log");
    let mut refused = worker_with_store_keys(&pipeline, &moto, "not-the-secret", &refused_log);
    let mut status = None;
    for _ in 0..300 {
        status = refused.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = refused.kill();
    let output = std::fs::read_to_string(&refused_log).unwrap();
    let status = status.unwrap_or_else(|| panic!("the worker kept running: {output}"));
    assert!(!status.success(), "{output}");
    assert!(output.contains("refused the credentials"), "{output}");
    assert!(!output.contains("not-the-secret"), "{output}");
    // The right key passes the check: the worker is still up seconds later.
    let good_log = dir.path().join("good.log");
    let mut good = worker_with_store_keys(&pipeline, &moto, &moto.secret_access_key, &good_log);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still_up = good.try_wait().unwrap().is_none();
    let _ = good.kill();
    let _ = good.wait();
    assert!(
        still_up,
        "{}",
        std::fs::read_to_string(&good_log).unwrap_or_default()
    );
    pipeline.teardown().await;
}
