//! Field rules: which labels name which field (a vocabulary per field, with
//! the synonyms of national, regional and English templates), and how a
//! value of the field's type is read from the text beside the label.

use std::sync::LazyLock;

use chrono::FixedOffset;
use regex::Regex;
use serde_json::{Value, json};

use super::normalize::{
    Found, find_copies, find_durations, find_money, find_percent, find_times, tidy,
};
use super::text::split_outside_brackets;

/// The type of a field's value, which decides how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text: the first clause of the content.
    Text,
    /// An organisation's name.
    Party,
    /// A reference number.
    Code,
    /// An amount of money.
    Money,
    /// A point in time.
    Date,
    /// A point in time, or a short statement such as 不组织.
    DateOrText,
    /// A duration.
    Duration,
    /// A percentage or an amount.
    PercentOrMoney,
    /// Allowed or not (联合体, alternatives).
    Bool,
    /// Originals and copies.
    Copies,
    /// An evaluation method name.
    Method,
    /// A professional certificate (注册建造师) or an experience requirement.
    Cert,
    /// A qualification grade (资质).
    Grade,
    /// A place.
    Place,
    /// A quality standard: its lead clause ("合格"; the first clause of a
    /// long statement of the rules to follow).
    Standard,
}

/// One field's rule.
pub struct Spec {
    /// Field id.
    pub id: &'static str,
    label: Regex,
    exclude: Option<Regex>,
    /// How the value is read.
    pub kind: Kind,
    /// Other fields that may be read from "label：value" pairs inside this
    /// field's content (a qualification row also states the PM's
    /// certificate and the track record).
    pub family: &'static [&'static str],
}

impl Spec {
    /// Whether the field's label words occur anywhere in `text` (for
    /// sentences such as "原投标截止时间为A，现变更为B").
    pub fn matches_anywhere(&self, text: &str) -> bool {
        self.label.is_match(text) && !self.exclude.as_ref().is_some_and(|e| e.is_match(text))
    }
}

fn spec(
    id: &'static str,
    label: &str,
    exclude: Option<&str>,
    kind: Kind,
    family: &'static [&'static str],
) -> Spec {
    Spec {
        id,
        label: Regex::new(label).expect("label regex"),
        exclude: exclude.map(|e| Regex::new(e).expect("exclude regex")),
        kind,
        family,
    }
}

const QUAL_FAMILY: &[&str] = &["qualification", "pm", "track_record", "registration"];

