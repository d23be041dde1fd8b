//! Plain text and Markdown, in whatever encoding they came in.
//!
//! Both go through one line parser: a `.txt` export of a tender is often
//! Markdown in all but name (`#` headings, pipe tables), and a real plain
//! text keeps its Chinese chapter headings (第一章 ...) as headings.

use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
use encoding_rs::{Encoding, GB18030, GBK, UTF_8, UTF_16BE, UTF_16LE};

use super::ParseError;
use super::textutil::{chapter_heading_level, clause_number};
use crate::document::{Block, ParsedDocument};

/// Bytes fed to the encoding detector.
const DETECT_SAMPLE: usize = 32 * 1024;

/// Share of replacement characters above which a guessed encoding is judged
/// wrong rather than the text slightly damaged.
const MAX_BAD_SHARE: f64 = 0.01;

/// Decodes text bytes and names the encoding: a byte-order mark wins; then
/// UTF-16 without a mark, told by its zero bytes; then valid UTF-8; then the
/// guess of `chardetng` (GBK is read as its superset GB18030, Big5, ...).
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), ParseError> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        return decode_as(&bytes[bom_len..], encoding);
    }
    if let Some(encoding) = bomless_utf16(bytes) {
        return decode_as(bytes, encoding);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok((text.to_string(), UTF_8.name()));
    }
    // A prefix tells the encoding as well as the whole and keeps detection
    // cheap on long texts; the full decode below still checks the guess.
    let sample = &bytes[..bytes.len().min(DETECT_SAMPLE)];
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(sample, sample.len() == bytes.len());
    let guess = detector.guess(None, Utf8Detection::Deny);
    let encoding = if guess == GBK { GB18030 } else { guess };
    decode_as(bytes, encoding)
}

/// Decodes with `encoding`, failing when too much of the text is lost.
fn decode_as(
    bytes: &[u8],
    encoding: &'static Encoding,
) -> Result<(String, &'static str), ParseError> {
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    let bad = text.chars().filter(|c| *c == '\u{FFFD}').count();
    let total = text.chars().count().max(1);
    if bad as f64 / total as f64 > MAX_BAD_SHARE {
        return Err(ParseError::new(
            "unsupported_encoding",
            format!(
                "text does not decode as {} (the best guess); save it as UTF-8",
                encoding.name()
            ),
        ));
    }
    Ok((text.into_owned(), encoding.name()))
}

/// UTF-16 without a byte-order mark: most ASCII-range characters leave a
/// zero byte at every other position.
fn bomless_utf16(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let even_zero = sample.iter().step_by(2).filter(|b| **b == 0).count();
    let odd_zero = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|b| **b == 0)
        .count();
    if odd_zero * 3 > pairs && even_zero * 10 < pairs {
        Some(UTF_16LE)
    } else if even_zero * 3 > pairs && odd_zero * 10 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Plain text: paragraphs one a line; Markdown structure and Chinese chapter
/// headings where the text has them.
pub fn parse_text(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let (text, encoding) = decode(bytes)?;
    let mut doc = ParsedDocument::new("text", parse_lines(&text));
    doc.meta.encoding = Some(encoding.to_string());
    Ok(doc)
}

/// Markdown: `#` headings, pipe tables, list items, and a paragraph per
/// other line (tender exports put one paragraph on each line).
pub fn parse_markdown(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let (text, encoding) = decode(bytes)?;
    let mut doc = ParsedDocument::new("markdown", parse_lines(&text));
    doc.meta.encoding = Some(encoding.to_string());
    Ok(doc)
}

/// The shared line parser.
fn parse_lines(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let run = lines[i..].iter().take_while(|l| l.starts_with('|')).count();
        if run > 0 && lines[i..i + run].iter().any(|l| is_separator_row(l)) {
            // A pipe table: a run of `|` lines with a `|---|` separator row,
            // so a stray `|` line stays text.
            let rows = lines[i..i + run]
                .iter()
                .filter(|l| !is_separator_row(l))
                .map(|l| split_row(l))
                .collect();
            blocks.push(Block::Table {
                rows,
                header_rows: 1,
                page: None,
            });
            i += run;
            continue;
        }
        if !lines[i].is_empty() {
            blocks.push(line_block(lines[i]));
        }
        i += 1;
    }
    blocks
}

