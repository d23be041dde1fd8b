//! English tender patterns: bid data sheet rows written as sentences
//! ("ITB 18.1 | The bid validity period shall be 90 days."), key-value
//! rows of e-procurement portals with numeric dates ("Bid Submission End
//! Date | 15-01-2024 15:00:00"), and the prose of a Notice Inviting Tender
//! ("Sealed tenders are invited from … empanelled contractors for …",
//! "Earnest money deposit of Rs.10,000.00", "in duplicate").
//!
//! Every candidate here is a sentence (priority 1) unless it comes from a
//! data-sheet row; the labelled pairs and tables of `candidates` stay the
//! more trusted sources. A numeric date whose day and month cannot be told
//! apart is left out with a warning.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::candidates::{Candidate, Context, content_candidates};
use super::fields::{Kind, fields_for_label};
use super::normalize::{
    DayOrder, STATED_OFFSET, compact, find_durations, find_times, find_times_dmy, stated_day_order,
    tidy,
};
use super::text::{clause_number, label_value, strip_numbering};
use crate::document::Block;
use crate::filter::{Chunk, ClassifiedDocument};
use crate::summary::{Evidence, Warning};

/// Parts whose prose may state tender terms.
fn reads(chunk: &Chunk) -> bool {
    chunk.keep
        && matches!(
            chunk.part.as_str(),
            "notice" | "instructions" | "data_sheet" | "other" | "amendment" | ""
        )
}

/// Adds the English candidates of `doc` to `out` and returns the warnings
/// for values left out (numeric dates whose day and month the document
/// does not let us tell apart). A date-or-text field that the general
/// rules kept as text ("16-01-2024 11:00:00") and that is read here as a
/// date is the same value: the text copy goes.
pub fn add_candidates(
    doc: &ClassifiedDocument,
    ctx: Context,
    out: &mut Vec<Candidate>,
) -> Vec<Warning> {
    let (mine, warnings) = scan(doc, ctx);
    out.retain(|c| {
        !(c.normalized.is_null()
            && mine.iter().any(|m| {
                m.field == c.field
                    && !m.normalized.is_null()
                    && compact(&m.value) == compact(&c.value)
            }))
    });
    out.extend(mine);
    warnings
}

fn scan(doc: &ClassifiedDocument, ctx: Context) -> (Vec<Candidate>, Vec<Warning>) {
    let text = doc.plain_text();
    if !is_english(&text) {
        return (Vec::new(), Vec::new());
    }
    let mut s = Scan {
        ctx,
        order: stated_day_order(&text),
        out: Vec::new(),
        warnings: Vec::new(),
        invited: false,
    };
    let mut conditions = false;
    for chunk in &doc.chunks {
        let own = chunk.section.rsplit(" > ").next().unwrap_or("");
        if ENDS_CONDITIONS.is_match(own) {
            conditions = false;
        }
        if crate::filter::rules::part_of(&[own.to_string()]).is_some_and(|(p, _)| p == "contract") {
            conditions = true;
        }
        // Conditions of contract whose clauses the outline did not nest
        // under their heading run until a heading of another part.
        let blocks: Vec<Block> = chunk
            .blocks
            .iter()
            .filter(|b| {
                if CONDITIONS_START.is_match(&b.text()) {
                    conditions = true;
                }
                !conditions
            })
            .cloned()
            .collect();
        // "Sealed tenders are invited by X for Y" names the buyer even
        // under a "Scope of work" heading.
        if chunk.keep && chunk.part == "technical" {
            for (text, page) in joined_paragraphs(&blocks) {
                s.invited(chunk, &text, page);
            }
        }
        if !reads(chunk) {
            continue;
        }
        for block in &blocks {
            if let Block::Table { rows, page, .. } = block {
                for row in rows {
                    s.row(chunk, row, *page);
                }
            }
        }
        for (text, page) in joined_paragraphs(&blocks) {
            s.prose(chunk, &text, page);
        }
    }
    (s.out, s.warnings)
}

