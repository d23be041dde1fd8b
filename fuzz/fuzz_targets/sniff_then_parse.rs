//! Fuzzes the pipeline's path: sniff the bytes, then parse what they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ParseLimits, parse, sniff::sniff};

fuzz_target!(|data: &[u8]| {
    if let Ok(media_type) = sniff(data, "upload.bin") {
        let _ = parse(data, media_type, &ParseLimits::default());
    }
});
