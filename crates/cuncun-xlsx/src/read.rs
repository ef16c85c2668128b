//! Reading an uploaded workbook into rows of text keyed by column.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use calamine::{DataRef, Reader, Xlsx, XlsxError};

use crate::sheet::{Column, ColumnKind};
use crate::values::{
    clean, code_from_f64, code_from_text, date_from_serial, header_norm, number_text,
};
use crate::{Message, RowError, SheetError};

/// Uploads larger than this are refused before unzipping (a county list is well under 5 MB).
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;
/// Data rows per sheet.
pub const MAX_DATA_ROWS: usize = 100_000;
/// Non-empty cells read from one sheet; bounds memory for a small file that unzips to a lot.
pub const MAX_CELLS: usize = 2_000_000;
/// The header must be within this many rows from the top (room for a title above it).
const HEADER_SCAN_ROWS: u32 = 20;
/// Sheets looked at when choosing the data sheet.
const MAX_SHEETS: usize = 20;
/// The column our error report appends to its annotated copy; ignored on upload so a corrected
/// report can be imported as it is.
pub(crate) const REPORT_COLUMN_KEY: &str = "_errors";

/// One data row: the Excel row number (1-based, header included, as Excel shows it) and the
/// text of each known column present in the file ("" for an empty cell).
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    pub row_number: u32,
    pub values: HashMap<&'static str, String>,
    /// Cells that could not be read faithfully: a code Excel stored as a rounded number, a
    /// formula error. Validators should not judge these cells again.
    pub errors: Vec<RowError>,
}

impl RawRow {
    /// The cell's text, "" when empty or when the column is absent from the file.
    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }
}

/// A cell as stored, before we know which column it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Num(f64),
    Int(i64),
    Bool(bool),
    /// A date serial in a date-formatted cell.
    Date(f64),
    DateIso(String),
    Err(String),
}

impl Val {
    fn plain_text(&self, is_1904: bool) -> String {
        match self {
            Val::Text(s) | Val::DateIso(s) | Val::Err(s) => s.clone(),
            Val::Num(v) => number_text(*v),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Val::Date(v) => date_from_serial(*v, is_1904).unwrap_or_else(|| number_text(*v)),
        }
    }
}

/// The non-empty cells of one sheet, by absolute (0-based) row then column.
#[derive(Debug, Default)]
pub(crate) struct Grid {
    pub rows: BTreeMap<u32, BTreeMap<u32, Val>>,
    pub is_1904: bool,
}

/// Column names a header cell is matched against.
pub(crate) struct Names<'a> {
    pub key: &'a str,
    pub zh: &'a str,
    pub en: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderMatch {
    Known(usize),
    /// Our error report's annotation column.
    Ignored,
    Unknown,
}

pub(crate) fn match_header(text: &str, names: &[Names<'_>]) -> HeaderMatch {
    let n = header_norm(text);
    if n.is_empty() {
        return HeaderMatch::Unknown;
    }
    let by_key = |k: &str| names.iter().position(|c| header_norm(c.key) == k);
    let by_label = |l: &str| {
        names
            .iter()
            .position(|c| header_norm(c.zh) == l || (!c.en.is_empty() && header_norm(c.en) == l))
    };
    // "label (key)": the key decides, so an edited label still maps; the label is the fallback.
    if let (Some(p), true) = (n.rfind('('), n.ends_with(')')) {
        let (label, key) = (&n[..p], &n[p + 1..n.len() - 1]);
        if key == REPORT_COLUMN_KEY {
            return HeaderMatch::Ignored;
        }
        if let Some(i) = by_key(key).or_else(|| by_label(label)) {
            return HeaderMatch::Known(i);
        }
    }
    if n == REPORT_COLUMN_KEY {
        return HeaderMatch::Ignored;
    }
    by_key(&n)
        .or_else(|| by_label(&n))
        .map_or(HeaderMatch::Unknown, HeaderMatch::Known)
}

/// Column letters as Excel shows them: 0 → A, 26 → AA.
pub(crate) fn col_letter(mut c: u32) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (c % 26) as u8);
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

/// Third-party parsers on an uploaded file must not take the request down with them: a panic
/// inside calamine becomes a "not a valid file" error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, SheetError>) -> Result<T, SheetError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(SheetError::NotXlsx(
            "the reader failed on the file's structure".into(),
        ))
    })
}

