//! PDF with a text layer, through `pdf-extract` (fonts, CID maps, ToUnicode)
//! on `lopdf`, with our own layout analysis in [`layout`]; pages without a
//! usable text layer (scans) are read by OCR in [`scan`].
//!
//! pdf-extract reports each glyph with its position and each stroked or
//! filled path; [`Collector`] keeps the glyphs and the straight rules (table
//! borders), and [`layout`] turns them into paragraphs, headings and tables.
//! Loading is bounded before anything recursive runs: page count, object
//! nesting in the raw bytes, and the page tree's depth.

pub mod layout;
#[cfg(test)]
mod lexer_tests;
pub mod scan;

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{ColorSpace, MediaBox, OutputDev, OutputError, Path, PathOp, Transform};

use super::{ParseError, ParseLimits, guard, ocr};
use crate::document::{OcrBlock, OcrReport, ParsedDocument};

/// Stack for the extraction thread: pdf-extract and lopdf recurse over
/// nested objects, so a generous stack turns deep-but-finite nesting into
/// work instead of an abort.
const EXTRACT_STACK: usize = 256 * 1024 * 1024;

/// Fewest visible characters per page for a PDF to count as having a text
/// layer; scans have none, or a few stray characters from stamps.
const MIN_CHARS_PER_PAGE: usize = 8;

/// A glyph placed on a page (top-left origin, y down, in points).
#[derive(Debug, Clone)]
pub struct Glyph {
    /// Left edge.
    pub x: f64,
    /// Baseline.
    pub y: f64,
    /// Advance width.
    pub width: f64,
    /// Font size as drawn.
    pub size: f64,
    /// The Unicode text of the glyph (usually one character).
    pub text: String,
}

/// A straight horizontal or vertical rule: a table border or an underline.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Left or top end.
    pub x0: f64,
    /// Top end.
    pub y0: f64,
    /// Right end.
    pub x1: f64,
    /// Bottom end.
    pub y1: f64,
}

impl Rule {
    /// True when the rule runs left to right.
    pub fn is_horizontal(&self) -> bool {
        (self.y1 - self.y0).abs() <= (self.x1 - self.x0).abs()
    }
}

/// What one page draws.
#[derive(Debug, Default, Clone)]
pub struct Page {
    /// 1-based page number.
    pub number: u32,
    /// Page width in points.
    pub width: f64,
    /// Page height in points.
    pub height: f64,
    /// Glyphs in drawing order.
    pub glyphs: Vec<Glyph>,
    /// Straight rules.
    pub rules: Vec<Rule>,
}

/// Parses PDF bytes.
pub fn parse_pdf(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    check_raw_nesting(bytes, limits.max_object_depth)?;
    let bytes = bytes.to_vec();
    let limits_owned = limits.clone();
    let worker = std::thread::Builder::new()
        .name("pdf-extract".into())
        .stack_size(EXTRACT_STACK)
        .spawn(move || guard("PDF", || extract_pages(&bytes, &limits_owned)))
        .map_err(|e| {
            // Not the file's fault: the process has no room for the stack
            // (under a tight address-space limit, say).
            ParseError::too_large(format!(
                "could not start the PDF parser's thread, with its {} MiB stack: {e}",
                EXTRACT_STACK >> 20
            ))
        })?;
    let (pages, meta) = worker
        .join()
        .unwrap_or_else(|_| Err(ParseError::corrupt("the PDF parser failed on this file")))?;
    if meta.ocr.is_none() {
        check_text_layer(&pages, meta.no_ocr.as_deref())?;
    }
    let mut doc = layout::build_document(&pages);
    doc.meta.page_count = Some(pages.len() as u32);
    doc.meta.title = meta.title;
    doc.meta.producer = meta.producer;
    if let Some(mut report) = meta.ocr {
        if doc.blocks.is_empty() {
            return Err(ParseError::new(
                "empty",
                format!(
                    "OCR read no text on the {} scanned pages of the PDF",
                    report.pages.len()
                ),
            ));
        }
        report.blocks = ocr_blocks(&doc, &report);
        doc.ocr = Some(report);
    }
    Ok(doc)
}

