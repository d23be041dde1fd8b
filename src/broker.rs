//! Connecting to RabbitMQ and publishing with confirms.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use backoff::ExponentialBackoff;
use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ConnectionStatus,
    PublisherConfirm,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;
use crate::events::Event;
use crate::secret::Secret;
use crate::topology::Topology;

/// Connects, retrying with exponential backoff until the broker answers or
/// `token` is cancelled (then `None`). `name` shows in the broker's
/// connection list.
pub async fn connect(
    settings: &Settings,
    name: &str,
    token: &CancellationToken,
) -> Option<Connection> {
    let policy = ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_millis(settings.amqp.reconnect_max_delay_ms),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let attempt = || async {
        connect_once(settings, name)
            .await
            .map_err(backoff::Error::transient)
    };
    let notify = |err: anyhow::Error, wait: Duration| {
        tracing::warn!(
            error = format!("{err:#}"),
            retry_in_ms = wait.as_millis() as u64,
            "broker unreachable"
        );
    };
    tokio::select! {
        _ = token.cancelled() => None,
        conn = backoff::future::retry_notify(policy, attempt, notify) => conn.ok(),
    }
}

/// The node a new connection tries first: the one that answered last.
/// One cursor per process, so that its workers' connections follow each
/// other to the node that is up instead of each finding it alone.
static LAST_NODE: AtomicUsize = AtomicUsize::new(0);

/// One connection attempt: to each node of `amqp.urls` in turn (or
/// `amqp.url`), from the one that answered last, until one answers. A
/// node gets `amqp.connect_timeout_ms` to answer. A refused certificate
/// ends the attempt at once: the other nodes would refuse it too.
pub async fn connect_once(settings: &Settings, name: &str) -> anyhow::Result<Connection> {
    let nodes = settings.amqp.nodes();
    let first = LAST_NODE.load(Ordering::Relaxed) % nodes.len();
    let mut refusals = Vec::new();
    for index in (first..nodes.len()).chain(0..first) {
        let url = &nodes[index];
        match connect_node(settings, url, name).await {
            Ok(conn) => {
                let previous = LAST_NODE.swap(index, Ordering::Relaxed);
                if nodes.len() > 1 && previous % nodes.len() != index {
                    tracing::info!(node = node_label(url), "connected to another node");
                }
                return Ok(conn);
            }
            Err(err) if refused_certificate(&err) => return Err(err),
            Err(err) => refusals.push(err.context(format!("node {}", node_label(url)))),
        }
    }
    if refusals.len() == 1 {
        return Err(refusals.remove(0));
    }
    let each: Vec<String> = refusals.iter().map(|e| format!("{e:#}")).collect();
    Err(anyhow::anyhow!(
        "no node of amqp.urls answered: {}",
        each.join("; ")
    ))
}

/// A node's `host:port`, for logs and errors (never its credentials).
pub fn node_label(url: &Secret) -> String {
    match host_port(url) {
        Some((host, port)) => format!("{}:{port}", if host.is_empty() { "?" } else { &host }),
        None => "(not a URL)".to_string(),
    }
}

/// A node URL's host and port (AMQP's default port for its scheme when the
/// URL names none).
fn host_port(url: &Secret) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url.expose()).ok()?;
    let default = if parsed.scheme() == "amqps" {
        5671
    } else {
        5672
    };
    Some((
        parsed.host_str().unwrap_or_default().to_string(),
        parsed.port().unwrap_or(default),
    ))
}

/// `err` said to be a refused certificate, with where to look.
fn certificate_refusal(err: anyhow::Error) -> anyhow::Error {
    err.context(
        "TLS to the broker refused a certificate (check amqp.tls.ca_file, \
         amqp.tls.cert_file and the host name in amqp.url)",
    )
}

/// One connection attempt to one node (TLS for an `amqps://` URL, as
/// `amqp.tls` says).
async fn connect_node(settings: &Settings, url: &Secret, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    let tls = tls_config(&settings.amqp.tls)?;
    let runtime = lapin::runtime::default_runtime().context("the AMQP client's runtime")?;
    let limit = Duration::from_millis(settings.amqp.connect_timeout_ms);
    let connecting = Connection::connect_with_config(url.expose(), properties, tls, runtime);
    let connected = match tokio::time::timeout(limit, connecting).await {
        Ok(connected) => connected,
        Err(_) => anyhow::bail!(
            "the node did not answer within {} ms (amqp.connect_timeout_ms)",
            limit.as_millis()
        ),
    };
    match connected {
        Ok(conn) => Ok(conn),
        Err(err) => {
            let err = anyhow::Error::new(err);
            if refused_certificate(&err) {
                Err(certificate_refusal(err))
            } else {
                Err(err.context("connecting to the broker"))
            }
        }
    }
}