/// Every field rule, the more specific before the more general.
pub static SPECS: LazyLock<Vec<Spec>> = LazyLock::new(|| {
    use Kind::*;
    vec![
        spec(
            "deadline_query",
            r"(?i)(澄清|提问|答疑|质疑|疑问|问题).{0,12}(截止|时间|期限)|^(答疑|澄清|质疑|提问)$|要求澄清|(clarification|queries|enquiries|questions).{0,24}(deadline|closing|date|by|later\s+than|before)|deadline\s+for\s+(clarification|queries|enquiries|questions)",
            Some(r"招标人.{0,6}澄清|书面澄清的时间|发出|答复"),
            Date,
            &[],
        ),
        spec(
            "deadline_bid",
            r"(?i)(投标|递交|提交|响应文件|申请文件|报价|磋商|谈判).{0,12}截止|^截止(时间|日期)$|closing\s+(date|time)|tender\s+closing|submission\s+(deadline|date)|deadline\s+for\s+(bid\s+|tender\s+)?(submission|tenders|bids)",
            Some(
                r"(?i)澄清|提问|问题|答疑|质疑|疑问|保证金|获取|下载|发售|clarification|queries|questions|deposit",
            ),
            Date,
            &[],
        ),
        spec(
            "opening_time",
            r"(?i)开标时间|开启时间|开标日期|^开标及.{0,12}时间$|^(谈判|磋商|协商)(时间|日期)$|(tender|bid)\s+opening\s+(date|time)|opening\s+(date|time)",
            None,
            DateOrText,
            &["opening_place"],
        ),
        spec(
            "opening_place",
            r"(?i)开标地点|开启地点|^开标及.{0,12}地点$|(谈判|磋商|协商|解密)地点|opening\s+(place|venue|location)|place\s+of\s+(tender\s+)?opening",
            None,
            Place,
            &["opening_time"],
        ),
        // Where bids are handed in. Not a summary field of its own: it
        // stands in for the opening place when the document names none
        // (`candidates::submission_place_as_opening`).
        spec(
            "submission_place",
            r"(递交|提交|接收|送达)[^，,。；;：:\s]{0,8}(地点|地址)",
            Some(r"开标|开启|解密|磋商|谈判|邮箱|截止"),
            Place,
            &[],
        ),
        spec(
            "project",
            r"(?i)^(招标|采购|比选|磋商)?(项目|工程)名称$|^项目$|^(project|contract)\s+(title|name)$|^name\s+of\s+(the\s+)?(project|contract|works)$|^title\s+of\s+(the\s+)?(project|contract)$",
            None,
            Text,
            &[],
        ),
        spec(
            "owner",
            r"(?i)^(招标人|采购人|比选人|磋商人|建设单位|发包人|项目业主|业主|招标单位|采购单位|采购单位名称|招标人名称|采购人名称|比选人名称|建设单位名称)(信息)?$|^(the\s+)?(name\s+of\s+(the\s+)?)?(employer|purchaser|procuring\s+entity|client|owner|contracting\s+authority)$",
            None,
            Party,
            &[],
        ),
        spec(
            "agency",
            r"(?i)^(招标|采购)?代理(机构|单位)(名称|信息)?$|^(procurement\s+)?agent$",
            None,
            Party,
            &[],
        ),
        spec(
            "tender_no",
            r"(?i)招标编号|项目编号|采购编号|招标项目编号|采购项目编号|比选编号|磋商编号|项目代码|tender\s+(reference|ref\.?|no\.?|number)|reference\s+(no\.?|number)|itt\s+(no\.?|reference)|bid\s+(no\.?|reference|number)|contract\s+no\.?|invitation\s+for\s+bids?\s+(no\.?|number)|number\s+of\s+the\s+invitation|ifb\s+(no\.?|number)",
            Some(r"标段编号|包号"),
            Code,
            &[],
        ),
        spec(
            "scope",
            r"(?i)招标范围|采购范围|服务范围|监理范围|工程范围|采购内容|招标内容|scope\s+of\s+(the\s+)?(works?|services|supply)",
            None,
            Text,
            &[],
        ),
        spec(
            "duration",
            r"(?i)工期|服务期|服务期限|监理服务期|合同履行期限|履约期限|交货期|供货期|交付期|交货时间|交付时间|实施期限|contract\s+period|completion\s+time|completion\s+period|time\s+for\s+completion|intended\s+completion|contract\s+duration|period\s+of\s+(the\s+)?(contract|completion)",
            Some(
                r"(?i)缺陷|质保|保修|售后|免费|维保|有效期|开工日期|竣工日期|开工时间|竣工时间|延误|逾期|违约|liability|validity|warranty",
            ),
            Duration,
            &[],
        ),
        spec(
            "quality",
            r"(?i)质量要求|质量标准|质量目标|^工程质量$|quality\s+(standard|requirement)",
            Some(r"保证金|体系|措施|保证期"),
            Standard,
            &[],
        ),
        spec(
            "pm",
            r"(?i)项目经理|项目负责人|(项目|服务)?团队负责人|总监理工程师|^总监|project\s+manager|site\s+manager|project\s+director|resident\s+engineer",
            Some(r"(?i)业绩|得分|评分|更换|身份证|驻场|track"),
            Cert,
            &[],
        ),
        spec(
            "track_record",
            r"(?i)业绩|类似项目|类似工程|track\s+record|similar\s+(projects|works|experience)",
            Some(r"(?i)年份|评分|得分|项目经理|负责人|总监"),
            Money,
            &[],
        ),
        spec(
            "registration",
            r"(?i)注册资格|工作类别|workhead|work\s+head|registration|registered",
            None,
            Text,
            &[],
        ),
        spec(
            "qualification",
            r"(?i)资质|资格要求|资格条件|申请人资格|投标人资格|供应商资格|qualification",
            Some(r"(?i)项目经理|总监|负责人|业绩|评审|审查|预审|证明|有效期|project\s+manager"),
            Grade,
            QUAL_FAMILY,
        ),
        spec(
            "consortium",
            r"(?i)联合体|联合响应|联合投标|联合参选|joint\s+ventures?|consorti(um|a)",
            Some(r"协议"),
            Bool,
            &[],
        ),
        spec(
            "alternatives",
            r"(?i)备选(投标)?方案|备选投标|alternative\s+(tenders?|bids?|offers?|proposals?)",
            None,
            Bool,
            &[],
        ),
        spec(
            "subcontracting",
            r"(?i)^分包$|分包要求|是否允许分包|sub-?contract(ing)?",
            None,
            Text,
            &[],
        ),
        spec(
            "site_visit",
            r"(?i)踏勘|现场考察|勘察现场|site\s+(visit|show-?round|briefing|inspection)",
            None,
            DateOrText,
            &[],
        ),
        spec(
            "price_cap",
            r"(?i)最高投标限价|招标控制价|最高限价|控制价|最高报价|拦标价|限价|预算上限|ceiling\s+price|maximum\s+(price|bid|tender\s+sum)",
            Some(r"文件"),
            Money,
            &[],
        ),
        spec(
            "budget",
            r"(?i)预算金额|采购预算|项目预算|^预算$|预算价|预算上限|(estimated|approved)\s+(contract\s+)?(value|budget)|^budget$",
            Some(r"控制价|限价"),
            Money,
            &[],
        ),
        spec(
            "validity",
            r"(?i)投标有效期|响应文件有效期|申请有效期|报价有效期|磋商有效期|谈判有效期|比选有效期|询价有效期|^有效期$|(tender|bid|offer)\s+validity|validity\s+period",
            Some(r"营业执照|证书|保函|许可证|保证金"),
            Duration,
            &[],
        ),
        spec(
            "bond",
            r"(?i)投标保证金|比选保证金|磋商保证金|响应保证金|谈判保证金|^保证金$|投标担保|(tender|bid)\s+(deposit|bond|security|guarantee)",
            Some(r"(?i)履约|质量保证金|退还|没收|凭证|performance"),
            Money,
            &[],
        ),
        spec(
            "performance_bond",
            r"(?i)履约担保|履约保证金|履约保函|performance\s+(bond|security|guarantee)",
            None,
            PercentOrMoney,
            &[],
        ),
        spec(
            "warranty",
            r"(?i)缺陷责任期|质保期|保修期|质量保证期|defects?\s+liability\s+period|warranty\s+period|maintenance\s+period",
            Some(r"保证金"),
            Duration,
            &[],
        ),
        spec(
            "eval_method",
            r"(?i)评标办法|评标方法|评审办法|评审方法|评分办法|评定办法|磋商办法|evaluation\s+(method|methodology)|method\s+of\s+evaluation",
            None,
            Method,
            &[],
        ),
        spec(
            "copies",
            r"(?i)份数|正副本|副本|number\s+of\s+(copies|sets)|^copies$",
            None,
            Copies,
            &[],
        ),
        // English labels of Indian and Commonwealth tenders (appendix rows,
        // portal key-value pages).
        spec(
            "bond",
            r"(?i)^earnest\s+money(\s+deposit)?(\s*\(\s*E\.?M\.?D\.?\s*\))?$|^E\.?M\.?D\.?(\s+amount)?$",
            None,
            Money,
            &[],
        ),
        spec(
            "duration",
            r"(?i)^(date|period|time)\s+(of|for|allowed\s+for)\s+completion$|^completion\s+period$|^period\s+of\s+work$",
            None,
            Duration,
            &[],
        ),
        spec(
            "performance_bond",
            r"(?i)^(total\s+)?security\s+deposit$",
            None,
            PercentOrMoney,
            &[],
        ),
        spec(
            "deadline_bid",
            r"(?i)^(bid|tender|offer)\s+submission\s+(end|closing|last)\s+date(\s+and\s+time)?$|^last\s+date\s+(and\s+time\s+)?(of|for)\s+(receipt|submission)(\s+of\s+(tenders?|bids?|offers?))?$",
            None,
            Date,
            &[],
        ),
        spec(
            "validity",
            r"(?i)^validity\s+of\s+(the\s+)?(tenders?|bids?|offers?)$",
            None,
            Duration,
            &[],
        ),
        spec(
            "opening_place",
            r"(?i)^(bid|tender)\s+opening\s+(shall|will)\s+take\s+place(\s+at)?$",
            None,
            Place,
            &["opening_time"],
        ),
    ]
});

