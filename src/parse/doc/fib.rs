//! The File Information Block and the piece table ([MS-DOC] 2.5 and 2.9.177):
//! where the text is, and in which encoding each piece of it is stored.

use super::super::ParseError;
use super::bytes::{u16_at, u32_at};

/// `wIdent` of a Word binary file.
const WORD_IDENT: u16 = 0xA5EC;
/// The lowest `nFib` of Word 97; Word 6 and 95 files have another layout.
const WORD97_NFIB: u16 = 0x00C0;

/// Indexes into FibRgFcLcb97 of the (fc, lcb) pairs read here.
pub(super) const STSHF: usize = 1;
pub(super) const PLCF_HDD: usize = 11;
pub(super) const PLCF_BTE_CHPX: usize = 12;
pub(super) const PLCF_BTE_PAPX: usize = 13;
pub(super) const STTBF_FFN: usize = 15;
pub(super) const CLX: usize = 33;
pub(super) const PLC_SPA_MOM: usize = 40;
pub(super) const PLCF_TXBX_TXT: usize = 56;
pub(super) const PLF_LST: usize = 73;
pub(super) const PLF_LFO: usize = 74;

/// The facts of the FIB this parser uses.
#[derive(Debug)]
pub(super) struct Fib {
    flags: u16,
    /// ccpText, ccpFtn, ccpHdd, ccpMcr, ccpAtn, ccpEdn, ccpTxbx, ccpHdrTxbx:
    /// the lengths of the subdocuments, in order, in characters.
    pub(super) ccp: [u32; 8],
    fc_lcb: Vec<(u32, u32)>,
}

impl Fib {
    /// Reads the FIB at the start of the WordDocument stream.
    pub(super) fn parse(word: &[u8]) -> Result<Fib, ParseError> {
        let short = || ParseError::corrupt("the WordDocument stream is too short for its FIB");
        if u16_at(word, 0).ok_or_else(short)? != WORD_IDENT {
            return Err(ParseError::corrupt(
                "the WordDocument stream does not start with a Word FIB",
            ));
        }
        let n_fib = u16_at(word, 2).ok_or_else(short)?;
        if n_fib < WORD97_NFIB {
            return Err(ParseError::new(
                "unsupported_type",
                format!(
                    "a Word 6.0/95 (or older) binary file (nFib {n_fib:#x}): save it as DOCX, DOC (97-2003) or PDF"
                ),
            ));
        }
        let flags = u16_at(word, 0x0A).ok_or_else(short)?;
        let csw = usize::from(u16_at(word, 32).ok_or_else(short)?);
        let at_lw = 34 + csw * 2;
        let cslw = usize::from(u16_at(word, at_lw).ok_or_else(short)?);
        let lw = at_lw + 2;
        if cslw < 11 {
            return Err(ParseError::corrupt("the FIB has too few counts (cslw)"));
        }
        let mut ccp = [0u32; 8];
        for (i, c) in ccp.iter_mut().enumerate() {
            let value = u32_at(word, lw + (3 + i) * 4).ok_or_else(short)?;
            if value > i32::MAX as u32 {
                return Err(ParseError::corrupt("the FIB gives a negative text length"));
            }
            *c = value;
        }
        let at_blob = lw + cslw * 4;
        let pairs = usize::from(u16_at(word, at_blob).ok_or_else(short)?);
        let blob = at_blob + 2;
        let fc_lcb = (0..pairs)
            .map_while(|i| Some((u32_at(word, blob + i * 8)?, u32_at(word, blob + i * 8 + 4)?)))
            .collect::<Vec<_>>();
        if fc_lcb.len() <= CLX {
            return Err(ParseError::corrupt(
                "the FIB is cut short before the piece table",
            ));
        }
        Ok(Fib { flags, ccp, fc_lcb })
    }

