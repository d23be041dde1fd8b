//! The legacy Word, WPS and Excel fixtures (`tests/fixtures/legacy`, made
//! once with LibreOffice from the dev corpus): they must score as their
//! DOCX and XLSX sources do.

use std::path::{Path, PathBuf};

use tenderflow::document::ParsedDocument;
use tenderflow::eval::Row;
use tenderflow::parse::{ParseLimits, parse, sniff};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy")
}

fn dev_corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dev");
    dir.is_dir().then_some(dir)
}

fn parsed(path: &Path) -> ParsedDocument {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    let media_type = sniff::sniff(&bytes, &name).unwrap();
    parse(&bytes, media_type, &ParseLimits::default()).unwrap()
}

/// What a row scored, without its lists of misses.
fn figures(row: &Row) -> (usize, usize, usize, usize, [(usize, usize); 3]) {
    (
        row.fields,
        row.right,
        row.wrong,
        row.missing,
        [row.rejections, row.scores, row.forms],
    )
}

#[test]
fn doc_and_wps_variants_are_right_and_complete() {
    let report = tenderflow::eval::run(&fixtures(), true).unwrap();
    println!("{}", report.render());
    let variants: Vec<&str> = report.rows.iter().map(|r| r.variant.as_str()).collect();
    assert_eq!(variants, ["doc", "doc", "wps", "doc"]);
    for row in &report.rows {
        assert_eq!(
            row.wrong, 0,
            "{} {}: wrong values",
            row.document, row.variant
        );
        assert!(
            row.passed(),
            "{} {} did not pass:\n{}",
            row.document,
            row.variant,
            report.render()
        );
    }
}

/// Each `.doc` scores what its `.docx` scores, and parses to the same
/// blocks: the conversion kept everything the rules read.
#[test]
fn doc_variants_score_and_parse_as_their_docx() {
    let Some(corpus) = dev_corpus() else {
        eprintln!("dev corpus not found; skipped");
        return;
    };
    let ours = tenderflow::eval::run(&fixtures(), false).unwrap();
    let theirs = tenderflow::eval::run(&corpus, false).unwrap();
    for row in ours.rows.iter() {
        let docx = theirs
            .rows
            .iter()
            .find(|r| r.document == row.document && r.variant == "docx")
            .unwrap_or_else(|| panic!("no docx row for {}", row.document));
        assert_eq!(
            figures(row),
            figures(docx),
            "{} {} scores differently from its docx",
            row.document,
            row.variant
        );
        let doc = parsed(&fixtures().join(format!("{}.{}", row.document, row.variant)));
        let docx = parsed(&corpus.join(format!("{}.docx", row.document)));
        assert_eq!(doc.meta.format, "doc");
        assert_eq!(doc.blocks, docx.blocks, "{} {}", row.document, row.variant);
    }
}

#[test]
fn xls_parses_to_the_tables_of_its_xlsx() {
    let xls = parsed(&fixtures().join("bill_of_quantities.xls"));
    let xlsx = parsed(&fixtures().join("bill_of_quantities.xlsx"));
    assert_eq!(xls.meta.format, "xls");
    assert_eq!(xls.blocks, xlsx.blocks);
    let text = xls.plain_text();
    assert!(
        text.starts_with("工程量清单\n序号 | 项目编码 | 项目名称"),
        "{text}"
    );
    assert!(text.contains(
        "1 | 010101001001 | 平整场地 | 三类土，运距 50m 以内 | m2 | 12650 | 4.85 | 61352.5"
    ));
    assert!(text.contains("6 |  | 暂列金额 |  | 项 | 1 | 6000000 | 6000000"));
}
