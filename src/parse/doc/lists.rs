//! Automatic list numbering ([MS-DOC] 2.9.147 LSTF, 2.9.150 LVL, 2.9.131
//! LFO): the number Word shows before a numbered paragraph ("1.", "（三）",
//! "第二章") is not in the text, so it is rendered here, as the DOCX parser
//! renders numbering.xml.
//!
//! Read: each list's levels (start, number format, legal numbering, the
//! number text with its level placeholders, the restart rule) and the start
//! overrides of each list instance (LFO). Not read: a level redefined in
//! an LFO (the list's own level is used).

use std::collections::HashMap;

use super::super::docx::format_number;
use super::bytes::{u16_at, u32_at};

/// One level of a list.
#[derive(Debug, Clone, Default)]
struct Level {
    start: u32,
    /// The number format (nfc) as its OOXML name.
    format: &'static str,
    legal: bool,
    /// `fNoRestart`: the level does not restart after a higher one, unless
    /// `restart_limit` says so.
    no_restart: bool,
    restart_limit: u8,
    /// The number text: literal characters and, for a placeholder, the
    /// level whose number stands there.
    text: Vec<Piece>,
}

#[derive(Debug, Clone)]
enum Piece {
    Char(u16),
    Number(u8),
}

/// A list definition (LSTF with its levels).
#[derive(Debug, Clone)]
struct List {
    lsid: i32,
    levels: Vec<Level>,
    /// `rgistdPara`: the paragraph style tied to each level.
    styles: Vec<u16>,
}

/// The lists of a document and the counters of the walk so far.
#[derive(Debug, Default)]
pub(super) struct Lists {
    lists: Vec<List>,
    /// Per LFO (1-based index = position + 1): the lsid of its list and its
    /// start overrides by level.
    instances: Vec<(i32, Vec<(u8, u32)>)>,
    /// Counters by lsid: Word continues a list across the instances that
    /// share it.
    counters: HashMap<i32, [Option<u32>; 9]>,
    started: Vec<u16>,
}

impl Lists {
    /// Reads PlfLst (with the LVLs that follow it in the table stream) and
    /// PlfLfo (with its LFOData). Whatever is broken is left out: those
    /// paragraphs read without their number.
    pub(super) fn parse(table: &[u8], lst_at: Option<usize>, lfo: Option<&[u8]>) -> Lists {
        let mut out = Lists::default();
        if let Some(at) = lst_at {
            out.lists = read_lists(table, at);
        }
        if let Some(lfo) = lfo {
            out.instances = read_instances(lfo);
        }
        out
    }

    /// The paragraph style tied to level `ilvl` of the list of LFO `ilfo`
    /// is `istd`: the level a styled paragraph without its own level takes.
    pub(super) fn level_of_style(&self, ilfo: u16, istd: u16) -> Option<u8> {
        let list = self.list_of(ilfo)?;
        list.styles.iter().position(|s| *s == istd).map(|l| l as u8)
    }

    fn list_of(&self, ilfo: u16) -> Option<&List> {
        let (lsid, _) = self.instances.get(usize::from(ilfo).checked_sub(1)?)?;
        self.lists.iter().find(|l| l.lsid == *lsid)
    }

    /// Advances list instance `ilfo` at `ilvl` and renders its number, or
    /// `None` when the instance or level is unknown.
    pub(super) fn next(&mut self, ilfo: u16, ilvl: u8) -> Option<String> {
        let index = usize::from(ilfo).checked_sub(1)?;
        let (lsid, overrides) = self.instances.get(index)?.clone();
        let list = self.lists.iter().find(|l| l.lsid == lsid)?.clone();
        let l = usize::from(ilvl.min(8));
        let level = list.levels.get(l).or(list.levels.first())?;
        let counters = self.counters.entry(lsid).or_insert([None; 9]);
        if !self.started.contains(&ilfo) {
            self.started.push(ilfo);
            for (lv, start) in &overrides {
                if let Some(c) = counters.get_mut(usize::from(*lv)) {
                    *c = Some(start.saturating_sub(1));
                }
            }
        }
        counters[l] = Some(match counters[l] {
            None => level.start,
            Some(c) => c.saturating_add(1),
        });
        for (k, deeper) in list.levels.iter().enumerate().skip(l + 1).take(9) {
            let restarts = !deeper.no_restart || usize::from(deeper.restart_limit) > l;
            if restarts {
                counters[k] = None;
            }
        }
        let values: Vec<u32> = (0..9)
            .map(|i| counters[i].unwrap_or_else(|| list.levels.get(i).map_or(1, |lv| lv.start)))
            .collect();
        Some(render(level, &list.levels, &values))
    }
}

