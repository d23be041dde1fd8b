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
    assert_eq!(kind(b"abc", sniff::DOC), "corrupt");
    assert_eq!(kind(b"abc", sniff::XLS), "corrupt");
    let limits = ParseLimits {
        max_input_bytes: 2,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(b"abc", sniff::TEXT, &limits), "too_large");
}

// Word and Excel binary files: OLE compound files (version 3, 512-byte
// sectors) edited in place.

use super::doc::tests::{Build, build, p, streams};
use super::ole;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn set_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

const END_OF_CHAIN: u32 = 0xFFFF_FFFE;

/// Where FAT entry `index` is stored (FAT sectors named in the header).
fn fat_entry(bytes: &[u8], index: u32) -> usize {
    let sector = u32_at(bytes, 76 + (index as usize / 128) * 4) as usize;
    512 + sector * 512 + (index as usize % 128) * 4
}

/// The sectors of the chain that starts at `start`.
fn chain(bytes: &[u8], start: u32) -> Vec<u32> {
    let mut out = vec![start];
    loop {
        let next = u32_at(bytes, fat_entry(bytes, *out.last().unwrap()));
        if next == END_OF_CHAIN || out.len() > 10_000 {
            return out;
        }
        out.push(next);
    }
}

/// Where the directory entry named `name` starts.
fn dir_entry(bytes: &[u8], name: &str) -> usize {
    let wanted: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    for sector in chain(bytes, u32_at(bytes, 48)) {
        for i in 0..4 {
            let at = 512 + sector as usize * 512 + i * 128;
            if bytes[at..at + wanted.len()] == wanted[..] {
                return at;
            }
        }
    }
    panic!("no directory entry {name}");
}

fn word_file() -> Vec<u8> {
    let paras: Vec<_> = (0..300)
        .map(|_| p("投标截止时间：2027年1月12日10:00\r"))
        .collect();
    build(&paras, &Build::default())
}

#[test]
fn ole_sector_chains_that_loop_are_refused() {
    let good = word_file();
    assert!(parse(&good, sniff::DOC, &ParseLimits::default()).is_ok());
    let start = u32_at(&good, dir_entry(&good, "WordDocument") + 116);
    let sectors = chain(&good, start);
    assert!(sectors.len() > 2, "the stream spans sectors: {sectors:?}");

    // The chain's last sector points back to its first.
    let mut cycle = good.clone();
    let last = fat_entry(&cycle, *sectors.last().unwrap());
    set_u32(&mut cycle, last, start);
    assert_eq!(kind(&cycle, sniff::DOC), "corrupt");

    // A sector that points to itself (so is pointed to twice).
    let mut self_loop = good.clone();
    let middle = sectors[1];
    let at = fat_entry(&self_loop, middle);
    set_u32(&mut self_loop, at, middle);
    assert_eq!(kind(&self_loop, sniff::DOC), "corrupt");
    assert_eq!(
        sniff::sniff(&self_loop, "x.doc").unwrap_err().kind,
        "corrupt"
    );

    // The directory's own chain loops.
    let mut dir_loop = good.clone();
    let dir = u32_at(&dir_loop, 48);
    let at = fat_entry(&dir_loop, dir);
    set_u32(&mut dir_loop, at, dir);
    assert_eq!(kind(&dir_loop, sniff::DOC), "corrupt");

    // A chain pointing past the end of the file.
    let mut beyond = good;
    let at = fat_entry(&beyond, sectors[0]);
    set_u32(&mut beyond, at, 0x00FF_FFFF);
    assert_eq!(kind(&beyond, sniff::DOC), "corrupt");
}

#[test]
fn deeply_nested_storages_do_not_matter() {
    use std::io::{Cursor, Write};
    let (word, table) = streams(&[p("招标公告\r")], &Build::default());
    let mut file =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new())).unwrap();
    let mut path = String::new();
    for _ in 0..2000 {
        path.push_str("/s");
        file.create_storage(&path).unwrap();
    }
    file.create_stream("/WordDocument")
        .unwrap()
        .write_all(&word)
        .unwrap();
    file.create_stream("/1Table")
        .unwrap()
        .write_all(&table)
        .unwrap();
    file.flush().unwrap();
    let bytes = file.into_inner().into_inner();
    assert_eq!(sniff::sniff(&bytes, "x.doc").unwrap(), sniff::DOC);
    let doc = parse(&bytes, sniff::DOC, &ParseLimits::default()).unwrap();
    assert_eq!(doc.plain_text(), "招标公告");
}

