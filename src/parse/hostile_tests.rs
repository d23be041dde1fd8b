//! Hostile and broken input: every case ends in a permanent ParseError with
//! a clear kind, never a panic, a hang or unbounded memory. Also a short
//! proptest run over every entry point.

use proptest::prelude::*;

use super::{ParseLimits, parse, sniff};

/// A PDF file from object bodies (object 1 is the catalog), with a correct
/// cross-reference table, and `trailer_extra` added to the trailer.
fn pdf(objects: &[&str], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
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
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn stream(dict: &str, content: &str) -> String {
    format!(
        "<< {dict} /Length {} >>\nstream\n{content}\nendstream",
        content.len()
    )
}

/// A one-page PDF whose page draws `content`.
fn one_page(content: &str) -> Vec<u8> {
    pdf(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
             /Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
            &stream("", content),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            &stream(
                "/Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8",
                "\u{0}",
            ),
        ],
        "",
    )
}

fn kind(bytes: &[u8], media_type: &str) -> &'static str {
    kind_with(bytes, media_type, &ParseLimits::default())
}

fn kind_with(bytes: &[u8], media_type: &str, limits: &ParseLimits) -> &'static str {
    match parse(bytes, media_type, limits) {
        Ok(_) => "ok",
        Err(e) => {
            assert!(!e.message.is_empty());
            e.kind
        }
    }
}

#[test]
fn a_small_generated_pdf_parses() {
    let doc = parse(
        &one_page("BT /F1 12 Tf 72 720 Td (Tender closing date 14 August 2029) Tj ET"),
        sniff::PDF,
        &ParseLimits::default(),
    )
    .unwrap();
    assert!(
        doc.plain_text()
            .contains("Tender closing date 14 August 2029")
    );
    assert_eq!(doc.blocks[0].page(), Some(1));
}

#[test]
fn a_scan_without_tesseract_needs_ocr_and_says_it_is_not_available() {
    let limits = ParseLimits {
        tesseract: "/nonexistent/tesseract".into(),
        ..ParseLimits::default()
    };
    let err = parse(
        &one_page("q 595 0 0 842 0 0 cm /Im1 Do Q"),
        sniff::PDF,
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.kind, "needs_ocr");
    assert!(err.message.contains("OCR, which is not available"), "{err}");
    assert!(
        err.message.contains("/nonexistent/tesseract cannot be run"),
        "{err}"
    );
}

#[test]
fn an_encrypted_pdf_is_refused() {
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>".to_string(),
        stream("", "garbled"),
    ];
    let hex32 = "<".to_string() + &"7A".repeat(32) + ">";
    objects.push(format!(
        "<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O {hex32} /U {hex32} >>"
    ));
    let refs: Vec<&str> = objects.iter().map(String::as_str).collect();
    let bytes = pdf(&refs, &format!("/Encrypt 5 0 R /ID [{hex32} {hex32}]"));
    assert_eq!(kind(&bytes, sniff::PDF), "encrypted");
}

/// The one-page text PDF, encrypted by lopdf with these passwords.
fn encrypted_with(owner: &str, user: &str) -> Vec<u8> {
    use pdf_extract::{EncryptionState, EncryptionVersion, Permissions};
    let plain = one_page("BT /F1 12 Tf 72 720 Td (Tender closing date 14 August 2029) Tj ET");
    let mut doc = pdf_extract::Document::load_mem(&plain).unwrap();
    doc.trailer.set(
        "ID",
        pdf_extract::Object::Array(vec![
            pdf_extract::Object::string_literal(b"0123456789abcdef".to_vec()),
            pdf_extract::Object::string_literal(b"0123456789abcdef".to_vec()),
        ]),
    );
    let version = EncryptionVersion::V2 {
        document: &doc,
        owner_password: owner,
        user_password: user,
        key_length: 128,
        permissions: Permissions::PRINTABLE,
    };
    let state = EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn owner_password_only_pdfs_open_user_passwords_do_not() {
    let restricted = encrypted_with("owner-secret", "");
    let doc = parse(&restricted, sniff::PDF, &ParseLimits::default()).unwrap();
    assert!(
        doc.plain_text()
            .contains("Tender closing date 14 August 2029")
    );
    let locked = encrypted_with("owner-secret", "user-secret");
    let err = parse(&locked, sniff::PDF, &ParseLimits::default()).unwrap_err();
    assert_eq!(err.kind, "encrypted");
    assert!(err.message.contains("password"));
}

#[test]
fn broken_pdfs_are_corrupt() {
    assert_eq!(kind(b"%PDF-1.7\n\x00\x01garbage", sniff::PDF), "corrupt");
    let good = one_page("BT /F1 12 Tf 72 720 Td (Hello there, tenderers) Tj ET");
    for cut in [10, good.len() / 3, good.len() / 2] {
        let k = kind(&good[..cut], sniff::PDF);
        assert!(
            matches!(k, "corrupt" | "needs_ocr" | "ok"),
            "cut at {cut}: {k}"
        );
    }
    let deep = format!("%PDF-1.4\n1 0 obj\n{}\nendobj\n", "[".repeat(100_000));
    assert_eq!(kind(deep.as_bytes(), sniff::PDF), "corrupt");
}

#[test]
fn cyclic_page_trees_end() {
    // The page names itself as its parent; the pages node lists itself.
    let self_parent = pdf(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 3 0 R /MediaBox [0 0 595 842] >>",
        ],
        "",
    );
    assert_ne!(kind(&self_parent, sniff::PDF), "ok");
    let self_kid = pdf(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
        ],
        "",
    );
    assert_ne!(kind(&self_kid, sniff::PDF), "ok");
}

