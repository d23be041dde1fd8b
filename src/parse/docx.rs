//! DOCX: WordprocessingML in a zip container.
//!
//! Headings come from paragraph styles and outline levels; automatic list
//! numbering (numbering.xml) is rendered as text so clause numbers such as
//! "8." and "（3）" survive; tables keep merged cells aligned to the grid
//! (merged text once); content controls are read in place, check boxes and
//! symbol-font glyphs become Unicode (☑ ☐ □ √), fields keep their results;
//! text boxes become blocks of their own after the paragraph that anchors
//! them; headers and footers go to `meta.furniture`, not the body.

use std::collections::HashMap;

use self::symbols::{RunFonts, sym_char};
use super::textutil::{chapter_heading_level, clause_number};
use super::xmltree::{self, Element, Node};
use super::zipread::BoundedZip;
use super::{ParseError, ParseLimits, guard};
use crate::document::{Block, ParsedDocument};

pub(super) mod symbols;

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
        fields: Vec::new(),
        cell_depth: 0,
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
    id: String,
    name: String,
    based_on: Option<String>,
    outline: Option<u8>,
    /// `w:numPr` of the style: numId and, when given, ilvl.
    num: Option<(String, Option<u8>)>,
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
                    id: id.clone(),
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
                    num: s
                        .child("w:pPr")
                        .and_then(num_props)
                        .and_then(|(id, level)| Some((id?, level))),
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

    /// The list of a style (numId, ilvl if the style names one, and the id
    /// of the style in the chain that carries the list).
    fn numbering(&self, id: &str) -> Option<(String, Option<u8>, String)> {
        self.chain(id)
            .iter()
            .find_map(|s| s.num.clone().map(|(num, level)| (num, level, s.id.clone())))
    }
}

