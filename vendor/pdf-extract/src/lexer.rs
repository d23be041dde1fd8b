//! tenderflow patch 3: content streams read by a hand-written lexer.
//!
//! lopdf's `Content::decode` (nom) tries every kind of object in turn at
//! every operand and builds a `String` and a `Vec` for each operation; on
//! Latin text that was a third of a parse's instructions. `decode` here reads
//! the common part of the content-stream language in one pass, into one
//! operand buffer, with each operator borrowed from the stream. Whatever it
//! does not read exactly as lopdf does (comments, inline images, `true`,
//! `false`, `null` and references, deep nesting, a malformed token, operands
//! left at the end) sends the whole stream to `Content::decode` instead, so
//! the operations are always the ones lopdf would give. The tests are
//! tenderflow's (`src/parse/pdf/lexer_tests.rs`, and a test over every
//! corpus PDF), so that its `cargo test` runs them.

use std::borrow::Cow;
use std::ops::Range;

use lopdf::content::Content;
use lopdf::{Dictionary, Object, StringFormat};

/// lopdf's `MAX_BRACKET`: how deep parentheses may nest in a literal string.
pub const MAX_BRACKET: usize = 100;
/// How deep arrays and dictionaries may nest before we leave it to lopdf
/// (which allows 100 and fails the whole stream beyond).
pub const MAX_DEPTH: usize = 32;

/// One operation, borrowed from its `Operations`.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub operator: &'a str,
    pub operands: &'a [Object],
}

/// The operations of a content stream.
#[derive(Debug, Default)]
pub struct Operations<'a> {
    operands: Vec<Object>,
    operators: Vec<(Cow<'a, str>, Range<usize>)>,
}

impl<'a> Operations<'a> {
    pub fn iter(&self) -> impl Iterator<Item = Operation<'_>> {
        self.operators
            .iter()
            .map(move |(operator, range)| Operation {
                operator,
                operands: &self.operands[range.clone()],
            })
    }
}

impl From<Content> for Operations<'static> {
    fn from(content: Content) -> Self {
        let mut ops = Operations::default();
        for operation in content.operations {
            let start = ops.operands.len();
            ops.operands.extend(operation.operands);
            ops.operators
                .push((Cow::Owned(operation.operator), start..ops.operands.len()));
        }
        ops
    }
}

/// The operations of `data`, as lopdf's `Content::decode` reads them.
pub fn decode(data: &[u8]) -> lopdf::Result<Operations<'_>> {
    match lex(data) {
        Some(ops) => Ok(ops),
        None => Content::decode(data).map(Operations::from),
    }
}

/// The operations of `data` when every token is one this lexer reads as
/// lopdf does, else `None`.
pub fn lex(data: &[u8]) -> Option<Operations<'_>> {
    let mut lexer = Lexer { data, pos: 0 };
    let mut ops = Operations::default();
    let mut start = 0;
    lexer.content_space();
    while let Some(c) = lexer.peek() {
        if is_operator(c) {
            let begin = lexer.pos;
            while lexer.peek().is_some_and(is_operator) {
                lexer.pos += 1;
            }
            let operator = std::str::from_utf8(&data[begin..lexer.pos]).ok()?;
            // lopdf reads these as operands, or as an inline image.
            if ["null", "true", "false", "BI", "ID", "EI"]
                .iter()
                .any(|p| operator.starts_with(p))
            {
                return None;
            }
            let end = ops.operands.len();
            ops.operators.push((Cow::Borrowed(operator), start..end));
            start = end;
        } else {
            let operand = lexer.object(0)?;
            ops.operands.push(operand);
        }
        lexer.content_space();
    }
    // lopdf drops operands with no operator after them.
    (start == ops.operands.len()).then_some(ops)
}

struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.data.get(self.pos + ahead).copied()
    }

    /// Between operands and operators lopdf skips only these four.
    fn content_space(&mut self) {
        while self.peek().is_some_and(|c| b" \t\r\n".contains(&c)) {
            self.pos += 1;
        }
    }

    /// Inside arrays and dictionaries all PDF white space is skipped (a
    /// comment there ends the fast path, at the next token).
    fn white_space(&mut self) {
        while self.peek().is_some_and(is_whitespace) {
            self.pos += 1;
        }
    }

    /// One object. A letter ends the fast path: lopdf would read `true`,
    /// `false` or `null` there, or `1 0 R` as a reference.
    fn object(&mut self, depth: usize) -> Option<Object> {
        let c = self.peek()?;
        match c {
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number(),
            b'/' => {
                self.pos += 1;
                self.name().map(Object::Name)
            }
            b'(' => {
                self.pos += 1;
                self.literal().map(Object::string_literal)
            }
            b'<' if self.peek_at(1) == Some(b'<') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 2;
                self.dictionary(depth + 1).map(Object::Dictionary)
            }
            b'<' => {
                self.pos += 1;
                self.hex()
                    .map(|bytes| Object::String(bytes, StringFormat::Hexadecimal))
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.array(depth + 1).map(Object::Array)
            }
            _ => None,
        }
    }

    /// lopdf's `real` (`[+-]? (digits "." digits? | "." digits)`, as f32),
    /// else its `integer` (`[+-]? digits`, as i64).
    fn number(&mut self) -> Option<Object> {
        let begin = self.pos;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.digits();
        if self.peek() == Some(b'.')
            && (digits > 0 || self.peek_at(1).is_some_and(|c| c.is_ascii_digit()))
        {
            self.pos += 1;
            self.digits();
            let text = std::str::from_utf8(&self.data[begin..self.pos]).ok()?;
            return text.parse::<f32>().ok().map(Object::Real);
        }
        if digits == 0 {
            return None;
        }
        let text = std::str::from_utf8(&self.data[begin..self.pos]).ok()?;
        text.parse::<i64>().ok().map(Object::Integer)
    }

    fn digits(&mut self) -> usize {
        let begin = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - begin
    }

    /// After `/`: regular characters and `#xx` escapes.
    fn name(&mut self) -> Option<Vec<u8>> {
        let mut name = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'#' {
                // lopdf ends the name at a `#` without two hex digits, and
                // then fails on the `#`.
                let hi = self.peek_at(1).and_then(hex_value)?;
                let lo = self.peek_at(2).and_then(hex_value)?;
                name.push(hi << 4 | lo);
                self.pos += 3;
            } else if is_regular(c) {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        Some(name)
    }

    /// After `(`: up to the balancing `)`, escapes resolved.
    fn literal(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut level = 0usize;
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'\\' => {
                    let e = self.peek()?;
                    match e {
                        b'0'..=b'7' => {
                            let mut value: u16 = 0;
                            for _ in 0..3 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        value = value * 8 + u16::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(value as u8);
                        }
                        b'\r' => {
                            self.pos += 1;
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => self.pos += 1,
                        _ => {
                            self.pos += 1;
                            out.push(match e {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'f' => 0x0C,
                                other => other,
                            });
                        }
                    }
                }
                b'(' => {
                    if level >= MAX_BRACKET {
                        return None;
                    }
                    level += 1;
                    out.push(c);
                }
                b')' => {
                    if level == 0 {
                        return Some(out);
                    }
                    level -= 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }

    /// After `<`: hex digits, white space between them ignored, an odd last
    /// digit taken as its high half.
    fn hex(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut high = true;
        loop {
            self.white_space();
            let Some(value) = self.peek().and_then(hex_value) else {
                break;
            };
            self.pos += 1;
            if high {
                out.push(value << 4);
            } else {
                *out.last_mut()? |= value;
            }
            high = !high;
        }
        (self.peek() == Some(b'>')).then(|| {
            self.pos += 1;
            out
        })
    }

    /// After `[`.
    fn array(&mut self, depth: usize) -> Option<Vec<Object>> {
        let mut items = Vec::new();
        loop {
            self.white_space();
            if self.peek()? == b']' {
                self.pos += 1;
                return Some(items);
            }
            items.push(self.object(depth)?);
        }
    }

    /// After `<<`.
    fn dictionary(&mut self, depth: usize) -> Option<Dictionary> {
        let mut dict = Dictionary::new();
        loop {
            self.white_space();
            match self.peek()? {
                b'>' if self.peek_at(1) == Some(b'>') => {
                    self.pos += 2;
                    return Some(dict);
                }
                b'/' => {
                    self.pos += 1;
                    let key = self.name()?;
                    self.white_space();
                    let value = self.object(depth)?;
                    dict.set(key, value);
                }
                _ => return None,
            }
        }
    }
}

/// The characters lopdf's `operator` takes.
fn is_operator(c: u8) -> bool {
    c.is_ascii_alphabetic() || b"*'\"".contains(&c)
}

fn is_whitespace(c: u8) -> bool {
    b" \t\n\r\0\x0C".contains(&c)
}

fn is_regular(c: u8) -> bool {
    !is_whitespace(c) && !b"()<>[]{}/%".contains(&c)
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|v| v as u8)
}
