//! Paragraph and character properties: the formatted disk pages (FKPs) that
//! the bin tables PlcBtePapx and PlcBteChpx point to ([MS-DOC] 2.9.74–79),
//! and the few single property modifiers (sprms) this parser needs.
//!
//! A property lookup that fails (a page outside the stream, a broken
//! entry) gives the default properties: the text is still read, only its
//! table or heading structure is lost.

use super::bytes::{u16_at, u32_at};

/// The size of a formatted disk page.
const PAGE: usize = 512;

/// Paragraph facts from a PAPX.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Para {
    /// The paragraph style (index into the STSH).
    pub(super) istd: u16,
    /// `sprmPFInTable`: inside a table cell.
    pub(super) in_table: bool,
    /// `sprmPFTtp`: the mark ending a table row.
    pub(super) ttp: bool,
    /// `sprmPItap`: table depth (1 for an outer table).
    pub(super) itap: u32,
    /// `sprmPFInnerTableCell`: the mark ending a cell of a nested table.
    pub(super) inner_cell: bool,
    /// `sprmPFInnerTtp`: the mark ending a row of a nested table.
    pub(super) inner_ttp: bool,
    /// `sprmPOutLvl` below 9: a heading level, 1-based.
    pub(super) outline: Option<u8>,
    /// `sprmTTableHeader` on a row end: the row repeats as a header.
    pub(super) header_row: bool,
    /// `sprmPIlfo`: the list instance (1-based; 0 switches numbering off).
    pub(super) ilfo: Option<u16>,
    /// `sprmPIlvl`: the list level.
    pub(super) ilvl: Option<u8>,
    /// `sprmTDefTable` on a row end: the row's cell boundaries (twips from
    /// the table's left edge), one more than its cells.
    pub(super) bounds: Option<Vec<i16>>,
    /// `sprmPHugePapx`: where in the Data stream the rest of the
    /// properties are.
    huge: Option<u32>,
}

impl Para {
    /// Depth of the table this paragraph is in (0: none).
    pub(super) fn depth(&self) -> u32 {
        match (self.in_table, self.itap) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, n) => n,
        }
    }
}

/// Character facts from a CHPX.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Chars {
    /// `sprmCFRMarkDel`: deleted with change tracking on.
    pub(super) deleted: bool,
    /// `sprmCRgFtc0`, `sprmCRgFtc1`, `sprmCRgFtc2`: the fonts (indexes into
    /// SttbfFfn) for ASCII, East Asian and other characters.
    pub(super) fonts: [Option<u16>; 3],
}

/// Properties by byte range of the WordDocument stream.
#[derive(Debug)]
pub(super) struct Runs<T> {
    /// (first byte, byte after the last, properties), sorted.
    spans: Vec<(u32, u32, T)>,
}

impl<T: Clone + Default> Runs<T> {
    /// The properties of the character stored at `offset`.
    pub(super) fn at(&self, offset: u32) -> T {
        let i = self.spans.partition_point(|(start, _, _)| *start <= offset);
        i.checked_sub(1)
            .and_then(|i| self.spans.get(i))
            .filter(|(_, end, _)| offset < *end)
            .map(|(_, _, t)| t.clone())
            .unwrap_or_default()
    }

    /// The runs of every page of a bin table, at most `limit` of them
    /// (a real file has no more runs than characters: past that, the pages
    /// are junk, and would only take memory).
    fn from_pages(
        word: &[u8],
        plc: Option<&[u8]>,
        limit: usize,
        entry: impl Fn(&[u8], usize, usize) -> Option<T>,
    ) -> Self {
        let mut spans = Vec::new();
        for page in bin_table_pages(word, plc) {
            // At most 0x65 runs fit a page ([MS-DOC] 2.9.75).
            let crun = usize::from(page[PAGE - 1]).min(0x65);
            for i in 0..crun {
                if spans.len() >= limit {
                    break;
                }
                let (Some(start), Some(end)) = (u32_at(page, i * 4), u32_at(page, i * 4 + 4))
                else {
                    break;
                };
                if end <= start {
                    continue;
                }
                if let Some(t) = entry(page, crun, i) {
                    spans.push((start, end, t));
                }
            }
        }
        spans.sort_by_key(|(start, _, _)| *start);
        Runs { spans }
    }
}

