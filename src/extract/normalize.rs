//! Typed values found in tender text, and their normal forms: money
//! (Arabic or Chinese numerals, 万/亿 units, thousands separators, currency
//! signs), points in time (RFC 3339 with the document's offset), durations
//! (days or months) and percentages.

use std::sync::LazyLock;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use regex::Regex;
use serde_json::{Value, json};

/// A typed value found in a text: where it is and its normal form.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The matched text, as written.
    pub text: String,
    /// Byte offset of the match in the searched text.
    pub start: usize,
    /// The normal form, as the summary stores it.
    pub normalized: Value,
}

/// Offset of Asia/Shanghai, the default zone of tender documents.
pub fn default_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Folds full-width ASCII and ideographic spaces to their half-width forms.
pub fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '￥' => '¥',
            _ => c,
        })
        .collect()
}

/// Text for comparisons: full-width folded, white space removed, lower case.
/// PDF text layers put spaces between Chinese and Latin text, so removing all
/// white space is what makes variants of one document compare equal.
pub fn compact(s: &str) -> String {
    fold_width(s)
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Collapses runs of white space to one space and trims; a space between
/// two Chinese characters (a line-wrap artefact) is dropped.
pub fn tidy(s: &str) -> String {
    let chars: Vec<char> = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let mut out = String::with_capacity(s.len());
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' && i > 0 && i + 1 < chars.len() && is_cjk(chars[i - 1]) && is_cjk(chars[i + 1])
        {
            continue;
        }
        out.push(*c);
    }
    out
}

/// Whether `c` is a CJK ideograph or CJK punctuation.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xFF00..=0xFFEF)
}

// ---------------------------------------------------------------- numerals

fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' | '壹' | '幺' => 1,
        '二' | '贰' | '两' | '貳' => 2,
        '三' | '叁' | '參' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' | '陸' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

fn cn_small_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' | '拾' => 10,
        '百' | '佰' => 100,
        '千' | '仟' => 1000,
        _ => return None,
    })
}

/// Parses a Chinese numeral such as 壹佰万, 一千二百三十四 or 贰拾. Returns
/// `None` for anything that is not wholly a numeral.
pub fn parse_cn_numeral(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0; // settled 亿 part
    let mut wan: u64 = 0; // settled 万 part below 亿
    let mut section: u64 = 0; // below 万
    let mut digit: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = cn_digit(c) {
            digit = Some(d);
        } else if let Some(u) = cn_small_unit(c) {
            section += digit.take().unwrap_or(1) * u;
        } else if c == '万' || c == '萬' {
            section += digit.take().unwrap_or(0);
            if section == 0 {
                return None;
            }
            wan = section * 10_000;
            section = 0;
        } else if c == '亿' || c == '億' {
            section += digit.take().unwrap_or(0);
            total += (wan + section) * 100_000_000;
            if total == 0 {
                return None;
            }
            wan = 0;
            section = 0;
        } else {
            return None;
        }
    }
    section += digit.unwrap_or(0);
    Some((total + wan + section) as f64)
}

fn parse_arabic(s: &str) -> Option<f64> {
    let cleaned: String = fold_width(s)
        .chars()
        .filter(|c| !matches!(c, ',' | ' '))
        .collect();
    cleaned.parse::<f64>().ok()
}

/// Parses an English number word up to twenty, or digits.
fn parse_en_count(s: &str) -> Option<f64> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    let lower = s.to_ascii_lowercase();
    WORDS
        .iter()
        .position(|w| *w == lower)
        .map(|n| n as f64)
        .or_else(|| parse_arabic(s))
}

/// A count written in digits, Chinese or English words.
pub fn parse_count(s: &str) -> Option<f64> {
    parse_arabic(s)
        .or_else(|| parse_cn_numeral(s))
        .or_else(|| parse_en_count(s))
}

// ---------------------------------------------------------------- money

static MONEY_ARABIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(人民币|RMB|CNY|S\$|SGD|US\$|USD|HK\$|HKD|¥|￥|\$|£|€)?\s*(\d{1,3}(?:[,，]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*(亿元|万元|元|亿|万|million\b|m\b)?",
    )
    .expect("money regex")
});

