//! The style sheet (STSH, [MS-DOC] 2.9.271): which paragraph styles are
//! headings, by their built-in identifier, their outline level or their
//! name.

use super::bytes::u16_at;
use super::props::{Para, para_of};

/// Built-in style identifiers (`sti`) 1–9 are "heading 1" to "heading 9".
const STI_HEADINGS: std::ops::RangeInclusive<u16> = 1..=9;
/// `sti` of "Title".
const STI_TITLE: u16 = 62;
/// Longest chain of base styles followed (a cycle would never end).
const MAX_CHAIN: usize = 16;

#[derive(Debug, Clone)]
struct Style {
    sti: u16,
    base: u16,
    name: String,
    /// The style's paragraph properties that matter here: `sprmPOutLvl`
    /// (as `outline`, 1-based), `sprmPIlfo` and `sprmPIlvl`.
    para: Para,
}

/// The paragraph styles, by index (istd).
#[derive(Debug, Default)]
pub(super) struct Styles {
    by_istd: Vec<Option<Style>>,
}

impl Styles {
    /// Reads an STSH; a broken one gives what was read before the break.
    pub(super) fn parse(stsh: Option<&[u8]>) -> Styles {
        let Some(stsh) = stsh else {
            return Styles::default();
        };
        let mut styles = Styles::default();
        let (Some(cb_stshi), Some(count), Some(cb_base)) =
            (u16_at(stsh, 0), u16_at(stsh, 2), u16_at(stsh, 4))
        else {
            return styles;
        };
        let mut at = 2 + usize::from(cb_stshi);
        for _ in 0..count {
            let Some(cb_std) = u16_at(stsh, at).map(usize::from) else {
                break;
            };
            let std = stsh.get(at + 2..at + 2 + cb_std);
            at += 2 + cb_std;
            styles.by_istd.push(
                std.filter(|s| !s.is_empty())
                    .and_then(|s| style_of(s, usize::from(cb_base))),
            );
        }
        styles
    }

    /// The heading level of paragraphs of style `istd`: an outline level up
    /// the chain of base styles, else a built-in heading or a heading-like
    /// name ("heading 2", "标题 2", "Title").
    pub(super) fn heading_level(&self, istd: u16) -> Option<u8> {
        let chain = self.chain(istd);
        if let Some(level) = chain.iter().find_map(|s| s.para.outline) {
            return Some(level);
        }
        chain.iter().find_map(|s| match s.sti {
            sti if STI_HEADINGS.contains(&sti) => Some(sti as u8),
            STI_TITLE => Some(1),
            _ => crate::parse::docx::heading_level_of_name(&s.name),
        })
    }

    /// The list of paragraphs of style `istd`: the list instance and, if
    /// the style names one, the level, from the nearest style in the chain
    /// that names a list.
    pub(super) fn list(&self, istd: u16) -> Option<(u16, Option<u8>)> {
        self.chain(istd)
            .iter()
            .find_map(|s| s.para.ilfo.map(|ilfo| (ilfo, s.para.ilvl)))
    }

    fn chain(&self, istd: u16) -> Vec<&Style> {
        let mut out = Vec::new();
        let mut next = istd;
        while let Some(Some(style)) = self.by_istd.get(usize::from(next)) {
            out.push(style);
            // istdBase 0x0FFF: no base.
            if out.len() >= MAX_CHAIN || style.base == 0x0FFF {
                break;
            }
            next = style.base;
        }
        out
    }
}

/// One STD: its Stdf (the base part is `cb_base` bytes), name and, for a
/// paragraph style, the outline level in its paragraph UPX.
fn style_of(std: &[u8], cb_base: usize) -> Option<Style> {
    let sti = u16_at(std, 0)? & 0x0FFF;
    let second = u16_at(std, 2)?;
    let (stk, base) = (second & 0x000F, second >> 4);
    let cch = usize::from(u16_at(std, cb_base)?);
    let name_bytes = std.get(cb_base + 2..cb_base + 2 + cch * 2)?;
    let units: Vec<u16> = name_bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let name = String::from_utf16_lossy(&units);
    // The UPXs follow the name's terminating NUL, at an even offset.
    let mut at = cb_base + 2 + (cch + 1) * 2;
    at += at % 2;
    let para = if stk == 1 {
        let cb_upx = usize::from(u16_at(std, at)?);
        // UpxPapx: istd (2 bytes), then the grpprl.
        std.get(at + 4..at + 2 + cb_upx)
            .map_or_else(Para::default, |grpprl| para_of(0, grpprl))
    } else {
        Para::default()
    };
    Some(Style {
        sti,
        base,
        name,
        para,
    })
}

/// An STSH of paragraph styles: (sti, base istd, name, paragraph sprms).
#[cfg(test)]
pub(super) fn test_stsh(styles: &[(u16, u16, &str, Vec<u8>)]) -> Vec<u8> {
    // Stshi: cstd, cbSTDBaseInFile (10: no StdfPost2000), then 14 bytes.
    let mut out = Vec::new();
    let mut stshi = Vec::new();
    stshi.extend((styles.len() as u16).to_le_bytes());
    stshi.extend(10u16.to_le_bytes());
    stshi.extend([0u8; 14]);
    out.extend((stshi.len() as u16).to_le_bytes());
    out.extend(stshi);
    for (sti, base, name, grpprl) in styles {
        let mut std = Vec::new();
        std.extend(sti.to_le_bytes());
        std.extend((1u16 | (base << 4)).to_le_bytes());
        std.extend([0u8; 6]);
        let units: Vec<u16> = name.encode_utf16().collect();
        std.extend((units.len() as u16).to_le_bytes());
        for u in &units {
            std.extend(u.to_le_bytes());
        }
        std.extend([0, 0]);
        if std.len() % 2 == 1 {
            std.push(0);
        }
        std.extend(((grpprl.len() + 2) as u16).to_le_bytes());
        std.extend([0, 0]);
        std.extend(grpprl);
        out.extend((std.len() as u16).to_le_bytes());
        out.extend(std);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_come_from_identifiers_outlines_and_names() {
        let stsh = test_stsh(&[
            (0, 0x0FFF, "Normal", vec![]),
            (1, 0, "标题 1", vec![0x0B, 0x46, 2, 0, 0x0A, 0x26, 1]),
            (0x0FFE, 0, "My Heading", vec![0x40, 0x26, 1]),
            (0x0FFE, 2, "Derived", vec![]),
            (0x0FFE, 0, "标题 3", vec![]),
            (0x0FFE, 6, "Loop", vec![]),
            (0x0FFE, 5, "Loop back", vec![]),
        ]);
        let styles = Styles::parse(Some(&stsh));
        assert_eq!(styles.heading_level(0), None);
        assert_eq!(styles.heading_level(1), Some(1));
        assert_eq!(styles.heading_level(2), Some(2));
        assert_eq!(styles.heading_level(3), Some(2));
        assert_eq!(styles.heading_level(4), Some(3));
        assert_eq!(styles.heading_level(5), None);
        assert_eq!(styles.heading_level(99), None);
        assert_eq!(styles.list(1), Some((2, Some(1))));
        assert_eq!(styles.list(3), None);
        // Cut anywhere, the sheet gives what it holds and never panics.
        for cut in 0..stsh.len() {
            let _ = Styles::parse(Some(&stsh[..cut])).heading_level(3);
        }
    }
}
