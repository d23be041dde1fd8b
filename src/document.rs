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
