//! Splitting tender text into the pieces the rules read: segments of a
//! clause, sentences, "label：value" pairs, and clause numbers.

use std::sync::LazyLock;

use regex::Regex;

static CLAUSE_NO: LazyLock<Regex> = LazyLock::new(|| {
    // "2.1.3本采购项目…": a number of three levels or more is a clause
    // number even when glued to the text (Word numbering flattened); a
    // one-dot number may be an amount ("13.75万元").
    Regex::new(r"^\s*(?:(\d+\.\d+\.\d+(?:\.\d+){0,2}(?:\(\d+\))?)(?:[.、．]|\s)?|(\d+(?:\.\d+)?(?:\(\d+\))?)(?:[.、．]|\s))\s*")
        .expect("clause regex")
});
static ENUMERATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:[（(]\s*[0-9一二三四五六七八九十]+\s*[）)]|[0-9]+\s*[）)]|[一二三四五六七八九十]+\s*[、.．]|[0-9]+\s*[、．]|\(?[a-z]\)|[•·●▪\-–])\s*")
        .expect("enumerator regex")
});

/// Splits at any of `seps` that is not inside brackets or quotes. Pieces
/// are trimmed; empty ones dropped.
pub fn split_outside_brackets(text: &str, seps: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth: i32 = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '（' | '(' | '【' | '[' | '“' | '《' | '〔' => depth += 1,
            '）' | ')' | '】' | ']' | '”' | '》' | '〕' => depth = (depth - 1).max(0),
            _ => {}
        }
        if depth == 0 && seps.contains(&c) {
            push_piece(&mut out, &cur);
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    push_piece(&mut out, &cur);
    out
}

fn push_piece(out: &mut Vec<String>, piece: &str) {
    let t = piece.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
}

/// Sentences of a paragraph: Chinese text splits at 。！？, English text at
/// a full stop followed by a space and a capital (not inside "4.00 pm").
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in split_outside_brackets(text, &['。', '！', '？']) {
        let chars: Vec<char> = piece.chars().collect();
        let mut cur = String::new();
        for (i, c) in chars.iter().enumerate() {
            cur.push(*c);
            let boundary = matches!(c, '.' | '!' | '?')
                && chars.get(i + 1).is_some_and(|n| n.is_whitespace())
                && chars
                    .get(i + 2)
                    .is_some_and(|n| n.is_uppercase() || *n == '(')
                && !ends_with_abbreviation(&cur);
            if boundary {
                push_piece(&mut out, &cur);
                cur.clear();
            }
        }
        push_piece(&mut out, &cur);
    }
    out
}

fn ends_with_abbreviation(s: &str) -> bool {
    let last = s
        .split_whitespace()
        .last()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        last.as_str(),
        "no." | "mr." | "ms." | "dr." | "e.g." | "i.e." | "co." | "ltd." | "pte." | "st."
    ) || last
        .trim_end_matches('.')
        .chars()
        .all(|c| c.is_ascii_digit())
}

/// The clause number a text starts with ("3.1.2", "10.3"), if any.
pub fn clause_number(text: &str) -> Option<String> {
    CLAUSE_NO
        .captures(text)
        .and_then(|c| c.get(1).or_else(|| c.get(2)))
        .map(|m| m.as_str().to_string())
}

/// The text without a leading clause number or list marker.
pub fn strip_numbering(text: &str) -> String {
    let mut t = text.trim().to_string();
    for _ in 0..2 {
        let before = t.clone();
        if let Some(m) = CLAUSE_NO.find(&t) {
            // A bare year or amount is no clause number: "2026年..."
            let rest = &t[m.end()..];
            if !rest.starts_with(['年', '月', '日', '万', '元', '%']) {
                t = rest.to_string();
            }
        }
        if let Some(m) = ENUMERATOR.find(&t) {
            t = t[m.end()..].to_string();
        }
        if t == before {
            break;
        }
    }
    t.trim().to_string()
}

/// Whether a block starts with a list marker ("1）", "（2）", "(a)", "一、").
pub fn is_enumerated(text: &str) -> bool {
    ENUMERATOR.is_match(text)
}

/// Splits "label：value" (or "label: value") at the first colon outside
/// brackets. The label keeps only its last comma-separated part, so
/// "项目已具备条件，招标编号：X" gives ("招标编号", "X").
/// Whether `label` ends in an hour written after a day ("8月6日 14",
/// "下午2"), so that a full-width colon after it is a time's ("14：30"),
/// not a pair's ("包1：2万元").
fn after_a_day(label: &str) -> bool {
    let head = label
        .trim_end_matches(|ch: char| ch.is_ascii_digit())
        .trim_end();
    head.ends_with(['日', '号', '午', '上', '晚'])
}

pub fn label_value(segment: &str) -> Option<(String, String)> {
    let mut depth: i32 = 0;
    for (i, c) in segment.char_indices() {
        match c {
            '（' | '(' | '“' | '《' => depth += 1,
            '）' | ')' | '”' | '》' => depth = (depth - 1).max(0),
            '：' | ':' if depth == 0 => {
                let label = &segment[..i];
                // "10:00" and "10：00" are times, not pairs.
                if label.ends_with(|ch: char| ch.is_ascii_digit())
                    && segment[i + c.len_utf8()..].starts_with(|ch: char| ch.is_ascii_digit())
                    && (c == ':' || after_a_day(label))
                {
                    continue;
                }
                let label = label.rsplit(['，', ',']).next().unwrap_or(label).trim();
                let value = segment[i + c.len_utf8()..].trim();
                if label.is_empty() || value.is_empty() {
                    return None;
                }
                return Some((strip_numbering(label), value.to_string()));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_respect_brackets() {
        let parts = split_outside_brackets("截止时间（投标截止时间，下同）为X，地点为Y", &['，']);
        assert_eq!(parts, vec!["截止时间（投标截止时间，下同）为X", "地点为Y"]);
    }

    #[test]
    fn colons_of_times_are_no_pairs() {
        assert_eq!(label_value("开标时间为2025年8月6日 14：30"), None);
        assert_eq!(label_value("截止时间为8月6日13:30前"), None);
        assert_eq!(
            label_value("包1：2万元"),
            Some(("包1".to_string(), "2万元".to_string()))
        );
    }

    #[test]
    fn english_sentences_keep_times_whole() {
        let s = sentences(
            "The closing date is 14 August 2029 at 4.00 pm. Tenders received after shall be rejected.",
        );
        assert_eq!(s.len(), 2);
        assert!(s[0].ends_with("4.00 pm."));
    }

    #[test]
    fn numbering_and_pairs() {
        assert_eq!(
            clause_number("3.1.2 投标人有以下情形").as_deref(),
            Some("3.1.2")
        );
        assert_eq!(strip_numbering("一、比选申请人资格"), "比选申请人资格");
        assert_eq!(strip_numbering("（3）投标保证金"), "投标保证金");
        assert_eq!(strip_numbering("2026年1月"), "2026年1月");
        assert_eq!(
            strip_numbering("2.1.3本项目不接受联合体"),
            "本项目不接受联合体"
        );
        assert_eq!(clause_number("2.1.3本项目").as_deref(), Some("2.1.3"));
        assert_eq!(
            label_value("项目已具备招标条件，招标编号：LJZB-1"),
            Some(("招标编号".into(), "LJZB-1".into()))
        );
        assert_eq!(label_value("截止时间为2027年1月12日10:00"), None);
        assert_eq!(
            label_value("Tender Reference: TC-1"),
            Some(("Tender Reference".into(), "TC-1".into()))
        );
    }
}
