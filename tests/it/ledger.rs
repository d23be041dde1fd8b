//! The books of a fault test: every event of the pipeline's stream, read
//! from its first offset, tallied per task, and the depth of every queue.
//! "Nothing lost, nothing duplicated" is checked against these.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tenderflow::broker;
use tenderflow::config::Settings;
use tenderflow::envelope::Stage;
use tenderflow::events::{Event, EventKind, decode_entry};
use tenderflow::topology::Topology;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Every event of one pipeline, as it arrives, from the stream's start.
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
    stop: CancellationToken,
}

impl EventLog {
    /// Starts reading the pipeline's events stream from its first offset,
    /// on a connection of its own (straight to the broker).
    pub async fn start(settings: &Settings) -> anyhow::Result<EventLog> {
        let (conn, channel, topology) = broker::open(settings, "test-ledger").await?;
        channel.basic_qos(2000, BasicQosOptions::default()).await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString(LongString::from("first")),
        );
        let mut consumer = channel
            .basic_consume(
                topology.events_queue().as_str().into(),
                format!("test-ledger-{}", Uuid::now_v7()).as_str().into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (sink, done) = (Arc::clone(&events), stop.clone());
        tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    _ = done.cancelled() => break,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => delivery,
                        _ => break,
                    },
                };
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                // An entry is one event or a batch of them.
                if let Ok(events) = decode_entry(&delivery.data) {
                    sink.lock().unwrap().extend(events);
                }
            }
            let _ = conn.close(200, "done".into()).await;
        });
        Ok(EventLog { events, stop })
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The tally of the events so far.
    pub fn tally(&self) -> Tally {
        Tally::of(&self.events.lock().unwrap())
    }

    /// Waits until `done` holds for the tally, up to `limit`; returns the
    /// last tally either way.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&Tally) -> bool) -> Tally {
        let deadline = Instant::now() + limit;
        loop {
            let tally = self.tally();
            if done(&tally) || Instant::now() >= deadline {
                return tally;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the events say happened to each task.
#[derive(Debug, Clone, Default)]
pub struct TaskBook {
    /// `completed` events (more than one means a redelivered extract).
    pub completed: usize,
    /// The distinct summary keys the `completed` events name.
    pub summaries: BTreeSet<String>,
    /// `dead_lettered` events: (stage, error kind).
    pub dead_lettered: Vec<(Stage, String)>,
    /// `started` events per stage: attempts that ran long enough to say so
    /// (a quick one publishes only its outcome).
    pub started: BTreeMap<Stage, usize>,
    /// `succeeded` events per stage.
    pub succeeded: BTreeMap<Stage, usize>,
}

impl TaskBook {
    /// The task ended: completed or dead-lettered.
    pub fn ended(&self) -> bool {
        self.completed > 0 || !self.dead_lettered.is_empty()
    }
}

/// Every task's book.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub tasks: BTreeMap<Uuid, TaskBook>,
}

impl Tally {
    /// Folds `events`.
    pub fn of(events: &[Event]) -> Tally {
        let mut tally = Tally::default();
        for event in events {
            let book = tally.tasks.entry(event.task_id).or_default();
            match &event.kind {
                EventKind::Completed { summary } => {
                    book.completed += 1;
                    book.summaries.insert(summary.key.clone());
                }
                EventKind::DeadLettered { error } => {
                    book.dead_lettered.push((event.stage, error.kind.clone()));
                }
                EventKind::Started => *book.started.entry(event.stage).or_default() += 1,
                EventKind::Succeeded { .. } => *book.succeeded.entry(event.stage).or_default() += 1,
                _ => {}
            }
        }
        tally
    }

    /// The book of `task` (empty if it has no events).
    pub fn book(&self, task: &Uuid) -> TaskBook {
        self.tasks.get(task).cloned().unwrap_or_default()
    }

    /// Tasks of `tasks` that completed.
    pub fn completed(&self, tasks: &[Uuid]) -> usize {
        tasks.iter().filter(|t| self.book(t).completed > 0).count()
    }

    /// Tasks of `tasks` that some stage started or finished.
    pub fn handled(&self, tasks: &[Uuid]) -> usize {
        tasks
            .iter()
            .filter(|t| {
                let book = self.book(t);
                !book.started.is_empty() || !book.succeeded.is_empty()
            })
            .count()
    }

    /// Tasks of `tasks` that ended, either way.
    pub fn ended(&self, tasks: &[Uuid]) -> usize {
        tasks.iter().filter(|t| self.book(t).ended()).count()
    }

    /// Messages handled again: per task and stage, attempts seen (the more
    /// of its `started` and `succeeded` events) beyond the first (a rough
    /// count of work done twice).
    pub fn redone(&self, tasks: &[Uuid]) -> usize {
        tasks
            .iter()
            .map(|t| {
                let book = self.book(t);
                Stage::ALL
                    .iter()
                    .map(|stage| {
                        let started = book.started.get(stage).copied().unwrap_or(0);
                        let succeeded = book.succeeded.get(stage).copied().unwrap_or(0);
                        started.max(succeeded).saturating_sub(1)
                    })
                    .sum::<usize>()
            })
            .sum()
    }

    /// Asserts every task of `tasks` completed, never dead-lettered, and
    /// every `completed` event of a task names the same summary: a
    /// redelivery may repeat the event, never change the summary.
    pub fn assert_all_completed_once(&self, tasks: &[Uuid]) {
        for task in tasks {
            let book = self.book(task);
            assert!(book.completed > 0, "task {task} never completed: {book:?}");
            assert!(
                book.dead_lettered.is_empty(),
                "task {task} was dead-lettered: {book:?}"
            );
            assert_eq!(
                book.summaries.len(),
                1,
                "task {task} has one summary, whatever the redeliveries: {book:?}"
            );
        }
    }
}

/// Depth of every work, retry and dead-letter queue of the pipeline (the
/// events stream left out), by name, read on one fresh connection.
pub async fn depths(settings: &Settings) -> anyhow::Result<BTreeMap<String, u32>> {
    let topology = Topology::from_settings(settings)?;
    let events = topology.events_queue();
    let conn = broker::connect_once(settings, "test-depth").await?;
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut depths = BTreeMap::new();
    for stage in Stage::ALL {
        let queue = topology.dead_letter_queue(stage);
        depths.insert(
            queue.clone(),
            tenderflow::dlq::entries(&conn, &queue).await? as u32,
        );
    }
    let streams: BTreeSet<String> = depths.keys().cloned().collect();
    for queue in topology
        .queues
        .iter()
        .filter(|q| q.name != events && !streams.contains(&q.name))
    {
        // A failed passive declare closes its channel: one channel each.
        let channel = conn.create_channel().await?;
        let count = channel
            .queue_declare(queue.name.as_str().into(), passive, FieldTable::default())
            .await?
            .message_count();
        depths.insert(queue.name.clone(), count);
        let _ = channel.close(200, "done".into()).await;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(depths)
}

/// Waits (up to `limit`) for every work, retry and dead-letter queue to be
/// empty but for `expected` dead letters per stage; a quorum queue's count
/// can trail what was just acked. Returns the last depths.
pub async fn wait_queues_settled(
    settings: &Settings,
    expected_dead: &BTreeMap<Stage, u32>,
    limit: Duration,
) -> BTreeMap<String, u32> {
    let topology = Topology::from_settings(settings).unwrap();
    let wanted: BTreeMap<String, u32> = Stage::ALL
        .iter()
        .map(|s| {
            (
                topology.dead_letter_queue(*s),
                expected_dead.get(s).copied().unwrap_or(0),
            )
        })
        .collect();
    let deadline = Instant::now() + limit;
    loop {
        let now = depths(settings).await.unwrap();
        let settled = now
            .iter()
            .all(|(q, n)| *n == wanted.get(q).copied().unwrap_or(0));
        if settled || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