/// The blocks that stand on OCR'd pages, each with the lowest confidence
/// of the words it is made of.
fn ocr_blocks(doc: &ParsedDocument, report: &OcrReport) -> Vec<OcrBlock> {
    doc.blocks
        .iter()
        .enumerate()
        .filter_map(|(i, block)| {
            let page = block.page()?;
            report
                .pages
                .iter()
                .any(|p| p.page == page)
                .then(|| OcrBlock {
                    block: i,
                    ocr: true,
                    confidence: report
                        .confidence_of(Some(page), &block.text())
                        .unwrap_or(0.0),
                })
        })
        .collect()
}

/// Facts from the document information dictionary.
#[derive(Debug, Default)]
struct Info {
    title: Option<String>,
    producer: Option<String>,
    /// What OCR read, when some pages were scans.
    ocr: Option<OcrReport>,
    /// Why scanned pages were not OCR'd.
    no_ocr: Option<String>,
}

/// Loads the document and collects every page's glyphs and rules.
fn extract_pages(bytes: &[u8], limits: &ParseLimits) -> Result<(Vec<Page>, Info), ParseError> {
    let doc = load(bytes)?;
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(ParseError::corrupt("the PDF has no pages"));
    }
    if pages.len() > limits.max_pages as usize {
        return Err(ParseError::too_large(format!(
            "the PDF has {} pages, over the limit of {}",
            pages.len(),
            limits.max_pages
        )));
    }
    check_page_tree(&doc, &pages, limits.max_object_depth)?;
    check_forms(&doc, &pages, limits.max_object_depth)?;
    check_streams(&doc, limits.max_uncompressed_bytes)?;
    let mut info = read_info(&doc);
    let mut collector = Collector::default();
    // Fonts are built once and shared by every page that uses them.
    let mut fonts = pdf_extract::FontCache::new();
    for (number, id) in &pages {
        // A page pdf-extract cannot read (a broken font, a bad content
        // stream) is dropped rather than failing the whole document.
        let result = catch_unwind(AssertUnwindSafe(|| {
            pdf_extract::output_page_cached(&doc, &mut collector, *number, *id, &mut fonts)
        }));
        if !matches!(result, Ok(Ok(()))) {
            collector.abandon_page(*number);
        }
    }
    let scanned: Vec<(u32, pdf_extract::ObjectId)> = collector
        .pages
        .iter()
        .filter(|p| !has_usable_text(p))
        .filter_map(|p| pages.get(&p.number).map(|id| (p.number, *id)))
        .filter(|(_, id)| draws_anything(&doc, *id))
        .collect();
    if collector.pages.iter().all(|p| p.glyphs.is_empty())
        && collector.failed == pages.len()
        && scanned.is_empty()
    {
        return Err(ParseError::corrupt("no page of the PDF could be read"));
    }
    if !scanned.is_empty() {
        match ocr::engine(&limits.tesseract) {
            Ok(engine) => {
                let report =
                    scan::ocr_pages(&doc, bytes, &scanned, &mut collector.pages, &engine, limits)?;
                info.ocr = Some(report);
            }
            Err(why) => info.no_ocr = Some(why),
        }
    }
    Ok((collector.pages, info))
}

