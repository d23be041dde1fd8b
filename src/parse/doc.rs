//! DOC and WPS: the Word 97–2003 binary format ([MS-DOC]) in an OLE
//! compound file. WPS Writer's `.wps` is the same format, so it is read
//! here too.
//!
//! The compound file is opened with `cfb` ([`super::ole`]); no maintained
//! crate reads the Word structures inside it, so they are read here: the
//! FIB, the piece table (8-bit Windows-1252 pieces and UTF-16 pieces), the
//! paragraph properties (table cells, row ends, nested tables, outline
//! levels), the style sheet (headings), the list tables (automatic
//! numbering, rendered as text as Word shows it) and the character
//! properties (deleted revisions). Fields keep their result and drop their
//! instruction; headers and footers go to `meta.furniture`; text boxes
//! come after the body.
//!
//! Not read, and degraded to plain text rather than to an error: list
//! levels redefined in a list override (the list's own level is used),
//! check-box form fields (their state is in the Data stream), symbol
//! fonts (a Wingdings tick stays a private-use character), footnotes,
//! comments, merged cells (each cell is read as it is stored), the
//! property modifiers of fast saves, and inserted-revision marks (the
//! inserted text is kept, as Word shows it).

use super::docx::symbols::RunFonts;
use super::ole::Ole;
use super::textutil::{chapter_heading_level, clause_number};
use super::{ParseError, ParseLimits, guard};
use crate::document::{Block, ParsedDocument};

use std::cell::RefCell;

use self::fib::{Fib, Text};
use self::lists::Lists;
use self::props::{Chars, Para, Runs};
use self::styles::Styles;

mod bytes;
mod fib;
mod lists;
mod props;
mod styles;

/// The widest empty last cell taken for the filler of a short row.
const SLIVER_TWIPS: i32 = 144;

/// Fields nested deeper than this are read as if flat.
const MAX_FIELD_NESTING: usize = 32;

/// Parses DOC (or WPS) bytes.
pub fn parse_doc(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    guard("DOC", || parse_compound(bytes, limits))
}

fn parse_compound(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    let mut ole = Ole::open(bytes, limits, "DOC")?;
    let word = ole
        .read_stream("WordDocument")?
        .ok_or_else(|| ParseError::corrupt("a compound file without a WordDocument stream"))?;
    let fib = Fib::parse(&word)?;
    if fib.encrypted() {
        return Err(ParseError::new(
            "encrypted",
            "the Word document is password-protected (encrypted)",
        ));
    }
    let table = ole.read_stream(fib.table_stream())?.ok_or_else(|| {
        ParseError::corrupt(format!(
            "the Word document has no {} stream",
            fib.table_stream()
        ))
    })?;
    let clx = fib
        .slice(&table, fib::CLX)
        .ok_or_else(|| ParseError::corrupt("the Word document has no piece table"))?;
    let [
        text_len,
        footnotes,
        headers,
        macros,
        comments,
        endnotes,
        boxes,
        _,
    ] = fib.ccp;
    let header_start = text_len.saturating_add(footnotes);
    let boxes_start = header_start
        .saturating_add(headers)
        .saturating_add(macros)
        .saturating_add(comments)
        .saturating_add(endnotes);
    let wanted = boxes_start.saturating_add(boxes);
    let budget = limits.max_uncompressed_bytes;
    let text = Text::read(&word, clx, wanted, budget)?;
    ole.spend(text.units.len() as u64 * 2)?;
    let data = ole.read_stream("Data")?.unwrap_or_default();
    // No more runs than characters, with room for the subdocuments not read.
    let runs = text.units.len() + 65_536;
    let doc = Doc {
        paras: Runs::paragraphs(&word, fib.slice(&table, fib::PLCF_BTE_PAPX), &data, runs),
        chars: Runs::characters(&word, fib.slice(&table, fib::PLCF_BTE_CHPX), runs),
        styles: Styles::parse(fib.slice(&table, fib::STSHF)),
        fonts: props::font_names(fib.slice(&table, fib::STTBF_FFN)),
        anchors: anchors(fib.slice(&table, fib::PLC_SPA_MOM)),
        boxes: text_boxes(fib.slice(&table, fib::PLCF_TXBX_TXT), boxes_start, boxes),
        boxes_used: RefCell::default(),
        lists: RefCell::new(Lists::parse(
            &table,
            fib.offset(fib::PLF_LST),
            fib.slice(&table, fib::PLF_LFO),
        )),
        text,
    };
    let mut blocks = doc.walk(0, text_len, true);
    // Text boxes whose anchor was not found come after the body.
    for (i, (start, end, _)) in doc.boxes.iter().enumerate() {
        if !doc.boxes_used.borrow()[i] {
            blocks.extend(doc.blocks(*start, *end));
        }
    }
    let mut parsed = ParsedDocument::new("doc", blocks);
    parsed.meta.furniture = doc.furniture(header_start, headers, fib.slice(&table, fib::PLCF_HDD));
    Ok(parsed)
}

