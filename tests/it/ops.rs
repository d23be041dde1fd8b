//! Running it like production: metrics, the OpenAPI document against the
//! router, structured logs and trace context of a real worker process, the
//! compose file against the real command line and settings, the broker
//! definitions it loads, and the dashboard in a real browser.

mod browser;
mod cdp;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use clap::Parser;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenderflow::broker::{self, Outgoing, header_str};
use tenderflow::cli::{Cli, Command, TopologyAction};
use tenderflow::config::Settings;
use tenderflow::envelope::{DocumentRef, Envelope, Stage, TaskOptions};
use tenderflow::topology::Topology;
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::api::{TestApp, test_pipeline};
use crate::helpers::{Flaky, TestPipeline};

const NOTICE: &str = "# 某市政道路改造工程招标公告\n\n项目编号：ZB-2026-001\n\n采购人：某市住房和城乡建设局\n\n最高限价：壹佰万元整\n\n投标截止时间：2026年12月1日 09:30\n";

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The value of the sample `name` whose labels include `labels`, in
/// Prometheus or OpenMetrics text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let present: Vec<(&str, &str)> = label_text
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key, value.trim_matches('"')))
                })
                .collect();
            if labels.iter().all(|l| present.contains(l)) {
                value.parse().ok()
            } else {
                None
            }
        })
}

/// Polls `url` until `done` holds for its text, or panics after `secs`.
async fn wait_text(url: &str, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let text = match http.get(url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not get there in {secs} s; last:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit_over_http(app: &TestApp, name: &str, body: &str) -> Uuid {
    let response = app
        .http
        .post(app.url("/v1/documents"))
        .header("x-filename", name)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    body["task_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_count_each_outcome_and_poll_the_queues() {
    let pipeline = test_pipeline(|settings| settings.metrics.poll_interval_ms = 100);
    let prefix = pipeline.settings.topology.prefix.clone();
    let app = TestApp::start(&pipeline.settings).await;
    // Parse fails its first attempt transiently: one retry.
    pipeline.start_all_but(
        Stage::Parse,
        Flaky {
            inner: pipeline.real_handler(Stage::Parse),
            failures: Arc::new(AtomicU32::new(1)),
            transient: true,
        },
    );
    let task_id = submit_over_http(&app, "notice.md", NOTICE).await;
    app.wait_for(&format!("/v1/tasks/{task_id}"), 60, |view| {
        view["state"] == "done"
    })
    .await;
    // A body that is not an envelope: filter dead-letters it.
    let (conn, channel, topology) = broker::open(&pipeline.settings, "test-ops").await.unwrap();
    let garbage = Outgoing::new(
        topology.work_exchange(),
        "filter",
        b"not an envelope".to_vec(),
    );
    broker::publish_all(&channel, &[garbage]).await.unwrap();
    let _ = conn.close(200, "done".into()).await;

    let p = prefix.as_str();
    let stage = |s: &'static str| [("prefix", p), ("stage", s)];
    let text = wait_text(&app.url("/metrics"), 30, |text| {
        sample(
            text,
            "tenderflow_messages_dead_lettered_total",
            &[
                ("prefix", p),
                ("stage", "filter"),
                ("kind", "invalid_message"),
            ],
        ) == Some(1.0)
            && sample(
                text,
                "tenderflow_queue_messages",
                &[("prefix", p), ("stage", "filter"), ("queue", "dead_letter")],
            ) == Some(1.0)
            && sample(text, "tenderflow_projector_lag_events", &[]) == Some(0.0)
            // The stream's tail is polled: wait until a poll has seen the end.
            && sample(text, "tenderflow_events_stream_last_offset", &[("prefix", p)])
                == sample(text, "tenderflow_projector_stream_offset", &[])
    })
    .await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        value("tenderflow_messages_handled_total", &stage("parse")),
        2.0
    );
    assert_eq!(
        value("tenderflow_messages_retried_total", &stage("parse")),
        1.0
    );
    assert_eq!(
        value("tenderflow_messages_succeeded_total", &stage("parse")),
        1.0
    );
    assert_eq!(
        value("tenderflow_messages_handled_total", &stage("ingest")),
        1.0
    );
    assert_eq!(
        value("tenderflow_messages_handled_total", &stage("filter")),
        2.0
    );
    assert_eq!(
        value("tenderflow_messages_succeeded_total", &stage("extract")),
        1.0
    );
    assert_eq!(
        value("tenderflow_handler_duration_seconds_count", &stage("parse")),
        2.0
    );
    assert!(value("tenderflow_handler_duration_seconds_sum", &stage("extract")) > 0.0);
    assert_eq!(value("tenderflow_messages_in_hand", &stage("parse")), 0.0);
    let work = [("prefix", p), ("stage", "parse"), ("queue", "work")];
    assert_eq!(value("tenderflow_queue_messages", &work), 0.0);
    // The stream holds the task's events (batched, so fewer entries than
    // events) and the projector has folded them all.
    let last = value("tenderflow_events_stream_last_offset", &[("prefix", p)]);
    assert!(last >= 1.0, "{text}");
    assert_eq!(value("tenderflow_projector_stream_offset", &[]), last);
    assert_eq!(value("tenderflow_tasks", &[("state", "done")]), 1.0);
    assert_eq!(value("tenderflow_projector_connected", &[]), 1.0);

    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(response.text().await.unwrap().ends_with("# EOF\n"));
    // The alert rules, their tests' series and the Grafana board name only
    // what this page serves, with its labels.
    check_deploy_metrics(&text);
    app.stop().await;
    pipeline.teardown().await;
}

/// Sample names a /metrics page serves, each with the label names of its
/// samples: from the `# TYPE` lines (a counter's samples end in `_total`, a
/// histogram's in `_bucket`, `_sum` and `_count`) and the samples.
fn served_metrics(text: &str) -> HashMap<String, BTreeSet<BTreeSet<String>>> {
    let mut served: HashMap<String, BTreeSet<BTreeSet<String>>> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let names = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .map(|s| format!("{name}{s}"))
                    .to_vec(),
                _ => vec![name.to_string()],
            };
            for name in names {
                served.entry(name).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels: BTreeSet<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "le")
                .collect();
            served.entry(name.to_string()).or_default().insert(labels);
        }
    }
    served
}