/// Whether a page's text layer is worth reading: enough visible
/// characters, most of them letters, digits or punctuation rather than
/// the replacement and private-use codes an unmapped scanner font gives.
fn has_usable_text(page: &Page) -> bool {
    let visible: Vec<char> = page
        .glyphs
        .iter()
        .flat_map(|g| g.text.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let usable = visible
        .iter()
        .filter(|c| {
            (c.is_alphanumeric() || c.is_ascii_punctuation() || is_cjk_punctuation(**c))
                && !('\u{E000}'..='\u{F8FF}').contains(*c)
        })
        .count();
    usable >= MIN_CHARS_PER_PAGE && usable * 2 >= visible.len()
}

fn is_cjk_punctuation(c: char) -> bool {
    ('\u{3000}'..='\u{303F}').contains(&c) || ('\u{FF00}'..='\u{FFEF}').contains(&c)
}

/// Whether a page's content draws an image, a form or paths: a page that
/// draws nothing is blank, not a scan.
fn draws_anything(doc: &pdf_extract::Document, id: pdf_extract::ObjectId) -> bool {
    let Ok(content) = doc.get_page_content(id) else {
        return false;
    };
    let Ok(ops) = pdf_extract::lexer::decode(&content) else {
        // Undecodable content may still render: let rendering decide.
        return !content.is_empty();
    };
    ops.iter()
        .any(|o| matches!(o.operator, "Do" | "BI" | "f" | "F" | "f*" | "B" | "b"))
}

/// Loads with lopdf, which opens an encrypted file with the empty user
/// password when it can (owner-password-only files, common for "no
/// copying" restrictions); one it cannot open is an `encrypted` error.
fn load(bytes: &[u8]) -> Result<pdf_extract::Document, ParseError> {
    let doc = pdf_extract::Document::load_mem(bytes).map_err(|e| {
        let text = e.to_string();
        if text.to_lowercase().contains("decrypt") || text.to_lowercase().contains("password") {
            encrypted_error()
        } else {
            ParseError::corrupt(format!("unreadable PDF: {text}"))
        }
    })?;
    if doc.trailer.get(b"Encrypt").is_ok() && !doc.was_encrypted() {
        return Err(encrypted_error());
    }
    Ok(doc)
}

fn encrypted_error() -> ParseError {
    ParseError::new(
        "encrypted",
        "the PDF is encrypted with a password: submit an unprotected copy",
    )
}

/// Title and producer from the trailer's Info dictionary.
fn read_info(doc: &pdf_extract::Document) -> Info {
    let text_of = |key: &[u8]| -> Option<String> {
        let info = doc.trailer.get(b"Info").ok()?;
        let info = match info {
            pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
            pdf_extract::Object::Dictionary(d) => d,
            _ => return None,
        };
        let value = info.get(key).ok()?.as_str().ok()?;
        let text =
            pdf_extract::decode_text_string(&pdf_extract::Object::string_literal(value)).ok()?;
        let text = text.trim().to_string();
        (!text.is_empty()).then_some(text)
    };
    Info {
        title: text_of(b"Title"),
        producer: text_of(b"Producer"),
        ..Info::default()
    }
}

/// Refuses page trees whose Parent chains are cyclic or deeper than the
/// limit: pdf-extract follows them recursively to inherit resources.
fn check_page_tree(
    doc: &pdf_extract::Document,
    pages: &std::collections::BTreeMap<u32, pdf_extract::ObjectId>,
    max_depth: usize,
) -> Result<(), ParseError> {
    for id in pages.values() {
        let mut current = *id;
        for depth in 0.. {
            if depth > max_depth {
                return Err(ParseError::corrupt(format!(
                    "the PDF page tree is cyclic or deeper than {max_depth} levels"
                )));
            }
            let Ok(dict) = doc.get_dictionary(current) else {
                break;
            };
            match dict
                .get(b"Parent")
                .and_then(pdf_extract::Object::as_reference)
            {
                Ok(parent) => current = parent,
                Err(_) => break,
            }
        }
    }
    Ok(())
}

/// Refuses a PDF with a Flate stream that inflates past `limit` bytes: lopdf
/// inflates a stream whole into memory when pdf-extract asks for it, so a
/// small bomb would take gigabytes. Each stream is inflated here into
/// nothing, through a bounded reader, before extraction.
fn check_streams(doc: &pdf_extract::Document, limit: u64) -> Result<(), ParseError> {
    for object in doc.objects.values() {
        let Ok(stream) = object.as_stream() else {
            continue;
        };
        if is_flate(&stream.dict) && inflated_size(&stream.content, limit) > limit {
            return Err(ParseError::too_large(format!(
                "a compressed stream in the PDF inflates past {limit} bytes (a decompression bomb?)"
            )));
        }
    }
    Ok(())
}

/// Whether the stream's filters include FlateDecode.
fn is_flate(dict: &pdf_extract::Dictionary) -> bool {
    match dict.get(b"Filter") {
        Ok(pdf_extract::Object::Name(name)) => name == b"FlateDecode",
        Ok(pdf_extract::Object::Array(filters)) => filters
            .iter()
            .any(|f| matches!(f, pdf_extract::Object::Name(n) if n == b"FlateDecode")),
        _ => false,
    }
}

/// Bytes `data` inflates to, counted up to just past `cap`; corrupt data
/// counts what inflated before the error.
fn inflated_size(data: &[u8], cap: u64) -> u64 {
    use std::io::Read;
    let mut reader = flate2::read::ZlibDecoder::new(data).take(cap + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}

/// Most form-XObject invocations one page may make, counting repeats: a
/// small file can nest forms that each call the next twice.
const MAX_FORM_CALLS: u64 = 10_000;

/// Refuses pages whose form XObjects call each other in a cycle, nest
/// deeper than the limit, or multiply into too many calls: pdf-extract
/// follows `Do` recursively, and a cycle would exhaust any stack.
fn check_forms(
    doc: &pdf_extract::Document,
    pages: &std::collections::BTreeMap<u32, pdf_extract::ObjectId>,
    max_depth: usize,
) -> Result<(), ParseError> {
    for id in pages.values() {
        let (direct, ids) = doc.get_page_resources(*id).unwrap_or((None, Vec::new()));
        let mut resources: Vec<&pdf_extract::Dictionary> = direct.into_iter().collect();
        resources.extend(ids.iter().filter_map(|r| doc.get_dictionary(*r).ok()));
        let mut walk = FormWalk {
            doc,
            path: Vec::new(),
            calls: 0,
            max_depth,
        };
        // Most pages use no forms: skip decoding their content twice.
        if !resources.iter().any(|r| walk.has_form(r)) {
            continue;
        }
        let content = doc.get_page_content(*id).unwrap_or_default();
        walk.content(&content, &resources)?;
    }
    Ok(())
}

/// State of one page's form-XObject walk.
struct FormWalk<'a> {
    doc: &'a pdf_extract::Document,
    path: Vec<pdf_extract::ObjectId>,
    calls: u64,
    max_depth: usize,
}

impl<'a> FormWalk<'a> {
    fn content(
        &mut self,
        content: &[u8],
        resources: &[&'a pdf_extract::Dictionary],
    ) -> Result<(), ParseError> {
        let Ok(ops) = pdf_extract::lexer::decode(content) else {
            return Ok(());
        };
        for op in ops.iter().filter(|o| o.operator == "Do") {
            let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) else {
                continue;
            };
            if let Some(id) = resources.iter().find_map(|r| self.xobject(r, name)) {
                self.form(id, resources)?;
            }
        }
        Ok(())
    }

    fn form(
        &mut self,
        id: pdf_extract::ObjectId,
        resources: &[&'a pdf_extract::Dictionary],
    ) -> Result<(), ParseError> {
        let Ok(stream) = self
            .doc
            .get_object(id)
            .and_then(pdf_extract::Object::as_stream)
        else {
            return Ok(());
        };
        if !matches!(
            stream
                .dict
                .get(b"Subtype")
                .and_then(pdf_extract::Object::as_name),
            Ok(b"Form")
        ) {
            return Ok(());
        }
        self.calls += 1;
        if self.path.contains(&id) || self.path.len() >= self.max_depth {
            return Err(ParseError::corrupt(
                "the PDF's form XObjects call each other in a cycle or nest too deep",
            ));
        }
        if self.calls > MAX_FORM_CALLS {
            return Err(ParseError::too_large(format!(
                "a PDF page invokes form XObjects more than {MAX_FORM_CALLS} times"
            )));
        }
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| self.dictionary(r));
        let inner: Vec<&'a pdf_extract::Dictionary> = match own {
            Some(d) => vec![d],
            None => resources.to_vec(),
        };
        let body = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        self.path.push(id);
        let result = self.content(&body, &inner);
        self.path.pop();
        result
    }

    /// Whether a resource dictionary names any form XObject.
    fn has_form(&self, resources: &'a pdf_extract::Dictionary) -> bool {
        let Some(xobjects) = resources
            .get(b"XObject")
            .ok()
            .and_then(|x| self.dictionary(x))
        else {
            return false;
        };
        xobjects.iter().any(|(_, v)| {
            v.as_reference()
                .ok()
                .and_then(|id| self.doc.get_object(id).ok())
                .and_then(|o| o.as_stream().ok())
                .is_some_and(|st| {
                    matches!(
                        st.dict
                            .get(b"Subtype")
                            .and_then(pdf_extract::Object::as_name),
                        Ok(b"Form")
                    )
                })
        })
    }

    fn dictionary(&self, object: &'a pdf_extract::Object) -> Option<&'a pdf_extract::Dictionary> {
        match object {
            pdf_extract::Object::Dictionary(d) => Some(d),
            pdf_extract::Object::Reference(id) => self.doc.get_dictionary(*id).ok(),
            _ => None,
        }
    }

    fn xobject(
        &self,
        resources: &'a pdf_extract::Dictionary,
        name: &[u8],
    ) -> Option<pdf_extract::ObjectId> {
        let xobjects = self.dictionary(resources.get(b"XObject").ok()?)?;
        xobjects.get(name).ok()?.as_reference().ok()
    }
}

/// Refuses arrays and dictionaries nested deeper than `max_depth` in the
/// raw bytes (outside strings and streams): the parser recurses on them.
fn check_raw_nesting(bytes: &[u8], max_depth: usize) -> Result<(), ParseError> {
    let mut depth: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => i = skip_until_eol(bytes, i),
            b'(' => i = skip_string(bytes, i),
            b's' if bytes[i..].starts_with(b"stream") && !bytes[i..].starts_with(b"streamend") => {
                i = find(bytes, i + 6, b"endstream").unwrap_or(bytes.len());
            }
            b'[' => depth += 1,
            b'<' if bytes.get(i + 1) == Some(&b'<') => {
                depth += 1;
                i += 1;
            }
            b']' => depth = depth.saturating_sub(1),
            b'>' if bytes.get(i + 1) == Some(&b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => {}
        }
        if depth > max_depth {
            return Err(ParseError::corrupt(format!(
                "PDF objects nested deeper than {max_depth} levels"
            )));
        }
        i += 1;
    }
    Ok(())
}

