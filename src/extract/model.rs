//! The `openai` extract backend: a chat model reads the kept chunks and
//! answers JSON. Nothing it says is trusted on its own: a value is kept only
//! when its quote is found in the source text and the value in its quote,
//! and a typed field only when the value reads as its type.

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use super::amend;
use super::candidates::{Candidate, Chosen, Context, choose};
use super::fields::{SPECS, read_value, spec_of};
use super::normalize::{compact, document_offset};
use crate::filter::ClassifiedDocument;
use crate::llm::{ChatClient, estimate_tokens};
use crate::llm::{LlmError, LlmSettings};
use crate::summary::{
    Evidence, FormItem, Rejection, SUMMARY_SCHEMA, ScoringItem, Summary, Warning,
};

const PROMPT: &str = "You extract facts from a tender document (招标文件 or ITT). Use only \
the text given. For every value give `quote`: an exact, verbatim span of the text that \
contains the value. Leave out anything the text does not state. Ignore contract \
conditions. Answer JSON only: {\"fields\": {\"<field id>\": {\"value\": \"...\", \
\"quote\": \"...\", \"section\": \"...\"}}, \"rejections\": [{\"text\": \"...\", \"quote\": \
\"...\"}], \"scoring\": [{\"name\": \"...\", \"points\": \"...\", \"quote\": \"...\"}], \
\"forms\": [{\"name\": \"...\", \"quote\": \"...\"}]}. Field ids: ";

/// Summarises with the model, each document on its own token budget.
pub async fn summarize(
    docs: &[ClassifiedDocument],
    llm: &LlmSettings,
) -> Result<Summary, LlmError> {
    let offset = document_offset(&docs[0].plain_text());
    let mut summary = Summary {
        schema: SUMMARY_SCHEMA,
        ..Summary::default()
    };
    let mut chosen: Option<Chosen> = None;
    for (i, doc) in docs.iter().enumerate() {
        let client = ChatClient::new(llm)?;
        let (text, truncated) = kept_text(doc, llm.token_budget);
        if truncated {
            summary.warnings.push(Warning {
                field: None,
                message: format!("document {i} was cut to fit the model's token budget"),
                evidence: Vec::new(),
            });
        }
        let ids: Vec<&str> = SPECS.iter().map(|s| s.id).collect();
        let answer = client
            .complete_json(&format!("{PROMPT}{}", ids.join(", ")), &text)
            .await?;
        let source = compact(&doc.plain_text());
        let ctx = Context {
            offset,
            document: i,
        };
        let (fields, warnings) = choose(verified_fields(
            &answer,
            &source,
            ctx,
            &mut summary.warnings,
        ));
        summary.warnings.extend(warnings);
        match chosen.as_mut() {
            None => chosen = Some(fields),
            Some(base) => amend::apply(base, fields, &mut summary.warnings),
        }
        verified_lists(&answer, &source, i, &mut summary);
    }
    for (lot, fields) in chosen.unwrap_or_default() {
        match lot {
            None => summary.fields.extend(fields),
            Some(name) => summary.lots.entry(name).or_default().extend(fields),
        }
    }
    Ok(summary)
}

/// The kept chunks' text with section markers, cut to fit the budget.
fn kept_text(doc: &ClassifiedDocument, budget: u64) -> (String, bool) {
    let limit = budget.saturating_sub(2_000) * 7 / 10;
    let mut out = String::new();
    for chunk in doc.chunks.iter().filter(|c| c.keep) {
        let piece = format!(
            "\n## {}\n{}\n",
            chunk.section,
            chunk
                .blocks
                .iter()
                .map(|b| b.text())
                .collect::<Vec<_>>()
                .join("\n")
        );
        if estimate_tokens(&out) + estimate_tokens(&piece) > limit {
            return (out, true);
        }
        out.push_str(&piece);
    }
    (out, false)
}

fn quoted(item: &Value, source: &str) -> Option<String> {
    let quote = item["quote"].as_str()?.trim();
    (!quote.is_empty() && source.contains(&compact(quote))).then(|| quote.to_string())
}

fn dropped(warnings: &mut Vec<Warning>, what: &str) {
    warnings.push(Warning {
        field: None,
        message: format!("model answer dropped: {what}"),
        evidence: Vec::new(),
    });
}

