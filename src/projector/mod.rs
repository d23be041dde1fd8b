//! The status projector: folds the events stream into a durable task view
//! and serves it over HTTP.
//!
//! [`run`] is what `tenderflow serve` and `tenderflow run` call; [`start`]
//! does the same but hands back the bound address, for tests on port 0.

mod cache;
pub mod db;
pub mod dead_letters;
pub mod index;
pub mod lock;
pub mod retention;
pub mod snapshot;
pub mod stream;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::{AppState, router};
use crate::store::Store;
use crate::submit::Submitter;
use crate::topology::Topology;
use db::ViewDb;
use stream::{Consumer, Progress};
use view::TaskView;

/// Changes a slow watcher may fall behind by before it rereads the view.
const CHANGES_BUFFER: usize = 1024;

/// A started projector and API.
pub struct Running {
    /// Where the API listens (useful when the configured port was 0).
    pub addr: SocketAddr,
    /// The task view, for comparing projectors in tests.
    pub db: ViewDb,
    /// Every view the projector changes, as it commits it (what the API's
    /// watch streams follow).
    pub changes: broadcast::Sender<TaskView>,
    /// Ends when the token is cancelled (or a part failed).
    pub handle: JoinHandle<anyhow::Result<()>>,
}

/// Runs the projector and the HTTP API until `token` is cancelled.
pub async fn run(settings: Settings, token: CancellationToken) -> anyhow::Result<()> {
    let running = start(settings, token).await?;
    tracing::info!(addr = %running.addr, "API listening");
    running
        .handle
        .await
        .context("the projector task panicked")?
}

/// Opens the view, binds the API's address and starts both; returns once
/// the address is bound.
pub async fn start(settings: Settings, token: CancellationToken) -> anyhow::Result<Running> {
    let settings = Arc::new(settings);
    // Cancelled by the caller, or here when one part fails, so the other
    // part (and every watch stream) stops too.
    let local = token.child_token();
    let lock = lock::serving(&settings.projector.db_path)?;
    let db = ViewDb::open(&settings.projector.db_path).with_context(|| {
        format!(
            "opening the view database {}",
            settings.projector.db_path.display()
        )
    })?;
    let topology = Topology::from_settings(&settings)?;
    let (changes, _) = broadcast::channel(CHANGES_BUFFER);
    let watched = changes.clone();
    let progress = Arc::new(Progress::default());
    let consumer = Consumer {
        settings: Arc::clone(&settings),
        topology: topology.clone(),
        db: db.clone(),
        changes: changes.clone(),
        progress: Arc::clone(&progress),
    };
    let indexer = dead_letters::Indexer {
        settings: Arc::clone(&settings),
        topology: topology.clone(),
        db: db.clone(),
    };
    let summaries = index::Indexer {
        db: db.clone(),
        store: Store::from_settings(&settings)?,
        changes: changes.clone(),
    };
    let state = AppState {
        submitter: Arc::new(Submitter::new(Arc::clone(&settings))?),
        store: Store::from_settings(&settings)?,
        settings: Arc::clone(&settings),
        db: db.clone(),
        changes,
        progress,
        topology,
        shutdown: local.clone(),
        dlq_lock: Arc::default(),
    };
    let listener = TcpListener::bind(&settings.http.addr)
        .await
        .with_context(|| format!("listening on {}", settings.http.addr))?;
    let addr = listener.local_addr()?;
    // Queue depths and the stream's last offset for this page's metrics (and
    // the projector's lag); the poller stops with the rest.
    tokio::spawn(crate::metrics::poll_queues(
        Arc::clone(&settings),
        crate::envelope::Stage::ALL.to_vec(),
        true,
        local.clone(),
    ));
    // Retention stops with the rest; a failed pass only logs.
    tokio::spawn(retention::run(
        db.clone(),
        Arc::clone(&settings),
        local.clone(),
    ));
    let handle = tokio::spawn(async move {
        // Held while the projector runs: no restore or vacuum under it.
        let _lock = lock;
        serve(consumer, indexer, summaries, listener, state, local).await
    });
    Ok(Running {
        addr,
        db,
        changes: watched,
        handle,
    })
}

/// Runs the events consumer, the dead-letter and summary indexers and the
/// server side by side; if one stops with an error the others are stopped too, and the
/// error returned.
async fn serve(
    consumer: Consumer,
    indexer: dead_letters::Indexer,
    summaries: index::Indexer,
    listener: TcpListener,
    state: AppState,
    local: CancellationToken,
) -> anyhow::Result<()> {
    let reading = tokio::spawn({
        let local = local.clone();
        async move {
            let result = consumer.run(local.clone()).await;
            local.cancel();
            result
        }
    });
    let indexing = tokio::spawn({
        let local = local.clone();
        async move {
            let result = indexer.run(local.clone()).await;
            local.cancel();
            result
        }
    });
    let summarising = tokio::spawn({
        let local = local.clone();
        async move {
            let result = summaries.run(local.clone()).await;
            local.cancel();
            result
        }
    });
    let limits = crate::http::ServeLimits::from_settings(&state.settings);
    let server = crate::http::serve(listener, router(state), limits, local.clone())
        .await
        .context("the HTTP server failed");
    local.cancel();
    let read = reading.await.context("the projector consumer panicked")?;
    let indexed = indexing.await.context("the dead-letter indexer panicked")?;
    let summarised = summarising.await.context("the summary indexer panicked")?;
    server?;
    summarised.context("the summary indexer stopped")?;
    read.context("the projector stopped")?;
    indexed.context("the dead-letter indexer stopped")
}