static MONEY_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(人民币)?(?:[（(]?大写[）)]?[:：]?)?([零〇一二三四五六七八九十壹贰叁肆伍陆柒捌玖拾佰仟万亿两百千]+)(元|圆)(?:([零〇一二三四五六七八九壹贰叁肆伍陆柒捌玖])角)?(?:([零〇一二三四五六七八九壹贰叁肆伍陆柒捌玖])分)?(整|正)?")
        .expect("cn money regex")
});

/// What a written amount carries after its unit and is part of it: the
/// thing it is counted per ("12.55元/条", "923680元/年") or the currency
/// named after it ("5000元人民币").
static MONEY_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[/／](人次|平方米|立方米|小时|公里|千瓦时|人|年|月|日|天|周|次|条|件|台|套|米|吨|份|项|户|个|张|页|kWh|m2|m²)|\s*人民币)").expect("money suffix")
});

/// The start of the base a value is stated on, written just before it:
/// "中标金额的" before "10%", "自投标截止日起" before "120日". `before`
/// is the text up to the value; the base runs back from the value to the
/// nearest 为, colon or punctuation and must match `base`.
fn base_start(before: &str, base: &Regex) -> Option<usize> {
    let from = before
        .char_indices()
        .rev()
        .take(28)
        .find(|(_, c)| "为：:，,。；;（(）)按是 \t".contains(*c))
        .map_or_else(
            || {
                let n = before.chars().count();
                (n <= 27).then_some(0)
            },
            |(i, c)| Some(i + c.len_utf8()),
        )?;
    let tail = &before[from..];
    (!tail.is_empty() && base.is_match(tail)).then_some(from)
}

static PERCENT_BASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\p{Han}{0,16}(额|价|款|合同|费)\p{Han}{0,4}的\s*$").expect("percent base")
});

static DURATION_BASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(自|从)?[^\d]{0,24}?(之日|日|时)起(至|计)?\s*$").expect("duration base")
});

fn currency_code(sign: &str) -> &'static str {
    match sign.to_ascii_uppercase().as_str() {
        "S$" | "SGD" => "SGD",
        "US$" | "USD" | "$" => "USD",
        "HK$" | "HKD" => "HKD",
        "£" => "GBP",
        "€" => "EUR",
        _ => "CNY",
    }
}

/// Every money amount in `text`, in order. An amount needs a currency sign
/// or a unit (元, 万元, million): a bare number is not money.
pub fn find_money(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for c in MONEY_ARABIC.captures_iter(text) {
        let sign = c.get(1).map(|m| m.as_str());
        let unit = c.get(3).map(|m| m.as_str().to_lowercase());
        if sign.is_none() && unit.is_none() {
            continue;
        }
        let whole = c.get(0).expect("match");
        // "2026年" or "第3.4.1项" are no amounts: refuse digits glued to a
        // preceding digit or dot.
        if text[..whole.start()].ends_with(['.', '第']) {
            continue;
        }
        let Some(mut amount) = parse_arabic(&c[2]) else {
            continue;
        };
        amount *= match unit.as_deref() {
            Some("万元") | Some("万") => 10_000.0,
            Some("亿元") | Some("亿") => 100_000_000.0,
            Some("million") | Some("m") => 1_000_000.0,
            _ => 1.0,
        };
        let currency = sign.map(currency_code).unwrap_or("CNY");
        if sign.is_none() && matches!(unit.as_deref(), Some("million") | Some("m")) {
            continue;
        }
        let mut text_end = whole.start() + whole.as_str().trim_end().len();
        let mut normalized = json!({"amount": round2(amount), "currency": currency});
        if unit.is_some()
            && let Some(s) = MONEY_SUFFIX.captures(&text[text_end..])
        {
            if let Some(per) = s.get(1) {
                normalized["per"] = json!(per.as_str());
            }
            text_end += s.get(0).expect("match").end();
        }
        out.push(Found {
            text: text[whole.start()..text_end].trim().to_string(),
            start: whole.start(),
            normalized,
        });
    }
    for c in MONEY_CN.captures_iter(text) {
        let whole = c.get(0).expect("match");
        let Some(yuan) = parse_cn_numeral(&c[2]) else {
            continue;
        };
        let jiao = c
            .get(4)
            .and_then(|m| m.as_str().chars().next())
            .and_then(cn_digit);
        let fen = c
            .get(5)
            .and_then(|m| m.as_str().chars().next())
            .and_then(cn_digit);
        let amount = yuan + jiao.unwrap_or(0) as f64 / 10.0 + fen.unwrap_or(0) as f64 / 100.0;
        out.push(Found {
            text: whole.as_str().to_string(),
            start: whole.start(),
            normalized: json!({"amount": round2(amount), "currency": "CNY"}),
        });
    }
    out.extend(find_money_inr(text));
    out.sort_by_key(|f| f.start);
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---------------------------------------------------------------- percent

static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+(?:\.\d+)?)\s*(?:%|％|per\s*cent\b|percent\b)(?:\s+of\s+(?:the\s+)?(?:[A-Z][A-Za-z]*\s?){1,3})?")
        .expect("percent regex")
});

