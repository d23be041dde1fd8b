//! Legacy Word, WPS and Excel files are normal tasks: sniffed at ingest,
//! parsed, filtered and extracted like the DOCX and XLSX they were saved
//! from (fixtures made once with LibreOffice, `tests/fixtures/legacy`).

use std::path::Path;

use bytes::Bytes;
use tenderflow::envelope::TaskOptions;
use tenderflow::submit::{Outcome, Submitter, Upload};
use tenderflow::summary::Summary;

use crate::helpers::TestPipeline;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy")
        .join(name)
}

#[tokio::test]
async fn doc_wps_and_xls_files_complete_as_their_sources_do() {
    let pipeline = TestPipeline::new(|_, _| {});
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let submitter = Submitter::new(std::sync::Arc::clone(&pipeline.settings)).unwrap();
    let names = [
        "cn_selection.doc",
        "cn_selection.wps",
        "bill_of_quantities.xls",
    ];
    let mut tasks = Vec::new();
    for name in names {
        let upload = Upload {
            filename: name.to_string(),
            bytes: Bytes::from(std::fs::read(fixture(name)).unwrap()),
        };
        let envelope = submitter
            .submit(vec![upload], TaskOptions::default())
            .await
            .unwrap();
        tasks.push(envelope.task_id);
    }
    let done = crate::helpers::outcomes(follower, &tasks, 60).await;
    let docx = tenderflow::extract::summarize_files(&[crate::helpers::corpus("cn_selection.docx")])
        .await
        .ok();
    for (name, task) in names.iter().zip(&tasks) {
        let Outcome::Completed { summary_key } = &done[task] else {
            panic!("{name} failed: {:?}", done[task]);
        };
        let bytes = std::fs::read(pipeline.settings.store.root.join(summary_key)).unwrap();
        let summary: Summary = serde_json::from_slice(&bytes).unwrap();
        if name.starts_with("cn_selection")
            && let Some(docx) = &docx
        {
            let values = |s: &Summary| {
                s.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(values(&summary), values(docx), "{name}");
            assert_eq!(summary.rejections.len(), docx.rejections.len(), "{name}");
        }
    }
    pipeline.teardown().await;
}
