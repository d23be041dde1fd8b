//! Extract: fill the tender summary from classified chunks, every value
//! with its evidence.
//!
//! The `rules` backend reads only chunks the filter kept, takes a field's
//! value only where a label of that field's vocabulary stands beside a
//! value of the field's type, and leaves a field out when its best sources
//! disagree. The `openai` backend asks a chat model and keeps only values
//! whose quote is found in the source text.

pub mod amend;
pub mod candidates;
pub mod clauses;
pub mod english;
pub mod fields;
pub mod forms;
pub mod model;
pub mod normalize;
pub mod report;
pub mod scoring;
pub mod text;

use std::path::PathBuf;

use anyhow::Context as _;

pub use report::render_report;

use crate::filter::ClassifiedDocument;
use crate::llm::{LlmError, LlmSettings};
use crate::summary::{SUMMARY_SCHEMA, Summary, Warning};
use candidates::{Chosen, Context, choose, collect_with_warnings};

/// Summarises a main document (`docs[0]`) and its amendments (`docs[1..]`,
/// in order) with the backend `model` names: `rules` or `openai`.
pub async fn run(
    model: &str,
    docs: &[ClassifiedDocument],
    llm: &LlmSettings,
) -> Result<Summary, ExtractError> {
    if docs.is_empty() {
        return Err(ExtractError::NoDocument);
    }
    match model {
        "" | "rules" => Ok(summarize(docs)),
        "openai" => Ok(model::summarize(docs, llm).await?),
        other => Err(ExtractError::UnknownModel(other.to_string())),
    }
}

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// No document was handed over: permanent.
    #[error("nothing to summarise")]
    NoDocument,
    /// The task names a backend that does not exist: permanent.
    #[error("extract_model {0:?} is neither \"rules\" nor \"openai\"")]
    UnknownModel(String),
    /// The model backend failed; [`LlmError`] says whether a retry helps.
    #[error(transparent)]
    Model(#[from] LlmError),
}

impl ExtractError {
    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ExtractError::Model(e) if e.is_transient())
    }

    /// A stable machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ExtractError::NoDocument => "no_document",
            ExtractError::UnknownModel(_) => "unknown_model",
            ExtractError::Model(LlmError::Transient(_)) => "transient",
            ExtractError::Model(LlmError::Permanent { kind, .. }) => kind,
        }
    }
}

/// The rule backend.
pub fn summarize(docs: &[ClassifiedDocument]) -> Summary {
    let offset = normalize::document_offset(&docs[0].plain_text());
    let mut summary = Summary {
        schema: SUMMARY_SCHEMA,
        ..Summary::default()
    };
    let ctx = Context {
        offset,
        document: 0,
    };
    let (candidates, unsure) = collect_with_warnings(&docs[0], ctx);
    let (mut chosen, mut warnings) = choose(candidates);
    warnings.extend(unsure);
    for (i, doc) in docs.iter().enumerate().skip(1) {
        let ctx = Context {
            offset,
            document: i,
        };
        let (changes, more) = choose(amend::candidates(doc, ctx));
        warnings.extend(more);
        amend::apply(&mut chosen, changes, &mut warnings);
    }
    // "开标时间：同投标截止时间" follows an amended deadline.
    candidates::resolve_same_as_deadline(&mut chosen);
    candidates::submission_place_as_opening(&mut chosen, &mut warnings);
    if !chosen
        .get(&None)
        .is_some_and(|f| f.contains_key("qualification"))
        && let Some(ev) = candidates::qualification_lead(&docs[0], ctx)
    {
        warnings.push(Warning {
            field: Some("qualification".to_string()),
            message: format!(
                "qualification is a list of conditions (\"{}\"), not one value: left out (the list is at the cited place)",
                ev.quote
            ),
            evidence: vec![ev],
        });
    }
    place_fields(&mut summary, chosen);
    summary.warnings = warnings;
    for (i, doc) in docs.iter().enumerate() {
        summary.rejections.extend(clauses::rejections(doc, i));
        summary.scoring.extend(scoring::scoring(doc, i));
        summary.score_totals.extend(scoring::score_totals(doc, i));
        summary
            .requirements
            .extend(clauses::data_sheet_requirements(doc, i));
        summary.requirements.extend(clauses::requirements(doc, i));
        summary.forms.extend(forms::forms(doc, i));
        summary.contacts.extend(clauses::contacts(doc, i));
    }
    summary
}

/// Moves chosen values into the summary: the whole tender's into `fields`,
/// per-lot ones into `lots`.
fn place_fields(summary: &mut Summary, chosen: Chosen) {
    for (lot, fields) in chosen {
        match lot {
            None => summary.fields.extend(fields),
            Some(name) => {
                summary.lots.entry(name).or_default().extend(fields);
            }
        }
    }
}

/// Parses, filters and extracts files in-process with the rule backends:
/// `paths[0]` is the main document, the rest its amendments in order.
pub async fn summarize_files(paths: &[PathBuf]) -> anyhow::Result<Summary> {
    summarize_files_blocking(paths)
}

/// [`summarize_files`] without a runtime: the rule backends do no I/O
/// beyond reading the files.
pub fn summarize_files_blocking(paths: &[PathBuf]) -> anyhow::Result<Summary> {
    anyhow::ensure!(!paths.is_empty(), "no document given");
    let mut docs = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let media_type = crate::parse::sniff::sniff(&bytes, name)
            .with_context(|| format!("sniffing {}", path.display()))?;
        let parsed = crate::parse::parse(&bytes, media_type, &crate::parse::ParseLimits::default())
            .with_context(|| format!("parsing {}", path.display()))?;
        docs.push(crate::filter::classify(&parsed));
    }
    let mut summary = summarize(&docs);
    crate::ocr_evidence::mark(
        &mut summary,
        &docs.iter().map(|d| d.ocr.as_ref()).collect::<Vec<_>>(),
    );
    Ok(summary)
}