/// The number text of `level` with each placeholder filled in its own
/// level's format (all decimal for a legal level).
fn render(level: &Level, levels: &[Level], values: &[u32]) -> String {
    match level.format {
        "bullet" => return "•".to_string(),
        "none" => return String::new(),
        _ => {}
    }
    let mut units = Vec::new();
    for piece in &level.text {
        match piece {
            Piece::Char(c) => units.push(*c),
            Piece::Number(n) => {
                let n = usize::from(*n);
                let format = levels.get(n).map_or("decimal", |l| l.format);
                let format = if level.legal { "decimal" } else { format };
                if format != "none" {
                    let value = values.get(n).copied().unwrap_or(1).max(1);
                    units.extend(format_number(value, format).encode_utf16());
                }
            }
        }
    }
    String::from_utf16_lossy(&units)
}

fn read_lists(table: &[u8], at: usize) -> Vec<List> {
    let Some(count) = u16_at(table, at).map(|c| c as i16) else {
        return Vec::new();
    };
    let count = usize::try_from(count).unwrap_or(0);
    let mut lists = Vec::new();
    let mut lvl_at = at + 2 + count * 28;
    for i in 0..count {
        let lstf = at + 2 + i * 28;
        let (Some(lsid), Some(flags)) = (u32_at(table, lstf), table.get(lstf + 26)) else {
            break;
        };
        let styles = (0..9)
            .filter_map(|k| u16_at(table, lstf + 8 + k * 2))
            .collect();
        let simple = flags & 1 != 0;
        let mut levels = Vec::new();
        for _ in 0..if simple { 1 } else { 9 } {
            let Some((level, size)) = read_level(table, lvl_at) else {
                return lists;
            };
            levels.push(level);
            lvl_at += size;
        }
        lists.push(List {
            lsid: lsid as i32,
            levels,
            styles,
        });
    }
    lists
}

/// A LVL at `at` and its size in bytes.
fn read_level(bytes: &[u8], at: usize) -> Option<(Level, usize)> {
    let lvlf = bytes.get(at..at + 28)?;
    let start = u32_at(lvlf, 0)?;
    let nfc = lvlf[4];
    let flags = lvlf[5];
    let placeholders = &lvlf[6..15];
    let (chpx, papx) = (usize::from(lvlf[24]), usize::from(lvlf[25]));
    let restart_limit = lvlf[26];
    let xst = at + 28 + papx + chpx;
    let cch = usize::from(u16_at(bytes, xst)?);
    let units: Vec<u16> = (0..cch)
        .map(|i| u16_at(bytes, xst + 2 + i * 2))
        .collect::<Option<_>>()?;
    let mut text: Vec<Piece> = units.iter().map(|u| Piece::Char(*u)).collect();
    for p in placeholders.iter().take_while(|p| **p != 0) {
        let i = usize::from(*p) - 1;
        if let Some(slot) = text.get_mut(i)
            && let Piece::Char(level) = *slot
            && level < 9
        {
            *slot = Piece::Number(level as u8);
        }
    }
    let level = Level {
        start: if start > 0x7FFF { 1 } else { start },
        format: format_name(nfc),
        legal: flags & 0x04 != 0,
        no_restart: flags & 0x08 != 0,
        restart_limit,
        text,
    };
    Some((level, 28 + papx + chpx + 2 + cch * 2))
}

/// PlfLfo: the LFOs, then one LFOData each (a cp, then its LFOLVLs, each
/// with a whole LVL when it redefines the level).
fn read_instances(lfo: &[u8]) -> Vec<(i32, Vec<(u8, u32)>)> {
    let Some(count) = u32_at(lfo, 0).and_then(|c| usize::try_from(c as i32).ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut data_at = 4usize.saturating_add(count.saturating_mul(16));
    for i in 0..count {
        let entry = 4 + i * 16;
        let (Some(lsid), Some(levels)) = (u32_at(lfo, entry), lfo.get(entry + 12)) else {
            break;
        };
        let mut overrides = Vec::new();
        data_at += 4;
        for _ in 0..*levels {
            let (Some(start), Some(flags)) = (u32_at(lfo, data_at), u32_at(lfo, data_at + 4))
            else {
                break;
            };
            data_at += 8;
            if flags & 0x10 != 0 {
                overrides.push(((flags & 0x0F).min(8) as u8, start));
            }
            if flags & 0x20 != 0 {
                match read_level(lfo, data_at) {
                    Some((_, size)) => data_at += size,
                    None => break,
                }
            }
        }
        out.push((lsid as i32, overrides));
    }
    out
}

/// The OOXML name of a Word number format (MSONFC), as the DOCX parser
/// formats numbers by name.
fn format_name(nfc: u8) -> &'static str {
    match nfc {
        0x01 => "upperRoman",
        0x02 => "lowerRoman",
        0x03 => "upperLetter",
        0x04 => "lowerLetter",
        0x0A => "ideographDigital",
        0x0B => "japaneseCounting",
        0x10 => "japaneseLegal",
        0x11 => "japaneseDigitalTenThousand",
        0x0E => "decimalFullWidth",
        0x12 => "decimalEnclosedCircle",
        0x13 => "decimalFullWidth2",
        0x16 => "decimalZero",
        0x17 => "bullet",
        0x1A => "decimalEnclosedFullstop",
        0x1B => "decimalEnclosedParen",
        0x1C => "decimalEnclosedCircleChinese",
        0x1D => "ideographEnclosedCircle",
        0x1E => "ideographTraditional",
        0x1F => "ideographZodiac",
        0x20 => "ideographZodiacTraditional",
        0x21 => "taiwaneseCounting",
        0x22 => "ideographLegalTraditional",
        0x23 => "taiwaneseCountingThousand",
        0x24 => "taiwaneseDigital",
        0x25 => "chineseCounting",
        0x26 => "chineseLegalSimplified",
        0x27 => "chineseCountingThousand",
        0xFF => "none",
        _ => "decimal",
    }
}

