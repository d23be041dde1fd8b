//! The dashboard in headless Chromium, against a real pipeline: submit a
//! document through the form; see it wait at parse in the list; follow it
//! live on its page to done, with its events and its summary's evidence;
//! replay a dead letter with its button, cancel that task with the
//! button of its page; search the tasks and see the upcoming deadlines.
//! Screenshots go to
//! target/dashboard/ for review.

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use tenderflow::envelope::{Envelope, Stage};
use tenderflow::runtime::Handler;
use tenderflow::stages::{StageError, StageOutput};
use tenderflow::store::Store;
use tenderflow::summary::{Evidence, FieldValue, SUMMARY_SCHEMA, Summary};

use super::cdp::{Browser, chromium};
use crate::api::{TestApp, test_pipeline};

/// An extract stage that stores a known summary, so the page's rendering
/// of fields and their evidence is checked whatever the real extractor
/// finds.
struct KnownSummary {
    store: Store,
}

impl Handler for KnownSummary {
    fn handle(&self, envelope: Envelope) -> BoxFuture<'static, Result<StageOutput, StageError>> {
        let store = self.store.clone();
        Box::pin(async move {
            let field = FieldValue {
                value: "壹佰万元整".into(),
                normalized: serde_json::json!({"amount": 1000000, "currency": "CNY"}),
                evidence: Evidence {
                    section: "招标公告".into(),
                    page: None,
                    quote: "最高限价：壹佰万元整".into(),
                    document: 0,
                    ocr: None,
                },
                superseded: Vec::new(),
                source: String::new(),
            };
            let summary = Summary {
                schema: SUMMARY_SCHEMA,
                fields: [("price_cap".to_string(), field)].into(),
                ..Summary::default()
            };
            let stored = store.put_json("summary", &summary).await?;
            let mut artifacts = envelope.artifacts.clone();
            artifacts.summary = Some(stored.clone());
            Ok(StageOutput {
                artifacts,
                produced: Some(stored),
                files: Vec::new(),
                duplicate_of: None,
            })
        })
    }
}

const NOTICE: &str = super::NOTICE;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard")
}

/// Chromium, or `None` (with a loud message) when it is missing outside CI;
/// in CI (`CI=true`) a missing browser fails the test.
fn browser_or_skip() -> Option<PathBuf> {
    if let Some(binary) = chromium() {
        return Some(binary);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !in_ci,
        "chromium is missing: .ci/run installs Debian's chromium package"
    );
    eprintln!(
        "\n!!! SKIPPING the dashboard browser test: chromium is not installed \
         (apt-get install chromium). CI installs it and runs this test. !!!\n"
    );
    None
}

