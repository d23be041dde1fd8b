//! The broker topology, described once as data (`topology/topology.toml`),
//! expanded with the configured prefix and retry tiers, declared idempotently
//! by every process, and exportable as a RabbitMQ definitions file.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use serde::Deserialize;
use serde_json::json;

use crate::config::{Settings, WorkQueues};
use crate::envelope::Stage;

/// The built-in topology description.
pub const BUILTIN: &str = include_str!("../topology/topology.toml");

/// The topology file's layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    stages: Vec<String>,
    exchanges: Vec<ExchangeSpec>,
    queues: Vec<QueueSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    /// An exchange-to-exchange binding: what `exchange` routes with
    /// `routing_key` comes here too, with its own routing key.
    bind: Option<BindSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    delivery_limit: Option<i64>,
    dead_letter_queue: Option<String>,
    /// `at-least-once` (quorum queues): a dead-lettered message stays in
    /// its queue until the target has confirmed it.
    dead_letter_strategy: Option<String>,
    /// What a full queue does with a publish (`reject-publish`, which
    /// at-least-once dead-lettering needs).
    overflow: Option<String>,
    message_ttl: Option<String>,
    max_age: Option<String>,
    bind: Option<Binds>,
}

/// One binding, or several (a queue bound with two routing keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Binds {
    One(BindSpec),
    Many(Vec<BindSpec>),
}

impl Binds {
    fn all(&self) -> &[BindSpec] {
        match self {
            Binds::One(one) => std::slice::from_ref(one),
            Binds::Many(many) => many,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindSpec {
    exchange: String,
    routing_key: String,
}

/// A queue argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    Int(i64),
}

/// An exchange to declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDecl {
    pub name: String,
    pub kind: String,
}

/// A durable queue to declare, with its `x-` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDecl {
    pub name: String,
    pub arguments: BTreeMap<String, Arg>,
}

/// A binding of a queue, or of another exchange, to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDecl {
    /// The source exchange.
    pub exchange: String,
    /// The queue (or exchange) bound to it.
    pub destination: String,
    /// Whether the destination is an exchange.
    pub to_exchange: bool,
    pub routing_key: String,
}

/// The expanded topology of one pipeline, and the names the runtime uses.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delays_ms: Vec<u64>,
    /// Exchanges, in declaration order.
    pub exchanges: Vec<ExchangeDecl>,
    /// Queues, in declaration order.
    pub queues: Vec<QueueDecl>,
    /// Bindings, declared after exchanges and queues.
    pub bindings: Vec<BindingDecl>,
}

