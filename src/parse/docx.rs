//! DOCX: WordprocessingML in a zip container.
//!
//! Headings come from paragraph styles and outline levels; automatic list
//! numbering (numbering.xml) is rendered as text so clause numbers such as
//! "8." and "（3）" survive; tables keep merged cells aligned to the grid;
//! text boxes become blocks of their own after the paragraph that anchors
//! them; headers and footers go to `meta.furniture`, not the body.

use std::collections::HashMap;

use super::textutil::{chapter_heading_level, clause_number};
use super::xmltree::{self, Element, Node};
use super::zipread::BoundedZip;
use super::{ParseError, ParseLimits, guard};
use crate::document::{Block, ParsedDocument};

/// Parses DOCX bytes.
pub fn parse_docx(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    guard("DOCX", || parse_container(bytes, limits))
}

fn parse_container(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    let mut zip = BoundedZip::open(bytes, limits, "DOCX")?;
    let depth = limits.max_xml_depth;
    let main = zip
        .read_text("word/document.xml")?
        .ok_or_else(|| ParseError::corrupt("DOCX without word/document.xml"))?;
    let styles = match zip.read_text("word/styles.xml")? {
        Some(xml) => Styles::from_xml(&xmltree::parse(&xml, depth)?),
        None => Styles::default(),
    };
    let numbering = match zip.read_text("word/numbering.xml")? {
        Some(xml) => Numbering::from_xml(&xmltree::parse(&xml, depth)?),
        None => Numbering::default(),
    };
    let root = xmltree::parse(&main, depth)?;
    let body = root
        .child("w:body")
        .ok_or_else(|| ParseError::corrupt("DOCX document.xml without a body"))?;
    let mut walker = Walker {
        styles,
        numbering,
        blocks: Vec::new(),
    };
    walker.container(body);
    let mut doc = ParsedDocument::new("docx", walker.blocks);
    doc.meta.furniture = read_furniture(&mut zip, depth)?;
    doc.meta.title = read_title(&mut zip, depth)?;
    Ok(doc)
}

/// Texts of the header and footer parts, in part-name order.
fn read_furniture(zip: &mut BoundedZip<'_>, depth: usize) -> Result<Vec<String>, ParseError> {
    let mut names: Vec<String> = zip
        .names()
        .filter(|n| {
            (n.starts_with("word/header") || n.starts_with("word/footer")) && n.ends_with(".xml")
        })
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(xml) = zip.read_text(&name)? else {
            continue;
        };
        let text = plain_text_of(&xmltree::parse(&xml, depth)?);
        if !text.trim().is_empty() {
            out.push(text.trim().to_string());
        }
    }
    Ok(out)
}

