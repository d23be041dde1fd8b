//! Zipped tender packages through the real pipeline: one task per package,
//! whose summary applies the amendment and whose view lists every file with
//! its role; hostile packages are dead-lettered at ingest with their reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tenderflow::envelope::{Role, Stage, TaskOptions};
use tenderflow::submit::{Outcome, Submitter, Upload};
use tenderflow::summary::Summary;

use crate::api::{TestApp, test_pipeline};
use crate::helpers::outcomes;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// A stored (uncompressed) zip of `(raw name, utf8 flag, bytes)`, built by
/// hand so that a name can be GBK bytes without the UTF-8 flag, as Windows
/// tools write it.
fn zip_of(entries: &[(Vec<u8>, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, utf8, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let flags: u16 = if *utf8 { 0x0800 } else { 0 };
        let offset = out.len() as u32;
        let fields = |buf: &mut Vec<u8>| {
            for v in [20u16, flags, 0, 0, 0x21] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc.sum(), data.len() as u32, data.len() as u32] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        fields(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(data);
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        fields(&mut central);
        for v in [0u16, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    for v in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn utf8(name: &str, data: Vec<u8>) -> (Vec<u8>, bool, Vec<u8>) {
    (name.as_bytes().to_vec(), true, data)
}

fn gbk(name: &str, data: Vec<u8>) -> (Vec<u8>, bool, Vec<u8>) {
    let (bytes, _, _) = encoding_rs::GBK.encode(name);
    (bytes.into_owned(), false, data)
}

async fn submit(submitter: &Submitter, filename: &str, bytes: Vec<u8>) -> uuid::Uuid {
    let upload = Upload {
        filename: filename.to_string(),
        bytes: Bytes::from(bytes),
    };
    submitter
        .submit(vec![upload], TaskOptions::default())
        .await
        .unwrap()
        .task_id
}

/// The files of a view as (name, role).
fn view_files(view: &Value) -> Vec<(String, String)> {
    view["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_package_is_one_task_whose_summary_applies_its_amendment() {
    let pipeline = test_pipeline(|_| {});
    let app = TestApp::start(&pipeline.settings).await;
    pipeline.start_all();
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let follower = pipeline.follower().await;

    let drawing = b"AC1032\x00\x00\x00\x01binary drawing".to_vec();
    // Windows' own zip: GBK names, no UTF-8 flag.
    let gov = zip_of(&[
        gbk("图纸\\总平面图.dwg", drawing.clone()),
        gbk("补遗1.txt", read("gov_tender_addendum.txt")),
        gbk("招标文件.txt", read("gov_tender.txt")),
    ]);
    // The amendment in a zip inside the package.
    let amendment = zip_of(&[utf8("更正公告.md", read("cs_lots_amendment.md"))]);
    let cs = zip_of(&[
        utf8("磋商文件.md", read("cs_lots.md")),
        utf8("更正/更正.zip", amendment),
    ]);
    let en = zip_of(&[
        utf8("Addendum No.1.md", read("en_addendum.md")),
        utf8("Bidding Document.md", read("en_bds.md")),
    ]);
    let packages = [
        (
            "城东区.zip",
            gov,
            ["gov_tender.txt", "gov_tender_addendum.txt"],
            vec![
                ("招标文件.txt", "main"),
                ("补遗1.txt", "amendment"),
                ("图纸/总平面图.dwg", "attachment"),
                ("城东区.zip", "package"),
            ],
        ),
        (
            "磋商.zip",
            cs,
            ["cs_lots.md", "cs_lots_amendment.md"],
            vec![
                ("磋商文件.md", "main"),
                ("更正/更正.zip/更正公告.md", "amendment"),
                ("更正/更正.zip", "package"),
                ("磋商.zip", "package"),
            ],
        ),
        (
            "bds.zip",
            en,
            ["en_bds.md", "en_addendum.md"],
            vec![
                ("Bidding Document.md", "main"),
                ("Addendum No.1.md", "amendment"),
                ("bds.zip", "package"),
            ],
        ),
    ];
    let mut tasks = Vec::new();
    for (name, bytes, _, _) in &packages {
        tasks.push(submit(&submitter, name, bytes.clone()).await);
    }
    let done = outcomes(follower, &tasks, 90).await;

    for ((name, _, sources, want), task) in packages.iter().zip(&tasks) {
        let Outcome::Completed { summary_key } = &done[task] else {
            panic!("{name}: {:?}", done[task]);
        };
        let bytes = std::fs::read(pipeline.settings.store.root.join(summary_key)).unwrap();
        let mut summary: Summary = serde_json::from_slice(&bytes).unwrap();
        let listed: Vec<(String, Role)> = summary
            .documents
            .iter()
            .map(|d| (d.name.clone(), d.role))
            .collect();
        let want_roles: Vec<(String, Role)> = want
            .iter()
            .map(|(n, r)| {
                let role = serde_json::from_value(Value::String(r.to_string())).unwrap();
                (n.to_string(), role)
            })
            .collect();
        assert_eq!(listed, want_roles, "{name}: the summary's file list");
        assert_eq!(summary.documents[0].document, Some(0));
        assert_eq!(summary.documents[1].document, Some(1));
        assert!(summary.documents[2..].iter().all(|d| d.document.is_none()));
        // The same summary as the main document and its amendment
        // extracted in-process, in that order.
        summary.documents.clear();
        let paths: Vec<PathBuf> = sources.iter().map(|s| fixture(s)).collect();
        let direct = tenderflow::extract::summarize_files_blocking(&paths).unwrap();
        assert_eq!(summary, direct, "{name}");

        let view = app
            .wait_for(&format!("/v1/tasks/{task}"), 10, |v| v["state"] == "done")
            .await;
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect();
        assert_eq!(view_files(&view), want, "{name}: the view's file list");
        assert_eq!(view["documents"][0]["filename"], *name);
        assert!(
            view["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| !f["reason"].as_str().unwrap().is_empty())
        );
    }

    // The amendments were applied.
    let summary_of = |task: &uuid::Uuid| -> Summary {
        let Outcome::Completed { summary_key } = &done[task] else {
            unreachable!()
        };
        serde_json::from_slice(
            &std::fs::read(pipeline.settings.store.root.join(summary_key)).unwrap(),
        )
        .unwrap()
    };
    let gov = summary_of(&tasks[0]);
    let cap = &gov.lots["二标段"]["price_cap"];
    assert_eq!(cap.normalized["amount"], 9_500_000.0);
    assert_eq!(cap.evidence.document, 1);
    assert_eq!(cap.superseded[0].normalized["amount"], 9_860_000.0);
    let cs = summary_of(&tasks[1]);
    assert_eq!(
        cs.fields["deadline_bid"].normalized,
        "2026-12-15T09:30:00+08:00"
    );
    assert_eq!(cs.fields["deadline_bid"].evidence.document, 1);

    // The attachment is stored as it was in the package.
    let (_, view) = app.get(&format!("/v1/tasks/{}", tasks[0])).await;
    let key = view["files"][2]["stored"]["key"].as_str().unwrap();
    let stored = std::fs::read(pipeline.settings.store.root.join(key)).unwrap();
    assert_eq!(stored, drawing);
    app.stop().await;
    pipeline.teardown().await;
}

#[tokio::test]
async fn hostile_packages_are_dead_lettered_at_ingest_and_the_worker_lives_on() {
    let pipeline = test_pipeline(|s| {
        s.store.allowed_roots = vec![std::env::temp_dir()];
    });
    pipeline.start_all();
    let submitter = Submitter::new(Arc::clone(&pipeline.settings)).unwrap();
    let follower = pipeline.follower().await;

    let tender = || utf8("招标文件.txt", read("gov_tender.txt"));
    let inner = zip_of(&[utf8("补遗1.txt", read("gov_tender_addendum.txt"))]);
    let middle = zip_of(&[utf8("inner.zip", inner)]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "escape.zip",
            zip_of(&[tender(), utf8("../../etc/cron.d/x", b"x".to_vec())]),
            "unsafe_entry",
        ),
        (
            "absolute.zip",
            zip_of(&[tender(), utf8("/etc/passwd", b"x".to_vec())]),
            "unsafe_entry",
        ),
        (
            "deep.zip",
            zip_of(&[tender(), utf8("middle.zip", middle)]),
            "unsupported_archive",
        ),
        (
            "rar_inside.zip",
            zip_of(&[tender(), utf8("补遗.rar", b"Rar!\x1A\x07\x00xx".to_vec())]),
            "unsupported_archive",
        ),
        (
            "unreadable_amendment.zip",
            zip_of(&[tender(), utf8("补遗1.dwg", b"AC1032\x00".to_vec())]),
            "unsupported_type",
        ),
        (
            "nothing.zip",
            zip_of(&[utf8("图纸.dwg", b"AC1032\x00".to_vec())]),
            "no_main_document",
        ),
    ];
    let mut tasks = Vec::new();
    for (name, bytes, _) in &cases {
        tasks.push(submit(&submitter, name, bytes.clone()).await);
    }
    // A RAR submitted by reference reaches ingest, which names the format.
    let dir = tempfile::tempdir().unwrap();
    let rar = dir.path().join("package.rar");
    std::fs::write(&rar, b"Rar!\x1A\x07\x01\x00 rest of a RAR5 archive").unwrap();
    tasks.push(
        submitter
            .submit_by_reference(&[rar], TaskOptions::default())
            .await
            .unwrap()
            .task_id,
    );
    // A package must come alone.
    let mixed = vec![
        Upload {
            filename: "pkg.zip".into(),
            bytes: Bytes::from(zip_of(&[tender()])),
        },
        Upload {
            filename: "补遗1.txt".into(),
            bytes: Bytes::from(read("gov_tender_addendum.txt")),
        },
    ];
    tasks.push(
        submitter
            .submit(mixed, TaskOptions::default())
            .await
            .unwrap()
            .task_id,
    );
    let good = zip_of(&[tender()]);
    tasks.push(submit(&submitter, "good.zip", good).await);
    let done = outcomes(follower, &tasks, 60).await;

    let expected = cases.iter().map(|(name, _, kind)| (*name, *kind)).chain([
        ("package.rar", "unsupported_archive"),
        ("pkg.zip + 补遗1.txt", "mixed_package"),
    ]);
    for ((name, kind), task) in expected.zip(&tasks) {
        let Outcome::Failed {
            stage,
            kind: got,
            message,
        } = &done[task]
        else {
            panic!("{name}: {:?}", done[task]);
        };
        assert_eq!(
            (*stage, got.as_str()),
            (Stage::Ingest, kind),
            "{name}: {message}"
        );
        assert!(!message.is_empty());
    }
    let rar_message = match &done[&tasks[cases.len()]] {
        Outcome::Failed { message, .. } => message.clone(),
        other => panic!("{other:?}"),
    };
    assert!(rar_message.contains("RAR"), "{rar_message}");
    assert!(
        matches!(done[tasks.last().unwrap()], Outcome::Completed { .. }),
        "the workers live on: {:?}",
        done[tasks.last().unwrap()]
    );
    pipeline.teardown().await;
}