/// A block that opens conditions of contract: a capitalised title
/// ("GENERAL CONDITIONS OF CONTRACT", "SPECIAL CONDITIONS (To be read …)"),
/// not a mention in a list of documents.
static CONDITIONS_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:\d+(?:\.\d+)*\.?\s+)?(?:GENERAL|SPECIAL|PARTICULAR|ADDITIONAL)\s+CONDITIONS\b",
    )
    .expect("conditions regex")
});

/// Headings of parts that follow the conditions of contract.
static ENDS_CONDITIONS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:appendix|annexure|annex|schedule)\b|notice\s+inviting|instructions\s+to|data\s+sheet|form\s+of\s+(?:tender|bid)|price\s+bid|invitation\s+(?:to|for)")
        .expect("ends regex")
});

static RUPEES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:\bRs\b\.?|\bINR\b)\s*\d|₹").expect("rupees regex"));
static INDIA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bindia(?:n)?\b").expect("india regex"));
static OTHER_RUPEE_LANDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:pakistan|nepal|sri\s+lanka|mauritius|seychelles)\b").expect("lands regex")
});

/// Indian Standard Time for an Indian tender (rupee amounts, India named,
/// no other rupee country) that states no offset of its own.
pub fn indian_offset(text: &str) -> Option<chrono::FixedOffset> {
    (!STATED_OFFSET.is_match(text)
        && RUPEES.is_match(text)
        && INDIA.is_match(text)
        && !OTHER_RUPEE_LANDS.is_match(text))
    .then(|| chrono::FixedOffset::east_opt(5 * 3600 + 1800))
    .flatten()
}

/// A document is English when most of its letters are Latin.
fn is_english(text: &str) -> bool {
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let cjk = text
        .chars()
        .filter(|c| super::normalize::is_cjk(*c))
        .count();
    latin > 0 && cjk * 10 < latin
}

/// Paragraphs as written: PDF exports break a sentence into one block a
/// line, so a block that does not end a sentence runs on into the next.
fn joined_paragraphs(blocks: &[Block]) -> Vec<(String, Option<u32>)> {
    let mut out: Vec<(String, Option<u32>)> = Vec::new();
    let mut open = false;
    for block in blocks {
        let (text, page) = match block {
            Block::Paragraph { text, page } | Block::ListItem { text, page, .. } => (text, *page),
            Block::Heading { text, page, .. } => {
                out.push((tidy(text), *page));
                open = false;
                continue;
            }
            Block::Table { .. } => {
                open = false;
                continue;
            }
        };
        let text = tidy(text);
        if text.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, _)) if open && last.len() < 2000 && !STARTS_ITEM.is_match(&text) => {
                last.push(' ');
                last.push_str(&text);
            }
            _ => out.push((text, page)),
        }
        open = !out
            .last()
            .is_some_and(|(t, _)| t.trim_end().ends_with(['.', ';', ':', '!', '?', '。']));
    }
    out
}

/// A block that starts an item of its own, never a wrapped line: a clause
/// reference ("ITB 18.1", "4.2") or an enumeration ("(a)", "2.", "b)").
static STARTS_ITEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:(?:ITB|ITT|ITC|BDS|GCC|SCC|PCC)\s*\d|\d+(?:\.\d+)+\s|\(?[a-z0-9]{1,3}[.)]\s)",
    )
    .expect("item regex")
});

struct Scan {
    ctx: Context,
    order: DayOrder,
    out: Vec<Candidate>,
    warnings: Vec<Warning>,
    /// Whether an invitation sentence has named the project: the first
    /// one (the notice's) does; later restatements do not.
    invited: bool,
}

fn evidence(
    chunk: &Chunk,
    clause: Option<&str>,
    page: Option<u32>,
    quote: &str,
    ctx: Context,
) -> Evidence {
    super::candidates::evidence(chunk, clause, page, &tidy(quote), ctx)
}

/// A clause reference in a label cell: "ITB 18.1", "BDS 4.1", "18.1".
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^((ITB|ITT|ITC|BDS|GCC|SCC|PCC|clause)\s*)?\d+(\.\d+)*[a-z]?$")
        .expect("reference regex")
});

/// "The bid validity period shall be 90 days" -> ("The bid validity
/// period", "90 days"); "Alternative bids will not be permitted" ->
/// (…, "not permitted").
static SENTENCE_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<label>[A-Za-z][A-Za-z ,'()/-]{3,80}?)\s+(?:is|are|shall|will)(?P<not>\s+not)?(?:\s+be)?\s*:?\s+(?P<value>\S.*)$")
        .expect("sentence pair")
});

