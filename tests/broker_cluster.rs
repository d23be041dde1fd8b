//! tenderflow on a three-node RabbitMQ cluster, with its stages as
//! separate `tenderflow worker` processes and the projector and API as
//! `tenderflow serve`, all given the three nodes in `amqp.urls`. Under
//! load, the node that leads the stage queues is stopped and later started
//! again; then the node that leads the events stream, which the projector
//! reads. After each, every task is done once with one summary, nothing is
//! dead-lettered, the work queues are drained, and the projector serves
//! the fold of the events stream.
//!
//! The nodes are private ([`support::node::Node`]): their own names,
//! ports and data folders, stopped by the PIDs they were started with
//! when the test ends, also when it fails. The shared broker is not
//! touched. A test binary of its own (`cargo test --test broker_cluster`):
//! it takes two to three minutes, most of it the nodes starting and the
//! documents of two loads.

#[allow(dead_code)]
#[path = "it/books.rs"]
mod books;
#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "it/ledger.rs"]
mod ledger;
#[allow(dead_code)]
#[path = "support/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "it/procs.rs"]
mod procs;
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tenderflow::config::Settings;
use tenderflow::envelope::Stage;
use tenderflow::secret::Secret;
use uuid::Uuid;

use helpers::TestPipeline;
use ledger::EventLog;
use load::{TASKS, assert_nothing_lost, await_under_load, submit_load};
use procs::{Proc, settings_env};
use support::node::Node;
/// For [`books`], as `crate::view` (where `it` has it).
use support::view;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_tenderflow");

/// How long a stopped node stays down.
const OUTAGE: Duration = Duration::from_secs(10);

/// Three private nodes joined into one cluster.
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts three nodes and joins the second and third to the first.
    fn start() -> Cluster {
        let nodes: Vec<Node> = (0..3).map(|_| Node::start()).collect();
        for node in &nodes[1..] {
            node.join_cluster(&nodes[0]);
        }
        let status = nodes[0].ctl_ok(&["cluster_status", "--formatter", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        let running = status["running_nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(running, 3, "three nodes run in one cluster: {status}");
        Cluster { nodes }
    }

    /// Every node's URL, for `amqp.urls`.
    fn urls(&self) -> Vec<Secret> {
        self.nodes
            .iter()
            .map(|n| Secret::new(n.amqp_url()))
            .collect()
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("{name} is a node of the cluster"))
    }

    /// The leader of each of `queues`, as a running node reports it.
    fn leaders(&self, queues: &[String]) -> BTreeMap<String, String> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a node runs");
        let listing = node.ctl_ok(&[
            "list_queues",
            "name",
            "leader",
            "--quiet",
            "--no-table-headers",
        ]);
        let leaders: BTreeMap<String, String> = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(queue, _)| queues.iter().any(|q| q == queue))
            .map(|(queue, leader)| (queue.to_string(), leader.trim().to_string()))
            .collect();
        assert_eq!(
            leaders.len(),
            queues.len(),
            "every queue has a leader: {listing}"
        );
        leaders
    }
}

/// A pipeline on the cluster: fresh prefix, store and view database, the
/// three nodes, fast retries and reconnects, a free port for the API.
fn rig(cluster: &Cluster) -> TestPipeline {
    let urls = cluster.urls();
    TestPipeline::new(move |settings, dir| {
        settings.amqp.urls = urls;
        settings.stages.concurrency = 2;
        settings.stages.handler_timeout_ms = 120_000;
        settings.amqp.reconnect_max_delay_ms = 2_000;
        settings.amqp.connect_timeout_ms = 5_000;
        settings.projector.db_path = dir.join("view.sqlite3");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        settings.http.addr = listener.local_addr().unwrap().to_string();
    })
}

/// Each stage as a `tenderflow worker` process, and `tenderflow serve`.
fn start_processes(settings: &Settings) -> Vec<Proc> {
    let env = settings_env(settings);
    let mut procs: Vec<Proc> = Stage::ALL
        .iter()
        .map(|stage| {
            Proc::spawn(
                &format!("tenderflow worker {}", stage.as_str()),
                Path::new(BIN),
                &["worker", stage.as_str()],
                &env,
            )
            .expect("the tenderflow binary starts")
        })
        .collect();
    procs.push(
        Proc::spawn("tenderflow serve", Path::new(BIN), &["serve"], &env)
            .expect("the tenderflow binary starts"),
    );
    procs
}

