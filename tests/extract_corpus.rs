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

/// The real public tenders beside the development set.
fn real_corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/real");
    dir.is_dir().then_some(dir)
}

/// On real documents nothing reported may be wrong, and fields and lists
/// must be found at the 90 % on every document.
#[test]
fn real_documents_have_no_wrong_value() {
    let Some(dir) = real_corpus() else {
        eprintln!("real corpus not found; skipped");
        return;
    };
    let report = tenderflow::eval::run(&dir, true).unwrap();
    println!("{}", report.render());
    assert!(
        report.rows.len() >= 8,
        "every real document variant is scored"
    );
    let at_least = |(found, total): (usize, usize), share: f64| {
        total == 0 || found as f64 >= share * total as f64
    };
    for row in &report.rows {
        let name = format!("{} {}", row.document, row.variant);
        assert!(row.error.is_none(), "{name}: {:?}", row.error);
        assert_eq!(row.wrong, 0, "{name}: wrong values\n{}", report.render());
        assert!(at_least((row.right, row.fields), 0.9), "{name}: fields");
        assert!(at_least(row.rejections, 0.85), "{name}: rejections");
        assert!(at_least(row.scores, 0.9), "{name}: scoring");
        assert!(at_least(row.forms, 0.9), "{name}: forms");
    }
    let (right, fields) = report
        .rows
        .iter()
        .fold((0, 0), |(r, f), row| (r + row.right, f + row.fields));
    assert!(
        at_least((right, fields), 0.9),
        "fields overall: {right}/{fields}"
    );
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn summarize(names: &[&str]) -> tenderflow::summary::Summary {
    let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    tenderflow::extract::summarize_files_blocking(&paths).unwrap()
}

/// A competitive consultation (竞争性磋商) with two lots in a lot table and
/// per-lot "包1：…；包2：…" data-sheet cells, and a 更正公告 that moves the
/// deadline and lowers one lot's price cap.
#[test]
fn competitive_consultation_with_lots_and_amendment() {
    let s = summarize(&["cs_lots.md", "cs_lots_amendment.md"]);
    let f = |id: &str| s.fields.get(id).map(|v| v.value.as_str());
    assert_eq!(f("tender_no"), Some("NHCG-2026-0712"));
    assert_eq!(f("owner"), Some("南湖区人民医院"));
    assert_eq!(f("agency"), Some("南湖招标咨询有限公司"));
    assert_eq!(s.fields["budget"].normalized["amount"], 3_500_000.0);
    assert_eq!(f("eval_method"), Some("综合评分法"));
    assert_eq!(s.fields["validity"].normalized["days"], 90.0);
    assert_eq!(s.fields["copies"].normalized["copies"], 4.0);

    // The amendment's deadline wins; the old one is kept with its evidence.
    let deadline = &s.fields["deadline_bid"];
    assert_eq!(deadline.normalized, "2026-12-15T09:30:00+08:00");
    assert_eq!(deadline.evidence.document, 1);
    assert_eq!(deadline.superseded.len(), 1);
    assert_eq!(
        deadline.superseded[0].normalized,
        "2026-12-08T14:30:00+08:00"
    );
    assert_eq!(deadline.superseded[0].evidence.document, 0);

    let lot = |l: &str, id: &str| s.lots[l][id].normalized.clone();
    assert_eq!(lot("包1", "price_cap")["amount"], 2_200_000.0);
    assert_eq!(lot("包2", "price_cap")["amount"], 1_250_000.0);
    assert_eq!(s.lots["包2"]["price_cap"].superseded[0].value, "128.5万元");
    assert_eq!(lot("包1", "bond")["amount"], 20_000.0);
    assert_eq!(lot("包2", "bond")["amount"], 13_000.0);
    assert_eq!(lot("包1", "duration")["days"], 60.0);
    assert_eq!(lot("包2", "warranty")["months"], 24.0);
    // Contract terms ("30日内交货", "7日内修复") never become values.
    assert!(!s.fields.contains_key("duration"));
    assert!(!s.fields.contains_key("warranty"));

    let rejected = |t: &str| s.rejections.iter().any(|r| r.text.contains(t));
    assert!(rejected("其响应文件无效"));
    assert!(rejected("按无效响应处理"));
    assert!(rejected("★包1：探头数量不少于3个"));
    assert!(!rejected("违约金"));
    let points: Vec<(&str, f64)> = s
        .scoring
        .iter()
        .map(|i| (i.name.as_str(), i.points_value.unwrap()))
        .collect();
    assert_eq!(
        points,
        vec![
            ("价格", 30.0),
            ("技术参数响应", 40.0),
            ("售后服务", 15.0),
            ("业绩", 10.0),
            ("节能环保", 5.0)
        ]
    );
    let forms: Vec<&str> = s.forms.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        forms,
        vec![
            "响应函",
            "报价一览表",
            "资格证明文件",
            "技术偏离表",
            "售后服务承诺"
        ]
    );
}

