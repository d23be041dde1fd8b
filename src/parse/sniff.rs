//! The type of a document, from its bytes rather than its name.

use std::io::{Cursor, Read};

use super::ole::{self, Ole};
use super::{ParseError, ParseLimits, guard};

// Media types tenderflow knows.

/// PDF.
pub const PDF: &str = "application/pdf";
/// Word 2007+ (OOXML) document.
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
/// Excel 2007+ (OOXML) workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// Word 97–2003 binary document (`.doc`; WPS Writer's `.wps` is the same
/// format).
pub const DOC: &str = "application/msword";
/// Excel 97–2003 (BIFF) workbook (`.xls`; WPS Spreadsheets' `.et` too).
pub const XLS: &str = "application/vnd.ms-excel";
/// HTML page.
pub const HTML: &str = "text/html";
/// Markdown text (told from plain text by the file name only).
pub const MARKDOWN: &str = "text/markdown";
/// Plain text in any detected encoding.
pub const TEXT: &str = "text/plain";
/// A zip package of a tender's files (a zip that is neither DOCX nor XLSX);
/// ingest unpacks it ([`crate::package`]), parse never sees one.
pub const ZIP: &str = "application/zip";

/// Sniffs the media type of `bytes`. `filename` only tells Markdown from plain
/// text, which no byte signature can; it never overrides the bytes.
pub fn sniff(bytes: &[u8], filename: &str) -> Result<&'static str, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::new("empty", "the document is empty (0 bytes)"));
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(PDF);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return sniff_zip(bytes);
    }
    if let Some(format) = other_archive(bytes) {
        return Err(ParseError::new(
            "unsupported_archive",
            format!(
                "a {format} archive: tenderflow unpacks only zip packages; \
                 repack the files as a .zip and submit that"
            ),
        ));
    }
    if bytes.starts_with(&ole::MAGIC) {
        return guard("OLE", || sniff_ole(bytes));
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<html") {
        return Ok(HTML);
    }
    if looks_binary(bytes) {
        return Err(ParseError::new(
            "unsupported_type",
            "the bytes are not PDF, DOCX, XLSX, DOC, XLS, HTML or text",
        ));
    }
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".md") || lower.ends_with(".markdown") {
        Ok(MARKDOWN)
    } else {
        Ok(TEXT)
    }
}

/// Plain text or Markdown, when the bytes are surely one of them: no
/// container signature (PDF, zip, OLE, another archive), so this reads only
/// the first kilobyte and looks for binary bytes, never opening a
/// container. `None` for every other type, and for what [`sniff`] refuses.
pub fn plain_text(bytes: &[u8], filename: &str) -> Option<&'static str> {
    let container = bytes.starts_with(b"%PDF-")
        || bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(&ole::MAGIC)
        || other_archive(bytes).is_some();
    if container {
        return None;
    }
    sniff(bytes, filename)
        .ok()
        .filter(|t| *t == TEXT || *t == MARKDOWN)
}

/// The archive formats other than zip, by their magic bytes. No well-kept
/// pure-Rust crate reads RAR (the `unrar` crate binds the C++ library under
/// a licence that forbids writing a compressor); 7z, gzip and tar are left
/// out to keep one bounded unpacker to audit.
fn other_archive(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"Rar!\x1A\x07") {
        Some("RAR")
    } else if bytes.starts_with(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        Some("7z")
    } else if bytes.starts_with(&[0x1F, 0x8B]) {
        Some("gzip")
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        Some("tar")
    } else {
        None
    }
}

/// DOCX and XLSX are both zip files; the entries tell them apart. Any other
/// zip is a package of files.
fn sniff_zip(bytes: &[u8]) -> Result<&'static str, ParseError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ParseError::new("corrupt", format!("broken zip container: {e}")))?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    if names.iter().any(|n| n == "word/document.xml") {
        return Ok(DOCX);
    }
    if names.iter().any(|n| n == "xl/workbook.xml") {
        return Ok(XLSX);
    }
    // Some writers only say it in [Content_Types].xml.
    if let Ok(mut entry) = archive.by_name("[Content_Types].xml") {
        let mut text = String::new();
        let _ = entry.by_ref().take(64 * 1024).read_to_string(&mut text);
        if text.contains("wordprocessingml.document.main") {
            return Ok(DOCX);
        }
        if text.contains("spreadsheetml.sheet.main") {
            return Ok(XLSX);
        }
    }
    Ok(ZIP)
}