/// The client side of TLS: the CA file's certificates trusted besides the
/// system's roots, and the client certificate for mutual TLS. Read at each
/// connection, so renewed files are picked up by the next reconnect.
fn tls_config(tls: &crate::config::AmqpTlsSettings) -> anyhow::Result<lapin::tcp::OwnedTLSConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    let cert_chain = match &tls.ca_file {
        Some(path) => Some(
            String::from_utf8(read(path)?)
                .with_context(|| format!("{} is not PEM text", path.display()))?,
        ),
        None => None,
    };
    let identity = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        _ => None,
    };
    Ok(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// Why the TLS handshake failed, when it failed on a certificate: ours was
/// refused, or the broker's is not trusted or does not name the host. Such
/// a failure does not pass by itself, unlike a broker that is down.
pub fn refused_certificate(err: &anyhow::Error) -> bool {
    let lower = format!("{err:#}").to_lowercase();
    // rustls's words for a certificate it refused, and the alerts a broker
    // sends when it refuses ours (TLS 1.3 reports those after the
    // handshake, on the first read).
    const SIGNS: [&str; 6] = [
        "invalid peer certificate",
        "received fatal alert: certificaterequired",
        "received fatal alert: badcertificate",
        "received fatal alert: unknownca",
        "received fatal alert: certificateunknown",
        "received fatal alert: handshakefailure",
    ];
    SIGNS.iter().any(|sign| lower.contains(sign))
}

/// Connects once and fails at once when TLS refuses a certificate: what a
/// command checks before it starts anything, so that a wrong CA or client
/// certificate is a clear error at start-up, not a worker retrying for
/// ever. A broker that is merely unreachable is no error here: the workers
/// wait for it with backoff.
pub async fn check_tls(settings: &Settings) -> anyhow::Result<()> {
    if !settings.amqp.is_tls() {
        return Ok(());
    }
    let probing = settings.clone();
    tokio::task::spawn_blocking(move || probe_tls(&probing))
        .await
        .context("the TLS check's thread")??;
    match connect_once(settings, "tenderflow-tls-check").await {
        Ok(conn) => {
            let _ = within("closing", conn.close(200, "checked".into())).await;
            Ok(())
        }
        Err(err) if refused_certificate(&err) => Err(err),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "broker unreachable at start-up");
            Ok(())
        }
    }
}

/// How long the TLS check listens after the handshake for a refusal.
const REFUSAL_WAIT: Duration = Duration::from_millis(1500);

/// The TLS handshake with the first node that answers, then a read before
/// anything is written. With TLS 1.3 a broker that wants a client
/// certificate and got none sends its `certificate_required` alert after
/// the handshake and closes; lapin writes its protocol header at once, and
/// when the close came first the reset that answers the write loses the
/// alert, so the refusal looked like a broker gone away. An AMQP broker
/// says nothing until the client's header, so silence is acceptance. A
/// node that does not answer is skipped; none answering is no error here.
fn probe_tls(settings: &Settings) -> anyhow::Result<()> {
    use std::io::Read;
    let tls = tls_config(&settings.amqp.tls)?;
    let limit = Duration::from_millis(settings.amqp.connect_timeout_ms);
    let refused = |err: std::io::Error, url: &Secret| {
        let err = anyhow::Error::new(err).context(format!("node {}", node_label(url)));
        if refused_certificate(&err) {
            Err(certificate_refusal(err))
        } else {
            Ok(())
        }
    };
    for url in settings.amqp.nodes() {
        let Some((host, port)) = host_port(url) else {
            continue;
        };
        let Ok(addr) = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)) else {
            continue;
        };
        let Some(addr) = addr.into_iter().next() else {
            continue;
        };
        let Ok(plain) = lapin::tcp::TcpStream::connect_timeout(addr, limit) else {
            continue;
        };
        let started = std::time::Instant::now();
        let mut handshake = plain.into_tls(&host, tls.as_ref());
        let mut stream = loop {
            match handshake {
                Ok(stream) => break Some(stream),
                Err(lapin::tcp::HandshakeError::Failure(err)) => return refused(err, url),
                Err(lapin::tcp::HandshakeError::WouldBlock(mid)) => {
                    if started.elapsed() > limit {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    handshake = mid.handshake();
                }
            }
        };
        let Some(stream) = stream.as_mut() else {
            continue;
        };
        // Blocking from here, for at most the wait: the read ends at the
        // alert, at a close, or at the timeout.
        let socket: &std::net::TcpStream = stream;
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(REFUSAL_WAIT))?;
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                // Data (which no AMQP broker sends first), or a close with
                // no alert: no refusal seen; the connection that follows
                // tells the rest.
                Ok(_) => return Ok(()),
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(());
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return refused(err, url),
            }
        }
    }
    Ok(())
}

