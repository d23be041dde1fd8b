//! Acceptance: every variant of every corpus document parses, and its text
//! holds every gold field value and rejection text as written, and every
//! body line of the source verbatim; values that
//! stand in a pipe table of the source come out in a table row with the same
//! first cell; every block from a PDF knows its page.
//!
//! The real documents (`real/`, published as DOCX, PDF or text) have no
//! Markdown source: there every gold string (field values, rejection texts,
//! score names, forms) must be in the parsed text as written; in a PDF,
//! white space is ignored, since the text layer itself breaks values
//! ("12 层" for "12层", a cell wrapped mid-word).

use std::path::PathBuf;

use serde_json::Value;
use tenderflow::document::{Block, ParsedDocument};
use tenderflow::parse::{ParseLimits, parse, render_text, sniff::sniff};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/dev");
const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/real");
/// The variants a real document may be published in.
const REAL_VARIANTS: [&str; 3] = ["docx", "pdf", "txt"];
const DOCUMENTS: [&str; 3] = ["cn_construction", "cn_selection", "en_itt"];
const VARIANTS: [&str; 5] = ["md", "docx", "pdf", "html", "gbk.txt"];

fn corpus_file(name: &str) -> PathBuf {
    PathBuf::from(CORPUS).join(name)
}

/// The gold strings a parse must keep: field values and rejection texts.
fn gold_strings(document: &str) -> Vec<String> {
    let gold: Value = serde_json::from_slice(
        &std::fs::read(corpus_file(&format!("{document}.gold.json"))).expect("gold file"),
    )
    .expect("gold JSON");
    let mut out = Vec::new();
    match &gold["fields"] {
        Value::Object(fields) => out.extend(
            fields
                .values()
                .filter_map(|f| f["value"].as_str().map(String::from)),
        ),
        Value::Array(fields) => out.extend(
            fields
                .iter()
                .filter_map(|f| f["expect"].as_str().map(String::from)),
        ),
        _ => panic!("{document}: gold has no fields"),
    }
    for r in gold["rejections"].as_array().expect("rejections") {
        let text = r["text"]
            .as_str()
            .or_else(|| r.as_str())
            .expect("rejection text");
        out.push(text.to_string());
    }
    out
}

/// (first cell, gold string) for gold strings that sit on a pipe-table row
/// of the Markdown source.
fn table_expectations(document: &str, gold: &[String]) -> Vec<(String, String)> {
    let md = std::fs::read_to_string(corpus_file(&format!("{document}.md"))).expect("md");
    let mut out = Vec::new();
    for value in gold {
        let row = md
            .lines()
            .find(|l| l.trim_start().starts_with('|') && l.contains(value.as_str()));
        if let Some(row) = row {
            let first = row
                .trim()
                .trim_start_matches('|')
                .split('|')
                .next()
                .unwrap_or("");
            out.push((first.trim().to_string(), value.clone()));
        }
    }
    out
}

fn parse_variant(file: &str) -> Option<ParsedDocument> {
    parse_file(&corpus_file(file))
}

fn parse_file(path: &std::path::Path) -> Option<ParsedDocument> {
    let bytes = std::fs::read(path).ok()?;
    let file = path.display().to_string();
    let file = file.as_str();
    let media_type = sniff(&bytes, file).unwrap_or_else(|e| panic!("{file}: sniff: {e}"));
    Some(
        parse(&bytes, media_type, &ParseLimits::default())
            .unwrap_or_else(|e| panic!("{file}: parse: {e}")),
    )
}

fn table_rows(doc: &ParsedDocument) -> Vec<&Vec<String>> {
    doc.blocks
        .iter()
        .filter_map(|b| match b {
            Block::Table { rows, .. } => Some(rows),
            _ => None,
        })
        .flatten()
        .collect()
}

