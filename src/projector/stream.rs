//! Reads the events stream into the view database.
//!
//! The consumer starts at the stored offset + 1 (or the first entry of the
//! stream when the database is empty), takes what the broker has ready in
//! batches, folds each batch in with its last offset in one transaction, and
//! only then acks. A crash anywhere re-reads from the stored offset, and the
//! fold makes the re-read events harmless.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::db::{Batch, ViewDb};
use super::view::TaskView;
use crate::broker::{self, stream_offset};
use crate::config::Settings;
use crate::events::decode_entry;
use crate::topology::Topology;

/// Deliveries the broker may have in flight to the projector (streams
/// require a prefetch).
const PREFETCH: u16 = 1000;
/// Most events folded in one transaction.
const BATCH_MAX: usize = 500;
/// Quiet time after which the projector counts as caught up.
const IDLE: Duration = Duration::from_millis(200);
/// Pause before reconnecting after a lost session (the connect itself backs
/// off further while the broker stays away).
const RESUME_PAUSE: Duration = Duration::from_millis(500);

/// What the projector's consumer is doing, for readiness and the API.
#[derive(Default)]
pub struct Progress {
    caught_up: AtomicBool,
    offset: AtomicU64,
    has_offset: AtomicBool,
    skipped: AtomicU64,
    lost: AtomicU64,
    connection: RwLock<Option<Arc<lapin::Connection>>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Only whole values are ever written, so a poisoned lock holds a valid one.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Progress {
    /// Whether the consumer is connected to the broker (asks the
    /// connection, so a connection that just dropped counts as gone).
    pub fn connected(&self) -> bool {
        read(&self.connection)
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// Whether the last read found nothing more waiting in the stream.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// The offset of the last entry folded in.
    pub fn offset(&self) -> Option<u64> {
        self.has_offset
            .load(Ordering::Relaxed)
            .then(|| self.offset.load(Ordering::Relaxed))
    }

    /// Stream entries that were not readable events and were skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Stream entries that had aged out of the stream before they were
    /// read (a stored offset, or a snapshot's, older than the stream's
    /// first entry): the view may lack those tasks or parts of them.
    pub fn lost_events(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The consumer's broker connection, while connected: for the API's
    /// dead-letter endpoints.
    pub fn connection(&self) -> Option<Arc<lapin::Connection>> {
        read(&self.connection).clone()
    }

    fn set_offset(&self, offset: u64) {
        self.offset.store(offset, Ordering::Relaxed);
        self.has_offset.store(true, Ordering::Relaxed);
    }

    fn set_connection(&self, connection: Option<Arc<lapin::Connection>>) {
        if connection.is_none() {
            self.caught_up.store(false, Ordering::Relaxed);
        }
        *self
            .connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = connection;
    }
}

/// The consumer's shared pieces.
#[derive(Clone)]
pub struct Consumer {
    /// Settings (broker URL, reconnection delays).
    pub settings: Arc<Settings>,
    /// Names of the events stream.
    pub topology: Topology,
    /// Where the view goes.
    pub db: ViewDb,
    /// Every changed view is announced here.
    pub changes: broadcast::Sender<TaskView>,
    /// What the consumer is doing.
    pub progress: Arc<Progress>,
}

impl Consumer {
    /// Consumes until `token` is cancelled, reconnecting (with backoff)
    /// when the broker goes away. Fails only when the view database does.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        if let Some(offset) = self.db.offset().context("reading the stored offset")? {
            self.progress.set_offset(offset);
        }
        loop {
            let result = self.session(&token).await;
            self.progress.set_connection(None);
            match result {
                Ok(()) => return Ok(()),
                Err(Lost::Database(error)) => return Err(error),
                Err(Lost::Broker(error)) => {
                    warn!(
                        error = format!("{error:#}"),
                        "projector lost the events stream"
                    )
                }
            }
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = tokio::time::sleep(RESUME_PAUSE) => {}
            }
        }
    }

    async fn session(&self, token: &CancellationToken) -> Result<(), Lost> {
        let name = format!("tenderflow-{}-projector", self.topology.prefix());
        let Some(connection) = broker::connect(&self.settings, &name, token).await else {
            return Ok(());
        };
        let connection = Arc::new(connection);
        let result = self.consume(&connection, token).await;
        let closing = connection.close(200, "projector stopping".into());
        let _ = broker::within("closing", closing).await;
        result
    }