impl Runs<Para> {
    /// The paragraph properties of every paragraph, from PlcBtePapx; `data`
    /// is the Data stream, where a PAPX too large for its page is kept.
    pub(super) fn paragraphs(word: &[u8], plc: Option<&[u8]>, data: &[u8], limit: usize) -> Self {
        Runs::from_pages(word, plc, limit, |page, crun, i| {
            // BxPap: one byte of word offset, then 12 reserved bytes.
            let at = (crun + 1) * 4 + i * 13;
            let offset = usize::from(*page.get(at)?) * 2;
            if offset == 0 {
                return Some(Para::default());
            }
            let cb = usize::from(*page.get(offset)?);
            let body = if cb == 0 {
                let cb = usize::from(*page.get(offset + 1)?);
                page.get(offset + 2..offset + 2 + cb * 2)?
            } else {
                page.get(offset + 1..offset + cb * 2)?
            };
            let istd = u16_at(body, 0)?;
            let mut para = para_of(istd, body.get(2..)?);
            if let Some(huge) = para.huge.take() {
                // sprmPHugePapx: the rest of the grpprl, in the Data
                // stream as a 2-byte size and the sprms.
                let at = huge as usize;
                let size = usize::from(u16_at(data, at).unwrap_or(0));
                if let Some(grpprl) = data.get(at + 2..at + 2 + size) {
                    para.apply(grpprl);
                }
            }
            Some(para)
        })
    }
}

impl Runs<Chars> {
    /// The character properties of every run, from PlcBteChpx.
    pub(super) fn characters(word: &[u8], plc: Option<&[u8]>, limit: usize) -> Self {
        Runs::from_pages(word, plc, limit, |page, crun, i| {
            let at = (crun + 1) * 4 + i;
            let offset = usize::from(*page.get(at)?) * 2;
            if offset == 0 {
                return Some(Chars::default());
            }
            let cb = usize::from(*page.get(offset)?);
            let grpprl = page.get(offset + 1..offset + 1 + cb)?;
            let mut chars = Chars::default();
            for (sprm, operand) in sprms(grpprl) {
                match sprm {
                    0x0800 => chars.deleted = operand.first().is_some_and(|b| *b & 1 != 0),
                    0x4A4F..=0x4A51 => {
                        chars.fonts[usize::from(sprm - 0x4A4F)] = u16_at(operand, 0);
                    }
                    _ => {}
                }
            }
            Some(chars)
        })
    }
}

/// The pages a bin table (PlcBtePapx or PlcBteChpx) names, each once and
/// each checked to lie in the stream.
fn bin_table_pages<'w>(word: &'w [u8], plc: Option<&[u8]>) -> Vec<&'w [u8]> {
    let Some(plc) = plc else {
        return Vec::new();
    };
    let n = plc.len().saturating_sub(4) / 8;
    let mut numbers: Vec<usize> = (0..n)
        .filter_map(|i| u32_at(plc, (n + 1) * 4 + i * 4))
        .map(|pn| (pn & 0x003F_FFFF) as usize)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
        .into_iter()
        .filter_map(|pn| word.get(pn * PAGE..pn * PAGE + PAGE))
        .collect()
}

/// Paragraph facts from a style index and the PAPX's modifiers.
pub(super) fn para_of(istd: u16, grpprl: &[u8]) -> Para {
    let mut para = Para {
        istd,
        ..Para::default()
    };
    para.apply(grpprl);
    para
}

impl Para {
    /// Applies the modifiers of `grpprl`.
    fn apply(&mut self, grpprl: &[u8]) {
        let para = self;
        for (sprm, operand) in sprms(grpprl) {
            let flag = || operand.first().is_some_and(|b| *b != 0);
            match sprm {
                0x4600 => para.istd = u16_at(operand, 0).unwrap_or(para.istd),
                0x6646 => para.huge = u32_at(operand, 0),
                // TDefTableOperand: its 2-byte size, the cell count, then
                // one more boundary than cells.
                0xD608 => {
                    para.bounds = operand.get(2).and_then(|count| {
                        (0..=usize::from(*count))
                            .map(|i| u16_at(operand, 3 + i * 2).map(|b| b as i16))
                            .collect()
                    });
                }
                0x2416 => para.in_table = flag(),
                0x2417 => para.ttp = flag(),
                0x6649 => para.itap = u32_at(operand, 0).unwrap_or(0),
                0x244B => para.inner_cell = flag(),
                0x244C => para.inner_ttp = flag(),
                0x2640 => para.outline = operand.first().filter(|l| **l < 9).map(|l| l + 1),
                0x3404 => para.header_row = flag(),
                0x460B => para.ilfo = u16_at(operand, 0),
                0x260A => para.ilvl = operand.first().map(|l| (*l).min(8)),
                _ => {}
            }
        }
    }
}

