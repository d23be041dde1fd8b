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
/// Share of the page height at top and bottom where running heads live.
const MARGIN_ZONE: f64 = 0.1;

/// Builds the document from the pages.
pub fn build_document(pages: &[Page]) -> ParsedDocument {
    let body_size = body_font_size(pages);
    let heading_sizes = heading_sizes(pages, body_size);
    let furniture = running_furniture(pages);
    let column_right = column_right(pages);
    let mut items: Vec<Item> = Vec::new();
    for page in pages {
        items.extend(page_items(page, &furniture.keys, body_size, column_right));
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

/// Running headers and footers: the keys to drop and their texts.
struct Furniture {
    keys: Vec<String>,
    texts: Vec<String>,
}

/// Lines in the margin zones, set apart from the body, that repeat (digits
/// aside) on at least a third of the pages, two at least.
fn running_furniture(pages: &[Page]) -> Furniture {
    let mut seen: HashMap<String, (usize, String)> = HashMap::new();
    for page in pages {
        let lines: Vec<Vec<&Glyph>> = raw_lines(&page.glyphs)
            .into_iter()
            .filter(|l| !line_text(l).trim().is_empty())
            .collect();
        let flags = margin_flags(&lines, page);
        let mut keys: Vec<(String, String)> = lines
            .iter()
            .zip(flags)
            .filter(|(_, margin)| *margin)
            .map(|(l, _)| {
                let text = line_text(l);
                (furniture_key(&text), text)
            })
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

fn in_margin(line: &[&Glyph], page: &Page) -> bool {
    let y = line.first().map_or(0.0, |g| g.y);
    page.height > 0.0 && (y < page.height * MARGIN_ZONE || y > page.height * (1.0 - MARGIN_ZONE))
}

/// Which of a page's lines (top to bottom) are running heads or feet: the
/// lines in the top or bottom margin zone, when a gap wider than body line
/// spacing parts them from the rest. A body line that happens to end a page
/// low down is not parted so, and stays text even when the same sentence
/// recurs on other pages.
fn margin_flags(lines: &[Vec<&Glyph>], page: &Page) -> Vec<bool> {
    let mut flags = vec![false; lines.len()];
    let y = |i: usize| lines[i][0].y;
    let size = |i: usize| lines[i][0].size.max(1.0);
    let parted = |a: usize, b: usize| y(b) - y(a) > 1.8 * size(a).max(size(b));
    let top = (0..lines.len())
        .take_while(|i| y(*i) < page.height * MARGIN_ZONE)
        .count();
    if top > 0 && (top == lines.len() || parted(top - 1, top)) {
        flags[..top].iter_mut().for_each(|f| *f = true);
    }
    let bottom = (0..lines.len())
        .rev()
        .take_while(|i| y(*i) > page.height * (1.0 - MARGIN_ZONE))
        .count();
    let first = lines.len() - bottom;
    if bottom > 0 && (first == 0 || parted(first - 1, first)) {
        flags[first..].iter_mut().for_each(|f| *f = true);
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
fn column_right(pages: &[Page]) -> f64 {
    let mut edges: Vec<f64> = pages
        .iter()
        .filter_map(|page| {
            raw_lines(&page.glyphs)
                .iter()
                .filter(|l| !in_margin(l, page))
                .map(|l| line_right(l))
                .reduce(f64::max)
        })
        .collect();
    edges.sort_by(f64::total_cmp);
    edges.get(edges.len() * 3 / 4).copied().unwrap_or(0.0)
}

/// The items of one page, top to bottom.
fn page_items(page: &Page, furniture: &[String], body_size: f64, column_right: f64) -> Vec<Item> {
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
    let lines: Vec<Vec<&Glyph>> = raw_lines_of(free)
        .into_iter()
        .filter(|line| !line_text(line).trim().is_empty())
        .collect();
    let flags = margin_flags(&lines, page);
    let lines: Vec<Vec<&Glyph>> = lines
        .into_iter()
        .zip(flags)
        .filter(|(line, margin)| {
            let text = line_text(line);
            !(*margin && (furniture.contains(&furniture_key(&text)) || is_page_number(&text)))
        })
        .map(|(line, _)| line)
        .collect();
    let (tables, lines) = borderless_tables(page.number, lines);
    items.extend(tables.into_iter().map(|t| (t.top, Item::Table(t))));
    for line in lines {
        let text = line_text(&line);
        let size = line_size(&line, body_size);
        items.push((
            line[0].y,
            Item::Line(Line {
                page: page.number,
                text: text.trim().to_string(),
                x0: line[0].x,
                x1: line_right(&line),
                y: line[0].y,
                size,
                column_right,
                page_start: false,
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
fn borderless_tables(page: u32, lines: Vec<Vec<&Glyph>>) -> (Vec<Grid>, Vec<Vec<&Glyph>>) {
    let segs: Vec<Vec<Segment>> = lines.iter().map(|l| segments(l)).collect();
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
            let size = lines[j][0].size.max(1.0);
            if lines[j][0].y - lines[j - 1][0].y > size * 3.0 {
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
                top: lines[i][0].y - lines[i][0].size,
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
fn raw_lines(glyphs: &[Glyph]) -> Vec<Vec<&Glyph>> {
    raw_lines_of(glyphs.iter().collect())
}

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
        out.push_str(&g.text);
        prev = Some(g);
    }
    out
}

/// A ruled grid found on a page.
#[derive(Debug, Clone)]
struct GridFrame {
    xs: Vec<f64>,
    ys: Vec<f64>,
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
    (xs.len() >= 3 && ys.len() >= 2).then_some(GridFrame { xs, ys })
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
                        *text = join_wrapped(text, &line.text)
                    }
                    _ => blocks.push(Block::Paragraph {
                        text: line.text.clone(),
                        page: Some(line.page),
                    }),
                }
                open = Some(line);
            }
        }
    }
    if let Some(t) = table.take() {
        blocks.push(table_block(t));
    }
    blocks
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
    if line.size <= body * 1.1 || line.text.chars().count() > 80 {
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
    if (prev.size - next.size).abs() > 0.6 || next.x0 > prev.x0 + size * 0.5 {
        return false;
    }
    let short = prev.x1 < prev.column_right - size * 4.0;
    let closed = ends_sentence(&prev.text);
    if next.page != prev.page {
        return next.page == prev.page + 1 && next.page_start && !short && !closed;
    }
    let gap = (next.y - prev.y) / size;
    let ended = short && (closed || clause_number(&next.text).is_some());
    gap > 0.0 && gap <= pitch * 1.25 && !ended
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
}
