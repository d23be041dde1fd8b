//! Layout analysis: placed glyphs and rules into headings, paragraphs and
//! tables, in reading order.
//!
//! Rules for the genre, not for one file:
//! - Tables are where ruled grids are: connected horizontal and vertical
//!   rules give column and row boundaries; each glyph goes to the cell its
//!   centre falls in. A table that goes on at the top of the next page with
//!   the same columns is the same table; a repeated header row is dropped,
//!   and a row whose first cell is empty continues the row before it.
//! - Lines are glyphs on one baseline. A space is inserted where the gap
//!   between glyphs is wide, except next to CJK text: the small gaps office
//!   suites put between Chinese and Latin text or digits ("540 日历天") are
//!   spacing, not spaces.
//! - Lines in the top and bottom margins that repeat on many pages (digits
//!   aside), and bare page numbers there, are running headers and footers.
//! - Lines join into a paragraph until a wide vertical gap, a short line, a
//!   change of font size, or a heading; a paragraph that fills its last line
//!   goes on across the page break.
//! - Lines set larger than the body text are headings, levels by size.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::{Glyph, Page, Rule};
use crate::document::{Block, ParsedDocument};
use crate::parse::textutil::{clause_number, is_cjk, join_wrapped};

/// Rules this close (points) touch.
const SNAP: f64 = 2.0;
/// Share of the page height at the top where running heads live.
const TOP_ZONE: f64 = 0.1;
/// Share at the bottom where running feet live: Word's footers often sit
/// an inch and a half up from the edge.
const BOTTOM_ZONE: f64 = 0.15;

/// Builds the document from the pages.
pub fn build_document(pages: &[Page]) -> ParsedDocument {
    let body_size = body_font_size(pages);
    let heading_sizes = heading_sizes(pages, body_size);
    let margins: Vec<PageLines> = pages.iter().map(PageLines::of).collect();
    let furniture = running_furniture(pages, &margins);
    let column_right = column_right(&margins);
    let mut items: Vec<Item> = Vec::new();
    for (page, lines) in pages.iter().zip(margins) {
        items.extend(page_items(
            page,
            lines,
            &furniture.keys,
            body_size,
            column_right,
        ));
    }
    let pitch = line_pitch(&items);
    let blocks = assemble(items, body_size, pitch, &heading_sizes);
    let mut doc = ParsedDocument::new("pdf", blocks);
    doc.meta.furniture = furniture.texts;
    doc
}

/// A line of text or a table, placed on a page.
#[derive(Debug, Clone)]
enum Item {
    Line(Line),
    Table(Grid),
}

/// A line of text.
#[derive(Debug, Clone)]
struct Line {
    page: u32,
    text: String,
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
    /// Right edge of the page's text column.
    column_right: f64,
    /// First body line of its page.
    page_start: bool,
    /// Width of the line's first word (its first character in CJK text):
    /// had it fitted at the end of the line above, the writer's program
    /// would have set it there.
    first_word: f64,
    /// Left edge of the text after a leading clause number or list marker
    /// ("1. ", "（一）", "•"): where a hanging indent puts the wrapped lines.
    text_x0: f64,
}

/// A table cut from one page.
#[derive(Debug, Clone)]
struct Grid {
    page: u32,
    columns: Vec<f64>,
    rows: Vec<Vec<String>>,
    top: f64,
}

/// The most common glyph size, weighted by characters: the body text.
fn body_font_size(pages: &[Page]) -> f64 {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for g in pages.iter().flat_map(|p| &p.glyphs) {
        *counts.entry((g.size * 2.0).round() as i64).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(size, n)| (*n, *size))
        .map_or(10.0, |(size, _)| size as f64 / 2.0)
}

/// Sizes above the body size, largest first: heading levels 1, 2, ...
fn heading_sizes(pages: &[Page], body: f64) -> Vec<f64> {
    let mut sizes: Vec<i64> = pages
        .iter()
        .flat_map(|p| &p.glyphs)
        .filter(|g| g.size > body * 1.1)
        .map(|g| (g.size * 2.0).round() as i64)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes.reverse();
    sizes.into_iter().take(6).map(|s| s as f64 / 2.0).collect()
}

/// A page's lines with text, top to bottom, with their texts and whether
/// each is in a margin (see [`margin_flags`]): read once for both the
/// running furniture and the column's right edge.
struct PageLines<'a> {
    lines: Vec<Vec<&'a Glyph>>,
    texts: Vec<String>,
    margin: Vec<bool>,
}

impl<'a> PageLines<'a> {
    fn of(page: &'a Page) -> Self {
        Self::of_glyphs(page, page.glyphs.iter().collect())
    }

    /// The lines of some of the page's glyphs (those outside its grids).
    fn of_glyphs(page: &Page, glyphs: Vec<&'a Glyph>) -> Self {
        let (lines, texts): (Vec<Vec<&Glyph>>, Vec<String>) = raw_lines_of(glyphs)
            .into_iter()
            .map(|l| {
                let text = line_text(&l);
                (l, text)
            })
            .filter(|(_, text)| !text.trim().is_empty())
            .unzip();
        let margin = margin_flags(&lines, page);
        PageLines {
            lines,
            texts,
            margin,
        }
    }
}

/// Running headers and footers: the keys to drop and their texts.
struct Furniture {
    keys: Vec<String>,
    texts: Vec<String>,
}

/// Lines in the margin zones, set apart from the body, that repeat (digits
/// aside) on at least a third of the pages, two at least.
fn running_furniture(pages: &[Page], margins: &[PageLines]) -> Furniture {
    let mut seen: HashMap<String, (usize, String)> = HashMap::new();
    for page in margins {
        let mut keys: Vec<(String, String)> = page
            .texts
            .iter()
            .zip(&page.margin)
            .filter(|(_, margin)| **margin)
            .map(|(text, _)| (furniture_key(text), text.clone()))
            .collect();
        keys.sort();
        keys.dedup_by(|a, b| a.0 == b.0);
        for (key, text) in keys {
            seen.entry(key).or_insert((0, text)).0 += 1;
        }
    }
    let needed = (pages.len() / 3).max(2);
    let mut furniture = Furniture {
        keys: Vec::new(),
        texts: Vec::new(),
    };
    for (key, (count, text)) in seen {
        // Page numbers are dropped on their own; they are not worth keeping.
        if count >= needed && !is_page_number(&text) {
            furniture.keys.push(key);
            furniture.texts.push(text);
        }
    }
    furniture.texts.sort();
    furniture
}