/// Marks of a lot in a label or heading: 一标段, 第2标段, 包1, 第三包, Lot 2.
pub static LOT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(第?[一二三四五六七八九十\d]+\s*(?:标段|标包|分标|包)|(?:标段|标包|包)\s*[一二三四五六七八九十\d]+|\blot\s*\d+|\bpackage\s*\d+)")
        .expect("lot regex")
});

/// The lot a label names, if any, in a stable spelling.
pub fn lot_of(label: &str) -> Option<String> {
    LOT.find(label).map(|m| {
        let name = m.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
        // "第一标段" and "一标段" are one lot.
        name.strip_prefix('第').map(str::to_string).unwrap_or(name)
    })
}

/// The label without its lot mark and brackets around it.
fn strip_lot(label: &str) -> String {
    let without = LOT.replace_all(label, "");
    without
        .replace("（）", "")
        .replace("()", "")
        .trim()
        .to_string()
}

/// The fields a label names. Labels longer than a label would be (a
/// sentence) name none.
pub fn fields_for_label(label: &str) -> Vec<&'static Spec> {
    let label = strip_lot(&tidy(label));
    let label = clean_english_label(label.trim_end_matches(['：', ':']).trim());
    let label = label.as_str();
    let cjk = label.chars().any(super::normalize::is_cjk);
    let n = label.chars().count();
    if n == 0 || (cjk && n > 30) || (!cjk && n > 60) {
        return Vec::new();
    }
    SPECS
        .iter()
        .filter(|s| s.label.is_match(label))
        .filter(|s| !s.exclude.as_ref().is_some_and(|e| e.is_match(label)))
        .collect()
}