/// The decoded text and the properties that give it structure.
struct Doc {
    text: Text,
    paras: Runs<Para>,
    chars: Runs<Chars>,
    styles: Styles,
    /// The lists and their counters, advanced as paragraphs are walked.
    lists: RefCell<Lists>,
    /// The font names, by index (ftc).
    fonts: Vec<String>,
    /// Drawn objects in the body: (character position, shape id), sorted.
    anchors: Vec<(u32, u32)>,
    /// Text box stories: (first and end character position, shape id).
    boxes: Vec<(u32, u32, u32)>,
    /// Which stories have been placed at their anchor.
    boxes_used: RefCell<Vec<bool>>,
}

/// PlcSpaMom: each drawn object's character position and shape id (the
/// first field of its 26-byte FSPA).
fn anchors(plc: Option<&[u8]>) -> Vec<(u32, u32)> {
    let Some(plc) = plc else {
        return Vec::new();
    };
    let n = plc.len().saturating_sub(4) / 30;
    let mut out: Vec<(u32, u32)> = (0..n)
        .filter_map(|i| {
            Some((
                bytes::u32_at(plc, i * 4)?,
                bytes::u32_at(plc, (n + 1) * 4 + i * 26)?,
            ))
        })
        .collect();
    out.sort_unstable();
    out
}

/// PlcftxbxTxt: each text box story's range in the text box subdocument
/// and the shape it belongs to (`lid` of its 22-byte FTXBXS); the last
/// story is a placeholder of Word's.
fn text_boxes(plc: Option<&[u8]>, start: u32, len: u32) -> Vec<(u32, u32, u32)> {
    let Some(plc) = plc else {
        return if len > 0 {
            vec![(start, start.saturating_add(len), 0)]
        } else {
            Vec::new()
        };
    };
    let n = plc.len().saturating_sub(4) / 26;
    // Stories in order and apart: positions that go back are skipped, so
    // that no text is walked twice.
    let mut reached = 0;
    (0..n)
        .filter_map(|i| {
            let (a, b) = (bytes::u32_at(plc, i * 4)?, bytes::u32_at(plc, i * 4 + 4)?);
            let lid = bytes::u32_at(plc, (n + 1) * 4 + i * 22 + 14)?;
            let fits = reached <= a && a < b && b <= len;
            if fits {
                reached = b;
            }
            fits.then(|| (start + a, start + b, lid))
        })
        .collect()
}

impl Doc {
    /// The blocks of the characters `start..end` (one subdocument).
    fn blocks(&self, start: u32, end: u32) -> Vec<Block> {
        self.walk(start, end, false)
    }

