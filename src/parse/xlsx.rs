//! XLSX and XLS: each sheet as a heading (its name) and a table (its used
//! cells), both through calamine.
//!
//! XLSX cells are streamed with calamine's cell reader rather than loaded
//! as a dense range: a hostile sheet with one cell at A1 and one at
//! XFD1048576 would otherwise ask for billions of cells. calamine reads an
//! XLS (BIFF8, or BIFF5 in a `Book` stream; WPS Spreadsheets' `.et` is the
//! same) only as dense ranges, so its records are scanned first
//! ([`biff`]) and a workbook whose sheets would be too large is refused
//! before calamine sees it; and calamine is handed a fresh compound file
//! holding only the workbook stream, read with `cfb` under the budget, so
//! it never walks a hostile file's sector chains itself.

use std::collections::BTreeMap;
use std::io::Cursor;

use calamine::{Data, Reader, Xls, XlsError, Xlsx};

use super::ole::{self, Ole};
use super::zipread::BoundedZip;
use super::{ParseError, ParseLimits, guard};
use crate::document::{Block, ParsedDocument};

pub(crate) mod biff;

/// Most cells read from one workbook.
const MAX_CELLS: usize = 2_000_000;
/// Widest column span a sheet may have.
const MAX_COLUMNS: u32 = 1024;

/// Parses XLSX bytes.
pub fn parse_xlsx(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    // Decompress every entry once under the budget before calamine reads
    // them: declared sizes can lie, the bounded reader cannot.
    BoundedZip::open(bytes, limits, "XLSX")?.check_all_entries()?;
    guard("XLSX", || read_workbook(bytes))
}

fn read_workbook(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| ParseError::corrupt(format!("unreadable XLSX workbook: {e}")))?;
    let mut sheets = Vec::new();
    let mut cells_read = 0;
    for name in book.sheet_names() {
        let rows = read_sheet(&mut book, &name, &mut cells_read)?;
        sheets.push((name, rows));
    }
    Ok(ParsedDocument::new("xlsx", sheet_blocks(sheets)))
}

/// Parses XLS (BIFF) bytes, and WPS Spreadsheets' `.et`.
pub fn parse_xls(bytes: &[u8], limits: &ParseLimits) -> Result<ParsedDocument, ParseError> {
    let mut ole = Ole::open(bytes, limits, "XLS")?;
    let (name, stream) = match ole.read_stream("Workbook")? {
        Some(stream) => ("Workbook", stream),
        None => match ole.read_stream("Book")? {
            Some(stream) => ("Book", stream),
            None => {
                return Err(ParseError::corrupt(
                    "a compound file without a Workbook stream",
                ));
            }
        },
    };
    let mut stream = stream;
    biff::check_size(&stream, MAX_CELLS)?;
    biff::blank_dimensions(&mut stream);
    let copy = ole::single_stream_file(name, &stream)?;
    drop(stream);
    guard("XLS", || read_xls(&copy))
}

fn read_xls(bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    let mut book = Xls::new(Cursor::new(bytes)).map_err(|e| match e {
        XlsError::Password => {
            ParseError::new("encrypted", "the XLS workbook is password-protected")
        }
        e => ParseError::corrupt(format!("unreadable XLS workbook: {e}")),
    })?;
    let mut sheets = Vec::new();
    for name in book.sheet_names() {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| ParseError::corrupt(format!("unreadable sheet {name}: {e}")))?;
        let (top, left) = range.start().unwrap_or_default();
        let mut grid: BTreeMap<u32, BTreeMap<u32, String>> = BTreeMap::new();
        for (row, col, value) in range.used_cells() {
            let text = value.to_string();
            if !text.trim().is_empty() {
                grid.entry(top + row as u32)
                    .or_default()
                    .insert(left + col as u32, text.trim().to_string());
            }
        }
        let rows = dense_rows(grid, &name)?;
        sheets.push((name, rows));
    }
    Ok(ParsedDocument::new("xls", sheet_blocks(sheets)))
}