/// A channel on `conn` with `prefetch` deliveries in hand at most, and a
/// consumer of `queue` on it under the tag `tag`: what every consuming
/// loop (the stage runtime, the notify consumer) starts with.
pub async fn open_consumer(
    conn: &Connection,
    queue: &str,
    tag: &str,
    prefetch: u16,
) -> anyhow::Result<(Channel, lapin::Consumer)> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}

/// Longest wait for the broker to take a publish, confirm it, or take an
/// ack or a close. When a connection dies under it, lapin can leave these
/// futures pending for ever; a bounded wait turns that into an error, so
/// the caller requeues and reconnects instead of hanging.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// `future`, or an error saying what timed out after [`BROKER_TIMEOUT`].
pub async fn within<T, E>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(BROKER_TIMEOUT, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => anyhow::bail!(
            "{what}: no answer from the broker in {} s",
            BROKER_TIMEOUT.as_secs()
        ),
    }
}

/// How often a wait on a publishing connection looks whether the broker
/// has blocked it.
const BLOCKED_CHECK: Duration = Duration::from_millis(500);

/// `future`, or an error after [`BROKER_TIMEOUT`] of waiting, where time
/// spent while the broker blocks the connection (`connection.blocked`,
/// during a memory or disk alarm) does not count: a blocked publish waits
/// for the alarm to end, as RabbitMQ means it to, instead of failing into a
/// requeue and a reconnect that would only raise delivery counts.
pub async fn within_unless_blocked<T, E>(
    status: &ConnectionStatus,
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    tokio::pin!(future);
    let mut waited = Duration::ZERO;
    let mut paused = false;
    loop {
        match tokio::time::timeout(BLOCKED_CHECK, &mut future).await {
            Ok(result) => {
                if paused {
                    tracing::info!("the broker unblocked the connection; publishing again");
                }
                return result.map_err(Into::into);
            }
            Err(_) if status.blocked() => {
                if !paused {
                    tracing::warn!(
                        "{what}: the broker blocked the connection (a resource alarm); waiting"
                    );
                    paused = true;
                }
            }
            Err(_) if !status.connected() => {
                anyhow::bail!("{what}: the connection is closed")
            }
            Err(_) => {
                waited += BLOCKED_CHECK;
                if waited >= BROKER_TIMEOUT {
                    anyhow::bail!(
                        "{what}: no answer from the broker in {} s",
                        BROKER_TIMEOUT.as_secs()
                    );
                }
            }
        }
    }
}

/// How often a consuming loop makes sure that the broker still answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How long a probe waits for the broker's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the broker still answers on `channel`: the channel and its
/// connection are up, and a passive declare of `queue` (the queue the
/// caller consumes, so it exists) is answered in time.
///
/// A consuming loop asks this now and then beside waiting for its next
/// delivery: when the connection dies, lapin does not always tell the
/// channel or its consumer (its I/O loop can stop before the error reaches
/// them), so the consumer's stream neither yields nor ends, and a loop that
/// only waited for deliveries would wait forever instead of reconnecting.
pub async fn answers(conn: &Connection, channel: &Channel, queue: &str) -> bool {
    if !conn.status().connected() || !channel.status().connected() {
        return false;
    }
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declare = channel.queue_declare(queue.into(), passive, FieldTable::default());
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, declare).await,
        Ok(Ok(_))
    )
}

