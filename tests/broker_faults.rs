//! Broker-side faults under load, against the real `tenderflow run`
//! binary: the broker application restarted, and the events stream or a
//! stage queue unbound from its exchange for a while. After each, every
//! task is done once with one summary, nothing is dead-lettered, the work
//! and retry queues are drained, and the projector serves the fold of the
//! events stream.
//!
//! A test binary of its own, because these tests are slow (each waits out
//! its fault). The restart runs on a private RabbitMQ node
//! ([`support::node::Node`]), never on the shared broker other tests use;
//! the unbinding touches only the test's own prefix, so it runs on the
//! shared broker.

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

use std::path::Path;
use std::time::{Duration, Instant};

use lapin::types::FieldTable;
use tenderflow::broker;
use tenderflow::config::Settings;
use tenderflow::envelope::Stage;
use tenderflow::secret::Secret;

use helpers::TestPipeline;
use ledger::EventLog;
use load::{TASKS, assert_nothing_lost, await_under_load, submit_load};
use procs::{Proc, settings_env};
use support::node::Node;
/// For [`books`], as `crate::view` (where `it` has it).
use support::view;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_tenderflow");

/// One test at a time: each runs a whole pipeline under load (and one a
/// broker node), and on a two-core machine side by side they would mostly
/// measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a fault lasts.
const FAULT: Duration = Duration::from_secs(8);

/// A pipeline on the broker at `amqp_url` (the shared one when `None`):
/// fresh prefix, store and view database, fast retries and reconnects, a
/// free port for the API.
fn rig(amqp_url: Option<&str>) -> TestPipeline {
    TestPipeline::new(|settings, dir| {
        if let Some(url) = amqp_url {
            settings.amqp.url = Secret::new(url.to_string());
        }
        settings.stages.concurrency = 2;
        settings.stages.handler_timeout_ms = 120_000;
        settings.amqp.reconnect_max_delay_ms = 2_000;
        settings.projector.db_path = dir.join("view.sqlite3");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        settings.http.addr = listener.local_addr().unwrap().to_string();
    })
}

/// `tenderflow run` (every stage and the projector) with the settings.
fn run(settings: &Settings) -> Proc {
    Proc::spawn(
        "tenderflow run",
        Path::new(BIN),
        &["run"],
        &settings_env(settings),
    )
    .expect("the tenderflow binary starts")
}