/// Every percentage in `text` ("10%", "5% of the Contract Sum").
pub fn find_percent(text: &str) -> Vec<Found> {
    PERCENT
        .captures_iter(text)
        .filter_map(|c| {
            let whole = c.get(0)?;
            let n: f64 = c[1].parse().ok()?;
            let start = base_start(&text[..whole.start()], &PERCENT_BASE).unwrap_or(whole.start());
            Some(Found {
                text: text[start..whole.end()].trim().to_string(),
                start,
                normalized: json!({"percent": n}),
            })
        })
        .collect()
}

// ---------------------------------------------------------------- durations

static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(\d+|[零一二三四五六七八九十百两]+|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|eighteen|twenty)\b)\s*(个\s*日历月|个\s*月|个\s*工作日|个\s*日历[日天]|日历天|日历日|工作日|天|日|周|星期|年|calendar\s+days?\b|working\s+days?\b|business\s+days?\b|days?\b|months?\b|weeks?\b|years?\b)")
        .expect("duration regex")
});

/// Every duration in `text` ("540日历天", "24个月", "120 days", "nine
/// months"), normalised to days, working days or months.
pub fn find_durations(text: &str) -> Vec<Found> {
    let mut out = Vec::new();
    for c in DURATION.captures_iter(text) {
        let whole = c.get(0).expect("match");
        let before = &text[..whole.start()];
        // "11月3日" is a date and "第2期" an ordinal, not durations.
        if before.ends_with(['月', '年', '第', '.', '-', '/']) || before.ends_with(char::is_numeric)
        {
            continue;
        }
        let unit = c[2].to_lowercase();
        let unit: String = unit.split_whitespace().collect::<Vec<_>>().join(" ");
        if unit == "年" && text[whole.end()..].starts_with(|ch: char| ch.is_ascii_digit()) {
            continue;
        }
        let Some(n) = parse_count(&c[1]) else {
            continue;
        };
        let normalized = match unit.as_str() {
            u if u.contains("工作日") || u.starts_with("working") || u.starts_with("business") =>
            {
                json!({"working_days": n})
            }
            u if u.contains("日历月") || u.contains('月') || u.starts_with("month") => {
                json!({"months": n})
            }
            u if u == "周" || u == "星期" || u.starts_with("week") => json!({"days": n * 7.0}),
            u if u == "年" || u.starts_with("year") => json!({"months": n * 12.0}),
            _ => json!({"days": n}),
        };
        let start = base_start(before, &DURATION_BASE).unwrap_or(whole.start());
        out.push(Found {
            text: text[start..whole.end()].to_string(),
            start,
            normalized,
        });
    }
    out
}

// ---------------------------------------------------------------- times

static DATE_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号](?:\s*[（(][^）)]{1,4}[）)])?(?:\s*(上午|下午|晚上|中午)?\s*(\d{1,2})\s*(?:[:：]\s*(\d{2})(?:\s*整)?|时\s*(?:(\d{1,2})\s*分|整|半)?|点\s*(?:(\d{1,2})\s*分|整|半)?))?")
        .expect("cn date regex")
});

static DATE_ISO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]+(\d{1,2})[:：](\d{2})(?::(\d{2}))?)?")
        .expect("iso date regex")
});