    /// `fEncrypted`: the text is encrypted (or XOR-obfuscated).
    pub(super) fn encrypted(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// The name of the table stream (`fWhichTblStm`).
    pub(super) fn table_stream(&self) -> &'static str {
        if self.flags & 0x0200 != 0 {
            "1Table"
        } else {
            "0Table"
        }
    }

    /// Where structure `index` starts in the table stream, if present.
    pub(super) fn offset(&self, index: usize) -> Option<usize> {
        let (fc, lcb) = *self.fc_lcb.get(index)?;
        (lcb > 0).then_some(fc as usize)
    }

    /// The bytes of the table stream that structure `index` names, if they
    /// lie inside it; `None` when the structure is absent or lies outside.
    pub(super) fn slice<'t>(&self, table: &'t [u8], index: usize) -> Option<&'t [u8]> {
        let (fc, lcb) = *self.fc_lcb.get(index)?;
        if lcb == 0 {
            return None;
        }
        let start = fc as usize;
        table.get(start..start.checked_add(lcb as usize)?)
    }
}

/// One run of consecutive characters stored together.
#[derive(Debug, Clone, Copy)]
struct Piece {
    cp: u32,
    cp_end: u32,
    /// Byte offset in the WordDocument stream of the piece's first
    /// character.
    offset: u32,
    /// 8-bit characters (Windows-1252) rather than UTF-16.
    compressed: bool,
}

/// The document's characters by character position, and where each one
/// is stored (so that its formatting can be looked up).
#[derive(Debug, Default)]
pub(super) struct Text {
    /// UTF-16 code units; index = character position.
    pub(super) units: Vec<u16>,
    pieces: Vec<Piece>,
}

impl Text {
    /// Decodes the first `wanted` characters through the piece table in
    /// `clx`; `budget` is how many bytes the decoded text may take.
    pub(super) fn read(
        word: &[u8],
        clx: &[u8],
        wanted: u32,
        budget: u64,
    ) -> Result<Text, ParseError> {
        let plc = piece_plc(clx)?;
        let n = (plc.len().saturating_sub(4)) / 12;
        if n == 0 || plc.len() != n * 12 + 4 {
            return Err(ParseError::corrupt("the piece table has a broken size"));
        }
        let cp = |i: usize| u32_at(plc, i * 4).unwrap_or(0);
        if cp(0) != 0 {
            return Err(ParseError::corrupt("the piece table does not start at 0"));
        }
        let mut text = Text::default();
        for i in 0..n {
            let (start, end) = (cp(i), cp(i + 1));
            if end < start {
                return Err(ParseError::corrupt(
                    "the piece table's positions go backwards",
                ));
            }
            if start >= wanted {
                break;
            }
            let end = end.min(wanted);
            let pcd = (n + 1) * 4 + i * 8;
            let raw = u32_at(plc, pcd + 2).unwrap_or(0);
            let compressed = raw & 0x4000_0000 != 0;
            let fc = raw & 0x3FFF_FFFF;
            let offset = if compressed { fc / 2 } else { fc };
            let count = (end - start) as usize;
            let width = if compressed { 1 } else { 2 };
            if (text.units.len() + count) as u64 * 2 > budget {
                return Err(ParseError::too_large(
                    "the document's text is over the limit of bytes to read",
                ));
            }
            let bytes = (offset as usize)
                .checked_add(count * width)
                .and_then(|stop| word.get(offset as usize..stop))
                .ok_or_else(|| {
                    ParseError::corrupt("a piece of text lies outside the WordDocument stream")
                })?;
            if compressed {
                text.units.extend(bytes.iter().map(|b| cp1252(*b)));
            } else {
                text.units.extend(
                    bytes
                        .chunks_exact(2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]])),
                );
            }
            text.pieces.push(Piece {
                cp: start,
                cp_end: end,
                offset,
                compressed,
            });
        }
        Ok(text)
    }

    /// Byte offset in the WordDocument stream where character `cp` is
    /// stored: the key of its formatting.
    pub(super) fn offset_of(&self, cp: u32) -> Option<u32> {
        let i = self.pieces.partition_point(|p| p.cp_end <= cp);
        let piece = self.pieces.get(i).filter(|p| p.cp <= cp)?;
        let width = if piece.compressed { 1 } else { 2 };
        piece.offset.checked_add((cp - piece.cp) * width)
    }
}