/// "heading 3" / "Heading3" / "标题 3" → 3; "Title" / "标题" → 1.
pub(in crate::parse) fn heading_level_of_name(name: &str) -> Option<u8> {
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

/// `w:numPr` of a `w:pPr`: (numId, ilvl), either may be missing (a
/// paragraph may name only the level of its style's list). numId 0
/// switches numbering off.
fn num_props(ppr: &Element) -> Option<(Option<String>, Option<u8>)> {
    let num_pr = ppr.child("w:numPr")?;
    let id = num_pr
        .child("w:numId")
        .and_then(|n| n.attr("w:val"))
        .map(String::from);
    let level = num_pr
        .child("w:ilvl")
        .and_then(|l| l.attr("w:val"))
        .and_then(|v| v.parse::<u8>().ok())
        .map(|l| l.min(8));
    (id.is_some() || level.is_some()).then_some((id, level))
}

/// One level of an abstract numbering definition.
#[derive(Debug, Clone)]
struct Level {
    start: u32,
    format: String,
    text: String,
    /// `w:lvlRestart`: restart after a use of this 1-based level or a
    /// higher one; 0 never restarts. `None`: after any higher level.
    restart: Option<u32>,
    /// `w:isLgl`: every number of the label in decimal ("1.1", not "一.1").
    legal: bool,
    /// `w:pStyle`: the paragraph style this level belongs to.
    style: Option<String>,
}

/// A `w:num`: its definition and its overrides.
#[derive(Debug, Clone, Default)]
struct NumInstance {
    abstract_id: String,
    /// `w:lvlOverride/w:startOverride` by level.
    starts: HashMap<u8, u32>,
    /// `w:lvlOverride/w:lvl`: a level redefined for this instance.
    levels: HashMap<u8, Level>,
}

/// Counters of one list (one abstract definition).
#[derive(Debug, Default, Clone)]
struct ListState {
    /// The current value per level; `None` before the level's first use
    /// and after a restart.
    counters: [Option<u32>; 9],
    /// Start values set by a `w:startOverride`, by level.
    starts: [Option<u32>; 9],
}

/// A list as used: (abstractNumId, levels with overrides, start overrides).
type ResolvedList = (String, HashMap<u8, Level>, HashMap<u8, u32>);

/// numbering.xml: definitions and the counters of the walk so far.
#[derive(Debug, Default)]
struct Numbering {
    abstracts: HashMap<String, HashMap<u8, Level>>,
    nums: HashMap<String, NumInstance>,
    /// Counters by abstractNumId: Word continues a list across the `w:num`
    /// instances that share a definition.
    lists: HashMap<String, ListState>,
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
                    let mut instance = NumInstance {
                        abstract_id: abs.to_string(),
                        ..NumInstance::default()
                    };
                    for o in e.elements().filter(|o| o.name == "w:lvlOverride") {
                        let Some(level) = o.attr("w:ilvl").and_then(|l| l.parse::<u8>().ok())
                        else {
                            continue;
                        };
                        let level = level.min(8);
                        if let Some(start) = o
                            .child("w:startOverride")
                            .and_then(|s| s.attr("w:val"))
                            .and_then(|v| v.parse().ok())
                        {
                            instance.starts.insert(level, start);
                        }
                        if let Some((_, lvl)) = o.child("w:lvl").and_then(parse_level) {
                            instance.levels.insert(level, lvl);
                        }
                    }
                    numbering.nums.insert(id.to_string(), instance);
                }
                _ => {}
            }
        }
        numbering
    }

    /// The levels of list `num_id`, overrides applied.
    fn levels(&self, num_id: &str) -> Option<ResolvedList> {
        let instance = self.nums.get(num_id)?;
        let mut levels = self.abstracts.get(&instance.abstract_id)?.clone();
        for (l, level) in &instance.levels {
            levels.insert(*l, level.clone());
        }
        Some((
            instance.abstract_id.clone(),
            levels,
            instance.starts.clone(),
        ))
    }

    /// The level of list `num_id` that is tied to paragraph style `style`.
    fn level_of_style(&self, num_id: &str, style: &str) -> Option<u8> {
        let (_, levels, _) = self.levels(num_id)?;
        levels
            .iter()
            .filter(|(_, l)| l.style.as_deref() == Some(style))
            .map(|(i, _)| *i)
            .min()
    }

    /// Advances the list `num_id` at `level` and renders its marker, or
    /// `None` when the list is unknown or numbering is switched off.
    fn next(&mut self, num_id: &str, level: u8) -> Option<String> {
        let (abs, levels, overrides) = self.levels(num_id)?;
        let state = self.lists.entry(abs).or_default();
        if !self.started.iter().any(|s| s == num_id) {
            self.started.push(num_id.to_string());
            for (l, start) in &overrides {
                let l = usize::from(*l);
                state.starts[l] = Some(*start);
                state.counters[l] = None;
            }
        }
        let l = usize::from(level.min(8));
        let start_of = |state: &ListState, i: usize| {
            state.starts[i]
                .or_else(|| levels.get(&(i as u8)).map(|lv| lv.start))
                .unwrap_or(1)
        };
        state.counters[l] = Some(match state.counters[l] {
            None => start_of(state, l),
            Some(c) => c.saturating_add(1),
        });
        for k in l + 1..9 {
            let restarts = match levels.get(&(k as u8)).and_then(|lv| lv.restart) {
                None => true,
                Some(0) => false,
                Some(r) => (l as u32) < r,
            };
            if restarts {
                state.counters[k] = None;
            }
        }
        let current = levels.get(&(l as u8))?;
        let values: Vec<u32> = (0..9)
            .map(|i| state.counters[i].unwrap_or_else(|| start_of(state, i)))
            .collect();
        Some(render_marker(current, &levels, &values))
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
            restart: val("w:lvlRestart").and_then(|s| s.parse().ok()),
            legal: lvl
                .child("w:isLgl")
                .is_some_and(|e| !matches!(e.attr("w:val"), Some("false" | "0" | "off"))),
            style: val("w:pStyle"),
        },
    ))
}