/// A timer for [`answers`]: first tick after [`PROBE_EVERY`], late ticks
/// delayed rather than bunched.
pub fn probe_timer() -> tokio::time::Interval {
    let mut timer =
        tokio::time::interval_at(tokio::time::Instant::now() + PROBE_EVERY, PROBE_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// A channel with publisher confirms on.
pub async fn confirm_channel(conn: &Connection) -> anyhow::Result<Channel> {
    let channel = conn.create_channel().await.context("opening a channel")?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .context("enabling publisher confirms")?;
    Ok(channel)
}

/// Connects once and declares the topology: for commands that do one thing.
pub async fn open(
    settings: &Settings,
    name: &str,
) -> anyhow::Result<(Connection, Channel, Topology)> {
    let topology = Topology::from_settings(settings)?;
    let conn = connect_once(settings, name).await?;
    let channel = confirm_channel(&conn).await?;
    topology.apply(&channel).await?;
    Ok((conn, channel, topology))
}

/// Deletes the queues and exchanges of the pipeline the settings describe
/// (best effort; see [`Topology::delete`]).
pub async fn delete_topology(settings: &Settings, name: &str) -> usize {
    let Ok(topology) = Topology::from_settings(settings) else {
        return 0;
    };
    let Ok(conn) = connect_once(settings, name).await else {
        return 0;
    };
    let deleted = topology.delete(&conn).await;
    let _ = conn.close(200, "done".into()).await;
    deleted
}

/// A message about to be published: body, routing and properties.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub task_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub headers: FieldTable,
}

impl Outgoing {
    /// A message to `exchange` with `routing_key`.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>, body: Vec<u8>) -> Self {
        Outgoing {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body,
            task_id: None,
            traceparent: None,
            headers: FieldTable::default(),
        }
    }

    /// A task event for the events exchange.
    pub fn event(topology: &Topology, event: &Event, traceparent: Option<&str>) -> Self {
        let mut out = Outgoing::new(
            topology.events_exchange(),
            event.routing_key(),
            event.encode(),
        );
        out.task_id = Some(event.task_id);
        out.traceparent = traceparent.map(str::to_string);
        out
    }

    /// Sets the task (correlation id) and trace context.
    pub fn for_task(mut self, task_id: Uuid, traceparent: Option<&str>) -> Self {
        self.task_id = Some(task_id);
        self.traceparent = traceparent.map(str::to_string);
        self
    }

    /// Adds a string header.
    pub fn header(mut self, key: &str, value: impl Into<String>) -> Self {
        let value: String = value.into();
        self.headers.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
        self
    }

    /// Adds an integer header.
    pub fn int_header(mut self, key: &str, value: i64) -> Self {
        self.headers
            .insert(ShortString::from(key), AMQPValue::LongLongInt(value));
        self
    }

    fn properties(&self) -> BasicProperties {
        let mut headers = self.headers.clone();
        if let Some(traceparent) = &self.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(LongString::from(traceparent.as_str())),
            );
        }
        let mut props = BasicProperties::default()
            .with_message_id(ShortString::from(Uuid::now_v7().to_string()))
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_timestamp(Utc::now().timestamp().max(0) as u64)
            .with_headers(headers);
        if let Some(task_id) = self.task_id {
            props = props.with_correlation_id(ShortString::from(task_id.to_string()));
        }
        props
    }
}

/// Publishes `message` as mandatory and persistent; the returned future
/// resolves when the broker confirms it. The channel must carry no other
/// publish until that confirm is in (see [`ConfirmChannels`]).
pub async fn publish(channel: &Channel, message: &Outgoing) -> anyhow::Result<PendingConfirm> {
    publish_on(channel, None, message).await
}

/// [`publish`] on a connection whose `status` is watched: while the broker
/// blocks it, the publish and its confirm wait without timing out.
pub async fn publish_on(
    channel: &Channel,
    status: Option<&ConnectionStatus>,
    message: &Outgoing,
) -> anyhow::Result<PendingConfirm> {
    let target = format!("{}/{}", message.exchange, message.routing_key);
    let publish = channel.basic_publish(
        message.exchange.as_str().into(),
        message.routing_key.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        },
        &message.body,
        message.properties(),
    );
    let what = format!("publishing to {target}");
    let confirm = match status {
        Some(status) => within_unless_blocked(status, &what, publish).await?,
        None => within(&what, publish).await?,
    };
    Ok(PendingConfirm {
        confirm,
        target,
        status: status.cloned(),
        lent: None,
    })
}

/// A publish waiting for the broker's confirm.
pub struct PendingConfirm {
    confirm: PublisherConfirm,
    target: String,
    status: Option<ConnectionStatus>,
    /// The channel, when this publish has it to itself: given back once
    /// the confirm is in, closed if it never comes.
    lent: Option<LentChannel>,
}

impl PendingConfirm {
    /// Waits for the confirm; a nack or an unroutable return is an error.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let lent = self.lent.take();
        let target = self.target.clone();
        let confirmation = self.resolve().await?;
        if let Some(lent) = lent {
            lent.give_back();
        }
        judge(&target, confirmation)
    }

    /// The broker's answer; an error only when none came (a timeout, a
    /// closed channel), which leaves the channel's confirms in doubt.
    async fn resolve(self) -> anyhow::Result<Confirmation> {
        let what = format!("waiting for the confirm of {}", self.target);
        let confirmation = match &self.status {
            Some(status) => within_unless_blocked(status, &what, self.confirm).await?,
            None => within(&what, self.confirm).await?,
        };
        Ok(confirmation)
    }
}

