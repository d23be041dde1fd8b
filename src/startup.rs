//! Assembling and supervising a process: the stage workers, the notify
//! consumer, the projector with the API and the metrics server that one
//! command runs, each watched, and all stopped together on a signal or
//! when one fails. The command line only chooses what to run (as
//! zero-to-production keeps `startup.rs` apart from `main.rs`).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::envelope::Stage;
use crate::runtime::{self, WorkerOptions};
use crate::stages::{StageContext, StageHandler};
use crate::store::Store;

/// What runs beside the stages in one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    /// The projector with the HTTP API.
    pub serve: bool,
    /// The notify consumer (completion callbacks).
    pub notify: bool,
}

/// Runs `stages` (and the `parts` beside them) in this process until
/// SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(
    settings: Arc<Settings>,
    stages: &[Stage],
    concurrency: Option<u16>,
    parts: Parts,
) -> anyhow::Result<ExitCode> {
    let serve = parts.serve;
    // A certificate TLS refuses is a mistake to say now, not a reason for
    // every worker to retry for ever.
    crate::broker::check_tls(&settings).await?;
    // So is a key the document store refuses.
    let store = Store::from_settings(&settings)?;
    store.check_access().await?;
    let token = CancellationToken::new();
    let context = StageContext {
        store,
        settings: Arc::clone(&settings),
    };
    let tracker = TaskTracker::new();
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for &stage in stages {
        let options = WorkerOptions {
            stage,
            concurrency: concurrency.unwrap_or(settings.stages.concurrency),
        };
        let handler = Arc::new(StageHandler {
            stage,
            context: context.clone(),
        });
        let worker = runtime::run_worker(Arc::clone(&settings), options, handler, token.clone());
        tracker.spawn(supervise(
            format!("{stage} worker"),
            worker,
            token.clone(),
            Arc::clone(&failed),
        ));
    }
    if parts.notify {
        // `concurrency` is the stages' in `run`; the notifier has its own.
        let own = if stages.is_empty() { concurrency } else { None };
        let notifier = crate::notify::run_notifier(Arc::clone(&settings), own, token.clone());
        tracker.spawn(supervise(
            "notify consumer".into(),
            notifier,
            token.clone(),
            Arc::clone(&failed),
        ));
    }
    if serve {
        let projector = crate::projector::run((*settings).clone(), token.clone());
        tracker.spawn(supervise(
            "projector".into(),
            projector,
            token.clone(),
            Arc::clone(&failed),
        ));
    }
    if let Some(addr) = &settings.metrics.addr {
        let addr = addr.parse().context("metrics.addr")?;
        tracker.spawn(supervise(
            "metrics server".into(),
            crate::metrics::serve(addr, token.clone()),
            token.clone(),
            Arc::clone(&failed),
        ));
        if !serve {
            // `serve` polls every queue itself (see the projector).
            let poller = crate::metrics::poll_queues(
                Arc::clone(&settings),
                stages.to_vec(),
                false,
                token.clone(),
            );
            tracker.spawn(supervise(
                "queue poller".into(),
                poller,
                token.clone(),
                Arc::clone(&failed),
            ));
        }
    }
    tracker.close();
    tracing::info!(stages = ?stages, serve, notify = parts.notify, "running; SIGINT or SIGTERM stops");
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("signal received; finishing the messages in hand"),
        _ = token.cancelled() => {}
    }
    token.cancel();
    tracker.wait().await;
    Ok(if failed.load(std::sync::atomic::Ordering::SeqCst) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs one part of the process; if it fails, says which and why, and stops
/// the rest.
pub async fn supervise(
    name: String,
    part: impl std::future::Future<Output = anyhow::Result<()>>,
    token: CancellationToken,
    failed: Arc<std::sync::atomic::AtomicBool>,
) {
    if let Err(err) = part.await {
        tracing::error!(part = %name, error = format!("{err:#}"), "stopped with an error; shutting down");
        failed.store(true, std::sync::atomic::Ordering::SeqCst);
        token.cancel();
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
