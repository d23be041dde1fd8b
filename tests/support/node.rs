//! A private RabbitMQ node for tests that stop, restart or reconfigure the
//! broker itself, which they must never do to the shared one other tests
//! run against. The node has its own name, AMQP and distribution ports, and
//! data, log, config and plugin files in a temporary folder; it shares only
//! the Erlang port mapper (epmd) and the cookie of the RabbitMQ installation
//! (so `rabbitmqctl -n NODE` reaches it). It is stopped when the guard is
//! dropped, also when the test panics: `rabbitmqctl stop`, then SIGKILL by
//! its PID if it is still there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a node gets to start (a cold start takes a few seconds; a busy
/// machine, more).
const START_LIMIT: Duration = Duration::from_secs(120);

/// Nodes started by this process, for unique names.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// A running private RabbitMQ node; stopped when dropped.
pub struct Node {
    name: String,
    amqp_port: u16,
    pid: Option<u32>,
    dir: TempDir,
}

impl Node {
    /// Starts a fresh node and waits until its RabbitMQ application runs.
    /// Panics with the node's own words if it does not start.
    pub fn start() -> Node {
        Node::start_with(&[], "")
    }

    /// Starts a fresh node with `files` written into its folder first
    /// (readable by the broker's user) and `config` added to its
    /// `rabbitmq.conf`, where `{dir}` stands for that folder.
    pub fn start_with(files: &[(&str, &[u8])], config: &str) -> Node {
        stop_orphans();
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let name = format!("tf-faults-{}-{n}@localhost", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("tf-node-")
            .tempdir()
            .expect("a temporary folder");
        let mut node = Node {
            name,
            amqp_port: crate::helpers::free_port(),
            pid: None,
            dir,
        };
        node.write_files();
        for (name, bytes) in files {
            std::fs::write(node.path(name), bytes).unwrap();
            set_mode(&node.path(name), 0o644);
        }
        if !config.is_empty() {
            let dir = node.dir.path().display().to_string();
            let mut text = std::fs::read_to_string(node.path("rabbitmq.conf")).unwrap();
            text.push_str(&config.replace("{dir}", &dir));
            text.push('\n');
            std::fs::write(node.path("rabbitmq.conf"), text).unwrap();
        }
        let status = node
            .server_command()
            .arg("-detached")
            .status()
            .expect("rabbitmq-server runs");
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        node.await_startup();
        node.pid = std::fs::read_to_string(node.path("node.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok());
        node
    }

    /// The node's name, for `rabbitmqctl -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The AMQP URL of the node (guest, from loopback).
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    /// Runs `rabbitmqctl -n NODE ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("rabbitmqctl runs")
    }

    /// Runs `rabbitmqctl -n NODE ARGS` and panics unless it succeeds.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the RabbitMQ application, leaving the Erlang node up: every
    /// client connection is closed and the port stops listening.
    pub fn stop_app(&self) {
        self.ctl_ok(&["stop_app"]);
    }

    /// Starts the RabbitMQ application again and waits until it runs.
    pub fn start_app(&self) {
        self.ctl_ok(&["start_app"]);
        self.await_startup();
    }

    /// Makes the node a member of `seed`'s cluster: its application is
    /// stopped, joined to `seed` (which drops what the node held) and
    /// started again.
    pub fn join_cluster(&self, seed: &Node) {
        self.stop_app();
        self.ctl_ok(&["join_cluster", seed.name()]);
        self.start_app();
    }

    /// Whether the RabbitMQ application is running on the node.
    pub fn is_running(&self) -> bool {
        self.ctl(&["await_startup", "--timeout", "1"])
            .status
            .success()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The config, env and plugin files: a listener on the node's port
    /// only, no plugins (so no management or Prometheus port to fight the
    /// shared node for), and no site-wide env file (which names the shared
    /// node).
    fn write_files(&self) {
        let base = self.dir.path();
        // The server runs as the `rabbitmq` user when started by root.
        set_mode(base, 0o777);
        for sub in ["mnesia", "log"] {
            std::fs::create_dir(base.join(sub)).unwrap();
            set_mode(&base.join(sub), 0o777);
        }
        let config = format!(
            "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users.guest = true\n",
            self.amqp_port
        );
        std::fs::write(self.path("rabbitmq.conf"), config).unwrap();
        std::fs::write(self.path("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            self.path("rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS=127.0.0.1\n\
             export ERL_FLAGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
        )
        .unwrap();
    }

    /// `rabbitmq-server` with the node's environment.
    fn server_command(&self) -> Command {
        let mut command = Command::new("rabbitmq-server");
        let dist_port = crate::helpers::free_port();
        let path = |file: &str| self.path(file).display().to_string();
        command
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_PID_FILE", path("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        command
    }

    /// Waits until the RabbitMQ application runs and the AMQP port
    /// accepts connections; panics with the node's log otherwise.
    fn await_startup(&self) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            // Before the node registers, `await_startup` fails at once.
            if self.is_running()
                && std::net::TcpStream::connect(("127.0.0.1", self.amqp_port)).is_ok()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the private RabbitMQ node {} did not start within {} s; its log:\n{}",
                    self.name,
                    START_LIMIT.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The end of the node's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = self.path("log").join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.name, "stop", "--timeout", "30"])
            .output();
        if let Some(pid) = self.pid {
            // Still there after `stop` (or `stop` could not reach it).
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Stops private nodes left by a test process that was killed before its
/// guards could run: their names carry the process id, and epmd lists them.
fn stop_orphans() {
    let Ok(listing) = Command::new("epmd").arg("-names").output() else {
        return;
    };
    let text = String::from_utf8_lossy(&listing.stdout);
    for name in text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
    {
        let Some(owner) = name
            .strip_prefix("tf-faults-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !owner.parse().is_ok_and(alive) {
            let _ = Command::new("rabbitmqctl")
                .args([
                    "-n",
                    &format!("{name}@localhost"),
                    "stop",
                    "--timeout",
                    "30",
                ])
                .output();
        }
    }
}

/// Whether process `pid` runs (a zombie, killed but not yet reaped, does
/// not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