/// What a confirm means for the publish to `target`. A returned message
/// names itself: lapin hands a return to the next confirm it resolves on
/// the channel, which need not be the returned publish's own.
fn judge(target: &str, confirmation: Confirmation) -> anyhow::Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(Unroutable {
            target: format!(
                "{}/{}",
                returned.delivery.exchange, returned.delivery.routing_key
            ),
            reply: format!("{} {}", returned.reply_code, returned.reply_text),
        }
        .into()),
        Confirmation::Nack(_) => anyhow::bail!("the broker refused (nacked) {target}"),
        Confirmation::NotRequested => {
            anyhow::bail!("publisher confirms are off on this channel")
        }
    }
}

/// A publish the broker returned instead of routing it: every publish is
/// `mandatory`, so one that reaches no queue (its queue unbound or deleted)
/// comes back, and counts as not published. Without `mandatory` the broker
/// would drop it and still confirm it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{target} is unroutable: the broker returned it ({reply}), as no queue is bound to take it"
)]
pub struct Unroutable {
    /// Exchange and routing key of the publish.
    pub target: String,
    /// The broker's reply code and text (`312 NO_ROUTE`).
    pub reply: String,
}

/// Whether `err` is (or was caused by) a returned, unroutable publish.
pub fn is_unroutable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Unroutable>())
}

/// Publishes every message, then waits for all their confirms, as one
/// whole: any return or nack fails it. Every confirm is waited for even
/// after one failed, so that none is left to the channel's next publishes.
pub async fn publish_all(channel: &Channel, messages: &[Outgoing]) -> anyhow::Result<()> {
    publish_each(channel, None, messages).await.0
}

/// [`publish_all`], also answering whether every confirm came in (the
/// channel can then carry other publishes).
async fn publish_each(
    channel: &Channel,
    status: Option<&ConnectionStatus>,
    messages: &[Outgoing],
) -> (anyhow::Result<()>, bool) {
    let mut pending = Vec::with_capacity(messages.len());
    let mut result = Ok(());
    for message in messages {
        match publish_on(channel, status, message).await {
            Ok(confirm) => pending.push(confirm),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    let mut settled = result.is_ok();
    for confirm in pending {
        let target = confirm.target.clone();
        let judged = match confirm.resolve().await {
            Ok(confirmation) => judge(&target, confirmation),
            Err(err) => {
                settled = false;
                Err(err)
            }
        };
        if let Err(err) = judged
            && result.is_ok()
        {
            result = Err(err);
        }
    }
    (result, settled)
}

/// Confirm channels on one connection, each lent to one publisher at a
/// time. RabbitMQ's return of an unroutable message names no delivery tag,
/// and lapin gives it to whichever confirm it resolves next on the channel
/// (any of those one multiple ack covers), not to the publish that came
/// back. On a channel shared by concurrent publishers, one delivery's
/// returned forward could be taken for another's, and the returned one
/// acked as sent: lost. A publisher that has a channel to itself until its
/// confirms are in can only be handed its own returns.
#[derive(Clone)]
pub struct ConfirmChannels {
    conn: Arc<Connection>,
    idle: Arc<std::sync::Mutex<Vec<Channel>>>,
}

impl ConfirmChannels {
    /// Lends confirm channels of `conn`, opened as needed; `first` is one
    /// already open.
    pub fn new(conn: Arc<Connection>, first: Option<Channel>) -> ConfirmChannels {
        ConfirmChannels {
            conn,
            idle: Arc::new(std::sync::Mutex::new(first.into_iter().collect())),
        }
    }

    /// Whether their connection is still open.
    pub fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    /// A channel for one publisher: an idle one, or a new one. Opening one
    /// waits out a blocked connection, as a publish does: a blocked
    /// connection's socket is not read until the alarm ends, and a forward
    /// that failed for want of a channel would be requeued, each time
    /// nearer to poison.
    pub async fn lend(&self) -> anyhow::Result<LentChannel> {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|c| c.status().connected())
        };
        let channel = match idle {
            Some(channel) => channel,
            None => {
                within_unless_blocked(
                    self.conn.status(),
                    "opening a confirm channel",
                    confirm_channel(&self.conn),
                )
                .await?
            }
        };
        Ok(LentChannel {
            channel: Some(channel),
            home: Arc::clone(&self.idle),
            settled: false,
        })
    }

    /// Publishes `message` on a channel of its own; the channel goes back
    /// when the confirm is in.
    pub async fn publish(&self, message: &Outgoing) -> anyhow::Result<PendingConfirm> {
        let lent = self.lend().await?;
        let mut pending = publish_on(&lent, Some(self.conn.status()), message).await?;
        pending.lent = Some(lent);
        Ok(pending)
    }

    /// Publishes `messages` on a channel of their own and waits for all
    /// their confirms, as [`publish_all`].
    pub async fn publish_all(&self, messages: &[Outgoing]) -> anyhow::Result<()> {
        let lent = self.lend().await?;
        let (result, settled) = publish_each(&lent, Some(self.conn.status()), messages).await;
        if settled {
            lent.give_back();
        }
        result
    }
}

