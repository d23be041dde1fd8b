//! The AMQP contract, tested from outside: `tests/contract/test_amqp_contract.py`
//! (Python, pika) publishes to a running `tenderflow run` as another team
//! would, per the published schema, and reads the results over HTTP.
//!
//! The script needs a Python with the packages of
//! `tests/contract/requirements.txt`, named by `TENDERFLOW_CONTRACT_PYTHON`;
//! `.ci/run` makes that virtual environment. Without it the test skips with
//! a loud message, and under `CI=true` it fails.

use std::path::Path;
use std::process::{Child, Command};

use tenderflow::config::Settings;
use uuid::Uuid;

/// The pipeline as a child process, killed when the test ends, even when it
/// panics; its topology is deleted then too.
struct Pipeline {
    child: Child,
    settings: Settings,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let settings = self.settings.clone();
        let cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(tenderflow::broker::delete_topology(
                    &settings,
                    "contract-teardown",
                ));
        });
        let _ = cleanup.join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(settings: &Settings, dir: &Path) -> Pipeline {
    let log = std::fs::File::create(dir.join("tenderflow.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .arg("run")
        .env("TENDERFLOW__TOPOLOGY__PREFIX", &settings.topology.prefix)
        .env("TENDERFLOW__STORE__ROOT", &settings.store.root)
        .env(
            "TENDERFLOW__STORE__ALLOWED_ROOTS",
            &settings.store.allowed_roots[0],
        )
        .env(
            "TENDERFLOW__PROJECTOR__DB_PATH",
            &settings.projector.db_path,
        )
        .env("TENDERFLOW__HTTP__ADDR", &settings.http.addr)
        .env("TENDERFLOW__AMQP__URL", settings.amqp.url.expose())
        .env(
            "TENDERFLOW__RETRY__DELAYS_MS",
            settings
                .retry
                .delays_ms
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting tenderflow run");
    Pipeline {
        child,
        settings: settings.clone(),
    }
}

#[test]
fn an_outside_team_publishes_a_task_with_one_message_from_python() {
    let Some(python) = std::env::var_os("TENDERFLOW_CONTRACT_PYTHON") else {
        let message = "SKIPPED the Python contract test: TENDERFLOW_CONTRACT_PYTHON is not set \
                       (`.ci/run` makes a virtual environment with pika and sets it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("\n*** {message} ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let document = inbox.join("notice.md");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(manifest.join("examples/tender-sample.md"), &document).unwrap();
    let outside = dir.path().join("outside.md");
    std::fs::copy(&document, &outside).unwrap();

    let mut settings = Settings::load(None).unwrap();
    settings.topology.prefix = format!("t-contract-{}", Uuid::now_v7().simple());
    settings.store.root = dir.path().join("store");
    settings.store.allowed_roots = vec![inbox.clone()];
    settings.projector.db_path = dir.path().join("view.db");
    settings.http.addr = format!("127.0.0.1:{}", free_port());
    // The child's retry tiers (TENDERFLOW__RETRY__DELAYS_MS below), so that
    // the teardown deletes the queues it declared.
    settings.retry.delays_ms = vec![200, 400];
    let pipeline = start(&settings, dir.path());

    let status = Command::new(&python)
        .arg(manifest.join("tests/contract/test_amqp_contract.py"))
        .env("CONTRACT_AMQP_URL", settings.amqp.url.expose())
        .env("CONTRACT_PREFIX", &settings.topology.prefix)
        .env("CONTRACT_HTTP", format!("http://{}", settings.http.addr))
        .env("CONTRACT_DOCUMENT", &document)
        .env("CONTRACT_OUTSIDE", &outside)
        .status()
        .expect("running the Python contract test");
    if !status.success() {
        let log = std::fs::read_to_string(dir.path().join("tenderflow.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        drop(pipeline);
        panic!(
            "the Python contract test failed ({status}); the pipeline's last log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}
