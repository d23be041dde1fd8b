//! Scanned PDFs: a committed scan (a page of the dev corpus rasterised at
//! 300 dpi, turned 1.2 degrees, noised, JPEG'd, made by
//! `tests/scans/make-scans.sh`) is read by OCR into a table with flagged
//! blocks and flagged evidence; hostile scans end in a clear error.
//!
//! These need the tesseract program with chi_sim and eng data: where it
//! is missing they say so and pass without OCR, except under `CI=true`,
//! where `.ci/run` installs it and a missing one fails.

use std::path::Path;
use std::time::{Duration, Instant};

use super::ocr::{CancelFlag, engine};
use super::{ParseLimits, parse, sniff};
use crate::document::{Block, ParsedDocument};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/scan_cn_selection_p1.pdf"
);

fn ocr_available() -> bool {
    match engine(Path::new("tesseract")) {
        Ok(_) => true,
        // CI installs tesseract (.ci/run): there a missing one is a failure.
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("OCR is not available under CI ({why})")
        }
        Err(why) => {
            eprintln!("skipped: OCR is not available here ({why}); install tesseract-ocr");
            false
        }
    }
}

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).expect("the committed scan fixture")
}

/// A PDF from object bodies given as bytes (object 1 is the catalog).
fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn stream(dict: &str, content: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", content.len()).into_bytes();
    out.extend_from_slice(content);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A one-page scan-shaped PDF: the page draws image `image_dict` with
/// `image` bytes over a page of `media_box`.
fn scan(media_box: &str, image_dict: &str, image: &[u8]) -> Vec<u8> {
    pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [{media_box}] /Contents 4 0 R \
             /Resources << /XObject << /Im1 5 0 R >> >> >>"
        )
        .into_bytes(),
        stream("", b"q 595 0 0 842 0 0 cm /Im1 Do Q"),
        stream(
            &format!(
                "/Type /XObject /Subtype /Image /ColorSpace /DeviceGray /BitsPerComponent 8 {image_dict}"
            ),
            image,
        ),
    ])
}