/// A channel lent by [`ConfirmChannels`]. Given back only once every
/// confirm of its publishes is in; dropped before that (a confirm that
/// timed out, a cancelled wait), it is closed, as a late return on it
/// could be handed to the next publisher.
pub struct LentChannel {
    channel: Option<Channel>,
    home: Arc<std::sync::Mutex<Vec<Channel>>>,
    settled: bool,
}

impl LentChannel {
    /// Every confirm is in: the channel can serve another publisher.
    pub fn give_back(mut self) {
        self.settled = true;
    }
}

impl std::ops::Deref for LentChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        self.channel.as_ref().expect("a lent channel until dropped")
    }
}

impl Drop for LentChannel {
    fn drop(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        if !channel.status().connected() {
            return;
        }
        if self.settled {
            self.home
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(channel);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = within("closing", channel.close(200, "confirms in doubt".into())).await;
            });
        }
    }
}

/// A W3C `traceparent` for a task: the task id is the trace id, so one task
/// is one trace across processes; each hop gets a fresh span id.
pub fn traceparent_for(task_id: Uuid) -> String {
    let span = Uuid::now_v7().as_u128() as u64;
    format!("00-{}-{span:016x}-01", task_id.simple())
}

/// The stream offset the broker put on a delivery read from a stream.
pub fn stream_offset(delivery: &lapin::message::Delivery) -> Option<u64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::Timestamp(v) => Some(*v),
        _ => None,
    }
}

/// The value of a string header, if present.
pub fn header_str(headers: &Option<FieldTable>, key: &str) -> Option<String> {
    match headers.as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The value of an integer header, if present.
pub fn header_int(headers: &Option<FieldTable>, key: &str) -> Option<i64> {
    match headers.as_ref()?.inner().get(key)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_events_go_out_alone_routed_by_their_kind() {
        use crate::events::{ErrorInfo, EventKind};
        let mut envelope = crate::envelope::tests::sample();
        let dead = EventKind::DeadLettered {
            error: ErrorInfo {
                kind: "corrupt".into(),
                message: "bad".into(),
            },
        };
        // Without a callback, a terminal event is batched like the rest.
        let quiet = Event::about(&envelope, dead.clone());
        let messages = batch_messages("p.events", &[&quiet]);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].routing_key, "events");
        envelope.callback_url = Some("https://hooks.example.com/t".into());
        let started = Event::about(&envelope, EventKind::Started);
        let failed = Event::about(&envelope, dead);
        let messages = batch_messages("p.events", &[&started, &failed, &started]);
        let keys: Vec<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
        assert_eq!(keys, ["events", "dead_lettered"]);
        assert_eq!(
            crate::events::decode_entry(&messages[0].body).unwrap(),
            vec![started.clone(), started.clone()]
        );
        assert_eq!(
            crate::events::decode_entry(&messages[1].body).unwrap(),
            vec![failed.clone()]
        );
        assert_eq!(messages[1].task_id, Some(envelope.task_id));
        // A batch of terminal events alone has no `events` entry.
        let only = batch_messages("p.events", &[&failed]);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn traceparent_uses_the_task_as_trace() {
        let task = Uuid::now_v7();
        let tp = traceparent_for(task);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[1], task.simple().to_string());
        assert_eq!(parts[2].len(), 16);
    }
}

/// Publishes task events in batches, as a group commit: one batch is in
/// flight at a time, and whatever events the stage's deliveries hand over
/// until the broker confirms it go out together as the next stream entry (a
/// JSON array). When idle a batch is a single event, published at once, so no
/// latency is added; under load a batch holds what arrived during one
/// confirm, which turns ten stream entries per document into a fraction of
/// one. Each sender learns when its own events are confirmed.
#[derive(Clone)]
pub struct EventSink {
    queue: tokio::sync::mpsc::Sender<PendingEvents>,
}