/// Every `tenderflow_...` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tenderflow_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

fn check_deploy_metrics(page: &str) {
    let served = served_metrics(page);
    let alerts = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(repo("deploy/prometheus/alerts.test.yml")).unwrap();
    let board = std::fs::read_to_string(repo("deploy/grafana/tenderflow.json")).unwrap();
    let board: Value = serde_json::from_str(&board).expect("the board is JSON");
    let exprs: Vec<String> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for (what, text) in [
        ("alerts.yml", alerts.as_str()),
        ("the board", &exprs.join("\n")),
    ] {
        let names = metric_names(text);
        assert!(names.len() >= 5, "{what}: {names:?}");
        for name in names {
            assert!(
                served.contains_key(&name),
                "{what} names {name}, which /metrics does not serve:\n{page}"
            );
        }
    }
    // The rule tests' input series: served names with the served labels,
    // plus the scrape's own (job, instance and the DNS service name).
    let tests: serde_norway::Value = serde_norway::from_str(&tests).unwrap();
    let mut checked = 0;
    for case in tests["tests"].as_sequence().unwrap() {
        for input in case["input_series"].as_sequence().unwrap() {
            let series = yaml_str(&input["series"]);
            let (name, labels) = series.split_once('{').unwrap();
            if name == "up" {
                continue;
            }
            let labels: BTreeSet<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.trim().to_string()))
                .filter(|k| !["job", "instance", "service"].contains(&k.as_str()))
                .collect();
            let shapes = served.get(name).unwrap_or_else(|| {
                panic!("the rule tests feed {name}, which /metrics does not serve")
            });
            assert!(
                shapes.contains(&labels),
                "the rule tests give {name} the labels {labels:?}; /metrics gives {shapes:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} series checked");
}

