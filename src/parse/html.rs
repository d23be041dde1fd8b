//! HTML: headings, paragraphs, lists and tables from the DOM (html5ever via
//! `scraper`); scripts, styles and other non-content elements are dropped.

use std::sync::LazyLock;

use ego_tree::NodeRef;
use ego_tree::iter::Edge;
use regex::bytes::Regex;
use scraper::{ElementRef, Html, Node};

use super::textutil::{clause_number, collapse_whitespace};
use super::{ParseError, guard, text};
use crate::document::{Block, ParsedDocument};

/// Nesting past which a subtree is read as flat text rather than walked
/// (keeps recursion bounded on hostile, deeply nested markup).
const MAX_WALK_DEPTH: usize = 256;

/// `<meta charset=...>` or `content="...; charset=..."` in the first bytes.
static META_CHARSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-]+)"#).expect("valid pattern")
});

/// Parses HTML bytes.
pub fn parse_html(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let (source, encoding) = decode_html(bytes)?;
    check_nesting(&source)?;
    guard("HTML", || {
        let dom = Html::parse_document(&source);
        let mut walker = Walker::default();
        walker.container(dom.root_element(), 0);
        walker.flush();
        let mut doc = ParsedDocument::new("html", walker.blocks);
        doc.meta.encoding = Some(encoding.to_string());
        doc.meta.title = walker.title;
        Ok(doc)
    })
}

/// Deepest element nesting accepted. html5ever's tree building slows down
/// with the square of the depth (100,000 nested `<div>`s take minutes), so
/// hostile nesting is refused up front.
const MAX_NESTING: usize = 1000;

/// Tags that open an element but need no end tag.
static TAG: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>").expect("valid pattern")
});

/// Estimates the nesting depth from the tags, counting only elements whose
/// end tag is required (void elements and those with optional end tags such
/// as `p`, `li`, `td` cannot pile up), and refuses a depth past the limit.
fn check_nesting(source: &str) -> Result<(), ParseError> {
    let mut depth: usize = 0;
    for caps in TAG.captures_iter(source) {
        let name = caps[2].to_ascii_lowercase();
        if caps[3].len() == 1 || !needs_end_tag(&name) {
            continue;
        }
        if caps[1].is_empty() {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(ParseError::too_large(format!(
                    "HTML nested deeper than {MAX_NESTING} elements"
                )));
            }
        } else {
            depth = depth.saturating_sub(1);
        }
    }
    Ok(())
}

fn needs_end_tag(name: &str) -> bool {
    !matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "source"
            | "track"
            | "wbr"
            | "param"
            | "keygen"
            | "p"
            | "li"
            | "dt"
            | "dd"
            | "option"
            | "optgroup"
            | "tr"
            | "td"
            | "th"
            | "thead"
            | "tbody"
            | "tfoot"
            | "colgroup"
            | "caption"
            | "rb"
            | "rt"
            | "rp"
            | "html"
            | "head"
            | "body"
    )
}

/// A byte-order mark, then a declared `<meta charset>`, then detection.
fn decode_html(bytes: &[u8]) -> Result<(String, &'static str), ParseError> {
    if encoding_rs::Encoding::for_bom(bytes).is_none() {
        let head = &bytes[..bytes.len().min(2048)];
        let declared = META_CHARSET
            .captures(head)
            .and_then(|c| encoding_rs::Encoding::for_label(&c[1]));
        if let Some(encoding) = declared.filter(|e| *e != encoding_rs::UTF_8) {
            let encoding = if encoding == encoding_rs::GBK {
                encoding_rs::GB18030
            } else {
                encoding
            };
            let (text, _) = encoding.decode_without_bom_handling(bytes);
            return Ok((text.into_owned(), encoding.name()));
        }
    }
    text::decode(bytes)
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    /// Inline text not yet closed into a paragraph.
    inline: String,
    title: Option<String>,
}

