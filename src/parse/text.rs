//! Plain text and Markdown, in whatever encoding they came in.

use encoding_rs::{Encoding, GB18030, UTF_8, UTF_16BE, UTF_16LE};

use super::ParseError;
use crate::document::{Block, ParsedDocument};

/// Decodes text bytes: a BOM wins; then UTF-8 if the bytes are valid UTF-8;
/// then GB18030 (a superset of GBK and GB2312) if it decodes without errors.
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), ParseError> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom_len..]);
        if had_errors {
            return Err(ParseError::new(
                "corrupt",
                format!(
                    "text has a {} byte-order mark but does not decode as it",
                    encoding.name()
                ),
            ));
        }
        return Ok((text.into_owned(), encoding.name()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), UTF_8.name()));
    }
    let (text, had_errors) = GB18030.decode_without_bom_handling(bytes);
    if !had_errors {
        return Ok((text.into_owned(), GB18030.name()));
    }
    let _ = (UTF_16LE, UTF_16BE);
    Err(ParseError::new(
        "unsupported_encoding",
        "text is neither UTF-8, UTF-16 with a byte-order mark, nor GB18030",
    ))
}

/// Plain text: one paragraph per non-empty line.
pub fn parse_text(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let (text, encoding) = decode(bytes)?;
    let blocks = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| Block::Paragraph {
            text: line.to_string(),
            page: None,
        })
        .collect();
    let mut doc = ParsedDocument::new("text", blocks);
    doc.meta.encoding = Some(encoding.to_string());
    Ok(doc)
}

/// Markdown: `#` headings, pipe tables, and one paragraph per other line.
pub fn parse_markdown(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let (text, encoding) = decode(bytes)?;
    let mut blocks = Vec::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('|') {
            if !is_separator_row(line) {
                table.push(split_row(line));
            }
            continue;
        }
        flush_table(&mut table, &mut blocks);
        if line.is_empty() {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            blocks.push(Block::Heading {
                level: level as u8,
                text: line[level..].trim().to_string(),
                number: None,
                page: None,
            });
        } else {
            blocks.push(Block::Paragraph {
                text: line.to_string(),
                page: None,
            });
        }
    }
    flush_table(&mut table, &mut blocks);
    let mut doc = ParsedDocument::new("markdown", blocks);
    doc.meta.encoding = Some(encoding.to_string());
    Ok(doc)
}

fn flush_table(table: &mut Vec<Vec<String>>, blocks: &mut Vec<Block>) {
    if !table.is_empty() {
        blocks.push(Block::Table {
            rows: std::mem::take(table),
            header_rows: 1,
            page: None,
        });
    }
}

fn is_separator_row(line: &str) -> bool {
    line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim_matches('|');
    inner
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_headings_tables_and_paragraphs() {
        let doc = parse_markdown(
            "# 第一章 招标公告\n\n| 条款 | 内容 |\n|---|---|\n| 1.1 | 项目名称 |\n正文".as_bytes(),
        )
        .unwrap();
        assert_eq!(doc.blocks.len(), 3);
        assert!(
            matches!(&doc.blocks[0], Block::Heading { level: 1, text, .. } if text == "第一章 招标公告")
        );
        assert!(
            matches!(&doc.blocks[1], Block::Table { rows, .. } if rows.len() == 2 && rows[1][1] == "项目名称")
        );
    }

    #[test]
    fn gb18030_is_detected() {
        let (bytes, _, _) = GB18030.encode("投标截止时间");
        let (text, encoding) = decode(&bytes).unwrap();
        assert_eq!(text, "投标截止时间");
        assert_eq!(encoding, "gb18030");
    }
}
