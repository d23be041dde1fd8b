//! The tender summary: what extract produces and the users act on.
//!
//! Every value cites its evidence. A field that was not found is absent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the summary layout.
pub const SUMMARY_SCHEMA: u32 = 1;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Clause path, such as "第二章 投标人须知前附表 3.3.1".
    pub section: String,
    /// Page, for paged formats.
    pub page: Option<u32>,
    /// The exact source text.
    pub quote: String,
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
}

/// The summary of a task's documents.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Layout version ([`SUMMARY_SCHEMA`]).
    pub schema: u32,
    /// Fields by id (`project`, `tender_no`, `owner`, `price_cap`, ...).
    pub fields: BTreeMap<String, FieldValue>,
}