    /// The blocks of `start..end`; with `anchors`, each text box comes
    /// after the paragraph that anchors it (in a table cell: its text in
    /// the cell).
    fn walk(&self, start: u32, end: u32, anchors: bool) -> Vec<Block> {
        if anchors {
            *self.boxes_used.borrow_mut() = vec![false; self.boxes.len()];
        }
        let mut walker = Walker {
            anchors,
            pending: Vec::new(),
            doc: self,
            blocks: Vec::new(),
            fields: Vec::new(),
            deep_fields: 0,
            line: Vec::new(),
            table: TableBuild::default(),
        };
        let end = end.min(self.text.units.len() as u32);
        for cp in start.min(end)..end {
            walker.char_at(cp);
        }
        walker.end_paragraph(None);
        walker.flush_table();
        walker.blocks
    }

    /// Header and footer texts: each story of the header subdocument
    /// (PlcfHdd gives their bounds), trimmed, once each.
    fn furniture(&self, start: u32, len: u32, plc: Option<&[u8]>) -> Vec<String> {
        let mut bounds: Vec<u32> = plc
            .map(|p| {
                p.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .filter(|cp| *cp <= len)
                    .collect()
            })
            .unwrap_or_default();
        bounds.extend([0, len]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut out: Vec<String> = Vec::new();
        for pair in bounds.windows(2) {
            let story = self
                .blocks(start + pair[0], start + pair[1])
                .iter()
                .map(Block::text)
                .collect::<Vec<_>>()
                .join("\n");
            let story = story.trim().to_string();
            if !story.is_empty() && !out.contains(&story) {
                out.push(story);
            }
        }
        out
    }
}

/// A table being read: its rows so far, the open row and cell.
#[derive(Debug, Default)]
struct TableBuild {
    rows: Vec<Vec<String>>,
    /// Each row's cell boundaries, where its row end gives them.
    bounds: Vec<Option<Vec<i16>>>,
    header_rows: u32,
    row: Vec<String>,
    /// The open cell's paragraphs (a nested table's rows among them).
    cell: Vec<String>,
    /// Numbers of the open cell's empty numbered paragraphs: a 序号 cell
    /// shows them when it has no text.
    cell_numbers: Vec<String>,
    /// A nested table's open row and cell.
    inner_row: Vec<String>,
    inner_cell: Vec<String>,
}

/// Walks characters into blocks.
struct Walker<'d> {
    doc: &'d Doc,
    /// Whether text boxes are placed at their anchors in this walk.
    anchors: bool,
    /// Text box stories anchored in the open paragraph.
    pending: Vec<usize>,
    blocks: Vec<Block>,
    /// Open fields, outermost first: whether each is still in its
    /// instruction (before its separator).
    fields: Vec<bool>,
    /// Fields opened past [`MAX_FIELD_NESTING`], not tracked one by one.
    deep_fields: usize,
    /// The open paragraph's UTF-16 units.
    line: Vec<u16>,
    table: TableBuild,
}

