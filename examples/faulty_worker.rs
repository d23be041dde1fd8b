//! A stage worker on tenderflow's own runtime whose handler misbehaves on
//! purpose, for the fault tests: a document whose file name contains
//! `abort-me` aborts the whole process (as a segfault or an OOM kill would),
//! one whose name contains `panic-me` panics in the handler; every other
//! document gets the stage's real handler.
//!
//! `faulty_worker <stage>`; settings come from the usual `TENDERFLOW__*`
//! environment variables. SIGTERM or SIGINT stops it gracefully.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tenderflow::config::Settings;
use tenderflow::envelope::{Envelope, Stage};
use tenderflow::runtime::{self, Handler, WorkerOptions};
use tenderflow::stages::{StageContext, StageError, StageHandler, StageOutput};
use tenderflow::startup::shutdown_signal;
use tenderflow::store::Store;
use tokio_util::sync::CancellationToken;

/// The real handler, but for the documents named to misbehave.
struct Faulty(StageHandler);

impl Handler for Faulty {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        let named = |marker: &str| {
            envelope
                .documents
                .iter()
                .any(|d| d.filename.contains(marker))
        };
        if named("abort-me") {
            eprintln!("faulty_worker: aborting on {}", envelope.task_id);
            std::process::abort();
        }
        if named("panic-me") {
            return Box::pin(async { panic!("injected panic in a real worker process") });
        }
        self.0.handle(envelope)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stage: Stage = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: faulty_worker <stage>"))?
        .parse()
        .map_err(anyhow::Error::msg)?;
    let settings = Arc::new(Settings::load(None)?);
    let _telemetry = tenderflow::telemetry::init(&settings.log);
    let handler = Faulty(StageHandler {
        stage,
        context: StageContext {
            store: Store::from_settings(&settings)?,
            settings: Arc::clone(&settings),
        },
    });
    let options = WorkerOptions {
        stage,
        concurrency: settings.stages.concurrency,
    };
    let token = CancellationToken::new();
    let worker = tokio::spawn(runtime::run_worker(
        settings,
        options,
        Arc::new(handler),
        token.clone(),
    ));
    shutdown_signal().await;
    token.cancel();
    worker.await?
}
