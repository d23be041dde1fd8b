//! Fuzzes the PDF parser: any bytes give a document or a ParseError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ParseLimits, parse, sniff};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, sniff::PDF, &ParseLimits::default());
});