#[test]
fn recursive_forms_are_refused() {
    // A form XObject that draws itself, through the page's resources.
    let self_drawing = pdf(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
             /Resources << /XObject << /Fm1 5 0 R >> >> >>",
            &stream("", "/Fm1 Do"),
            &stream("/Type /XObject /Subtype /Form /BBox [0 0 10 10]", "/Fm1 Do"),
        ],
        "",
    );
    assert_eq!(kind(&self_drawing, sniff::PDF), "corrupt");
    // Forms that each draw the next twice: 2^40 calls without a cycle.
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /XObject << /F0 5 0 R >> >> >>"
            .to_string(),
        stream("", "/F0 Do"),
    ];
    for i in 0..40 {
        objects.push(stream(
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /F{} {} 0 R >> >>",
                i + 1,
                i + 6
            ),
            &format!("/F{0} Do /F{0} Do", i + 1),
        ));
    }
    objects.push(stream(
        "/Type /XObject /Subtype /Form /BBox [0 0 10 10]",
        "",
    ));
    let refs: Vec<&str> = objects.iter().map(String::as_str).collect();
    assert_eq!(kind(&pdf(&refs, ""), sniff::PDF), "too_large");
}

#[test]
fn a_stream_bomb_is_refused_before_inflating() {
    use std::io::Write as _;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![b' '; 8 * 1024 * 1024]).unwrap();
    let bomb = z.finish().unwrap();
    let mut bytes = one_page("BT /F1 12 Tf 72 720 Td (Hello there, tenderers) Tj ET");
    // Append the bomb as an extra object; lopdf reads it from the xref of
    // an incremental update.
    let start = bytes.len();
    bytes.extend_from_slice(
        format!(
            "7 0 obj\n<< /Filter /FlateDecode /Length {} >>\nstream\n",
            bomb.len()
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(&bomb);
    bytes.extend_from_slice(b"\nendstream\nendobj\n");
    let xref = bytes.len();
    bytes.extend_from_slice(
        format!(
            "xref\n7 1\n{start:010} 00000 n \ntrailer\n<< /Size 8 /Root 1 0 R /Prev {} >>\nstartxref\n{xref}\n%%EOF\n",
            prev_xref(&bytes[..start])
        )
        .as_bytes(),
    );
    let limits = ParseLimits {
        max_uncompressed_bytes: 1024 * 1024,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(&bytes, sniff::PDF, &limits), "too_large");
    assert_eq!(kind(&bytes, sniff::PDF), "ok");
}

/// The startxref offset of a PDF.
fn prev_xref(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    let after = text.rsplit("startxref").next().unwrap_or("");
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn too_many_pages_is_too_large() {
    let bytes = one_page("BT /F1 12 Tf 72 720 Td (Hello there, tenderers) Tj ET");
    let limits = ParseLimits {
        max_pages: 0,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(&bytes, sniff::PDF, &limits), "too_large");
}

const DOCX_BODY: &str = r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>招标公告</w:t></w:r></w:p></w:body></w:document>"#;

#[test]
fn docx_bombs_and_entities_are_refused() {
    let bomb = vec![b' '; 4 * 1024 * 1024];
    let bytes = super::zipread::test_zip(&[("word/document.xml", &bomb)]);
    let limits = ParseLimits {
        max_uncompressed_bytes: 1024 * 1024,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(&bytes, sniff::DOCX, &limits), "too_large");
    assert_eq!(kind_with(&bytes, sniff::XLSX, &limits), "too_large");

    let laughs = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><w:document xmlns:w="w"><w:body><w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>"#;
    let bytes = super::zipread::test_zip(&[("word/document.xml", laughs.as_bytes())]);
    assert_eq!(kind(&bytes, sniff::DOCX), "corrupt");

    let ok = super::zipread::test_zip(&[("word/document.xml", DOCX_BODY.as_bytes())]);
    assert_eq!(
        parse(&ok, sniff::DOCX, &ParseLimits::default())
            .unwrap()
            .plain_text(),
        "招标公告"
    );
    assert_eq!(
        kind(
            &super::zipread::test_zip(&[("other.xml", b"<a/>")]),
            sniff::DOCX
        ),
        "corrupt"
    );
}

#[test]
fn empty_and_unknown_input() {
    assert_eq!(kind(b"", sniff::PDF), "empty");
    assert_eq!(kind(b"abc", "application/x-unknown"), "unsupported_type");
    assert_eq!(kind(b"abc", "application/msword"), "unsupported_type");
    let limits = ParseLimits {
        max_input_bytes: 2,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(b"abc", sniff::TEXT, &limits), "too_large");
}

const MEDIA_TYPES: [&str; 6] = [
    sniff::PDF,
    sniff::DOCX,
    sniff::XLSX,
    sniff::HTML,
    sniff::MARKDOWN,
    sniff::TEXT,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any bytes, any parser: an answer, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), which in 0..6usize) {
        let _ = parse(&bytes, MEDIA_TYPES[which], &ParseLimits::default());
        let _ = sniff::sniff(&bytes, "x.bin");
    }

    /// Valid containers with damaged bytes: flipped bytes inside a real
    /// PDF and a real DOCX still give an answer.
    #[test]
    fn damaged_files_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut pdf_bytes = one_page("BT /F1 12 Tf 72 720 Td (Hello there, tenderers) Tj ET");
        let mut docx = super::zipread::test_zip(&[("word/document.xml", DOCX_BODY.as_bytes())]);
        for (at, b) in &flips {
            let i = at.index(pdf_bytes.len());
            pdf_bytes[i] = *b;
            let j = at.index(docx.len());
            docx[j] = *b;
        }
        let _ = parse(&pdf_bytes, sniff::PDF, &ParseLimits::default());
        let _ = parse(&docx, sniff::DOCX, &ParseLimits::default());
    }
}