static DATE_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:(\d{1,2})[.:](\d{2})\s*(a\.?m\.?|p\.?m\.?|hrs|hours)?\s*(?:\([^)]{0,20}\)\s*)?(?:on|,)\s+)?(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+)?(\d{1,2})(?:st|nd|rd|th)?\s+(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\s*,?\s+(\d{4})(?:\s*(?:at|,)?\s*(\d{1,2})(?:[.:](\d{2}))?\s*(a\.?m\.?|p\.?m\.?|hrs|hours|noon)\b)?")
        .expect("en date regex")
});

fn month_number(name: &str) -> Option<u32> {
    let m = name.to_ascii_lowercase();
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    NAMES
        .iter()
        .position(|n| m.starts_with(n))
        .map(|i| i as u32 + 1)
}

fn to_rfc3339(date: NaiveDate, time: Option<NaiveTime>, offset: FixedOffset) -> Option<Value> {
    match time {
        None => Some(json!(date.format("%Y-%m-%d").to_string())),
        Some(t) => {
            let local = NaiveDateTime::new(date, t);
            let dt = offset.from_local_datetime(&local).single()?;
            Some(json!(dt.to_rfc3339()))
        }
    }
}

fn twelve_hour(hour: u32, marker: Option<&str>) -> u32 {
    let m = marker.unwrap_or("").to_ascii_lowercase().replace('.', "");
    match m.as_str() {
        "pm" | "下午" | "晚上" if hour < 12 => hour + 12,
        "am" if hour == 12 => 0,
        "中午" if hour < 6 => hour + 12,
        _ => hour,
    }
}

fn push_time(
    out: &mut Vec<Found>,
    whole: regex::Match<'_>,
    ymd: (i32, u32, u32),
    hm: Option<(u32, u32)>,
    offset: FixedOffset,
) {
    let Some(date) = NaiveDate::from_ymd_opt(ymd.0, ymd.1, ymd.2) else {
        return;
    };
    let time = match hm {
        Some((h, m)) => match NaiveTime::from_hms_opt(h, m, 0) {
            Some(t) => Some(t),
            None => return,
        },
        None => None,
    };
    if let Some(normalized) = to_rfc3339(date, time, offset) {
        out.push(Found {
            text: whole.as_str().trim().to_string(),
            start: whole.start(),
            normalized,
        });
    }
}

/// Every date or point in time in `text`, normalised to RFC 3339 at
/// `offset` (a bare date stays a date).
pub fn find_times(text: &str, offset: FixedOffset) -> Vec<Found> {
    let mut out = Vec::new();
    for c in DATE_CN.captures_iter(text) {
        let whole = c.get(0).expect("match");
        let ymd = (num(&c, 1) as i32, num(&c, 2), num(&c, 3));
        let hm = c.get(5).map(|h| {
            let hour = h.as_str().parse().unwrap_or(0);
            let minute = [6, 7, 8]
                .iter()
                .find_map(|i| c.get(*i).map(|m| m.as_str().parse().unwrap_or(0)))
                .unwrap_or(if whole.as_str().ends_with('半') {
                    30
                } else {
                    0
                });
            (twelve_hour(hour, c.get(4).map(|m| m.as_str())), minute)
        });
        push_time(&mut out, whole, ymd, hm, offset);
    }
    for c in DATE_ISO.captures_iter(text) {
        let whole = c.get(0).expect("match");
        if out
            .iter()
            .any(|f| f.start <= whole.start() && whole.start() < f.start + f.text.len())
        {
            continue;
        }
        let ymd = (num(&c, 1) as i32, num(&c, 2), num(&c, 3));
        let hm = c.get(4).map(|_| (num(&c, 4), num(&c, 5)));
        push_time(&mut out, whole, ymd, hm, offset);
    }
    for c in DATE_EN.captures_iter(text) {
        let whole = c.get(0).expect("match");
        let Some(month) = month_number(&c[5]) else {
            continue;
        };
        let ymd = (num(&c, 6) as i32, month, num(&c, 4));
        let hm = if c.get(7).is_some() {
            let marker = c.get(9).map(|m| m.as_str());
            if marker == Some("noon") {
                Some((12, 0))
            } else {
                Some((
                    twelve_hour(num(&c, 7), marker),
                    c.get(8).map_or(0, |_| num(&c, 8)),
                ))
            }
        } else if c.get(1).is_some() {
            Some((
                twelve_hour(num(&c, 1), c.get(3).map(|m| m.as_str())),
                num(&c, 2),
            ))
        } else {
            None
        };
        push_time(&mut out, whole, ymd, hm, offset);
    }
    out.sort_by_key(|f| f.start);
    out
}

