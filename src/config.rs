//! Settings: built-in defaults, then a file, then `TENDERFLOW__SECTION__KEY`
//! environment variables. Everything is checked before anything connects.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

pub use crate::llm::LlmSettings;
pub use crate::secret::Secret;

/// All settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// The broker.
    pub amqp: AmqpSettings,
    /// Names and shapes of exchanges and queues.
    pub topology: TopologySettings,
    /// Retry delays.
    pub retry: RetrySettings,
    /// The document store.
    pub store: StoreSettings,
    /// How stages run.
    pub stages: StageSettings,
    /// How the parse stage runs the parser.
    pub parse: ParseSettings,
    /// The projector's embedded store.
    pub projector: ProjectorSettings,
    /// The HTTP API.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
    /// The OpenAI-compatible model server, for tasks that ask for it.
    pub llm: LlmSettings,
    /// Prometheus metrics of workers.
    pub metrics: MetricsSettings,
    /// Completion callbacks (the notify consumer).
    pub notify: NotifySettings,
}

/// The broker connection.
#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    /// AMQP URL, with credentials (kept secret in logs).
    pub url: Secret,
    /// The nodes of a cluster, each an AMQP URL like `url`. When set, it
    /// replaces `url`: a connection goes to the node that answered last
    /// and, when that one is lost or refused, to the next in the list.
    #[serde(default)]
    pub urls: Vec<Secret>,
    /// How long one node gets to answer a connection (TCP, TLS and the
    /// AMQP handshake) before the next is tried, in milliseconds: a node
    /// that accepts connections and never answers must not hold a worker.
    pub connect_timeout_ms: u64,
    /// Longest wait between reconnection attempts, in milliseconds.
    pub reconnect_max_delay_ms: u64,
    /// Largest AMQP frame, in bytes (at least 4096), asked of the broker
    /// through the URL's `frame_max` unless the URL names one itself.
    /// lapin keeps a send and a receive buffer of 32 frames per connection
    /// and fills them with zeros when it connects: at RabbitMQ's 128 KiB
    /// that is 8 MiB resident per connection, and `run` opens six. Our
    /// messages are references of a few KiB; a larger one simply spans
    /// several frames.
    pub frame_max: u32,
    /// TLS for an `amqps://` URL: see [`AmqpTlsSettings`].
    #[serde(default)]
    pub tls: AmqpTlsSettings,
}

/// TLS to the broker, for an `amqps://` URL (rustls). The broker's
/// certificate must chain to a trusted root (the system's, and the CA file
/// when one is set) and name the URL's host.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AmqpTlsSettings {
    /// PEM file of CA certificates trusted besides the system's roots (a
    /// private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain), for a broker
    /// that asks for one (mutual TLS); with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, not
    /// encrypted); with `cert_file`. Never logged.
    pub key_file: Option<PathBuf>,
}

impl AmqpTlsSettings {
    /// The files are there and hold what they should; a certificate without
    /// its key, or TLS files for a plain `amqp://` URL, are mistakes.
    fn check(&self, amqps: bool) -> anyhow::Result<()> {
        let any = self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some();
        if any && !amqps {
            bail!("amqp.tls is set, but the broker's URL (amqp.url or amqp.urls) is not amqps://");
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            bail!("amqp.tls.cert_file and amqp.tls.key_file go together");
        }
        let pem = |path: &Option<PathBuf>, setting: &str, label: &str| -> anyhow::Result<()> {
            let Some(path) = path else { return Ok(()) };
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("amqp.tls.{setting}: reading {}", path.display()))?;
            if !text.contains(label) {
                bail!(
                    "amqp.tls.{setting}: {} holds no PEM block with {label:?}",
                    path.display()
                );
            }
            Ok(())
        };
        pem(&self.ca_file, "ca_file", "-----BEGIN CERTIFICATE-----")?;
        pem(&self.cert_file, "cert_file", "-----BEGIN CERTIFICATE-----")?;
        pem(&self.key_file, "key_file", "PRIVATE KEY-----")?;
        Ok(())
    }
}