/// Which of a page's lines (top to bottom) are running heads or feet: the
/// lines in the top or bottom margin zone, when a gap wider than body line
/// spacing parts them from the rest. A body line that happens to end a page
/// low down is not parted so, and stays text even when the same sentence
/// recurs on other pages.
fn margin_flags(lines: &[Vec<&Glyph>], page: &Page) -> Vec<bool> {
    let mut flags = vec![false; lines.len()];
    let y = |i: usize| lines[i][0].y;
    let sizes: Vec<f64> = lines.iter().map(|l| line_size(l, 1.0).max(1.0)).collect();
    let size = |i: usize| sizes[i];
    // Set apart by a gap wider than body line spacing, or by a clearly
    // smaller size (a Word footer may sit right under the last body line).
    let parted = |a: usize, b: usize| {
        let (big, small) = (size(a).max(size(b)), size(a).min(size(b)));
        y(b) - y(a) > 1.8 * big || small < big * 0.8
    };
    let top = (0..lines.len())
        .take_while(|i| y(*i) < page.height * TOP_ZONE)
        .count();
    if top > 0 && (top == lines.len() || parted(top - 1, top)) {
        flags[..top].iter_mut().for_each(|f| *f = true);
    }
    let bottom = (0..lines.len())
        .rev()
        .take_while(|i| y(*i) > page.height * (1.0 - BOTTOM_ZONE))
        .count();
    let first = lines.len() - bottom;
    if bottom > 0 && (first == 0 || parted(first - 1, first)) {
        flags[first..].iter_mut().for_each(|f| *f = true);
    } else if let Some(f) = (first.max(1)..lines.len())
        .rev()
        .find(|f| size(*f) < size(f - 1) * 0.8)
        && (f..lines.len()).all(|i| size(i) < size(f - 1) * 0.8)
    {
        // Body text may run low into the zone: then only a foot set
        // smaller than the body above it is furniture.
        flags[f..].iter_mut().for_each(|f| *f = true);
    }
    flags
}

/// A line's text with digits folded, so "Page 3" and "Page 4" match.
fn furniture_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// A bare page number: "3", "- 3 -", "第 3 页", "Page 3 of 20", "3/20".
static PAGE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^(?:
            (?:page\s*)?[-–—]?\s*\d+\s*[-–—]?
          | (?:page\s*)?\d+\s*(?:of|/)\s*\d+
          | 第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?
          | 共\s*\d+\s*页\s*[,，]?\s*第\s*\d+\s*页
        )$",
    )
    .expect("page-number pattern is valid")
});

fn is_page_number(text: &str) -> bool {
    PAGE_NUMBER.is_match(text.trim())
}

/// The right edge of the text column: the upper quartile over pages of
/// the rightmost body line, so neither a page with only short lines nor
/// one odd wide line sets it.
fn column_right(margins: &[PageLines]) -> f64 {
    let mut edges: Vec<f64> = margins
        .iter()
        .filter_map(|page| {
            page.lines
                .iter()
                .zip(&page.margin)
                .filter(|(_, margin)| !**margin)
                .map(|(l, _)| line_right(l))
                .reduce(f64::max)
        })
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.get(edges.len() * 3 / 4).copied().unwrap_or(0.0)
}

/// The items of one page, top to bottom. `all_lines` are the lines of all
/// its glyphs: when no glyph is in a ruled grid, they are the free lines.
fn page_items<'a>(
    page: &'a Page,
    all_lines: PageLines<'a>,
    furniture: &[String],
    body_size: f64,
    column_right: f64,
) -> Vec<Item> {
    let grids = find_grids(&page.rules);
    let mut free: Vec<&Glyph> = Vec::new();
    let mut cells: Vec<Vec<&Glyph>> = vec![Vec::new(); grids.len()];
    for g in &page.glyphs {
        let (cx, cy) = (g.x + g.width / 2.0, g.y - g.size * 0.3);
        match grids.iter().position(|grid| grid.contains(cx, cy)) {
            Some(i) => cells[i].push(g),
            None => free.push(g),
        }
    }
    let mut items: Vec<(f64, Item)> = Vec::new();
    for (grid, glyphs) in grids.iter().zip(cells) {
        if let Some(table) = grid.fill(page.number, &glyphs) {
            items.push((table.top, Item::Table(table)));
        }
    }
    let free_lines = if free.len() == page.glyphs.len() {
        all_lines
    } else {
        PageLines::of_glyphs(page, free)
    };
    let lines: Vec<(Vec<&Glyph>, String)> = free_lines
        .lines
        .into_iter()
        .zip(free_lines.texts)
        .zip(free_lines.margin)
        .filter(|((_, text), margin)| {
            !(*margin && (furniture.contains(&furniture_key(text)) || is_page_number(text)))
        })
        .map(|(line, _)| line)
        .collect();
    let (tables, lines) = borderless_tables(page.number, lines);
    items.extend(tables.into_iter().map(|t| (t.top, Item::Table(t))));
    for (line, text) in lines {
        let size = line_size(&line, body_size);
        let text = text.trim().to_string();
        let text_x0 = text_start(&line, &text);
        items.push((
            line[0].y,
            Item::Line(Line {
                page: page.number,
                x0: line[0].x,
                x1: line_right(&line),
                y: line[0].y,
                size,
                column_right,
                page_start: false,
                first_word: first_word_width(&line),
                text_x0,
                text,
            }),
        ));
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut items: Vec<Item> = items.into_iter().map(|(_, i)| i).collect();
    if let Some(Item::Line(first)) = items.first_mut() {
        first.page_start = true;
    }
    items
}

/// Width of a line's first word: its visible glyphs up to a space, a wide
/// gap or a CJK character (one CJK character is a word).
fn first_word_width(line: &[&Glyph]) -> f64 {
    let mut visible = line
        .iter()
        .skip_while(|g| g.text.trim().is_empty())
        .peekable();
    let Some(first) = visible.peek() else {
        return 0.0;
    };
    let left = first.x;
    let mut right = left;
    // Line breaking keeps an opening bracket with what follows, a run of
    // Latin letters or digits together, and closing punctuation with what
    // precedes: "〔2026〕112号" does not break before "号".
    let mut ideograph = false;
    for g in visible {
        if g.text.trim().is_empty() || (right > left && g.x - right > g.size * 0.2) {
            break;
        }
        let c = g.text.chars().next().unwrap_or(' ');
        let is_ideograph = is_cjk(c) && !is_cjk_punctuation(c);
        if ideograph && !is_closing(c) {
            break;
        }
        if is_ideograph && right > left && !is_opening_run(line, left, right) {
            break;
        }
        ideograph |= is_ideograph;
        right = g.x + g.width;
    }
    right - left
}

/// CJK punctuation and full-width forms other than letters and digits.
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0xFE30..=0xFE4F)
        || (matches!(c as u32, 0xFF00..=0xFFEF) && !c.is_alphanumeric())
}