static EN_LABEL_HEAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(the\s+)?(amount\s+of\s+(the\s+)?)?").expect("en head"));
static EN_LABEL_TAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\s+(is|are|shall\s+be|will\s+be)$").expect("en tail"));

/// Bid data sheets write labels as sentences: "The name of the Employer
/// is" names the same field as "Employer".
fn clean_english_label(label: &str) -> String {
    if label.chars().any(super::normalize::is_cjk) {
        return label.to_string();
    }
    let tail = EN_LABEL_TAIL.replace(label, "");
    let head = EN_LABEL_HEAD.replace(&tail, "");
    if head.trim().is_empty() {
        label.to_string()
    } else {
        head.trim().to_string()
    }
}

/// The rule of field `id`.
pub fn spec_of(id: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.id == id)
}

static METHOD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)综合评估法|综合评分法|综合评价法|综合评标法|综合比选法?|最低价成交法?|经评审的最低投标价法|最低评标价法|最低投标价法|合理低价法|综合评议法|最低价法|性价比法|price[- ]quality\s+method|lowest\s+(evaluated\s+)?price(\s+method)?|most\s+economically\s+advantageous\s+tender|quality\s+and\s+cost\s+based\s+selection|least\s+cost\s+selection|lowest\s+evaluated\s+(substantially\s+responsive\s+)?(bid|tender)")
        .expect("method regex")
});

/// An evaluation method named in `text`.
pub fn find_method(text: &str) -> Option<Found> {
    METHOD.find(text).map(|m| Found {
        text: m.as_str().to_string(),
        start: m.start(),
        normalized: Value::Null,
    })
}

static NO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(不接受|不允许|不得|不可|不组织|不召开|否|无|不设|不适用|not\s+(permitted|allowed|accepted|acceptable|applicable)|no\b)").expect("no regex")
});
static YES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(接受|允许|可以|是|组织|召开|permitted|allowed|accepted|acceptable|yes\b)")
        .expect("yes regex")
});

/// Reads a value of `kind` from `content`. Returns the value as written and
/// its normal form; `None` when the content holds no value of that kind.
pub fn read_value(kind: Kind, content: &str, offset: FixedOffset) -> Option<(String, Value)> {
    let content = content.trim();
    let first = first_clause(content);
    match kind {
        Kind::Money => find_money(content)
            .into_iter()
            .next()
            .map(pair)
            .or_else(|| read_none(&first)),
        Kind::Date => find_times(content, offset)
            .into_iter()
            .next()
            .map(pair)
            .or_else(|| read_relative_time(&first)),
        Kind::Duration => find_durations(content)
            .into_iter()
            .next()
            .map(pair)
            .or_else(|| read_term_until(&first, offset)),
        Kind::PercentOrMoney => {
            let mut all = find_percent(content);
            all.extend(find_money(content));
            all.into_iter()
                .min_by_key(|f| f.start)
                .map(pair)
                .or_else(|| read_none(&first))
        }
        Kind::Copies => find_copies(content).map(pair),
        Kind::Method => find_method(content).map(pair),
        Kind::DateOrText => match find_times(content, offset).into_iter().next() {
            Some(f) => Some(pair(f)),
            None => short_text(&first, 40).map(|t| (t, Value::Null)),
        },
        Kind::Bool => read_bool(&first),
        Kind::Party => read_party(content),
        Kind::Code => read_code(content),
        Kind::Cert => read_cert(content),
        Kind::Grade => read_grade(&first),
        Kind::Place => read_place(&first, offset),
        Kind::Text => short_text(&first, 120).map(|t| (t, Value::Null)),
        Kind::Standard => short_text(&lead_clause(&first), 120).map(|t| (t, Value::Null)),
    }
}

/// Characters past which a statement runs on beyond its lead clause.
const LONG_STATEMENT: usize = 40;

/// "严格执行国家、行业有关工程建设质量管理的法律、法规和规章制度，贯彻…，
/// 保证…" stands for its lead clause; a short statement stands whole.
fn lead_clause(first: &str) -> String {
    if first.chars().count() <= LONG_STATEMENT {
        return first.to_string();
    }
    split_outside_brackets(first, &['，', ','])
        .into_iter()
        .next()
        .filter(|lead| lead.chars().count() >= 8)
        .unwrap_or_else(|| first.to_string())
}