impl Walker {
    /// Walks the children of a block container, closing inline text into
    /// paragraphs at each block element.
    fn container(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            match child.value() {
                Node::Text(t) => self.inline.push_str(t),
                Node::Element(_) => {
                    if let Some(e) = ElementRef::wrap(child) {
                        self.element(e, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, e: ElementRef<'_>, depth: usize) {
        let name = e.value().name();
        match name {
            "script" | "style" | "noscript" | "template" | "svg" | "iframe" | "object"
            | "canvas" | "button" | "select" | "nav" => {}
            "title" => self.title = Some(collapse_whitespace(&flat_text(*e))),
            "br" => self.inline.push('\n'),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let text = collapse_whitespace(&flat_text(*e));
                if !text.is_empty() {
                    self.blocks.push(Block::Heading {
                        level: name.as_bytes()[1] - b'0',
                        number: clause_number(&text),
                        text,
                        page: None,
                    });
                }
            }
            "table" => {
                self.flush();
                if let Some(table) = table_block(e) {
                    self.blocks.push(table);
                }
            }
            "ul" | "ol" => {
                self.flush();
                self.list(e, 0, depth);
            }
            _ if depth > MAX_WALK_DEPTH => self.inline.push_str(&flat_text(*e)),
            _ if is_block(name) => {
                self.flush();
                self.container(e, depth);
                self.flush();
            }
            _ => self.container(e, depth),
        }
    }

    /// A list's items; nested lists one level deeper.
    fn list(&mut self, list: ElementRef<'_>, level: u8, depth: usize) {
        let ordered = list.value().name() == "ol";
        let mut n: i64 = list
            .value()
            .attr("start")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1);
        for item in list.children().filter_map(ElementRef::wrap) {
            if item.value().name() != "li" {
                continue;
            }
            let mut own = String::new();
            let mut nested = Vec::new();
            for child in item.children() {
                match ElementRef::wrap(child) {
                    Some(c) if matches!(c.value().name(), "ul" | "ol") => nested.push(c),
                    Some(c) => own.push_str(&flat_text(*c)),
                    None => {
                        if let Node::Text(t) = child.value() {
                            own.push_str(t);
                        }
                    }
                }
            }
            let text = collapse_whitespace(&own);
            if !text.is_empty() {
                self.blocks.push(Block::ListItem {
                    text,
                    number: Some(if ordered {
                        format!("{n}.")
                    } else {
                        "•".into()
                    }),
                    level,
                    page: None,
                });
            }
            n += 1;
            for sub in nested {
                if depth < MAX_WALK_DEPTH {
                    self.list(sub, level.saturating_add(1), depth + 1);
                }
            }
        }
    }

    /// Closes pending inline text into paragraphs, one per line break.
    fn flush(&mut self) {
        let inline = std::mem::take(&mut self.inline);
        for line in inline.split('\n') {
            let text = collapse_whitespace(line);
            if !text.is_empty() {
                self.blocks.push(Block::Paragraph { text, page: None });
            }
        }
    }
}

/// Elements that break the flow of inline text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "section"
            | "article"
            | "main"
            | "header"
            | "footer"
            | "aside"
            | "blockquote"
            | "pre"
            | "address"
            | "figure"
            | "figcaption"
            | "form"
            | "fieldset"
            | "dl"
            | "dt"
            | "dd"
            | "hr"
            | "center"
            | "body"
            | "html"
            | "caption"
            | "li"
            | "details"
            | "summary"
    )
}

/// All text under a node, skipping scripts and styles, without recursion.
fn flat_text(node: NodeRef<'_, Node>) -> String {
    let mut out = String::new();
    let mut hidden = 0usize;
    for edge in node.traverse() {
        match edge {
            Edge::Open(n) => match n.value() {
                Node::Text(t) if hidden == 0 => out.push_str(t),
                Node::Element(e) if is_hidden(e.name()) => hidden += 1,
                Node::Element(e) if e.name() == "br" => out.push('\n'),
                Node::Element(e) if is_block(e.name()) && !out.is_empty() => out.push(' '),
                _ => {}
            },
            Edge::Close(n) => {
                if n.value().as_element().is_some_and(|e| is_hidden(e.name())) {
                    hidden -= 1;
                }
            }
        }
    }
    out
}

/// Elements whose text is not content.
fn is_hidden(name: &str) -> bool {
    matches!(name, "script" | "style" | "template" | "noscript")
}

