//! Filter: split a parsed document into sections, classify each, and decide
//! which ones extraction may read.
//!
//! The important decision is negative: contract conditions (通用合同条款,
//! Conditions of Contract), bills of quantities and drawings are full of
//! numbers standing next to field words ("28天内", "14 days", 暂列金额), so
//! they are marked `keep: false` and never feed field values.

pub mod rules;
pub mod structure;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::document::{Block, ParsedDocument};
use crate::llm::ChatClient;
use crate::llm::{LlmError, LlmSettings};

/// Version of the classified-document layout.
pub const CLASSIFIED_SCHEMA: u32 = 2;

/// The categories a chunk can have.
pub const CATEGORIES: &[&str] = &[
    "basic_info",
    "qualification",
    "technical",
    "commercial",
    "scoring",
    "schedule",
    "bond",
    "disqualification",
    "forms",
    "contact",
    "contract",
    "other",
];

/// A section of the document with its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Heading path of the section, outermost first, joined by " > ".
    pub section: String,
    /// Which part of a tender document the section belongs to: `notice`,
    /// `instructions`, `data_sheet`, `evaluation`, `technical`, `forms`,
    /// `contract`, `boq`, `drawings`, `amendment` or `other`.
    #[serde(default)]
    pub part: String,
    /// Category name (one of [`CATEGORIES`]).
    pub category: String,
    /// Confidence in the category, 0 to 1.
    pub score: f32,
    /// Why the category was chosen.
    #[serde(default)]
    pub reason: String,
    /// Whether extraction reads this chunk.
    pub keep: bool,
    /// The section's blocks.
    pub blocks: Vec<Block>,
}

/// The classified chunks of one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifiedDocument {
    /// Layout version ([`CLASSIFIED_SCHEMA`]).
    pub schema: u32,
    /// Source format of the parsed document.
    #[serde(default)]
    pub format: String,
    /// The chunks, in reading order.
    pub chunks: Vec<Chunk>,
    /// The parsed document's OCR side table, carried on so that extract
    /// can mark OCR'd evidence without reading the parsed document again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<crate::document::OcrReport>,
}

impl ClassifiedDocument {
    /// All text of the document, kept or not (quotes are checked against it).
    pub fn plain_text(&self) -> String {
        self.chunks
            .iter()
            .flat_map(|c| c.blocks.iter().map(Block::text))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Classifies `doc` with the backend `model` names: `rules` (deterministic,
/// no network) or `openai` (a chat-completions server from `llm`).
pub async fn run(
    model: &str,
    doc: &ParsedDocument,
    llm: &LlmSettings,
) -> Result<ClassifiedDocument, FilterError> {
    match model {
        "" | "rules" => Ok(classify(doc)),
        "openai" => Ok(classify_with_model(doc, llm).await?),
        other => Err(FilterError::UnknownModel(other.to_string())),
    }
}

/// Why a document could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The task names a backend that does not exist: permanent.
    #[error("filter_model {0:?} is neither \"rules\" nor \"openai\"")]
    UnknownModel(String),
    /// The model backend failed; [`LlmError`] says whether a retry helps.
    #[error(transparent)]
    Model(#[from] LlmError),
}

impl FilterError {
    /// Whether retrying could help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FilterError::Model(e) if e.is_transient())
    }

    /// A stable machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            FilterError::UnknownModel(_) => "unknown_model",
            FilterError::Model(LlmError::Transient(_)) => "transient",
            FilterError::Model(LlmError::Permanent { kind, .. }) => kind,
        }
    }
}

/// The rule backend: recover the outline, split into sections, classify.
pub fn classify(doc: &ParsedDocument) -> ClassifiedDocument {
    let blocks = structure::restructure(&doc.blocks);
    let chunks = structure::sections(&blocks)
        .into_iter()
        .map(|s| {
            let verdict = rules::classify_section(&s.path, &s.blocks);
            Chunk {
                section: s.path.join(" > "),
                part: verdict.part.to_string(),
                category: verdict.category.to_string(),
                score: verdict.score,
                reason: verdict.reason,
                keep: verdict.keep,
                blocks: s.blocks,
            }
        })
        .collect();
    ClassifiedDocument {
        schema: CLASSIFIED_SCHEMA,
        format: doc.meta.format.clone(),
        chunks,
        ocr: doc.ocr.clone(),
    }
}

const FILTER_PROMPT: &str = "You classify sections of a tender document (招标文件, ITT). \
For each section give one category of: basic_info, qualification, technical, commercial, \
scoring, schedule, bond, disqualification, forms, contact, contract, other; keep=false for \
contract conditions, bills of quantities and drawings, whose numbers are not tender terms. \
Answer JSON only: {\"chunks\":[{\"index\":0,\"category\":\"...\",\"keep\":true,\"reason\":\"...\"}]}";

