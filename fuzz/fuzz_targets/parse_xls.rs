//! Fuzzes the XLS parser: any bytes give a document or a ParseError.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::parse::{ParseLimits, parse, sniff};

// The parser turns panics inside third-party crates into errors on purpose
// (parse::guard), so libfuzzer-sys's abort-on-any-panic hook is replaced by
// a quiet one; a panic that escapes `parse` still reaches libfuzzer-sys's
// own catch_unwind, which aborts: that is the crash this target looks for.
fuzz_target!(init: std::panic::set_hook(Box::new(|_| {})), |data: &[u8]| {
    let _ = parse(data, sniff::XLS, &ParseLimits::default());
});