/// Topology naming and shape.
#[derive(Debug, Clone, Deserialize)]
pub struct TopologySettings {
    /// Prefix of every exchange and queue name, so several pipelines (or
    /// tests) share one broker.
    pub prefix: String,
    /// A topology file to use instead of the built-in `topology/topology.toml`.
    pub file: Option<PathBuf>,
    /// The kind of queue the description's quorum queues (the stages' work
    /// and dead-letter queues) become: see [`WorkQueues`].
    pub work_queues: WorkQueues,
}

/// The kind of the stages' work and dead-letter queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkQueues {
    /// Quorum queues, as the topology describes them: replicated across a
    /// cluster, each delivery confirmed once written to a majority's disk and
    /// delivered only after that, with the broker's delivery limit as a
    /// backstop against poison messages.
    Quorum,
    /// Durable classic queues: one node's disk, which is all a single-node
    /// broker has anyway. A message goes to its consumer at once while its
    /// publisher's confirm waits for the disk, so each hop is several
    /// milliseconds faster. The broker keeps no delivery count; the runtime
    /// keeps its own (see `runtime`).
    Classic,
}

/// Broker-held retry delays.
#[derive(Debug, Clone, Deserialize)]
pub struct RetrySettings {
    /// One delay tier per retry, in milliseconds; a task gets
    /// `delays_ms.len() + 1` attempts at a stage.
    #[serde(deserialize_with = "one_or_many")]
    pub delays_ms: Vec<u64>,
}

/// The document store.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    /// Folder of the local document store (used when `url` is unset).
    pub root: PathBuf,
    /// An object-store URL such as `s3://bucket/prefix`, for stages on
    /// several machines; credentials come from the usual `AWS_*` variables
    /// unless the keys below are set.
    pub url: Option<String>,
    /// The S3 API's address, for an S3-compatible server (MinIO, Ceph,
    /// moto) rather than AWS, such as `http://127.0.0.1:9000`; requests go
    /// path-style (`endpoint/bucket/key`). Plain `http://` is allowed when
    /// named here. Unset: AWS, or `AWS_ENDPOINT`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The S3 region; unset: `AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// The S3 access key id; set with `secret_access_key`, it wins over
    /// `AWS_ACCESS_KEY_ID` (several stores, one environment).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The S3 secret key that goes with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Folders a `file://` document reference may point into.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_roots: Vec<PathBuf>,
    /// Largest document accepted, in bytes.
    pub max_document_bytes: u64,
    /// How long an idempotency key holds, in ms, from the first submit
    /// under it: a submit with the same key within it answers the first
    /// task; after it, a new task starts. The claims live in the store, so
    /// the API and ingest read the same window. Positive; 24 h by default.
    pub idempotency_window_ms: u64,
}

