//! The vendored pdf-extract's content lexer (`vendor/pdf-extract/src/lexer.rs`)
//! against lopdf's `Content::decode`, on made-up streams: what it reads, it
//! reads as lopdf does; the rest it leaves to lopdf.

use lopdf::content::Content;
use pdf_extract::lexer::{MAX_BRACKET, MAX_DEPTH, Operations, lex};

/// The fast path gives what lopdf gives, or declines.
fn same(data: &[u8]) -> bool {
    let ours = lex(data);
    let theirs = Content::decode(data).map(Operations::from);
    match (ours, theirs) {
        (Some(a), Ok(b)) => {
            let a: Vec<_> = a
                .iter()
                .map(|o| (o.operator.to_string(), o.operands.to_vec()))
                .collect();
            let b: Vec<_> = b
                .iter()
                .map(|o| (o.operator.to_string(), o.operands.to_vec()))
                .collect();
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(data));
            true
        }
        (Some(_), Err(e)) => panic!("lopdf refused what we read: {e:?}"),
        (None, _) => false,
    }
}

#[test]
fn reads_what_lopdf_reads() {
    for data in [
        &b"BT /F1 12 Tf 72 712 Td (Hello, world!) Tj ET"[..],
        b"q 1 0 0 1 10.5 -.25 cm 0 0 1 rg 0 0 100 50 re f Q",
        b"BT/F2 9.96 Tf[(A)-250(B\\)\\(c)5.5<00410042>]TJ ET",
        b"/P <</MCID 0 /ActualText <FEFF0041>>> BDC (x) Tj EMC",
        b"(nested (parens) ok) Tj (esc \\n\\r\\t\\b\\f\\\\ \\101\\0\\53\\0053 \\q) Tj",
        b"(line\\\ncontinued\\\r\nagain\r\nraw) Tj",
        b"<4 1 42 4> Tj <414> Tj <> Tj",
        b"/Na#20me#2F gs 1. 2.5 +3 -4 d0 5 6 d1 h",
        b"[1 [2 [3]] <</A [4 5]>>] 0 d",
        b"T* 0 Tc (a) ' 1 2 (b) \"",
        b"12Tf 1.5.3 Td",
        b"",
        b"  \r\n ",
    ] {
        assert!(same(data), "declined: {:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn leaves_the_rest_to_lopdf() {
    for data in [
        &b"% a comment\nBT ET"[..],
        b"BI /W 2 /H 2 /CS /G /BPC 8 ID \x00\x01\x02\x03 EI Q",
        b"true false null Do",
        b"[1 0 R] TJ",
        b"1 2 3",
        b"(unterminated Tj",
        b"/Bad#zz gs",
        b"<41 4x> Tj",
        b"\x0c BT ET",
        b"{ } Do",
        b"<</A true>> BDC",
    ] {
        assert!(!same(data), "read: {:?}", String::from_utf8_lossy(data));
    }
}

#[test]
fn nesting_beyond_the_fast_path_goes_to_lopdf() {
    let deep = format!(
        "{}{} TJ",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    assert!(!same(deep.as_bytes()));
    let parens = format!(
        "({}{}) Tj",
        "(".repeat(MAX_BRACKET),
        ")".repeat(MAX_BRACKET)
    );
    assert!(same(parens.as_bytes()));
    let too_many = format!(
        "({}{}) Tj",
        "(".repeat(MAX_BRACKET + 1),
        ")".repeat(MAX_BRACKET + 1)
    );
    assert!(!same(too_many.as_bytes()));
}