impl Walker<'_> {
    fn char_at(&mut self, cp: u32) {
        if self.anchors {
            self.note_anchor(cp);
        }
        let unit = self.doc.text.units[cp as usize];
        let offset = self.doc.text.offset_of(cp);
        let chars = offset.map(|o| self.doc.chars.at(o)).unwrap_or_default();
        let deleted = chars.deleted;
        match unit {
            // Paragraph, cell and row marks end a paragraph even when
            // deleted, so that a table's shape survives.
            0x0D | 0x07 | 0x0C => self.end_paragraph(Some((unit, offset))),
            _ if deleted => {}
            0x13 => {
                if self.fields.len() < MAX_FIELD_NESTING {
                    self.fields.push(true);
                } else {
                    self.deep_fields += 1;
                }
            }
            0x14 => {
                if self.deep_fields == 0
                    && let Some(top) = self.fields.last_mut()
                {
                    *top = false;
                }
            }
            0x15 => {
                if self.deep_fields > 0 {
                    self.deep_fields -= 1;
                } else {
                    self.fields.pop();
                }
            }
            _ if self.fields.iter().any(|in_code| *in_code) => {}
            0x09 => self.line.push(u16::from(b'\t')),
            0x0B => self.line.push(u16::from(b'\n')),
            // A non-breaking hyphen.
            0x1E => self.line.push(u16::from(b'-')),
            // Other control characters are anchors (pictures, footnote
            // references, drawn objects) or an optional hyphen.
            0x00..=0x1F => {}
            _ => self.push_char(unit, &chars),
        }
    }

    /// A character as it is drawn: a symbol font's glyph slot (a Wingdings
    /// box, a tick) as its Unicode character, as the DOCX parser maps it.
    fn push_char(&mut self, unit: u16, chars: &Chars) {
        let symbolic = (0x21..=0xFF).contains(&unit) || (0xF000..=0xF0FF).contains(&unit);
        if symbolic && chars.fonts.iter().any(Option::is_some) {
            let name = |slot: usize| {
                chars.fonts[slot]
                    .and_then(|f| self.doc.fonts.get(usize::from(f)).map(String::as_str))
            };
            let fonts = RunFonts::new(name(0), name(2), &[name(1)]);
            if let Some(c) = char::from_u32(u32::from(unit))
                && !fonts.is_plain()
            {
                let drawn = fonts.map(&c.to_string());
                self.line.extend(drawn.encode_utf16());
                return;
            }
        }
        self.line.push(unit);
    }

    /// Notes the text box stories of the shapes anchored at `cp`.
    fn note_anchor(&mut self, cp: u32) {
        let anchors = &self.doc.anchors;
        let first = anchors.partition_point(|(at, _)| *at < cp);
        for (_, spid) in anchors[first..].iter().take_while(|(at, _)| *at == cp) {
            let mut used = self.doc.boxes_used.borrow_mut();
            let story = self
                .doc
                .boxes
                .iter()
                .enumerate()
                .position(|(i, (_, _, lid))| lid == spid && !used[i]);
            if let Some(i) = story {
                used[i] = true;
                self.pending.push(i);
            }
        }
    }

    /// Ends the open paragraph, then places the text boxes it anchors
    /// after it (those of a paragraph in a cell are placed in the cell).
    fn end_paragraph(&mut self, mark: Option<(u16, Option<u32>)>) {
        self.close_paragraph(mark);
        for i in std::mem::take(&mut self.pending) {
            let (start, end, _) = self.doc.boxes[i];
            let blocks = self.doc.blocks(start, end);
            self.blocks.extend(blocks);
        }
    }

    /// The texts of the text boxes anchored in the open paragraph, one
    /// line per block.
    fn box_lines(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .flat_map(|i| {
                let (start, end, _) = self.doc.boxes[i];
                self.doc
                    .blocks(start, end)
                    .iter()
                    .map(Block::text)
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// Ends the open paragraph at a mark (`None`: the end of the text).
    fn close_paragraph(&mut self, mark: Option<(u16, Option<u32>)>) {
        // An instruction does not run on past its paragraph: a field whose
        // separator is missing must not swallow the rest of the document.
        for in_code in &mut self.fields {
            *in_code = false;
        }
        let text = String::from_utf16_lossy(&std::mem::take(&mut self.line));
        let text = text.trim();
        let Some((unit, offset)) = mark else {
            if !text.is_empty() {
                self.plain_paragraph(text, Para::default(), None);
            }
            return;
        };
        let para = offset.map_or_else(Para::default, |o| self.doc.paras.at(o));
        if para.depth() == 1 && unit == 0x07 && para.ttp {
            self.end_row(para.header_row, para.bounds);
            return;
        }
        let number = self.number(&para);
        if para.depth() == 0 {
            self.plain_paragraph(text, para, number);
            return;
        }
        let line = cell_line(text, number.as_ref(), &mut self.table.cell_numbers);
        let mut lines = vec![line];
        lines.extend(self.box_lines());
        let table = &mut self.table;
        match (para.depth(), unit) {
            (_, 0x07) => {
                // A cell mark; an inner table still open in the cell ends
                // with it.
                self.close_inner_table();
                push_all(&mut self.table.cell, lines);
                self.end_cell();
            }
            (1, _) => push_all(&mut table.cell, lines),
            (_, _) if para.inner_ttp => self.close_inner_row(),
            (_, _) if para.inner_cell => {
                push_all(&mut table.inner_cell, lines);
                let cell = std::mem::take(&mut table.inner_cell).join("\n");
                table.inner_row.push(cell);
            }
            (_, _) => push_all(&mut table.inner_cell, lines),
        }
    }

    /// The list number of a paragraph, with its level: its own list, else
    /// its style's; a level from the paragraph, its style, or the level the
    /// list ties to its style.
    fn number(&self, para: &Para) -> Option<(String, u8)> {
        let (ilfo, level) = match para.ilfo {
            Some(ilfo) => (ilfo, para.ilvl),
            None => {
                let (ilfo, level) = self.doc.styles.list(para.istd)?;
                (ilfo, para.ilvl.or(level))
            }
        };
        if ilfo == 0 {
            return None;
        }
        let mut lists = self.doc.lists.borrow_mut();
        let level = level
            .or_else(|| lists.level_of_style(ilfo, para.istd))
            .unwrap_or(0);
        let marker = lists.next(ilfo, level)?;
        (!marker.is_empty()).then_some((marker, level))
    }

    fn plain_paragraph(&mut self, text: &str, para: Para, number: Option<(String, u8)>) {
        self.flush_table();
        if text.is_empty() {
            return;
        }
        let level = para
            .outline
            .or_else(|| self.doc.styles.heading_level(para.istd))
            .or_else(|| chapter_heading_level(text));
        let marker = number
            .as_ref()
            .map(|(m, _)| m.as_str())
            .filter(|m| *m != "•");
        self.blocks.push(match (level, number.as_ref()) {
            (Some(level), _) => {
                let full = match marker {
                    Some(m) => format!("{m} {text}"),
                    None => text.to_string(),
                };
                Block::Heading {
                    level,
                    number: marker.map(String::from).or_else(|| clause_number(&full)),
                    text: full,
                    page: None,
                }
            }
            (None, Some((m, list_level))) => Block::ListItem {
                text: text.to_string(),
                number: Some(m.clone()),
                level: *list_level,
                page: None,
            },
            (None, None) => Block::Paragraph {
                text: text.to_string(),
                page: None,
            },
        });
    }

    /// Closes the open cell: its lines, or when it has none, the numbers
    /// of its empty numbered paragraphs.
    fn end_cell(&mut self) {
        let table = &mut self.table;
        let numbers = std::mem::take(&mut table.cell_numbers);
        let lines = std::mem::take(&mut table.cell);
        let cell = if lines.is_empty() { numbers } else { lines };
        table.row.push(cell.join("\n"));
    }

    fn end_row(&mut self, header: bool, bounds: Option<Vec<i16>>) {
        self.close_inner_table();
        let table = &mut self.table;
        if !table.cell.is_empty() || !table.cell_numbers.is_empty() {
            // Text after the last cell mark: a cell of its own.
            self.end_cell();
        }
        let table = &mut self.table;
        let row = std::mem::take(&mut table.row);
        if header && table.header_rows as usize == table.rows.len() {
            table.header_rows += 1;
        }
        table.rows.push(row);
        table.bounds.push(bounds);
    }

    /// A nested table's row: its cells joined by ` | `, one line of the
    /// outer cell.
    fn close_inner_row(&mut self) {
        let table = &mut self.table;
        if !table.inner_cell.is_empty() {
            let cell = std::mem::take(&mut table.inner_cell).join("\n");
            table.inner_row.push(cell);
        }
        let row = std::mem::take(&mut table.inner_row);
        if row.iter().any(|c| !c.is_empty()) {
            table.cell.push(row.join(" | "));
        }
    }

    fn close_inner_table(&mut self) {
        if !self.table.inner_row.is_empty() || !self.table.inner_cell.is_empty() {
            self.close_inner_row();
        }
    }

    /// Ends the open table, if any: a row left open (no row-end mark) is
    /// kept as it stands.
    fn flush_table(&mut self) {
        let table = &mut self.table;
        if !table.row.is_empty()
            || !table.cell.is_empty()
            || !table.cell_numbers.is_empty()
            || !table.inner_row.is_empty()
        {
            self.end_row(false, None);
        }
        let table = std::mem::take(&mut self.table);
        let rows = grid_aligned(table.rows, &table.bounds);
        if rows.iter().flatten().any(|c| !c.is_empty()) {
            self.blocks.push(Block::Table {
                header_rows: table.header_rows.min(rows.len() as u32),
                rows,
                page: None,
            });
        }
    }
}

/// Rows aligned to the table's grid, as the DOCX parser aligns them: the
/// grid is every cell boundary of every row; a cell that spans several
/// grid columns is followed by an empty cell for each further one, and a
/// row that starts right of the table's left edge begins with empty cells.
/// A row whose boundaries are unknown, or do not match its cells, stays as
/// it is. An empty sliver of a last cell (under a tenth of an inch) is
/// dropped: it is how a row that stops short of the table's right edge
/// (DOCX's `gridAfter`, left off there too) is written to a `.doc`.
fn grid_aligned(rows: Vec<Vec<String>>, bounds: &[Option<Vec<i16>>]) -> Vec<Vec<String>> {
    let rows: Vec<(Vec<String>, Option<&[i16]>)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            let edges = bounds
                .get(i)
                .and_then(Option::as_deref)
                .filter(|e| e.len() == row.len() + 1 && e.windows(2).all(|w| w[0] <= w[1]));
            let edges = edges.map(|e| match (e, &row[..]) {
                ([.., a, b], [_, .., last])
                    if i32::from(*b) - i32::from(*a) < SLIVER_TWIPS && last.is_empty() =>
                {
                    row.pop();
                    &e[..e.len() - 1]
                }
                _ => e,
            });
            (row, edges)
        })
        .collect();
    let mut grid: Vec<i16> = rows
        .iter()
        .filter_map(|(_, e)| *e)
        .flatten()
        .copied()
        .collect();
    grid.sort_unstable();
    grid.dedup();
    let column = |x: i16| grid.partition_point(|g| *g < x);
    rows.into_iter()
        .map(|(row, edges)| {
            let Some(edges) = edges else {
                return row;
            };
            let mut out = vec![String::new(); column(edges[0])];
            for (cell, pair) in row.into_iter().zip(edges.windows(2)) {
                let span = column(pair[1]).saturating_sub(column(pair[0])).clamp(1, 64);
                out.push(cell);
                out.extend(std::iter::repeat_n(String::new(), span - 1));
            }
            out
        })
        .collect()
}

/// A paragraph's line in a cell: its text after its number, as a list
/// item reads; an empty numbered paragraph leaves its number aside.
fn cell_line(text: &str, number: Option<&(String, u8)>, numbers: &mut Vec<String>) -> String {
    match number {
        Some((m, _)) if text.is_empty() => {
            if m != "•" {
                numbers.push(m.clone());
            }
            String::new()
        }
        Some((m, _)) if !text.starts_with(m.as_str()) => format!("{m} {text}"),
        _ => text.to_string(),
    }
}

fn push_all(lines: &mut Vec<String>, texts: Vec<String>) {
    lines.extend(texts.into_iter().filter(|t| !t.is_empty()));
}

#[cfg(test)]
pub(crate) mod tests;