/// An amount field the document says there is none of: "无", "本项目不收取
/// 磋商保证金", "不适用". Kept as written.
static NONE_STATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(本项目|本次(采购|招标)(活动|项目)?)?(不收取|免收|无需|不需|不需要|不要求|不设|不适用|无$|无。?$|不缴纳|无须)")
        .expect("none regex")
});

fn read_none(first: &str) -> Option<(String, Value)> {
    let t = first.trim().trim_end_matches(['。', '.']).trim();
    (t.chars().count() <= 30 && NONE_STATED.is_match(t))
        .then(|| (t.to_string(), json!({"none": true})))
}

/// A term written as its start and end date: "合同签署生效之日起至2026年9月
/// 30日". Kept as written; there is no length to normalise.
fn read_term_until(first: &str, offset: FixedOffset) -> Option<(String, Value)> {
    static TERM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(自|从)?[^\d，,；;。]{2,30}?(之日|日)起\s*至\s*$").expect("term regex")
    });
    // The end date as written, even one that is no calendar day ("9月31日"
    // stands in real documents): the text is kept, the normal form only
    // when the day exists.
    static DAY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*[日号]").expect("day regex")
    });
    let end = DAY.find(first)?;
    let head = first[..end.start()].trim();
    let head = head.rsplit(['为', '：', ':']).next().unwrap_or(head).trim();
    TERM.is_match(head).then(|| {
        let start = first.find(head).unwrap_or(0);
        let until = find_times(end.as_str(), offset)
            .into_iter()
            .next()
            .map_or(Value::Null, |t| t.normalized);
        (
            first[start..end.end()].trim().to_string(),
            json!({"until": until}),
        )
    })
}

/// A time stated as a span before another one: "投标截止时间15日前",
/// "开标前3个工作日". Kept as written; the normal form names the reference
/// and the span, since the day itself is the other field's.
fn read_relative_time(first: &str) -> Option<(String, Value)> {
    static RELATIVE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"((?:投标|响应文件|应答文件|递交|提交|开标|磋商|谈判)[^，,。；;\d]{0,8}?(?:截止)?(?:时间|日期|之日)?(?:前|之前)?)\s*(?:至少)?\s*(\d{1,3})\s*个?\s*(日|天|工作日|小时)\s*(前|以前|之前)?",
        )
        .expect("relative time regex")
    });
    let m = RELATIVE.captures(first)?;
    // "前" before the span ("开标前3个工作日") or after it ("投标截止时间15日前").
    if !m[1].ends_with('前') && m.get(4).is_none() {
        return None;
    }
    let reference = if m[1].contains("开标") {
        "opening_time"
    } else {
        "deadline_bid"
    };
    let unit = match &m[3] {
        "工作日" => "working_day",
        "小时" => "hour",
        _ => "day",
    };
    let count: u32 = m[2].parse().ok()?;
    Some((
        m[0].trim().to_string(),
        json!({"before": reference, "count": count, "unit": unit}),
    ))
}

/// A place, up to a time stated after it ("X会议室，时间为 2025年3月19日
/// 13:30"): the place is the part before the comma that leads to the time.
fn read_place(first: &str, offset: FixedOffset) -> Option<(String, Value)> {
    let mut place = first;
    if let Some(t) = find_times(first, offset).first()
        && let Some(cut) = first[..t.start].rfind(['，', ','])
    {
        place = &first[..cut];
    }
    (find_times(place, offset).is_empty() && !place.contains("时间"))
        .then(|| short_text(place, 60).map(|t| (t, Value::Null)))
        .flatten()
}

fn pair(f: Found) -> (String, Value) {
    (f.text, f.normalized)
}

/// The content up to its first 。 or ；, outside brackets.
pub fn first_clause(content: &str) -> String {
    split_outside_brackets(content, &['。', '；', ';'])
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// Text that only points elsewhere ("详见第三章", "See Section 6") is no
/// value.
static POINTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(详见|见|参见|按照?|另行|以.{0,8}为准|(please\s+)?see\b|refer\s+to|as\s+per|as\s+specified)")
        .expect("pointer regex")
});

fn short_text(t: &str, max: usize) -> Option<String> {
    let t = t.trim().trim_end_matches(['.', '。']).trim();
    let n = t.chars().count();
    // A bare small number ("2") beside a heading is a page or item number
    // (a table-of-contents line), not a text value.
    let page_number = n <= 4 && t.chars().all(|c| c.is_ascii_digit());
    // "项目名称：\t招标编号：" is a blank form line: its "value" is the
    // next label, still to be filled in.
    let next_label = t.ends_with(['：', ':']);
    (n >= 1
        && n <= max
        && !page_number
        && !next_label
        && !is_blank_template(t)
        && !POINTER.is_match(t))
    .then(|| t.to_string())
}

