//! Fuzzes the text and Markdown parsers (encoding detection included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ParseLimits, parse, sniff};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, sniff::TEXT, &ParseLimits::default());
    let _ = parse(data, sniff::MARKDOWN, &ParseLimits::default());
});