struct PendingEvents {
    events: Vec<Event>,
    confirmed: tokio::sync::oneshot::Sender<Result<(), BatchFailed>>,
}

/// Why a batch of events is not confirmed, for every sender in it.
#[derive(Debug, Clone)]
enum BatchFailed {
    /// The broker returned it: the events stream is not bound.
    Unroutable(Unroutable),
    /// Anything else, with its cause chain.
    Other(String),
}

impl BatchFailed {
    fn of(err: anyhow::Error) -> BatchFailed {
        match err.downcast::<Unroutable>() {
            Ok(unroutable) => BatchFailed::Unroutable(unroutable),
            Err(err) => BatchFailed::Other(format!("{err:#}")),
        }
    }
}

/// The confirm of events handed to an [`EventSink`].
pub struct EventsConfirm(tokio::sync::oneshot::Receiver<Result<(), BatchFailed>>);

impl EventsConfirm {
    /// Waits until the broker confirmed the batch holding these events.
    pub async fn wait(self) -> anyhow::Result<()> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(BatchFailed::Unroutable(unroutable))) => Err(unroutable.into()),
            Ok(Err(BatchFailed::Other(message))) => Err(anyhow::anyhow!(message)),
            Err(_) => Err(anyhow::anyhow!(
                "the event publisher stopped before confirming"
            )),
        }
    }
}

/// Most events in one stream entry.
const EVENTS_PER_BATCH: usize = 256;

impl EventSink {
    /// Starts publishing on `channel` (which must have confirms on); the
    /// publisher stops when every clone of the sink is dropped.
    pub fn start(channel: Channel, topology: &Topology) -> EventSink {
        EventSink::start_on(channel, None, topology)
    }

    /// [`EventSink::start`] on a connection whose `status` is watched, so
    /// that a batch waits out a blocked connection (see [`publish_on`]).
    pub fn start_on(
        channel: Channel,
        status: Option<ConnectionStatus>,
        topology: &Topology,
    ) -> EventSink {
        let (queue, mut pending) = tokio::sync::mpsc::channel::<PendingEvents>(1024);
        let exchange = topology.events_exchange();
        tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                let mut count = batch[0].events.len();
                while count < EVENTS_PER_BATCH {
                    match pending.try_recv() {
                        Ok(next) => {
                            count += next.events.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let events: Vec<&Event> = batch.iter().flat_map(|p| &p.events).collect();
                let messages = batch_messages(&exchange, &events);
                // The next batch gathers while this one waits for its
                // confirms.
                let result = publish_batch(&channel, status.as_ref(), &messages)
                    .await
                    .map_err(BatchFailed::of);
                for pending in batch {
                    let _ = pending.confirmed.send(result.clone());
                }
            }
        });
        EventSink { queue }
    }

    /// Hands `events` over for publishing.
    pub async fn send(&self, events: Vec<Event>) -> EventsConfirm {
        let (confirmed, receiver) = tokio::sync::oneshot::channel();
        if events.is_empty() {
            let _ = confirmed.send(Ok(()));
        } else if let Err(refused) = self.queue.send(PendingEvents { events, confirmed }).await {
            let _ = refused.0.confirmed.send(Err(BatchFailed::Other(
                "the event publisher has stopped".into(),
            )));
        }
        EventsConfirm(receiver)
    }
}

/// The stream entries of one batch of events: each event the notify
/// consumer needs (a terminal event of a task with a callback) in an entry
/// of its own, routed by its kind (see [`Event::routing_key`]), so that the
/// notify queue, bound through the `terminal` exchange to just those kinds,
/// gets them and nothing else; every other event in one entry (routing key
/// `events`), as before. Such a task has one or two terminal events, against
/// ten of the others.
fn batch_messages(exchange: &str, events: &[&Event]) -> Vec<Outgoing> {
    let (terminal, others): (Vec<&Event>, Vec<&Event>) =
        events.iter().partition(|e| e.calls_back());
    let mut messages = Vec::with_capacity(terminal.len() + 1);
    if !others.is_empty() {
        messages.push(Outgoing::new(
            exchange,
            "events",
            crate::events::encode_batch(&others),
        ));
    }
    for event in terminal {
        let mut message = Outgoing::new(exchange, event.routing_key(), event.encode());
        message.task_id = Some(event.task_id);
        messages.push(message);
    }
    messages
}

/// Publishes `messages` and waits for every confirm; the first failure
/// fails them all (a redo publishes events again under the same ids).
async fn publish_batch(
    channel: &Channel,
    status: Option<&ConnectionStatus>,
    messages: &[Outgoing],
) -> anyhow::Result<()> {
    publish_each(channel, status, messages).await.0
}