/// The (sprm, operand) pairs of a grpprl, up to the first one that does
/// not fit.
pub(super) fn sprms(grpprl: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let sprm = u16_at(grpprl, at)?;
        let size = operand_size(sprm, grpprl, at + 2)?;
        let operand = grpprl.get(at + 2..at + 2 + size)?;
        at += 2 + size;
        Some((sprm, operand))
    })
}

/// The size of a sprm's operand (its `spra` bits), with the two
/// variable-size sprms whose length is stored differently.
fn operand_size(sprm: u16, grpprl: &[u8], at: usize) -> Option<usize> {
    Some(match sprm >> 13 {
        0 | 1 => 1,
        2 | 4 | 5 => 2,
        3 => 4,
        7 => 3,
        _ => match sprm {
            // sprmTDefTable: a 2-byte size, counted one too high.
            0xD608 | 0xD606 => usize::from(u16_at(grpprl, at)?) + 1,
            // sprmPChgTabs: a size byte of 255 means "count the entries".
            0xC615 if *grpprl.get(at)? == 255 => {
                let deletes = usize::from(*grpprl.get(at + 1)?);
                let adds = usize::from(*grpprl.get(at + 2 + deletes * 4)?);
                1 + (1 + deletes * 4) + (1 + adds * 3)
            }
            _ => 1 + usize::from(*grpprl.get(at)?),
        },
    })
}

/// The font names of SttbfFfn: an STTB of FFN records, each with a 1-byte
/// size; the name (NUL-terminated UTF-16) starts 39 bytes into the FFN.
pub(super) fn font_names(sttb: Option<&[u8]>) -> Vec<String> {
    let Some(sttb) = sttb else {
        return Vec::new();
    };
    let count = usize::from(u16_at(sttb, 0).unwrap_or(0));
    let mut at = 4;
    let mut names = Vec::new();
    for _ in 0..count {
        let Some(size) = sttb.get(at).map(|s| usize::from(*s)) else {
            break;
        };
        let ffn = sttb.get(at + 1..at + 1 + size).unwrap_or_default();
        let units: Vec<u16> = ffn
            .get(39..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .take_while(|u| *u != 0)
            .collect();
        names.push(String::from_utf16_lossy(&units));
        at += 1 + size;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprms_of_every_size_are_walked() {
        let grpprl = [
            0x16, 0x24, 0x01, // sprmPFInTable 1
            0x00, 0x46, 0x05, 0x00, // sprmPIstd 5
            0x08, 0xD6, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40,
            0x06, // sprmTDefTable: 1 cell, 0..1600
            0x49, 0x66, 0x02, 0x00, 0x00, 0x00, // sprmPItap 2
            0x17, 0x24, 0x01, // sprmPFTtp 1
            0x40, 0x26, 0x01, // sprmPOutLvl 1 (heading 2)
        ];
        let para = para_of(0, &grpprl);
        assert!(para.in_table && para.ttp);
        assert_eq!((para.istd, para.itap, para.outline), (5, 2, Some(2)));
        assert_eq!(para.depth(), 2);
        assert_eq!(para.bounds, Some(vec![0, 1600]));
        // Cut short: the walk stops, nothing panics.
        let cut = para_of(0, &grpprl[..14]);
        assert_eq!(cut.istd, 5);
        assert!(!cut.ttp);
    }

    #[test]
    fn repeated_and_junk_pages_are_bounded() {
        // One page of 0x65 one-byte runs, named 10,000 times.
        let mut word = vec![0u8; PAGE];
        for i in 0..=0x65u32 {
            word[i as usize * 4..i as usize * 4 + 4].copy_from_slice(&i.to_le_bytes());
        }
        word[PAGE - 1] = 0xFF;
        let mut plc = vec![0u8; 4 * 10_001];
        plc.extend(std::iter::repeat_n(0u8, 4 * 10_000));
        let runs = Runs::characters(&word, Some(&plc), 1_000_000);
        assert_eq!(runs.spans.len(), 0x65);
        let runs = Runs::characters(&word, Some(&plc), 7);
        assert_eq!(runs.spans.len(), 7);
    }

    #[test]
    fn lookups_outside_every_run_are_default() {
        let runs = Runs {
            spans: vec![(
                10,
                20,
                Chars {
                    deleted: true,
                    ..Chars::default()
                },
            )],
        };
        assert!(runs.at(10).deleted && runs.at(19).deleted);
        assert!(!runs.at(9).deleted && !runs.at(20).deleted);
        let none: Runs<Para> = Runs::paragraphs(&[0; 100], Some(&[0xFF; 12]), &[], 10);
        assert_eq!(none.at(0), Para::default());
    }
}