/// A `<table>` as rows of cells. `colspan` pads with empty cells; `rowspan`
/// repeats the cell's text in the rows it covers. Nested tables are read as
/// text of their cell.
fn table_block(table: ElementRef<'_>) -> Option<Block> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header_rows = 0;
    let mut in_header = true;
    // (column, rows still covered, text) carried down by rowspan.
    let mut carried: Vec<(usize, u32, String)> = Vec::new();
    for tr in table_rows(table) {
        let cells: Vec<ElementRef<'_>> = tr
            .children()
            .filter_map(ElementRef::wrap)
            .filter(|c| matches!(c.value().name(), "td" | "th"))
            .collect();
        let all_th = !cells.is_empty() && cells.iter().all(|c| c.value().name() == "th");
        let in_thead = tr
            .parent()
            .and_then(|p| p.value().as_element().map(|e| e.name() == "thead"))
            .unwrap_or(false);
        in_header &= all_th || in_thead;
        if in_header {
            header_rows += 1;
        }
        let mut row: Vec<String> = Vec::new();
        let mut cells = cells.into_iter();
        loop {
            if let Some(pos) = carried.iter().position(|(col, _, _)| *col == row.len()) {
                let (_, left, text) = &mut carried[pos];
                row.push(text.clone());
                *left -= 1;
                if *left == 0 {
                    carried.remove(pos);
                }
                continue;
            }
            let Some(cell) = cells.next() else { break };
            let text = collapse_whitespace(&flat_text(*cell));
            let span = |name: &str| -> u32 {
                cell.value()
                    .attr(name)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(1)
                    .clamp(1, 64)
            };
            let (colspan, rowspan) = (span("colspan"), span("rowspan"));
            if rowspan > 1 {
                carried.push((row.len(), rowspan - 1, text.clone()));
            }
            row.push(text);
            row.extend(std::iter::repeat_n(String::new(), colspan as usize - 1));
        }
        if row.iter().any(|c| !c.is_empty()) {
            rows.push(row);
        }
    }
    (!rows.is_empty()).then_some(Block::Table {
        rows,
        header_rows,
        page: None,
    })
}

/// The `<tr>`s of a table, directly or in thead/tbody/tfoot, not those of
/// nested tables.
fn table_rows(table: ElementRef<'_>) -> Vec<ElementRef<'_>> {
    let mut out = Vec::new();
    for child in table.children().filter_map(ElementRef::wrap) {
        match child.value().name() {
            "tr" => out.push(child),
            "thead" | "tbody" | "tfoot" => out.extend(
                child
                    .children()
                    .filter_map(ElementRef::wrap)
                    .filter(|r| r.value().name() == "tr"),
            ),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_tables_lists_and_no_scripts() {
        let html = r#"<html><head><title>T</title><style>p{}</style><script>var x="秘密";</script></head>
            <body><h2>3.1 招标范围</h2><p>施工图范围内的土建</p>
            <table><tr><th>条款号</th><th>内容</th></tr>
            <tr><td rowspan="2">3.4</td><td>80万元</td></tr><tr><td>银行保函</td></tr></table>
            <ol><li>第一项<ul><li>细目</li></ul></li><li>第二项</li></ol></body></html>"#;
        let doc = parse_html(html.as_bytes()).unwrap();
        let text = doc.plain_text();
        assert!(!text.contains("秘密"));
        assert!(
            matches!(&doc.blocks[0], Block::Heading { level: 2, number: Some(n), .. } if n == "3.1")
        );
        let Block::Table {
            rows, header_rows, ..
        } = &doc.blocks[2]
        else {
            panic!("expected a table, got {:?}", doc.blocks[2]);
        };
        assert_eq!(*header_rows, 1);
        assert_eq!(rows[2], vec!["3.4", "银行保函"]);
        assert!(text.contains("1. 第一项\n• 细目\n2. 第二项"));
        assert_eq!(doc.meta.title.as_deref(), Some("T"));
    }

    #[test]
    fn deep_nesting_is_walked_or_refused() {
        let html = "<div>".repeat(500) + "深" + &"</div>".repeat(500);
        let doc = parse_html(html.as_bytes()).unwrap();
        assert!(doc.plain_text().contains('深'));
        let hostile = "<div>".repeat(100_000);
        assert_eq!(
            parse_html(hostile.as_bytes()).unwrap_err().kind,
            "too_large"
        );
        let sloppy = "<p>段落".repeat(5_000);
        assert!(parse_html(sloppy.as_bytes()).is_ok());
    }

    #[test]
    fn declared_gbk_is_honoured() {
        let (body, _, _) = encoding_rs::GBK.encode("<p>投标保证金</p>");
        let mut html = b"<html><head><meta charset=\"gbk\"></head><body>".to_vec();
        html.extend_from_slice(&body);
        assert!(
            parse_html(&html)
                .unwrap()
                .plain_text()
                .contains("投标保证金")
        );
    }
}