pub(crate) fn open(bytes: &[u8]) -> Result<Xlsx<Cursor<&[u8]>>, SheetError> {
    if bytes.is_empty() {
        return Err(SheetError::Empty);
    }
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(SheetError::TooLarge {
            zh: format!(
                "文件 {} MB，上限 {} MB",
                bytes.len() >> 20,
                MAX_INPUT_BYTES >> 20
            ),
            en: format!(
                "{} MB, the limit is {} MB",
                bytes.len() >> 20,
                MAX_INPUT_BYTES >> 20
            ),
        });
    }
    // OLE2 compound file: an Excel 97-2003 .xls, or an .xlsx with a password.
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(SheetError::LegacyOrEncrypted);
    }
    if !bytes.starts_with(b"PK") {
        return Err(SheetError::NotXlsx("not a zip archive".into()));
    }
    // Sizes, counts and ranges the file declares are bounded before calamine allocates for them.
    crate::package::check(bytes)?;
    Xlsx::new(Cursor::new(bytes)).map_err(|e| match e {
        XlsxError::Password => SheetError::LegacyOrEncrypted,
        e => SheetError::NotXlsx(e.to_string()),
    })
}

/// Reads the non-empty cells of `sheet`; with `only_top`, just the rows where a header may be.
pub(crate) fn read_grid(
    wb: &mut Xlsx<Cursor<&[u8]>>,
    sheet: &str,
    only_top: bool,
) -> Result<Grid, SheetError> {
    let is_1904 = wb.has_1904_epoch();
    let mut reader = wb
        .worksheet_cells_reader(sheet)
        .map_err(|e| SheetError::NotXlsx(e.to_string()))?;
    let mut grid = Grid {
        rows: BTreeMap::new(),
        is_1904,
    };
    let mut cells = 0usize;
    while let Some(cell) = reader
        .next_cell()
        .map_err(|e| SheetError::NotXlsx(e.to_string()))?
    {
        let (r, c) = cell.get_position();
        if only_top && r >= HEADER_SCAN_ROWS {
            break;
        }
        let v = match cell.get_value() {
            DataRef::Empty => continue,
            DataRef::String(s) => Val::Text(s.clone()),
            DataRef::SharedString(s) => Val::Text((*s).to_string()),
            DataRef::Float(f) => Val::Num(*f),
            DataRef::Int(i) => Val::Int(*i),
            DataRef::Bool(b) => Val::Bool(*b),
            DataRef::DateTime(d) if d.is_datetime() => Val::Date(d.as_f64()),
            DataRef::DateTime(d) => Val::Num(d.as_f64()),
            DataRef::DateTimeIso(s) => Val::DateIso(s.clone()),
            DataRef::DurationIso(s) => Val::Text(s.clone()),
            DataRef::Error(e) => Val::Err(e.to_string()),
        };
        if matches!(&v, Val::Text(s) if clean(s).is_empty()) {
            continue;
        }
        cells += 1;
        if cells > MAX_CELLS {
            return Err(SheetError::TooLarge {
                zh: format!("工作表「{sheet}」超过 {MAX_CELLS} 个单元格"),
                en: format!("sheet {sheet:?} has more than {MAX_CELLS} cells"),
            });
        }
        grid.rows.entry(r).or_default().insert(c, v);
    }
    Ok(grid)
}

/// A header candidate: its absolute row, each non-empty cell's column, match and text, and how
/// many distinct columns matched.
pub(crate) struct Header {
    pub row: u32,
    pub cells: Vec<(u32, HeaderMatch, String)>,
    pub matched: usize,
}

/// The row within the first [`HEADER_SCAN_ROWS`] that matches the most distinct columns (the
/// first such row wins).
pub(crate) fn find_header(grid: &Grid, names: &[Names<'_>]) -> Option<Header> {
    let mut best: Option<Header> = None;
    for (&r, cells) in grid.rows.range(..HEADER_SCAN_ROWS) {
        let matched: Vec<(u32, HeaderMatch, String)> = cells
            .iter()
            .map(|(&c, v)| {
                let text = clean(&v.plain_text(grid.is_1904));
                let m = match v {
                    Val::Text(_) => match_header(&text, names),
                    _ => HeaderMatch::Unknown,
                };
                (c, m, text)
            })
            .collect();
        let mut distinct: Vec<usize> = matched
            .iter()
            .filter_map(|(_, m, _)| {
                if let HeaderMatch::Known(i) = m {
                    Some(*i)
                } else {
                    None
                }
            })
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        let n = distinct.len();
        if n > 0 && best.as_ref().is_none_or(|b| n > b.matched) {
            best = Some(Header {
                row: r,
                cells: matched,
                matched: n,
            });
        }
    }
    best
}

fn names_of(columns: &[Column]) -> Vec<Names<'static>> {
    columns
        .iter()
        .map(|c| Names {
            key: c.key,
            zh: c.zh,
            en: c.en,
        })
        .collect()
}