/// Word and Excel binary files are both OLE compound files; their streams
/// tell them apart.
fn sniff_ole(bytes: &[u8]) -> Result<&'static str, ParseError> {
    let streams = Ole::open(bytes, &ParseLimits::default(), "OLE")?.root_streams();
    let has = |name: &str| streams.iter().any(|s| s.eq_ignore_ascii_case(name));
    if has("WordDocument") {
        return Ok(DOC);
    }
    if has("Workbook") || has("Book") {
        return Ok(XLS);
    }
    if has("EncryptedPackage") {
        return Err(ParseError::new(
            "encrypted",
            "a password-protected (encrypted) DOCX or XLSX",
        ));
    }
    let what = if has("PowerPoint Document") {
        "a PowerPoint 97-2003 file"
    } else if has("CONTENTS") {
        "a Microsoft Works (or other non-Word) file"
    } else {
        "an OLE compound file that is neither a Word nor an Excel file"
    };
    Err(ParseError::new(
        "unsupported_type",
        format!("{what}: save it as DOCX, XLSX or PDF and submit that"),
    ))
}

/// Text has no NUL bytes outside UTF-16; a BOM marks UTF-16.
fn looks_binary(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return false;
    }
    bytes[..bytes.len().min(8192)].contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_without_a_container_signature_is_plain_text() {
        assert_eq!(plain_text("招标公告\n".as_bytes(), "a.txt"), Some(TEXT));
        assert_eq!(plain_text(b"# Tender\n", "a.md"), Some(MARKDOWN));
        assert_eq!(plain_text(b"%PDF-1.7\n", "a.txt"), None);
        assert_eq!(plain_text(b"PK\x03\x04rest", "a.md"), None);
        assert_eq!(plain_text(&ole::MAGIC, "a.txt"), None);
        assert_eq!(plain_text(b"<html><body>x</body></html>", "a.txt"), None);
        assert_eq!(plain_text(b"\x00\x01\x02\x03binary\x00", "a.txt"), None);
        assert_eq!(plain_text(b"", "a.txt"), None);
    }

    #[test]
    fn sniffs_by_bytes_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n", "x.docx").unwrap(), PDF);
        assert_eq!(sniff(b"<!DOCTYPE html><html>", "x.pdf").unwrap(), HTML);
        assert_eq!(sniff("# 招标公告".as_bytes(), "x.md").unwrap(), MARKDOWN);
        assert_eq!(sniff(b"plain", "x.txt").unwrap(), TEXT);
        assert_eq!(
            sniff(b"\x00\x01\x02garbage", "x.txt").unwrap_err().kind,
            "unsupported_type"
        );
        assert_eq!(sniff(b"", "x.txt").unwrap_err().kind, "empty");
        assert_eq!(
            sniff(b"PK\x03\x04broken", "x.docx").unwrap_err().kind,
            "corrupt"
        );
    }

    #[test]
    fn compound_files_are_told_apart_by_their_streams() {
        let file = |name: &str| ole::test_file(&[(name, b"x")]);
        assert_eq!(sniff(&file("WordDocument"), "x.wps").unwrap(), DOC);
        assert_eq!(sniff(&file("Workbook"), "x.et").unwrap(), XLS);
        assert_eq!(sniff(&file("Book"), "x.xls").unwrap(), XLS);
        assert_eq!(
            sniff(&file("EncryptedPackage"), "x.docx").unwrap_err().kind,
            "encrypted"
        );
        assert_eq!(
            sniff(&file("PowerPoint Document"), "x.ppt")
                .unwrap_err()
                .kind,
            "unsupported_type"
        );
        assert_eq!(sniff(&ole::MAGIC, "x.doc").unwrap_err().kind, "corrupt");
    }

    #[test]
    fn a_plain_zip_is_a_package_and_other_archives_are_named() {
        let zip = crate::parse::zipread::test_zip(&[("招标文件.txt", "招标".as_bytes())]);
        assert_eq!(sniff(&zip, "pkg.zip").unwrap(), ZIP);
        let docx = crate::parse::zipread::test_zip(&[("word/document.xml", b"<w/>")]);
        assert_eq!(sniff(&docx, "pkg.zip").unwrap(), DOCX);
        for (bytes, format) in [
            (&b"Rar!\x1A\x07\x00rest"[..], "RAR"),
            (&b"Rar!\x1A\x07\x01\x00rest"[..], "RAR"),
            (&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C, 0, 4][..], "7z"),
            (&[0x1F, 0x8B, 8, 0][..], "gzip"),
        ] {
            let err = sniff(bytes, "pkg.zip").unwrap_err();
            assert_eq!(err.kind, "unsupported_archive");
            assert!(err.message.contains(format), "{}", err.message);
        }
        let mut tar = vec![0u8; 512];
        tar[..9].copy_from_slice(b"file.txt\0");
        tar[257..262].copy_from_slice(b"ustar");
        assert!(sniff(&tar, "x.tar").unwrap_err().message.contains("tar"));
    }
}