fn assert_all_alive(procs: &mut [Proc]) {
    for proc in procs {
        assert!(
            proc.try_status().is_none(),
            "{} lives through the outage",
            proc.name
        );
    }
}

/// A log of the events stream, read from its first entry. Right after a
/// node stopped, a node whose replica of the stream is restarting under the
/// new leader refuses a consumer for a moment ("does not have a replica on
/// the local node"), as it refuses the projector, which retries too.
async fn event_log(settings: &Settings) -> EventLog {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match EventLog::start(settings).await {
            Ok(log) => return log,
            Err(err) if Instant::now() < deadline => {
                eprintln!("reading the events stream: {err:#}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => panic!("the events stream cannot be read for 60 s: {err:#}"),
        }
    }
}

/// Stops `node` for [`OUTAGE`] once some but not all of `load` have
/// completed, then starts it again; returns when every one of `tasks` has
/// ended, checked as [`assert_nothing_lost`] does.
async fn outage(
    pipeline: &TestPipeline,
    procs: &mut [Proc],
    node: &Node,
    (load, tasks): (&[Uuid], &[Uuid]),
    what: &str,
) {
    let started = Instant::now();
    {
        // This log's connection may go with the node; a new one reads
        // the whole stream again after it.
        let before = event_log(&pipeline.settings).await;
        await_under_load(&before, load).await;
    }
    node.stop_app();
    let stopped = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    assert_all_alive(procs);
    node.start_app();

    let log = event_log(&pipeline.settings).await;
    log.wait_for(Duration::from_secs(180), |t| t.ended(tasks) == tasks.len())
        .await;
    let ended = stopped.elapsed();
    let tally = assert_nothing_lost(pipeline, &log, tasks).await;
    assert_all_alive(procs);
    eprintln!(
        "cluster, {what} ({}) stopped for {} s: {} tasks completed once, 0 lost, \
         0 dead-lettered, {} messages handled again; from the stop, {:.1} s until \
         every task ended and {:.1} s until checked ({:.1} s in all)",
        node.name(),
        OUTAGE.as_secs(),
        tasks.len(),
        tally.redone(tasks),
        ended.as_secs_f64(),
        stopped.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

#[tokio::test]
async fn the_pipeline_rides_out_the_loss_of_the_stage_queue_leader_then_of_the_stream_leader() {
    let cluster = Cluster::start();
    let pipeline = rig(&cluster);
    let topology = pipeline.topology();
    let stage_queues: Vec<String> = Stage::ALL
        .iter()
        .map(|s| topology.stage_queue(*s))
        .collect();
    let events = vec![topology.events_queue()];

    let mut tasks = submit_load(&pipeline, TASKS).await;
    let mut procs = start_processes(&pipeline.settings);

    // The node leading most stage queues (all of them, as the workers
    // declared them on the node they reached first).
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for leader in cluster.leaders(&stage_queues).into_values() {
        *count.entry(leader).or_default() += 1;
    }
    let (stage_leader, led) = count.into_iter().max_by_key(|(_, n)| *n).unwrap();
    eprintln!("{stage_leader} leads {led} of the 4 stage queues");
    outage(
        &pipeline,
        &mut procs,
        cluster.node(&stage_leader),
        (&tasks, &tasks),
        "the stage queues' leader",
    )
    .await;

    // The stream's leader now: another node if the first stop moved it.
    let more = submit_load(&pipeline, TASKS).await;
    tasks.extend(more.iter().copied());
    let stream_leader = cluster.leaders(&events).into_values().next().unwrap();
    outage(
        &pipeline,
        &mut procs,
        cluster.node(&stream_leader),
        (&more, &tasks),
        "the events stream's leader",
    )
    .await;

    for proc in &mut procs {
        proc.stop_cleanly().await;
    }
    drop(pipeline);
    drop(cluster);
}