/// A worker's publishing side, on a connection of its own. RabbitMQ blocks
/// every connection that publishes while a memory or disk alarm lasts; a
/// consumer on a separate connection (as RabbitMQ advises) keeps receiving
/// and acknowledging, the probes of its liveness keep being answered, and
/// blocked publishes wait for the alarm to end. The connection is opened
/// when first needed and again after it fails, apart from the consumer's,
/// so a lost publishing connection does not return the deliveries in hand.
pub struct Publisher {
    settings: Arc<Settings>,
    name: String,
    topology: Topology,
    current: tokio::sync::Mutex<Option<PublishLink>>,
}

/// One publishing connection: confirm channels for work messages, one for
/// each forward in flight, and the events sink on a confirm channel of its
/// own, so that a refused event batch cannot close the channel a forward
/// waits on.
#[derive(Clone)]
pub struct PublishLink {
    conn: Arc<Connection>,
    /// Where work messages (next stage, retries, dead letters) go.
    pub work: ConfirmChannels,
    /// Where task events go.
    pub events: EventSink,
}

impl PublishLink {
    /// The connection's status, for waits that must outlast a block.
    pub fn status(&self) -> &ConnectionStatus {
        self.conn.status()
    }

    /// Publishes a work message; its confirm waits out a blocked connection.
    pub async fn publish(&self, message: &Outgoing) -> anyhow::Result<PendingConfirm> {
        self.work.publish(message).await
    }
}

impl Publisher {
    /// A publisher that connects as `name` when first asked for a link.
    pub fn new(settings: Arc<Settings>, name: String, topology: Topology) -> Publisher {
        Publisher {
            settings,
            name,
            topology,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The current link, connecting (with backoff) first when there is
    /// none or its connection is down; `None` when `token` is cancelled
    /// before a connection could be made.
    pub async fn link(&self, token: &CancellationToken) -> Option<PublishLink> {
        let mut current = self.current.lock().await;
        if let Some(link) = current.as_ref()
            && link.conn.status().connected()
        {
            return Some(link.clone());
        }
        if let Some(stale) = current.take() {
            close_later(stale.conn);
        }
        loop {
            let conn = connect(&self.settings, &self.name, token).await?;
            match self.open(conn).await {
                Ok(link) => {
                    *current = Some(link.clone());
                    return Some(link);
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "could not open the publishing channels; reconnecting"
                    );
                    tokio::select! {
                        _ = token.cancelled() => return None,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }

    async fn open(&self, conn: Connection) -> anyhow::Result<PublishLink> {
        let conn = Arc::new(conn);
        let work = confirm_channel(&conn).await?;
        self.topology.apply(&work).await?;
        let events = confirm_channel(&conn).await?;
        let events = EventSink::start_on(events, Some(conn.status().clone()), &self.topology);
        let work = ConfirmChannels::new(Arc::clone(&conn), Some(work));
        Ok(PublishLink { conn, work, events })
    }

    /// Gives up `link` after a publish on it failed: the next
    /// [`Publisher::link`] connects anew (and declares the topology again,
    /// which also repairs a deleted exchange or queue).
    pub async fn discard(&self, link: &PublishLink) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.conn, &link.conn))
            && let Some(stale) = current.take()
        {
            close_later(stale.conn);
        }
    }

    /// Declares the topology again on `link`'s connection, after the
    /// broker returned a publish as unroutable: if the queue went missing
    /// from the pipeline's own bindings (unbound, or deleted), this binds it
    /// again. On a channel of its own, so that a declare the broker refuses
    /// closes no channel a publish waits on; the link itself stays, since
    /// the connection is sound and other deliveries publish on it.
    pub async fn redeclare(&self, link: &PublishLink) -> anyhow::Result<()> {
        let channel = within("opening a channel", link.conn.create_channel()).await?;
        let applied = within("declaring the topology", self.topology.apply(&channel)).await;
        let _ = within("closing", channel.close(200, "declared".into())).await;
        applied
    }

    /// Closes the connection, if one is open.
    pub async fn close(&self) {
        if let Some(link) = self.current.lock().await.take() {
            let _ = within("closing", link.conn.close(200, "shutting down".into())).await;
        }
    }
}

/// Closes a connection without waiting for it.
fn close_later(conn: Arc<Connection>) {
    tokio::spawn(async move {
        let _ = within("closing", conn.close(320, "reconnecting".into())).await;
    });
}