fn num(c: &regex::Captures<'_>, i: usize) -> u32 {
    c.get(i).and_then(|m| m.as_str().parse().ok()).unwrap_or(0)
}

/// The offset a document states for its times ("GMT+8", "UTC+07:00",
/// "Singapore time"); India's for an Indian tender that states none
/// ([`super::english::indian_offset`]); otherwise Asia/Shanghai's.
pub fn document_offset(text: &str) -> FixedOffset {
    if let Some(c) = STATED_OFFSET.captures(text) {
        let hours: i32 = c[2].parse().unwrap_or(8);
        let minutes: i32 = c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
        let sign = if &c[1] == "-" { -1 } else { 1 };
        if let Some(offset) = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)) {
            return offset;
        }
    }
    super::english::indian_offset(text).unwrap_or_else(default_offset)
}

/// An offset the document states: "GMT+3", "UTC + 05:30".
pub(crate) static STATED_OFFSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?").expect("offset regex")
});

// ---------------------------------------------------------------- rupees

static MONEY_INR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:\bRs\b\.?|\bINR\b\.?|₹)\s*(\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:\s*/-)?(?:\s*(lakhs?|lacs?|crores?)\b)?")
        .expect("inr regex")
});

/// Rupee amounts of Indian tenders: "Rs.10,000.00", "Rs. 5,00,000/-"
/// (lakh grouping), "INR 2 lakhs".
pub fn find_money_inr(text: &str) -> Vec<Found> {
    MONEY_INR
        .captures_iter(text)
        .filter_map(|c| {
            let whole = c.get(0)?;
            let mut amount: f64 = c[1].replace(',', "").parse().ok()?;
            amount *= match c.get(2).map(|m| m.as_str().to_lowercase()) {
                Some(u) if u.starts_with("la") => 100_000.0,
                Some(u) if u.starts_with("cr") => 10_000_000.0,
                _ => 1.0,
            };
            Some(Found {
                text: whole.as_str().trim().to_string(),
                start: whole.start(),
                normalized: json!({"amount": round2(amount), "currency": "INR"}),
            })
        })
        .collect()
}

// ---------------------------------------------------------------- day-month-year

/// Which number of "05/06/2024" is the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayOrder {
    /// The document does not say.
    Unstated,
    /// dd-mm-yyyy, as the document states.
    DayFirst,
    /// mm-dd-yyyy, as the document states.
    MonthFirst,
}

static STATED_ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(dd|mm)\s*[-/.]\s*(dd|mm)\s*[-/.]\s*(?:yyyy|yy)\b").expect("order regex")
});

/// The date order a document states ("dd-mm-yyyy", "(DD/MM/YYYY)"); unstated
/// when it states none or both.
pub fn stated_day_order(text: &str) -> DayOrder {
    let mut day_first = false;
    let mut month_first = false;
    for c in STATED_ORDER.captures_iter(text) {
        match (c[1].to_lowercase().as_str(), c[2].to_lowercase().as_str()) {
            ("dd", "mm") => day_first = true,
            ("mm", "dd") => month_first = true,
            _ => {}
        }
    }
    match (day_first, month_first) {
        (true, false) => DayOrder::DayFirst,
        (false, true) => DayOrder::MonthFirst,
        _ => DayOrder::Unstated,
    }
}

static DATE_DMY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\d{1,2})([./-])(\d{1,2}|[a-z]{3,9})([./-])(\d{4})\b(?:[\s,]*(?:at|before|by|upto|up\s+to|till|on|-|time\s*:)?[\s,]*\b(\d{1,2})\s*[:.]\s*(\d{2})(?:\s*:\s*(\d{2}))?(?:\s*(a\.?\s?m(?:\.|\b)|p\.?\s?m(?:\.|\b)|hrs\b\.?|hours\b|noon\b))?)?")
        .expect("dmy regex")
});

