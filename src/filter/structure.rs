//! Recovers a document's outline when the parser could not: headings
//! written as plain lines ("第四章 合同条款及格式", "SECTION 4 CONDITIONS OF
//! CONTRACT", Markdown `#` lines in a .txt export) and pipe tables in text.
//! Then splits the document into sections, one per heading.

use std::sync::LazyLock;

use regex::Regex;

use crate::document::Block;

static CN_CHAPTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^第[一二三四五六七八九十百零〇\d]+\s*[章篇卷部分]").expect("chapter regex")
});
static CN_SECTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^第[一二三四五六七八九十\d]+\s*节").expect("section regex"));
static EN_SECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i:SECTION|PART|CHAPTER|VOLUME)\s+[\dIVXivx]+[.:]?\s+\S").expect("en regex")
});
static TOC_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\t|…{2,}|\.{4,}|·{4,})\s*\d{1,4}\s*$").expect("toc regex"));
static DATA_SHEET_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)前附表$|^bid\s+data\s+sheet$|^tender\s+data\s+sheet$")
        .expect("data sheet title")
});
static MD_HEADING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(#{1,6})\s+(.+)$").expect("md regex"));

/// A section: its heading path and blocks.
#[derive(Debug, Clone)]
pub struct Section {
    /// Headings from the outermost to this section's own.
    pub path: Vec<String>,
    /// The section's blocks, its heading first when it has one.
    pub blocks: Vec<Block>,
}

/// Whether a line is a table-of-contents entry ("二、资格条件\t2",
/// "第三章 评标办法……12"): it names a section and its page, and states no
/// value.
pub fn is_toc_line(text: &str) -> bool {
    TOC_LINE.is_match(text)
}

/// The heading level a plain line would have, if it reads as a heading.
fn heading_level(text: &str) -> Option<u8> {
    let t = text.trim();
    if t.is_empty() || is_toc_line(t) {
        return None;
    }
    let chars = t.chars().count();
    let sentence_end = t.ends_with(['。', '；', ';', '，', ',', '：', ':']);
    if CN_CHAPTER.is_match(t) && chars <= 40 && !t.contains('。') && !sentence_end {
        return Some(1);
    }
    if CN_SECTION.is_match(t) && chars <= 40 && !t.contains('。') && !sentence_end {
        return Some(2);
    }
    if EN_SECTION.is_match(t) && chars <= 90 && !t.ends_with('.') {
        return Some(1);
    }
    if is_caps_title(t) {
        return Some(2);
    }
    if chars <= 24 && DATA_SHEET_TITLE.is_match(t) && !sentence_end {
        return Some(2);
    }
    None
}

/// An all-capitals English line of a few words: a heading in most ITTs.
fn is_caps_title(t: &str) -> bool {
    let letters: Vec<char> = t.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() >= 8
        && t.chars().count() <= 90
        && t.split_whitespace().count() >= 2
        && letters.iter().all(|c| c.is_ascii_uppercase())
        && !t.ends_with(['.', ';', ':', ','])
}

/// Rewrites blocks so that heading lines are headings and pipe-table lines
/// are tables. Blocks the parser already typed are left alone, except that a
/// chapter heading ("第三章 ...") is always level 1.
pub fn restructure(blocks: &[Block]) -> Vec<Block> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut table_page = None;
    for block in blocks {
        if let Block::Paragraph { text, page } = block {
            let t = text.trim();
            if t.starts_with('|') && t.ends_with('|') && t.len() > 2 {
                if is_separator_row(t) {
                    // A separator under a row makes that row the header of
                    // a new table, even when no blank line came between.
                    if rows.len() > 1 {
                        let header = rows.pop().expect("a row");
                        flush_rows(&mut rows, table_page, &mut out);
                        table_page = *page;
                        rows.push(header);
                    }
                    continue;
                }
                let row = split_row(t);
                if rows.last().is_some_and(|r| r.len() != row.len()) {
                    flush_rows(&mut rows, table_page, &mut out);
                }
                if rows.is_empty() {
                    table_page = *page;
                }
                rows.push(row);
                continue;
            }
        }
        if let Block::Paragraph { text, page } = block
            && let Some(row) = tab_row(text)
        {
            if rows.last().is_some_and(|r| r.len() != row.len()) {
                flush_rows(&mut rows, table_page, &mut out);
            }
            if rows.is_empty() {
                table_page = *page;
            }
            rows.push(row);
            continue;
        }
        flush_rows(&mut rows, table_page, &mut out);
        out.push(retype(block));
    }
    flush_rows(&mut rows, table_page, &mut out);
    out
}

