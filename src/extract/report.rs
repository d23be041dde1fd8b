//! The summary as a readable report, for the command line.

use std::fmt::Write as _;

use crate::summary::{Evidence, FieldValue, Summary};

/// Field ids in the order a bid team reads them.
const ORDER: &[&str] = &[
    "project",
    "tender_no",
    "owner",
    "agency",
    "scope",
    "budget",
    "price_cap",
    "duration",
    "quality",
    "deadline_query",
    "deadline_bid",
    "opening_time",
    "opening_place",
    "site_visit",
    "validity",
    "bond",
    "performance_bond",
    "warranty",
    "qualification",
    "registration",
    "pm",
    "track_record",
    "consortium",
    "alternatives",
    "subcontracting",
    "eval_method",
    "copies",
];

/// Where a value came from, for people: the clause path, the page and the
/// amendment ("第二章 前附表 3.3, p. 4, amendment 1").
pub fn cite(e: &Evidence) -> String {
    let mut s = if e.section.is_empty() {
        "start of document".to_string()
    } else {
        e.section.clone()
    };
    if let Some(p) = e.page {
        let _ = write!(s, ", p. {p}");
    }
    if e.document > 0 {
        let _ = write!(s, ", amendment {}", e.document);
    }
    s
}

fn field_line(out: &mut String, id: &str, f: &FieldValue) {
    let normalized = if f.normalized.is_null() {
        String::new()
    } else {
        format!("  ({})", f.normalized)
    };
    let _ = writeln!(out, "  {id:<17} {}{normalized}", f.value);
    if f.source.is_empty() {
        let _ = writeln!(out, "  {:<17} [{}]", "", cite(&f.evidence));
    } else {
        let _ = writeln!(out, "  {:<17} [{}] ({})", "", cite(&f.evidence), f.source);
    }
    for old in &f.superseded {
        let _ = writeln!(
            out,
            "  {:<17} was: {} [{}]",
            "",
            old.value,
            cite(&old.evidence)
        );
    }
}

fn ordered(fields: &std::collections::BTreeMap<String, FieldValue>) -> Vec<(&String, &FieldValue)> {
    let mut v: Vec<_> = fields.iter().collect();
    v.sort_by_key(|(id, _)| ORDER.iter().position(|o| o == id).unwrap_or(ORDER.len()));
    v
}

/// Renders the summary as plain text: fields with their sources, lots,
/// rejection clauses, scoring, forms, contacts and warnings.
pub fn render_report(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Fields");
    for (id, f) in ordered(&summary.fields) {
        field_line(&mut out, id, f);
    }
    for (lot, fields) in &summary.lots {
        let _ = writeln!(out, "\nLot {lot}");
        for (id, f) in ordered(fields) {
            field_line(&mut out, id, f);
        }
    }
    let _ = writeln!(out, "\nRejection clauses ({})", summary.rejections.len());
    for r in &summary.rejections {
        let _ = writeln!(out, "  - [{}] {}  [{}]", r.kind, r.text, cite(&r.evidence));
    }
    let _ = writeln!(out, "\nScoring ({})", summary.scoring.len());
    for s in &summary.scoring {
        let group = s
            .group
            .as_deref()
            .map(|g| format!("{g} / "))
            .unwrap_or_default();
        let _ = writeln!(out, "  - {group}{}: {}", s.name, s.points);
    }
    let _ = writeln!(out, "\nBid documents ({})", summary.forms.len());
    for f in &summary.forms {
        let _ = writeln!(out, "  - {}", f.name);
    }
    if !summary.contacts.is_empty() {
        let _ = writeln!(out, "\nContacts");
        for c in &summary.contacts {
            let parts: Vec<&str> = [&c.organization, &c.person, &c.phone, &c.email]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .collect();
            let _ = writeln!(out, "  - {}: {}", c.role, parts.join(", "));
        }
    }
    let mandatory = summary
        .requirements
        .iter()
        .filter(|r| r.level == "mandatory")
        .count();
    let _ = writeln!(
        out,
        "\nRequirements: {} ({} mandatory)",
        summary.requirements.len(),
        mandatory
    );
    if !summary.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &summary.warnings {
            let _ = writeln!(out, "  - {}", w.message);
        }
    }
    out
}