static UNIT_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?P<base>.+?)\s*(?:\(\s*(?:in\s+)?(?P<unit>days|months|weeks|rs\.?|inr|₹)\s*\)|\bin\s+(?P<unit2>rs\.?|inr|₹))\s*$")
        .expect("unit label regex")
});
static BARE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{1,3}(?:,\d{2,3})*(?:\.\d+)?$|^\d+(?:\.\d+)?$").expect("number regex")
});

/// Kinds read from a numeric date.
fn is_date_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Date | Kind::DateOrText)
}

impl Scan {
    fn push(
        &mut self,
        field: &'static str,
        value: &str,
        normalized: Value,
        ev: &Evidence,
        priority: u8,
    ) {
        self.out.push(Candidate {
            field,
            lot: None,
            value: tidy(value),
            normalized,
            evidence: ev.clone(),
            priority,
        });
    }

    /// A table row: a data-sheet row written as a sentence, or a label
    /// with a numeric date.
    fn row(&mut self, chunk: &Chunk, row: &[String], page: Option<u32>) {
        let cells: Vec<&str> = row
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect();
        if cells.len() < 2 {
            return;
        }
        let label = cells[cells.len() - 2];
        let content = cells[cells.len() - 1];
        let priority = if chunk.part == "data_sheet" { 3 } else { 2 };
        let clause = REFERENCE.is_match(label).then_some(label);
        let ev = evidence(chunk, clause, page, &row.join(" | "), self.ctx);
        if clause.is_some() {
            match label_value(content) {
                None => self.sentence_row(content, &ev, priority),
                // "The deadline for bid submission is: 15/01/2024 15:00"
                Some((l, v)) => self.dated(&l, &v, &ev, priority),
            }
            return;
        }
        self.dated(label, content, &ev, priority);
        self.unit_in_label(label, content, &ev, priority);
    }

    /// Portal rows put the unit in the label: "Bid Validity(Days) | 120",
    /// "EMD Amount in ₹ | 50,000".
    fn unit_in_label(&mut self, label: &str, content: &str, ev: &Evidence, priority: u8) {
        let Some(c) = UNIT_LABEL.captures(label.trim()) else {
            return;
        };
        let number = content.trim().trim_end_matches("/-").trim();
        if !BARE_NUMBER.is_match(number) {
            return;
        }
        let unit = c
            .name("unit")
            .or(c.name("unit2"))
            .map_or("", |m| m.as_str());
        // The unit as the label writes it, before or after the number.
        let value = match unit.to_lowercase().as_str() {
            "days" | "months" | "weeks" => format!("{number} {unit}"),
            _ => format!("{unit} {number}"),
        };
        let base = c["base"].trim();
        if !fields_for_label(base).is_empty() {
            content_candidates(base, &value, None, ev, priority, self.ctx, &mut self.out);
        }
    }

    /// "The bid validity period shall be 90 days." read as the pair it says.
    fn sentence_row(&mut self, content: &str, ev: &Evidence, priority: u8) {
        let content = content.trim().trim_end_matches('.');
        let Some(c) = SENTENCE_PAIR.captures(content) else {
            return;
        };
        let value = if c.name("not").is_some() {
            format!("not {}", &c["value"])
        } else {
            c["value"].to_string()
        };
        let label = &c["label"];
        if fields_for_label(label).is_empty() {
            return;
        }
        content_candidates(label, &value, None, ev, priority, self.ctx, &mut self.out);
        self.dated(label, &value, ev, priority);
    }

    /// A numeric date under a date label ("Bid Submission End Date",
    /// "Closing Date").
    fn dated(&mut self, label: &str, content: &str, ev: &Evidence, priority: u8) {
        let specs: Vec<_> = fields_for_label(label)
            .into_iter()
            .filter(|s| is_date_kind(s.kind))
            .collect();
        if specs.is_empty() || !find_times(content, self.ctx.offset).is_empty() {
            return;
        }
        let (read, ambiguous) = find_times_dmy(content, self.ctx.offset, self.order);
        for spec in specs {
            if let Some(t) = read.first() {
                self.push(spec.id, &t.text, t.normalized.clone(), ev, priority);
            } else if let Some(t) = ambiguous.first() {
                self.ambiguous(spec.id, &t.text, ev);
            }
        }
    }