fn skip_until_eol(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .map_or(bytes.len(), |p| i + p)
}

/// Skips a literal string with balanced parentheses and escapes.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// A PDF whose pages draw (almost) no text is a scan: without OCR
/// (`no_ocr` says why it is not available) it cannot be read.
fn check_text_layer(pages: &[Page], no_ocr: Option<&str>) -> Result<(), ParseError> {
    let visible: usize = pages
        .iter()
        .flat_map(|p| &p.glyphs)
        .filter(|g| g.text.chars().any(|c| !c.is_whitespace()))
        .count();
    if visible < MIN_CHARS_PER_PAGE * pages.len().max(1) / 4 + 1 {
        return Err(ParseError::new(
            "needs_ocr",
            format!(
                "the PDF has no text layer ({visible} characters on {} pages): it looks scanned \
                 and needs OCR, which is not available here ({}); install tesseract-ocr with \
                 its chi-sim and eng data, or submit a PDF with text or a DOCX",
                pages.len(),
                no_ocr.unwrap_or("the pages draw nothing OCR could read")
            ),
        ));
    }
    Ok(())
}

/// A glyph's text, with the private-use codes of symbol fonts (Wingdings,
/// Wingdings 2, Symbol) that office suites draw checkboxes, ticks and
/// bullets with, and give no Unicode for, mapped to the characters they
/// show: "☑ 适用" and "□ 不适用" must stay tellable apart.
fn symbol_text(text: &str) -> String {
    let mapped = |c: char| match c as u32 {
        0xF0A3 | 0xF0A8 | 0xF06F | 0xF071 => '□', // Wingdings 2 / Wingdings boxes
        0xF052 | 0xF0FE => '☑',                   // boxes with a tick
        0xF053 | 0xF054 | 0xF0FD => '☒',          // boxes with a cross
        0xF050 | 0xF0FC => '√',                   // ticks
        0xF06E | 0xF0A7 => '■',                   // filled squares
        0xF06C => '●',
        0xF0B7 => '•', // the Symbol font's bullet
        0xF0D8 => '➢',
        0xF075 => '◆',
        _ => c,
    };
    if text.chars().any(|c| ('\u{F000}'..='\u{F0FF}').contains(&c)) {
        text.chars().map(mapped).collect()
    } else {
        text.to_string()
    }
}

