//! Extraction quality on the development corpus and on fixtures written in
//! other templates. The corpus lives beside the repository
//! (`../shared/corpus/dev`, or `TENDERFLOW_CORPUS`); its tests are skipped
//! when it is absent.

use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("TENDERFLOW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dev"));
    dir.is_dir().then_some(dir)
}

#[test]
fn corpus_variants_are_right_and_complete() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not found; skipped");
        return;
    };
    let report = tenderflow::eval::run(&dir, true).unwrap();
    println!("{}", report.render());
    // Variants whose parser is not in this build report an error row; every
    // variant that parses must pass in full.
    let parsed: Vec<_> = report.rows.iter().filter(|r| r.error.is_none()).collect();
    assert!(!parsed.is_empty());
    for row in parsed {
        assert_eq!(
            row.wrong, 0,
            "{} {}: wrong values",
            row.document, row.variant
        );
        assert!(
            row.passed(),
            "{} {} did not pass:\n{}",
            row.document,
            row.variant,
            report.render()
        );
    }
}