/// Dates written with numbers only, day and month in either order:
/// "22/12/2023 BEFORE 3:00 P.M.", "15-01-2024 15:00:00". A date is read
/// when `order` says which number is the day, when one number is over 12,
/// or when both are equal; otherwise its text is returned as ambiguous.
/// Returns (read, ambiguous).
pub fn find_times_dmy(
    text: &str,
    offset: FixedOffset,
    order: DayOrder,
) -> (Vec<Found>, Vec<Found>) {
    let mut read = Vec::new();
    let mut ambiguous = Vec::new();
    for c in DATE_DMY.captures_iter(text) {
        let whole = c.get(0).expect("match");
        if c[2] != c[4] {
            continue;
        }
        let (a, b, year) = (num(&c, 1), num(&c, 3), num(&c, 5) as i32);
        // "15-Jan-2024": the month is named.
        let named =
            (!c[3].starts_with(|ch: char| ch.is_ascii_digit())).then(|| month_number(&c[3]));
        let (a, b, order) = match named {
            Some(Some(m)) => (a, m, DayOrder::DayFirst),
            Some(None) => continue,
            None => (a, b, order),
        };
        let day_first = match order {
            DayOrder::DayFirst => true,
            DayOrder::MonthFirst => false,
            DayOrder::Unstated if a > 12 || a == b => true,
            DayOrder::Unstated if b > 12 => false,
            DayOrder::Unstated => {
                ambiguous.push(Found {
                    text: whole.as_str().trim().to_string(),
                    start: whole.start(),
                    normalized: Value::Null,
                });
                continue;
            }
        };
        let (day, month) = if day_first { (a, b) } else { (b, a) };
        let hm = c.get(6).map(|h| {
            let marker = c.get(9).map(|m| m.as_str().replace(' ', ""));
            let hour = h.as_str().parse().unwrap_or(0);
            (twelve_hour(hour, marker.as_deref()), num(&c, 7))
        });
        push_time(&mut read, whole, (year, month, day), hm, offset);
    }
    (read, ambiguous)
}

// ---------------------------------------------------------------- copies

static COPIES_CN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"正本\s*([0-9一二三四五六七八九十壹贰叁肆伍]+)\s*份\s*[，,、；;]?\s*副本\s*([0-9一二三四五六七八九十壹贰叁肆伍]+)\s*份")
        .expect("copies regex")
});

static COPIES_EN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(\w+)\s+(?:\(\d+\)\s+)?originals?\s+and\s+(\w+)\s+(?:\(\d+\)\s+)?(?:copies|copy|duplicates?)\b")
        .expect("copies regex")
});

/// The number of originals and copies a bid must be submitted in.
/// "一式伍份（壹份正本、肆份副本）": the total, then originals and copies.
static COPIES_SET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"一式\s*([0-9一二三四五六七八九十壹贰叁肆伍陆柒捌玖拾]+)\s*份\s*[（(]\s*([0-9一二三四五六七八九十壹贰叁肆伍]+)\s*份\s*正本\s*[、，,；;]\s*([0-9一二三四五六七八九十壹贰叁肆伍]+)\s*份\s*副本\s*[）)]")
        .expect("copies set regex")
});

/// An electronic copy stated with the paper ones: "，电子版1份".
static COPIES_ELECTRONIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*[，,、]\s*电子(?:版|文档|档|文件)\s*([0-9一二三四五六七八九十壹贰叁肆伍]+)\s*份",
    )
    .expect("electronic copies regex")
});