/// Opens the workbook and returns the sheet whose header matches `names` best (ties: the
/// earlier sheet), read in full; with `or_first`, the first sheet when none matches.
pub(crate) fn best_sheet(
    bytes: &[u8],
    names: &[Names<'_>],
    or_first: bool,
) -> Result<Option<(String, Grid)>, SheetError> {
    let mut wb = open(bytes)?;
    let sheets = wb.sheet_names();
    let mut best: Option<(usize, &String)> = None;
    let mut first_err = None;
    for name in sheets.iter().take(MAX_SHEETS) {
        // A sheet we can't read (a chart sheet, a damaged part) must not hide a good one.
        let top = match read_grid(&mut wb, name, true) {
            Ok(t) => t,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        if let Some(h) = find_header(&top, names)
            && best.as_ref().is_none_or(|b| h.matched > b.0)
        {
            best = Some((h.matched, name));
        }
    }
    let chosen = match (best, or_first, first_err) {
        (Some((_, name)), ..) => name,
        (None, true, _) if !sheets.is_empty() => &sheets[0],
        (None, _, Some(e)) => return Err(e),
        (None, ..) => return Ok(None),
    };
    let grid = read_grid(&mut wb, chosen, false)?;
    Ok(Some((chosen.clone(), grid)))
}

/// Reads the data rows of an uploaded .xlsx. See the crate docs for what is accepted; any
/// problem with the header (missing required columns, unknown or repeated columns) is one
/// [`SheetError::Columns`] listing all of them.
pub fn read_rows(bytes: &[u8], columns: &[Column]) -> Result<Vec<RawRow>, SheetError> {
    guarded(|| read_rows_inner(bytes, columns))
}

fn read_rows_inner(bytes: &[u8], columns: &[Column]) -> Result<Vec<RawRow>, SheetError> {
    let names = names_of(columns);
    let expected = || {
        columns
            .iter()
            .map(Column::header)
            .collect::<Vec<_>>()
            .join("、")
    };
    let Some((_, grid)) = best_sheet(bytes, &names, false)? else {
        return Err(SheetError::NoHeader {
            expected: expected(),
        });
    };
    let Some(Header {
        row: header_row,
        cells: header,
        ..
    }) = find_header(&grid, &names)
    else {
        return Err(SheetError::NoHeader {
            expected: expected(),
        });
    };
    let excel_header_row = header_row + 1;

    // Map sheet columns to our columns and collect every header problem at once.
    let mut problems = Vec::new();
    let mut by_col: BTreeMap<u32, usize> = BTreeMap::new();
    let mut seen: HashMap<usize, u32> = HashMap::new();
    for (c, m, text) in &header {
        match m {
            HeaderMatch::Known(i) => {
                let col = &columns[*i];
                if let Some(first) = seen.get(i) {
                    problems.push(RowError::new(
                        excel_header_row,
                        col.key,
                        col.zh,
                        text,
                        Message::new(
                            format!(
                                "列「{}」出现了两次（第 {} 列和第 {} 列），请只保留一列",
                                col.zh,
                                col_letter(*first),
                                col_letter(*c)
                            ),
                            format!(
                                "column {} appears twice (columns {} and {}); keep one",
                                col.key,
                                col_letter(*first),
                                col_letter(*c)
                            ),
                        ),
                    ));
                } else {
                    seen.insert(*i, *c);
                    by_col.insert(*c, *i);
                }
            }
            HeaderMatch::Ignored => {}
            HeaderMatch::Unknown => problems.push(RowError::new(
                excel_header_row,
                "",
                text,
                text,
                Message::new(
                    format!(
                        "第 {} 列「{text}」不是本表的列；可用的列：{}",
                        col_letter(*c),
                        expected()
                    ),
                    format!(
                        "column {} {text:?} is not a column of this sheet; known columns: {}",
                        col_letter(*c),
                        columns.iter().map(|c| c.key).collect::<Vec<_>>().join(", ")
                    ),
                ),
            )),
        }
    }
    // Data under a blank header would be silently dropped; say so instead.
    let header_cols: Vec<u32> = header.iter().map(|(c, ..)| *c).collect();
    let mut headless: BTreeMap<u32, u32> = BTreeMap::new();
    for (&r, cells) in grid.rows.range(header_row + 1..) {
        for &c in cells.keys() {
            if !header_cols.contains(&c) {
                headless.entry(c).or_insert(r + 1);
            }
        }
    }
    for (c, first_row) in headless {
        problems.push(RowError::new(
            excel_header_row,
            "",
            &format!("第 {} 列", col_letter(c)),
            "",
            Message::new(
                format!(
                    "第 {} 列有数据（如第 {first_row} 行）但没有表头，请补上列名或删除该列",
                    col_letter(c)
                ),
                format!(
                    "column {} has data (e.g. row {first_row}) but no header; name it or delete it",
                    col_letter(c)
                ),
            ),
        ));
    }
    for (i, col) in columns.iter().enumerate() {
        if col.required && !seen.contains_key(&i) {
            problems.push(RowError::new(
                excel_header_row,
                col.key,
                col.zh,
                "",
                Message::new(
                    format!("缺少必填列「{}」", col.header()),
                    format!("required column {} ({}) is missing", col.key, col.en),
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SheetError::Columns(problems));
    }

    let mut out = Vec::new();
    for (&r, cells) in grid.rows.range(header_row + 1..) {
        let mut raw = RawRow {
            row_number: r + 1,
            values: HashMap::new(),
            errors: Vec::new(),
        };
        let mut header_like = true;
        for (&c, v) in cells {
            let Some(&i) = by_col.get(&c) else { continue };
            let col = &columns[i];
            let (text, err) = convert(v, col.kind, grid.is_1904);
            let text = clean(&text);
            if text.is_empty() && err.is_none() {
                continue;
            }
            header_like &=
                matches!(v, Val::Text(_)) && match_header(&text, &names) == HeaderMatch::Known(i);
            if let Some(m) = err {
                raw.errors
                    .push(RowError::new(raw.row_number, col.key, col.zh, &text, m));
            }
            raw.values.insert(col.key, text);
        }
        if raw.values.is_empty() {
            continue;
        }
        // A second header row (labels then keys) is not data.
        if header_like && r == header_row + 1 {
            continue;
        }
        out.push(raw);
        if out.len() > MAX_DATA_ROWS {
            return Err(SheetError::TooLarge {
                zh: format!("超过 {MAX_DATA_ROWS} 行数据，请分批导入"),
                en: format!("more than {MAX_DATA_ROWS} data rows; import in batches"),
            });
        }
    }
    Ok(out)
}

/// A stored cell as the text its column expects, plus a problem when that text can't be
/// faithful.
fn convert(v: &Val, kind: ColumnKind, is_1904: bool) -> (String, Option<Message>) {
    if let Val::Err(e) = v {
        return (
            e.clone(),
            Some(Message::new(
                format!("单元格是错误值 {e}（公式出错），请填写实际内容"),
                format!(
                    "the cell holds the error value {e} (a broken formula); enter the actual value"
                ),
            )),
        );
    }
    match (kind, v) {
        (ColumnKind::Code, Val::Num(f)) => match code_from_f64(*f) {
            Ok(s) => (s, None),
            Err(m) => (number_text(*f), Some(m)),
        },
        (ColumnKind::Code, Val::Text(s)) => match code_from_text(&clean(s)) {
            Ok(s) => (s, None),
            Err(m) => (s.clone(), Some(m)),
        },
        // A serial stored without a date format is still a date in a date column.
        (ColumnKind::Date, Val::Num(f)) => (
            date_from_serial(*f, is_1904).unwrap_or_else(|| number_text(*f)),
            None,
        ),
        (ColumnKind::Date, Val::DateIso(s)) => (s.chars().take(10).collect(), None),
        (_, v) => (v.plain_text(is_1904), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters() {
        assert_eq!(col_letter(0), "A");
        assert_eq!(col_letter(25), "Z");
        assert_eq!(col_letter(26), "AA");
        assert_eq!(col_letter(701), "ZZ");
        assert_eq!(col_letter(702), "AAA");
    }

    #[test]
    fn header_forms() {
        let names = [
            Names {
                key: "region_code",
                zh: "区划代码",
                en: "Region code",
            },
            Names {
                key: "name",
                zh: "名称",
                en: "Name",
            },
        ];
        for t in [
            "region_code",
            "区划代码",
            "*区划代码 (region_code)",
            "区划 代码（region_code）",
            "Region Code",
            "旧标签 (region_code)",
        ] {
            assert_eq!(match_header(t, &names), HeaderMatch::Known(0), "{t}");
        }
        assert_eq!(match_header("名称（NAME）", &names), HeaderMatch::Known(1));
        assert_eq!(
            match_header("错误说明 (_errors)", &names),
            HeaderMatch::Ignored
        );
        assert_eq!(match_header("备注", &names), HeaderMatch::Unknown);
    }
}