fn is_closing(c: char) -> bool {
    "，。、；：！？）】》〕」』”’,.;:!?)]%％".contains(c)
}

/// Whether the glyphs from `left` to `right` are all opening brackets.
fn is_opening_run(line: &[&Glyph], left: f64, right: f64) -> bool {
    line.iter()
        .filter(|g| g.x >= left && g.x + g.width <= right + 0.01)
        .all(|g| g.text.chars().all(|c| "（【《〔「『“‘([".contains(c)))
}

/// Left edge of the text after the line's leading marker: a clause number
/// or a bullet and the spaces after it; the line's own left edge when it
/// has none.
fn text_start(line: &[&Glyph], text: &str) -> f64 {
    let x0 = line.first().map_or(0.0, |g| g.x);
    let marker = clause_number(text)
        .map(|n| n.chars().count())
        .or_else(|| text.chars().next().filter(|c| is_bullet(*c)).map(|_| 1));
    let Some(marker) = marker else {
        return x0;
    };
    let mut seen = 0;
    let mut glyphs = line.iter().skip_while(|g| g.text.trim().is_empty());
    for g in glyphs.by_ref() {
        seen += g.text.chars().count();
        if seen >= marker {
            break;
        }
    }
    glyphs
        .find(|g| !g.text.trim().is_empty())
        .map_or(x0, |g| g.x)
}

/// Bullet and checkbox glyphs that open a list item or an option.
fn is_bullet(c: char) -> bool {
    matches!(
        c,
        '•' | '●'
            | '○'
            | '▪'
            | '■'
            | '□'
            | '☐'
            | '☑'
            | '☒'
            | '√'
            | '◆'
            | '◇'
            | '➢'
            | '►'
            | '-'
            | '–'
    )
}

/// A gap this many font sizes wide inside a line separates table columns
/// (word spaces are a quarter of that; full-width spaces are glyphs).
const COLUMN_GAP: f64 = 2.0;
/// Fewest rows an unruled table needs.
const MIN_TABLE_ROWS: usize = 3;

/// One column-separated stretch of a line.
struct Segment {
    x0: f64,
    x1: f64,
    text: String,
}

/// Splits a line where visible glyphs are a column gap apart.
fn segments(line: &[&Glyph]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut start = 0;
    let mut last_visible: Option<&Glyph> = None;
    let close = |from: usize, to: usize, out: &mut Vec<Segment>| {
        let part = &line[from..to];
        let text = line_text(part).trim().to_string();
        if !text.is_empty() {
            let visible: Vec<&&Glyph> = part.iter().filter(|g| !g.text.trim().is_empty()).collect();
            out.push(Segment {
                x0: visible.first().map_or(part[0].x, |g| g.x),
                x1: visible.iter().map(|g| g.x + g.width).fold(0.0, f64::max),
                text,
            });
        }
    };
    for (i, g) in line.iter().enumerate() {
        if g.text.trim().is_empty() {
            continue;
        }
        if let Some(p) = last_visible
            && g.x - (p.x + p.width) > COLUMN_GAP * p.size.max(g.size)
        {
            close(start, i, &mut out);
            start = i;
        }
        last_visible = Some(g);
    }
    close(start, line.len(), &mut out);
    out
}

/// Tables without rules: runs of at least three consecutive lines split
/// into the same columns (starts or ends aligned). A line whose segments
/// all sit under later columns continues the row above (a wrapped cell).
/// Two-column runs whose first column is only list markers ("1)", "(2)")
/// are lists, not tables.
fn borderless_tables(
    page: u32,
    lines: Vec<(Vec<&Glyph>, String)>,
) -> (Vec<Grid>, Vec<(Vec<&Glyph>, String)>) {
    let segs: Vec<Vec<Segment>> = lines.iter().map(|(l, _)| segments(l)).collect();
    let mut tables = Vec::new();
    let mut used = vec![false; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if segs[i].len() < 2 {
            i += 1;
            continue;
        }
        let anchors = &segs[i];
        let mut rows: Vec<Vec<String>> = vec![anchors.iter().map(|s| s.text.clone()).collect()];
        let mut j = i + 1;
        while j < lines.len() {
            let size = lines[j].0[0].size.max(1.0);
            if lines[j].0[0].y - lines[j - 1].0[0].y > size * 3.0 {
                break;
            }
            if let Some(row) = aligned_row(anchors, &segs[j]) {
                rows.push(row);
            } else if let Some(more) = continuation(anchors, &segs[j]) {
                if let Some(last) = rows.last_mut() {
                    for (col, text) in more {
                        last[col] = join_wrapped(&last[col], &text);
                    }
                }
            } else {
                break;
            }
            j += 1;
        }
        let is_list = anchors.len() == 2 && rows.iter().all(|r| is_marker(&r[0]));
        if rows.len() >= MIN_TABLE_ROWS && !is_list {
            used[i..j].iter_mut().for_each(|u| *u = true);
            tables.push(Grid {
                page,
                columns: anchors.iter().map(|s| s.x0).collect(),
                rows,
                top: lines[i].0[0].y - lines[i].0[0].size,
            });
            i = j;
        } else {
            i += 1;
        }
    }
    let rest = lines
        .into_iter()
        .zip(used)
        .filter_map(|(l, u)| (!u).then_some(l))
        .collect();
    (tables, rest)
}

/// The cells of a line whose segments match the anchors one to one.
fn aligned_row(anchors: &[Segment], segs: &[Segment]) -> Option<Vec<String>> {
    let matches = segs.len() == anchors.len()
        && anchors
            .iter()
            .zip(segs)
            .all(|(a, s)| (a.x0 - s.x0).abs() < 6.0 || (a.x1 - s.x1).abs() < 6.0);
    matches.then(|| segs.iter().map(|s| s.text.clone()).collect())
}

/// (column, text) of a wrapped line whose segments start under columns
/// after the first.
fn continuation(anchors: &[Segment], segs: &[Segment]) -> Option<Vec<(usize, String)>> {
    segs.iter()
        .map(|s| {
            let col = anchors.iter().position(|a| (a.x0 - s.x0).abs() < 6.0)?;
            (col > 0).then(|| (col, s.text.clone()))
        })
        .collect()
}

/// A list marker: "1", "1)", "(2)", "a.", "一、".
fn is_marker(text: &str) -> bool {
    text.chars().count() <= 5
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || "().、）（．.•-–".contains(c)
                || "一二三四五六七八九十".contains(c)
        })
}