/// The S3 keys of `store` make sense together: an endpoint is an
/// `http(s)` URL and is used only with `store.url`; a key id comes with
/// its secret.
fn validate_s3(store: &StoreSettings) -> anyhow::Result<()> {
    if let Some(endpoint) = &store.endpoint {
        let parsed = url::Url::parse(endpoint)
            .with_context(|| format!("store.endpoint {endpoint:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("store.endpoint {endpoint:?} must be an http:// or https:// URL");
        }
    }
    let s3_keys = store.endpoint.is_some()
        || store.region.is_some()
        || store.access_key_id.is_some()
        || store.secret_access_key.is_some();
    if s3_keys && store.url.is_none() {
        bail!(
            "store.endpoint, store.region and the store's keys apply to store.url \
             (s3://bucket/prefix), which is unset"
        );
    }
    if store.access_key_id.is_some() != store.secret_access_key.is_some() {
        bail!("store.access_key_id and store.secret_access_key go together: set both or neither");
    }
    Ok(())
}

impl StoreSettings {
    /// [`StoreSettings::idempotency_window_ms`] as a duration.
    pub fn idempotency_window(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(
            i64::try_from(self.idempotency_window_ms).unwrap_or(i64::MAX),
        )
    }
}

/// How the stages run.
#[derive(Debug, Clone, Deserialize)]
pub struct StageSettings {
    /// Messages a stage works on at once (its prefetch).
    pub concurrency: u16,
    /// Longest a handler may run before the attempt is abandoned, in ms.
    pub handler_timeout_ms: u64,
    /// Deliveries of one message after which it is treated as poison (it
    /// killed its worker that many times) and dead-lettered.
    pub max_deliveries: u32,
    /// Threads for the filter and extract rules, shared by every stage of
    /// the process (0: one per core). Fixed, so that the regex match caches
    /// the rules keep per thread stay bounded (see [`crate::cpu`]).
    #[serde(default)]
    pub cpu_threads: u16,
}

/// How the parse stage runs the parser.
#[derive(Debug, Clone, Deserialize)]
pub struct ParseSettings {
    /// Where a document is parsed: see [`ParseIsolation`].
    pub isolation: ParseIsolation,
    /// Address space one parse process may take, in MiB (`RLIMIT_AS`); its
    /// OCR processes get no more. Past it the parse fails as
    /// `parser_crashed`. A PDF needs 400 at least (its extraction thread
    /// alone reserves a 256 MiB stack).
    pub max_memory_mb: u64,
    /// CPU time one parse process may use, in seconds (`RLIMIT_CPU`): a
    /// backstop behind `timeout_ms` for a process its worker lost.
    pub max_cpu_seconds: u64,
    /// Longest the parse of one message's documents may take, in ms; its
    /// processes are killed then and the task fails as `parse_timeout`.
    /// Below `stages.handler_timeout_ms`; unset, 90% of it.
    pub timeout_ms: Option<u64>,
    /// Plain text and Markdown originals up to this size, in bytes, are
    /// parsed in the worker's process even with `isolation = "process"`:
    /// their parsers decode and split lines in one linear pass, so a child
    /// process (5 to 7 ms of CPU to start, more than the whole rest of a
    /// small document's pipeline) buys them nothing. 0 sends every
    /// document to a child.
    pub in_process_text_max_bytes: u64,
    /// The tenderflow binary run as `PROGRAM parse-child`. Unset, this
    /// binary (or, from a test or an example, the tenderflow binary cargo
    /// built beside it).
    pub program: Option<PathBuf>,
}

/// Where the parse stage parses a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseIsolation {
    /// A child process per document, with its memory and CPU limits, killed
    /// (with its OCR processes) at the timeout: a slow, hostile or crashing
    /// document costs only its own process.
    Process,
    /// On the worker's blocking pool: a few milliseconds faster per
    /// document, but nothing bounds its memory, a crash takes the worker
    /// down, and a parse abandoned at the handler timeout runs on.
    InProcess,
}

/// The projector.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectorSettings {
    /// The embedded database file of the task view.
    pub db_path: PathBuf,
    /// Most events the projector may be behind the events stream's last
    /// entry (as the metrics poller last read it) and still answer ready on
    /// `/readyz`. At least 1.
    pub ready_max_lag: u64,
    /// Days a finished task (done, failed, duplicate, cancelled) stays in
    /// the view after it finished; then it is pruned with its events. 0
    /// keeps every task for ever. A failed task stays while a dead letter
    /// of it waits.
    pub retain_finished_days: u32,
    /// How often the projector prunes, in milliseconds. At least 1.
    pub retention_interval_ms: u64,
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Listen address.
    pub addr: String,
    /// Bearer token required, when set, by every endpoint that shows or
    /// changes tasks (the dashboard page, health, readiness and metrics
    /// stay open). Empty is an error.
    pub token: Option<Secret>,
    /// Largest request body, in bytes.
    pub body_limit_bytes: u64,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest wait for a request's head (line and headers), in ms: a
    /// client that sends it slower is cut off (slowloris).
    pub header_timeout_ms: u64,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `tenderflow=debug`.
    pub filter: String,
}

/// Prometheus metrics. `serve` (and `run`) always answer `GET /metrics`
/// on the API's address; a worker has no HTTP server unless `addr` is set.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// Where `worker` and `run` serve `GET /metrics`, such as `0.0.0.0:9090`;
    /// unset means no metrics server of their own.
    pub addr: Option<String>,
    /// How often queue depths are polled (passive declares), in ms.
    pub poll_interval_ms: u64,
}

