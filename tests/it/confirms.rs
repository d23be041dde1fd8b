//! Publisher confirms under concurrency: each publish is told whether the
//! broker returned it, however many others are in flight on the same
//! connection. RabbitMQ's return names no delivery tag, and lapin hands it
//! to whichever confirm it resolves next on the channel; on one shared
//! channel a returned forward was now and then taken for a routed one, and
//! the returned message acked as sent.

use std::sync::Arc;

use tenderflow::broker::{self, Outgoing, Publisher};
use tenderflow::envelope::Stage;
use tokio_util::sync::CancellationToken;

use crate::helpers::TestPipeline;

#[tokio::test]
async fn concurrent_publishes_on_one_link_each_learn_their_own_return() {
    let pipeline = TestPipeline::new(|_, _| {});
    let topology = pipeline.topology();
    let publisher = Publisher::new(
        Arc::clone(&pipeline.settings),
        "test-confirms".into(),
        topology.clone(),
    );
    let token = CancellationToken::new();
    let link = publisher.link(&token).await.expect("a publishing link");
    let ingest = topology.stage_queue(Stage::Ingest);
    let mut routed = 0;
    for round in 0..24 {
        let mut publishes = tokio::task::JoinSet::new();
        for n in 0..48 {
            // Every third goes nowhere: no queue is bound under its key.
            let bound = n % 3 != 0;
            if bound {
                routed += 1;
            }
            let key = if bound { "ingest" } else { "nowhere" };
            let message = Outgoing::new(
                topology.work_exchange(),
                key,
                format!("{{\"round\":{round},\"n\":{n}}}").into_bytes(),
            );
            let link = link.clone();
            publishes.spawn(async move {
                let confirmed = match link.publish(&message).await {
                    Ok(pending) => pending.wait().await,
                    Err(err) => Err(err),
                };
                (bound, confirmed)
            });
        }
        while let Some(joined) = publishes.join_next().await {
            let (bound, confirmed) = joined.unwrap();
            match confirmed {
                Ok(()) => assert!(bound, "round {round}: a returned publish was confirmed"),
                Err(err) => {
                    assert!(!bound, "round {round}: a routed publish failed: {err:#}");
                    assert!(broker::is_unroutable(&err), "{err:#}");
                    let text = format!("{err:#}");
                    assert!(text.contains("/nowhere is unroutable"), "{text}");
                }
            }
        }
    }
    // Nothing routed was lost or doubled.
    assert_eq!(pipeline.wait_depth(&ingest, routed).await, routed);
    publisher.close().await;
    pipeline.teardown().await;
}