/// Text of a blank form to be filled in: underscores, "（盖单位章）", an
/// empty date "年 月 日", "（项目名称）".
pub fn is_blank_template(t: &str) -> bool {
    static BLANK: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"_{2,}|＿{2,}|[（(]\s*盖[^）)]{0,6}章\s*[）)]|(^|[^\d\s])\s*年\s+月\s+日|[（(](项目名称|招标人名称|采购人名称|供应商名称|投标人名称|单位名称|采购项目名称)[）)]")
            .expect("blank regex")
    });
    BLANK.is_match(t)
}

/// The option a checkbox answer marks: "■否  □是" -> "否", "☑ 不允许 □
/// 允许" -> "不允许". `None` when the content is no checkbox answer or
/// marks not exactly one option.
pub fn checked_option(content: &str) -> Option<String> {
    static OPTION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"([■☑√✓✔☒▣])\s*([^■☑√✓✔☒▣□☐○●/／]+)").expect("option regex"));
    if !content.contains(['□', '☐']) {
        return None;
    }
    let marked: Vec<String> = OPTION
        .captures_iter(content)
        .map(|c| {
            c[2].trim()
                .trim_end_matches(['，', ',', '；', ';'])
                .trim()
                .to_string()
        })
        .filter(|o| !o.is_empty())
        .collect();
    match marked.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Subjects a yes/no statement opens with that are not part of the answer
/// ("本次采购活动不接受联合体应答" answers "不接受联合体应答").
static BOOL_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(本次(采购|招标|比选|磋商|谈判|询价)(活动|项目)?|本(采购|招标|比选|磋商|谈判|询价)(项目|活动)|本标段)")
        .expect("bool subject")
});

fn read_bool(first: &str) -> Option<(String, Value)> {
    if let Some(option) = checked_option(first) {
        return read_bool(&option);
    }
    let word = split_outside_brackets(first, &['，', ','])
        .into_iter()
        .next()?;
    let word = BOOL_SUBJECT.replace(word.trim(), "");
    let bare = word.trim_start_matches("本项目").trim();
    let word = word.trim().trim_end_matches(['。', '.']).to_string();
    let normalized = if NO.is_match(bare) {
        json!(false)
    } else if YES.is_match(bare) {
        json!(true)
    } else {
        return None;
    };
    Some((word, normalized))
}

static PARTY_CUT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[，,；;\s]|联系人|地址|电话|（盖章）|\(盖章\)").expect("party cut")
});

fn read_party(content: &str) -> Option<(String, Value)> {
    let mut t = content.trim();
    for prefix in ["名称：", "名称:", "名 称：", "单位名称："] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim();
        }
    }
    let end = if t.chars().any(super::normalize::is_cjk) {
        PARTY_CUT.find(t).map_or(t.len(), |m| m.start())
    } else {
        t.find([',', ';', '(']).unwrap_or(t.len())
    };
    let name = t[..end].trim();
    let n = name.chars().count();
    if !(2..=60).contains(&n)
        || name.contains("____")
        || is_blank_template(name)
        || name.ends_with(['：', ':'])
        || name.starts_with(['见', '详'])
    {
        return None;
    }
    Some((name.to_string(), Value::Null))
}

static CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9][A-Za-z0-9\-_/.〔〕\[\]（）()]{3,}[A-Za-z0-9\]）)]")
        .expect("code regex")
});

fn read_code(content: &str) -> Option<(String, Value)> {
    let content = content.trim();
    let m = CODE.find(content)?;
    // "2025-066期": the issue mark is part of the number.
    let end = match content[m.end()..].chars().next() {
        Some('期') => m.end() + '期'.len_utf8(),
        _ => m.end(),
    };
    let code = &content[m.start()..end];
    code.chars()
        .any(|c| c.is_ascii_digit())
        .then(|| (code.to_string(), Value::Null))
}

static CERT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"注册建造师|注册监理工程师|监理工程师|建造师|注册造价工程师|造价工程师|注册[\p{Han}]{1,8}?师|高级工程师|工程师").expect("cert regex")
});
static CERT_VERB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"具有|具备|持有|取得|拥有|须为|应为|为|是").expect("verb regex"));

/// A certificate requirement: "建筑工程专业一级注册建造师" out of
/// "须具备建筑工程专业一级注册建造师执业资格". English content ("shall have
/// at least 8 years of relevant experience") is kept as written.
fn read_cert(content: &str) -> Option<(String, Value)> {
    let first = first_clause(content);
    if !first.chars().any(super::normalize::is_cjk) {
        return short_text(&first, 160).map(|t| (t, Value::Null));
    }
    for seg in split_outside_brackets(&first, &['，', ',']) {
        let Some(m) = CERT.find(&seg) else {
            continue;
        };
        let head = &seg[..m.start()];
        let start = CERT_VERB.find_iter(head).last().map_or(0, |v| v.end());
        let start = head[start..]
            .rfind(['：', ':'])
            .map_or(start, |i| start + i + '：'.len_utf8());
        let cert = seg[start..m.end()].trim();
        if cert.chars().count() >= 3 {
            return Some((cert.to_string(), Value::Null));
        }
    }
    // No certificate, but years of experience: "团队负责人具备10年以上的相关
    // 行业从业经验" is kept as written, as English content is.
    EXPERIENCE
        .is_match(&first)
        .then(|| short_text(&first, 80).map(|t| (t, Value::Null)))
        .flatten()
}

