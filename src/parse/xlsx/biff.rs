//! A scan of an XLS workbook stream's BIFF records before calamine reads
//! it: calamine builds every sheet as a dense grid from its first to its
//! last used cell, and keeps every cell record, so a sheet with one cell at
//! A1 and one at IV65536, or a stream of millions of records for one cell,
//! would take hundreds of megabytes. Records are (type, size, data); a
//! sheet runs from its BOF record to its EOF record.

use super::super::ParseError;

/// BOF: a substream (the globals, or a sheet) begins.
const BOF: u16 = 0x0809;
/// EOF: the substream ends.
const EOF: u16 = 0x000A;

/// The cells a record holds, as (row, first column, last column), for the
/// records calamine keeps as cells (blank cells it skips).
fn cells_of(kind: u16, data: &[u8]) -> Option<(u16, u16, u16)> {
    let u16_at = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    match kind {
        // NUMBER, LABEL, RSTRING, BOOLERR, RK, LABELSST, FORMULA.
        0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 => {
            let (row, col) = (u16_at(0)?, u16_at(2)?);
            Some((row, col, col))
        }
        // MULRK: row, first column, 6-byte entries, last column.
        0x00BD => {
            let last = u16_at(data.len().checked_sub(2)?)?;
            let (row, first) = (u16_at(0)?, u16_at(2)?);
            (first <= last).then_some((row, first, last))
        }
        _ => None,
    }
}

/// The used area of one sheet.
#[derive(Default)]
struct Area {
    rows: Option<(u16, u16)>,
    cols: Option<(u16, u16)>,
}

impl Area {
    fn add(&mut self, row: u16, first: u16, last: u16) {
        let widen = |span: Option<(u16, u16)>, lo: u16, hi: u16| {
            Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
        };
        self.rows = widen(self.rows, row, row);
        self.cols = widen(self.cols, first, last);
    }

    fn cells(&self) -> u64 {
        match (self.rows, self.cols) {
            (Some((r0, r1)), Some((c0, c1))) => (u64::from(r1 - r0) + 1) * (u64::from(c1 - c0) + 1),
            _ => 0,
        }
    }
}

/// Refuses a workbook whose sheets' used areas, or whose cell records,
/// come to more than `max_cells`. A record cut short ends the scan:
/// calamine reports the broken stream itself.
pub(super) fn check_size(stream: &[u8], max_cells: usize) -> Result<(), ParseError> {
    let max = max_cells as u64;
    let mut total_area = 0u64;
    let mut records = 0u64;
    let mut area = Area::default();
    let mut at = 0usize;
    while let Some(head) = stream.get(at..at + 4) {
        let kind = u16::from_le_bytes([head[0], head[1]]);
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let Some(data) = stream.get(at + 4..at + 4 + size) else {
            break;
        };
        at += 4 + size;
        match kind {
            BOF => area = Area::default(),
            EOF => {
                total_area += area.cells();
                area = Area::default();
            }
            _ => {
                if let Some((row, first, last)) = cells_of(kind, data) {
                    area.add(row, first, last);
                    records += u64::from(last - first) + 1;
                }
            }
        }
        if records > max || total_area + area.cells() > max {
            return Err(ParseError::too_large(format!(
                "the workbook's sheets span more than {max_cells} cells"
            )));
        }
    }
    Ok(())
}

/// DIMENSIONS: a sheet's used range as the writer states it.
const DIMENSIONS: u16 = 0x0200;

/// Blanks every DIMENSIONS record. calamine reserves room for the cells
/// of the range a DIMENSIONS record states before it reads one (and
/// computes its size with a subtraction that wraps when the range is
/// inverted), so a lying record asks for terabytes and aborts the
/// process, which no `catch_unwind` can stop. The range is only that
/// hint: calamine takes the sheet's extent from its cells, which
/// [`check_size`] has bounded.
pub(super) fn blank_dimensions(stream: &mut [u8]) {
    let mut at = 0usize;
    while let Some(head) = stream.get(at..at + 4) {
        let kind = u16::from_le_bytes([head[0], head[1]]);
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let Some(data) = stream.get_mut(at + 4..at + 4 + size) else {
            break;
        };
        if kind == DIMENSIONS {
            data.fill(0);
        }
        at += 4 + size;
    }
}