/// Publishes the broker returned as unroutable, by every worker of the
/// pipeline, as the metrics page of its `run` counts them.
async fn unroutable_publishes(settings: &Settings) -> u64 {
    let page = reqwest::get(format!("http://{}/metrics", settings.http.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(
        "tenderflow_publishes_unroutable_total{{prefix=\"{}\"",
        settings.topology.prefix
    );
    page.lines()
        .filter(|line| line.starts_with(&series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Keeps `queue` unbound from `exchange` (binding key `key`) for `FAULT`:
/// the workers declare the topology again whenever they reconnect, which
/// binds it again, so the fault unbinds it again and again, as a
/// misconfiguration that persists would. Binds it again at the end.
/// Returns how many unbinds it made.
async fn keep_unbound(settings: &Settings, queue: &str, exchange: &str, key: &str) -> usize {
    let conn = broker::connect_once(settings, "test-unbind").await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let until = Instant::now() + FAULT;
    let mut unbinds = 0;
    while Instant::now() < until {
        channel
            .queue_unbind(
                queue.into(),
                exchange.into(),
                key.into(),
                FieldTable::default(),
            )
            .await
            .expect("unbinding");
        unbinds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding again");
    let _ = conn.close(200, "done".into()).await;
    unbinds
}

#[tokio::test]
async fn a_restart_of_the_broker_application_under_load_loses_and_repeats_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = Node::start();
    let pipeline = rig(Some(&node.amqp_url()));
    let tasks = submit_load(&pipeline, TASKS).await;
    let mut run = run(&pipeline.settings);
    {
        // This log's connection goes with the restart; a new one reads
        // the whole stream again after it.
        let before = EventLog::start(&pipeline.settings).await.unwrap();
        await_under_load(&before, &tasks).await;
    }
    node.stop_app();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        run.try_status().is_none(),
        "the process rides out the outage"
    );
    node.start_app();

    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let tally = assert_nothing_lost(&pipeline, &log, &tasks).await;
    eprintln!(
        "broker restart: {} tasks completed, {} messages handled again",
        tasks.len(),
        tally.redone(&tasks)
    );
    assert!(run.try_status().is_none(), "the process lived through it");
    run.stop_cleanly().await;
    drop(pipeline);
    drop(node);
}

#[tokio::test]
async fn the_events_stream_unbound_for_a_while_under_load_loses_no_event() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let pipeline = rig(None);
    let topology = pipeline.topology();
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let tasks = submit_load(&pipeline, TASKS).await;
    let mut run = run(&pipeline.settings);
    await_under_load(&log, &tasks).await;
    let unbinds = keep_unbound(
        &pipeline.settings,
        &topology.events_queue(),
        &topology.events_exchange(),
        "",
    )
    .await;

    let tally = assert_nothing_lost(&pipeline, &log, &tasks).await;
    let returned = unroutable_publishes(&pipeline.settings).await;
    assert!(returned > 0, "event batches were returned while unbound");
    eprintln!(
        "events unbound: {returned} publishes returned, {unbinds} unbinds in {} s, {} tasks completed, {} messages handled again",
        FAULT.as_secs(),
        tasks.len(),
        tally.redone(&tasks)
    );
    assert!(run.try_status().is_none(), "the process lived through it");
    run.stop_cleanly().await;
}

#[tokio::test]
async fn a_stage_queue_unbound_for_a_while_under_load_loses_no_work() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let pipeline = rig(None);
    let topology = pipeline.topology();
    let log = EventLog::start(&pipeline.settings).await.unwrap();
    let mut tasks = submit_load(&pipeline, TASKS - TASKS / 3).await;
    let mut run = run(&pipeline.settings);
    await_under_load(&log, &tasks).await;
    // Ingest's forwards to parse find no queue while it lasts; more work
    // arrives meanwhile, so ingest surely has some in hand.
    let (queue, exchange) = (topology.stage_queue(Stage::Parse), topology.work_exchange());
    let (unbinds, more) = tokio::join!(
        keep_unbound(&pipeline.settings, &queue, &exchange, Stage::Parse.as_str()),
        submit_load(&pipeline, TASKS / 3),
    );
    tasks.extend(more);

    let tally = assert_nothing_lost(&pipeline, &log, &tasks).await;
    let returned = unroutable_publishes(&pipeline.settings).await;
    assert!(
        returned > 0,
        "forwards to parse were returned while unbound"
    );
    eprintln!(
        "parse queue unbound: {returned} publishes returned, {unbinds} unbinds in {} s, {} tasks completed, {} messages handled again",
        FAULT.as_secs(),
        tasks.len(),
        tally.redone(&tasks)
    );
    assert!(run.try_status().is_none(), "the process lived through it");
    run.stop_cleanly().await;
}

/// The private node is a node of its own: the shared broker keeps
/// running and answering while it starts, restarts and stops.
#[tokio::test]
async fn a_private_node_starts_restarts_and_stops_without_touching_the_shared_broker() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = Node::start();
    assert!(node.is_running());
    let settings = rig(Some(&node.amqp_url())).settings.clone();
    let conn = broker::connect_once(&settings, "test-node").await.unwrap();
    drop(conn);
    node.stop_app();
    assert!(!node.is_running(), "stop_app stopped the application");
    assert!(shared_broker_runs(), "the shared broker runs on");
    node.start_app();
    assert!(node.is_running());
    let name = node.name().to_string();
    drop(node);
    let gone = std::process::Command::new("rabbitmqctl")
        .args(["-n", &name, "status"])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "the private node is stopped");
    assert!(shared_broker_runs(), "the shared broker runs on");
}

fn shared_broker_runs() -> bool {
    std::process::Command::new("rabbitmqctl")
        .args(["await_startup", "--timeout", "5"])
        .status()
        .is_ok_and(|s| s.success())
        && std::net::TcpStream::connect("127.0.0.1:5672").is_ok()
}