fn retype(block: &Block) -> Block {
    match block {
        // Extraction reads list markers ("1）", "(a)") as part of the text,
        // wherever the parser put them.
        Block::ListItem { page, .. } => Block::Paragraph {
            text: block.text(),
            page: *page,
        },
        Block::Heading {
            level,
            text,
            number: Some(n),
            page,
        } if !text.trim_start().starts_with(n.as_str()) => Block::Heading {
            level: *level,
            text: format!("{n} {text}"),
            number: Some(n.clone()),
            page: *page,
        },
        Block::Paragraph { text, page } => {
            if let Some(c) = MD_HEADING.captures(text.trim()) {
                return Block::Heading {
                    level: c[1].len() as u8,
                    text: c[2].trim().to_string(),
                    number: None,
                    page: *page,
                };
            }
            match heading_level(text) {
                Some(level) => Block::Heading {
                    level,
                    text: text.trim().to_string(),
                    number: None,
                    page: *page,
                },
                None => block.clone(),
            }
        }
        Block::Heading {
            text,
            number,
            page,
            level,
        } if CN_CHAPTER.is_match(text.trim()) || EN_SECTION.is_match(text.trim()) => {
            Block::Heading {
                level: (*level).min(1),
                text: text.clone(),
                number: number.clone(),
                page: *page,
            }
        }
        _ => block.clone(),
    }
}

fn flush_rows(rows: &mut Vec<Vec<String>>, page: Option<u32>, out: &mut Vec<Block>) {
    if !rows.is_empty() {
        out.push(Block::Table {
            rows: std::mem::take(rows),
            header_rows: 1,
            page,
        });
    }
}

/// A tab-separated line, as a Word table reads when saved as text.
fn tab_row(text: &str) -> Option<Vec<String>> {
    let cells: Vec<String> = text
        .trim()
        .split('\t')
        .map(|c| c.trim().to_string())
        .collect();
    (cells.len() >= 2 && cells.iter().filter(|c| !c.is_empty()).count() >= 2).then_some(cells)
}

fn is_separator_row(line: &str) -> bool {
    line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn split_row(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// Splits blocks into sections, one per heading; blocks before the first
/// heading form a section with an empty path.
pub fn sections(blocks: &[Block]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut stack: Vec<(u8, String)> = Vec::new();
    for block in blocks {
        if let Block::Heading { level, text, .. } = block {
            while stack.last().is_some_and(|(l, _)| *l >= *level) {
                stack.pop();
            }
            stack.push((*level, text.trim().to_string()));
            out.push(Section {
                path: stack.iter().map(|(_, t)| t.clone()).collect(),
                blocks: vec![block.clone()],
            });
            continue;
        }
        if out.is_empty() {
            out.push(Section {
                path: Vec::new(),
                blocks: Vec::new(),
            });
        }
        out.last_mut()
            .expect("a section")
            .blocks
            .push(block.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(t: &str) -> Block {
        Block::Paragraph {
            text: t.into(),
            page: None,
        }
    }

    #[test]
    fn plain_lines_become_headings_and_tables() {
        let blocks = restructure(&[
            para("# 第一章 招标公告"),
            para("第四章 合同条款及格式"),
            para("SECTION 4 CONDITIONS OF CONTRACT"),
            para("SECTION 4 CONDITIONS OF CONTRACT ........ 18"),
            para("| 条款号 | 条款名称 |"),
            para("| --- | --- |"),
            para("| 1.1 | 招标人 |"),
            para("本章第3.4.1项规定。"),
            para("投标人须知前附表"),
        ]);
        assert!(
            matches!(&blocks[0], Block::Heading { level: 1, text, .. } if text == "第一章 招标公告")
        );
        assert!(matches!(&blocks[1], Block::Heading { level: 1, .. }));
        assert!(matches!(&blocks[2], Block::Heading { level: 1, .. }));
        assert!(matches!(&blocks[3], Block::Paragraph { .. }));
        assert!(matches!(&blocks[4], Block::Table { rows, .. } if rows.len() == 2));
        assert!(matches!(&blocks[5], Block::Paragraph { .. }));
        assert!(matches!(&blocks[6], Block::Heading { level: 2, .. }));
    }

    #[test]
    fn sections_follow_heading_levels() {
        let blocks = restructure(&[
            para("# 第二章 投标人须知"),
            para("## 前附表"),
            para("x"),
            para("# 第三章 评标办法"),
        ]);
        let s = sections(&blocks);
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].path, vec!["第二章 投标人须知", "前附表"]);
        assert_eq!(s[2].path, vec!["第三章 评标办法"]);
    }
}