/// A PlfLst of one list (lsid 7, not simple) whose levels are (start,
/// nfc, number text with `%N` for level N's number), then its LVLs; and a
/// PlfLfo of one instance of it, with start overrides (level, start).
#[cfg(test)]
pub(super) fn test_lists(levels: &[(u32, u8, &str)], starts: &[(u8, u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut lst = 1u16.to_le_bytes().to_vec();
    lst.extend(7u32.to_le_bytes());
    lst.extend([0u8; 4]);
    lst.extend([0xFF; 18]);
    lst.extend([0, 0]);
    for l in 0..9 {
        let (start, nfc, text) = levels.get(l).copied().unwrap_or((1, 0, ""));
        let mut units = Vec::new();
        let mut places = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '%'
                && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
            {
                chars.next();
                units.push(d as u16 - 1);
                places.push(units.len() as u8);
            } else {
                units.extend(c.encode_utf16(&mut [0; 2]).iter());
            }
        }
        lst.extend(start.to_le_bytes());
        lst.push(nfc);
        lst.push(0);
        places.resize(9, 0);
        lst.extend(&places);
        lst.extend([0u8; 9]);
        lst.extend([0, 0, 0, 0]);
        lst.extend((units.len() as u16).to_le_bytes());
        for u in units {
            lst.extend(u.to_le_bytes());
        }
    }
    let mut lfo = 1u32.to_le_bytes().to_vec();
    lfo.extend(7u32.to_le_bytes());
    lfo.extend([0u8; 8]);
    lfo.extend([starts.len() as u8, 0, 0, 0]);
    lfo.extend([0u8; 4]);
    for (level, start) in starts {
        lfo.extend(start.to_le_bytes());
        lfo.extend((u32::from(*level) | 0x10).to_le_bytes());
    }
    (lst, lfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_in_each_levels_format_and_restart() {
        let (lst, lfo) = test_lists(
            &[(1, 0x25, "第%1章"), (1, 0, "%1.%2"), (3, 0x1B, "%3")],
            &[],
        );
        let mut lists = Lists::parse(&lst, Some(0), Some(&lfo));
        assert_eq!(lists.next(1, 0).as_deref(), Some("第一章"));
        // Each placeholder in its own level's format, as Word shows it.
        assert_eq!(lists.next(1, 1).as_deref(), Some("一.1"));
        assert_eq!(lists.next(1, 1).as_deref(), Some("一.2"));
        assert_eq!(lists.next(1, 2).as_deref(), Some("⑶"));
        assert_eq!(lists.next(1, 0).as_deref(), Some("第二章"));
        assert_eq!(lists.next(1, 1).as_deref(), Some("二.1"));
        assert_eq!(lists.next(2, 0), None);
        assert_eq!(lists.next(0, 0), None);
    }

    #[test]
    fn start_overrides_apply_once() {
        let (lst, lfo) = test_lists(&[(1, 0, "%1.")], &[(0, 5)]);
        let mut lists = Lists::parse(&lst, Some(0), Some(&lfo));
        assert_eq!(lists.next(1, 0).as_deref(), Some("5."));
        assert_eq!(lists.next(1, 0).as_deref(), Some("6."));
    }

    #[test]
    fn broken_tables_give_no_numbers() {
        let (lst, lfo) = test_lists(&[(1, 0, "%1.")], &[]);
        for cut in 0..lst.len() {
            let mut lists = Lists::parse(&lst[..cut], Some(0), Some(&lfo));
            let _ = lists.next(1, 0);
        }
        for cut in 0..lfo.len() {
            let mut lists = Lists::parse(&lst, Some(0), Some(&lfo[..cut]));
            let _ = lists.next(1, 0);
        }
        let mut lists = Lists::parse(&lst, Some(lst.len() + 5), None);
        assert_eq!(lists.next(1, 0), None);
    }
}
