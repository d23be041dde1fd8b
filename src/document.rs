//! The parsed document: what the parse stage produces and filter reads.
//!
//! A document is an ordered list of blocks. Each block knows the page it
//! starts on when the format has pages (PDF), so every extracted value can
//! cite where it came from.

use serde::{Deserialize, Serialize};

/// Version of the parsed-document JSON layout.
pub const PARSED_SCHEMA: u32 = 1;

/// A parsed document artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedDocument {
    /// Layout version ([`PARSED_SCHEMA`]).
    pub schema: u32,
    /// Facts about the source file.
    pub meta: DocumentMeta,
    /// The content, in reading order.
    pub blocks: Vec<Block>,
    /// What OCR read, when some pages were scans. A side table rather than
    /// a field on [`Block`], so that every block construction and match
    /// (in parse, filter and extract) stays as it is: a block is OCR'd when
    /// [`OcrReport::blocks`] names its index, and a quote's confidence is
    /// looked up by page and text with [`OcrReport::confidence_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<OcrReport>,
}

/// The OCR side table of a parsed document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrReport {
    /// The engine that read the pages, such as `tesseract 5.3.0 chi_sim+eng`.
    pub engine: String,
    /// Every page that was read by OCR, in page order.
    pub pages: Vec<OcrPage>,
    /// The blocks whose text came from OCR.
    pub blocks: Vec<OcrBlock>,
}

/// One page read by OCR.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrPage {
    /// 1-based page number.
    pub page: u32,
    /// Mean word confidence on the page, 0 to 100.
    pub confidence: f32,
    /// Resolution the page image was read at, in dots per inch.
    pub dpi: u32,
    /// Where the image came from: `image` (the page's own image XObject)
    /// or `render` (the page rendered whole).
    pub source: String,
    /// Degrees the image was turned to level its text before OCR.
    #[serde(default)]
    pub turned: f32,
    /// The words read, in reading order, with their confidences.
    pub words: Vec<OcrWord>,
}

/// One word OCR read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrWord {
    /// The word as read.
    pub text: String,
    /// The engine's confidence in it, 0 to 100.
    pub confidence: f32,
}

/// One block whose text came from OCR.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OcrBlock {
    /// Index into [`ParsedDocument::blocks`].
    pub block: usize,
    /// Always true: the block's text was read by OCR.
    pub ocr: bool,
    /// Lowest word confidence in the block, 0 to 100.
    pub confidence: f32,
}

impl OcrReport {
    /// The OCR confidence of `text` found on `page`: the lowest confidence
    /// of the words it covers. `None` when the page was not OCR'd (or is
    /// unknown and no OCR'd page holds the text). Whitespace and table cell
    /// separators (` | `) are ignored; a text none of whose pieces is found
    /// as read (a quote rebuilt across lines or pages) gets the page's mean
    /// confidence.
    pub fn confidence_of(&self, page: Option<u32>, text: &str) -> Option<f32> {
        self.confidence_of_found(page, text).or_else(|| {
            let n = page?;
            self.pages
                .iter()
                .find(|p| p.page == n)
                .map(|p| p.confidence)
        })
    }

    /// Like [`OcrReport::confidence_of`], but `None` unless some piece of
    /// `text` is found as read.
    pub fn confidence_of_found(&self, page: Option<u32>, text: &str) -> Option<f32> {
        let pieces: Vec<Vec<char>> = text
            .split(" | ")
            .map(|p| {
                p.chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<Vec<char>>()
            })
            .filter(|p| !p.is_empty())
            .collect();
        for p in self
            .pages
            .iter()
            .filter(|p| page.is_none_or(|n| p.page == n))
        {
            let (chars, conf) = p.char_confidences();
            let lowest = pieces
                .iter()
                .filter_map(|piece| {
                    let at = find_chars(&chars, piece)?;
                    Some(
                        conf[at..at + piece.len()]
                            .iter()
                            .copied()
                            .fold(f32::INFINITY, f32::min),
                    )
                })
                .reduce(f32::min);
            if lowest.is_some() {
                return lowest;
            }
        }
        None
    }
}

impl OcrPage {
    /// The page's characters without whitespace, each with the confidence
    /// of the word it belongs to.
    fn char_confidences(&self) -> (Vec<char>, Vec<f32>) {
        let mut chars = Vec::new();
        let mut conf = Vec::new();
        for w in &self.words {
            for c in w.text.chars().filter(|c| !c.is_whitespace()) {
                chars.push(c);
                conf.push(w.confidence);
            }
        }
        (chars, conf)
    }
}

/// Where `needle` first occurs in `haystack`.
fn find_chars(haystack: &[char], needle: &[char]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Facts about the source file that parsing learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocumentMeta {
    /// Source format: `pdf`, `docx`, `xlsx`, `html`, `markdown` or `text`.
    pub format: String,
    /// Number of pages, for paged formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_count: Option<u32>,
    /// Detected text encoding, for text formats (`UTF-8`, `GB18030`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Producing application, where the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// Document title, where the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Running headers and footers (DOCX header/footer parts, repeated PDF
    /// page headers), kept apart from the body so they neither split nor
    /// pad its paragraphs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub furniture: Vec<String>,
}

/// One unit of content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// A heading. `level` 1 is the top; `number` is a clause number found at
    /// its start ("第二章", "3.1", "1.").
    Heading {
        level: u8,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// A paragraph of running text.
    Paragraph {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// A list item; `number` is its rendered marker ("(3)", "8.", "•").
    ListItem {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<String>,
        #[serde(default)]
        level: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// A table as rows of cell texts. The first row is the header when
    /// `header_rows` says so.
    Table {
        rows: Vec<Vec<String>>,
        #[serde(default)]
        header_rows: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
}

impl Block {
    /// The page the block starts on, where known.
    pub fn page(&self) -> Option<u32> {
        match self {
            Block::Heading { page, .. }
            | Block::Paragraph { page, .. }
            | Block::ListItem { page, .. }
            | Block::Table { page, .. } => *page,
        }
    }

    /// The block's text; a table's cells joined by ` | ` and rows by newlines.
    pub fn text(&self) -> String {
        match self {
            Block::Heading { text, .. } | Block::Paragraph { text, .. } => text.clone(),
            Block::ListItem { text, number, .. } => match number {
                Some(n) if !text.starts_with(n.as_str()) => format!("{n} {text}"),
                _ => text.clone(),
            },
            Block::Table { rows, .. } => rows
                .iter()
                .map(|r| r.join(" | "))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl ParsedDocument {
    /// A new document of the given format.
    pub fn new(format: &str, blocks: Vec<Block>) -> Self {
        ParsedDocument {
            schema: PARSED_SCHEMA,
            meta: DocumentMeta {
                format: format.to_string(),
                ..DocumentMeta::default()
            },
            blocks,
            ocr: None,
        }
    }

    /// All text of the document, one block a line (tables one row a line).
    pub fn plain_text(&self) -> String {
        self.blocks
            .iter()
            .map(Block::text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