    fn ambiguous(&mut self, field: &str, text: &str, ev: &Evidence) {
        self.warnings.push(Warning {
            field: Some(field.to_string()),
            message: format!(
                "{field} is written \"{text}\", which may be day-month or month-day, and the document does not say which; left out"
            ),
            evidence: vec![ev.clone()],
        });
    }

    /// A paragraph (wrapped lines joined).
    fn prose(&mut self, chunk: &Chunk, text: &str, page: Option<u32>) {
        let clause = clause_number(text);
        let ev = |quote: &str, ctx| evidence(chunk, clause.as_deref(), page, quote, ctx);
        let ctx = self.ctx;
        let body = strip_reference(text);
        if chunk.part == "data_sheet" {
            match label_value(&body) {
                // "ITB 1.1 The name of the Employer is: X": the reference
                // hides the label from the general rules.
                Some((l, v)) if body.len() < text.len() => {
                    let e = ev(text, ctx);
                    content_candidates(&l, &v, None, &e, 3, ctx, &mut self.out);
                }
                Some(_) => {}
                None => self.sentence_row(&body, &ev(text, ctx), 3),
            }
        }
        if let Some((label, value)) = label_value(&strip_numbering(&body)) {
            self.dated(&label, &value, &ev(text, ctx), 2);
        }
        self.invited(chunk, text, page);
        self.terms(chunk, text, page);
    }

    /// "Sealed tenders are invited (by X) (from Y) for Z."
    fn invited(&mut self, chunk: &Chunk, text: &str, page: Option<u32>) {
        let clause = clause_number(text);
        if let Some(c) = INVITED.captures(text) {
            let quote = c.get(0).map_or(text, |m| m.as_str());
            let e = evidence(chunk, clause.as_deref(), page, quote, self.ctx);
            if let Some(by) = c.name("by").map(|m| clean_party(m.as_str()))
                && !by.is_empty()
            {
                self.push("owner", &by, Value::Null, &e, 1);
            }
            // "from eligible bidders" says nothing; "from contractors
            // empanelled with X" does.
            if let Some(from) = c.name("from").map(|m| m.as_str().trim())
                && ELIGIBLE.is_match(from)
                && from.split_whitespace().count() >= 4
            {
                let from = from.trim_end_matches(',').trim();
                self.push("qualification", from, Value::Null, &e, 1);
            }
            let project = c["project"].trim().trim_end_matches(['.', ',']).trim();
            if !self.invited && project.chars().count() >= 4 && !NOT_A_PROJECT.is_match(project) {
                self.invited = true;
                self.push("project", project, Value::Null, &e, 1);
            }
        }
    }

