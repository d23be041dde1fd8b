//! Symbol fonts (Wingdings, Wingdings 2, Symbol) mapped to Unicode.
//!
//! Word writes a ticked box as `w:sym w:font="Wingdings" w:char="F0FE"`, or
//! as a private-use character (U+F0FE) or a Latin-1 one ("þ") in a run whose
//! font is Wingdings. What the reader sees is a glyph of the font, so the text
//! has to carry the Unicode character of that glyph: ☑ ☒ □ ■ √ and a few more.
//! Characters without a known glyph are kept as written.

/// A symbol font whose code points are glyph slots, not Unicode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SymbolFont {
    Wingdings,
    Wingdings2,
    Symbol,
}

impl SymbolFont {
    /// The symbol font called `name` ("Wingdings 2", "Symbol"…), if any.
    pub(super) fn named(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "wingdings" | "wingdings 1" => Some(SymbolFont::Wingdings),
            "wingdings 2" => Some(SymbolFont::Wingdings2),
            "symbol" => Some(SymbolFont::Symbol),
            _ => None,
        }
    }

    /// The Unicode character of glyph slot `code` (0x00–0xFF, or its
    /// private-use alias 0xF000–0xF0FF).
    pub(super) fn glyph(self, code: u32) -> Option<char> {
        let code = if (0xF000..=0xF0FF).contains(&code) {
            code - 0xF000
        } else {
            code
        };
        let c = match self {
            SymbolFont::Wingdings => match code {
                0x6C => '●',
                0x6E => '■',
                0x6F | 0xA8 => '□',
                0x71 => '❑',
                0x75 => '◆',
                0x76 => '❖',
                0x78 | 0xFD => '☒',
                0x9F | 0xA1 => '○',
                0xA4 => '◉',
                0xA7 => '▪',
                0xAB => '★',
                0xD8 => '➢',
                0xFB => '✗',
                0xFC => '√',
                0xFE => '☑',
                _ => return None,
            },
            SymbolFont::Wingdings2 => match code {
                0x2A | 0xA3 => '□',
                0x4F => '✗',
                0x50 => '√',
                0x51 | 0x53 | 0x54 => '☒',
                0x52 => '☑',
                _ => return None,
            },
            SymbolFont::Symbol => match code {
                0xA3 => '≤',
                0xA5 => '∞',
                0xB0 => '°',
                0xB1 => '±',
                0xB3 => '≥',
                0xB4 => '×',
                0xB7 => '•',
                0xB8 => '÷',
                0xB9 => '≠',
                0xBB => '≈',
                0xD6 => '√',
                0x6D => 'μ',
                _ => return None,
            },
        };
        Some(c)
    }
}

/// A `w:sym` (`w:font`, `w:char` in hex): its glyph, else the character
/// itself when it is not a private-use slot.
pub(super) fn sym_char(font: Option<&str>, hex: &str) -> Option<char> {
    let code = u32::from_str_radix(hex.trim(), 16).ok()?;
    if let Some(c) = font.and_then(SymbolFont::named).and_then(|f| f.glyph(code)) {
        return Some(c);
    }
    let c = char::from_u32(code)?;
    (!is_private_use(c) && !c.is_control()).then_some(c)
}

fn is_private_use(c: char) -> bool {
    ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// The fonts of a run (`w:rFonts`): the symbol font that draws ASCII, the
/// one that draws Latin-1 and the one of any font slot (for private-use
/// characters, which Word draws in the run's symbol font whatever the slot).
#[derive(Debug, Default, Clone, Copy)]
pub(in crate::parse) struct RunFonts {
    ascii: Option<SymbolFont>,
    high_ansi: Option<SymbolFont>,
    any: Option<SymbolFont>,
}

impl RunFonts {
    /// From the `w:rFonts` attributes.
    pub(in crate::parse) fn new(
        ascii: Option<&str>,
        h_ansi: Option<&str>,
        others: &[Option<&str>],
    ) -> Self {
        let ascii = ascii.and_then(SymbolFont::named);
        let high_ansi = h_ansi.and_then(SymbolFont::named);
        let any = ascii
            .or(high_ansi)
            .or_else(|| others.iter().flatten().find_map(|f| SymbolFont::named(f)));
        RunFonts {
            ascii,
            high_ansi,
            any,
        }
    }

    pub(in crate::parse) fn is_plain(&self) -> bool {
        self.any.is_none()
    }

    /// `text` as drawn in these fonts.
    pub(in crate::parse) fn map(&self, text: &str) -> String {
        if self.is_plain() {
            return text.to_string();
        }
        text.chars()
            .map(|c| {
                let code = c as u32;
                let font = match code {
                    0xF000..=0xF0FF => self.any,
                    0x21..=0x7E => self.ascii,
                    0xA0..=0xFF => self.high_ansi,
                    _ => None,
                };
                font.and_then(|f| f.glyph(code)).unwrap_or(c)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sym_elements_map_to_unicode() {
        assert_eq!(sym_char(Some("Wingdings"), "F0FE"), Some('☑'));
        assert_eq!(sym_char(Some("Wingdings"), "F0A8"), Some('□'));
        assert_eq!(sym_char(Some("Wingdings"), "F06F"), Some('□'));
        assert_eq!(sym_char(Some("Wingdings"), "F0FC"), Some('√'));
        assert_eq!(sym_char(Some("Wingdings 2"), "00A3"), Some('□'));
        assert_eq!(sym_char(Some("Wingdings 2"), "F052"), Some('☑'));
        assert_eq!(sym_char(Some("Symbol"), "F0D6"), Some('√'));
        // Unknown slot of a symbol font: nothing rather than a private-use char.
        assert_eq!(sym_char(Some("Wingdings"), "F021"), None);
        // A real Unicode character in an ordinary font stays itself.
        assert_eq!(sym_char(Some("宋体"), "2611"), Some('☑'));
    }

    #[test]
    fn run_text_in_a_symbol_font() {
        let fonts = RunFonts::new(Some("Wingdings"), Some("Wingdings"), &[]);
        assert_eq!(fonts.map("\u{F0FE}是 \u{F0A8}否"), "☑是 □否");
        assert_eq!(fonts.map("þ"), "☑");
        // East Asian slot only: ASCII keeps its letters, private use maps.
        let east = RunFonts::new(None, None, &[Some("Wingdings 2")]);
        assert_eq!(east.map("R\u{F052}"), "R☑");
        assert!(RunFonts::new(Some("宋体"), None, &[]).is_plain());
    }
}