/// One non-table line as a heading, list item or paragraph.
fn line_block(line: &str) -> Block {
    if let Some((level, heading)) = atx_heading(line) {
        return heading_block(level, heading);
    }
    if let Some(level) = chapter_heading_level(line) {
        return heading_block(level, line);
    }
    if let Some(item) = line
        .strip_prefix("- ")
        .or_else(|| line.strip_prefix("* "))
        .or_else(|| line.strip_prefix("+ "))
    {
        return Block::ListItem {
            text: item.trim().to_string(),
            number: Some("•".to_string()),
            level: 0,
            page: None,
        };
    }
    Block::Paragraph {
        text: line.to_string(),
        page: None,
    }
}

/// A heading block with its clause number filled in.
fn heading_block(level: u8, text: &str) -> Block {
    Block::Heading {
        level,
        text: text.to_string(),
        number: clause_number(text),
        page: None,
    }
}

/// `## Title` → (2, "Title").
fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    let rest = &line[level..];
    if (1..=6).contains(&level) && rest.starts_with(' ') {
        Some((level as u8, rest.trim().trim_end_matches('#').trim_end()))
    } else {
        None
    }
}

fn is_separator_row(line: &str) -> bool {
    line.contains('-') && line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// Splits a pipe row into cells; `\|` is a literal bar inside a cell.
fn split_row(line: &str) -> Vec<String> {
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap_or(&mut String::new()).push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            _ => {
                if let Some(cell) = cells.last_mut() {
                    cell.push(c);
                }
            }
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
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
            matches!(&doc.blocks[0], Block::Heading { level: 1, text, number: Some(n), .. } if text == "第一章 招标公告" && n == "第一章")
        );
        assert!(
            matches!(&doc.blocks[1], Block::Table { rows, .. } if rows.len() == 2 && rows[1][1] == "项目名称")
        );
    }

    #[test]
    fn a_bar_line_without_separator_stays_text() {
        let doc = parse_text("| 注：单位为万元\n正文".as_bytes()).unwrap();
        assert!(matches!(&doc.blocks[0], Block::Paragraph { .. }));
    }

    #[test]
    fn plain_text_chapters_become_headings() {
        let doc = parse_text("第三章 评标办法\n评标采用综合评估法。".as_bytes()).unwrap();
        assert!(matches!(&doc.blocks[0], Block::Heading { level: 1, .. }));
        assert!(matches!(&doc.blocks[1], Block::Paragraph { .. }));
    }

    #[test]
    fn gb18030_is_detected() {
        let (bytes, _, _) =
            GB18030.encode("投标截止时间为2026年11月3日9时30分，地点为临江市公共资源交易中心。");
        let (text, encoding) = decode(&bytes).unwrap();
        assert!(text.starts_with("投标截止时间"));
        assert_eq!(encoding, "gb18030");
    }

    #[test]
    fn big5_is_detected() {
        let (bytes, _, _) = encoding_rs::BIG5
            .encode("投標截止時間為二〇二六年十一月三日，地點為公共資源交易中心第三開標室。");
        let (text, encoding) = decode(&bytes).unwrap();
        assert!(text.starts_with("投標截止時間"));
        assert_eq!(encoding, "Big5");
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let body: Vec<u8> = "Tender closing date 14 August 2029"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut with_bom = vec![0xFF, 0xFE];
        with_bom.extend_from_slice(&body);
        assert_eq!(decode(&with_bom).unwrap().1, "UTF-16LE");
        assert_eq!(decode(&body).unwrap().1, "UTF-16LE");
        assert!(decode(&body).unwrap().0.starts_with("Tender closing"));
    }

    #[test]
    fn escaped_bars_stay_in_cells() {
        assert_eq!(split_row(r"| a \| b | c |"), vec!["a | b", "c"]);
    }
}