    /// Deadline, validity, completion period, bond, security and copies
    /// stated in prose.
    fn terms(&mut self, chunk: &Chunk, text: &str, page: Option<u32>) {
        let clause = clause_number(text);
        let ev = |quote: &str, ctx| evidence(chunk, clause.as_deref(), page, quote, ctx);
        let ctx = self.ctx;
        if let Some(m) = DEADLINE.find(text) {
            let rest = &text[m.end()..];
            let window: String = rest.chars().take(80).collect();
            let lead: String = window.chars().take_while(|c| !c.is_ascii_digit()).collect();
            if !NOT_DEADLINE.is_match(m.as_str()) && !NOT_DEADLINE.is_match(&lead) {
                let (read, ambiguous) = find_times_dmy(&window, ctx.offset, self.order);
                let e = ev(&text[m.start()..m.end() + window.len()], ctx);
                if let Some(t) = read.first() {
                    self.push("deadline_bid", &t.text, t.normalized.clone(), &e, 1);
                } else if let Some(t) = ambiguous.first() {
                    self.ambiguous("deadline_bid", &t.text, &e);
                }
            }
        }
        if let Some(c) = VALID_FOR.captures(text)
            && let Some(d) = find_durations(&c["d"]).into_iter().next()
        {
            let e = ev(c.get(0).map_or(text, |m| m.as_str()), ctx);
            self.push("validity", &d.text, d.normalized, &e, 1);
        }
        if let Some(c) = COMPLETED_WITHIN.captures(text)
            && let Some(d) = find_durations(&c["d"]).into_iter().next()
        {
            let e = ev(c.get(0).map_or(text, |m| m.as_str()), ctx);
            self.push("duration", &d.text, d.normalized, &e, 1);
        }
        if let Some(c) = EMD_OF.captures(text)
            && let Some(m) = super::normalize::find_money(&c["amt"]).into_iter().next()
        {
            let e = ev(c.get(0).map_or(text, |m| m.as_str()), ctx);
            self.push("bond", &m.text, m.normalized, &e, 1);
        }
        if let Some(c) = SECURITY_SHALL_BE.captures(text)
            && !c
                .name("pre")
                .is_some_and(|p| PART_OF_SECURITY.is_match(p.as_str()))
        {
            let e = ev(c.get(0).map_or(text, |m| m.as_str()), ctx);
            let v = c["v"].trim();
            let pct: f64 = c["pct"].parse().unwrap_or(0.0);
            self.push("performance_bond", v, json!({"percent": pct}), &e, 1);
        }
        if let Some(c) = IN_PLICATE.captures(text) {
            let copies = match c["n"].to_lowercase().as_str() {
                "duplicate" => 1.0,
                "triplicate" => 2.0,
                _ => 3.0,
            };
            let e = ev(c.get(0).map_or(text, |m| m.as_str()), ctx);
            let value = format!("in {}", &c["n"]);
            self.push(
                "copies",
                &value,
                json!({"originals": 1.0, "copies": copies}),
                &e,
                1,
            );
        }
    }
}

/// The text after a leading clause reference ("ITB 18.1 The bid …").
fn strip_reference(text: &str) -> String {
    static LEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^(?:ITB|ITT|ITC|BDS)\s*\d+(?:\.\d+)*[a-z]?\s*[:.-]?\s+").expect("lead")
    });
    LEAD.replace(text, "").into_owned()
}

/// "Sealed tenders (on item rate basis) are invited (by X) (from Y) for Z."
static INVITED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:sealed\s+|online\s+|e-?)?(?:tenders?|bids?|quotations?|offers?)\b[^.]{0,60}?\bare\s+(?:hereby\s+)?invited\s+(?:by\s+(?P<by>[^.]{2,80}?)\s+)?(?:from\s+(?P<from>[^.]{3,240}?)\s*,?\s+)?for\s+(?:the\s+)?(?P<project>[^.]{4,240}?)\s*(?:\.(?:\s|$)|$)")
        .expect("invited regex")
});

/// Bidders named by a standing that qualifies them.
static ELIGIBLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(empanell?ed|registered|enlisted|eligible|qualified|approved|prequalified|licensed|having)\b")
        .expect("eligible regex")
});

/// What follows "invited for" without being the work: "for and on behalf
/// of X", "for the following items:".
static NOT_A_PROJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:and\s+)?on\s+behalf\b|^following\b|:").expect("not project regex")
});

/// The inviting party, unless it is an officer acting for another
/// ("the Executive Engineer, on behalf of the Governor") or a pronoun.
fn clean_party(by: &str) -> String {
    let by = by.trim().trim_end_matches(',').trim();
    let lower = by.to_lowercase();
    if ["the undersigned", "us", "me", "him", "undersigned"].contains(&lower.as_str())
        || lower.starts_with("the undersigned")
        || lower.contains("on behalf of")
    {
        return String::new();
    }
    by.to_string()
}

/// Where a deadline for tenders is stated, its date following.
static DEADLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\blast\s+date\s+(?:and\s+time\s+)?(?:of|for)\s+(?:the\s+)?(?:receipt|submission|submitting)(?:\s+of\s+(?:the\s+)?(?:tenders?|bids?|offers?))?|\b(?:tenders?|bids?|offers?)\s+submission\s+(?:end\s+date|last\s+date|closing\s+date|deadline|by|before|on|upto|up\s+to|till)\b|\bdue\s+date\s+(?:of|for)\s+submission|\bclosing\s+date\s+(?:and\s+time\s+)?(?:of|for)\s+(?:the\s+)?(?:submission|receipt)")
        .expect("deadline regex")
});

