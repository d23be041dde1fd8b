//! Exports for the people who act on the summaries: a spreadsheet (XLSX,
//! or CSV of its tasks sheet) and an iCalendar feed of bid deadlines and
//! openings.
//!
//! These are plain functions over the task rows the projector's summary
//! index holds ([`crate::projector::index`]) and, for the rejection and
//! scoring sheets, the summaries themselves. A value is written as the
//! summary has it, beside its evidence; a field the summary lacks is an
//! empty cell, never a guess.

use chrono::{DateTime, Duration, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use serde_json::Value;
use uuid::Uuid;

use crate::extract::report::cite;
use crate::projector::index::IndexRow;
use crate::summary::{Evidence, FieldValue, Summary};

/// The fields of the tasks sheet, in the order a bid team reads them, with
/// their column heading.
pub const COLUMNS: &[(&str, &str)] = &[
    ("project", "项目名称 project"),
    ("tender_no", "招标编号 tender_no"),
    ("owner", "招标人 owner"),
    ("agency", "招标代理 agency"),
    ("deadline_bid", "投标截止 deadline_bid"),
    ("opening_time", "开标时间 opening_time"),
    ("opening_place", "开标地点 opening_place"),
    ("price_cap", "最高限价 price_cap"),
    ("budget", "预算 budget"),
    ("bond", "投标保证金 bond"),
    ("qualification", "资格要求 qualification"),
    ("duration", "工期 duration"),
    ("eval_method", "评标办法 eval_method"),
];

/// One task of an export: its view's facts and its summary index row.
#[derive(Debug, Clone)]
pub struct TaskRow {
    /// The task.
    pub task_id: Uuid,
    /// Its state, as in the view.
    pub state: String,
    /// When it was done (or failed).
    pub completed_at: Option<DateTime<Utc>>,
    /// Its submitted files' names, joined by "; ".
    pub files: String,
    /// The summary's fields; `None` for a task that is not done.
    pub row: Option<IndexRow>,
}

impl TaskRow {
    fn field(&self, id: &str) -> Option<&FieldValue> {
        self.row.as_ref()?.fields.get(id)
    }
}

/// A task's summary for the clause sheets.
pub struct TaskSummary<'a> {
    /// The task.
    pub task_id: Uuid,
    /// Its project name, when the summary has one.
    pub project: Option<&'a str>,
    /// The summary.
    pub summary: &'a Summary,
}

/// The normal form of a value as cell text: an RFC 3339 time as it is, an
/// amount as "32000000 CNY", anything else as compact JSON; empty for none.
pub fn normal_text(normalized: &Value) -> String {
    match normalized {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(o) => match (o.get("amount"), o.get("currency")) {
            (Some(Value::Number(amount)), Some(Value::String(currency))) => {
                match amount.as_f64() {
                    // 400000, not 400000.0: the amount as a person writes it.
                    Some(a) if a.fract() == 0.0 && a.abs() < 1e15 => format!("{a:.0} {currency}"),
                    _ => format!("{amount} {currency}"),
                }
            }
            _ => normalized.to_string(),
        },
        other => other.to_string(),
    }
}

/// The evidence cell: where the value came from (as the summary's report
/// cites it) and the source text.
pub fn evidence_text(evidence: &Evidence) -> String {
    let mut text = format!("[{}] {}", cite(evidence), evidence.quote);
    if let Some(ocr) = evidence.ocr {
        text.push_str(&format!(" (OCR, confidence {:.0})", ocr.confidence));
    }
    text
}

/// The heading of the tasks sheet (and of the CSV).
pub fn task_heading() -> Vec<String> {
    let mut heading: Vec<String> = ["task_id", "state", "completed_at", "files"]
        .map(String::from)
        .to_vec();
    for (_, title) in COLUMNS {
        heading.push(title.to_string());
        heading.push(format!("{title} (normalized)"));
        heading.push(format!("{title} (evidence)"));
    }
    heading
}

/// A task's cells, in the order of [`task_heading`].
pub fn task_cells(task: &TaskRow) -> Vec<String> {
    let mut cells = vec![
        task.task_id.to_string(),
        task.state.clone(),
        task.completed_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        task.files.clone(),
    ];
    for (id, _) in COLUMNS {
        match task.field(id) {
            Some(field) => {
                cells.push(field.value.clone());
                cells.push(normal_text(&field.normalized));
                cells.push(evidence_text(&field.evidence));
            }
            None => cells.extend([String::new(), String::new(), String::new()]),
        }
    }
    cells
}