fn check_variant(document: &str, variant: &str, failures: &mut Vec<String>) {
    let file = format!("{document}.{variant}");
    let Some(doc) = parse_variant(&file) else {
        return; // en_itt has no gbk.txt
    };
    let gold = gold_strings(document);
    let text = doc.plain_text();
    for value in &gold {
        if !text.contains(value.as_str()) {
            failures.push(format!("{file}: text lacks {value:?}"));
        }
    }
    let rows = table_rows(&doc);
    for (first, value) in table_expectations(document, &gold) {
        let found = rows.iter().any(|row| {
            row.first().is_some_and(|c| c.trim() == first)
                && row.iter().any(|c| c.contains(value.as_str()))
        });
        if !found {
            failures.push(format!(
                "{file}: no table row starting {first:?} holds {value:?}"
            ));
        }
    }
    check_body_lines(document, &file, &text, failures);
    check_table_rows(document, &file, &rows, failures);
    if variant == "pdf" {
        check_pages(&file, &doc, failures);
    }
    assert!(
        !render_text(&doc).is_empty(),
        "{file}: rendered text is empty"
    );
}

/// Every body line of the source (not a table row) is found verbatim: no
/// text lost, no paragraph cut or run into the next. Lines with form blanks
/// (`____`) are skipped: PDF text layers shorten those runs.
fn check_body_lines(document: &str, file: &str, text: &str, failures: &mut Vec<String>) {
    let md = std::fs::read_to_string(corpus_file(&format!("{document}.md"))).expect("md");
    for line in md.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('|') || line.contains("___") {
            continue;
        }
        let body = line.trim_start_matches('#').trim();
        if !text.contains(body) {
            failures.push(format!("{file}: body line not found verbatim: {body:.60}"));
        }
    }
}

/// Every row of every pipe table in the source comes out as a table row
/// with the same cells (wrapped PDF cells rejoined).
fn check_table_rows(document: &str, file: &str, rows: &[&Vec<String>], failures: &mut Vec<String>) {
    let md = std::fs::read_to_string(corpus_file(&format!("{document}.md"))).expect("md");
    for line in md.lines().map(str::trim) {
        let is_separator = line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
        if !line.starts_with('|') || is_separator || line.contains("___") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !rows
            .iter()
            .any(|r| r.iter().map(|c| c.trim()).eq(cells.iter().copied()))
        {
            failures.push(format!("{file}: table row not found: {line:.80}"));
        }
    }
}

fn check_pages(file: &str, doc: &ParsedDocument, failures: &mut Vec<String>) {
    let count = doc.meta.page_count.unwrap_or(0);
    let mut last = 0;
    for block in &doc.blocks {
        match block.page() {
            Some(p) if p >= 1 && p <= count && p >= last => last = p,
            other => failures.push(format!(
                "{file}: block on page {other:?} (of {count}, after {last}): {:.60}",
                block.text()
            )),
        }
    }
}