/// Each sheet: its name as a heading, then its rows as a table.
fn sheet_blocks(sheets: Vec<(String, Vec<Vec<String>>)>) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (name, rows) in sheets {
        blocks.push(Block::Heading {
            level: 1,
            text: name,
            number: None,
            page: None,
        });
        if !rows.is_empty() {
            blocks.push(Block::Table {
                rows,
                header_rows: 1,
                page: None,
            });
        }
    }
    blocks
}

/// One sheet's non-empty rows, each padded to the sheet's used columns.
fn read_sheet(
    book: &mut Xlsx<Cursor<&[u8]>>,
    name: &str,
    cells_read: &mut usize,
) -> Result<Vec<Vec<String>>, ParseError> {
    let mut reader = book
        .worksheet_cells_reader(name)
        .map_err(|e| ParseError::corrupt(format!("unreadable sheet {name}: {e}")))?;
    let mut grid: BTreeMap<u32, BTreeMap<u32, String>> = BTreeMap::new();
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| ParseError::corrupt(format!("unreadable cell in sheet {name}: {e}")))?
    {
        *cells_read += 1;
        if *cells_read > MAX_CELLS {
            return Err(ParseError::too_large(format!(
                "the workbook has more than {MAX_CELLS} cells"
            )));
        }
        let (row, col) = cell.get_position();
        let text = Data::from(cell.get_value().clone()).to_string();
        if !text.trim().is_empty() {
            grid.entry(row)
                .or_default()
                .insert(col, text.trim().to_string());
        }
    }
    dense_rows(grid, name)
}

fn dense_rows(
    grid: BTreeMap<u32, BTreeMap<u32, String>>,
    name: &str,
) -> Result<Vec<Vec<String>>, ParseError> {
    let cols = grid.values().flat_map(|r| r.keys().copied());
    let (Some(first), Some(last)) = (cols.clone().min(), cols.max()) else {
        return Ok(Vec::new());
    };
    if last - first >= MAX_COLUMNS {
        return Err(ParseError::too_large(format!(
            "sheet {name} spans more than {MAX_COLUMNS} columns"
        )));
    }
    Ok(grid
        .into_values()
        .map(|cells| {
            let mut row = vec![String::new(); (last - first + 1) as usize];
            for (col, text) in cells {
                row[(col - first) as usize] = text;
            }
            row
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_the_used_columns() {
        let mut grid = BTreeMap::new();
        grid.insert(
            0,
            BTreeMap::from([(1, "Item".to_string()), (2, "Points".to_string())]),
        );
        grid.insert(3, BTreeMap::from([(2, "60".to_string())]));
        let rows = dense_rows(grid, "S").unwrap();
        assert_eq!(rows, vec![vec!["Item", "Points"], vec!["", "60"]]);
    }

    #[test]
    fn a_far_cell_is_refused_not_allocated() {
        let mut grid = BTreeMap::new();
        grid.insert(
            0,
            BTreeMap::from([(0, "a".to_string()), (16_000, "b".to_string())]),
        );
        assert_eq!(dense_rows(grid, "S").unwrap_err().kind, "too_large");
    }

    fn xlsx() -> Vec<u8> {
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="工程量清单" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
            ),
            (
                "xl/worksheets/sheet1.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>项目</t></is></c><c r="B1" t="inlineStr"><is><t>金额（万元）</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>暂列金额</t></is></c><c r="B2"><v>600</v></c></row></sheetData></worksheet>"#,
            ),
        ];
        let entries: Vec<(&str, &[u8])> = parts.iter().map(|(n, d)| (*n, d.as_bytes())).collect();
        crate::parse::zipread::test_zip(&entries)
    }

    #[test]
    fn each_sheet_is_a_heading_and_a_table() {
        let doc = parse_xlsx(&xlsx(), &ParseLimits::default()).unwrap();
        assert!(matches!(&doc.blocks[0], Block::Heading { text, .. } if text == "工程量清单"));
        let Block::Table { rows, .. } = &doc.blocks[1] else {
            panic!("expected a table: {:?}", doc.blocks);
        };
        assert_eq!(
            rows,
            &vec![vec!["项目", "金额（万元）"], vec!["暂列金额", "600"]]
        );
    }
}