/// Receives pdf-extract's drawing calls.
#[derive(Default)]
struct Collector {
    pages: Vec<Page>,
    flip: Option<Transform>,
    failed: usize,
}

impl Collector {
    fn page(&mut self) -> Option<&mut Page> {
        self.pages.last_mut()
    }

    /// Keeps a page that failed half-way as empty, so numbering holds.
    fn abandon_page(&mut self, number: u32) {
        self.failed += 1;
        match self.pages.last_mut() {
            Some(p) if p.number == number => {
                p.glyphs.clear();
                p.rules.clear();
            }
            _ => self.pages.push(Page {
                number,
                ..Page::default()
            }),
        }
    }

    /// Adds the straight segments of a path, in page coordinates.
    fn add_rules(&mut self, ctm: &Transform, path: &Path) {
        let Some(flip) = self.flip else { return };
        let m = ctm.post_transform(&flip);
        let to_page =
            |x: f64, y: f64| (x * m.m11 + y * m.m21 + m.m31, x * m.m12 + y * m.m22 + m.m32);
        let mut rules = Vec::new();
        let mut last = None;
        let mut first = None;
        for op in &path.ops {
            match *op {
                PathOp::MoveTo(x, y) => {
                    last = Some(to_page(x, y));
                    first = last;
                }
                PathOp::LineTo(x, y) => {
                    let p = to_page(x, y);
                    if let Some(l) = last {
                        rules.extend(straight(l, p));
                    }
                    last = Some(p);
                }
                PathOp::Rect(x, y, w, h) => {
                    let a = to_page(x, y);
                    let b = to_page(x + w, y + h);
                    rules.extend(rect_rules(a, b));
                }
                PathOp::CurveTo(.., x, y) => last = Some(to_page(x, y)),
                PathOp::Close => {
                    if let (Some(l), Some(f)) = (last, first) {
                        rules.extend(straight(l, f));
                    }
                    last = first;
                }
            }
        }
        if let Some(page) = self.page() {
            page.rules.extend(rules);
        }
    }
}

