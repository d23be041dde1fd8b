//! A broker-wide fault: a memory alarm, which blocks every publishing
//! connection on the broker for as long as it lasts. This is its own test
//! binary because the alarm disturbs any other test publishing at the
//! time; cargo runs test binaries one after another, so it never overlaps
//! the integration suite. The alarm is always lifted again, also when the
//! test fails.

#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;

use std::process::Command;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tenderflow::envelope::{Envelope, Stage};
use tenderflow::runtime::Handler;
use tenderflow::stages::{StageError, StageOutput};
use tenderflow::submit::Outcome;

use helpers::{TestPipeline, outcomes};

/// How long the alarm lasts: past the broker timeouts (15 s) and liveness
/// probes (10 s) that used to turn a block into a reconnect.
const ALARM: Duration = Duration::from_secs(60);

/// Raises a memory alarm (the high watermark far below what the broker
/// uses) and lifts it when dropped.
struct MemoryAlarm {
    watermark: String,
}

impl MemoryAlarm {
    fn raise() -> MemoryAlarm {
        let out = Command::new("rabbitmqctl")
            .args(["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."])
            .output()
            .expect("rabbitmqctl runs");
        let watermark = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let watermark = if watermark.parse::<f64>().is_ok() {
            watermark
        } else {
            "0.4".to_string()
        };
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.0000001"]);
        MemoryAlarm { watermark }
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        rabbitmqctl(&["set_vm_memory_high_watermark", &self.watermark]);
    }
}

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// The parse handler, a second slower, so that work is in hand when the
/// alarm comes.
struct Slow<H>(H);

impl<H: Handler> Handler for Slow<H> {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        let inner = self.0.handle(envelope);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            inner.await
        })
    }
}

#[tokio::test]
async fn a_minute_long_memory_alarm_under_load_ends_with_every_task_done_and_nothing_dead_lettered()
{
    // Few deliveries allowed: every reconnect that returned the messages
    // in hand would bring them closer to a false poison verdict.
    let pipeline = TestPipeline::new(|settings, _| settings.stages.max_deliveries = 3);
    pipeline.start_all_but(Stage::Parse, Slow(pipeline.real_handler(Stage::Parse)));
    let follower = pipeline.follower().await;
    let names = vec!["cn_selection.md"; 24];
    let tasks = pipeline.submit_files(&names).await;
    let alarm = MemoryAlarm::raise();
    tokio::time::sleep(ALARM).await;
    drop(alarm);

    let done = outcomes(follower, &tasks, 120).await;
    for task in &tasks {
        assert!(
            matches!(done[task], Outcome::Completed { .. }),
            "{task}: {:?}",
            done[task]
        );
    }
    pipeline.assert_nothing_dead_lettered().await;
    pipeline.teardown().await;
}