/// The alert rules are valid and pass their unit tests (`promtool`, from
/// Debian's `prometheus` package; `.ci/run` installs it).
#[test]
fn the_alert_rules_pass_promtool() {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(!in_ci, "promtool is missing in CI");
        eprintln!(
            "\n!!! promtool is missing: the alert rules are NOT checked \
             (apt-get install prometheus). CI installs it and runs this test. !!!\n"
        );
        return;
    }
    let dir = repo("deploy/prometheus");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["check", "config", "prometheus.yml", "--syntax-only"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `(method, path)` of every `.route(...)` in the router's source.
fn routes_in_source(source: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's text, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route(");
        let call = &rest[..end];
        let path = call.split('"').nth(1).expect("a literal path").to_string();
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = call
                .match_indices(&format!("{method}("))
                .any(|(i, _)| i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric());
            if called {
                routes.insert((method.to_string(), path.clone()));
            }
        }
    }
    routes
}

/// Every `"$ref"` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Checks the top level of `value` against an object schema of the
/// document: every required property is there, and nothing undocumented.
pub fn conforms(doc: &Value, schema: &str, value: &Value) {
    let schema = &doc["components"]["schemas"][schema];
    let properties = schema["properties"].as_object().unwrap();
    for required in schema["required"].as_array().unwrap() {
        let key = required.as_str().unwrap();
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
    for key in value.as_object().unwrap().keys() {
        assert!(properties.contains_key(key), "{key} is not documented");
    }
}

#[tokio::test]
async fn the_openapi_document_matches_the_router_and_the_answers() {
    let doc: Value = serde_json::from_str(tenderflow::http::dashboard::OPENAPI).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    // A form field that is also a query parameter takes the same values.
    let submit = &doc["paths"]["/v1/documents"]["post"];
    let fields = &submit["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"];
    for param in submit["parameters"].as_array().unwrap() {
        let name = param["name"].as_str().unwrap();
        if param["in"] == "query" && fields.get(name).is_some() {
            assert_eq!(
                fields[name]["enum"], param["schema"]["enum"],
                "form field {name} and query parameter {name} take the same values"
            );
            assert_eq!(
                fields[name]["maxLength"], param["schema"]["maxLength"],
                "{name}"
            );
        }
    }
    // A replay names its tasks or a limit: the schema says so, as the
    // handler does (a body with neither is a 400, checked below).
    let replay = &doc["components"]["schemas"]["ReplayRequest"];
    assert_eq!(
        replay["anyOf"],
        json!([{"required": ["task_ids"]}, {"required": ["limit"]}]),
        "{replay}"
    );
    let routed = routes_in_source(include_str!("../../src/http/mod.rs"));
    assert!(routed.len() >= 14, "{routed:?}");
    assert_eq!(documented, routed, "the OpenAPI paths are the router's");
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    for target in &targets {
        let pointer = target.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "{target} resolves");
    }

    // Each documented operation reaches a handler, not the fallbacks.
    let mut pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", &Uuid::now_v7().to_string())
            .replace("{name}", "app.js");
        let request = match method.as_str() {
            "get" => app.http.get(app.url(&concrete)),
            "post" => app.http.post(app.url(&concrete)).json(&json!({})),
            "delete" => app.http.delete(app.url(&concrete)),
            other => panic!("undocumented method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let text = response.text().await.unwrap_or_default();
        assert!(
            !text.contains("no such endpoint"),
            "{method} {path} fell through to the fallback: {text}"
        );
    }
    let (status, served) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, doc);

    // The answers have the documented shapes.
    pipeline.start_all();
    let task_id = submit_over_http(&app, "notice.md", NOTICE).await;
    let view = app
        .wait_for(&format!("/v1/tasks/{task_id}"), 60, |v| {
            v["state"] == "done"
        })
        .await;
    conforms(&doc, "TaskView", &view);
    for stage in view["stages"].as_array().unwrap() {
        conforms(&doc, "StageView", stage);
    }
    let (_, page) = app.get("/v1/tasks").await;
    conforms(&doc, "Page", &page);
    let (_, events) = app.get(&format!("/v1/tasks/{task_id}/events")).await;
    for event in events["events"].as_array().unwrap() {
        conforms(&doc, "Event", event);
    }
    let (_, summary) = app.get(&format!("/v1/tasks/{task_id}/summary")).await;
    conforms(&doc, "Summary", &summary);
    let (_, error) = app.get("/v1/tasks/nope").await;
    conforms(&doc, "Error", &error);
    let neither = app
        .http
        .post(app.url("/v1/dead-letters/replay"))
        .json(&json!({"stage": "parse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(neither.status(), StatusCode::BAD_REQUEST);
    // The exports answer in the media type documented for them.
    for path in [
        "/v1/summaries.xlsx",
        "/v1/summaries.csv",
        "/v1/calendar.ics",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        let documented = doc["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap();
        assert!(
            documented
                .keys()
                .any(|media| content_type.starts_with(media.as_str())),
            "{path}: {content_type} is not documented"
        );
    }
    app.stop().await;
    pipeline.stop().await;
}

#[tokio::test]
async fn a_worker_process_logs_json_with_the_task_and_continues_the_trace() {
    let pipeline = TestPipeline::new(|settings, _| settings.retry.delays_ms = vec![100, 200]);
    let settings = &pipeline.settings;
    let (conn, channel, topology) = broker::open(settings, "test-ops-trace").await.unwrap();
    let port = crate::helpers::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["worker", "parse"])
        .env_remove("RUST_LOG")
        .env_remove("TENDERFLOW_CONFIG")
        .env("TENDERFLOW__TOPOLOGY__PREFIX", topology.prefix())
        .env("TENDERFLOW__STORE__ROOT", &settings.store.root)
        .env("TENDERFLOW__RETRY__DELAYS_MS", "100,200")
        .env("TENDERFLOW__LOG__FORMAT", "json")
        .env("TENDERFLOW__METRICS__ADDR", format!("127.0.0.1:{port}"))
        .env("TENDERFLOW__METRICS__POLL_INTERVAL_MS", "100")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });

    // A parse message whose original is not in the store, with a trace
    // context from "upstream".
    let mut envelope = Envelope::new_task(Vec::new(), TaskOptions::default());
    envelope.documents = vec![DocumentRef {
        uri: format!("store:originals/{}", "ab".repeat(32)),
        sha256: "ab".repeat(32),
        size: 3,
        media_type: None,
        filename: "missing.md".into(),
    }];
    let envelope = envelope.advance(Stage::Parse, Default::default());
    let task = envelope.task_id;
    let upstream = format!("00-{}-1111222233334444-01", task.simple());
    let message = Outgoing::new(topology.work_exchange(), "parse", envelope.encode())
        .for_task(task, Some(&upstream));
    broker::publish_all(&channel, &[message]).await.unwrap();
    let dlq = topology.dead_letter_queue(Stage::Parse);
    // The process has to start and connect first: give it up to 30 s.
    let mut parked = 0;
    for _ in 0..6 {
        parked = pipeline.wait_depth(&dlq, 1).await;
        if parked == 1 {
            break;
        }
    }
    if parked != 1 {
        let _ = child.kill().await;
        panic!(
            "not dead-lettered; the worker said:\n{:#?}",
            reader.await.unwrap()
        );
    }

    // The worker's own metrics address.
    let url = format!("http://127.0.0.1:{port}/metrics");
    let p = topology.prefix();
    wait_text(&url, 30, |text| {
        sample(
            text,
            "tenderflow_queue_messages",
            &[("prefix", p), ("stage", "parse"), ("queue", "dead_letter")],
        ) == Some(1.0)
            && sample(
                text,
                "tenderflow_messages_handled_total",
                &[("prefix", p), ("stage", "parse")],
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;

    // SIGTERM: a graceful stop.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the worker stops within 30 s")
        .unwrap();
    assert!(status.success(), "{status}");
    let lines = reader.await.unwrap();

    let task_hex = task.simple().to_string();
    let about_task: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).expect("every line is JSON"))
        .filter(|line| line["span"]["task_id"] == task.to_string())
        .collect();
    assert!(!about_task.is_empty(), "{lines:#?}");
    for line in &about_task {
        let span = &line["span"];
        assert_eq!(span["stage"], "parse", "{line}");
        assert!(span["attempt"].is_u64(), "{line}");
        assert_eq!(span["trace_id"], task_hex.as_str(), "{line}");
        assert!(span["span_id"].is_string(), "{line}");
    }
    let first = about_task
        .iter()
        .find(|l| l["span"]["attempt"] == 1)
        .unwrap();
    assert_eq!(first["span"]["parent_span_id"], "1111222233334444");
    assert_ne!(first["span"]["span_id"], "1111222233334444");
    let last = about_task.last().unwrap();

    // The dead letter continues the trace from the hop that parked it.
    let letter = tenderflow::dlq::fetch(&conn, &topology, Stage::Parse, &[0])
        .await
        .unwrap()
        .remove(&0)
        .expect("the dead letter");
    let traceparent = header_str(letter.properties.headers(), "traceparent").unwrap();
    let hop = tenderflow::telemetry::TraceParent::parse(&traceparent).unwrap();
    assert_eq!(hop.trace_id, task.as_u128());
    assert_eq!(
        format!("{:016x}", hop.span_id),
        last["span"]["span_id"].as_str().unwrap(),
        "{traceparent}"
    );
    let _ = conn.close(200, "done".into()).await;
}

/// `section.key` of every setting the example file states (commented-out
/// optional ones included).
fn example_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo("tenderflow.example.toml")).unwrap();
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.split_once(" = ") {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    keys
}

fn yaml_str(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(value: &serde_norway::Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("a list: {value:?}"))
        .iter()
        .map(yaml_str)
        .collect()
}

fn parse_cli(args: &[String]) -> Cli {
    let argv = std::iter::once("tenderflow".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn the_compose_file_matches_the_command_line_and_the_settings() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let mut compose: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let service = |name: &str| {
        services
            .get(name)
            .unwrap_or_else(|| panic!("no service {name}"))
    };
    let known = example_keys();
    let mut named_volumes = BTreeSet::new();

    for (name, spec) in services {
        let name = name.as_str().unwrap();
        assert!(
            spec.get("container_name").is_none(),
            "{name}: fixed names stop --scale"
        );
        assert!(spec.get("restart").is_some(), "{name} has a restart policy");
        for volume in spec
            .get("volumes")
            .and_then(|v| v.as_sequence())
            .into_iter()
            .flatten()
        {
            let source = yaml_str(volume).split(':').next().unwrap().to_string();
            if source.starts_with('.') {
                assert!(repo(&source).exists(), "{name} mounts {source}");
            } else {
                named_volumes.insert(source);
            }
        }
        // Each TENDERFLOW__ variable is a real setting with a valid value.
        let mut env = HashMap::new();
        if let Some(vars) = spec.get("environment").and_then(|e| e.as_mapping()) {
            for (key, value) in vars {
                let key = key.as_str().unwrap();
                let Some(path) = key.strip_prefix("TENDERFLOW__") else {
                    continue;
                };
                let (section, setting) = path.split_once("__").expect("TENDERFLOW__SECTION__KEY");
                let setting_name = format!("{}.{}", section.to_lowercase(), setting.to_lowercase());
                assert!(known.contains(&setting_name), "{name}: {key} is no setting");
                let value = yaml_str(value);
                let one = HashMap::from([(key.to_string(), value.clone())]);
                Settings::load_with_env(None, Some(one))
                    .unwrap_or_else(|e| panic!("{name}: {key}={value}: {e:#}"));
                env.insert(key.to_string(), value);
            }
        }
        if !env.is_empty() {
            Settings::load_with_env(None, Some(env))
                .unwrap_or_else(|e| panic!("{name}'s environment: {e:#}"));
        }
    }

    // One worker service per stage, none with a published port.
    for stage in Stage::ALL {
        let spec = service(stage.as_str());
        match parse_cli(&strings(&spec["command"])).command {
            Command::Worker { stage: s, .. } => assert_eq!(s, stage),
            other => panic!("{stage}: {other:?}"),
        }
        assert!(
            spec.get("ports").is_none(),
            "{stage}: a published port stops --scale"
        );
        assert!(
            spec.get("healthcheck").is_some(),
            "{stage} has a health check"
        );
        let env = spec["environment"].as_mapping().unwrap();
        let store = yaml_str(&env["TENDERFLOW__STORE__ROOT"]);
        assert!(
            strings(&spec["volumes"]).contains(&format!("store:{store}")),
            "{stage} shares the store volume at its store.root"
        );
        let url = yaml_str(&env["TENDERFLOW__AMQP__URL"]);
        assert!(url.contains("@rabbitmq:5672/"), "{stage}: {url}");
        // A graceful stop lets the messages in hand finish: the grace
        // period must outlast the handler timeout.
        let grace = yaml_str(&spec["stop_grace_period"]);
        let grace: u64 = grace
            .strip_suffix('s')
            .and_then(|g| g.parse().ok())
            .unwrap_or_else(|| panic!("{stage}: stop_grace_period {grace} in seconds"));
        let timeout_s = Settings::load(None).unwrap().stages.handler_timeout_ms / 1000;
        assert!(
            grace > timeout_s + 10,
            "{stage}: a grace period of {grace} s is cut before a handler's {timeout_s} s"
        );
    }
    // The notify consumer, scaled apart from the stages.
    let notify = service("notify");
    assert!(matches!(
        parse_cli(&strings(&notify["command"])).command,
        Command::Notify { .. }
    ));
    assert!(notify.get("ports").is_none());
    let serve = service("serve");
    assert!(matches!(
        parse_cli(&strings(&serve["command"])).command,
        Command::Serve
    ));
    assert!(serve.get("healthcheck").is_some());
    let env = serve["environment"].as_mapping().unwrap();
    let store = yaml_str(&env["TENDERFLOW__STORE__ROOT"]);
    assert!(strings(&serve["volumes"]).contains(&format!("store:{store}")));

    // RabbitMQ with its management UI, loading the definitions that the
    // `definitions` service exports with the real command line.
    let rabbitmq = service("rabbitmq");
    assert!(yaml_str(&rabbitmq["image"]).contains("management"));
    assert!(
        strings(&rabbitmq["ports"])
            .iter()
            .any(|p| p.ends_with(":15672"))
    );
    assert!(rabbitmq.get("healthcheck").is_some());
    let conf = std::fs::read_to_string(repo("deploy/rabbitmq/rabbitmq.conf")).unwrap();
    let loaded = conf
        .lines()
        .find_map(|l| l.strip_prefix("load_definitions = "))
        .expect("load_definitions");
    assert!(
        strings(&rabbitmq["volumes"]).contains(&format!("definitions:{loaded}:ro")),
        "RabbitMQ loads the definitions volume"
    );
    let definitions = service("definitions");
    assert_eq!(strings(&definitions["entrypoint"]), ["/bin/sh", "-c"]);
    let script = strings(&definitions["command"]).join(" ");
    let mut exported = false;
    for step in script.split("&&") {
        let words: Vec<String> = step.split_whitespace().map(str::to_string).collect();
        if words.first().map(String::as_str) != Some("tenderflow") {
            continue;
        }
        let redirect = words
            .iter()
            .position(|w| w == ">")
            .expect("written to a file");
        let target = &words[redirect + 1];
        assert!(target.starts_with("/data/definitions/"), "{target}");
        match parse_cli(&words[1..redirect]).command {
            Command::Topology {
                action: TopologyAction::Export { vhost },
            } => assert_eq!(vhost, "/"),
            other => panic!("{other:?}"),
        }
        exported = true;
    }
    assert!(exported, "{script}");
    assert!(strings(&definitions["volumes"]).contains(&"definitions:/data/definitions".into()));

    // The account RabbitMQ loads is the one the stages log in with.
    let access: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/rabbitmq/access.json")).unwrap(),
    )
    .unwrap();
    let url = url::Url::parse(&yaml_str(
        &service("ingest")["environment"]["TENDERFLOW__AMQP__URL"],
    ))
    .unwrap();
    assert_eq!(access["users"][0]["name"], url.username());
    assert_eq!(access["permissions"][0]["user"], url.username());
    assert_eq!(access["permissions"][0]["vhost"], "/");

    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(yaml_str)
        .collect();
    assert_eq!(named_volumes, declared, "every named volume is declared");

    // The Dockerfile: multi-stage, running as a non-root user.
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(!matches!(user.trim(), "root" | "0"), "{user}");
    assert!(dockerfile.contains("ENTRYPOINT [\"tenderflow\"]"));
}

#[test]
fn the_exported_topology_is_a_definitions_file_for_every_stage() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["topology", "export", "--vhost", "/"])
        .env_remove("TENDERFLOW_CONFIG")
        .env_remove("TENDERFLOW__TOPOLOGY__PREFIX")
        .output()
        .unwrap();
    assert!(output.status.success());
    let definitions: Value = serde_json::from_slice(&output.stdout).unwrap();
    let queues: BTreeSet<&str> = definitions["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    for stage in Stage::ALL {
        assert!(queues.contains(format!("tenderflow.{stage}").as_str()));
        assert!(queues.contains(format!("tenderflow.{stage}.dlq").as_str()));
    }
    assert!(queues.contains("tenderflow.events"));
    assert!(
        definitions["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["vhost"] == "/")
    );
}

