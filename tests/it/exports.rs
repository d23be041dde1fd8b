//! The exports against real documents run through the pipeline on the real
//! broker: the workbook and CSV cells are the summaries' values and
//! evidence, the calendar parses back with one event per absolute deadline
//! and opening, the task search finds what the summaries say, and a rebuilt
//! projector fills its summary index by itself.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use reqwest::StatusCode;
use serde_json::Value;
use tenderflow::config::Secret;
use tenderflow::export::{COLUMNS, evidence_text, normal_text};
use tenderflow::projector::view::TaskState;
use tenderflow::summary::Summary;

use crate::api::{TestApp, test_pipeline};

const TOKEN: &str = "s3cret";

/// Documents shipped with the repository, with scoring items, rejection
/// clauses, an opening time and place, and an English data sheet.
const DOCUMENTS: &[&str] = &[
    "tests/fixtures/cs_lots.md",
    "tests/fixtures/gov_tender.txt",
    "tests/fixtures/en_bds.md",
    "examples/tender-sample.md",
];

/// Submits `path` over HTTP; answers the task id.
async fn submit(app: &TestApp, path: &str) -> String {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .header("x-filename", name)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    body["task_id"].as_str().unwrap().to_string()
}

/// Runs the documents to done; answers each task's summary by task id.
async fn run_documents(app: &TestApp) -> BTreeMap<String, Summary> {
    let mut summaries = BTreeMap::new();
    for path in DOCUMENTS {
        let id = submit(app, path).await;
        let location = format!("/v1/tasks/{id}");
        let view = app
            .wait_for(&location, 90, |v| {
                v["state"] == "done" || v["state"] == "failed"
            })
            .await;
        assert_eq!(view["state"], "done", "{path}: {view}");
        let (status, summary) = app.get(&format!("{location}/summary")).await;
        assert_eq!(status, StatusCode::OK);
        summaries.insert(id, serde_json::from_value(summary).unwrap());
    }
    summaries
}

fn text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::Float(f) => f.to_string(),
        other => other.to_string(),
    }
}

/// A sheet's rows as text.
fn sheet(book: &mut Xlsx<Cursor<Vec<u8>>>, name: &str) -> Vec<Vec<String>> {
    let range = book.worksheet_range(name).unwrap();
    let width = range.width();
    range
        .rows()
        .map(|row| {
            let mut cells: Vec<String> = row.iter().map(text).collect();
            cells.resize(width, String::new());
            cells
        })
        .collect()
}

/// The cells a task's row must have for the summary's fields: value,
/// normal form and evidence, or three empty cells for an absent field.
fn expected_field_cells(summary: &Summary) -> Vec<String> {
    let mut cells = Vec::new();
    for (id, _) in COLUMNS {
        match summary.fields.get(*id) {
            Some(f) => cells.extend([
                f.value.clone(),
                normal_text(&f.normalized),
                evidence_text(&f.evidence),
            ]),
            None => cells.extend([String::new(), String::new(), String::new()]),
        }
    }
    cells
}