fn parsed(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, super::ParseError> {
    parse(bytes, sniff::PDF, limits)
}

#[test]
fn a_scanned_data_sheet_reads_as_a_table_with_ocr_flags() {
    if !ocr_available() {
        return;
    }
    let doc = parsed(&fixture(), &ParseLimits::default()).expect("the scan parses");
    let ocr = doc.ocr.as_ref().expect("an OCR side table");
    assert!(ocr.engine.contains("chi_sim+eng"), "{}", ocr.engine);
    assert_eq!(ocr.pages.len(), 1);
    let page = &ocr.pages[0];
    assert_eq!(
        (page.page, page.dpi, page.source.as_str()),
        (1, 300, "image")
    );
    assert!(
        page.confidence > 70.0,
        "mean confidence {}",
        page.confidence
    );
    // Every block stands on the scanned page, so every block is flagged.
    assert_eq!(ocr.blocks.len(), doc.blocks.len());
    assert!(
        ocr.blocks
            .iter()
            .all(|b| b.ocr && (0.0..=100.0).contains(&b.confidence))
    );
    // The ruled data sheet comes out as a table, row by row.
    let rows = doc
        .blocks
        .iter()
        .find_map(|b| match b {
            Block::Table { rows, .. } if rows.len() > 10 => Some(rows),
            _ => None,
        })
        .expect("the data sheet as a table");
    let row = |label: &str| {
        rows.iter()
            .find(|r| r.iter().any(|c| c == label))
            .unwrap_or_else(|| panic!("no row {label} in {rows:?}"))
    };
    assert_eq!(row("比选保证金")[0], "9");
    assert!(
        row("比选保证金")[2].starts_with("2万元；"),
        "{:?}",
        row("比选保证金")
    );
    assert_eq!(row("评审办法")[2], "综合评估法");
    // No stroke of a vertical rule is left in a cell.
    assert!(rows.iter().flatten().all(|c| !c.contains('|')), "{rows:?}");
}

#[test]
fn values_read_by_ocr_carry_their_flag_in_the_summary() {
    if !ocr_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("scan.pdf");
    std::fs::write(&path, fixture()).expect("the scan written");
    let summary = crate::extract::summarize_files_blocking(&[path]).expect("a summary");
    let method = &summary.fields["eval_method"];
    assert_eq!(method.value, "综合评估法");
    let ocr = method.evidence.ocr.expect("the evidence says OCR");
    assert!(ocr.confidence >= crate::ocr_evidence::MIN_CONFIDENCE);
    assert!(
        summary.fields.values().all(|f| f.evidence.ocr.is_some()),
        "every value of a scan is flagged"
    );
}

#[test]
fn a_page_past_its_time_limit_is_stopped() {
    if !ocr_available() {
        return;
    }
    let limits = ParseLimits {
        ocr_page_timeout: Duration::from_millis(300),
        ..ParseLimits::default()
    };
    let started = Instant::now();
    let err = parsed(&fixture(), &limits).expect_err("too slow");
    assert_eq!(err.kind, "too_large");
    assert!(err.message.contains("time limit"), "{err}");
    // Generous: the machine may be loaded; a page's OCR alone takes
    // seconds of CPU, and it was cut short.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_cancelled_parse_stops_before_ocr() {
    if !ocr_available() {
        return;
    }
    let limits = ParseLimits {
        cancel: CancelFlag::default(),
        ..ParseLimits::default()
    };
    limits.cancel.cancel();
    let err = parsed(&fixture(), &limits).expect_err("cancelled");
    assert_eq!(err.kind, "cancelled");
}

#[test]
fn more_scanned_pages_than_the_limit_is_too_large() {
    if !ocr_available() {
        return;
    }
    let limits = ParseLimits {
        max_ocr_pages: 0,
        ..ParseLimits::default()
    };
    let err = parsed(&fixture(), &limits).expect_err("over the limit");
    assert_eq!(err.kind, "too_large");
    assert!(err.message.contains("OCR limit of 0"), "{err}");
}

#[test]
fn a_corrupt_jpeg_scan_is_a_clear_error() {
    if !ocr_available() {
        return;
    }
    // A start-of-image and a frame header for 2480x3508, then garbage.
    let mut jpeg = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x0D, 0xB4, 0x09, 0xB0, 0x01, 0x01, 0x11, 0x00,
    ];
    jpeg.extend((0..5000u32).map(|i| (i * 7919 % 251) as u8));
    let bytes = scan(
        "0 0 595 842",
        "/Width 2480 /Height 3508 /Filter /DCTDecode",
        &jpeg,
    );
    let err = parsed(&bytes, &ParseLimits::default()).expect_err("nothing to read");
    assert!(matches!(err.kind, "corrupt" | "empty"), "{err}");
}

#[test]
fn an_image_claiming_billions_of_pixels_is_not_decoded() {
    if !ocr_available() {
        return;
    }
    let bytes = scan(
        "0 0 595 842",
        "/Width 100000 /Height 100000 /Filter /FlateDecode",
        b"x\x9c\x03\x00\x00\x00\x00\x01",
    );
    let started = Instant::now();
    let err = parsed(&bytes, &ParseLimits::default()).expect_err("nothing to read");
    assert!(matches!(err.kind, "corrupt" | "empty"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(300));
}

#[test]
fn a_page_too_big_to_render_is_too_large() {
    if !ocr_available() {
        return;
    }
    let bytes = scan("0 0 14400 14400", "/Width 1 /Height 1", b"\0");
    let err = parsed(&bytes, &ParseLimits::default()).expect_err("too big");
    assert_eq!(err.kind, "too_large");
    assert!(err.message.contains("200 by 200 inches"), "{err}");
}

#[test]
fn a_page_to_render_without_pdftoppm_needs_ocr_and_says_why() {
    if !ocr_available() {
        return;
    }
    let limits = ParseLimits {
        pdftoppm: "/nonexistent/pdftoppm".into(),
        ..ParseLimits::default()
    };
    let bytes = scan("0 0 595 842", "/Width 1 /Height 1", b"\0");
    let err = parsed(&bytes, &limits).expect_err("no renderer");
    assert_eq!(err.kind, "needs_ocr");
    assert!(err.message.contains("install poppler-utils"), "{err}");
}
