//! Child processes of a test: the real `tenderflow` binary (or an example
//! built on its runtime), started with the test's settings as environment
//! variables, signalled, measured, and killed when the test ends, even when
//! it panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tenderflow::config::{Settings, WorkQueues};

/// The environment that makes a child process use `settings`: its prefix,
/// store, retry tiers, broker URL and stage limits.
pub fn settings_env(settings: &Settings) -> Vec<(String, String)> {
    let delays: Vec<String> = settings
        .retry
        .delays_ms
        .iter()
        .map(u64::to_string)
        .collect();
    let roots: Vec<String> = settings
        .store
        .allowed_roots
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut env = vec![
        (
            "TENDERFLOW__TOPOLOGY__PREFIX",
            settings.topology.prefix.clone(),
        ),
        (
            "TENDERFLOW__STORE__ROOT",
            settings.store.root.display().to_string(),
        ),
        ("TENDERFLOW__RETRY__DELAYS_MS", delays.join(",")),
        (
            "TENDERFLOW__AMQP__URL",
            settings.amqp.url.expose().to_string(),
        ),
        (
            "TENDERFLOW__AMQP__RECONNECT_MAX_DELAY_MS",
            settings.amqp.reconnect_max_delay_ms.to_string(),
        ),
        (
            "TENDERFLOW__STAGES__CONCURRENCY",
            settings.stages.concurrency.to_string(),
        ),
        (
            "TENDERFLOW__STAGES__MAX_DELIVERIES",
            settings.stages.max_deliveries.to_string(),
        ),
        (
            "TENDERFLOW__STAGES__CPU_THREADS",
            settings.stages.cpu_threads.to_string(),
        ),
        (
            "TENDERFLOW__STAGES__HANDLER_TIMEOUT_MS",
            settings.stages.handler_timeout_ms.to_string(),
        ),
        (
            "TENDERFLOW__STORE__MAX_DOCUMENT_BYTES",
            settings.store.max_document_bytes.to_string(),
        ),
        (
            "TENDERFLOW__PROJECTOR__DB_PATH",
            settings.projector.db_path.display().to_string(),
        ),
        ("TENDERFLOW__HTTP__ADDR", settings.http.addr.clone()),
        (
            "TENDERFLOW__TOPOLOGY__WORK_QUEUES",
            match settings.topology.work_queues {
                WorkQueues::Quorum => "quorum".to_string(),
                WorkQueues::Classic => "classic".to_string(),
            },
        ),
    ];
    if !roots.is_empty() {
        env.push(("TENDERFLOW__STORE__ALLOWED_ROOTS", roots.join(",")));
    }
    if !settings.amqp.urls.is_empty() {
        let nodes: Vec<&str> = settings.amqp.urls.iter().map(|u| u.expose()).collect();
        env.push(("TENDERFLOW__AMQP__URLS", nodes.join(",")));
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A running child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program` with `args` and `env`. Its output is discarded
    /// unless `TEST_LOG` is set (then it goes to the test's output).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> std::io::Result<Proc> {
        let loud = std::env::var_os("TEST_LOG").is_some();
        let mut command = Command::new(program);
        command
            .args(args)
            .env_remove("TENDERFLOW_CONFIG")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "TENDERFLOW__LOG__FILTER",
                if loud { "info" } else { "error" },
            )
            .stdin(Stdio::null());
        if !loud {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = command.spawn()?;
        Ok(Proc {
            name: name.to_string(),
            child,
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name such as `TERM` or `KILL`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let status = self.child.wait().expect("reaping the child");
        self.status = Some(status);
        status
    }

    /// Its exit status, if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("polling the child");
        }
        self.status
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and asserts a clean exit (status 0) within 30 s.
    pub async fn stop_cleanly(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{}: clean exit: {status:?}",
            self.name
        );
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid())
    }
}

/// Resident memory of process `pid` now, in KiB (VmRSS of
/// /proc/PID/status).
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            self.kill();
        }
    }
}

/// An example binary built beside the `tenderflow` binary at `bin`
/// (`target/<profile>/examples/NAME`). `cargo test` builds the examples; a
/// run limited to one test target does not, so this builds it when missing
/// or older than `bin`.
pub fn example(bin: &Path, name: &str) -> PathBuf {
    let path = bin
        .parent()
        .expect("the binary sits in a target folder")
        .join("examples")
        .join(name);
    let stale = match (modified(&path), modified(bin)) {
        (Some(example), Some(bin)) => example < bin,
        _ => true,
    };
    if stale {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin.parent().and_then(Path::file_name) == Some("release".as_ref()) {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building example {name}");
    }
    path
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}