#[test]
fn every_variant_keeps_the_gold_text_and_tables() {
    let mut failures = Vec::new();
    for document in DOCUMENTS {
        for variant in VARIANTS {
            check_variant(document, variant, &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every gold string of a real document, in both gold formats: field
/// values (`value` or `expect`), rejection texts, score names and forms.
fn real_gold_strings(gold: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let text = |v: &Value, keys: &[&str]| -> Option<String> {
        v.as_str()
            .or_else(|| keys.iter().find_map(|k| v[*k].as_str()))
            .map(String::from)
    };
    match &gold["fields"] {
        Value::Object(fields) => out.extend(fields.values().filter_map(|f| text(f, &["value"]))),
        Value::Array(fields) => out.extend(fields.iter().filter_map(|f| text(f, &["expect"]))),
        _ => {}
    }
    for key in ["rejections", "forms"] {
        let items = gold[key].as_array().into_iter().flatten();
        out.extend(items.filter_map(|r| text(r, &["text", "name"])));
    }
    for score in gold["scores"].as_array().into_iter().flatten() {
        // `{"name", "score"}` or a `[name, points]` pair.
        out.extend(text(score, &["name"]).or_else(|| text(&score[0], &[])));
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

fn without_white_space(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn every_real_document_keeps_its_gold_strings() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(REAL)
        .expect("real corpus beside the repository")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".gold.json"))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no gold files in {REAL}");
    let mut failures = Vec::new();
    let mut checked = 0;
    for gold_path in entries {
        let gold: Value =
            serde_json::from_slice(&std::fs::read(&gold_path).expect("gold file")).expect("JSON");
        let strings = real_gold_strings(&gold);
        let stem = gold_path
            .to_string_lossy()
            .trim_end_matches(".gold.json")
            .to_string();
        for variant in REAL_VARIANTS {
            let path = PathBuf::from(format!("{stem}.{variant}"));
            let Some(doc) = parse_file(&path) else {
                continue; // not published in this format
            };
            checked += 1;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            let text = doc.plain_text();
            let (text, loose) = if variant == "pdf" {
                (without_white_space(&text), true)
            } else {
                (text, false)
            };
            for value in &strings {
                let wanted = if loose {
                    without_white_space(value)
                } else {
                    value.clone()
                };
                if !text.contains(&wanted) {
                    failures.push(format!("{name}: text lacks {value:?}"));
                }
            }
            if variant == "pdf" {
                check_pages(&name, &doc, &mut failures);
            }
        }
    }
    assert!(checked > 0, "no real document variant was parsed");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn docx_headings_come_from_styles() {
    let doc = parse_variant("cn_construction.docx").expect("corpus docx");
    let headings: Vec<_> = doc
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::Heading {
                level,
                number,
                text,
                ..
            } => Some((*level, number.clone(), text.clone())),
            _ => None,
        })
        .collect();
    assert!(
        headings
            .iter()
            .any(|(l, n, t)| *l == 1 && n.as_deref() == Some("第二章") && t.starts_with("第二章"))
    );
    assert!(headings.iter().any(|(l, _, _)| *l == 2));
}

#[test]
fn a_lying_extension_does_not_matter() {
    let bytes = std::fs::read(corpus_file("cn_selection.docx")).expect("corpus docx");
    let media_type = sniff(&bytes, "cn_selection.pdf").expect("sniff");
    let doc = parse(&bytes, media_type, &ParseLimits::default()).expect("parse");
    assert_eq!(doc.meta.format, "docx");
    let bytes = std::fs::read(corpus_file("cn_selection.pdf")).expect("corpus pdf");
    let media_type = sniff(&bytes, "cn_selection.txt").expect("sniff");
    assert_eq!(
        parse(&bytes, media_type, &ParseLimits::default())
            .expect("parse")
            .meta
            .format,
        "pdf"
    );
}

/// Every content stream of every corpus PDF (pages and form XObjects) that
/// the vendored content lexer reads, it reads as lopdf's `Content::decode`
/// does; and it reads nearly all of them (else the fast path is not one).
#[test]
fn the_content_lexer_reads_every_corpus_stream_as_lopdf_does() {
    let mut pdfs: Vec<PathBuf> = Vec::new();
    for dir in [
        CORPUS,
        REAL,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        pdfs.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pdf")),
        );
    }
    if pdfs.is_empty() {
        eprintln!("no corpus PDFs: skipped");
        return;
    }
    let (mut streams, mut lexed) = (0, 0);
    for path in &pdfs {
        let doc = lopdf::Document::load(path).expect("corpus PDF loads");
        let mut contents: Vec<Vec<u8>> = doc
            .get_pages()
            .values()
            .filter_map(|id| doc.get_page_content(*id).ok())
            .collect();
        contents.extend(doc.objects.values().filter_map(|o| {
            let stream = o.as_stream().ok()?;
            let form = stream.dict.get(b"Subtype").and_then(|s| s.as_name()).ok()? == b"Form";
            form.then(|| stream.decompressed_content().ok()).flatten()
        }));
        for data in contents {
            streams += 1;
            let Some(ours) = pdf_extract::lexer::lex(&data) else {
                continue;
            };
            lexed += 1;
            let theirs = lopdf::content::Content::decode(&data).unwrap_or_else(|e| {
                panic!("{}: lopdf refused a stream we read: {e}", path.display())
            });
            let ours: Vec<_> = ours
                .iter()
                .map(|o| (o.operator.to_string(), o.operands.to_vec()))
                .collect();
            let theirs: Vec<_> = theirs
                .operations
                .into_iter()
                .map(|o| (o.operator, o.operands))
                .collect();
            assert!(
                ours == theirs,
                "{}: a stream read differently",
                path.display()
            );
        }
    }
    eprintln!(
        "{lexed} of {streams} content streams lexed, in {} PDFs",
        pdfs.len()
    );
    assert!(streams > 0);
    assert!(
        lexed * 10 >= streams * 9,
        "only {lexed} of {streams} streams took the fast path"
    );
}
