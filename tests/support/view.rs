//! The check that the projector's HTTP API serves, for each task, exactly
//! the view that folding the task's events from the stream gives.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tenderflow::events::Event;
use tenderflow::projector::view::fold;
use uuid::Uuid;

/// Waits (up to `secs`) until the API at `base` serves, for every task of
/// `tasks`, the fold of that task's events in `events()`; returns the
/// served views by task, or panics with the first that still differs.
pub async fn assert_view_equals_fold(
    base: &str,
    events: impl Fn() -> Vec<Event>,
    tasks: &[Uuid],
    secs: u64,
) -> BTreeMap<Uuid, serde_json::Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let events = events();
        let mut served = BTreeMap::new();
        let mut differ = Vec::new();
        for task in tasks {
            let mine: Vec<&Event> = events.iter().filter(|e| e.task_id == *task).collect();
            let expected = serde_json::to_value(fold(mine)).unwrap();
            let view = match http.get(format!("{base}/v1/tasks/{task}")).send().await {
                Ok(response) => response.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            match view {
                Some(view) if view == expected => {
                    served.insert(*task, view);
                }
                view => differ.push((*task, expected, view)),
            }
        }
        if differ.is_empty() {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "{} task views still differ from the fold of their events after {secs} s; first: {:#?}",
            differ.len(),
            differ[0]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