/// Words that make a "submission" date some other date.
static NOT_DEADLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)clarification|quer(y|ies)|pre-?bid|start\s+date|sale|purchase|download")
        .expect("not deadline")
});

/// "Tenders shall remain valid (and open for acceptance) for a period of 90 days".
static VALID_FOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:tenders?|bids?|offers?|quotations?)\s+(?:shall|will|must|should)\s+(?:remain|be)\s+valid\b[^.]{0,60}?\bfor\s+(?:a\s+(?:minimum\s+)?period\s+of\s+|at\s+least\s+)?(?P<d>\d+\s*(?:\(\s*\w+\s*\)\s*)?(?:calendar\s+)?(?:days?|months?))\b")
        .expect("valid regex")
});

/// "The work should be completed (…) within a period of 45 days".
static COMPLETED_WITHIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:the\s+)?(?:entire\s+|whole\s+)?(?:work|works|project)\s+(?:should|shall|must|is\s+to|has\s+to|will\s+have\s+to)\s+be\s+completed\b[^.]{0,80}?\bwithin\s+(?:a\s+(?:total\s+)?period\s+of\s+)?(?P<d>\d+\s*(?:\(\s*\w+\s*\)\s*)?(?:calendar\s+)?(?:days?|weeks?|months?))\b")
        .expect("completed regex")
});

/// "Earnest money deposit of Rs.10,000.00", "EMD: Rs 5,000".
static EMD_OF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:earnest\s+money(?:\s+deposit)?|E\.?M\.?D\.?|bid\s+security|tender\s+security)(?:\s*\(\s*E\.?M\.?D\.?\s*\))?\s*(?:of|amounting\s+to|for\s+an?\s+amount\s+of|is|shall\s+be|:|-)\s*:?\s*(?P<amt>(?:Rs\b\.?|INR\b\.?|₹)\s*\d[\d,]*(?:\.\d+)?)")
        .expect("emd regex")
});

/// "Total security deposit shall be 5% of contract value"; an initial
/// security deposit is only its first part.
static SECURITY_SHALL_BE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\b(?P<pre>[a-z]+)\s+)?\b(?:performance\s+(?:security|guarantee|bond)|security\s+deposit)\s+(?:shall|will)\s+be\s+(?:@\s*)?(?P<v>(?P<pct>\d+(?:\.\d+)?)\s*%(?:\s+of\s+(?:the\s+)?(?:total\s+)?(?:contract|tender(?:ed)?|accepted\s+tender|awarded\s+contract)\s+(?:value|amount|price|sum|cost))?)")
        .expect("security regex")
});

/// Words that make a security deposit only a part of the whole.
static PART_OF_SECURITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(initial|additional|interim|further)$").expect("part regex")
});