/// A BIFF record.
#[cfg(test)]
pub(in super::super) fn record(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_le_bytes().to_vec();
    out.extend((data.len() as u16).to_le_bytes());
    out.extend(data);
    out
}

/// A NUMBER record at (row, col).
#[cfg(test)]
pub(in super::super) fn number(row: u16, col: u16, value: f64) -> Vec<u8> {
    let mut data = row.to_le_bytes().to_vec();
    data.extend(col.to_le_bytes());
    data.extend([0x0F, 0x00]);
    data.extend(value.to_le_bytes());
    record(0x0203, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(cells: &[Vec<u8>]) -> Vec<u8> {
        let mut out = record(BOF, &[0; 16]);
        for c in cells {
            out.extend(c);
        }
        out.extend(record(EOF, &[]));
        out
    }

    #[test]
    fn far_apart_cells_are_refused_before_calamine() {
        let small = sheet(&[number(0, 0, 1.0), number(9, 3, 2.0)]);
        assert!(check_size(&small, 40).is_ok());
        assert_eq!(check_size(&small, 39).unwrap_err().kind, "too_large");
        let far = sheet(&[number(0, 0, 1.0), number(65535, 255, 2.0)]);
        assert_eq!(check_size(&far, 2_000_000).unwrap_err().kind, "too_large");
    }

    #[test]
    fn dimensions_records_are_blanked_and_nothing_else() {
        let mut dims = 0u32.to_le_bytes().to_vec();
        dims.extend(u32::MAX.to_le_bytes());
        dims.extend([0, 0, 0xFF, 0, 0, 0]);
        let mut stream = sheet(&[record(DIMENSIONS, &dims), number(3, 1, 7.0)]);
        let before = stream.clone();
        blank_dimensions(&mut stream);
        assert_ne!(stream, before);
        let at = 4 + 16;
        assert_eq!(&stream[at..at + 4], &[0x00, 0x02, 14, 0]);
        assert!(stream[at + 4..at + 18].iter().all(|b| *b == 0));
        assert_eq!(stream[at + 18..], before[at + 18..]);
        // A cut record ends the walk.
        let mut cut = before[..at + 10].to_vec();
        blank_dimensions(&mut cut);
        assert_eq!(cut, before[..at + 10]);
    }

    #[test]
    fn many_records_for_one_cell_are_refused() {
        let same: Vec<Vec<u8>> = (0..100).map(|_| number(0, 0, 1.0)).collect();
        assert!(check_size(&sheet(&same), 100).is_ok());
        assert_eq!(check_size(&sheet(&same), 99).unwrap_err().kind, "too_large");
    }

    #[test]
    fn sheets_add_up_and_a_cut_record_ends_the_scan() {
        let mut two = sheet(&[number(0, 0, 1.0), number(4, 0, 1.0)]);
        two.extend(sheet(&[number(0, 0, 1.0), number(4, 0, 1.0)]));
        assert!(check_size(&two, 10).is_ok());
        assert!(check_size(&two, 9).is_err());
        assert!(check_size(&two[..two.len() - 3], 10).is_ok());
        // MULRK: columns 2 to 201 of one row.
        let mut mulrk = 7u16.to_le_bytes().to_vec();
        mulrk.extend(2u16.to_le_bytes());
        mulrk.extend(vec![0u8; 6 * 200]);
        mulrk.extend(201u16.to_le_bytes());
        assert_eq!(
            check_size(&sheet(&[record(0x00BD, &mulrk)]), 199)
                .unwrap_err()
                .kind,
            "too_large"
        );
    }
}
