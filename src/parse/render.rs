//! A parsed document as readable text, for people and for `tenderflow parse`.

use std::fmt::Write;

use crate::document::{Block, ParsedDocument};

/// Renders `doc` as readable text: `#` marks headings by level, list items
/// keep their numbers, tables are rows of ` | `-separated cells between
/// `+--` rules, and `--- page N ---` marks where each PDF page starts.
pub fn render_text(doc: &ParsedDocument) -> String {
    let mut out = String::new();
    let mut page = None;
    for block in &doc.blocks {
        if block.page().is_some() && block.page() != page {
            page = block.page();
            let _ = writeln!(out, "--- page {} ---", page.unwrap_or_default());
        }
        render_block(block, &mut out);
    }
    out
}

/// Appends one block and a blank line.
fn render_block(block: &Block, out: &mut String) {
    match block {
        Block::Heading { level, text, .. } => {
            let marks = "#".repeat(usize::from((*level).clamp(1, 6)));
            let _ = writeln!(out, "{marks} {text}");
        }
        Block::Paragraph { text, .. } => {
            let _ = writeln!(out, "{text}");
        }
        Block::ListItem { level, .. } => {
            let indent = "  ".repeat(usize::from(*level));
            let _ = writeln!(out, "{indent}- {}", block.text());
        }
        Block::Table {
            rows, header_rows, ..
        } => render_table(rows, *header_rows as usize, out),
    }
    out.push('\n');
}

/// Appends a table, one row a line, with a rule under the header rows.
fn render_table(rows: &[Vec<String>], header_rows: usize, out: &mut String) {
    out.push_str("+--\n");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| c.replace('\n', " / ")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        if header_rows > 0 && i + 1 == header_rows {
            out.push_str("+--\n");
        }
    }
    out.push_str("+--\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_headings_tables_and_pages() {
        let doc = ParsedDocument::new(
            "pdf",
            vec![
                Block::Heading {
                    level: 2,
                    text: "第二章 投标人须知".into(),
                    number: Some("第二章".into()),
                    page: Some(3),
                },
                Block::Table {
                    rows: vec![
                        vec!["条款号".into(), "编列内容".into()],
                        vec!["3.3.1".into(), "90日历天".into()],
                    ],
                    header_rows: 1,
                    page: Some(4),
                },
            ],
        );
        let text = render_text(&doc);
        assert!(text.contains("--- page 3 ---\n## 第二章 投标人须知"));
        assert!(
            text.contains("--- page 4 ---\n+--\n| 条款号 | 编列内容 |\n+--\n| 3.3.1 | 90日历天 |")
        );
    }
}