/// A requirement of years of experience.
static EXPERIENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+|[一二三四五六七八九十]+)\s*年(以上|及以上)?[^，,。；;]{0,16}(从业|工作|管理|项目)?经验")
        .expect("experience regex")
});

static GRADE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(投标人|申请人|供应商)?(须|应|必须)?(同时)?(具备|具有|持有|取得)(有效的)?")
        .expect("grade regex")
});

fn read_grade(first: &str) -> Option<(String, Value)> {
    let seg = split_outside_brackets(first, &['，', ','])
        .into_iter()
        .next()?;
    let stripped = GRADE_PREFIX.replace(&seg, "");
    let stripped = stripped
        .trim_end_matches("资质证书")
        .trim_end_matches("的资质")
        .trim_end_matches("资质")
        .trim();
    short_text(stripped, 80).map(|t| (t, Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::normalize::default_offset;

    fn ids(label: &str) -> Vec<&'static str> {
        fields_for_label(label).iter().map(|s| s.id).collect()
    }

    #[test]
    fn label_vocabularies() {
        assert_eq!(ids("投标截止时间"), vec!["deadline_bid"]);
        assert_eq!(
            ids("投标人要求澄清招标文件的截止时间"),
            vec!["deadline_query"]
        );
        assert_eq!(ids("比选申请文件递交截止时间"), vec!["deadline_bid"]);
        assert_eq!(ids("响应文件提交截止时间"), vec!["deadline_bid"]);
        assert_eq!(ids("招标控制价"), vec!["price_cap"]);
        assert_eq!(ids("最高投标限价"), vec!["price_cap"]);
        assert_eq!(ids("预算金额"), vec!["budget"]);
        assert_eq!(ids("磋商有效期"), vec!["validity"]);
        assert_eq!(
            ids("开标及递交投标文件截止时间"),
            vec!["deadline_bid", "opening_time"]
        );
        assert_eq!(ids("开标及递交投标文件地点"), vec!["opening_place"]);
        assert_eq!(ids("磋商保证金"), vec!["bond"]);
        assert_eq!(ids("Performance Bond"), vec!["performance_bond"]);
        assert_eq!(ids("Tender Deposit"), vec!["bond"]);
        assert_eq!(ids("计划开工日期"), Vec::<&str>::new());
        assert_eq!(ids("最高限价（包1）"), vec!["price_cap"]);
        assert_eq!(lot_of("最高限价（包1）").as_deref(), Some("包1"));
        assert_eq!(ids("Contract Period"), vec!["duration"]);
        assert_eq!(ids("Defects Liability Period"), vec!["warranty"]);
        assert!(
            ids("售后服务期").is_empty(),
            "after-sales service is no contract period"
        );
        assert_eq!(ids("交货时间"), vec!["duration"]);
        assert_eq!(ids("Completion Time"), vec!["duration"]);
        assert_eq!(ids("Tender Security"), vec!["bond"]);
        assert_eq!(ids("开标时间和地点"), vec!["opening_time"]);
        assert_eq!(ids("Earnest money deposit"), vec!["bond"]);
        assert_eq!(ids("Date of completion"), vec!["duration"]);
        assert_eq!(ids("Period Of Work"), vec!["duration"]);
        assert_eq!(ids("Initial security deposit"), Vec::<&str>::new());
        assert_eq!(ids("Bid Submission End Date"), vec!["deadline_bid"]);
        assert_eq!(ids("Validity of tender"), vec!["validity"]);
        assert_eq!(
            ids("The bid opening shall take place at"),
            vec!["opening_place"]
        );
    }

    #[test]
    fn values_by_kind() {
        let z = default_offset();
        let v = |k, s| read_value(k, s, z).map(|(v, _)| v);
        assert_eq!(
            v(
                Kind::Cert,
                "具有国家注册监理工程师执业资格（房屋建筑工程专业），且同时"
            )
            .as_deref(),
            Some("国家注册监理工程师")
        );
        assert_eq!(
            v(Kind::Cert, "建筑工程专业一级注册建造师，具备有效的").as_deref(),
            Some("建筑工程专业一级注册建造师")
        );
        assert_eq!(
            v(Kind::Grade, "具备房屋建筑工程监理乙级及以上资质").as_deref(),
            Some("房屋建筑工程监理乙级及以上")
        );
        assert_eq!(
            v(Kind::Party, "名称：临江市某公司；地址：某路").as_deref(),
            Some("临江市某公司")
        );
        assert_eq!(
            v(Kind::Party, "Seletar North Town Council, 21 Seletar Link").as_deref(),
            Some("Seletar North Town Council")
        );
        assert_eq!(v(Kind::Bool, "不接受").as_deref(), Some("不接受"));
        assert_eq!(
            v(Kind::Bool, "Not permitted").as_deref(),
            Some("Not permitted")
        );
        assert_eq!(
            v(Kind::Code, "LJZB-2026-SG-0418。").as_deref(),
            Some("LJZB-2026-SG-0418")
        );
        assert_eq!(
            v(Kind::Method, "本项目采用综合评估法评标").as_deref(),
            Some("综合评估法")
        );
        assert_eq!(v(Kind::Place, "同投标截止时间"), None);
        assert_eq!(
            v(
                Kind::Place,
                "某市某路1号5楼会议室，时间为  2025年3月19日13:30。"
            )
            .as_deref(),
            Some("某市某路1号5楼会议室")
        );
        assert_eq!(ids("谈判地点"), vec!["opening_place"]);
        assert_eq!(
            v(Kind::Duration, "合同签署生效之日起至2026年9月30日。").as_deref(),
            Some("合同签署生效之日起至2026年9月30日")
        );
        assert_eq!(v(Kind::Duration, "2026年9月30日"), None);
        assert_eq!(
            v(Kind::Duration, "自合同签订之日起至2026年9月31日").as_deref(),
            Some("自合同签订之日起至2026年9月31日"),
            "kept as written"
        );
        assert_eq!(ids("预算上限"), vec!["price_cap", "budget"]);
        assert_eq!(v(Kind::Grade, "详见第二章投标人须知"), None);
        assert_eq!(v(Kind::Text, "See Section 6"), None);
        assert_eq!(
            v(Kind::Grade, "2"),
            None,
            "a page number of a contents line"
        );
        assert_eq!(v(Kind::Text, "招标编号："), None, "a blank form line");
        assert_eq!(v(Kind::Party, "（盖单位章）"), None);
        assert_eq!(v(Kind::DateOrText, "年 月 日 时 分"), None);
        assert_eq!(v(Kind::Text, "（项目名称）"), None);
        assert!(!is_blank_template("2025年8月6日"));
        assert_eq!(
            v(Kind::Bool, "本项目不接受联合体投标").as_deref(),
            Some("本项目不接受联合体投标")
        );
        assert_eq!(
            v(Kind::Bool, "本次采购活动不接受联合体应答，也不允许分包").as_deref(),
            Some("不接受联合体应答")
        );
        assert_eq!(v(Kind::Bool, "■否  □是").as_deref(), Some("否"));
        assert_eq!(
            v(Kind::Money, "本项目不收取磋商保证金。").as_deref(),
            Some("本项目不收取磋商保证金")
        );
        assert_eq!(v(Kind::PercentOrMoney, "无").as_deref(), Some("无"));
        assert_eq!(v(Kind::Money, "按规定缴纳"), None);
        assert_eq!(v(Kind::Bool, "☑ 不允许 □ 允许").as_deref(), Some("不允许"));
        assert_eq!(v(Kind::Bool, "□否  □是"), None, "nothing marked");
        assert_eq!(ids("是否接受联合体投标"), vec!["consortium"]);
        assert_eq!(ids("联合响应"), vec!["consortium"]);
    }

    #[test]
    fn a_time_stated_as_a_span_before_another() {
        let offset = crate::extract::normalize::default_offset();
        let (value, normal) = read_value(Kind::Date, "时间：投标截止时间15日前。", offset).unwrap();
        assert_eq!(value, "投标截止时间15日前");
        assert_eq!(
            normal,
            json!({"before": "deadline_bid", "count": 15, "unit": "day"})
        );
        let (value, normal) = read_value(Kind::Date, "开标前3个工作日", offset).unwrap();
        assert_eq!(value, "开标前3个工作日");
        assert_eq!(normal["before"], "opening_time");
        assert_eq!(normal["unit"], "working_day");
        // A day of the calendar is a date, not a span.
        let (value, _) = read_value(Kind::Date, "投标截止时间2025年8月15日前", offset).unwrap();
        assert_eq!(value, "2025年8月15日");
        assert_eq!(read_value(Kind::Date, "收到澄清后24小时内", offset), None);
        assert_eq!(ids("投标人要求澄清招标文件"), vec!["deadline_query"]);
    }
}