#[tokio::test]
async fn the_dashboard_submits_a_document_to_done_and_replays_a_dead_letter() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let mut pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    // Parse starts later, so the task waits there while the pages watch.
    for stage in [Stage::Ingest, Stage::Filter] {
        pipeline.start(stage, pipeline.real_handler(stage));
    }
    let store = Store::from_settings(&pipeline.settings).unwrap();
    pipeline.start(Stage::Extract, KnownSummary { store });
    let browser = Browser::launch(&binary).await;
    let mut page = browser.page().await;
    let shots = screenshots();

    // Submit through the form.
    page.navigate(&app.url("/")).await;
    page.wait_for("document.querySelector('#submit-form') !== null", 10)
        .await;
    let notice = pipeline.dir.path().join("notice.md");
    std::fs::write(&notice, NOTICE).unwrap();
    page.set_file("#file", &notice).await;
    page.eval("document.getElementById('submit-button').click()")
        .await
        .unwrap();
    let task = page
        .wait_for(
            "document.querySelector('#submit-result a[data-task-id]')?.dataset.taskId",
            20,
        )
        .await;
    let task = task.as_str().unwrap().to_string();

    // The list (polled) shows it waiting for parse.
    let row = format!("document.querySelector('#tasks tr[data-task-id=\"{task}\"]')");
    page.wait_for(
        &format!(
            "{row}?.querySelector('[data-stage=\"ingest\"]')?.dataset.stageState === 'succeeded' \
             && {row}?.querySelector('[data-stage=\"parse\"]')?.dataset.stageState === 'queued'"
        ),
        30,
    )
    .await;
    page.screenshot(&shots.join("tasks-waiting.png")).await;

    // Its page follows it live (the page does not poll: the watch stream
    // brings each change) once parse runs.
    page.eval(&format!("location.hash = '#/tasks/{task}'"))
        .await
        .unwrap();
    page.wait_for(
        "document.querySelector('#task-head .live') !== null \
         && document.querySelector('#task-state')?.dataset.state === 'running'",
        20,
    )
    .await;
    pipeline.start(Stage::Parse, pipeline.real_handler(Stage::Parse));
    page.wait_for(
        "document.querySelector('#task-state')?.dataset.state === 'done'",
        60,
    )
    .await;
    page.wait_for(
        "document.querySelector('#task-events tr[data-kind=\"completed\"]') !== null",
        20,
    )
    .await;
    let field = "document.querySelector('#summary tr[data-field=\"price_cap\"]')";
    page.wait_for(&format!("{field} !== null"), 20).await;
    let shown = page.eval(&format!("{field}.innerText")).await.unwrap();
    let shown = shown.as_str().unwrap();
    for expected in ["壹佰万元整", "1000000", "招标公告", "最高限价：壹佰万元整"]
    {
        assert!(shown.contains(expected), "{expected} in {shown:?}");
    }
    page.screenshot(&shots.join("task.png")).await;

    // Back on the list: done, each stage succeeded.
    page.eval("location.hash = '#/'").await.unwrap();
    page.wait_for(&format!("{row}?.dataset.state === 'done'"), 20)
        .await;
    let stages = page
        .eval(&format!(
            "[...{row}.querySelectorAll('[data-stage-state]')].map(s => s.dataset.stageState)"
        ))
        .await
        .unwrap();
    assert_eq!(
        stages,
        serde_json::json!(["succeeded", "succeeded", "succeeded", "succeeded"])
    );
    let listed_name = page
        .eval(&format!("{row}.innerText.includes('notice.md')"))
        .await
        .unwrap();
    assert_eq!(listed_name, true);
    page.screenshot(&shots.join("tasks.png")).await;

    // A document parse cannot read ends in parse's dead-letter queue.
    let broken = pipeline.dir.path().join("broken.pdf");
    std::fs::write(&broken, b"%PDF-1.7\n%this is no PDF at all\n").unwrap();
    page.set_file("#file", &broken).await;
    page.eval("document.getElementById('submit-button').click()")
        .await
        .unwrap();
    let failed = page
        .wait_for(
            "(() => { const a = document.querySelector('#submit-result a[data-task-id]'); \
             return a && a.dataset.taskId !== TASK ? a.dataset.taskId : null; })()"
                .replace("TASK", &format!("'{task}'"))
                .as_str(),
            20,
        )
        .await;
    let failed = failed.as_str().unwrap().to_string();
    let row = format!("document.querySelector('#tasks tr[data-task-id=\"{failed}\"]')");
    page.wait_for(&format!("{row}?.dataset.state === 'failed'"), 60)
        .await;

    // The dead letters page lists it; its button replays it.
    page.eval("location.hash = '#/dead-letters'").await.unwrap();
    let letter = format!("document.querySelector('#dead-letters tr[data-task-id=\"{failed}\"]')");
    page.wait_for(&format!("{letter} !== null"), 20).await;
    page.screenshot(&shots.join("dead-letters.png")).await;
    page.eval(&format!("{letter}.querySelector('button.replay').click()"))
        .await
        .unwrap();
    page.wait_for(
        &format!("document.querySelector('#replay-result [data-replayed=\"{failed}\"]') !== null"),
        20,
    )
    .await;
    page.screenshot(&shots.join("replayed.png")).await;
    let events = app
        .wait_for(&format!("/v1/tasks/{failed}/events"), 20, |body| {
            body["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["kind"] == "replayed"))
        })
        .await;
    assert!(events["events"].as_array().unwrap().len() >= 3);

    // Replayed, it fails again; its page's button cancels it.
    app.wait_for(&format!("/v1/tasks/{failed}/events"), 60, |body| {
        body["events"].as_array().is_some_and(|events| {
            events
                .iter()
                .filter(|e| e["kind"] == "dead_lettered")
                .count()
                >= 2
        })
    })
    .await;
    page.eval(&format!("location.hash = '#/tasks/{failed}'"))
        .await
        .unwrap();
    page.wait_for(
        "document.querySelector('#task-state')?.dataset.state === 'failed' \
         && document.querySelector('#cancel-button') !== null",
        20,
    )
    .await;
    page.eval(
        "document.getElementById('cancel-reason').value = '不再需要'; \
         document.getElementById('cancel-button').click()",
    )
    .await
    .unwrap();
    page.wait_for(
        "document.querySelector('#task-state')?.dataset.state === 'cancelled'",
        20,
    )
    .await;
    let shown = page
        .eval("document.getElementById('task-cancelled').innerText")
        .await
        .unwrap();
    assert!(shown.as_str().unwrap().contains("不再需要"), "{shown}");
    let gone = page
        .eval("document.querySelector('#cancel-button') === null")
        .await
        .unwrap();
    assert_eq!(gone, true, "no cancel button on a cancelled task");
    page.wait_for(
        "document.querySelector('#task-events tr[data-kind=\"cancelled\"]') !== null",
        20,
    )
    .await;
    page.screenshot(&shots.join("cancelled.png")).await;
    let (_, view) = app.get(&format!("/v1/tasks/{failed}")).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    assert_eq!(view["cancelled"]["reason"], "不再需要");

    browser.close().await;
    pipeline.stop().await;
    app.stop().await;
}

