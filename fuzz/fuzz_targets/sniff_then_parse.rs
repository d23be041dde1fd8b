//! Fuzzes the pipeline's path: sniff the bytes, then parse what they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ParseLimits, parse, sniff::sniff};

// The parser turns panics inside third-party crates into errors on purpose
// (parse::guard), so libfuzzer-sys's abort-on-any-panic hook is replaced by
// a quiet one; a panic that escapes `parse` still reaches libfuzzer-sys's
// own catch_unwind, which aborts: that is the crash this target looks for.
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    if let Ok(media_type) = sniff(data, "upload.bin") {
        let _ = parse(data, media_type, &ParseLimits::default());
    }
});
