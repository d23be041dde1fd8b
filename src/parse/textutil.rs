//! Text rules shared by the parsers: clause numbers, CJK-aware joining.

use std::sync::LazyLock;

use regex::Regex;

/// Clause-number shapes that open a heading in tender documents, Chinese and
/// English: 第二章 / 第3节, 一、, （一）, 3.1 / 1., Section 2 / Part II.
static CLAUSE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)^(?:
            (?P<cn>第[一二三四五六七八九十百零〇两\d]+[章节条部分篇卷册])
          | (?P<cnlist>[一二三四五六七八九十]+[、.．])
          | (?P<paren>[（(][一二三四五六七八九十\d]+[)）])
          | (?P<dotted>\d{1,3}(?:[.．]\d{1,3})*[.．]?)(?:\s|[^\d.．%％年月日万元\-/:：,，]|$)
          | (?P<en>(?i:section|part|chapter|article|clause|appendix|annex|schedule|itb|gcc|scc|bds)\s+[0-9IVXLA-Z]+(?:\.\d+)*)
        )",
    )
    .expect("clause-number pattern is valid")
});

/// The clause number a heading text starts with, if any ("第二章", "3.1",
/// "一、", "Section 4").
pub fn clause_number(text: &str) -> Option<String> {
    let caps = CLAUSE_NUMBER.captures(text.trim_start())?;
    ["cn", "cnlist", "paren", "dotted", "en"]
        .iter()
        .find_map(|name| caps.name(name))
        .map(|m| m.as_str().to_string())
}

/// A short line that opens a chapter (第二章 ..., SECTION 2 ...) or section
/// (第一节 ...), not a sentence that starts with one ("第三章规定的文件。")
/// nor a table-of-contents entry ("SECTION 2 ....... 5").
pub fn chapter_heading_level(line: &str) -> Option<u8> {
    let ends_sentence = line
        .chars()
        .last()
        .is_some_and(|c| matches!(c, '。' | '；' | '，' | '：' | '.' | ';' | ','));
    if line.chars().count() > 60 || ends_sentence || line.contains("...") || line.contains("……")
    {
        return None;
    }
    let number = clause_number(line)?;
    let lower = number.to_lowercase();
    if ["section", "part", "chapter"]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        // English chapter lines are set in capitals: "SECTION 3 EVALUATION".
        let letters = line.chars().filter(|c| c.is_alphabetic());
        return letters.clone().all(char::is_uppercase).then_some(1);
    }
    if !number.starts_with('第') || line.chars().count() > 40 {
        return None;
    }
    match number.chars().last() {
        Some('章' | '部' | '篇' | '卷' | '册' | '分') => Some(1),
        Some('节') => Some(2),
        _ => None,
    }
}

/// True for Han ideographs, kana, hangul and CJK punctuation or full-width
/// forms: the scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x30FF    // CJK punctuation, kana
        | 0x3100..=0x31FF    // bopomofo, kanbun
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xAC00..=0xD7AF    // hangul
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F    // compatibility forms
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x3FFFF) // extensions B and later
}

/// Joins two pieces of one text that a layout split apart (a wrapped line, a
/// cell's second line): no space where either side is CJK, none after a
/// hyphen or slash, one space otherwise.
pub fn join_wrapped(left: &str, right: &str) -> String {
    let left = left.trim_end();
    let right = right.trim_start();
    let mut out = String::with_capacity(left.len() + right.len() + 1);
    out.push_str(left);
    if needs_space(left, right) {
        out.push(' ');
    }
    out.push_str(right);
    out
}

/// Whether a line break after `left` and before `right` stands for a space:
/// not next to CJK text, except after a multi-level clause number that ends
/// the line ("…文件。3.3.2" + "出现…" is "3.3.2 出现"), where the genre always
/// writes one.
fn needs_space(left: &str, right: &str) -> bool {
    match (left.chars().last(), right.chars().next()) {
        (Some(b), Some(a)) if is_cjk(b) || is_cjk(a) => ends_with_clause_number(left) && !is_cjk(b),
        (Some(b), Some(_)) => b != '-' && b != '/',
        _ => false,
    }
}

/// Whether `text` ends with a number of two dots or more (3.3.2) that
/// stands alone: at the start or after a space or sentence punctuation.
fn ends_with_clause_number(text: &str) -> bool {
    let tail: String = text
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let before = text[..text.len() - tail.len()].chars().last();
    tail.matches('.').count() >= 2
        && !tail.starts_with('.')
        && tail.chars().next().is_some_and(|c| c.is_ascii_digit())
        && before.is_none_or(|c| c.is_whitespace() || matches!(c, '。' | '；' | '：' | '，'))
}

/// Collapses runs of ASCII whitespace into one space and trims the ends,
/// as HTML does. Other spaces are text: the full-width space (U+3000) that
/// Chinese documents use as a separator stays as written.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_numbers_of_the_genre() {
        assert_eq!(
            clause_number("第二章 投标人须知").as_deref(),
            Some("第二章")
        );
        assert_eq!(clause_number("3.1 招标范围").as_deref(), Some("3.1"));
        assert_eq!(clause_number("1. 招标条件").as_deref(), Some("1."));
        assert_eq!(clause_number("一、项目概况").as_deref(), Some("一、"));
        assert_eq!(clause_number("（三）评分标准").as_deref(), Some("（三）"));
        assert_eq!(
            clause_number("Section 4 Conditions").as_deref(),
            Some("Section 4")
        );
        assert_eq!(
            clause_number("ITB 12.1 Bid prices").as_deref(),
            Some("ITB 12.1")
        );
        assert_eq!(clause_number("2026年计划"), None);
        assert_eq!(chapter_heading_level("第三章 评标办法"), Some(1));
        assert_eq!(chapter_heading_level("第一节 一般规定"), Some(2));
        assert_eq!(chapter_heading_level("第三章规定的文件。"), None);
        assert_eq!(
            chapter_heading_level("SECTION 3 EVALUATION CRITERIA"),
            Some(1)
        );
        assert_eq!(
            chapter_heading_level("SECTION 3 EVALUATION CRITERIA ........ 14"),
            None
        );
        assert_eq!(
            chapter_heading_level("Section 3 applies to all tenders"),
            None
        );
        assert_eq!(clause_number("投标人须知前附表"), None);
        assert_eq!(clause_number("100% funded"), None);
    }

    #[test]
    fn only_ascii_whitespace_collapses() {
        assert_eq!(collapse_whitespace("  a \n\t b "), "a b");
        assert_eq!(collapse_whitespace("许工　电话"), "许工　电话");
    }

    #[test]
    fn wrapped_lines_join_by_script() {
        assert_eq!(
            join_wrapped("计划开工日期：2026年12月1", "日"),
            "计划开工日期：2026年12月1日"
        );
        assert_eq!(join_wrapped("the Contract", "Sum"), "the Contract Sum");
        assert_eq!(join_wrapped("B", "证"), "B证");
        assert_eq!(join_wrapped("TC-SNE-", "2029"), "TC-SNE-2029");
        assert_eq!(
            join_wrapped("投标文件。3.3.2", "出现特殊情况"),
            "投标文件。3.3.2 出现特殊情况"
        );
        assert_eq!(join_wrapped("金额为1.5", "万元"), "金额为1.5万元");
    }
}