#[tokio::test]
async fn done_tasks_export_as_a_workbook_and_csv_with_each_value_beside_its_evidence() {
    let mut pipeline = test_pipeline(|s| s.http.token = Some(Secret::new(TOKEN)));
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    let summaries = run_documents(&app).await;
    assert!(
        summaries.values().any(|s| !s.rejections.is_empty())
            && summaries.values().any(|s| !s.scoring.is_empty()),
        "the documents give clauses for both sheets"
    );

    // Task data: the token is needed.
    let refused = app
        .bare
        .get(app.url("/v1/summaries.xlsx"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let response = app
        .http
        .get(app.url("/v1/summaries.xlsx"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("spreadsheetml")
    );
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"summaries.xlsx\""
    );
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), vec!["tasks", "rejections", "scoring"]);

    let tasks = sheet(&mut book, "tasks");
    assert_eq!(tasks[0][0], "task_id");
    assert_eq!(tasks.len(), summaries.len() + 1, "one row per done task");
    for row in &tasks[1..] {
        let summary = &summaries[&row[0]];
        assert_eq!(row[1], "done");
        assert_eq!(
            row[4..],
            expected_field_cells(summary)[..],
            "task {}",
            row[0]
        );
    }
    // Chinese text and its evidence survive.
    let sample = tasks
        .iter()
        .find(|r| r[4] == "某市政道路改造工程")
        .expect("the sample's project");
    assert!(
        sample
            .iter()
            .any(|c| c.starts_with('[') && c.contains("招标公告"))
    );

    let rejections = sheet(&mut book, "rejections");
    let want: Vec<Vec<String>> = summaries
        .iter()
        .rev() // newest task first, as the tasks sheet
        .flat_map(|(id, s)| {
            let project = s
                .fields
                .get("project")
                .map(|f| f.value.clone())
                .unwrap_or_default();
            s.rejections.iter().map(move |r| {
                vec![
                    id.clone(),
                    project.clone(),
                    r.kind.clone(),
                    r.text.clone(),
                    evidence_text(&r.evidence),
                ]
            })
        })
        .collect();
    assert_eq!(rejections[1..], want[..]);

    let scoring = sheet(&mut book, "scoring");
    let want: Vec<Vec<String>> = summaries
        .iter()
        .rev()
        .flat_map(|(id, s)| {
            let project = s
                .fields
                .get("project")
                .map(|f| f.value.clone())
                .unwrap_or_default();
            s.scoring.iter().map(move |i| {
                vec![
                    id.clone(),
                    project.clone(),
                    i.group.clone().unwrap_or_default(),
                    i.name.clone(),
                    i.points.clone(),
                    i.points_value.map(|v| v.to_string()).unwrap_or_default(),
                    evidence_text(&i.evidence),
                ]
            })
        })
        .collect();
    assert_eq!(scoring[1..], want[..]);

    // The CSV is the tasks sheet.
    let csv = app
        .http
        .get(app.url("/v1/summaries.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    let csv = csv.bytes().await.unwrap();
    let csv = csv
        .strip_prefix(b"\xEF\xBB\xBF")
        .expect("a UTF-8 byte-order mark");
    let rows: Vec<Vec<String>> = csv::Reader::from_reader(csv)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), summaries.len());
    for (row, sheet_row) in rows.iter().zip(&tasks[1..]) {
        assert_eq!(row[0], sheet_row[0]);
        assert_eq!(row[4..], sheet_row[4..]);
    }

    // `since` is the completion time; a bad one is a clear 400.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let url = format!("/v1/summaries.csv?since={}", later.replace('+', "%2B"));
    let none = app.http.get(app.url(&url)).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::OK);
    assert_eq!(
        csv::Reader::from_reader(&none.bytes().await.unwrap()[3..])
            .records()
            .count(),
        0
    );
    let (status, body) = app.get("/v1/summaries.xlsx?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RFC 3339")
    );
    let (status, _) = app.get("/v1/summaries.csv?state=failed").await;
    assert_eq!(status, StatusCode::OK);

    // The command line writes both files through the API.
    let out = tempfile::tempdir().unwrap();
    let (xlsx_path, csv_path) = (out.path().join("s.xlsx"), out.path().join("s.csv"));
    // Asynchronously: the server runs on this test's runtime.
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .arg("export")
        .arg("--xlsx")
        .arg(&xlsx_path)
        .arg("--csv")
        .arg(&csv_path)
        .env(
            "TENDERFLOW__HTTP__ADDR",
            app.base.trim_start_matches("http://"),
        )
        .env("TENDERFLOW__HTTP__TOKEN", TOKEN)
        .env_remove("TENDERFLOW_CONFIG")
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mut written: Xlsx<_> = Xlsx::new(Cursor::new(std::fs::read(&xlsx_path).unwrap())).unwrap();
    assert_eq!(sheet(&mut written, "tasks"), tasks);
    assert!(std::fs::read(&csv_path).unwrap().ends_with(b"\n"));

    pipeline.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_calendar_and_the_search_read_the_summaries_and_a_rebuild_reindexes() {
    let mut pipeline = test_pipeline(|s| s.http.token = Some(Secret::new(TOKEN)));
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    let summaries = run_documents(&app).await;

    // A calendar application cannot send a header: the token in the URL.
    let refused = app
        .bare
        .get(app.url("/v1/calendar.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .bare
        .get(app.url("/v1/calendar.ics?token=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let feed_url = app.url(&format!("/v1/calendar.ics?token={TOKEN}"));
    let response = app.bare.get(&feed_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let ics = response.text().await.unwrap();
    assert!(
        ics.lines().all(|l| l.trim_end_matches('\r').len() <= 75),
        "lines folded at 75 octets"
    );

    let unfolded = icalendar::parser::unfold(&ics);
    let calendar = icalendar::parser::read_calendar(&unfolded).unwrap();
    let mut events: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for component in calendar
        .components
        .iter()
        .filter(|c| c.name.as_str() == "VEVENT")
    {
        let props: BTreeMap<String, String> = component
            .properties
            .iter()
            .map(|p| {
                (
                    p.name.as_str().to_string(),
                    p.val.clone().unescape_text().as_str().to_string(),
                )
            })
            .collect();
        events.insert(props["UID"].clone(), props);
    }
    // What the summaries say: an event for each absolute time, none for a
    // relative or absent one.
    let mut want = 0;
    for (id, summary) in &summaries {
        for field in ["deadline_bid", "opening_time"] {
            let uid = format!("{id}-{field}@tenderflow");
            let Some(at) = summary
                .fields
                .get(field)
                .and_then(|f| f.normalized.as_str())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            else {
                assert!(
                    !events.contains_key(&uid),
                    "{uid}: no absolute time, no event"
                );
                continue;
            };
            want += 1;
            let event = &events[&uid];
            let utc = at.to_utc().format("%Y%m%dT%H%M%SZ").to_string();
            assert_eq!(event["DTSTART"], utc, "{uid}");
            let project = summary.fields.get("project").map(|f| f.value.as_str());
            if let Some(project) = project {
                assert!(
                    event["SUMMARY"].ends_with(project),
                    "{uid}: {}",
                    event["SUMMARY"]
                );
            }
            assert!(event["URL"].ends_with(&format!("/#/tasks/{id}")));
            if field == "opening_time"
                && let Some(place) = summary.fields.get("opening_place")
            {
                assert_eq!(event["LOCATION"], place.value, "Chinese text survives");
            }
        }
    }
    assert!(want > 0, "the documents have absolute times");
    assert_eq!(events.len(), want);
    // gov_tender's opening: a Chinese place, at 09:30 Beijing time.
    let opening = events
        .values()
        .find(|e| {
            e.get("LOCATION")
                .is_some_and(|l| l == "城东区公共资源交易中心第二开标厅")
        })
        .expect("the opening with its place");
    assert_eq!(opening["DTSTART"], "20270302T013000Z");

    // Read again: the same UIDs, so a subscribed calendar updates in place.
    let again = app
        .bare
        .get(&feed_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let uids = |ics: &str| -> Vec<String> {
        ics.lines()
            .filter(|l| l.starts_with("UID:"))
            .map(String::from)
            .collect()
    };
    assert_eq!(uids(&again), uids(&ics));

    // Search over project name, tender number and owner (any case), and
    // the bid-deadline window; the answers are what the summaries say.
    let found = |query: &[(&str, &str)]| {
        let url = url::Url::parse_with_params(&app.url("/v1/tasks"), query).unwrap();
        let http = app.http.clone();
        async move {
            let page: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            let ids: Vec<String> = page["tasks"]
                .as_array()
                .unwrap_or_else(|| panic!("{page}"))
                .iter()
                .map(|t| t["task_id"].as_str().unwrap().to_string())
                .collect();
            ids
        }
    };
    let matching = |pred: &dyn Fn(&Summary) -> bool| -> Vec<String> {
        summaries
            .iter()
            .rev()
            .filter(|(_, s)| pred(s))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let contains = |s: &Summary, q: &str| {
        ["project", "tender_no", "owner"].iter().any(|f| {
            s.fields
                .get(*f)
                .is_some_and(|v| v.value.to_lowercase().contains(q))
        })
    };
    for q in ["道路改造", "sz-2027", "市"] {
        let want = matching(&|s| contains(s, q));
        assert!(!want.is_empty(), "{q} finds something");
        assert_eq!(found(&[("q", q)]).await, want, "q={q}");
    }
    assert!(found(&[("q", "no such tender anywhere")]).await.is_empty());
    let deadline = |s: &Summary| {
        s.fields
            .get("deadline_bid")
            .and_then(|f| f.normalized.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (after, before) = ("2027-03-01T00:00:00+08:00", "2027-03-31T00:00:00+08:00");
    let window = |s: &Summary| {
        deadline(s).is_some_and(|d| {
            d >= chrono::DateTime::parse_from_rfc3339(after).unwrap()
                && d <= chrono::DateTime::parse_from_rfc3339(before).unwrap()
        })
    };
    let want = matching(&window);
    assert_eq!(
        want.len(),
        2,
        "gov_tender and the sample close in March 2027"
    );
    let query = [("deadline_after", after), ("deadline_before", before)];
    assert_eq!(found(&query).await, want);
    let later = matching(&|s| {
        deadline(s).is_some_and(|d| d >= chrono::DateTime::parse_from_rfc3339(after).unwrap())
    });
    assert_eq!(found(&[("deadline_after", after)]).await, later);
    // The command line's search, through the API.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["tasks", "--search", "道路改造", "--json"])
        .env(
            "TENDERFLOW__HTTP__ADDR",
            app.base.trim_start_matches("http://"),
        )
        .env("TENDERFLOW__HTTP__TOKEN", TOKEN)
        .env_remove("TENDERFLOW_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let page: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, matching(&|s| contains(s, "道路改造")));
    let (status, body) = app.get("/v1/tasks?deadline_before=tomorrow").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline_before")
    );

    // A projector rebuilt from the stream into an empty database fills its
    // summary index by itself, without an export asking.
    let mut settings = (*pipeline.settings).clone();
    settings.projector.db_path = pipeline.dir.path().join("rebuilt.sqlite3");
    let rebuilt = TestApp::start(&settings).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = rebuilt
            .db
            .indexed_tasks(TaskState::Done, None, 100)
            .unwrap();
        if done.len() == summaries.len() && done.iter().all(|t| t.row.is_some()) {
            for task in &done {
                let summary = &summaries[&task.view.task_id.to_string()];
                assert_eq!(task.row.as_ref().unwrap().fields, summary.fields);
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuilt index did not fill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rebuilt.db.unindexed(10).unwrap().is_empty());

    pipeline.stop().await;
    rebuilt.stop().await;
    app.stop().await;
}