/// A segment as a rule when it is horizontal or vertical.
fn straight(a: (f64, f64), b: (f64, f64)) -> Option<Rule> {
    let (dx, dy) = ((b.0 - a.0).abs(), (b.1 - a.1).abs());
    if (dy < 0.5 && dx > 1.0) || (dx < 0.5 && dy > 1.0) {
        Some(Rule {
            x0: a.0.min(b.0),
            y0: a.1.min(b.1),
            x1: a.0.max(b.0),
            y1: a.1.max(b.1),
        })
    } else {
        None
    }
}

/// A thin rectangle is a rule; a larger one contributes its four edges
/// (cell borders are often drawn as rectangles).
fn rect_rules(a: (f64, f64), b: (f64, f64)) -> Vec<Rule> {
    let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
    let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
    if y1 - y0 < 2.5 && x1 - x0 > 1.0 {
        let y = (y0 + y1) / 2.0;
        return vec![Rule {
            x0,
            y0: y,
            x1,
            y1: y,
        }];
    }
    if x1 - x0 < 2.5 && y1 - y0 > 1.0 {
        let x = (x0 + x1) / 2.0;
        return vec![Rule {
            x0: x,
            y0,
            x1: x,
            y1,
        }];
    }
    vec![
        Rule { x0, y0, x1, y1: y0 },
        Rule { x0, y0: y1, x1, y1 },
        Rule { x0, y0, x1: x0, y1 },
        Rule { x0: x1, y0, x1, y1 },
    ]
}