#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    // `tenderflow ... | head`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenderflow"))
        .args(["topology", "export", "--vhost", "/"])
        .env_remove("TENDERFLOW_CONFIG")
        .env_remove("TENDERFLOW__TOPOLOGY__PREFIX")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs")
}

#[tokio::test]
async fn the_compose_definitions_import_into_rabbitmq_and_the_account_logs_in() {
    // The committed account and the exported topology, under a vhost and a
    // user name of this test's own (same password hash), so that the shared
    // broker keeps nothing.
    let id = Uuid::now_v7().simple().to_string();
    let (vhost, user) = (format!("tf-defs-{id}"), format!("tf-defs-{id}"));
    let mut access: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/rabbitmq/access.json")).unwrap(),
    )
    .unwrap();
    access["users"][0]["name"] = json!(user);
    access["vhosts"][0]["name"] = json!(vhost);
    access["permissions"][0]["user"] = json!(user);
    access["permissions"][0]["vhost"] = json!(vhost);
    let settings = Settings::load(None).unwrap();
    let topology = Topology::from_settings(&settings).unwrap().export(&vhost);
    let dir = tempfile::tempdir().unwrap();
    let mut imported = Vec::new();
    for (name, definitions) in [("access.json", &access), ("topology.json", &topology)] {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec(definitions).unwrap()).unwrap();
        let output = rabbitmqctl(&["import_definitions", file.to_str().unwrap()]);
        imported.push((name, output));
    }
    let login = async {
        let mut settings = Settings::load(None).unwrap();
        let url = format!(
            "amqp://{user}:tenderflow@127.0.0.1:5672/{}",
            url::form_urlencoded::byte_serialize(vhost.as_bytes()).collect::<String>()
        );
        settings.amqp.url = tenderflow::config::Secret::new(url);
        let conn = broker::connect_once(&settings, "test-definitions").await?;
        let channel = conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let mut found = Vec::new();
        for queue in [
            "tenderflow.parse",
            "tenderflow.parse.dlq",
            "tenderflow.events",
        ] {
            channel
                .queue_declare(queue.into(), passive, FieldTable::default())
                .await?;
            found.push(queue);
        }
        let _ = conn.close(200, "done".into()).await;
        anyhow::Ok(found)
    }
    .await;
    rabbitmqctl(&["delete_vhost", &vhost]);
    rabbitmqctl(&["delete_user", &user]);
    for (name, output) in &imported {
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let found = login.expect("the account logs in and finds the topology");
    assert_eq!(found.len(), 3);
}