/// Glyphs grouped into lines by baseline, each sorted left to right.
fn raw_lines_of(mut glyphs: Vec<&Glyph>) -> Vec<Vec<&Glyph>> {
    glyphs.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    let mut lines: Vec<Vec<&Glyph>> = Vec::new();
    for g in glyphs {
        match lines.last_mut() {
            Some(line) if (g.y - line[0].y).abs() <= line[0].size.max(g.size) * 0.35 => {
                line.push(g)
            }
            _ => lines.push(vec![g]),
        }
    }
    for line in &mut lines {
        line.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    lines
}

fn line_right(line: &[&Glyph]) -> f64 {
    line.iter().map(|g| g.x + g.width).fold(0.0, f64::max)
}

/// The size most of a line's visible glyphs are set in.
fn line_size(line: &[&Glyph], fallback: f64) -> f64 {
    let mut sizes: Vec<f64> = line
        .iter()
        .filter(|g| !g.text.trim().is_empty())
        .map(|g| g.size)
        .collect();
    sizes.sort_by(f64::total_cmp);
    sizes.get(sizes.len() / 2).copied().unwrap_or(fallback)
}

/// A line's text: glyphs in order, with spaces where gaps are wide, none
/// next to CJK text unless the gap is a real separation (a tab stop).
fn line_text(line: &[&Glyph]) -> String {
    let mut out = String::new();
    let mut prev: Option<&Glyph> = None;
    for g in line {
        if let Some(p) = prev {
            let gap = g.x - (p.x + p.width);
            let size = p.size.max(g.size).max(1.0);
            let last = out.chars().last().unwrap_or(' ');
            let next = g.text.chars().next().unwrap_or(' ');
            let explicit = last.is_whitespace() || next.is_whitespace();
            let cjk = is_cjk(last) || is_cjk(next);
            let wide = if cjk { size * 0.9 } else { size * 0.2 };
            if !explicit && gap > wide {
                out.push(' ');
            }
        }
        // Justified Word text draws its spaces as runs of space glyphs.
        let blank = g.text.chars().all(|c| c == ' ');
        if !(blank && out.ends_with(' ')) {
            out.push_str(&g.text);
        }
        prev = Some(g);
    }
    out
}

/// A ruled grid found on a page.
#[derive(Debug, Clone)]
struct GridFrame {
    xs: Vec<f64>,
    ys: Vec<f64>,
    /// The vertical rules (x, top, bottom): which column boundaries a row
    /// really has, so a cell merged across columns stays one cell.
    verticals: Vec<(f64, f64, f64)>,
}

impl GridFrame {
    fn contains(&self, x: f64, y: f64) -> bool {
        let (Some(x0), Some(x1), Some(y0), Some(y1)) = (
            self.xs.first(),
            self.xs.last(),
            self.ys.first(),
            self.ys.last(),
        ) else {
            return false;
        };
        x >= *x0 - 1.0 && x <= *x1 + 1.0 && y >= *y0 - 1.0 && y <= *y1 + 1.0
    }

    /// Cell texts: glyphs by cell, lines joined within a cell.
    fn fill(&self, page: u32, glyphs: &[&Glyph]) -> Option<Grid> {
        let cols = self.xs.len() - 1;
        let rows = self.ys.len() - 1;
        let open = self.merged_boundaries();
        let mut buckets: Vec<Vec<Vec<&Glyph>>> = vec![vec![Vec::new(); cols]; rows];
        for g in glyphs {
            let cx = g.x + g.width / 2.0;
            let cy = g.y - g.size * 0.3;
            let c = self
                .xs
                .iter()
                .rposition(|x| *x <= cx)
                .unwrap_or(0)
                .min(cols - 1);
            let r = self
                .ys
                .iter()
                .rposition(|y| *y <= cy)
                .unwrap_or(0)
                .min(rows - 1);
            // A glyph in a merged cell belongs to the cell's first column.
            let mut c = c;
            while c > 0 && open[r][c] {
                c -= 1;
            }
            buckets[r][c].push(g);
        }
        let rows: Vec<Vec<String>> = buckets
            .into_iter()
            .map(|row| row.into_iter().map(cell_text).collect::<Vec<_>>())
            .filter(|row: &Vec<String>| row.iter().any(|c| !c.is_empty()))
            .collect();
        (!rows.is_empty()).then(|| Grid {
            page,
            columns: self.xs.clone(),
            rows,
            top: self.ys[0],
        })
    }
}

impl GridFrame {
    /// For each row, which inner column boundaries no vertical rule
    /// crosses there (`open[row][col]`: the cell left of column `col`
    /// runs on into it). Rows x boundaries x rules: a table's few dozen.
    fn merged_boundaries(&self) -> Vec<Vec<bool>> {
        let rows = self.ys.len() - 1;
        let cols = self.xs.len() - 1;
        (0..rows)
            .map(|r| {
                let mid = (self.ys[r] + self.ys[r + 1]) / 2.0;
                (0..cols)
                    .map(|c| {
                        c > 0
                            && !self.verticals.iter().any(|(x, y0, y1)| {
                                (x - self.xs[c]).abs() <= 3.0
                                    && *y0 - SNAP <= mid
                                    && mid <= *y1 + SNAP
                            })
                    })
                    .collect()
            })
            .collect()
    }
}

/// A cell's glyphs as text, wrapped lines joined by script.
fn cell_text(glyphs: Vec<&Glyph>) -> String {
    raw_lines_of(glyphs)
        .iter()
        .map(|l| line_text(l).trim().to_string())
        .filter(|t| !t.is_empty())
        .fold(String::new(), |acc, line| {
            if acc.is_empty() {
                line
            } else {
                join_wrapped(&acc, &line)
            }
        })
}

/// Connected sets of rules with at least three vertical and two horizontal
/// boundaries (two columns): the table grids of a page.
fn find_grids(rules: &[Rule]) -> Vec<GridFrame> {
    // Pairwise joining is quadratic: past this many rules a page is vector
    // art, and only the first rules are looked at.
    let n = rules.len().min(4_000);
    let rules = &rules[..n];
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if touches(&rules[i], &rules[j]) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: HashMap<usize, Vec<Rule>> = HashMap::new();
    for (i, rule) in rules.iter().enumerate() {
        groups.entry(root(&mut parent, i)).or_default().push(*rule);
    }
    let mut frames: Vec<GridFrame> = groups.into_values().filter_map(frame_of).collect();
    frames.sort_by(|a, b| a.ys[0].total_cmp(&b.ys[0]));
    frames
}

fn touches(a: &Rule, b: &Rule) -> bool {
    a.x0 <= b.x1 + SNAP && b.x0 <= a.x1 + SNAP && a.y0 <= b.y1 + SNAP && b.y0 <= a.y1 + SNAP
}

fn frame_of(rules: Vec<Rule>) -> Option<GridFrame> {
    let xs = boundaries(rules.iter().filter(|r| !r.is_horizontal()).map(|r| r.x0));
    let ys = boundaries(rules.iter().filter(|r| r.is_horizontal()).map(|r| r.y0));
    let verticals = rules
        .iter()
        .filter(|r| !r.is_horizontal())
        .map(|r| (r.x0, r.y0, r.y1))
        .collect();
    (xs.len() >= 3 && ys.len() >= 2).then_some(GridFrame { xs, ys, verticals })
}

/// Sorted positions, those closer than a few points merged.
fn boundaries(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let mut out: Vec<f64> = Vec::new();
    for x in v {
        if out.last().is_none_or(|l| x - l > 3.0) {
            out.push(x);
        }
    }
    out
}

/// The usual distance between consecutive lines of one paragraph, as a
/// multiple of the font size: the most common such distance in the file
/// (paragraph spacing, where a template has it, is rarer and larger).
fn line_pitch(items: &[Item]) -> f64 {
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for pair in items.windows(2) {
        if let [Item::Line(a), Item::Line(b)] = pair
            && a.page == b.page
            && (a.size - b.size).abs() < 0.6
        {
            let ratio = (b.y - a.y) / a.size.max(1.0);
            if ratio > 0.8 && ratio < 3.0 {
                *counts.entry((ratio * 20.0).round() as i64).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by_key(|(ratio, n)| (*n, -ratio))
        .map_or(1.3, |(ratio, _)| ratio as f64 / 20.0)
}

/// Items into blocks: tables merged across pages, lines into paragraphs
/// and headings.
fn assemble(items: Vec<Item>, body: f64, pitch: f64, heading_sizes: &[f64]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<Line> = None; // last line of the open paragraph
    let mut table: Option<(Grid, u32)> = None; // (table, header rows)
    // One-line paragraphs that open with a heading-shaped clause number:
    // (block index, level). Office suites set such headings in bold at body
    // size, so their size says nothing; the numbering and standing alone do.
    let mut numbered: Vec<(usize, u8)> = Vec::new();
    for item in items {
        match item {
            Item::Table(grid) => {
                close_paragraph(&mut open);
                table = Some(match table.take() {
                    Some((prev, header)) if continues(&prev, &grid) => {
                        merge_tables(prev, grid, header)
                    }
                    Some(prev) => {
                        blocks.push(table_block(prev));
                        (grid, 0)
                    }
                    None => (grid, 0),
                });
            }
            Item::Line(line) => {
                if let Some(t) = table.take() {
                    blocks.push(table_block(t));
                }
                let level = heading_level(&line, body, heading_sizes);
                if let Some(level) = level {
                    let wraps = open.as_ref().is_some_and(|prev| {
                        prev.page == line.page
                            && (prev.size - line.size).abs() < 0.6
                            && (line.y - prev.y) <= prev.size * pitch * 1.25
                    });
                    push_heading(&mut blocks, level, &line, wraps);
                    open = Some(line);
                    continue;
                }
                let joins = open
                    .as_ref()
                    .is_some_and(|prev| continues_paragraph(prev, &line, pitch));
                match (joins, blocks.last_mut()) {
                    (true, Some(Block::Paragraph { text, .. })) => {
                        *text = join_wrapped(text, &line.text);
                        if numbered.last().is_some_and(|(i, _)| *i + 1 == blocks.len()) {
                            numbered.pop();
                        }
                    }
                    _ => {
                        // A heading stands short of the right margin.
                        let short = line.x1 < line.column_right - line.size * 4.0;
                        if let Some(level) = numbered_heading_level(&line.text).filter(|_| short) {
                            numbered.push((blocks.len(), level));
                        }
                        blocks.push(Block::Paragraph {
                            text: line.text.clone(),
                            page: Some(line.page),
                        })
                    }
                }
                open = Some(line);
            }
        }
    }
    if let Some(t) = table.take() {
        blocks.push(table_block(t));
    }
    for (i, level) in numbered {
        if let Block::Paragraph { text, page } = &blocks[i] {
            blocks[i] = Block::Heading {
                level,
                number: clause_number(text),
                text: text.clone(),
                page: *page,
            };
        }
    }
    blocks
}

/// The heading level a line of body size earns by its clause number alone:
/// 第一章/第一部分 1, 第一节 and 一、 2, "3." and （三） 3, "3.1" 4 and
/// deeper 5; Section/Part/Chapter 1, Article/Clause 2, "ITB 12.1" 3. Only
/// a short line with no sentence punctuation qualifies: "1. 投标人须具有
/// …的能力。" is a list item, "（1）" and bare "1" number items, not
/// headings, and a table-of-contents entry is neither.
fn numbered_heading_level(text: &str) -> Option<u8> {
    let text = text.trim();
    let number = clause_number(text)?;
    let rest = text[number.len()..].trim();
    let chars = text.chars().count();
    let limit = if text.chars().any(is_cjk) { 40 } else { 90 };
    let toc = text.contains("....") || text.contains("……") || text.contains("···");
    // A colon may end a heading ("一、项目名称："), but a value after it
    // makes a "label：value" line ("（三）服务期：三年").
    let labelled = rest
        .find(['：', ':'])
        .is_some_and(|at| !rest[at..].trim_start_matches(['：', ':']).trim().is_empty());
    let sentence = text.contains(['。', '，', '；'])
        || labelled
        || text.ends_with(['、', ';', ',', '.'])
        || rest.chars().count() < 2
        || rest.starts_with(|c: char| c.is_ascii_digit() || "%％年月日".contains(c));
    if chars > limit || toc || sentence {
        return None;
    }
    let lower = number.to_lowercase();
    if number.starts_with('第') {
        return match number.chars().last() {
            Some('节' | '条') => Some(2),
            _ => Some(1),
        };
    }
    if ["section", "part", "chapter"]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        return Some(1);
    }
    if ["article", "clause"].iter().any(|w| lower.starts_with(w)) {
        return Some(2);
    }
    if lower.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some(3); // ITB 12.1, GCC 4, appendix A
    }
    if number.ends_with(['、', '.', '．']) && !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(2); // 一、
    }
    if number.starts_with(['（', '(']) {
        let cn = number.chars().any(|c| "一二三四五六七八九十".contains(c));
        return cn.then_some(3);
    }
    let depth = number
        .trim_end_matches(['.', '．'])
        .split(['.', '．'])
        .count();
    match depth {
        1 if number.ends_with(['.', '．']) => Some(3),
        1 => None,
        2 => Some(4),
        _ => Some(5),
    }
}

fn close_paragraph(open: &mut Option<Line>) {
    *open = None;
}

/// Adds a heading line; one that `wraps` on from a heading line just above
/// at the line pitch is the same heading.
fn push_heading(blocks: &mut Vec<Block>, level: u8, line: &Line, wraps: bool) {
    if let Some(Block::Heading { text, level: l, .. }) = blocks.last_mut()
        && *l == level
        && wraps
        && clause_number(&line.text).is_none()
    {
        *text = join_wrapped(text, &line.text);
        return;
    }
    blocks.push(Block::Heading {
        level,
        number: clause_number(&line.text),
        text: line.text.clone(),
        page: Some(line.page),
    });
}

/// A line set larger than the body text, not too long, is a heading.
fn heading_level(line: &Line, body: f64, heading_sizes: &[f64]) -> Option<u8> {
    if line.size <= body * 1.1 || line.text.chars().count() > 80 || is_label_value(&line.text) {
        return None;
    }
    let level = heading_sizes
        .iter()
        .position(|s| (s - line.size).abs() < 0.6)
        .unwrap_or(heading_sizes.len().saturating_sub(1));
    Some(level as u8 + 1)
}

/// Whether `next` goes on with the paragraph whose last line is `prev`:
/// on the same page when it follows at the usual line pitch, unless `prev`
/// visibly ended (a short line closing a sentence, or followed by a new
/// clause number); across a page break when `prev` neither ended short nor
/// closed a sentence and `next` opens its page.
fn continues_paragraph(prev: &Line, next: &Line, pitch: f64) -> bool {
    let size = prev.size.max(1.0);
    // Wrapped lines start at the paragraph's left edge, or under the text
    // of a numbered or bulleted first line (a hanging indent).
    let indent_ok = next.x0 <= prev.x0 + size * 0.5
        || (prev.text_x0 > prev.x0 && (next.x0 - prev.text_x0).abs() <= size);
    // Word documents mix sizes within a paragraph (11 and 12 points): a
    // tenth of the size apart is the same text; headings differ more.
    if (prev.size - next.size).abs() > prev.size.max(next.size) * 0.1 || !indent_ok {
        return false;
    }
    let short = prev.x1 < prev.column_right - size * 4.0;
    let closed = ends_sentence(&prev.text);
    // The next line's first word would have fitted on this one: the writer
    // broke the line, so the paragraph (or the "label：value" line) ended.
    let room = prev.column_right - prev.x1;
    let broken = room > next.first_word + size * 2.0;
    if next.page != prev.page {
        return next.page == prev.page + 1 && next.page_start && !short && !closed && !broken;
    }
    let gap = (next.y - prev.y) / size;
    let new_item = clause_number(&next.text).is_some() || starts_with_label(&next.text);
    let ended =
        broken || (short && (closed || new_item)) || (closed && starts_with_label(&next.text));
    // A full line that has not closed its sentence goes on even where the
    // writer's line spacing is looser than the document's usual pitch.
    let open_sentence = !short && !closed && !new_item;
    let near = gap <= pitch * 1.25 || (open_sentence && gap <= 2.2);
    gap > 0.0 && near && !ended
}

/// A "label：value" line without a clause number ("招标编号：GXTC-001"): a
/// fact, even where a cover page sets it large, not a heading.
fn is_label_value(text: &str) -> bool {
    let value = text.split_once(['：', ':']).map_or("", |(_, v)| v.trim());
    starts_with_label(text) && !value.is_empty() && clause_number(text).is_none()
}

/// A line that opens with a short label and a colon ("地 址：", "开户名：",
/// "Date:"): a "label：value" line of its own. A colon after a digit is a
/// clock time, not a label.
fn starts_with_label(text: &str) -> bool {
    let Some((at, colon)) = text
        .char_indices()
        .take(14)
        .find(|(_, c)| matches!(c, '：' | ':'))
    else {
        return false;
    };
    let label = text[..at].trim();
    let before = label.chars().last();
    !label.is_empty()
        && before.is_some_and(|c| !c.is_ascii_digit())
        && (colon != ':' || !text[at + 1..].starts_with("//"))
        && !label.chars().any(|c| {
            matches!(
                c,
                '。' | '，' | '；' | '、' | ',' | ';' | '.' | '（' | '(' | '“' | '"'
            )
        })
}

/// Whether text ends with sentence-closing punctuation.
fn ends_sentence(text: &str) -> bool {
    text.trim_end().chars().last().is_some_and(|c| {
        matches!(
            c,
            '。' | '；' | '！' | '？' | '：' | '.' | ';' | '!' | '?' | ':' | '」' | '”'
        )
    })
}

/// A table on the next page, or further down the same page right after,
/// with the same columns goes on with `prev`.
fn continues(prev: &Grid, next: &Grid) -> bool {
    let same_columns = prev.columns.len() == next.columns.len()
        && prev
            .columns
            .iter()
            .zip(&next.columns)
            .all(|(a, b)| (a - b).abs() < 3.0);
    same_columns && (next.page == prev.page + 1 || next.page == prev.page)
}

/// Appends `next` to `prev`: a repeated header row is dropped (and counted
/// as a header), and a first row with an empty first cell finishes the last
/// row of `prev` (a row broken across the page).
fn merge_tables(mut prev: Grid, next: Grid, header: u32) -> (Grid, u32) {
    let mut rows = next.rows.into_iter().peekable();
    let mut header = header;
    if rows.peek() == prev.rows.first() {
        rows.next();
        header = 1;
    }
    if let (Some(first), Some(last)) = (rows.peek(), prev.rows.last_mut())
        && first.first().is_some_and(|c| c.is_empty())
        && last.first().is_some_and(|c| !c.is_empty())
        && first.len() == last.len()
        && let Some(first) = rows.next()
    {
        for (cell, more) in last.iter_mut().zip(first) {
            if !more.is_empty() {
                *cell = join_wrapped(cell, &more);
            }
        }
    }
    prev.rows.extend(rows);
    (prev, header)
}

fn table_block((grid, header): (Grid, u32)) -> Block {
    Block::Table {
        rows: grid.rows,
        header_rows: header,
        page: Some(grid.page),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyphs(text: &str, x: f64, y: f64, size: f64, gap: f64) -> Vec<Glyph> {
        let mut out = Vec::new();
        let mut x = x;
        for c in text.chars() {
            let width = if is_cjk(c) { size } else { size * 0.5 };
            out.push(Glyph {
                x,
                y,
                width,
                size,
                text: c.to_string(),
            });
            x += width + gap;
        }
        out
    }

    #[test]
    fn autospace_between_cjk_and_digits_is_dropped() {
        let mut line = glyphs("540", 0.0, 10.0, 10.0, 0.0);
        line.extend(glyphs("日历天", 18.0, 10.0, 10.0, 0.0));
        let refs: Vec<&Glyph> = line.iter().collect();
        assert_eq!(line_text(&refs), "540日历天");
        // A space the text really has is kept: "3.1 招标范围".
        let mut line = glyphs("3.1 ", 0.0, 10.0, 10.0, 0.0);
        line.extend(glyphs("招标范围", 20.0, 10.0, 10.0, 0.0));
        let refs: Vec<&Glyph> = line.iter().collect();
        assert_eq!(line_text(&refs), "3.1 招标范围");
    }

    #[test]
    fn latin_word_gaps_become_spaces() {
        let mut line = glyphs("Contract", 0.0, 10.0, 10.0, 0.0);
        line.extend(glyphs("Sum", 44.0, 10.0, 10.0, 0.0));
        let refs: Vec<&Glyph> = line.iter().collect();
        assert_eq!(line_text(&refs), "Contract Sum");
    }

    #[test]
    fn aligned_columns_without_rules_are_a_table() {
        let mut g = Vec::new();
        let rows = [
            ("Item", "Criteria", "Weightage"),
            ("1", "Price", "60%"),
            ("2", "Track record", "15%"),
            ("3", "Safety", "10%"),
        ];
        for (i, (a, b, c)) in rows.iter().enumerate() {
            let y = 100.0 + 14.0 * i as f64;
            g.extend(glyphs(a, 72.0, y, 10.0, 0.0));
            g.extend(glyphs(b, 140.0, y, 10.0, 0.0));
            g.extend(glyphs(c, 300.0, y, 10.0, 0.0));
        }
        g.extend(glyphs(
            "The tender will be evaluated on price and quality.",
            72.0,
            200.0,
            10.0,
            0.0,
        ));
        let page = Page {
            number: 1,
            width: 595.0,
            height: 842.0,
            glyphs: g,
            rules: Vec::new(),
        };
        let doc = build_document(&[page]);
        let Block::Table { rows, .. } = &doc.blocks[0] else {
            panic!("expected a table: {:?}", doc.blocks);
        };
        assert_eq!(rows[2], vec!["2", "Track record", "15%"]);
        assert!(matches!(&doc.blocks[1], Block::Paragraph { .. }));
    }

    #[test]
    fn a_numbered_list_is_not_a_table() {
        let mut g = Vec::new();
        for (i, t) in ["first item", "second item", "third item"]
            .iter()
            .enumerate()
        {
            let y = 100.0 + 14.0 * i as f64;
            g.extend(glyphs(&format!("{})", i + 1), 72.0, y, 10.0, 0.0));
            g.extend(glyphs(t, 110.0, y, 10.0, 0.0));
        }
        let page = Page {
            number: 1,
            width: 595.0,
            height: 842.0,
            glyphs: g,
            rules: Vec::new(),
        };
        let doc = build_document(&[page]);
        assert!(
            doc.blocks.iter().all(|b| !matches!(b, Block::Table { .. })),
            "{:?}",
            doc.blocks
        );
    }

    #[test]
    fn page_numbers_are_recognised() {
        for t in [
            "3",
            "- 3 -",
            "第 3 页",
            "Page 3 of 20",
            "3/20",
            "第3页，共20页",
        ] {
            assert!(is_page_number(t), "{t}");
        }
        for t in ["3.1 招标范围", "2026年", "Page layout"] {
            assert!(!is_page_number(t), "{t}");
        }
    }

    #[test]
    fn ruled_grid_becomes_a_table_and_continues_on_the_next_page() {
        let rule = |x0, y0, x1, y1| Rule { x0, y0, x1, y1 };
        let grid_rules = |top: f64| {
            vec![
                rule(0.0, top, 200.0, top),
                rule(0.0, top + 20.0, 200.0, top + 20.0),
                rule(0.0, top + 40.0, 200.0, top + 40.0),
                rule(0.0, top, 0.0, top + 40.0),
                rule(100.0, top, 100.0, top + 40.0),
                rule(200.0, top, 200.0, top + 40.0),
            ]
        };
        let page = |number, row: &str, value: &str| {
            let mut g = glyphs("条款号", 5.0, 115.0, 10.0, 0.0);
            g.extend(glyphs("内容", 105.0, 115.0, 10.0, 0.0));
            g.extend(glyphs(row, 5.0, 135.0, 10.0, 0.0));
            g.extend(glyphs(value, 105.0, 135.0, 10.0, 0.0));
            Page {
                number,
                width: 600.0,
                height: 800.0,
                glyphs: g,
                rules: grid_rules(100.0),
            }
        };
        let doc = build_document(&[page(1, "3.3.1", "90日历天"), page(2, "3.4.1", "80万元")]);
        let Block::Table {
            rows,
            header_rows,
            page,
        } = &doc.blocks[0]
        else {
            panic!("expected a table: {:?}", doc.blocks);
        };
        assert_eq!(doc.blocks.len(), 1);
        assert_eq!(*page, Some(1));
        assert_eq!(*header_rows, 1);
        assert_eq!(
            rows,
            &vec![
                vec!["条款号".to_string(), "内容".to_string()],
                vec!["3.3.1".to_string(), "90日历天".to_string()],
                vec!["3.4.1".to_string(), "80万元".to_string()],
            ]
        );
    }

    /// A page of body text: `lines` of 10-point glyphs from the top margin,
    /// the last one `last_width` characters wide, a running header and a
    /// page number.
    fn body_page(number: u32, lines: &[&str]) -> Page {
        let mut g = glyphs("临江市招标文件", 72.0, 40.0, 9.0, 0.0);
        g.extend(glyphs(&number.to_string(), 290.0, 800.0, 9.0, 0.0));
        for (i, line) in lines.iter().enumerate() {
            g.extend(glyphs(line, 72.0, 100.0 + 16.0 * i as f64, 10.0, 0.0));
        }
        Page {
            number,
            width: 595.0,
            height: 842.0,
            glyphs: g,
            rules: Vec::new(),
        }
    }

    #[test]
    fn running_heads_go_and_paragraphs_cross_pages() {
        let full =
            "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十";
        let pages = [
            body_page(1, &["3.1 投标人须知", full, full]),
            body_page(2, &["投标保证金为80万元。", "3.2 下一条。"]),
            body_page(3, &["第三页正文。"]),
        ];
        let doc = build_document(&pages);
        let text = doc.plain_text();
        assert!(!text.contains("临江市招标文件"), "{text}");
        assert_eq!(doc.meta.furniture, vec!["临江市招标文件".to_string()]);
        assert!(!text.lines().any(|l| l.trim() == "2"), "{text}");
        let paragraph = format!("{full}{full}投标保证金为80万元。");
        assert!(text.contains(&paragraph), "{text}");
        let Some(block) = doc.blocks.iter().find(|b| b.text().contains("投标保证金")) else {
            panic!("{text}");
        };
        assert_eq!(block.page(), Some(1));
        assert!(text.contains("\n3.2 下一条。\n"), "{text}");
    }

    #[test]
    fn a_recurring_sentence_low_on_pages_is_not_a_footer() {
        let pages: Vec<Page> = (1..=3)
            .map(|n| {
                let mut g = Vec::new();
                for i in 0..50 {
                    let text = if i == 49 {
                        format!("delay, up to {n} per cent of the Contract Sum.")
                    } else {
                        format!("Clause {n}.{i} text of the body.")
                    };
                    g.extend(glyphs(&text, 72.0, 60.0 + 15.0 * i as f64, 10.0, 0.0));
                }
                Page {
                    number: n,
                    width: 595.0,
                    height: 842.0,
                    glyphs: g,
                    rules: Vec::new(),
                }
            })
            .collect();
        let doc = build_document(&pages);
        assert!(doc.meta.furniture.is_empty(), "{:?}", doc.meta.furniture);
        assert!(
            doc.plain_text()
                .contains("delay, up to 2 per cent of the Contract Sum.")
        );
    }

    /// A page of 10-point lines `(x, text)` from y = 100, 16 points apart.
    fn lines_page(lines: &[(f64, &str)]) -> Page {
        let mut g = Vec::new();
        for (i, (x, text)) in lines.iter().enumerate() {
            g.extend(glyphs(text, *x, 100.0 + 16.0 * i as f64, 10.0, 0.0));
        }
        Page {
            number: 1,
            width: 595.0,
            height: 842.0,
            glyphs: g,
            rules: Vec::new(),
        }
    }

    /// Forty CJK characters: a line that fills a 400-point column.
    const FULL: &str =
        "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十";

    #[test]
    fn label_value_lines_stay_lines_of_their_own() {
        let closed = format!("{}。", &FULL[..FULL.len() - 3]);
        let page = lines_page(&[
            (72.0, closed.as_str()),
            (72.0, "采购人名称：某某市某某有限公司"),
            (72.0, "地 址：某某市某某路1号"),
            (72.0, "联系人：张工"),
        ]);
        let text = build_document(&[page]).plain_text();
        assert!(
            text.contains("\n采购人名称：某某市某某有限公司\n地 址：某某市某某路1号\n联系人：张工"),
            "{text}"
        );
    }

    #[test]
    fn a_bracketed_number_that_did_not_fit_continues_the_line() {
        // The first line stops 50 points short: "〔2026〕112号" is one unit
        // for line breaking and did not fit there.
        let first = "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五";
        let page = lines_page(&[(72.0, FULL), (72.0, first), (72.0, "〔2026〕112号批准。")]);
        let text = build_document(&[page]).plain_text();
        assert!(
            text.contains(&format!("{first}〔2026〕112号批准。")),
            "{text}"
        );
    }

    #[test]
    fn numbered_lines_at_body_size_are_headings() {
        let page = lines_page(&[
            (72.0, "第一部分 招标公告"),
            (72.0, "一、项目名称："),
            (72.0, "某某数据采购项目"),
            (72.0, "（三）服务期：三年"),
            (72.0, "4. 投标人有下列情形之一的，其投标将被拒绝："),
            (72.0, "5. 投标保证金"),
            (72.0, FULL),
        ]);
        let doc = build_document(&[page]);
        let headings: Vec<(u8, String)> = doc
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Heading { level, text, .. } => Some((*level, text.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            headings,
            vec![
                (1, "第一部分 招标公告".to_string()),
                (2, "一、项目名称：".to_string()),
                (3, "5. 投标保证金".to_string()),
            ],
            "{:?}",
            doc.blocks
        );
        assert!(doc.plain_text().contains("\n（三）服务期：三年\n"));
        assert!(is_label_value("招标编号：GXTC-C-001"));
        assert!(!is_label_value("第一章：招标公告"));
        assert!(!is_label_value("一、项目名称："));
    }

    #[test]
    fn a_hanging_indent_continues_the_numbered_item() {
        let page = lines_page(&[
            (
                72.0,
                "1. Tender documents may be bought from the Zonal Office of the",
            ),
            (88.0, "Bank, against a demand draft for the fee."),
            (
                72.0,
                "2. The Contractor can also download the Tender Document from.",
            ),
        ]);
        let text = build_document(&[page]).plain_text();
        assert!(text.contains("of the Bank, against"), "{text}");
    }

    #[test]
    fn a_merged_row_of_a_ruled_table_is_one_cell() {
        let rule = |x0, y0, x1, y1| Rule { x0, y0, x1, y1 };
        let mut rules = vec![
            rule(0.0, 100.0, 300.0, 100.0),
            rule(0.0, 120.0, 300.0, 120.0),
            rule(0.0, 140.0, 300.0, 140.0),
            rule(0.0, 100.0, 0.0, 140.0),
            rule(300.0, 100.0, 300.0, 140.0),
        ];
        // Inner column lines cross the first row only.
        rules.push(rule(100.0, 100.0, 100.0, 120.0));
        rules.push(rule(200.0, 100.0, 200.0, 120.0));
        let mut g = glyphs("序号", 5.0, 115.0, 10.0, 0.0);
        g.extend(glyphs("名称", 105.0, 115.0, 10.0, 0.0));
        g.extend(glyphs("内容", 205.0, 115.0, 10.0, 0.0));
        g.extend(glyphs(
            "响应文件必须胶装成册并按要求密封。",
            5.0,
            135.0,
            10.0,
            4.0,
        ));
        let page = Page {
            number: 1,
            width: 595.0,
            height: 842.0,
            glyphs: g,
            rules,
        };
        let doc = build_document(&[page]);
        let Block::Table { rows, .. } = &doc.blocks[0] else {
            panic!("expected a table: {:?}", doc.blocks);
        };
        assert_eq!(rows[1][0], "响应文件必须胶装成册并按要求密封。");
    }

    #[test]
    fn a_footer_an_inch_and_a_half_up_is_furniture() {
        let pages: Vec<Page> = (1..=3)
            .map(|n| {
                let mut page = lines_page(&[(72.0, FULL), (72.0, FULL), (72.0, "正文。")]);
                page.number = n;
                page.glyphs
                    .extend(glyphs("Classification: Internal", 60.0, 745.0, 8.5, 0.0));
                page
            })
            .collect();
        let doc = build_document(&pages);
        assert_eq!(
            doc.meta.furniture,
            vec!["Classification: Internal".to_string()]
        );
        assert!(!doc.plain_text().contains("Classification"));
    }
}