impl OutputDev for Collector {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        let height = media_box.ury - media_box.lly;
        self.flip = Some(Transform::row_major(
            1.0,
            0.0,
            0.0,
            -1.0,
            -media_box.llx,
            media_box.ury,
        ));
        self.pages.push(Page {
            number: page_num,
            width: media_box.urx - media_box.llx,
            height,
            ..Page::default()
        });
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        text: &str,
    ) -> Result<(), OutputError> {
        let Some(flip) = self.flip else {
            return Ok(());
        };
        let position = trm.post_transform(&flip);
        // The side of the square with the area of the drawn em box.
        let sx = font_size * (trm.m11 + trm.m21);
        let sy = font_size * (trm.m12 + trm.m22);
        let size = (sx * sy).abs().sqrt();
        if !size.is_finite() || !position.m31.is_finite() || !position.m32.is_finite() {
            return Ok(());
        }
        if let Some(page) = self.page() {
            page.glyphs.push(Glyph {
                x: position.m31,
                y: position.m32,
                width: width * size,
                size,
                text: symbol_text(text),
            });
        }
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn stroke(
        &mut self,
        ctm: &Transform,
        _colorspace: &ColorSpace,
        _color: &[f64],
        path: &Path,
    ) -> Result<(), OutputError> {
        self.add_rules(ctm, path);
        Ok(())
    }

    fn fill(
        &mut self,
        ctm: &Transform,
        _colorspace: &ColorSpace,
        _color: &[f64],
        path: &Path,
    ) -> Result<(), OutputError> {
        self.add_rules(ctm, path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::symbol_text;
    use crate::parse::{ParseLimits, parse};
    use lopdf::{Document, Object, Stream, dictionary};

    /// A simple font whose codes 0x41..0x48 map, through its ToUnicode
    /// CMap, to the eight characters from `first` (a UTF-16 code unit).
    fn font(doc: &mut Document, first: u16) -> lopdf::ObjectId {
        let cmap = format!(
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
             1 begincodespacerange <00> <FF> endcodespacerange\n\
             1 beginbfrange <41> <48> <{first:04X}> endbfrange\n\
             endcmap CMapName currentdict /CMap defineresource pop end end"
        );
        let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.into_bytes()));
        doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "TrueType",
            "BaseFont" => "Test",
            "FirstChar" => 0x41,
            "LastChar" => 0x48,
            "Widths" => vec![Object::Integer(500); 8],
            "ToUnicode" => to_unicode,
        })
    }

    /// A PDF whose pages each name their font `/F1`: page i+1's font maps
    /// its codes from `firsts[i]`, or all pages share the first font. Every
    /// other page shows its codes backwards, so that no two pages look
    /// alike (the layout drops text repeated on every page as furniture).
    fn pdf_with_pages(firsts: &[u16], shared: bool) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let shared_font = font(&mut doc, firsts[0]);
        let mut kids = Vec::new();
        for (i, first) in firsts.iter().enumerate() {
            let font_id = if shared {
                shared_font
            } else {
                font(&mut doc, *first)
            };
            let codes = if i % 2 == 0 { "ABCDEFGH" } else { "HGFEDCBA" };
            let content = format!("BT /F1 12 Tf 72 700 Td ({codes}) Tj ET").into_bytes();
            let content_id = doc.add_object(Stream::new(dictionary! {}, content));
            let page = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
                "Contents" => content_id,
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            });
            kids.push(Object::Reference(page));
        }
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("a PDF");
        bytes
    }

    /// The document's text (the layout joins the one-line pages into a
    /// paragraph across the page breaks).
    fn text(bytes: &[u8]) -> String {
        let doc = parse(bytes, "application/pdf", &ParseLimits::default()).expect("parses");
        doc.plain_text()
    }

    #[test]
    fn one_resource_name_for_other_fonts_on_other_pages_keeps_each_font() {
        // Fonts are kept from page to page: /F1 must still mean each
        // page's own font, not the first page's.
        let bytes = pdf_with_pages(&[0x41, 0x61, 0x3B1], false);
        assert_eq!(text(&bytes), "ABCDEFGH hgfedcba αβγδεζηθ");
    }

    #[test]
    fn a_font_shared_by_pages_decodes_the_same_on_each() {
        let bytes = pdf_with_pages(&[0x61, 0x61], true);
        assert_eq!(text(&bytes), "abcdefgh hgfedcba");
    }

    #[test]
    fn symbol_font_checkboxes_become_their_characters() {
        assert_eq!(symbol_text("\u{F0A3}"), "□");
        assert_eq!(symbol_text("\u{F052}"), "☑");
        assert_eq!(symbol_text("\u{F0B7}"), "•");
        assert_eq!(symbol_text("招标"), "招标");
    }
}