impl Topology {
    /// The topology the settings describe (built-in or `topology.file`).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Topology> {
        let text = match &settings.topology.file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading topology file {}", path.display()))?,
            None => BUILTIN.to_string(),
        };
        let topology =
            Topology::expand(&text, &settings.topology.prefix, &settings.retry.delays_ms)?;
        let topology = match settings.topology.work_queues {
            WorkQueues::Quorum => topology,
            WorkQueues::Classic => topology.with_classic_work_queues(),
        };
        topology.check_delivery_limits(settings.stages.max_deliveries)?;
        Ok(topology)
    }

    /// The runtime's poison verdict (after `max_deliveries`) must come
    /// before the broker's delivery limit on a stage queue: a message the
    /// broker dead-letters itself carries no failure headers, and its task
    /// hears of it only when the projector reads the dead-letter stream.
    pub fn check_delivery_limits(&self, max_deliveries: u32) -> anyhow::Result<()> {
        for stage in Stage::ALL {
            let name = self.stage_queue(stage);
            let Some(queue) = self.queues.iter().find(|q| q.name == name) else {
                continue;
            };
            if let Some(Arg::Int(limit)) = queue.arguments.get("x-delivery-limit")
                && i64::from(max_deliveries) > *limit
            {
                bail!(
                    "stages.max_deliveries ({max_deliveries}) is above the delivery limit ({limit}) of queue {name}: \
                     the broker would dead-letter a returning message first, with no event; \
                     lower stages.max_deliveries or raise the queue's delivery_limit"
                );
            }
        }
        Ok(())
    }

    /// The same topology with every quorum queue declared as a durable
    /// classic queue instead (classic queues take no delivery limit, and
    /// dead-letter at most once).
    pub fn with_classic_work_queues(mut self) -> Topology {
        for queue in &mut self.queues {
            if queue.arguments.get("x-queue-type") == Some(&Arg::Str("quorum".into())) {
                queue.arguments.remove("x-queue-type");
                queue.arguments.remove("x-delivery-limit");
                queue.arguments.remove("x-dead-letter-strategy");
            }
        }
        self
    }

    /// Expands a topology description for `prefix` and retry `delays_ms`.
    pub fn expand(text: &str, prefix: &str, delays_ms: &[u64]) -> anyhow::Result<Topology> {
        let spec: Spec = toml::from_str(text).context("topology description is invalid")?;
        let expected: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        if spec.stages != expected {
            bail!(
                "topology stages must be {expected:?}, found {:?}",
                spec.stages
            );
        }
        let mut topology = Topology {
            prefix: prefix.to_string(),
            delays_ms: delays_ms.to_vec(),
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        };
        for exchange in &spec.exchanges {
            if !matches!(
                exchange.kind.as_str(),
                "direct" | "fanout" | "topic" | "headers"
            ) {
                bail!(
                    "exchange {} has unknown type {}",
                    exchange.name,
                    exchange.kind
                );
            }
            topology.exchanges.push(ExchangeDecl {
                name: topology.name(&exchange.name),
                kind: exchange.kind.clone(),
            });
            if let Some(bind) = &exchange.bind {
                topology.bindings.push(BindingDecl {
                    exchange: topology.name(&bind.exchange),
                    destination: topology.name(&exchange.name),
                    to_exchange: true,
                    routing_key: bind.routing_key.clone(),
                });
            }
        }
        for queue in &spec.queues {
            for vars in expansions(&queue.name, &spec.stages, delays_ms) {
                topology.add_queue(queue, &vars)?;
            }
        }
        topology.check_references()?;
        Ok(topology)
    }

    fn add_queue(&mut self, spec: &QueueSpec, vars: &Vars) -> anyhow::Result<()> {
        let name = self.name(&vars.fill(&spec.name));
        let mut arguments = BTreeMap::new();
        match spec.kind.as_str() {
            "classic" => {}
            "quorum" | "stream" => {
                arguments.insert("x-queue-type".into(), Arg::Str(spec.kind.clone()));
            }
            other => bail!("queue {} has unknown type {other}", spec.name),
        }
        if let Some(limit) = spec.delivery_limit {
            arguments.insert("x-delivery-limit".into(), Arg::Int(limit));
        }
        if let Some(target) = &spec.dead_letter_queue {
            arguments.insert("x-dead-letter-exchange".into(), Arg::Str(String::new()));
            let target = self.name(&vars.fill(target));
            arguments.insert("x-dead-letter-routing-key".into(), Arg::Str(target));
        }
        if let Some(strategy) = &spec.dead_letter_strategy {
            if spec.kind != "quorum" {
                bail!(
                    "queue {}: dead_letter_strategy needs a quorum queue",
                    spec.name
                );
            }
            arguments.insert("x-dead-letter-strategy".into(), Arg::Str(strategy.clone()));
        }
        if let Some(overflow) = &spec.overflow {
            arguments.insert("x-overflow".into(), Arg::Str(overflow.clone()));
        }
        if let Some(ttl) = &spec.message_ttl {
            let ttl = vars.fill(ttl);
            let ms = parse_delay(&ttl).with_context(|| format!("queue {name}: message_ttl"))?;
            arguments.insert("x-message-ttl".into(), Arg::Int(ms as i64));
        }
        if let Some(age) = &spec.max_age {
            arguments.insert("x-max-age".into(), Arg::Str(age.clone()));
        }
        for bind in spec.bind.iter().flat_map(Binds::all) {
            self.bindings.push(BindingDecl {
                exchange: self.name(&bind.exchange),
                destination: name.clone(),
                to_exchange: false,
                routing_key: vars.fill(&bind.routing_key),
            });
        }
        self.queues.push(QueueDecl { name, arguments });
        Ok(())
    }

    /// Every dead-letter target and binding must name something declared.
    fn check_references(&self) -> anyhow::Result<()> {
        for queue in &self.queues {
            if let Some(Arg::Str(target)) = queue.arguments.get("x-dead-letter-routing-key")
                && !self.queues.iter().any(|q| &q.name == target)
            {
                bail!(
                    "queue {} dead-letters to undeclared queue {target}",
                    queue.name
                );
            }
        }
        for binding in &self.bindings {
            if !self.exchanges.iter().any(|e| e.name == binding.exchange) {
                bail!(
                    "{} binds to undeclared exchange {}",
                    binding.destination,
                    binding.exchange
                );
            }
        }
        for name in self.required_names() {
            if !self.queues.iter().any(|q| q.name == name)
                && !self.exchanges.iter().any(|e| e.name == name)
            {
                bail!("topology must declare {name}");
            }
        }
        // Dead letters and events are read as streams (by offset, without
        // taking them).
        let stream = Arg::Str("stream".into());
        let streams = Stage::ALL
            .into_iter()
            .map(|stage| self.dead_letter_queue(stage))
            .chain([self.events_queue(), self.notify_dead_letter_queue()]);
        for name in streams {
            if let Some(queue) = self.queues.iter().find(|q| q.name == name)
                && queue.arguments.get("x-queue-type") != Some(&stream)
            {
                bail!("queue {name} must be a stream (type = \"stream\")");
            }
        }
        Ok(())
    }

    fn required_names(&self) -> Vec<String> {
        let mut names = vec![
            self.work_exchange(),
            self.events_exchange(),
            self.events_queue(),
        ];
        for stage in Stage::ALL {
            names.push(self.stage_queue(stage));
            names.push(self.dead_letter_queue(stage));
            for attempt in 1..=self.delays_ms.len() as u32 {
                names.extend(self.retry_queue(stage, attempt).map(|(name, _)| name));
            }
        }
        names.extend([
            self.terminal_exchange(),
            self.notify_queue(),
            self.notify_dead_letter_queue(),
        ]);
        for attempt in 1..=self.delays_ms.len() as u32 {
            names.extend(self.notify_retry_queue(attempt).map(|(name, _)| name));
        }
        names
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}.{}", self.prefix, suffix)
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The exchange stage messages are published to (routing key: stage).
    pub fn work_exchange(&self) -> String {
        self.name("work")
    }

    /// The exchange events are published to.
    pub fn events_exchange(&self) -> String {
        self.name("events")
    }

    /// The stream queue of events.
    pub fn events_queue(&self) -> String {
        self.name("events")
    }

    /// The exchange the events exchange forwards every entry to, routed by
    /// the routing key it was published with (a terminal event's kind).
    pub fn terminal_exchange(&self) -> String {
        self.name("terminal")
    }

    /// The notify consumer's queue: the terminal events.
    pub fn notify_queue(&self) -> String {
        self.name("notify")
    }

    /// The notify consumer's dead letters: callbacks that failed for good.
    pub fn notify_dead_letter_queue(&self) -> String {
        self.name("notify.dlq")
    }

    /// Where a callback goes after attempt `failed_attempt` (1-based)
    /// failed, as [`Topology::retry_queue`] for a stage.
    pub fn notify_retry_queue(&self, failed_attempt: u32) -> Option<(String, u64)> {
        let index = usize::try_from(failed_attempt.checked_sub(1)?).ok()?;
        let delay = *self.delays_ms.get(index)?;
        Some((
            self.name(&format!("notify.retry.{}", format_delay(delay))),
            delay,
        ))
    }

    /// A stage's work queue.
    pub fn stage_queue(&self, stage: Stage) -> String {
        self.name(stage.as_str())
    }

    /// A stage's dead-letter queue.
    pub fn dead_letter_queue(&self, stage: Stage) -> String {
        self.name(&format!("{}.dlq", stage.as_str()))
    }

    /// Where a message goes after attempt `failed_attempt` (1-based) failed:
    /// the retry queue of that tier and its delay, or `None` when the tiers
    /// are used up.
    pub fn retry_queue(&self, stage: Stage, failed_attempt: u32) -> Option<(String, u64)> {
        let index = usize::try_from(failed_attempt.checked_sub(1)?).ok()?;
        let delay = *self.delays_ms.get(index)?;
        let name = self.name(&format!("{}.retry.{}", stage.as_str(), format_delay(delay)));
        Some((name, delay))
    }

    /// Declares every exchange, queue and binding. Idempotent; fails if an
    /// existing queue was declared with other arguments.
    pub async fn apply(&self, channel: &Channel) -> anyhow::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for exchange in &self.exchanges {
            channel
                .exchange_declare(
                    exchange.name.as_str().into(),
                    exchange_kind(&exchange.kind),
                    durable,
                    FieldTable::default(),
                )
                .await
                .with_context(|| format!("declaring exchange {}", exchange.name))?;
        }
        for queue in &self.queues {
            channel
                .queue_declare(
                    queue.name.as_str().into(),
                    QueueDeclareOptions::durable(),
                    field_table(&queue.arguments),
                )
                .await
                .with_context(|| {
                    let mut what = format!("declaring queue {}", queue.name);
                    if queue.name.ends_with(".dlq") {
                        what.push_str(
                            " (a dead-letter queue of an older release is a quorum queue; \
                             dead letters are now kept in a stream: see the README's \
                             \"Upgrading the dead-letter queues\")",
                        );
                    }
                    what
                })?;
        }
        for binding in &self.bindings {
            let bound = if binding.to_exchange {
                channel
                    .exchange_bind(
                        binding.destination.as_str().into(),
                        binding.exchange.as_str().into(),
                        binding.routing_key.as_str().into(),
                        ExchangeBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            } else {
                channel
                    .queue_bind(
                        binding.destination.as_str().into(),
                        binding.exchange.as_str().into(),
                        binding.routing_key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            };
            bound.with_context(|| {
                format!("binding {} to {}", binding.destination, binding.exchange)
            })?;
        }
        Ok(())
    }

    /// Deletes every queue (with its messages) and exchange of this
    /// topology: for tearing down a test's, a benchmark's or a retired
    /// pipeline's names. Best effort: goes on past a failure, on a fresh
    /// channel, and answers how many were deleted.
    pub async fn delete(&self, conn: &lapin::Connection) -> usize {
        let mut deleted = 0;
        let mut channel = conn.create_channel().await.ok();
        let queues = self.queues.iter().map(|q| (true, q.name.as_str()));
        let exchanges = self.exchanges.iter().map(|e| (false, e.name.as_str()));
        for (is_queue, name) in queues.chain(exchanges) {
            // A failed delete closes the channel: try once more on a new
            // one (a queue busy with its last consumer's close can refuse
            // for a moment), then carry on.
            for _ in 0..2 {
                let Some(open) = channel.as_ref() else { break };
                let result = if is_queue {
                    open.queue_delete(name.into(), Default::default())
                        .await
                        .map(|_| ())
                } else {
                    open.exchange_delete(name.into(), Default::default()).await
                };
                match result {
                    Ok(()) => {
                        deleted += 1;
                        break;
                    }
                    Err(_) => channel = conn.create_channel().await.ok(),
                }
            }
        }
        deleted
    }

    /// The topology as a RabbitMQ definitions document (for
    /// `rabbitmqctl import_definitions` or the management UI), in `vhost`.
    pub fn export(&self, vhost: &str) -> serde_json::Value {
        let exchanges: Vec<_> = self
            .exchanges
            .iter()
            .map(|e| {
                json!({"name": e.name, "vhost": vhost, "type": e.kind, "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}})
            })
            .collect();
        let queues: Vec<_> = self
            .queues
            .iter()
            .map(|q| {
                let arguments: serde_json::Map<String, serde_json::Value> = q
                    .arguments
                    .iter()
                    .map(|(k, v)| {
                        let value = match v {
                            Arg::Str(s) => json!(s),
                            Arg::Int(i) => json!(i),
                        };
                        (k.clone(), value)
                    })
                    .collect();
                json!({"name": q.name, "vhost": vhost, "durable": true, "auto_delete": false,
                       "arguments": arguments})
            })
            .collect();
        let bindings: Vec<_> = self
            .bindings
            .iter()
            .map(|b| {
                let kind = if b.to_exchange { "exchange" } else { "queue" };
                json!({"source": b.exchange, "vhost": vhost, "destination": b.destination,
                       "destination_type": kind, "routing_key": b.routing_key, "arguments": {}})
            })
            .collect();
        json!({"exchanges": exchanges, "queues": queues, "bindings": bindings})
    }
}

/// The values a templated name is filled with.
#[derive(Debug, Clone, Default)]
struct Vars {
    stage: Option<String>,
    delay: Option<String>,
}

impl Vars {
    fn fill(&self, template: &str) -> String {
        let mut out = template.to_string();
        if let Some(stage) = &self.stage {
            out = out.replace("{stage}", stage);
        }
        if let Some(delay) = &self.delay {
            out = out.replace("{delay}", delay);
        }
        out
    }
}

/// One set of values per stage and per delay tier the template mentions.
fn expansions(template: &str, stages: &[String], delays_ms: &[u64]) -> Vec<Vars> {
    let stages: Vec<Option<String>> = if template.contains("{stage}") {
        stages.iter().cloned().map(Some).collect()
    } else {
        vec![None]
    };
    let delays: Vec<Option<String>> = if template.contains("{delay}") {
        delays_ms.iter().map(|d| Some(format_delay(*d))).collect()
    } else {
        vec![None]
    };
    let mut out = Vec::new();
    for stage in &stages {
        for delay in &delays {
            out.push(Vars {
                stage: stage.clone(),
                delay: delay.clone(),
            });
        }
    }
    out
}

/// A delay in its shortest exact unit: `250ms`, `1s`, `10m`, `2h`.
pub fn format_delay(ms: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    UNITS
        .iter()
        .find(|(size, _)| ms.is_multiple_of(*size))
        .map(|(size, unit)| format!("{}{unit}", ms / size))
        .unwrap_or_else(|| format!("{ms}ms"))
}

/// Reads a delay written by [`format_delay`].
pub fn parse_delay(text: &str) -> anyhow::Result<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = digits
        .parse()
        .with_context(|| format!("{text:?} is not a delay"))?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => bail!("{text:?} is not a delay such as 250ms, 1s, 10m or 2h"),
    };
    Ok(value * factor)
}

fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind {
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        _ => ExchangeKind::Direct,
    }
}

fn field_table(arguments: &BTreeMap<String, Arg>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        let value = match value {
            Arg::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Arg::Int(i) => AMQPValue::LongLongInt(*i),
        };
        table.insert(ShortString::from(key.as_str()), value);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Topology {
        Topology::expand(BUILTIN, "t1", &[1000, 10_000, 60_000, 600_000]).unwrap()
    }

    #[test]
    fn expands_one_queue_set_per_stage_and_tier() {
        let topology = builtin();
        // 4 stage queues, 16 retry queues, 4 dead-letter queues, 1 stream;
        // the notify queue, its 4 retry queues and its dead-letter stream.
        assert_eq!(topology.queues.len(), 31);
        assert!(topology.queues.iter().all(|q| q.name.starts_with("t1.")));
        let retry = topology
            .queues
            .iter()
            .find(|q| q.name == "t1.parse.retry.10s")
            .unwrap();
        assert_eq!(retry.arguments["x-message-ttl"], Arg::Int(10_000));
        assert_eq!(
            retry.arguments["x-dead-letter-routing-key"],
            Arg::Str("t1.parse".into())
        );
        // Retries are dead-lettered back at least once.
        assert_eq!(retry.arguments["x-queue-type"], Arg::Str("quorum".into()));
        assert_eq!(
            retry.arguments["x-dead-letter-strategy"],
            Arg::Str("at-least-once".into())
        );
        assert_eq!(
            retry.arguments["x-overflow"],
            Arg::Str("reject-publish".into())
        );
        let stage = topology
            .queues
            .iter()
            .find(|q| q.name == "t1.parse")
            .unwrap();
        assert_eq!(stage.arguments["x-queue-type"], Arg::Str("quorum".into()));
        assert_eq!(
            stage.arguments["x-dead-letter-routing-key"],
            Arg::Str("t1.parse.dlq".into())
        );
        // Dead letters are kept in a stream that nothing ages out.
        let dlq = topology
            .queues
            .iter()
            .find(|q| q.name == "t1.parse.dlq")
            .unwrap();
        assert_eq!(dlq.arguments["x-queue-type"], Arg::Str("stream".into()));
        assert!(!dlq.arguments.contains_key("x-max-age"));
        assert!(!dlq.arguments.contains_key("x-max-length-bytes"));
    }

    #[test]
    fn notify_binds_to_the_terminal_events_only() {
        let topology = builtin();
        let into_terminal: Vec<_> = topology
            .bindings
            .iter()
            .filter(|b| b.destination == "t1.terminal")
            .collect();
        assert_eq!(into_terminal.len(), 1);
        assert!(into_terminal[0].to_exchange);
        assert_eq!(into_terminal[0].exchange, "t1.events");
        let mut keys: Vec<&str> = topology
            .bindings
            .iter()
            .filter(|b| b.destination == "t1.notify")
            .map(|b| {
                assert_eq!(b.exchange, "t1.terminal");
                b.routing_key.as_str()
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["completed", "dead_lettered"]);
        assert_eq!(
            topology.notify_retry_queue(2),
            Some(("t1.notify.retry.10s".into(), 10_000))
        );
        assert_eq!(topology.notify_retry_queue(5), None);
        let retry = topology
            .queues
            .iter()
            .find(|q| q.name == "t1.notify.retry.1s")
            .unwrap();
        assert_eq!(
            retry.arguments["x-dead-letter-routing-key"],
            Arg::Str("t1.notify".into())
        );
    }

    #[test]
    fn classic_work_queues_keep_everything_but_the_queue_type() {
        let quorum = builtin();
        let classic = builtin().with_classic_work_queues();
        assert_eq!(quorum.queues.len(), classic.queues.len());
        for (q, c) in quorum.queues.iter().zip(&classic.queues) {
            assert_eq!(q.name, c.name);
            let mut expected = q.arguments.clone();
            if q.arguments.get("x-queue-type") == Some(&Arg::Str("quorum".into())) {
                expected.remove("x-queue-type");
                expected.remove("x-delivery-limit");
                expected.remove("x-dead-letter-strategy");
            }
            assert_eq!(c.arguments, expected, "{}", q.name);
        }
        let events = classic
            .queues
            .iter()
            .find(|q| q.name == "t1.events")
            .unwrap();
        assert_eq!(events.arguments["x-queue-type"], Arg::Str("stream".into()));
        let stage = classic
            .queues
            .iter()
            .find(|q| q.name == "t1.parse")
            .unwrap();
        assert!(!stage.arguments.contains_key("x-queue-type"));
        assert_eq!(
            stage.arguments["x-dead-letter-routing-key"],
            Arg::Str("t1.parse.dlq".into())
        );
    }

    #[test]
    fn max_deliveries_above_a_queue_delivery_limit_is_refused() {
        let topology = builtin();
        assert!(topology.check_delivery_limits(5).is_ok());
        assert!(topology.check_delivery_limits(10).is_ok());
        let err = topology.check_delivery_limits(11).unwrap_err().to_string();
        assert!(err.contains("delivery limit (10)"), "{err}");
        assert!(
            topology
                .with_classic_work_queues()
                .check_delivery_limits(50)
                .is_ok(),
            "classic queues count nothing"
        );
    }

    #[test]
    fn retry_tiers_follow_attempts_and_run_out() {
        let topology = builtin();
        assert_eq!(
            topology.retry_queue(Stage::Filter, 1),
            Some(("t1.filter.retry.1s".into(), 1000))
        );
        assert_eq!(
            topology.retry_queue(Stage::Filter, 4),
            Some(("t1.filter.retry.10m".into(), 600_000))
        );
        assert_eq!(topology.retry_queue(Stage::Filter, 5), None);
        assert_eq!(topology.retry_queue(Stage::Filter, 0), None);
    }

    #[test]
    fn delays_format_and_parse_back() {
        for ms in [1, 250, 1000, 1500, 60_000, 600_000, 7_200_000] {
            assert_eq!(parse_delay(&format_delay(ms)).unwrap(), ms);
        }
        assert_eq!(format_delay(600_000), "10m");
        assert!(parse_delay("10 minutes").is_err());
    }

    #[test]
    fn export_is_a_definitions_document() {
        let export = builtin().export("/");
        assert_eq!(export["queues"].as_array().unwrap().len(), 31);
        assert!(export["bindings"].as_array().unwrap().iter().any(|b| {
            b["source"] == "t1.events"
                && b["destination"] == "t1.terminal"
                && b["destination_type"] == "exchange"
        }));
        assert!(
            export["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["destination"] == "t1.events")
        );
    }

    #[test]
    fn broken_descriptions_are_refused() {
        assert!(Topology::expand("stages = []", "p", &[]).is_err());
        let dangling = BUILTIN.replace(
            "dead_letter_queue = \"{stage}.dlq\"",
            "dead_letter_queue = \"nowhere\"",
        );
        assert!(Topology::expand(&dangling, "p", &[1000]).is_err());
        // Dead letters are read as a stream, by offset.
        let queued = BUILTIN.replace(
            "name = \"{stage}.dlq\"\ntype = \"stream\"",
            "name = \"{stage}.dlq\"\ntype = \"quorum\"",
        );
        assert_ne!(queued, BUILTIN);
        let refused = Topology::expand(&queued, "p", &[1000]).unwrap_err();
        assert!(
            refused.to_string().contains("must be a stream"),
            "{refused}"
        );
    }
}
