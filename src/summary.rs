//! The tender summary: what extract produces and the users act on.
//!
//! Every value cites its evidence. A field that was not found is absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::package::Role;

/// Version of the summary layout.
pub const SUMMARY_SCHEMA: u32 = 2;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Clause path, such as "第二章 投标人须知前附表 3.3.1".
    pub section: String,
    /// Page, for paged formats.
    pub page: Option<u32>,
    /// The exact source text.
    pub quote: String,
    /// Which of the task's documents: 0 is the main document, 1.. its
    /// amendments in order.
    #[serde(default)]
    pub document: usize,
    /// Set when the quote was read by OCR from a scanned page, so that a
    /// reader knows to check it against the scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<OcrQuote>,
}

/// How OCR read a quote.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OcrQuote {
    /// The lowest word confidence of the value (or, where the value is
    /// not found as read, of the quote), 0 to 100.
    pub confidence: f32,
}

/// One extracted field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    /// The value as written in the document.
    pub value: String,
    /// The value normalised (number with currency, RFC 3339 time, ...), or null.
    pub normalized: serde_json::Value,
    /// Where it came from.
    pub evidence: Evidence,
    /// Earlier values an amendment replaced, oldest first, each with its own
    /// evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<FieldValue>,
    /// The kind of source the value came from, so that a reader can judge
    /// it: `front_table` (a row of the bid data sheet), `notice` (a
    /// "label：value" line of the tender notice), `labelled_line` (such a
    /// line elsewhere), `table` (a table row outside the data sheet),
    /// `sentence` (a sentence pattern), `cover` (the title on the cover) or
    /// `amendment`. Empty in summaries
    /// written before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// One clause that gets a bid rejected, refused or declared invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    /// The clause text.
    pub text: String,
    /// Why it counts: `explicit` (says 否决/无效/rejected...), `listed` (an
    /// item under a "any of the following ... shall be rejected" lead-in),
    /// `starred` (a ★ substantive clause) or `mandatory` (a 须/不得 term of
    /// the bid data sheet).
    pub kind: String,
    /// Where it is.
    pub evidence: Evidence,
}

/// One scoring item of the evaluation method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringItem {
    /// The item as the document names it.
    pub name: String,
    /// Points or weight as written ("5分", "20", "60%").
    pub points: String,
    /// Points or weight as a number; for a range, its top.
    pub points_value: Option<f64>,
    /// The low and high end when the document gives a range ("0-25",
    /// "-30-0分"), else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_range: Option<[f64; 2]>,
    /// The scoring factor the item belongs to, where the table names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Where it is.
    pub evidence: Evidence,
}

/// One requirement a bidder must (or may) meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    /// `qualification`, `technical`, `commercial` or `service`.
    pub category: String,
    /// `mandatory` (★, 必须/须/不得, shall/must), `scored` or `optional`.
    pub level: String,
    /// The requirement text.
    pub text: String,
    /// Where it is.
    pub evidence: Evidence,
}

/// A document the bid must contain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormItem {
    /// Its name as the document writes it.
    pub name: String,
    /// Where the list names it.
    pub evidence: Evidence,
}

/// A contact person or office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Whose contact: 招标人, 招标代理机构, Employer...
    pub role: String,
    /// Organisation name, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Person, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Telephone, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where it is.
    pub evidence: Evidence,
}

/// A place where the documents contradict themselves or the rules were not
/// sure, so a value was left out or chosen over another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// The field concerned, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for people.
    pub message: String,
    /// The conflicting sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// One file of the task and what the summary took it as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryDocument {
    /// The file's name, as submitted or as its path inside the package.
    pub name: String,
    /// Main document, amendment, attachment (stored, not extracted) or
    /// package.
    pub role: Role,
    /// The number evidence gives it ([`Evidence::document`]): 0 for the main
    /// document, 1.. for the amendments; absent for files not extracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Why it was taken as its role.
    pub reason: String,
}

/// The summary of a task's documents.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Layout version ([`SUMMARY_SCHEMA`]).
    pub schema: u32,
    /// The task's files and which was taken as what, main document first;
    /// empty where the summary was made from files directly (no task).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<SummaryDocument>,
    /// Fields by id (`project`, `tender_no`, `owner`, `price_cap`, ...).
    pub fields: BTreeMap<String, FieldValue>,
    /// Per-lot fields (标段, 包, Lot) by lot name, then by field id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lots: BTreeMap<String, BTreeMap<String, FieldValue>>,
    /// Clauses that get a bid rejected.
    #[serde(default)]
    pub rejections: Vec<Rejection>,
    /// Scoring items.
    #[serde(default)]
    pub scoring: Vec<ScoringItem>,
    /// Subtotals per scoring factor, where the document states them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub score_totals: Vec<ScoringItem>,
    /// Qualification, technical, commercial and service requirements.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Documents the bid must contain.
    #[serde(default)]
    pub forms: Vec<FormItem>,
    /// Contacts.
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Contradictions and doubts.
    #[serde(default)]
    pub warnings: Vec<Warning>,
}
