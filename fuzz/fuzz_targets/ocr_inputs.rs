//! Fuzzes what the OCR path reads besides the PDF itself: Tesseract's TSV
//! report, and a page image's bytes (JPEG or PNM) decoded and searched
//! for table rules. Any bytes give words, an image or nothing; never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ocr, ruling};

fuzz_target!(|data: &[u8]| {
    let _ = ocr::parse_tsv(&String::from_utf8_lossy(data));
    // A small pixel cap keeps each run fast; the parser's own cap is the
    // same check with a larger number.
    if let Some(gray) = ruling::decode_gray(data, 512, 512) {
        let angle = f64::from(data.first().copied().unwrap_or(0)) / 255.0 * 0.1 - 0.05;
        let _ = ruling::find_rules(&gray, angle);
    }
});