/// Fills `%1`…`%9` of the level text with the values, each in its own
/// level's format (all decimal under `w:isLgl`).
fn render_marker(current: &Level, levels: &HashMap<u8, Level>, values: &[u32]) -> String {
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
                let format = if current.legal { "decimal" } else { format };
                if format != "none" {
                    out.push_str(&format_number(values[idx].max(1), format));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// A counter in a `w:numFmt` format.
pub(super) fn format_number(n: u32, format: &str) -> String {
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
        "decimalEnclosedParen" if (1..=20).contains(&n) => {
            char::from_u32(0x2474 + n - 1).map_or(n.to_string(), String::from)
        }
        "decimalEnclosedFullstop" if (1..=20).contains(&n) => {
            char::from_u32(0x2488 + n - 1).map_or(n.to_string(), String::from)
        }
        "ideographEnclosedCircle" if (1..=10).contains(&n) => {
            char::from_u32(0x3220 + n - 1).map_or(n.to_string(), String::from)
        }
        "ideographDigital" => n
            .to_string()
            .chars()
            .map(|d| {
                "〇一二三四五六七八九"
                    .chars()
                    .nth(d as usize - '0' as usize)
                    .unwrap_or(d)
            })
            .collect(),
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

/// A complex field (`w:fldChar` begin … separate … end) being read.
#[derive(Debug)]
struct Field {
    /// Between begin and separate: the instruction, not shown.
    in_code: bool,
    /// A legacy check-box form field (`w:ffData/w:checkBox`): its state.
    checkbox: Option<bool>,
}

/// Fields nested deeper than this are read as if flat.
const MAX_FIELD_NESTING: usize = 32;

/// Walks the body, appending blocks.
struct Walker {
    styles: Styles,
    numbering: Numbering,
    blocks: Vec<Block>,
    /// Open complex fields, outermost first (a TOC field spans paragraphs).
    fields: Vec<Field>,
    /// How many table cells the walk is inside.
    cell_depth: usize,
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
                "w:sdt" | "w:customXml" | "w:sdtContent" | "w:ins" | "w:moveTo" => {
                    self.container(child);
                }
                _ => {}
            }
        }
    }

    fn paragraph(&mut self, p: &Element) {
        let mut text = String::new();
        let mut boxes = Vec::new();
        self.runs(p, &mut text, &mut boxes);
        // An instruction does not run on past its paragraph: a field whose
        // separator is missing must not swallow the rest of the document.
        for field in &mut self.fields {
            field.in_code = false;
        }
        let (block, _) = self.paragraph_block(p, text.trim());
        if let Some(block) = block {
            self.blocks.push(block);
        }
        for text_box in boxes {
            self.container(text_box);
        }
    }

    /// The list (numId, ilvl) of a paragraph: its own `w:numPr`, else its
    /// style's; a style list without a level takes the level tied to the
    /// style in the list definition.
    fn list_of(&self, ppr: Option<&Element>, style: &str) -> Option<(String, u8)> {
        let (own_id, own_level) = ppr.and_then(num_props).unwrap_or((None, None));
        let (id, level) = match own_id {
            Some(id) => {
                let level = own_level
                    .or_else(|| self.numbering.level_of_style(&id, style))
                    .unwrap_or(0);
                (id, level)
            }
            None => {
                let (id, style_level, owner) = self.styles.numbering(style)?;
                let level = own_level
                    .or(style_level)
                    .or_else(|| {
                        // The level tied to the paragraph's style or, up its
                        // chain, to the style that carries the list.
                        self.styles
                            .chain(style)
                            .iter()
                            .map(|s| s.id.as_str())
                            .chain(std::iter::once(owner.as_str()))
                            .find_map(|s| self.numbering.level_of_style(&id, s))
                    })
                    .unwrap_or(0);
                (id, level)
            }
        };
        (id != "0").then_some((id, level))
    }

    /// The block for a paragraph with `text`, and its rendered number.
    fn paragraph_block(&mut self, p: &Element, text: &str) -> (Option<Block>, Option<String>) {
        let ppr = p.child("w:pPr");
        let style = ppr
            .and_then(|x| x.path(&["w:pStyle"]))
            .and_then(|s| s.attr("w:val"))
            .unwrap_or("Normal");
        let num = self.list_of(ppr, style);
        let marker = num
            .as_ref()
            .and_then(|(id, level)| self.numbering.next(id, *level))
            .filter(|m| !m.is_empty());
        if text.is_empty() {
            // A numbered empty paragraph in a table cell may be a 序号 cell:
            // Word shows the number. `cell_text` keeps it when the cell has
            // nothing else.
            let shown = marker
                .clone()
                .filter(|m| self.cell_depth > 0 && m != "•")
                .map(|m| Block::ListItem {
                    text: String::new(),
                    number: Some(m),
                    level: num.as_ref().map_or(0, |(_, l)| *l),
                    page: None,
                });
            return (shown, marker);
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
    /// cells for the columns it covers, `gridBefore` columns are empty cells
    /// (trailing `gridAfter` columns are left off), and a `vMerge` continuation is an empty cell: the merged
    /// text stands once, in the first row of the merge. Rows and cells
    /// wrapped in content controls are read in place.
    fn table(&mut self, tbl: &Element) -> Block {
        let mut trs = Vec::new();
        wrapped(tbl, "w:tr", &mut trs);
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut header_rows = 0;
        let mut in_header = true;
        for tr in trs {
            let is_header = tr
                .path(&["w:trPr", "w:tblHeader"])
                .is_some_and(|h| !matches!(h.attr("w:val"), Some("false" | "0")));
            in_header &= is_header;
            if in_header {
                header_rows += 1;
            }
            let row = self.table_row(tr);
            rows.push(row);
        }
        Block::Table {
            rows,
            header_rows,
            page: None,
        }
    }

    fn table_row(&mut self, tr: &Element) -> Vec<String> {
        let grid = |name: &str| -> usize {
            tr.path(&["w:trPr", name])
                .and_then(|g| g.attr("w:val"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
                .min(64)
        };
        let mut row = vec![String::new(); grid("w:gridBefore")];
        let mut tcs = Vec::new();
        wrapped(tr, "w:tc", &mut tcs);
        for tc in tcs {
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
                String::new()
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
        self.cell_depth += 1;
        self.container(tc);
        self.cell_depth -= 1;
        let inner = std::mem::replace(&mut self.blocks, saved);
        let bare = |b: &Block| matches!(b, Block::ListItem { text, .. } if text.is_empty());
        if inner.iter().all(bare) {
            // A 序号 cell: its numbers are its text.
            return inner
                .iter()
                .filter_map(|b| match b {
                    Block::ListItem { number, .. } => number.clone(),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        inner
            .iter()
            .filter(|b| !bare(b))
            .map(Block::text)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn in_field_code(&self) -> bool {
        self.fields.iter().any(|f| f.in_code)
    }

    /// Collects the visible text of a paragraph's runs into `text`, and the
    /// text-box contents it anchors into `boxes`. Deleted text, field
    /// instructions and the VML fallback copy of a drawing are skipped; a
    /// field's result, a content control's content and a hyperlink's text
    /// are kept.
    fn runs<'a>(&mut self, element: &'a Element, text: &mut String, boxes: &mut Vec<&'a Element>) {
        for node in &element.children {
            let Node::Element(e) = node else { continue };
            match e.name.as_str() {
                "w:r" => self.run(e, text, boxes),
                "w:sdt" => match checkbox_glyph(e) {
                    Some(glyph) => text.push(glyph),
                    None => {
                        if let Some(content) = e.child("w:sdtContent") {
                            self.runs(content, text, boxes);
                        }
                    }
                },
                "w:txbxContent" => boxes.push(e),
                "w:del" | "w:moveFrom" | "w:delText" | "w:instrText" | "mc:Fallback" | "w:pPr"
                | "w:rPr" | "w:sdtPr" | "w:sdtEndPr" => {}
                _ => self.runs(e, text, boxes),
            }
        }
    }

    /// One `w:r`: text in the run's fonts, symbols, field characters. A
    /// hidden run (`w:vanish`) shows nothing: Word prints none of it, and
    /// templates hide instructions to the editor there.
    fn run<'a>(&mut self, r: &'a Element, text: &mut String, boxes: &mut Vec<&'a Element>) {
        let fonts = run_fonts(r);
        let hidden = r
            .path(&["w:rPr", "w:vanish"])
            .is_some_and(|v| !matches!(v.attr("w:val"), Some("0" | "false" | "off")));
        for node in &r.children {
            let Node::Element(e) = node else { continue };
            match e.name.as_str() {
                "w:fldChar" => self.field_char(e, text),
                _ if self.in_field_code() || hidden => {}
                "w:t" => text.push_str(&fonts.map(&e.own_text())),
                "w:sym" => {
                    if let Some(c) = e.attr("w:char").and_then(|c| sym_char(e.attr("w:font"), c)) {
                        text.push(c);
                    }
                }
                "w:tab" | "w:ptab" => text.push('\t'),
                "w:br" | "w:cr" => text.push('\n'),
                "w:noBreakHyphen" => text.push('-'),
                "w:txbxContent" => boxes.push(e),
                "w:delText" | "w:instrText" | "w:rPr" | "mc:Fallback" | "w:softHyphen" => {}
                _ => self.runs(e, text, boxes),
            }
        }
    }

    fn field_char(&mut self, e: &Element, text: &mut String) {
        match e.attr("w:fldCharType") {
            Some("begin") if self.fields.len() < MAX_FIELD_NESTING => {
                let checkbox = e.path(&["w:ffData", "w:checkBox"]).map(|b| {
                    let on = |x: &Element| !matches!(x.attr("w:val"), Some("0" | "false"));
                    match b.child("w:checked") {
                        Some(c) => on(c),
                        None => b.child("w:default").is_some_and(on),
                    }
                });
                self.fields.push(Field {
                    in_code: true,
                    checkbox,
                });
            }
            Some("separate") => {
                if let Some(field) = self.fields.last_mut() {
                    field.in_code = false;
                }
            }
            Some("end") => {
                if let Some(field) = self.fields.pop()
                    && let Some(checked) = field.checkbox
                    && !self.in_field_code()
                {
                    text.push(if checked { '☒' } else { '☐' });
                }
            }
            _ => {}
        }
    }
}

/// The `name` children of `element`, looking through content controls and
/// custom-XML wrappers (`w:sdt/w:sdtContent`, `w:customXml`).
fn wrapped<'a>(element: &'a Element, name: &str, out: &mut Vec<&'a Element>) {
    for child in element.elements() {
        if child.name == name {
            out.push(child);
        } else if matches!(
            child.name.as_str(),
            "w:sdt" | "w:sdtContent" | "w:customXml"
        ) {
            wrapped(child, name, out);
        }
    }
}

/// The symbol fonts of a run (`w:rPr/w:rFonts`).
fn run_fonts(r: &Element) -> RunFonts {
    match r.path(&["w:rPr", "w:rFonts"]) {
        Some(f) => RunFonts::new(
            f.attr("w:ascii"),
            f.attr("w:hAnsi"),
            &[f.attr("w:eastAsia"), f.attr("w:cs")],
        ),
        None => RunFonts::default(),
    }
}

/// The glyph of a check-box content control (`w14:checkbox`): its checked
/// or unchecked state character (mapped from its font), by default ☒ / ☐
/// as Word draws them.
fn checkbox_glyph(sdt: &Element) -> Option<char> {
    let checkbox = sdt.path(&["w:sdtPr", "w14:checkbox"])?;
    let checked = checkbox
        .child("w14:checked")
        .is_some_and(|c| matches!(c.attr("w14:val"), Some("1" | "true" | "on")));
    let (state, default) = if checked {
        ("w14:checkedState", '☒')
    } else {
        ("w14:uncheckedState", '☐')
    };
    let glyph = checkbox
        .child(state)
        .and_then(|s| sym_char(s.attr("w14:font"), s.attr("w14:val")?));
    Some(glyph.unwrap_or(default))
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
        // A vertically merged cell's text stands once, in the merge's first row.
        assert_eq!(rows[1], vec!["施工组织设计", "内容完整", "5分"]);
        assert_eq!(rows[2], vec!["", "措施可行", "3分"]);
    }
}

#[cfg(test)]
mod feature_tests {
    use super::*;

    fn doc_of(body: &str, extra: &[(&str, &str)]) -> ParsedDocument {
        let document = format!(
            r#"<w:document xmlns:w="w" xmlns:w14="w14" xmlns:mc="mc"><w:body>{body}</w:body></w:document>"#
        );
        let mut parts: Vec<(&str, &[u8])> = vec![("word/document.xml", document.as_bytes())];
        parts.extend(extra.iter().map(|(n, d)| (*n, d.as_bytes())));
        let bytes = crate::parse::zipread::test_zip(&parts);
        parse_docx(&bytes, &ParseLimits::default()).unwrap()
    }

    fn texts(doc: &ParsedDocument) -> Vec<String> {
        doc.blocks.iter().map(Block::text).collect()
    }

    #[test]
    fn content_controls_and_checkboxes() {
        let body = r#"
          <w:sdt><w:sdtPr><w:alias w:val="块"/></w:sdtPr><w:sdtContent>
            <w:p><w:r><w:t>块级控件内容</w:t></w:r></w:p></w:sdtContent></w:sdt>
          <w:p><w:r><w:t>投标人：</w:t></w:r><w:sdt><w:sdtPr><w:text/></w:sdtPr>
            <w:sdtContent><w:r><w:t>临江建设有限公司</w:t></w:r></w:sdtContent></w:sdt></w:p>
          <w:p><w:r><w:t>联合体：</w:t></w:r>
            <w:sdt><w:sdtPr><w14:checkbox><w14:checked w14:val="1"/>
              <w14:checkedState w14:val="2612" w14:font="MS Gothic"/>
              <w14:uncheckedState w14:val="2610" w14:font="MS Gothic"/></w14:checkbox></w:sdtPr>
              <w:sdtContent><w:r><w:t>☐</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t>否 </w:t></w:r>
            <w:sdt><w:sdtPr><w14:checkbox><w14:checked w14:val="0"/></w14:checkbox></w:sdtPr>
              <w:sdtContent><w:r><w:t>☒</w:t></w:r></w:sdtContent></w:sdt><w:r><w:t>是</w:t></w:r></w:p>
          <w:p><w:r><w:sym w:font="Wingdings" w:char="F0FE"/><w:t>适用 </w:t></w:r>
            <w:r><w:sym w:font="Wingdings" w:char="F0A8"/><w:t>不适用 </w:t></w:r>
            <w:r><w:sym w:font="Wingdings 2" w:char="00A3"/><w:t>其他 </w:t></w:r>
            <w:r><w:sym w:font="Wingdings" w:char="F0FC"/><w:t>已阅</w:t></w:r></w:p>
          <w:p><w:r><w:rPr><w:rFonts w:ascii="Wingdings" w:hAnsi="Wingdings"/></w:rPr><w:t>&#xF06F;</w:t></w:r>
            <w:r><w:t>样品 </w:t></w:r>
            <w:r><w:rPr><w:rFonts w:ascii="Wingdings 2" w:hAnsi="Wingdings 2"/></w:rPr><w:t>R</w:t></w:r>
            <w:r><w:t>演示</w:t></w:r></w:p>"#;
        // The XML parser refuses character references, so the private-use
        // character goes in literally.
        let body = body.replace("&#xF06F;", "\u{F06F}");
        let doc = doc_of(&body, &[]);
        assert_eq!(
            texts(&doc),
            vec![
                "块级控件内容",
                "投标人：临江建设有限公司",
                "联合体：☒否 ☐是",
                "☑适用 □不适用 □其他 √已阅",
                "□样品 ☑演示",
            ]
        );
    }

    #[test]
    fn hidden_runs_show_nothing() {
        let body = r#"
          <w:p><w:r><w:t>投标截止时间：</w:t></w:r>
            <w:r><w:rPr><w:vanish/></w:rPr><w:t>（编者注：此处填写日期）</w:t></w:r>
            <w:r><w:t>2026年1月5日9时30分</w:t></w:r>
            <w:r><w:rPr><w:vanish w:val="0"/></w:rPr><w:t>。</w:t></w:r></w:p>"#;
        let doc = doc_of(body, &[]);
        assert_eq!(texts(&doc), vec!["投标截止时间：2026年1月5日9时30分。"]);
    }

    #[test]
    fn field_results_stay_and_instructions_go() {
        let body = r#"
          <w:p><w:fldSimple w:instr=" DOCPROPERTY 项目编号 "><w:r><w:t>LJ-2024-017</w:t></w:r></w:fldSimple></w:p>
          <w:p><w:r><w:t>见第</w:t></w:r><w:r><w:fldChar w:fldCharType="begin"/></w:r>
            <w:r><w:instrText> REF _Ref1 \h </w:instrText></w:r>
            <w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>QUOTE</w:instrText></w:r>
            <w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>内层代码结果</w:t></w:r>
            <w:r><w:fldChar w:fldCharType="end"/></w:r>
            <w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>19.6</w:t></w:r>
            <w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:t>条</w:t></w:r></w:p>
          <w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>TOC \o "1-3"</w:instrText></w:r>
            <w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>第一章 招标公告</w:t></w:r></w:p>
          <w:p><w:r><w:t>第二章 投标人须知</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>
          <w:p><w:r><w:fldChar w:fldCharType="begin"><w:ffData><w:checkBox><w:default w:val="1"/></w:checkBox></w:ffData></w:fldChar></w:r>
            <w:r><w:instrText> FORMCHECKBOX </w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r>
            <w:r><w:t>接受</w:t></w:r></w:p>
          <w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>PAGE</w:instrText></w:r></w:p>
          <w:p><w:r><w:t>未闭合的域之后的正文</w:t></w:r></w:p>"#;
        let doc = doc_of(body, &[]);
        let all = texts(&doc);
        assert_eq!(all[0], "LJ-2024-017");
        assert_eq!(all[1], "见第19.6条");
        assert!(all.contains(&"第二章 投标人须知".to_string()), "{all:?}");
        assert!(all.iter().any(|t| t.contains("第一章 招标公告")));
        assert!(all.contains(&"☒接受".to_string()), "{all:?}");
        assert!(all.contains(&"未闭合的域之后的正文".to_string()), "{all:?}");
        let text = doc.plain_text();
        for code in [
            "REF",
            "QUOTE",
            "TOC",
            "内层代码结果",
            "FORMCHECKBOX",
            "PAGE",
        ] {
            assert!(!text.contains(code), "{code} leaked: {text}");
        }
    }

    const SEQ_NUMBERING: &str = r#"<w:numbering xmlns:w="w">
        <w:abstractNum w:abstractNumId="3">
          <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1"/></w:lvl>
        </w:abstractNum>
        <w:num w:numId="4"><w:abstractNumId w:val="3"/></w:num>
        </w:numbering>"#;

    #[test]
    fn tables_merge_nest_and_align() {
        let cell = |t: &str| format!("<w:tc><w:p><w:r><w:t>{t}</w:t></w:r></w:p></w:tc>");
        let seq = r#"<w:tc><w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="4"/></w:numPr></w:pPr></w:p></w:tc>"#;
        let body = format!(
            r#"<w:tbl>
              <w:tr>{a}{b}{c}</w:tr>
              <w:tr>{seq}<w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>投标保证金</w:t></w:r></w:p></w:tc>{d}</w:tr>
              <w:tr>{seq}<w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc>{e}</w:tr>
              <w:sdt><w:sdtContent><w:tr><w:sdt><w:sdtContent>{seq}{f}</w:sdtContent></w:sdt>{g}</w:tr></w:sdtContent></w:sdt>
              <w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr>
                <w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr><w:p><w:r><w:t>合计</w:t></w:r></w:p></w:tc></w:tr>
              <w:tr>{seq}{h}<w:tc><w:p><w:r><w:t>附表：</w:t></w:r></w:p>
                <w:tbl><w:tr>{x}{y}</w:tr></w:tbl></w:tc></w:tr>
            </w:tbl>"#,
            a = cell("序号"),
            b = cell("事项"),
            c = cell("要求"),
            d = cell("金额：5000元"),
            e = cell("形式：电汇"),
            f = cell("投标有效期"),
            g = cell("90天"),
            h = cell("资格"),
            x = cell("营业执照"),
            y = cell("必须"),
        );
        let doc = doc_of(&body, &[("word/numbering.xml", SEQ_NUMBERING)]);
        let Some(Block::Table { rows, .. }) = doc.blocks.first() else {
            panic!("{:?}", doc.blocks);
        };
        assert_eq!(rows[0], vec!["序号", "事项", "要求"]);
        assert_eq!(rows[1], vec!["1", "投标保证金", "金额：5000元"]);
        assert_eq!(rows[2], vec!["2", "", "形式：电汇"]);
        assert_eq!(rows[3], vec!["3", "投标有效期", "90天"]);
        assert_eq!(rows[4], vec!["", "合计", ""]);
        assert_eq!(rows[5], vec!["4", "资格", "附表：\n营业执照 | 必须"]);
        assert_eq!(doc.plain_text().matches("投标保证金").count(), 1);
    }

    #[test]
    fn numbering_as_word_counts_it() {
        let numbering = r#"<w:numbering xmlns:w="w">
          <w:abstractNum w:abstractNumId="0">
            <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="第%1章"/><w:pStyle w:val="Chapter"/></w:lvl>
            <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="%2、"/><w:pStyle w:val="Section"/></w:lvl>
            <w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="chineseCounting"/><w:lvlText w:val="（%3）"/></w:lvl>
          </w:abstractNum>
          <w:abstractNum w:abstractNumId="1">
            <w:lvl w:ilvl="0"><w:start w:val="10"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>
            <w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>
          </w:abstractNum>
          <w:abstractNum w:abstractNumId="2">
            <w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="upperLetter"/><w:lvlText w:val="%1."/></w:lvl>
            <w:lvl w:ilvl="1"><w:start w:val="1"/><w:lvlRestart w:val="0"/><w:numFmt w:val="lowerRoman"/><w:lvlText w:val="%2)"/></w:lvl>
            <w:lvl w:ilvl="2"><w:start w:val="1"/><w:isLgl/><w:numFmt w:val="decimalEnclosedCircle"/><w:lvlText w:val="%1.%2.%3"/></w:lvl>
          </w:abstractNum>
          <w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num>
          <w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num>
          <w:num w:numId="3"><w:abstractNumId w:val="1"/>
            <w:lvlOverride w:ilvl="1"><w:startOverride w:val="6"/></w:lvlOverride></w:num>
          <w:num w:numId="5"><w:abstractNumId w:val="2"/></w:num>
          </w:numbering>"#;
        let styles = r#"<w:styles xmlns:w="w">
          <w:style w:type="paragraph" w:styleId="Chapter"><w:name w:val="heading 1"/>
            <w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
          <w:style w:type="paragraph" w:styleId="Section"><w:name w:val="Section"/><w:basedOn w:val="Base"/></w:style>
          <w:style w:type="paragraph" w:styleId="Base"><w:name w:val="Base"/>
            <w:pPr><w:outlineLvl w:val="1"/><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
          </w:styles>"#;
        let p = |style: &str, num: &str, t: &str| {
            let style = if style.is_empty() {
                String::new()
            } else {
                format!(r#"<w:pStyle w:val="{style}"/>"#)
            };
            format!("<w:p><w:pPr>{style}{num}</w:pPr><w:r><w:t>{t}</w:t></w:r></w:p>")
        };
        let np = |id: &str, level: &str| {
            format!(r#"<w:numPr><w:ilvl w:val="{level}"/><w:numId w:val="{id}"/></w:numPr>"#)
        };
        let only_level = r#"<w:numPr><w:ilvl w:val="2"/></w:numPr>"#;
        let body = [
            p("Chapter", "", "招标公告"),
            p("Section", "", "项目基本情况"),
            p("Section", only_level, "采购内容"),
            p("Section", only_level, "服务期限"),
            p("Section", "", "投标人资格要求"),
            p("Chapter", "", "投标人须知"),
            p("Section", "", "说明"),
            p("", &np("2", "1"), "投标人应提交投标保证金。"),
            p("", &np("2", "1"), "投标保证金形式。"),
            p("", &np("3", "1"), "重新起算的条款。"),
            p("", &np("5", "0"), "甲"),
            p("", &np("5", "1"), "乙"),
            p("", &np("5", "0"), "丙"),
            p("", &np("5", "1"), "丁"),
            p("", &np("5", "2"), "戊"),
            p(
                "",
                r#"<w:numPr><w:ilvl w:val="0"/><w:numId w:val="0"/></w:numPr>"#,
                "无编号",
            ),
        ]
        .concat();
        let doc = doc_of(
            &body,
            &[
                ("word/numbering.xml", numbering),
                ("word/styles.xml", styles),
            ],
        );
        assert_eq!(
            texts(&doc),
            vec![
                "第一章 招标公告",
                "一、 项目基本情况",
                "（一） 采购内容",
                "（二） 服务期限",
                "二、 投标人资格要求",
                "第二章 投标人须知",
                "一、 说明",
                "10.1 投标人应提交投标保证金。",
                "10.2 投标保证金形式。",
                "10.6 重新起算的条款。",
                "A. 甲",
                "i) 乙",
                "B. 丙",
                "ii) 丁",
                "2.2.1 戊",
                "无编号",
            ]
        );
        assert!(
            matches!(&doc.blocks[0], Block::Heading { level: 1, number: Some(n), .. } if n == "第一章")
        );
        assert!(
            matches!(&doc.blocks[1], Block::Heading { level: 2, number: Some(n), .. } if n == "一、")
        );
        assert!(matches!(&doc.blocks[7], Block::ListItem { level: 1, .. }));
    }
}