fn verified_fields(
    answer: &Value,
    source: &str,
    ctx: Context,
    warnings: &mut Vec<Warning>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    let Some(fields) = answer["fields"].as_object() else {
        return out;
    };
    for (id, item) in fields {
        let (Some(spec), Some(value)) = (spec_of(id), item["value"].as_str()) else {
            dropped(warnings, &format!("unknown field {id}"));
            continue;
        };
        let Some(quote) = quoted(item, source) else {
            dropped(warnings, &format!("{id}: quote not found in the document"));
            continue;
        };
        if !compact(&quote).contains(&compact(value)) {
            dropped(warnings, &format!("{id}: value not in its quote"));
            continue;
        }
        let Some((value, normalized)) = read_value(spec.kind, value, ctx.offset) else {
            dropped(
                warnings,
                &format!("{id}: \"{value}\" is not a value of its type"),
            );
            continue;
        };
        out.push(Candidate {
            field: spec.id,
            lot: item["lot"].as_str().map(str::to_string),
            value,
            normalized,
            evidence: Evidence {
                section: item["section"].as_str().unwrap_or("").to_string(),
                page: None,
                quote,
                document: ctx.document,
                ocr: None,
            },
            priority: 2,
        });
    }
    out
}

fn verified_lists(answer: &Value, source: &str, document: usize, summary: &mut Summary) {
    let items = |key: &str| answer[key].as_array().cloned().unwrap_or_default();
    let ev = |quote: String| Evidence {
        section: String::new(),
        page: None,
        quote,
        document,
        ocr: None,
    };
    for r in items("rejections") {
        if let Some(quote) = quoted(&r, source) {
            let text = r["text"].as_str().unwrap_or(&quote).to_string();
            summary.rejections.push(Rejection {
                text,
                kind: "model".into(),
                evidence: ev(quote),
            });
        }
    }
    for s in items("scoring") {
        if let (Some(quote), Some(name)) = (quoted(&s, source), s["name"].as_str()) {
            let points = s["points"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| s["points"].to_string());
            let (points_value, points_range) = super::scoring::parse_points(&points)
                .map_or((None, None), |p| (Some(p.value), p.range));
            summary.scoring.push(ScoringItem {
                name: name.to_string(),
                points,
                points_value,
                points_range,
                group: None,
                evidence: ev(quote),
            });
        }
    }
    for f in items("forms") {
        if let (Some(quote), Some(name)) = (quoted(&f, source), f["name"].as_str()) {
            summary.forms.push(FormItem {
                name: name.to_string(),
                evidence: ev(quote),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::llm::testing::{Script, settings, start};

    fn classified(md: &str) -> ClassifiedDocument {
        crate::filter::classify(&crate::parse::text::parse_markdown(md.as_bytes()).unwrap())
    }

    #[tokio::test]
    async fn values_without_a_source_quote_are_dropped() {
        let server = start(Script {
            failures: vec![],
            reply: Arc::new(|_| {
                json!({
                    "fields": {
                        "price_cap": {"value": "500万元", "quote": "最高投标限价：500万元", "section": "前附表"},
                        "bond": {"value": "10万元", "quote": "投标保证金：10万元", "section": "前附表"},
                        "duration": {"value": "28天", "quote": "最高投标限价：500万元", "section": "x"},
                        "weather": {"value": "sunny", "quote": "x"}
                    },
                    "rejections": [{"text": "超过最高投标限价的，其投标将被否决", "quote": "超过最高投标限价的，其投标将被否决"},
                                   {"text": "invented", "quote": "not in the text"}],
                    "scoring": [{"name": "报价", "points": "60分", "quote": "| 报价 | 60分 |"}],
                    "forms": []
                })
                .to_string()
            }),
        })
        .await;
        let doc = classified(
            "# 第一章 招标公告\n最高投标限价：500万元。超过最高投标限价的，其投标将被否决。\n",
        );
        let s = super::super::run("openai", &[doc], &settings(Some(server.base_url)))
            .await
            .unwrap();
        assert_eq!(s.fields["price_cap"].normalized["amount"], 5_000_000.0);
        assert!(!s.fields.contains_key("bond"), "quote not in the text");
        assert!(!s.fields.contains_key("duration"), "value not in its quote");
        assert_eq!(s.rejections.len(), 1);
        assert!(s.scoring.is_empty(), "quote not in the text");
    }
}