/// A notice of `project` closing (and opening) at `at`, Beijing time.
fn notice_closing(
    project: &str,
    number: &str,
    at: chrono::DateTime<chrono::FixedOffset>,
) -> String {
    use chrono::Datelike;
    let day = format!("{}年{}月{}日 09:30", at.year(), at.month(), at.day());
    format!(
        "# {project}招标公告\n\n项目名称：{project}\n\n项目编号：{number}\n\n采购人：某市水务局\n\n\
         投标截止时间：{day}\n\n开标时间：{day}\n\n开标地点：某市公共资源交易中心第一开标室\n"
    )
}

#[tokio::test]
async fn the_dashboard_searches_tasks_and_lists_the_upcoming_deadlines() {
    let Some(binary) = browser_or_skip() else {
        return;
    };
    let mut pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    // One tender closing in 30 days, one that closed 30 days ago: dates
    // from today's, so the test holds whenever it runs.
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let soon = (chrono::Utc::now() + chrono::Duration::days(30)).with_timezone(&beijing);
    let past = (chrono::Utc::now() - chrono::Duration::days(30)).with_timezone(&beijing);
    let mut ids = Vec::new();
    for (name, body) in [
        ("soon.md", notice_closing("某河道整治工程", "HD-0042", soon)),
        (
            "past.md",
            notice_closing("某学校食堂改造工程", "XX-0007", past),
        ),
    ] {
        let response = app
            .http
            .post(app.url("/v1/documents"))
            .header("x-filename", name)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
        let answer: serde_json::Value = response.json().await.unwrap();
        let id = answer["task_id"].as_str().unwrap().to_string();
        app.wait_for(&format!("/v1/tasks/{id}"), 60, |v| v["state"] == "done")
            .await;
        ids.push(id);
    }
    let (soon_id, past_id) = (&ids[0], &ids[1]);

    let browser = Browser::launch(&binary).await;
    let mut page = browser.page().await;
    let shots = screenshots();
    page.navigate(&app.url("/")).await;
    page.wait_for("document.querySelector('#task-search') !== null", 10)
        .await;
    let listed =
        "[...document.querySelectorAll('#tasks tr[data-task-id]')].map(r => r.dataset.taskId)";
    page.wait_for(&format!("{listed}.length === 2"), 20).await;

    // The search box: a project-name fragment, then a tender number in
    // another case.
    for (typed, expected) in [("河道", soon_id), ("xx-00", past_id)] {
        page.eval(&format!(
            "(() => {{ const s = document.getElementById('task-search'); s.value = '{typed}'; \
             s.dispatchEvent(new Event('input')); }})()"
        ))
        .await
        .unwrap();
        // Until the list shows that one task alone (the previous answer
        // stays on screen until the new one arrives).
        page.wait_for(
            &format!("JSON.stringify({listed}) === JSON.stringify(['{expected}'])"),
            20,
        )
        .await;
    }
    page.screenshot(&shots.join("search.png")).await;

    // The deadlines view: the coming deadline and opening, not the past one.
    page.eval("location.hash = '#/deadlines'").await.unwrap();
    let row = |kind: &str| {
        format!(
            "document.querySelector('#deadlines tr[data-task-id=\"{soon_id}\"][data-kind=\"{kind}\"]')"
        )
    };
    page.wait_for(&format!("{} !== null", row("opening_time")), 20)
        .await;
    let shown = page
        .eval(&format!("{}.innerText", row("deadline_bid")))
        .await
        .unwrap();
    let shown = shown.as_str().unwrap().to_string();
    for expected in [
        "某河道整治工程",
        "HD-0042",
        "bid deadline",
        &format!(
            "{}月{}日",
            chrono::Datelike::month(&soon),
            chrono::Datelike::day(&soon)
        ),
    ] {
        assert!(shown.contains(expected), "{expected} in {shown:?}");
    }
    let opening = page
        .eval(&format!("{}.innerText", row("opening_time")))
        .await
        .unwrap();
    assert!(
        opening
            .as_str()
            .unwrap()
            .contains("某市公共资源交易中心第一开标室")
    );
    let past_rows = page
        .eval(&format!(
            "document.querySelectorAll('#deadlines tr[data-task-id=\"{past_id}\"]').length"
        ))
        .await
        .unwrap();
    assert_eq!(past_rows, 0, "a deadline gone by is not upcoming");
    page.screenshot(&shots.join("deadlines.png")).await;

    browser.close().await;
    pipeline.stop().await;
    app.stop().await;
}