/// "… Priced Tender Volume in duplicate": one original and copies.
static IN_PLICATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:tenders?|bids?|offers?|volume|documents?|envelope)\b[^.]{0,80}?\bin\s+(?P<n>duplicate|triplicate|quadruplicate)\b")
        .expect("plicate regex")
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::candidates::{Chosen, choose};
    use crate::extract::normalize::default_offset;

    fn run(md: &str) -> (Chosen, Vec<Warning>) {
        let doc =
            crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap());
        let ctx = Context {
            offset: default_offset(),
            document: 0,
        };
        let (candidates, english) = super::super::candidates::collect_with_warnings(&doc, ctx);
        let (chosen, mut w) = choose(candidates);
        w.extend(english);
        (chosen, w)
    }

    fn value(c: &Chosen, id: &str) -> Option<String> {
        c.get(&None)
            .and_then(|f| f.get(id))
            .map(|v| v.value.clone())
    }

    #[test]
    fn data_sheet_rows_written_as_sentences() {
        let (c, _) = run(
            "# Section II. Bid Data Sheet\n\n| ITB Reference | Particulars |\n| --- | --- |\n| ITB 18.1 | The bid validity period shall be 90 days. |\n| ITB 19.1 | The amount of the bid security shall be US$ 12,000. |\n| ITB 4.1 | Bids from joint ventures are not permitted. |\n| ITB 13.1 | Alternative bids will not be permitted. |\n",
        );
        assert_eq!(value(&c, "validity").as_deref(), Some("90 days"));
        assert_eq!(value(&c, "bond").as_deref(), Some("US$ 12,000"));
        assert_eq!(c[&None]["consortium"].normalized, false);
        assert_eq!(c[&None]["alternatives"].normalized, false);
    }

    #[test]
    fn portal_rows_with_numeric_dates() {
        let (c, w) = run(
            "# Tender Details\n\n| Key | Value |\n| --- | --- |\n| Bid Submission End Date | 15-01-2024 15:00:00 |\n| Clarification End Date | 05-01-2024 11:00:00 |\n",
        );
        assert_eq!(
            c[&None]["deadline_bid"].normalized,
            "2024-01-15T15:00:00+08:00"
        );
        // 05-01-2024: 5 January or May 1, and nothing says which.
        assert!(value(&c, "deadline_query").is_none());
        assert!(
            w.iter()
                .any(|w| w.field.as_deref() == Some("deadline_query"))
        );
    }

    #[test]
    fn a_stated_format_reads_ambiguous_dates_day_first() {
        let (c, _) = run(
            "# Tender Details\n\nAll dates are in DD-MM-YYYY format.\n\n| Key | Value |\n| --- | --- |\n| Bid Submission End Date | 05-02-2024 15:00:00 |\n",
        );
        assert_eq!(
            c[&None]["deadline_bid"].normalized,
            "2024-02-05T15:00:00+08:00"
        );
    }

    #[test]
    fn notice_inviting_tender_prose() {
        let (c, _) = run(
            "# NOTICE INVITING TENDER\n\nSealed tenders on item rate basis are invited from contractors\n\nregistered with the Municipal Corporation in Class A, for\n\ncivil works of the Eastside Library,\n\nRiverton.\n\nLast date of submission of tenders: 18/03/2025 up to 3:00 P.M.\n\nEarnest money deposit of Rs.25,000.00 (Rs. Twenty five thousand) by demand draft.\n\nThe price bid shall be submitted in duplicate in a sealed envelope.\n\n# INSTRUCTIONS TO TENDERERS\n\nSealed tenders are invited by Riverton Municipal Corporation for the civil works at the Eastside Library.\n\nThe work should be completed in all respects within a period of 60 DAYS from the date of handing over the site.\n\nTenders shall remain valid and open for acceptance for a period of 120 days from the date of opening.\n\nTotal security deposit shall be 5% of contract value.\n\nThe initial security deposit shall be 2% of contract value.\n",
        );
        assert_eq!(
            value(&c, "project").as_deref(),
            Some("civil works of the Eastside Library, Riverton")
        );
        assert_eq!(
            value(&c, "owner").as_deref(),
            Some("Riverton Municipal Corporation")
        );
        assert!(
            value(&c, "qualification")
                .unwrap()
                .contains("registered with")
        );
        assert_eq!(
            value(&c, "deadline_bid").as_deref(),
            Some("18/03/2025 up to 3:00 P.M.")
        );
        assert_eq!(c[&None]["bond"].normalized["amount"], 25_000.0);
        assert_eq!(value(&c, "copies").as_deref(), Some("in duplicate"));
        assert_eq!(value(&c, "duration").as_deref(), Some("60 DAYS"));
        assert_eq!(value(&c, "validity").as_deref(), Some("120 days"));
        assert_eq!(
            value(&c, "performance_bond").as_deref(),
            Some("5% of contract value")
        );
    }

    #[test]
    fn conditions_of_contract_are_not_read_even_when_not_nested() {
        let (c, _) = run(
            "# INSTRUCTIONS TO TENDERERS\n\nThe tender documents are: General Conditions of Contract, Drawings.\n\nThe work should be completed within a period of 45 days from the date of handing over the site.\n\n# GENERAL CONDITIONS OF CONTRACT\n\n# 27.0 TIME FOR COMPLETION\n\nThe entire work shall be completed within a period of 06 WEEKS from the date of commencement.\n\n# APPENDIX - A\n\n| 01 | Defects liability period | 12 months |\n",
        );
        assert_eq!(value(&c, "duration").as_deref(), Some("45 days"));
        assert_eq!(value(&c, "warranty").as_deref(), Some("12 months"));
    }

    #[test]
    fn the_buyer_named_under_a_scope_heading() {
        let (c, _) = run(
            "# SCOPE OF WORK\n\nSealed tenders are invited by Harbour Port Trust for the repair of berth 4.\n",
        );
        assert_eq!(value(&c, "owner").as_deref(), Some("Harbour Port Trust"));
    }

    #[test]
    fn data_sheet_deadline_with_a_numeric_date() {
        let (c, _) = run(
            "# Section II. Bid Data Sheet\n\n| ITB Reference | Particulars |\n| --- | --- |\n| ITB 22.1 | The deadline for bid submission is: Date: 17/04/2025 Time: 11:00 hours |\n",
        );
        assert_eq!(
            c[&None]["deadline_bid"].normalized,
            "2025-04-17T11:00:00+08:00"
        );
    }

    #[test]
    fn indian_tenders_are_in_indian_time() {
        let ist = indian_offset("Bank of India, EMD Rs.5,000").unwrap();
        assert_eq!(ist.local_minus_utc(), 19_800);
        assert!(indian_offset("Bank of India, EMD Rs.5,000, times in GMT+4").is_none());
        assert!(indian_offset("Lahore, Pakistan; Rs. 5,000; Indian ink").is_none());
        assert!(indian_offset("S$30,000").is_none());
    }

    #[test]
    fn invitations_that_name_no_work_or_an_officer() {
        let (c, _) = run(
            "# NOTICE INVITING TENDER\n\nOnline bids are invited by the Executive Engineer, on behalf of the Governor of the State, from eligible bidders for the following items: chairs and tables.\n",
        );
        assert!(value(&c, "owner").is_none());
        assert!(value(&c, "project").is_none());
        assert!(value(&c, "qualification").is_none());
    }

    #[test]
    fn portal_rows_with_the_unit_in_the_label() {
        let (c, _) = run(
            "# Tender Details\n\n| Key | Value |\n| --- | --- |\n| Bid Validity(Days) | 120 |\n| Period Of Work(Days) | 180 |\n| EMD Amount in ₹ | 50,000 |\n| Bid Submission End Date | 21-Dec-2023 05:00 PM |\n| Bid Opening Date | 22-12-2023 11:00:00 |\n",
        );
        assert_eq!(c[&None]["validity"].normalized["days"], 120.0);
        assert_eq!(c[&None]["duration"].normalized["days"], 180.0);
        assert_eq!(c[&None]["bond"].normalized["amount"], 50_000.0);
        assert_eq!(c[&None]["bond"].normalized["currency"], "INR");
        assert_eq!(
            value(&c, "deadline_bid").as_deref(),
            Some("21-Dec-2023 05:00 PM")
        );
        assert_eq!(
            c[&None]["opening_time"].normalized,
            "2023-12-22T11:00:00+08:00"
        );
    }

    #[test]
    fn data_sheet_paragraphs_led_by_references() {
        let (c, _) = run(
            "# Section II. Bid Data Sheet\n\nITB 1.1 The name of the Employer is: Ministry of Roads\n\nITB 18.1 The bid validity period shall be 90 days.\n\nITB 22.1 The deadline for bid submission is: Date: 17/04/2025 Time: 11:00 hours\n\nITB 25.1 The bid opening shall take place at: Room 12, Main Street\n",
        );
        assert_eq!(value(&c, "owner").as_deref(), Some("Ministry of Roads"));
        assert_eq!(c[&None]["validity"].normalized["days"], 90.0);
        assert_eq!(
            c[&None]["deadline_bid"].normalized,
            "2025-04-17T11:00:00+08:00"
        );
        assert_eq!(
            value(&c, "opening_place").as_deref(),
            Some("Room 12, Main Street")
        );
    }

    #[test]
    fn chinese_documents_are_left_to_the_chinese_rules() {
        let (c, _) = run(
            "# 招标公告\n\n本项目投标截止时间为2025年3月1日。Bids shall remain valid for 90 days.\n",
        );
        assert!(value(&c, "validity").is_none());
    }
}