#[test]
fn ole_stream_sizes_that_lie_are_refused_or_cut() {
    let good = word_file();
    for claimed in [u32::MAX - 10, 0x7FFF_0000, 1 << 20, 3, 0] {
        let mut lying = good.clone();
        let at = dir_entry(&lying, "WordDocument") + 120;
        set_u32(&mut lying, at, claimed);
        let got = kind(&lying, sniff::DOC);
        assert!(["corrupt", "too_large"].contains(&got), "{claimed}: {got}");
    }
    // A stream larger than the budget is refused before it is read.
    let limits = ParseLimits {
        max_uncompressed_bytes: 8 * 1024,
        ..ParseLimits::default()
    };
    assert_eq!(kind_with(&good, sniff::DOC, &limits), "too_large");
}

#[test]
fn a_word_file_whose_fib_lies_gives_an_error_or_its_text() {
    let paras = [p("保证金\r"), p("二万元\r")];
    let (word, table) = streams(&paras, &Build::default());
    let with = |edit: &dyn Fn(&mut Vec<u8>, &mut Vec<u8>)| {
        let (mut w, mut t) = (word.clone(), table.clone());
        edit(&mut w, &mut t);
        let file = ole::test_file(&[("WordDocument", &w), ("1Table", &t)]);
        parse(&file, sniff::DOC, &ParseLimits::default())
    };
    // FibRgLw starts at 64 (csw 14), FibRgFcLcb at 154.
    let pair = |index: usize| 154 + index * 8;
    // ccpText far past the text: the pieces end it.
    let doc = with(&|w, _| set_u32(w, 64 + 12, 0x7FFF_FFF0)).unwrap();
    assert_eq!(doc.plain_text(), "保证金\n二万元");
    // A negative length.
    assert_eq!(
        with(&|w, _| set_u32(w, 64 + 12, 0x8000_0000))
            .unwrap_err()
            .kind,
        "corrupt"
    );
    // The piece table outside the table stream, or cut short.
    assert_eq!(
        with(&|w, _| set_u32(w, pair(33), 1 << 30))
            .unwrap_err()
            .kind,
        "corrupt"
    );
    assert_eq!(
        with(&|w, _| set_u32(w, pair(33) + 4, 7)).unwrap_err().kind,
        "corrupt"
    );
    // Property and style tables outside the stream: the text, unformatted.
    for index in [1, 11, 12, 13] {
        let doc = with(&|w, _| set_u32(w, pair(index) + 4, u32::MAX)).unwrap();
        assert_eq!(doc.plain_text(), "保证金\n二万元", "{index}");
    }
    // Property pages named past the end of the stream.
    let doc = with(&|w, t| {
        let papx = u32_at(w, pair(13)) as usize;
        set_u32(t, papx + 8, 0x003F_FFFF);
    })
    .unwrap();
    assert_eq!(doc.plain_text(), "保证金\n二万元");
    // No table stream, a FIB cut short, a foreign stream.
    let no_table = ole::test_file(&[("WordDocument", &word)]);
    assert_eq!(kind(&no_table, sniff::DOC), "corrupt");
    let cut = ole::test_file(&[("WordDocument", &word[..100]), ("1Table", &table)]);
    assert_eq!(kind(&cut, sniff::DOC), "corrupt");
    let other = ole::test_file(&[("Workbook", &word)]);
    assert_eq!(kind(&other, sniff::DOC), "corrupt");
}

#[test]
fn deep_nesting_in_word_files_is_flat_work() {
    let fields = format!(
        "{}见网站{}\r",
        "\u{13}".repeat(100_000),
        "\u{15}".repeat(100_000)
    );
    let doc = parse(
        &build(&[p(&fields), p("投标须知\r")], &Build::default()),
        sniff::DOC,
        &ParseLimits::default(),
    )
    .unwrap();
    assert_eq!(doc.plain_text(), "投标须知");
    // A table nested four billion deep is one cell's text.
    let deep = vec![0x16, 0x24, 1, 0x49, 0x66, 0xFF, 0xFF, 0xFF, 0xFF];
    let doc = parse(
        &build(
            &[
                super::doc::tests::P("深\r", 0, deep),
                super::doc::tests::P("\u{7}", 0, vec![0x16, 0x24, 1]),
                super::doc::tests::P("\u{7}", 0, vec![0x16, 0x24, 1, 0x17, 0x24, 1]),
            ],
            &Build::default(),
        ),
        sniff::DOC,
        &ParseLimits::default(),
    )
    .unwrap();
    assert_eq!(doc.plain_text(), "深");
}