/// A World-Bank-style Bid Data Sheet: labels written as sentences ("The
/// amount of the Bid Security shall be:"), times in a stated zone, and
/// Conditions of Contract full of day counts.
#[test]
fn english_bid_data_sheet() {
    let s = summarize(&["en_bds.md"]);
    let f = |id: &str| s.fields.get(id).map(|v| v.value.as_str());
    assert_eq!(f("owner"), Some("Lakeside Water and Sewerage Company"));
    assert_eq!(f("tender_no"), Some("LWSC/NCB/2030/07"));
    assert_eq!(
        f("project"),
        Some("Rehabilitation of the Eastern Trunk Main")
    );
    assert_eq!(
        s.fields["deadline_bid"].normalized,
        "2030-03-14T10:00:00+03:00"
    );
    assert_eq!(
        s.fields["deadline_bid"].evidence.section,
        "Section II. Bid Data Sheet ITB 22.1"
    );
    assert_eq!(s.fields["deadline_query"].normalized, "2030-02-28");
    assert_eq!(s.fields["bond"].normalized["currency"], "USD");
    assert_eq!(s.fields["bond"].normalized["amount"], 45_000.0);
    assert_eq!(s.fields["validity"].normalized["days"], 120.0);
    assert_eq!(s.fields["warranty"].normalized["days"], 365.0);
    assert_eq!(s.fields["duration"].normalized["months"], 18.0);
    assert_eq!(f("performance_bond"), Some("10% of the Contract Price"));
    assert_eq!(s.fields["consortium"].normalized, false);
    assert_eq!(s.fields["alternatives"].normalized, false);
    assert_eq!(s.fields["copies"].normalized["copies"], 2.0);
    assert!(
        s.rejections
            .iter()
            .any(|r| r.text.contains("shall be rejected"))
    );
    let forms: Vec<&str> = s.forms.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        forms,
        vec![
            "Letter of Bid",
            "Priced Bill of Quantities",
            "Bid Security",
            "Schedule of Key Personnel"
        ]
    );
}

/// A government-procurement public tender saved as plain text: tab-separated
/// data-sheet rows, "1.招标人信息 / 名称：…" party lines, per-标段 values in
/// one cell, full-width thousands separators, and a 补遗 whose table of
/// 原内容 / 修改后内容 changes lot 2.
#[test]
fn plain_text_tender_with_sections_and_addendum() {
    let s = summarize(&["gov_tender.txt", "gov_tender_addendum.txt"]);
    let f = |id: &str| s.fields.get(id).map(|v| v.value.as_str());
    assert_eq!(f("owner"), Some("城东区城市建设投资有限公司"));
    assert_eq!(f("agency"), Some("华联工程管理咨询有限公司"));
    assert_eq!(f("tender_no"), Some("CDJS-2027-015"));
    assert_eq!(
        s.fields["deadline_bid"].normalized,
        "2027-03-02T09:30:00+08:00"
    );
    assert_eq!(s.fields["consortium"].normalized, false);
    assert_eq!(f("eval_method"), Some("经评审的最低投标价法"));
    // Per-lot cells never become a value for the whole tender.
    for id in ["price_cap", "duration", "bond", "warranty"] {
        assert!(!s.fields.contains_key(id), "{id} is per lot");
    }
    let lot = |l: &str, id: &str| &s.lots[l][id];
    assert_eq!(
        lot("一标段", "price_cap").normalized["amount"],
        12_000_000.0
    );
    assert_eq!(lot("一标段", "duration").normalized["days"], 365.0);
    assert_eq!(lot("二标段", "bond").normalized["amount"], 150_000.0);
    let cap2 = lot("二标段", "price_cap");
    assert_eq!(cap2.normalized["amount"], 9_500_000.0);
    assert_eq!(cap2.superseded[0].normalized["amount"], 9_860_000.0);
    assert_eq!(lot("二标段", "duration").superseded[0].value, "300日历天");
    let roles: Vec<(&str, Option<&str>)> = s
        .contacts
        .iter()
        .map(|c| (c.role.as_str(), c.phone.as_deref()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("招标人", Some("0573-5550888")),
            ("招标代理机构", Some("0573-5550999"))
        ]
    );
}

/// An English addendum that extends the closing date and changes the
/// deposit of the dev corpus's ITT.
#[test]
fn english_addendum_supersedes_values() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not found; skipped");
        return;
    };
    let paths = vec![dir.join("en_itt.md"), fixture("en_addendum.md")];
    let s = tenderflow::extract::summarize_files_blocking(&paths).unwrap();
    let deadline = &s.fields["deadline_bid"];
    assert_eq!(deadline.normalized, "2029-08-21T16:00:00+08:00");
    assert_eq!(
        deadline.superseded[0].normalized,
        "2029-08-14T16:00:00+08:00"
    );
    let bond = &s.fields["bond"];
    assert_eq!(bond.value, "S$30,000");
    assert_eq!(bond.superseded[0].value, "S$35,000");
    // Values the addendum does not touch stay as they were.
    assert_eq!(s.fields["validity"].value, "120 days");
    assert!(s.fields["validity"].superseded.is_empty());
}

/// A 澄清 that moves the deadline also moves an opening time stated as
/// "同投标截止时间"; contract-chapter decoys stay out.
#[test]
fn opening_time_follows_an_amended_deadline() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not found; skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let amendment = tmp.path().join("clarification.md");
    std::fs::write(
        &amendment,
        "# 澄清文件（第1号）\n\n1. 投标截止时间由2026年11月3日9时30分推迟至2026年11月10日9时30分。\n",
    )
    .unwrap();
    let paths = vec![dir.join("cn_construction.md"), amendment];
    let s = tenderflow::extract::summarize_files_blocking(&paths).unwrap();
    assert_eq!(
        s.fields["deadline_bid"].normalized,
        "2026-11-10T09:30:00+08:00"
    );
    assert_eq!(s.fields["opening_time"].value, "同投标截止时间");
    assert_eq!(
        s.fields["opening_time"].normalized,
        "2026-11-10T09:30:00+08:00"
    );
    assert_eq!(s.fields["duration"].value, "540日历天");
}