/// The PlcPcd inside a CLX: the Prc entries (property modifiers of fast
/// saves, not read) are skipped to reach the Pcdt.
fn piece_plc(clx: &[u8]) -> Result<&[u8], ParseError> {
    let broken = || ParseError::corrupt("the piece table (CLX) is broken");
    let mut at = 0usize;
    loop {
        match clx.get(at).copied().ok_or_else(broken)? {
            0x01 => {
                let size = u16_at(clx, at + 1).ok_or_else(broken)? as i16;
                if size < 0 {
                    return Err(broken());
                }
                at += 3 + size as usize;
            }
            0x02 => {
                let lcb = u32_at(clx, at + 1).ok_or_else(broken)? as usize;
                let start = at + 5;
                return start
                    .checked_add(lcb)
                    .and_then(|end| clx.get(start..end))
                    .ok_or_else(broken);
            }
            _ => return Err(broken()),
        }
    }
}

/// A compressed character: Windows-1252, as [MS-DOC] 2.4.1 maps it.
fn cp1252(byte: u8) -> u16 {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => HIGH[usize::from(byte - 0x80)],
        _ => u16::from(byte),
    }
}

/// A CLX with one Prc and the given pieces: (cp end, raw fc).
#[cfg(test)]
pub(super) fn test_clx(pieces: &[(u32, u32)]) -> Vec<u8> {
    let mut plc = vec![0u8; 4];
    for (end, _) in pieces {
        plc.extend(end.to_le_bytes());
    }
    for (_, fc) in pieces {
        plc.extend([0, 0]);
        plc.extend(fc.to_le_bytes());
        plc.extend([0, 0]);
    }
    let mut out = vec![0x01, 2, 0, 0xAA, 0xBB, 0x02];
    out.extend((plc.len() as u32).to_le_bytes());
    out.extend(plc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_and_unicode_pieces_decode_in_order() {
        let mut word = vec![0u8; 16];
        word.extend(b"Bid \x93bond\x94");
        word.extend(
            "保证金"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let clx = test_clx(&[(10, 0x4000_0000 | (16 * 2)), (13, 26)]);
        let text = Text::read(&word, &clx, 13, 1 << 20).unwrap();
        assert_eq!(
            String::from_utf16(&text.units).unwrap(),
            "Bid \u{201c}bond\u{201d}保证金"
        );
        assert_eq!(text.offset_of(0), Some(16));
        assert_eq!(text.offset_of(9), Some(25));
        assert_eq!(text.offset_of(10), Some(26));
        assert_eq!(text.offset_of(12), Some(30));
        assert_eq!(text.offset_of(13), None);
    }

    #[test]
    fn lying_pieces_are_errors() {
        let word = vec![0u8; 64];
        let outside = test_clx(&[(100, 0)]);
        assert_eq!(
            Text::read(&word, &outside, 100, 1 << 20).unwrap_err().kind,
            "corrupt"
        );
        let backwards = test_clx(&[(10, 0), (5, 0)]);
        assert_eq!(
            Text::read(&word, &backwards, 10, 1 << 20).unwrap_err().kind,
            "corrupt"
        );
        // Many pieces over the same bytes: the budget stops them.
        let pieces: Vec<(u32, u32)> = (1..=1000).map(|i| (i * 30, 0)).collect();
        assert_eq!(
            Text::read(&word, &test_clx(&pieces), 30_000, 10_000)
                .unwrap_err()
                .kind,
            "too_large"
        );
        assert_eq!(
            Text::read(&word, &[0x07], 1, 100).unwrap_err().kind,
            "corrupt"
        );
    }
}