    async fn consume(
        &self,
        connection: &Arc<lapin::Connection>,
        token: &CancellationToken,
    ) -> Result<(), Lost> {
        let channel = connection.create_channel().await.map_err(Lost::broker)?;
        self.topology.apply(&channel).await.map_err(Lost::Broker)?;
        let queue = self.topology.events_queue();
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await
            .map_err(Lost::broker)?;
        let start = match self.db.offset().map_err(Lost::database)? {
            Some(offset) => AMQPValue::LongLongInt(offset as i64 + 1),
            None => AMQPValue::LongString("first".into()),
        };
        let mut arguments = FieldTable::default();
        arguments.insert("x-stream-offset".into(), start);
        let tag = format!("projector-{}", uuid::Uuid::now_v7());
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                arguments,
            )
            .await
            .map_err(Lost::broker)?;
        self.progress.set_connection(Some(connection.clone()));
        info!(queue, offset = ?self.progress.offset(), "projector reading the events stream");
        let result = self
            .read(connection, &channel, &queue, &mut deliveries, token)
            .await;
        if result.is_ok() {
            // A clean stop: cancel the consumer, then close the channel, so
            // that closing the connection does not race deliveries still on
            // their way (lapin logs that as a connection error).
            let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
            let _ = broker::within("cancelling", cancel).await;
            let _ =
                broker::within("closing", channel.close(200, "projector stopping".into())).await;
        }
        result
    }

    async fn read(
        &self,
        connection: &lapin::Connection,
        channel: &lapin::Channel,
        queue: &str,
        deliveries: &mut lapin::Consumer,
        token: &CancellationToken,
    ) -> Result<(), Lost> {
        let mut probe = broker::probe_timer();
        loop {
            let first = tokio::select! {
                () = token.cancelled() => return Ok(()),
                next = deliveries.next() => next,
                _ = probe.tick() => {
                    if !broker::answers(connection, channel, queue).await {
                        return Err(Lost::Broker(anyhow::anyhow!(
                            "the broker stopped answering on this connection"
                        )));
                    }
                    continue;
                }
                () = tokio::time::sleep(IDLE) => {
                    self.progress.caught_up.store(true, Ordering::Relaxed);
                    continue;
                }
            };
            let first = first
                .ok_or_else(|| {
                    Lost::Broker(anyhow::anyhow!("the broker cancelled the stream consumer"))
                })?
                .map_err(Lost::broker)?;
            let batch = gather(first, deliveries).map_err(Lost::broker)?;
            // A full batch means the broker may have more ready.
            let drained = batch.len() < BATCH_MAX;
            self.write(batch).await?;
            self.progress.caught_up.store(drained, Ordering::Relaxed);
        }
    }

    async fn write(&self, deliveries: Vec<Delivery>) -> Result<(), Lost> {
        if let Some(first) = deliveries.first().and_then(stream_offset) {
            let lost = missed(self.progress.offset(), first);
            if lost > 0 {
                self.progress.lost.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    folded = ?self.progress.offset(),
                    first_available = first,
                    lost,
                    "events were lost: the events stream no longer holds the entries after the \
                     view's offset (aged out); the view may miss tasks or parts of them"
                );
            }
        }
        let last = deliveries.last().expect("a batch has a first delivery");
        let last_offset = stream_offset(last).ok_or_else(|| {
            Lost::Broker(anyhow::anyhow!(
                "a delivery without x-stream-offset: is the events queue a stream?"
            ))
        })?;
        let mut batch = Batch {
            events: Vec::with_capacity(deliveries.len()),
            last_offset,
        };
        for delivery in &deliveries {
            match decode_entry(&delivery.data) {
                Ok(events) => batch.events.extend(events),
                Err(reason) => {
                    self.progress.skipped.fetch_add(1, Ordering::Relaxed);
                    warn!(offset = ?stream_offset(delivery), reason, "skipping an unreadable event");
                }
            }
        }
        let db = self.db.clone();
        let changed = tokio::task::spawn_blocking(move || db.apply(&batch))
            .await
            .map_err(Lost::database)?
            .map_err(Lost::database)?;
        self.db.checkpoint_when_due();
        self.progress.set_offset(last_offset);
        for view in changed {
            // Nobody watching is fine.
            let _ = self.changes.send(view);
        }
        let ack = last.acker.ack(BasicAckOptions { multiple: true });
        broker::within("acking", ack).await.map_err(Lost::Broker)?;
        Ok(())
    }
}

/// Entries between the last one folded (`None`: none yet) and `first`,
/// the first the stream delivered: more than none only when they aged out.
fn missed(folded: Option<u64>, first: u64) -> u64 {
    match folded {
        Some(folded) => first.saturating_sub(folded.saturating_add(1)),
        None => first,
    }
}

/// Why a session ended.
pub(super) enum Lost {
    /// The broker or the connection failed: reconnect and resume.
    Broker(anyhow::Error),
    /// The view database failed: nothing sensible to do but stop.
    Database(anyhow::Error),
}

impl Lost {
    pub(super) fn broker(error: impl Into<anyhow::Error>) -> Self {
        Lost::Broker(error.into())
    }

    pub(super) fn database(error: impl Into<anyhow::Error>) -> Self {
        Lost::Database(error.into())
    }
}

/// The first delivery and whatever else the consumer holds already, up to
/// [`BATCH_MAX`], without waiting for more: a trickle is written at once,
/// and under load what arrives while one batch is being written makes the
/// next (a group commit).
fn gather(first: Delivery, deliveries: &mut lapin::Consumer) -> anyhow::Result<Vec<Delivery>> {
    let mut batch = vec![first];
    while batch.len() < BATCH_MAX {
        match deliveries.next().now_or_never() {
            Some(Some(next)) => batch.push(next?),
            // The end of the stream shows at the next read.
            Some(None) | None => break,
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::missed;

    #[test]
    fn entries_skipped_over_at_the_start_of_a_read_count_as_lost() {
        assert_eq!(missed(None, 0), 0, "an empty view reading from the first");
        assert_eq!(missed(Some(9), 10), 0, "the entry after the offset");
        assert_eq!(missed(Some(9), 5), 0, "a re-read");
        assert_eq!(missed(Some(9), 110), 100, "aged out since the snapshot");
        assert_eq!(missed(None, 40), 40, "an empty view of an aged stream");
    }
}