/// The model backend: the same sections, classified by a chat model. The
/// rule verdict stays for any section the model does not mention; a contract
/// section stays dropped whatever the model says, since letting its numbers
/// through is the one mistake that produces wrong values.
async fn classify_with_model(
    doc: &ParsedDocument,
    llm: &LlmSettings,
) -> Result<ClassifiedDocument, LlmError> {
    let client = ChatClient::new(llm)?;
    let mut classified = classify(doc);
    let listing: Vec<serde_json::Value> = classified
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let preview: String = c
                .blocks
                .iter()
                .map(Block::text)
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(300)
                .collect();
            json!({"index": i, "section": c.section, "preview": preview})
        })
        .collect();
    let answer = client
        .complete_json(FILTER_PROMPT, &json!({"sections": listing}).to_string())
        .await?;
    let items = answer["chunks"]
        .as_array()
        .ok_or_else(|| LlmError::permanent("llm_garbage", "the answer has no \"chunks\" list"))?;
    for item in items {
        let index = item["index"].as_u64().map(|i| i as usize);
        let category = item["category"].as_str();
        let (Some(index), Some(category)) = (index, category) else {
            return Err(LlmError::permanent(
                "llm_garbage",
                "a chunk verdict lacks an index or a category",
            ));
        };
        if !CATEGORIES.contains(&category) {
            return Err(LlmError::permanent(
                "llm_garbage",
                format!("unknown category {category:?}"),
            ));
        }
        let Some(chunk) = classified.chunks.get_mut(index) else {
            continue;
        };
        if chunk.part == "contract" {
            continue;
        }
        chunk.category = category.to_string();
        chunk.keep = item["keep"].as_bool().unwrap_or(true) && category != "contract";
        chunk.score = 0.7;
        chunk.reason = item["reason"]
            .as_str()
            .unwrap_or("model verdict")
            .to_string();
    }
    Ok(classified)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::llm::testing::{Script, settings, start};

    fn doc(md: &str) -> ParsedDocument {
        crate::parse::text::parse_markdown(md.as_bytes()).unwrap()
    }

    const SAMPLE: &str = "# 第一章 招标公告\n招标编号：A-1。\n# 第二章 投标人须知\n## 投标人须知前附表\n| 条款号 | 条款名称 | 编列内容 |\n|---|---|---|\n| 1.3.2 | 计划工期 | 300日历天 |\n# 第三章 评标办法\n| 评分项 | 分值 |\n|---|---|\n| 报价 | 60分 |\n# 第四章 合同条款及格式\n## 第一节 通用合同条款\n1.1 监理人应在28天内审批。\n# 第五章 工程量清单\n暂列金额为600万元。\n";

    #[test]
    fn contract_and_boq_are_dropped() {
        let c = classify(&doc(SAMPLE));
        let by_section = |s: &str| c.chunks.iter().find(|ch| ch.section.ends_with(s)).unwrap();
        assert_eq!(by_section("投标人须知前附表").part, "data_sheet");
        assert!(by_section("投标人须知前附表").keep);
        assert_eq!(by_section("第三章 评标办法").category, "scoring");
        let contract = by_section("通用合同条款");
        assert_eq!(contract.category, "contract");
        assert!(!contract.keep);
        assert!(!by_section("第五章 工程量清单").keep);
    }

    #[tokio::test]
    async fn model_backend_cannot_readmit_contract_text() {
        let server = start(Script {
            failures: vec![],
            reply: Arc::new(|_| {
                r#"{"chunks":[{"index":4,"category":"schedule","keep":true,"reason":"dates"},{"index":0,"category":"basic_info","keep":true,"reason":"notice"}]}"#.into()
            }),
        })
        .await;
        let c = run("openai", &doc(SAMPLE), &settings(Some(server.base_url)))
            .await
            .unwrap();
        let contract = c.chunks.iter().find(|ch| ch.part == "contract").unwrap();
        assert!(!contract.keep);
        assert_eq!(c.chunks[0].reason, "notice");
    }

    #[tokio::test]
    async fn model_backend_rejects_unknown_categories() {
        let server = start(Script {
            failures: vec![],
            reply: Arc::new(|_| r#"{"chunks":[{"index":0,"category":"weather"}]}"#.into()),
        })
        .await;
        let e = run("openai", &doc(SAMPLE), &settings(Some(server.base_url)))
            .await
            .unwrap_err();
        assert!(!e.is_transient());
    }

    #[tokio::test]
    async fn unknown_backend_is_permanent() {
        let e = run("magic", &doc(SAMPLE), &settings(None))
            .await
            .unwrap_err();
        assert!(!e.is_transient());
    }
}