/// The tasks as CSV (UTF-8 with a byte-order mark, so that spreadsheet
/// programs read the Chinese text as UTF-8).
pub fn csv(tasks: &[TaskRow]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    out.write_record(task_heading())?;
    for task in tasks {
        out.write_record(task_cells(task))?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// Fills the spreadsheet's sheets, one call per part, then
/// [`finish`](Spreadsheet::finish) gives the bytes. The clause sheets are
/// written summary by summary, so a caller can read one summary at a time.
pub struct Spreadsheet {
    workbook: Workbook,
    rejection_rows: u32,
    scoring_rows: u32,
}

/// Sheet names.
const TASKS: &str = "tasks";
const REJECTIONS: &str = "rejections";
const SCORING: &str = "scoring";

impl Spreadsheet {
    /// A workbook with its three sheets and their headings.
    pub fn new() -> Result<Spreadsheet, XlsxError> {
        let mut workbook = Workbook::new();
        let bold = Format::new().set_bold();
        for (name, heading) in [
            (TASKS, task_heading()),
            (
                REJECTIONS,
                ["task_id", "project", "kind", "clause", "evidence"]
                    .map(String::from)
                    .to_vec(),
            ),
            (
                SCORING,
                [
                    "task_id",
                    "project",
                    "group",
                    "item",
                    "points",
                    "points_value",
                    "evidence",
                ]
                .map(String::from)
                .to_vec(),
            ),
        ] {
            let sheet = workbook.add_worksheet();
            sheet.set_name(name)?;
            write_row(sheet, 0, &heading, Some(&bold))?;
            sheet.set_freeze_panes(1, 0)?;
        }
        Ok(Spreadsheet {
            workbook,
            rejection_rows: 0,
            scoring_rows: 0,
        })
    }

    /// The tasks sheet: one row per task.
    pub fn tasks(&mut self, tasks: &[TaskRow]) -> Result<(), XlsxError> {
        let sheet = self.workbook.worksheet_from_name(TASKS)?;
        for (n, task) in tasks.iter().enumerate() {
            write_row(sheet, n as u32 + 1, &task_cells(task), None)?;
        }
        Ok(())
    }

    /// One summary's rejection clauses and scoring items.
    pub fn clauses(&mut self, task: &TaskSummary<'_>) -> Result<(), XlsxError> {
        let id = task.task_id.to_string();
        let project = task.project.unwrap_or_default().to_string();
        let sheet = self.workbook.worksheet_from_name(REJECTIONS)?;
        for rejection in &task.summary.rejections {
            self.rejection_rows += 1;
            let cells = [
                id.clone(),
                project.clone(),
                rejection.kind.clone(),
                rejection.text.clone(),
                evidence_text(&rejection.evidence),
            ];
            write_row(sheet, self.rejection_rows, &cells, None)?;
        }
        let sheet = self.workbook.worksheet_from_name(SCORING)?;
        for item in &task.summary.scoring {
            self.scoring_rows += 1;
            let row = self.scoring_rows;
            let cells = [
                id.clone(),
                project.clone(),
                item.group.clone().unwrap_or_default(),
                item.name.clone(),
                item.points.clone(),
            ];
            write_row(sheet, row, &cells, None)?;
            if let Some(value) = item.points_value {
                sheet.write_number(row, 5, value)?;
            }
            sheet.write_string(row, 6, cell_text(&evidence_text(&item.evidence)))?;
        }
        Ok(())
    }

    /// Rows written to the clause sheets so far (rejections, scoring).
    pub fn clause_rows(&self) -> (u32, u32) {
        (self.rejection_rows, self.scoring_rows)
    }

    /// The workbook's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, XlsxError> {
        self.workbook.save_to_buffer()
    }
}

/// Excel's limit on the characters of a cell.
const CELL_MAX_CHARS: usize = 32_767;

/// A cell's text within Excel's limit: a longer one is cut, and says so
/// with its whole length, rather than failing the workbook.
fn cell_text(text: &str) -> std::borrow::Cow<'_, str> {
    let chars = text.chars().count();
    if chars <= CELL_MAX_CHARS {
        return text.into();
    }
    let note = format!(" … [cut: {chars} characters in all, see the summary]");
    let keep: String = text
        .chars()
        .take(CELL_MAX_CHARS - note.chars().count())
        .collect();
    (keep + &note).into()
}

fn write_row(
    sheet: &mut Worksheet,
    row: u32,
    cells: &[String],
    format: Option<&Format>,
) -> Result<(), XlsxError> {
    for (col, cell) in cells.iter().enumerate() {
        // An empty cell stays blank: absent is not "".
        if cell.is_empty() {
            continue;
        }
        let cell = cell_text(cell);
        match format {
            Some(format) => sheet.write_string_with_format(row, col as u16, cell, format)?,
            None => sheet.write_string(row, col as u16, cell)?,
        };
    }
    Ok(())
}