/// Completion callbacks: where they may go, how they are signed, how long
/// one may take. See the README's "Completion callbacks".
#[derive(Debug, Clone, Deserialize)]
pub struct NotifySettings {
    /// Hosts a callback URL may name: exact names or IP addresses, or
    /// `*.example.com` for any name under it. Empty (the default), every
    /// callback is refused at submission: tenderflow makes no request to a
    /// host nobody chose (server-side request forgery). A name that resolves
    /// to a loopback, private or link-local address is refused unless that
    /// address is listed too.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_hosts: Vec<String>,
    /// Whether `http://` callback URLs are allowed beside `https://`.
    pub allow_http: bool,
    /// The HMAC-SHA256 key of the `X-Tenderflow-Signature` header; needed
    /// once `allowed_hosts` is set.
    pub secret: Option<Secret>,
    /// The callback of a task submitted without one (through the API or
    /// `tenderflow submit`); unset, such a task has none.
    pub default_url: Option<String>,
    /// Where the API is reached from outside, such as
    /// `https://tenders.example.com`: the callback's `summary_url` is made
    /// from it. Unset, `summary_url` is the path alone.
    pub public_url: Option<String>,
    /// Longest one callback request may take, connecting included, in ms.
    pub timeout_ms: u64,
    /// Callbacks in flight at once per notify consumer (its prefetch).
    pub concurrency: u16,
}

/// A list, or a single value standing for a list of one: the environment
/// gives `TENDERFLOW__RETRY__DELAYS_MS=1000` as one number, not a list. The
/// list's elements still go through the source's own deserializer, which
/// turns the strings of `250,500` into numbers.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{self, IntoDeserializer, SeqAccess, Visitor};

    struct OneOrMany<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list or a single value")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            Ok(vec![T::deserialize(v.into_deserializer())?])
        }
    }

    deserializer.deserialize_any(OneOrMany(std::marker::PhantomData))
}

const DEFAULTS: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
reconnect_max_delay_ms = 10000
connect_timeout_ms = 15000
frame_max = 16384

[amqp.tls]

[topology]
prefix = "tenderflow"
work_queues = "quorum"

[retry]
delays_ms = [1000, 10000, 60000, 600000]

[store]
root = "data/store"
allowed_roots = []
max_document_bytes = 67108864
idempotency_window_ms = 86400000

[stages]
concurrency = 4
handler_timeout_ms = 120000
max_deliveries = 5
cpu_threads = 0

[parse]
isolation = "process"
in_process_text_max_bytes = 262144
max_memory_mb = 2048
max_cpu_seconds = 300

[projector]
db_path = "data/projector.sqlite3"
ready_max_lag = 1000
retain_finished_days = 90
retention_interval_ms = 3600000

[http]
addr = "127.0.0.1:8080"
body_limit_bytes = 67108864
max_connections = 512
header_timeout_ms = 10000

[log]
format = "text"
filter = "info"

[llm]
model = "gpt-4o-mini"
timeout_ms = 60000
max_retries = 3
token_budget = 200000

[metrics]
poll_interval_ms = 5000

[notify]
allowed_hosts = []
allow_http = false
timeout_ms = 10000
concurrency = 4
"#;

/// The least address space a parse process is given: the binary and its
/// libraries take a few tens of MiB before it reads a byte.
const MIN_PARSE_MEMORY_MB: u64 = 64;

/// The smallest frame AMQP 0-9-1 allows.
const MIN_FRAME_MAX: u32 = 4096;

impl AmqpSettings {
    /// The broker's nodes, in the order they are tried: `urls`, or `url`
    /// alone when `urls` is empty.
    pub fn nodes(&self) -> &[Secret] {
        if self.urls.is_empty() {
            std::slice::from_ref(&self.url)
        } else {
            &self.urls
        }
    }