/// `dc:title` from docProps/core.xml.
fn read_title(zip: &mut BoundedZip<'_>, depth: usize) -> Result<Option<String>, ParseError> {
    let Some(xml) = zip.read_text("docProps/core.xml")? else {
        return Ok(None);
    };
    let root = xmltree::parse(&xml, depth)?;
    Ok(root
        .child("dc:title")
        .map(|t| t.own_text().trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// All `w:t` text of a part, paragraphs on their own lines.
fn plain_text_of(element: &Element) -> String {
    let mut out = String::new();
    for child in element.elements() {
        match child.name.as_str() {
            "w:t" => out.push_str(&child.own_text()),
            "w:tab" => out.push('\t'),
            "w:p" => {
                out.push_str(&plain_text_of(child));
                out.push('\n');
            }
            _ => out.push_str(&plain_text_of(child)),
        }
    }
    out
}

/// Paragraph style facts: heading level, list numbering, base style.
#[derive(Debug, Default, Clone)]
struct StyleInfo {
    name: String,
    based_on: Option<String>,
    outline: Option<u8>,
    num: Option<(String, u8)>,
}

/// The paragraph styles of styles.xml, by id.
#[derive(Debug, Default)]
struct Styles {
    by_id: HashMap<String, StyleInfo>,
}

impl Styles {
    fn from_xml(root: &Element) -> Self {
        let by_id = root
            .elements()
            .filter(|s| {
                s.name == "w:style" && s.attr("w:type").unwrap_or("paragraph") == "paragraph"
            })
            .filter_map(|s| {
                let id = s.attr("w:styleId")?.to_string();
                let info = StyleInfo {
                    name: s
                        .path(&["w:name"])
                        .and_then(|n| n.attr("w:val"))
                        .unwrap_or(&id)
                        .to_string(),
                    based_on: s
                        .path(&["w:basedOn"])
                        .and_then(|b| b.attr("w:val"))
                        .map(String::from),
                    outline: s.child("w:pPr").and_then(outline_level),
                    num: s.child("w:pPr").and_then(num_props),
                };
                Some((id, info))
            })
            .collect();
        Styles { by_id }
    }

    /// The style and its bases, nearest first (bounded against cycles).
    fn chain(&self, id: &str) -> Vec<&StyleInfo> {
        let mut out = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next.take() {
            let Some(style) = self.by_id.get(&id) else {
                break;
            };
            out.push(style);
            if out.len() >= 16 {
                break;
            }
            next = style.based_on.clone();
        }
        out
    }

    /// Heading level of a paragraph of style `id`: an outline level in the
    /// chain, else a heading-like style name ("heading 2", "标题 2", "Title").
    fn heading_level(&self, id: &str) -> Option<u8> {
        let chain = self.chain(id);
        if let Some(level) = chain.iter().find_map(|s| s.outline) {
            return Some(level);
        }
        chain.iter().find_map(|s| heading_level_of_name(&s.name))
    }

    fn numbering(&self, id: &str) -> Option<(String, u8)> {
        self.chain(id).iter().find_map(|s| s.num.clone())
    }
}

/// "heading 3" / "Heading3" / "标题 3" → 3; "Title" → 1.
fn heading_level_of_name(name: &str) -> Option<u8> {
    let lower = name.to_lowercase();
    if lower == "title" || lower == "标题" {
        return Some(1);
    }
    let rest = lower
        .strip_prefix("heading")
        .or_else(|| lower.strip_prefix("标题"))?;
    let level: u8 = rest.trim().parse().ok()?;
    (1..=9).contains(&level).then_some(level)
}

/// `w:outlineLvl` of a `w:pPr`: 0-based, 9 means body text.
fn outline_level(ppr: &Element) -> Option<u8> {
    let level: u8 = ppr.child("w:outlineLvl")?.attr("w:val")?.parse().ok()?;
    (level < 9).then_some(level + 1)
}

/// `w:numPr` of a `w:pPr`: (numId, ilvl). numId 0 switches numbering off.
fn num_props(ppr: &Element) -> Option<(String, u8)> {
    let num_pr = ppr.child("w:numPr")?;
    let id = num_pr.child("w:numId")?.attr("w:val")?.to_string();
    let level = num_pr
        .child("w:ilvl")
        .and_then(|l| l.attr("w:val"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((id, level.min(8)))
}

/// One level of an abstract numbering definition.
#[derive(Debug, Clone)]
struct Level {
    start: u32,
    format: String,
    text: String,
}

/// numbering.xml: definitions and the counters of the walk so far.
#[derive(Debug, Default)]
struct Numbering {
    abstracts: HashMap<String, HashMap<u8, Level>>,
    /// numId → (abstractNumId, start overrides by level).
    nums: HashMap<String, (String, HashMap<u8, u32>)>,
    /// Counters by abstractNumId: Word continues a list across the `w:num`
    /// instances that share a definition.
    counters: HashMap<String, [u32; 9]>,
    /// numIds whose start overrides have been applied.
    started: Vec<String>,
}

impl Numbering {
    fn from_xml(root: &Element) -> Self {
        let mut numbering = Numbering::default();
        for e in root.elements() {
            match e.name.as_str() {
                "w:abstractNum" => {
                    let Some(id) = e.attr("w:abstractNumId") else {
                        continue;
                    };
                    let levels = e
                        .elements()
                        .filter(|l| l.name == "w:lvl")
                        .filter_map(parse_level)
                        .collect();
                    numbering.abstracts.insert(id.to_string(), levels);
                }
                "w:num" => {
                    let (Some(id), Some(abs)) = (
                        e.attr("w:numId"),
                        e.child("w:abstractNumId").and_then(|a| a.attr("w:val")),
                    ) else {
                        continue;
                    };
                    let overrides = e
                        .elements()
                        .filter(|o| o.name == "w:lvlOverride")
                        .filter_map(|o| {
                            let level = o.attr("w:ilvl")?.parse().ok()?;
                            let start = o.child("w:startOverride")?.attr("w:val")?.parse().ok()?;
                            Some((level, start))
                        })
                        .collect();
                    numbering
                        .nums
                        .insert(id.to_string(), (abs.to_string(), overrides));
                }
                _ => {}
            }
        }
        numbering
    }

    /// Advances the list `num_id` at `level` and renders its marker, or
    /// `None` when the list is unknown or numbering is switched off.
    fn next(&mut self, num_id: &str, level: u8) -> Option<String> {
        let (abs, overrides) = self.nums.get(num_id)?.clone();
        let levels = self.abstracts.get(&abs)?.clone();
        let counters = self.counters.entry(abs.clone()).or_insert([0; 9]);
        if !self.started.iter().any(|s| s == num_id) {
            self.started.push(num_id.to_string());
            for (l, start) in &overrides {
                if let Some(c) = counters.get_mut(usize::from(*l)) {
                    *c = start.saturating_sub(1);
                }
            }
        }
        let l = usize::from(level);
        let start = levels.get(&level).map_or(1, |lv| lv.start);
        counters[l] = if counters[l] == 0 {
            start
        } else {
            counters[l] + 1
        };
        for counter in counters.iter_mut().skip(l + 1) {
            *counter = 0;
        }
        let current = levels.get(&level)?;
        Some(render_marker(current, &levels, counters))
    }
}

fn parse_level(lvl: &Element) -> Option<(u8, Level)> {
    let ilvl: u8 = lvl.attr("w:ilvl")?.parse().ok()?;
    let val = |name: &str| {
        lvl.child(name)
            .and_then(|e| e.attr("w:val"))
            .map(String::from)
    };
    Some((
        ilvl.min(8),
        Level {
            start: val("w:start").and_then(|s| s.parse().ok()).unwrap_or(1),
            format: val("w:numFmt").unwrap_or_else(|| "decimal".to_string()),
            text: val("w:lvlText").unwrap_or_default(),
        },
    ))
}

/// Fills `%1`…`%9` of the level text with the counters, each in its own
/// level's format.
fn render_marker(current: &Level, levels: &HashMap<u8, Level>, counters: &[u32; 9]) -> String {
    match current.format.as_str() {
        "bullet" => return "•".to_string(),
        "none" => return String::new(),
        _ => {}
    }
    let mut out = String::new();
    let mut chars = current.text.chars().peekable();
    while let Some(c) = chars.next() {
        let digit = chars.peek().and_then(|d| d.to_digit(10));
        match (c, digit) {
            ('%', Some(n @ 1..=9)) => {
                chars.next();
                let idx = (n - 1) as usize;
                let format = levels
                    .get(&(idx as u8))
                    .map_or("decimal", |l| l.format.as_str());
                out.push_str(&format_number(counters[idx].max(1), format));
            }
            _ => out.push(c),
        }
    }
    out
}

/// A counter in a `w:numFmt` format.
fn format_number(n: u32, format: &str) -> String {
    match format {
        "lowerLetter" => letters(n).to_lowercase(),
        "upperLetter" => letters(n),
        "lowerRoman" => roman(n).to_lowercase(),
        "upperRoman" => roman(n),
        "decimalZero" if n < 10 => format!("0{n}"),
        "decimalFullWidth" | "decimalFullWidth2" => n
            .to_string()
            .chars()
            .map(|d| char::from_u32(d as u32 - '0' as u32 + 0xFF10).unwrap_or(d))
            .collect(),
        "decimalEnclosedCircle" | "decimalEnclosedCircleChinese" if (1..=20).contains(&n) => {
            char::from_u32(0x2460 + n - 1).map_or(n.to_string(), String::from)
        }
        "chineseLegalSimplified" => chinese(n, true),
        "ideographTraditional" if (1..=10).contains(&n) => "甲乙丙丁戊己庚辛壬癸"
            .chars()
            .nth(n as usize - 1)
            .map_or(n.to_string(), String::from),
        f if f.starts_with("chinese")
            || f.starts_with("ideograph")
            || f.starts_with("japanese")
            || f.starts_with("taiwanese") =>
        {
            chinese(n, false)
        }
        _ => n.to_string(),
    }
}

/// 1 → A, 27 → AA (Word repeats the letter).
fn letters(n: u32) -> String {
    let letter = char::from(b'A' + ((n - 1) % 26) as u8);
    letter.to_string().repeat(((n - 1) / 26 + 1) as usize)
}

fn roman(mut n: u32) -> String {
    const TABLE: [(u32, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut out = String::new();
    for (value, numeral) in TABLE {
        while n >= value {
            out.push_str(numeral);
            n -= value;
        }
    }
    out
}

/// Chinese numerals below 10000: 十一, 二十, 一百零五; `legal` uses 壹贰叁.
fn chinese(n: u32, legal: bool) -> String {
    let digits: Vec<char> = if legal {
        "零壹贰叁肆伍陆柒捌玖"
    } else {
        "零一二三四五六七八九"
    }
    .chars()
    .collect();
    let units: Vec<char> = if legal { "拾佰仟" } else { "十百千" }.chars().collect();
    if n == 0 || n >= 10000 {
        return n.to_string();
    }
    let parts = [n / 1000, n / 100 % 10, n / 10 % 10, n % 10];
    let mut out = String::new();
    let mut zero = false;
    for (i, d) in parts.iter().enumerate() {
        let unit = match i {
            0 => Some(units[2]),
            1 => Some(units[1]),
            2 => Some(units[0]),
            _ => None,
        };
        if *d == 0 {
            zero = !out.is_empty();
            continue;
        }
        if zero {
            out.push(digits[0]);
            zero = false;
        }
        let skip_one = i == 2 && *d == 1 && out.is_empty() && !legal;
        if !skip_one {
            out.push(digits[*d as usize]);
        }
        if let Some(u) = unit {
            out.push(u);
        }
    }
    out
}

/// Walks the body, appending blocks.
struct Walker {
    styles: Styles,
    numbering: Numbering,
    blocks: Vec<Block>,
}

impl Walker {
    /// A body, cell or content control: paragraphs and tables in order.
    fn container(&mut self, element: &Element) {
        for child in element.elements() {
            match child.name.as_str() {
                "w:p" => self.paragraph(child),
                "w:tbl" => {
                    let table = self.table(child);
                    self.blocks.push(table);
                }
                "w:sdt" | "w:customXml" | "w:sdtContent" | "w:ins" => self.container(child),
                _ => {}
            }
        }
    }

    fn paragraph(&mut self, p: &Element) {
        let mut text = String::new();
        let mut boxes = Vec::new();
        collect_runs(p, &mut text, &mut boxes);
        let (block, _) = self.paragraph_block(p, text.trim());
        if let Some(block) = block {
            self.blocks.push(block);
        }
        for text_box in boxes {
            self.container(text_box);
        }
    }

    /// The block for a paragraph with `text`, and its rendered number.
    fn paragraph_block(&mut self, p: &Element, text: &str) -> (Option<Block>, Option<String>) {
        let ppr = p.child("w:pPr");
        let style = ppr
            .and_then(|x| x.path(&["w:pStyle"]))
            .and_then(|s| s.attr("w:val"))
            .unwrap_or("Normal");
        let num = ppr
            .and_then(num_props)
            .or_else(|| self.styles.numbering(style))
            .filter(|(id, _)| id != "0");
        let marker = num
            .as_ref()
            .and_then(|(id, level)| self.numbering.next(id, *level))
            .filter(|m| !m.is_empty());
        if text.is_empty() {
            return (None, marker);
        }
        let level = ppr
            .and_then(outline_level)
            .or_else(|| self.styles.heading_level(style))
            .or_else(|| chapter_heading_level(text));
        let block = match (level, &marker) {
            (Some(level), _) => {
                let full = match &marker {
                    Some(m) if m != "•" => format!("{m} {text}"),
                    _ => text.to_string(),
                };
                Block::Heading {
                    level,
                    number: marker
                        .clone()
                        .filter(|m| m != "•")
                        .or_else(|| clause_number(&full)),
                    text: full,
                    page: None,
                }
            }
            (None, Some(m)) => Block::ListItem {
                text: text.to_string(),
                number: Some(m.clone()),
                level: num.map_or(0, |(_, l)| l),
                page: None,
            },
            (None, None) => Block::Paragraph {
                text: text.to_string(),
                page: None,
            },
        };
        (Some(block), marker)
    }

    /// A table as grid-aligned rows: a `gridSpan` cell is followed by empty
    /// cells for the columns it covers; a `vMerge` continuation repeats the
    /// text of the cell it continues, so each row reads on its own.
    fn table(&mut self, tbl: &Element) -> Block {
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header_rows = 0;
        let mut in_header = true;
        for tr in tbl.elements().filter(|e| e.name == "w:tr") {
            let is_header = tr
                .path(&["w:trPr", "w:tblHeader"])
                .is_some_and(|h| !matches!(h.attr("w:val"), Some("false" | "0")));
            in_header &= is_header;
            if in_header {
                header_rows += 1;
            }
            let row = self.table_row(tr, rows.last());
            rows.push(row);
        }
        Block::Table {
            rows,
            header_rows,
            page: None,
        }
    }

    fn table_row(&mut self, tr: &Element, above: Option<&Vec<String>>) -> Vec<String> {
        let mut row = Vec::new();
        for tc in tr
            .elements()
            .filter(|e| e.name == "w:tc" || e.name == "w:sdt")
        {
            let tc = if tc.name == "w:sdt" {
                match tc.path(&["w:sdtContent", "w:tc"]) {
                    Some(inner) => inner,
                    None => continue,
                }
            } else {
                tc
            };
            let props = tc.child("w:tcPr");
            let span: usize = props
                .and_then(|p| p.child("w:gridSpan"))
                .and_then(|g| g.attr("w:val"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
                .clamp(1, 64);
            let continues = props
                .and_then(|p| p.child("w:vMerge"))
                .is_some_and(|m| m.attr("w:val").is_none_or(|v| v == "continue"));
            let text = if continues {
                above
                    .and_then(|a| a.get(row.len()))
                    .cloned()
                    .unwrap_or_default()
            } else {
                self.cell_text(tc)
            };
            row.push(text);
            row.extend(std::iter::repeat_n(String::new(), span - 1));
        }
        row
    }

    /// A cell's paragraphs (with their list numbers), one a line; nested
    /// tables as rows of ` | `-joined cells.
    fn cell_text(&mut self, tc: &Element) -> String {
        let saved = std::mem::take(&mut self.blocks);
        self.container(tc);
        let inner = std::mem::replace(&mut self.blocks, saved);
        inner
            .iter()
            .map(Block::text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Collects the visible text of a paragraph's runs into `text`, and the
/// text-box contents it anchors into `boxes`. Deleted text, field codes and
/// the VML fallback copy of a drawing are skipped.
fn collect_runs<'a>(element: &'a Element, text: &mut String, boxes: &mut Vec<&'a Element>) {
    for node in &element.children {
        let Node::Element(e) = node else { continue };
        match e.name.as_str() {
            "w:t" => text.push_str(&e.own_text()),
            "w:tab" | "w:ptab" => text.push('\t'),
            "w:br" | "w:cr" => text.push('\n'),
            "w:noBreakHyphen" => text.push('-'),
            "w:sym" => {}
            "w:txbxContent" => boxes.push(e),
            "w:del" | "w:delText" | "w:instrText" | "mc:Fallback" | "w:pPr" | "w:rPr" => {}
            _ => collect_runs(e, text, boxes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_in_their_formats() {
        assert_eq!(chinese(3, false), "三");
        assert_eq!(chinese(11, false), "十一");
        assert_eq!(chinese(20, false), "二十");
        assert_eq!(chinese(105, false), "一百零五");
        assert_eq!(chinese(12, true), "壹拾贰");
        assert_eq!(roman(14), "XIV");
        assert_eq!(letters(28), "BB");
        assert_eq!(format_number(3, "decimalEnclosedCircle"), "③");
    }

    #[test]
    fn multilevel_markers_and_restarts() {
        let xml = r#"<w:numbering>
            <w:abstractNum w:abstractNumId="1">
              <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
              <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="（%2）"/></w:lvl>
            </w:abstractNum>
            <w:num w:numId="5"><w:abstractNumId w:val="1"/></w:num>
          </w:numbering>"#;
        let mut n = Numbering::from_xml(&xmltree::parse(xml, 10).unwrap());
        assert_eq!(n.next("5", 0).as_deref(), Some("1."));
        assert_eq!(n.next("5", 1).as_deref(), Some("（1）"));
        assert_eq!(n.next("5", 1).as_deref(), Some("（2）"));
        assert_eq!(n.next("5", 0).as_deref(), Some("2."));
        assert_eq!(n.next("5", 1).as_deref(), Some("（1）"));
        assert_eq!(n.next("9", 0), None);
    }

    fn docx(parts: &[(&str, &str)]) -> Vec<u8> {
        let entries: Vec<(&str, &[u8])> = parts.iter().map(|(n, d)| (*n, d.as_bytes())).collect();
        crate::parse::zipread::test_zip(&entries)
    }

    const STYLES: &str = r#"<w:styles xmlns:w="w">
        <w:style w:type="paragraph" w:styleId="Clause"><w:name w:val="Clause"/>
          <w:pPr><w:outlineLvl w:val="1"/><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
        <w:style w:type="paragraph" w:styleId="Item"><w:name w:val="Item"/>
          <w:pPr><w:numPr><w:ilvl w:val="1"/><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
        </w:styles>"#;

    const NUMBERING: &str = r#"<w:numbering xmlns:w="w">
        <w:abstractNum w:abstractNumId="0">
          <w:lvl w:ilvl="0"><w:start w:val="8"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
          <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="(%2)"/></w:lvl>
        </w:abstractNum>
        <w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>
        </w:numbering>"#;

    const BODY: &str = r#"<w:document xmlns:w="w" xmlns:mc="mc"><w:body>
        <w:p><w:pPr><w:pStyle w:val="Clause"/></w:pPr><w:r><w:t>投标保证金</w:t></w:r></w:p>
        <w:p><w:pPr><w:pStyle w:val="Item"/></w:pPr><w:r><w:t>金额：80万元</w:t></w:r>
          <w:r><mc:AlternateContent><mc:Choice><w:drawing><w:txbxContent>
            <w:p><w:r><w:t>文本框内容</w:t></w:r></w:p></w:txbxContent></w:drawing></mc:Choice>
            <mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>文本框内容</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback>
          </mc:AlternateContent></w:r></w:p>
        <w:p><w:pPr><w:pStyle w:val="Item"/></w:pPr><w:r><w:t>形式：银行保函</w:t></w:r><w:del><w:r><w:delText>删掉</w:delText></w:r></w:del></w:p>
        <w:tbl>
          <w:tr><w:trPr><w:tblHeader/></w:trPr><w:tc><w:p><w:r><w:t>评分因素</w:t></w:r></w:p></w:tc>
            <w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>评分标准</w:t></w:r></w:p></w:tc></w:tr>
          <w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>施工组织设计</w:t></w:r></w:p></w:tc>
            <w:tc><w:p><w:r><w:t>内容完整</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>5分</w:t></w:r></w:p></w:tc></w:tr>
          <w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc>
            <w:tc><w:p><w:r><w:t>措施可行</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>3分</w:t></w:r></w:p></w:tc></w:tr>
        </w:tbl>
        </w:body></w:document>"#;

    #[test]
    fn numbering_merges_text_boxes_and_headers() {
        let bytes = docx(&[
            ("word/document.xml", BODY),
            ("word/styles.xml", STYLES),
            ("word/numbering.xml", NUMBERING),
            (
                "word/header1.xml",
                r#"<w:hdr xmlns:w="w"><w:p><w:r><w:t>临江市招标文件</w:t></w:r></w:p></w:hdr>"#,
            ),
        ]);
        let doc = parse_docx(&bytes, &ParseLimits::default()).unwrap();
        let text = doc.plain_text();
        assert!(
            matches!(&doc.blocks[0], Block::Heading { level: 2, text, number: Some(n), .. } if text == "8. 投标保证金" && n == "8.")
        );
        assert!(
            text.contains("(1) 金额：80万元\n文本框内容\n(2) 形式：银行保函\n"),
            "{text}"
        );
        assert_eq!(text.matches("文本框内容").count(), 1);
        assert!(!text.contains("删掉"));
        assert!(!text.contains("临江市招标文件"));
        assert_eq!(doc.meta.furniture, vec!["临江市招标文件".to_string()]);
        let Some(Block::Table {
            rows, header_rows, ..
        }) = doc.blocks.last()
        else {
            panic!("expected a table last: {:?}", doc.blocks);
        };
        assert_eq!(*header_rows, 1);
        assert_eq!(rows[0], vec!["评分因素", "评分标准", ""]);
        assert_eq!(rows[2], vec!["施工组织设计", "措施可行", "3分"]);
    }
}