/// The time fields that become calendar events, with the event's title.
pub const CALENDAR_FIELDS: &[(&str, &str)] = &[
    ("deadline_bid", "投标截止 Bid deadline"),
    ("opening_time", "开标 Bid opening"),
];

/// How long a calendar event lasts: a deadline is a moment, but calendar
/// applications show a zero-length event poorly.
const EVENT_LENGTH: Duration = Duration::minutes(30);

/// The calendar of the done tasks' deadlines and openings: one event per
/// task and time field that has an absolute time (RFC 3339 normal form). A
/// relative time ("开标前3个工作日") has none, and gets no event. Times are
/// written in UTC, converted from the document's stated offset, so no
/// calendar needs a time-zone definition to place them. The UID is the task
/// and the field, so a calendar that reads the feed again updates its
/// events instead of adding copies. `task_url` gives each task's link.
pub fn calendar(tasks: &[TaskRow], task_url: impl Fn(Uuid) -> String) -> String {
    let mut calendar = Calendar::new();
    calendar.name("tenderflow: bid deadlines and openings");
    for task in tasks {
        let Some(row) = &task.row else { continue };
        let project = row.fields.get("project").map(|f| f.value.as_str());
        let number = row.fields.get("tender_no").map(|f| f.value.as_str());
        let url = task_url(task.task_id);
        for (field, title) in CALENDAR_FIELDS {
            let Some(at) = row.time(field) else { continue };
            let Some(value) = row.fields.get(*field) else {
                continue;
            };
            let start = at.to_utc();
            let mut description = format!("{}: {}\n", field, value.value);
            if let Some(number) = number {
                description.push_str(&format!("tender_no: {number}\n"));
            }
            description.push_str(&format!("evidence: {}\n", evidence_text(&value.evidence)));
            description.push_str(&url);
            let place = match *field {
                "opening_time" => row.fields.get("opening_place"),
                _ => row
                    .fields
                    .get("submission_place")
                    .or_else(|| row.fields.get("opening_place")),
            };
            let mut event = icalendar::Event::new();
            event
                .uid(&format!("{}-{}@tenderflow", task.task_id, field))
                .summary(&format!(
                    "{title}: {}",
                    project.unwrap_or("(no project name)")
                ))
                .description(&description)
                .starts(start)
                .ends(start + EVENT_LENGTH)
                .status(EventStatus::Confirmed)
                .url(&url);
            if let Some(stamp) = task.completed_at {
                event.timestamp(stamp);
            }
            if let Some(place) = place {
                event.location(&place.value);
            }
            calendar.push(event.done());
        }
    }
    calendar.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_past_excels_limit_is_cut_and_says_so() {
        let short = "投标人须具备市政公用工程施工总承包贰级及以上资质";
        assert_eq!(cell_text(short), short);
        let long = "资".repeat(40_000);
        let cut = cell_text(&long);
        assert_eq!(cut.chars().count(), CELL_MAX_CHARS);
        assert!(cut.ends_with("[cut: 40000 characters in all, see the summary]"));
        let mut book = Spreadsheet::new().unwrap();
        let summary = Summary {
            rejections: vec![crate::summary::Rejection {
                text: long,
                kind: "explicit".into(),
                evidence: Evidence {
                    section: "第三章".into(),
                    page: Some(2),
                    quote: "否决".into(),
                    document: 1,
                    ocr: None,
                },
            }],
            ..Summary::default()
        };
        let task = TaskSummary {
            task_id: Uuid::now_v7(),
            project: None,
            summary: &summary,
        };
        book.clauses(&task).unwrap();
        assert!(!book.finish().unwrap().is_empty());
    }

    #[test]
    fn normal_forms_and_evidence_read_as_the_report_cites_them() {
        assert_eq!(
            normal_text(&serde_json::json!({"amount": 400000.0, "currency": "CNY"})),
            "400000 CNY"
        );
        assert_eq!(
            normal_text(&serde_json::json!({"amount": 0.03, "currency": "CNY"})),
            "0.03 CNY"
        );
        assert_eq!(normal_text(&Value::Null), "");
        assert_eq!(
            normal_text(&"2027-03-18T09:30:00+08:00".into()),
            "2027-03-18T09:30:00+08:00"
        );
        let evidence = Evidence {
            section: "第二章 投标人须知前附表".into(),
            page: Some(4),
            quote: "投标保证金：人民币肆拾万元整".into(),
            document: 1,
            ocr: None,
        };
        assert_eq!(
            evidence_text(&evidence),
            "[第二章 投标人须知前附表, p. 4, amendment 1] 投标保证金：人民币肆拾万元整"
        );
    }
}