#[test]
fn truncated_legacy_files_fail_cleanly() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy");
    for (name, media_type) in [
        ("cn_selection.doc", sniff::DOC),
        ("bill_of_quantities.xls", sniff::XLS),
    ] {
        let bytes = std::fs::read(fixtures.join(name)).unwrap();
        for cut in (0..bytes.len()).step_by(bytes.len() / 97) {
            let _ = parse(&bytes[..cut], media_type, &ParseLimits::default());
            let _ = sniff::sniff(&bytes[..cut], name);
        }
    }
}

#[test]
fn hostile_xls_workbooks_are_refused() {
    use super::xlsx::biff::{number, record};
    let sheet = |cells: &[Vec<u8>]| {
        let mut out = record(0x0809, &[0; 16]);
        for c in cells {
            out.extend(c);
        }
        out.extend(record(0x000A, &[]));
        out
    };
    // One cell at A1 and one at IV65536: a dense grid of 16.7 million.
    let far = ole::test_file(&[(
        "Workbook",
        &sheet(&[number(0, 0, 1.0), number(65535, 255, 2.0)]),
    )]);
    assert_eq!(sniff::sniff(&far, "x.xls").unwrap(), sniff::XLS);
    assert_eq!(kind(&far, sniff::XLS), "too_large");
    // A DIMENSIONS record claiming four billion rows (calamine would
    // reserve them and abort): found by the parse_xls fuzz target.
    let mut dims = 0u32.to_le_bytes().to_vec();
    dims.extend(u32::MAX.to_le_bytes());
    dims.extend([0, 0, 0xFF, 0, 0, 0]);
    let bof = [0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut book = record(0x0809, &bof);
    // BOUNDSHEET8: the sheet's BOF comes after the globals' 3 records.
    let sheet_at = (20 + 13 + 4) as u32;
    let mut bound = sheet_at.to_le_bytes().to_vec();
    bound.extend([0, 0, 1, 0, b'S']);
    book.extend(record(0x0085, &bound));
    book.extend(record(0x000A, &[]));
    assert_eq!(book.len() as u32, sheet_at);
    book.extend(sheet(&[record(0x0200, &dims), number(0, 0, 1.0)]));
    let lying = ole::test_file(&[("Workbook", &book)]);
    let doc = parse(&lying, sniff::XLS, &ParseLimits::default()).unwrap();
    assert_eq!(doc.plain_text(), "S\n1");
    let fuzzed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/legacy/fuzz-dimensions.xls");
    let _ = parse(
        &std::fs::read(fuzzed).unwrap(),
        sniff::XLS,
        &ParseLimits::default(),
    );
    // A password-protected workbook (FILEPASS in the globals).
    let mut globals = record(0x0809, &[0; 16]);
    globals.extend(record(0x002F, &[1, 0, 1, 0, 1, 0]));
    let encrypted = ole::test_file(&[("Workbook", &globals)]);
    assert_eq!(kind(&encrypted, sniff::XLS), "encrypted");
    // Garbage in the stream, and no workbook stream at all.
    let garbage = ole::test_file(&[("Workbook", &[0xAB; 3000])]);
    assert_eq!(kind(&garbage, sniff::XLS), "corrupt");
    let none = ole::test_file(&[("WordDocument", b"x")]);
    assert_eq!(kind(&none, sniff::XLS), "corrupt");
}

const MEDIA_TYPES: [&str; 8] = [
    sniff::PDF,
    sniff::DOCX,
    sniff::XLSX,
    sniff::HTML,
    sniff::MARKDOWN,
    sniff::TEXT,
    sniff::DOC,
    sniff::XLS,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any bytes, any parser: an answer, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), which in 0..8usize) {
        let _ = parse(&bytes, MEDIA_TYPES[which], &ParseLimits::default());
        let _ = sniff::sniff(&bytes, "x.bin");
    }

    /// Valid containers with damaged bytes: flipped bytes inside a real
    /// PDF and a real DOCX still give an answer.
    #[test]
    fn damaged_files_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut pdf_bytes = one_page("BT /F1 12 Tf 72 720 Td (Hello there, tenderers) Tj ET");
        let mut docx = super::zipread::test_zip(&[("word/document.xml", DOCX_BODY.as_bytes())]);
        let mut doc = build(&[p("招标\r"), p("公告\r")], &Build::default());
        for (at, b) in &flips {
            let i = at.index(pdf_bytes.len());
            pdf_bytes[i] = *b;
            let j = at.index(docx.len());
            docx[j] = *b;
            let k = at.index(doc.len());
            doc[k] = *b;
        }
        let _ = parse(&pdf_bytes, sniff::PDF, &ParseLimits::default());
        let _ = parse(&docx, sniff::DOCX, &ParseLimits::default());
        let _ = parse(&doc, sniff::DOC, &ParseLimits::default());
    }
}