    /// Whether the connections are TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.nodes()[0].expose().starts_with("amqps://")
    }

    /// Every URL with `frame_max` in its query, unless it has one already
    /// (the URL's own value wins).
    fn with_frame_max(&mut self) -> anyhow::Result<()> {
        self.url = url_with_frame_max(&self.url, self.frame_max, "amqp.url")?;
        for (i, node) in self.urls.iter_mut().enumerate() {
            *node = url_with_frame_max(node, self.frame_max, &format!("amqp.urls[{i}]"))?;
        }
        Ok(())
    }

    /// Each node's URL is AMQP, and all of them are TLS or none is (the
    /// `amqp.tls` files apply to every node).
    fn check_nodes(&self) -> anyhow::Result<()> {
        let name = |i: usize| {
            if self.urls.is_empty() {
                "amqp.url".to_string()
            } else {
                format!("amqp.urls[{i}]")
            }
        };
        let tls = self.is_tls();
        for (i, node) in self.nodes().iter().enumerate() {
            // No message with the URL in it: it holds the password.
            let url = node.expose();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                bail!("{} must start with amqp:// or amqps://", name(i));
            }
            if url.starts_with("amqps://") != tls {
                bail!(
                    "{} and {} differ in TLS: every node of amqp.urls is amqps:// or none is",
                    name(0),
                    name(i)
                );
            }
        }
        if self.connect_timeout_ms == 0 {
            bail!("amqp.connect_timeout_ms must be more than 0");
        }
        Ok(())
    }
}

/// `url` with `frame_max` in its query, unless it has one already (the
/// URL's own value wins). `setting` names it in an error.
fn url_with_frame_max(url: &Secret, frame_max: u32, setting: &str) -> anyhow::Result<Secret> {
    // No context with the URL in it: it holds the password.
    let mut parsed = url::Url::parse(url.expose())
        .map_err(|_| anyhow::anyhow!("{setting} is not a valid URL"))?;
    if parsed.query_pairs().any(|(key, _)| key == "frame_max") {
        return Ok(url.clone());
    }
    parsed
        .query_pairs_mut()
        .append_pair("frame_max", &frame_max.to_string());
    Ok(Secret::new(parsed))
}