pub fn find_copies(text: &str) -> Option<Found> {
    if let Some(c) = COPIES_SET.captures(text) {
        let whole = c.get(0)?;
        return Some(Found {
            text: whole.as_str().to_string(),
            start: whole.start(),
            normalized: json!({"originals": parse_count(&c[2])?, "copies": parse_count(&c[3])?}),
        });
    }
    if let Some(c) = COPIES_CN.captures(text) {
        let whole = c.get(0)?;
        let end = COPIES_ELECTRONIC
            .find(&text[whole.end()..])
            .map_or(whole.end(), |m| whole.end() + m.end());
        return Some(Found {
            text: text[whole.start()..end].to_string(),
            start: whole.start(),
            normalized: json!({"originals": parse_count(&c[1])?, "copies": parse_count(&c[2])?}),
        });
    }
    let c = COPIES_EN.captures(text)?;
    let whole = c.get(0)?;
    let originals = parse_count(&c[1])?;
    let copies = parse_count(&c[2])?;
    Some(Found {
        text: whole.as_str().to_string(),
        start: whole.start(),
        normalized: json!({"originals": originals, "copies": copies}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str) -> f64 {
        find_money(text)[0].normalized["amount"].as_f64().unwrap()
    }

    #[test]
    fn chinese_numeral_money() {
        assert_eq!(amount("壹佰万元整"), 1_000_000.0);
        assert_eq!(amount("人民币贰拾万元整"), 200_000.0);
        assert_eq!(
            amount("人民币壹仟贰佰叁拾肆万伍仟陆佰柒拾捌元玖角"),
            12_345_678.9
        );
        assert_eq!(amount("壹亿贰仟万元"), 120_000_000.0);
    }

    #[test]
    fn arabic_money_with_units_and_separators() {
        assert_eq!(amount("18650万元"), 186_500_000.0);
        assert_eq!(amount("¥1,234,567.50元"), 1_234_567.5);
        assert_eq!(amount("￥1，234，567元"), 1_234_567.0);
        assert_eq!(amount("1.42亿元"), 142_000_000.0);
        let sgd = &find_money("S$35,000 by banker's guarantee")[0];
        assert_eq!(sgd.text, "S$35,000");
        assert_eq!(sgd.normalized["currency"], "SGD");
        assert!(find_money("2026年 共3层").is_empty());
    }

    #[test]
    fn times_in_three_styles() {
        let z = default_offset();
        let t = |s: &str| find_times(s, z)[0].normalized.as_str().unwrap().to_string();
        assert_eq!(t("2026年11月3日9时30分"), "2026-11-03T09:30:00+08:00");
        assert_eq!(t("2026-10-27 09:00"), "2026-10-27T09:00:00+08:00");
        assert_eq!(t("2027年1月12日10:00"), "2027-01-12T10:00:00+08:00");
        assert_eq!(t("2026年10月18日17时"), "2026-10-18T17:00:00+08:00");
        assert_eq!(t("2026年11月3日下午2点30分"), "2026-11-03T14:30:00+08:00");
        assert_eq!(t("14 August 2029 at 4.00 pm"), "2029-08-14T16:00:00+08:00");
        assert_eq!(t("4.00 pm on 14 August 2029"), "2029-08-14T16:00:00+08:00");
        assert_eq!(t("14 August 2029"), "2029-08-14");
    }

    #[test]
    fn offsets_stated_by_the_document_win() {
        let z = document_offset("All times are GMT+7.");
        let found = find_times("2029-08-14 16:00", z);
        assert_eq!(found[0].normalized, "2029-08-14T16:00:00+07:00");
    }

    #[test]
    fn durations_not_dates() {
        let counted = find_durations("有效期：90个日历日");
        assert_eq!(counted[0].text, "90个日历日");
        assert_eq!(counted[0].normalized, json!({"days": 90.0}));
        let d = find_durations("2026年11月3日起540日历天，缺陷责任期24个月");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].normalized, json!({"days": 540.0}));
        assert_eq!(d[1].normalized, json!({"months": 24.0}));
        assert_eq!(
            find_durations("nine months")[0].normalized,
            json!({"months": 9.0})
        );
        assert_eq!(find_durations("120 days from")[0].text, "120 days");
    }

    #[test]
    fn values_keep_what_is_written_with_them() {
        let m = find_money("预算：923680元/年。");
        assert_eq!(m[0].text, "923680元/年");
        assert_eq!(m[0].normalized["per"], json!("年"));
        assert_eq!(find_money("控制价：12.55元/条")[0].text, "12.55元/条");
        assert_eq!(find_money("保证金：5000元人民币")[0].text, "5000元人民币");
        assert_eq!(find_money("500元 / 投标人")[0].text, "500元");
        assert_eq!(
            find_durations("投标有效期：自投标截止日起120日")[0].text,
            "自投标截止日起120日"
        );
        assert_eq!(
            find_durations("服务期限为供应商与采购人签订合同之日起至三年")[0].text,
            "供应商与采购人签订合同之日起至三年"
        );
        let t = find_times("2025年08月27日下午14:30整", default_offset());
        assert_eq!(t[0].text, "2025年08月27日下午14:30整");
    }

    #[test]
    fn percent_and_copies() {
        // The base is part of the value: 10% of what.
        assert_eq!(
            find_percent("履约担保的金额：中标合同金额的10%")[0].text,
            "中标合同金额的10%"
        );
        assert_eq!(
            find_percent("履约保证金的金额为项目预估成交总额的5%。")[0].text,
            "项目预估成交总额的5%"
        );
        assert_eq!(find_percent("下浮10%")[0].text, "10%");
        assert_eq!(
            find_percent("5% of the Contract Sum")[0].text,
            "5% of the Contract Sum"
        );
        let c = find_copies("正本1份，副本4份，电子版1份").unwrap();
        assert_eq!(c.text, "正本1份，副本4份，电子版1份");
        let c = find_copies("响应文件一式伍份（壹份正本、肆份副本），每份").unwrap();
        assert_eq!(c.text, "一式伍份（壹份正本、肆份副本）");
        assert_eq!(c.normalized, json!({"originals": 1.0, "copies": 4.0}));
        let e = find_copies("One original and two copies").unwrap();
        assert_eq!(e.normalized, json!({"originals": 1.0, "copies": 2.0}));
    }

    #[test]
    fn compact_folds_width_and_space() {
        assert_eq!(compact("５４０ 日历天"), "540日历天");
        assert_eq!(tidy("540 日历 天 and  x"), "540 日历天 and x");
    }

    #[test]
    fn rupee_amounts() {
        let f = find_money("EMD of Rs.10,000.00 (Rs. Ten thousand) and Rs. 5,00,000/-");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].text, "Rs.10,000.00");
        assert_eq!(f[0].normalized["amount"], 10_000.0);
        assert_eq!(f[0].normalized["currency"], "INR");
        assert_eq!(f[1].normalized["amount"], 500_000.0);
        assert_eq!(
            find_money_inr("INR 2 lakhs")[0].normalized["amount"],
            200_000.0
        );
        assert!(find_money("Rs. One Thousand only").is_empty());
    }

    #[test]
    fn day_month_year_times() {
        let z = default_offset();
        let (read, amb) = find_times_dmy(
            "SUBMISSION BY - 22/12/2023 BEFORE 3:00 P.M. sharp",
            z,
            DayOrder::Unstated,
        );
        assert!(amb.is_empty());
        assert_eq!(read[0].text, "22/12/2023 BEFORE 3:00 P.M.");
        assert_eq!(read[0].normalized, "2023-12-22T15:00:00+08:00");
        let (read, _) = find_times_dmy("15-01-2024 15:00:00", z, DayOrder::Unstated);
        assert_eq!(read[0].normalized, "2024-01-15T15:00:00+08:00");
        // 05-06-2024 is 5 June or May 6: read only when the order is stated.
        let (read, amb) = find_times_dmy("05-06-2024 11:00", z, DayOrder::Unstated);
        assert!(read.is_empty());
        assert_eq!(amb[0].text, "05-06-2024 11:00");
        let (read, _) = find_times_dmy("05-06-2024 11:00", z, DayOrder::DayFirst);
        assert_eq!(read[0].normalized, "2024-06-05T11:00:00+08:00");
        assert_eq!(stated_day_order("Date (dd-mm-yyyy)"), DayOrder::DayFirst);
        assert_eq!(stated_day_order("MM/DD/YYYY"), DayOrder::MonthFirst);
        assert_eq!(stated_day_order("no format"), DayOrder::Unstated);
        // Portal pages name the month: "21-Dec-2023 05:00 PM".
        let (read, _) = find_times_dmy("21-Dec-2023 05:00 PM", z, DayOrder::MonthFirst);
        assert_eq!(read[0].normalized, "2023-12-21T17:00:00+08:00");
        assert!(
            find_times_dmy("12-Foo-2023", z, DayOrder::DayFirst)
                .0
                .is_empty()
        );
        // Mixed separators are no date.
        assert!(
            find_times_dmy("12/05-2024", z, DayOrder::DayFirst)
                .0
                .is_empty()
        );
    }
}
