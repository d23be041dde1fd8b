//! Reads the dead-letter streams into the projector's index.
//!
//! One reader per stage follows `{stage}.dlq` from its stored offset (or
//! the stream's first entry), folds what it reads into the index with the
//! offset in one transaction, and only then acks: a crash re-reads from the
//! stored offset, and the index takes a re-read entry once.
//!
//! A dead letter the broker parked itself (its delivery limit) came with no
//! event: its task would show running for ever. The reader announces the
//! `dead_lettered` event it stands for, confirmed, before it folds the entry
//! in; the event's id is derived from the entry, so a re-read or a second
//! projector announces the same event, and the fold takes it once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::types::AMQPValue;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::db::ViewDb;
use super::stream::Lost;
use crate::broker::{self, Outgoing};
use crate::config::Settings;
use crate::dlq::{self, Entry};
use crate::envelope::Stage;
use crate::topology::Topology;

/// Most entries folded in one transaction.
const BATCH_MAX: usize = 200;
/// Pause before reconnecting after a lost session.
const RESUME_PAUSE: Duration = Duration::from_millis(500);

/// The index's reader of every stage's dead-letter stream.
#[derive(Clone)]
pub struct Indexer {
    /// Settings (broker URL, reconnection delays).
    pub settings: Arc<Settings>,
    /// Names of the dead-letter streams and the events exchange.
    pub topology: Topology,
    /// Where the index is.
    pub db: ViewDb,
}

impl Indexer {
    /// Reads until `token` is cancelled, reconnecting (with backoff) when
    /// the broker goes away. Fails only when the database does.
    pub async fn run(self, token: CancellationToken) -> anyhow::Result<()> {
        loop {
            match self.session(&token).await {
                Ok(()) => return Ok(()),
                Err(Lost::Database(error)) => return Err(error),
                Err(Lost::Broker(error)) => {
                    warn!(
                        error = format!("{error:#}"),
                        "projector lost the dead-letter streams"
                    );
                }
            }
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                () = tokio::time::sleep(RESUME_PAUSE) => {}
            }
        }
    }

    async fn session(&self, token: &CancellationToken) -> Result<(), Lost> {
        let name = format!("tenderflow-{}-projector-dlq", self.topology.prefix());
        let Some(connection) = broker::connect(&self.settings, &name, token).await else {
            return Ok(());
        };
        // The streams exist before any reader consumes them.
        let declared = async {
            let channel = connection.create_channel().await?;
            self.topology.apply(&channel).await?;
            let _ = channel.close(200, "declared".into()).await;
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = declared {
            let _ = broker::within("closing", connection.close(200, "failed".into())).await;
            return Err(Lost::Broker(error));
        }
        let local = token.child_token();
        let readers = Stage::ALL.map(|stage| self.follow(&connection, stage, &local));
        // The first reader to fail stops the others, so the session ends
        // and starts again as a whole.
        let result = futures_util::future::try_join_all(readers.into_iter().map(|reader| {
            let local = local.clone();
            async move {
                let result = reader.await;
                local.cancel();
                result
            }
        }))
        .await
        .map(|_| ());
        let closing = connection.close(200, "projector stopping".into());
        let _ = broker::within("closing", closing).await;
        result
    }

    async fn follow(
        &self,
        connection: &lapin::Connection,
        stage: Stage,
        token: &CancellationToken,
    ) -> Result<(), Lost> {
        let channel = connection.create_channel().await.map_err(Lost::broker)?;
        let events = broker::confirm_channel(connection)
            .await
            .map_err(Lost::Broker)?;
        let queue = self.topology.dead_letter_queue(stage);
        let start = match self.db.dead_letter_offset(stage).map_err(Lost::database)? {
            Some(offset) => AMQPValue::LongLongInt(offset as i64 + 1),
            None => AMQPValue::LongString("first".into()),
        };
        let mut deliveries = dlq::stream_consumer(&channel, &queue, start)
            .await
            .map_err(Lost::Broker)?;
        info!(queue, "projector reading a dead-letter stream");
        let mut probe = broker::probe_timer();
        loop {
            let first = tokio::select! {
                () = token.cancelled() => break,
                next = deliveries.next() => next,
                _ = probe.tick() => {
                    if !broker::answers(connection, &channel, &queue).await {
                        return Err(Lost::Broker(anyhow::anyhow!(
                            "the broker stopped answering on this connection"
                        )));
                    }
                    continue;
                }
            };
            let first = first
                .ok_or_else(|| {
                    Lost::Broker(anyhow::anyhow!(
                        "the broker cancelled the dead-letter stream reader"
                    ))
                })?
                .map_err(Lost::broker)?;
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match deliveries.next().now_or_never() {
                    Some(Some(next)) => batch.push(next.map_err(Lost::broker)?),
                    Some(None) | None => break,
                }
            }
            self.write(stage, &queue, &events, batch).await?;
        }
        let _ = broker::within("closing", channel.close(200, "projector stopping".into())).await;
        let _ = broker::within("closing", events.close(200, "projector stopping".into())).await;
        Ok(())
    }

    async fn write(
        &self,
        stage: Stage,
        queue: &str,
        events: &lapin::Channel,
        batch: Vec<Delivery>,
    ) -> Result<(), Lost> {
        let last = batch.last().expect("a batch has a first delivery");
        let last_offset = broker::stream_offset(last).ok_or_else(|| {
            Lost::Broker(anyhow::anyhow!(
                "a delivery without x-stream-offset: is {queue} a stream?"
            ))
        })?;
        let read: Vec<(&Delivery, Entry)> = batch
            .iter()
            .filter_map(|d| Entry::read(stage, d).map(|entry| (d, entry)))
            .collect();
        // The broker's own dead letters are announced before they count as
        // read: a crash in between announces them again, under the same ids.
        let announced: Vec<Outgoing> = read
            .iter()
            .filter_map(|(delivery, entry)| match entry {
                Entry::Letter(letter) => {
                    let sha = hex::encode(Sha256::digest(&delivery.data));
                    letter.broker_event(queue, &sha)
                }
                Entry::Settles { .. } => None,
            })
            .map(|event| {
                warn!(task_id = %event.task_id, %stage, "the broker dead-lettered a message itself; announcing it");
                Outgoing::event(&self.topology, &event, None)
            })
            .collect();
        if !announced.is_empty() {
            broker::publish_all(events, &announced)
                .await
                .context("announcing dead letters the broker parked")
                .map_err(Lost::Broker)?;
        }
        let entries: Vec<Entry> = read.into_iter().map(|(_, entry)| entry).collect();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.apply_dead_letters(stage, &entries, last_offset))
            .await
            .map_err(Lost::database)?
            .map_err(Lost::database)?;
        let ack = last.acker.ack(BasicAckOptions { multiple: true });
        broker::within("acking", ack).await.map_err(Lost::Broker)?;
        Ok(())
    }
}