impl Settings {
    /// Loads settings: defaults, then `file` (or `TENDERFLOW_CONFIG`), then the
    /// environment; then checks them.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        Self::load_with_env(file, None)
    }

    /// As [`Settings::load`], but with `env` standing in for the process's
    /// `TENDERFLOW__*` variables when given: for checking variable names and
    /// values (a deployment file's, say) without touching the environment.
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> anyhow::Result<Settings> {
        let env_file = std::env::var_os("TENDERFLOW_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = &file {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            builder = builder.add_source(config::File::from(path.as_path()));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("TENDERFLOW")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("retry.delays_ms")
                .with_list_parse_key("amqp.urls")
                .with_list_parse_key("store.allowed_roots")
                .with_list_parse_key("notify.allowed_hosts")
                .try_parsing(true)
                .source(env),
        );
        let mut settings: Settings = builder
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("configuration is invalid")?;
        settings.validate()?;
        settings.amqp.with_frame_max()?;
        Ok(settings)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.amqp.check_nodes()?;
        self.amqp.tls.check(self.amqp.is_tls())?;
        if self.amqp.frame_max < MIN_FRAME_MAX {
            bail!("amqp.frame_max must be at least {MIN_FRAME_MAX}");
        }
        let prefix = &self.topology.prefix;
        if prefix.is_empty()
            || prefix.len() > 100
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("topology.prefix must be 1 to 100 characters of A-Z, a-z, 0-9, '-', '_' or '.'");
        }
        if self.retry.delays_ms.contains(&0) {
            bail!("retry.delays_ms must be positive");
        }
        if self.stages.concurrency == 0 {
            bail!("stages.concurrency must be at least 1");
        }
        if self.stages.max_deliveries < 2 {
            bail!("stages.max_deliveries must be at least 2");
        }
        if self.parse.max_memory_mb < MIN_PARSE_MEMORY_MB {
            bail!("parse.max_memory_mb must be at least {MIN_PARSE_MEMORY_MB}");
        }
        if self.parse.max_cpu_seconds == 0 {
            bail!("parse.max_cpu_seconds must be positive");
        }
        if let Some(timeout) = self.parse.timeout_ms
            && (timeout == 0 || timeout >= self.stages.handler_timeout_ms)
        {
            bail!(
                "parse.timeout_ms must be positive and below stages.handler_timeout_ms ({}), \
                 so that the parse stage stops its parse before the runtime abandons the handler",
                self.stages.handler_timeout_ms
            );
        }
        if self.store.max_document_bytes == 0 {
            bail!("store.max_document_bytes must be positive");
        }
        validate_s3(&self.store)?;
        if self.store.idempotency_window_ms == 0
            || self.store.idempotency_window_ms > i64::MAX as u64
        {
            bail!("store.idempotency_window_ms must be positive (86400000 is a day)");
        }
        if self.http.max_connections == 0 || self.http.header_timeout_ms == 0 {
            bail!("http.max_connections and http.header_timeout_ms must be positive");
        }
        if self
            .http
            .token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            bail!(
                "http.token is set but empty: set a real token, or leave it out to run without one"
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be text or json");
        }
        self.http
            .addr
            .parse::<std::net::SocketAddr>()
            .with_context(|| {
                format!(
                    "http.addr {:?} is not an address such as 127.0.0.1:8080",
                    self.http.addr
                )
            })?;
        if let Some(addr) = &self.metrics.addr {
            addr.parse::<std::net::SocketAddr>().with_context(|| {
                format!("metrics.addr {addr:?} is not an address such as 0.0.0.0:9090")
            })?;
        }
        if self.metrics.poll_interval_ms == 0 {
            bail!("metrics.poll_interval_ms must be positive");
        }
        if self.projector.ready_max_lag == 0 {
            bail!("projector.ready_max_lag must be at least 1 (events)");
        }
        if self.projector.retention_interval_ms == 0 {
            bail!("projector.retention_interval_ms must be at least 1");
        }
        self.validate_notify()
    }

    fn validate_notify(&self) -> anyhow::Result<()> {
        let notify = &self.notify;
        if notify.timeout_ms == 0 || notify.concurrency == 0 {
            bail!("notify.timeout_ms and notify.concurrency must be positive");
        }
        if let Some(host) = notify.allowed_hosts.iter().find(|h| {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            bare.is_empty()
                || bare.contains(['/', ':', '*', ' ']) && bare.parse::<std::net::IpAddr>().is_err()
        }) {
            bail!(
                "notify.allowed_hosts: {host:?} is not a host name, an IP address or *.domain (no scheme, port or path)"
            );
        }
        let secret = notify.secret.as_ref().map(|s| s.expose().trim());
        if !notify.allowed_hosts.is_empty() && secret.is_none_or(str::is_empty) {
            bail!(
                "notify.secret must be set once notify.allowed_hosts is: every callback is signed with it"
            );
        }
        if let Some(url) = &notify.default_url {
            crate::notify::policy::CallbackPolicy::from_settings(notify)
                .check(url)
                .map_err(|e| anyhow::anyhow!("notify.default_url: {e}"))?;
        }
        if let Some(public) = &notify.public_url {
            let parsed = url::Url::parse(public)
                .with_context(|| format!("notify.public_url {public:?} is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("notify.public_url must be an http or https URL");
            }
        }
        Ok(())
    }

    /// Longest the parse of one message may take: `parse.timeout_ms`, or
    /// 90% of the handler's limit, so that the parse stage stops its parse
    /// (and says so) before the runtime abandons the handler.
    pub fn parse_timeout(&self) -> std::time::Duration {
        let ms = self
            .parse
            .timeout_ms
            .unwrap_or(self.stages.handler_timeout_ms / 10 * 9);
        std::time::Duration::from_millis(ms)
    }

    /// How many attempts a stage makes before dead-lettering.
    pub fn max_attempts(&self) -> u32 {
        self.retry.delays_ms.len() as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.topology.prefix, "tenderflow");
        assert_eq!(settings.retry.delays_ms, vec![1000, 10000, 60000, 600000]);
        assert_eq!(settings.max_attempts(), 5);
    }

    #[test]
    fn a_single_value_in_the_environment_is_a_list_of_one() {
        let env = |k: &str, v: &str| Some([(k.to_string(), v.to_string())].into_iter().collect());
        let settings =
            Settings::load_with_env(None, env("TENDERFLOW__RETRY__DELAYS_MS", "1000")).unwrap();
        assert_eq!(settings.retry.delays_ms, vec![1000]);
        let settings =
            Settings::load_with_env(None, env("TENDERFLOW__RETRY__DELAYS_MS", "250,500")).unwrap();
        assert_eq!(settings.retry.delays_ms, vec![250, 500]);
        let settings = Settings::load_with_env(
            None,
            env("TENDERFLOW__STORE__ALLOWED_ROOTS", "/srv/tenders"),
        )
        .unwrap();
        assert_eq!(
            settings.store.allowed_roots,
            vec![PathBuf::from("/srv/tenders")]
        );
    }

    /// `vars` as the environment [`Settings::load_with_env`] takes.
    fn vars(vars: &[(&str, &str)]) -> Option<std::collections::HashMap<String, String>> {
        Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_url_asks_for_small_frames_unless_it_names_its_own() {
        let env = vars;
        let settings = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(
            settings.amqp.url.expose(),
            "amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=16384"
        );
        let settings = Settings::load_with_env(
            None,
            env(&[
                (
                    "TENDERFLOW__AMQP__URL",
                    "amqps://u:p%40ss@mq:5671/prod?heartbeat=30",
                ),
                ("TENDERFLOW__AMQP__FRAME_MAX", "8192"),
            ]),
        )
        .unwrap();
        assert_eq!(
            settings.amqp.url.expose(),
            "amqps://u:p%40ss@mq:5671/prod?heartbeat=30&frame_max=8192"
        );
        let own = "amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=131072";
        let settings =
            Settings::load_with_env(None, env(&[("TENDERFLOW__AMQP__URL", own)])).unwrap();
        assert_eq!(settings.amqp.url.expose(), own);
        let tiny = Settings::load_with_env(None, env(&[("TENDERFLOW__AMQP__FRAME_MAX", "512")]));
        assert!(tiny.is_err());
    }

    #[test]
    fn the_nodes_of_a_cluster_replace_the_one_url() {
        let env = vars;
        let one = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(one.amqp.nodes().len(), 1);
        assert_eq!(one.amqp.nodes()[0].expose(), one.amqp.url.expose());

        let nodes = "amqp://u:p@mq1:5672/%2f,amqp://u:p@mq2:5672/%2f?frame_max=8192";
        let cluster =
            Settings::load_with_env(None, env(&[("TENDERFLOW__AMQP__URLS", nodes)])).unwrap();
        let urls: Vec<&str> = cluster.amqp.nodes().iter().map(|u| u.expose()).collect();
        assert_eq!(
            urls,
            [
                "amqp://u:p@mq1:5672/%2f?frame_max=16384",
                "amqp://u:p@mq2:5672/%2f?frame_max=8192"
            ]
        );
        assert_eq!(
            crate::broker::node_label(&cluster.amqp.nodes()[1]),
            "mq2:5672"
        );

        let mixed = "amqps://u:p@mq1/%2f,amqp://u:p@mq2/%2f";
        let err =
            Settings::load_with_env(None, env(&[("TENDERFLOW__AMQP__URLS", mixed)])).unwrap_err();
        assert!(format!("{err:#}").contains("differ in TLS"), "{err:#}");
        assert!(
            !format!("{err:#}").contains("u:p"),
            "no credentials: {err:#}"
        );

        let bad = "amqp://u:p@mq1/%2f,http://mq2/";
        let err =
            Settings::load_with_env(None, env(&[("TENDERFLOW__AMQP__URLS", bad)])).unwrap_err();
        assert!(
            format!("{err:#}").contains("amqp.urls[1] must start with amqp://"),
            "{err:#}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn the_parse_timeout_stays_below_the_handlers() {
        let mut settings = Settings::load(None).unwrap();
        assert_eq!(settings.parse.isolation, ParseIsolation::Process);
        assert_eq!(settings.parse_timeout().as_millis(), 108_000);
        settings.parse.timeout_ms = Some(5_000);
        assert_eq!(settings.parse_timeout().as_millis(), 5_000);
        settings.parse.timeout_ms = Some(settings.stages.handler_timeout_ms);
        assert!(settings.validate().is_err());
        settings.parse.timeout_ms = None;
        settings.parse.max_memory_mb = 16;
        assert!(settings.validate().is_err());
        let env = [("TENDERFLOW__PARSE__ISOLATION", "in_process")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let settings = Settings::load_with_env(None, Some(env.into_iter().collect())).unwrap();
        assert_eq!(settings.parse.isolation, ParseIsolation::InProcess);
    }

    #[test]
    fn a_bad_prefix_is_refused() {
        let mut settings = Settings::load(None).unwrap();
        settings.topology.prefix = "a b".into();
        assert!(settings.validate().is_err());
    }

    #[test]
    fn a_zero_readiness_lag_is_refused() {
        let mut settings = Settings::load(None).unwrap();
        settings.projector.ready_max_lag = 0;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("projector.ready_max_lag"), "{err}");
    }

    #[test]
    fn the_idempotency_window_is_a_day_and_must_be_positive() {
        let mut settings = Settings::load(None).unwrap();
        assert_eq!(
            settings.store.idempotency_window(),
            chrono::Duration::hours(24)
        );
        settings.store.idempotency_window_ms = 0;
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains("store.idempotency_window_ms"), "{err}");
    }

    #[test]
    fn the_s3_keys_are_read_from_the_environment_and_checked() {
        let env = [
            ("TENDERFLOW__STORE__URL", "s3://tenders/prod"),
            ("TENDERFLOW__STORE__ENDPOINT", "http://127.0.0.1:9000"),
            ("TENDERFLOW__STORE__ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("TENDERFLOW__STORE__SECRET_ACCESS_KEY", "hush"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let settings = Settings::load_with_env(None, Some(env.into_iter().collect())).unwrap();
        settings.validate().unwrap();
        assert_eq!(
            settings.store.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(!format!("{settings:?}").contains("hush"));
        let refused = |tweak: fn(&mut Settings), says: &str| {
            let mut bad = settings.clone();
            tweak(&mut bad);
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        };
        refused(|s| s.store.endpoint = Some("ftp://x".into()), "http://");
        refused(|s| s.store.endpoint = Some("not a url".into()), "not a URL");
        refused(|s| s.store.secret_access_key = None, "go together");
        refused(|s| s.store.url = None, "store.url");
    }
}

#[cfg(test)]
mod notify_settings {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_with_env(None, Some(env))
    }

    #[test]
    fn callbacks_need_a_secret_and_a_default_on_the_list() {
        let off = with(&[]).unwrap();
        assert!(off.notify.allowed_hosts.is_empty());
        let err = with(&[("TENDERFLOW__NOTIFY__ALLOWED_HOSTS", "hooks.example.com")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("notify.secret"), "{err}");
        let on = with(&[
            (
                "TENDERFLOW__NOTIFY__ALLOWED_HOSTS",
                "hooks.example.com,10.0.0.5",
            ),
            ("TENDERFLOW__NOTIFY__SECRET", "k"),
            (
                "TENDERFLOW__NOTIFY__DEFAULT_URL",
                "https://hooks.example.com/t",
            ),
        ])
        .unwrap();
        assert_eq!(on.notify.allowed_hosts, ["hooks.example.com", "10.0.0.5"]);
        assert!(!format!("{on:?}").contains("secret: Some(Secret(\"k"));
        let err = with(&[
            ("TENDERFLOW__NOTIFY__ALLOWED_HOSTS", "hooks.example.com"),
            ("TENDERFLOW__NOTIFY__SECRET", "k"),
            (
                "TENDERFLOW__NOTIFY__DEFAULT_URL",
                "https://elsewhere.example.com/t",
            ),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("notify.default_url"), "{err:#}");
        let err = with(&[
            (
                "TENDERFLOW__NOTIFY__ALLOWED_HOSTS",
                "https://hooks.example.com/",
            ),
            ("TENDERFLOW__NOTIFY__SECRET", "k"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("no scheme, port or path"), "{err}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_example_file_states_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("tenderflow.example.toml");
        let from_file = Settings::load(Some(&example)).unwrap();
        let defaults = Settings::load(None).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }
}
