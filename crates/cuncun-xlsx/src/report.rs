//! Errors, the outcome of checking a sheet, the row-check helper concrete sheets use, and the
//! downloadable error report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::RangeInclusive;

use rust_xlsxwriter::{Color, Format, FormatBorder, Note, Workbook, Worksheet};

use crate::read::{
    Grid, HeaderMatch, Names, REPORT_COLUMN_KEY, RawRow, Val, best_sheet, find_header, guarded,
    read_rows,
};
use crate::sheet::{Column, ColumnKind, xerr};
use crate::values::{display_width, normalise_date};

/// A message in Chinese (shown to staff) and English (logs, and staff who prefer it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub zh: String,
    pub en: String,
}

impl Message {
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> Message {
        Message {
            zh: zh.into(),
            en: en.into(),
        }
    }
}
impl From<(&str, &str)> for Message {
    fn from((zh, en): (&str, &str)) -> Message {
        Message::new(zh, en)
    }
}
impl From<(String, String)> for Message {
    fn from((zh, en): (String, String)) -> Message {
        Message::new(zh, en)
    }
}
/// One text for both languages, for callers that have only one.
impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message::new(s, s)
    }
}
impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::new(s.clone(), s)
    }
}

/// A problem with one cell, one row (empty `column`), or the file (`row` 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The row number Excel shows (header included); 0 for the whole file.
    pub row: u32,
    /// The column key (`region_code`); empty for a whole row, or a column we don't know.
    pub column: String,
    /// The column's Chinese label, or the unknown header's text.
    pub label: String,
    /// The cell's text as read.
    pub value: String,
    pub message: Message,
}

impl RowError {
    pub fn new(
        row: u32,
        column: &str,
        label: &str,
        value: &str,
        message: impl Into<Message>,
    ) -> RowError {
        RowError {
            row,
            column: column.to_string(),
            label: label.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (zh, en) = (&self.message.zh, &self.message.en);
        let col_en = if self.column.is_empty() {
            &self.label
        } else {
            &self.column
        };
        match (self.row, self.label.is_empty()) {
            (0, _) => write!(f, "文件：{zh} / file: {en}"),
            (r, true) => write!(f, "第 {r} 行：{zh} / row {r}: {en}"),
            (r, false) => write!(
                f,
                "第 {r} 行「{}」：{zh} / row {r}, column {col_en}: {en}",
                self.label
            ),
        }
    }
}

impl std::error::Error for RowError {}

/// A problem with the file as a whole: nothing in it can be imported.
#[derive(Debug, Clone, PartialEq)]
pub enum SheetError {
    Empty,
    /// Not a readable .xlsx; the detail is technical (English).
    NotXlsx(String),
    /// An Excel 97-2003 .xls, or a password-protected workbook (both are OLE2 files).
    LegacyOrEncrypted,
    TooLarge {
        zh: String,
        en: String,
    },
    /// No row within the first 20 names any known column; `expected` lists the headers.
    NoHeader {
        expected: String,
    },
    /// Every header problem at once: missing required columns, unknown or repeated columns.
    Columns(Vec<RowError>),
    /// Writing a workbook failed (a bug or an over-long value, not the user's upload).
    Write(String),
}

impl SheetError {
    /// The problem in both languages (for [`SheetError::Columns`], every line joined).
    pub fn message(&self) -> Message {
        match self {
            SheetError::Empty => Message::new("文件是空的", "the file is empty"),
            SheetError::NotXlsx(detail) => Message::new(
                "不是有效的 .xlsx 文件（可能是 CSV、网页或已损坏），请用 Excel 或 WPS 另存为 .xlsx 后再上传",
                format!(
                    "not a valid .xlsx file (maybe CSV, HTML or damaged); save it as .xlsx in Excel or WPS and upload again ({detail})"
                ),
            ),
            SheetError::LegacyOrEncrypted => Message::new(
                "这是旧版 .xls 文件或设了密码的文件，请去掉密码并另存为 .xlsx 后再上传",
                "this is an old .xls file or a password-protected file; remove the password and save it as .xlsx",
            ),
            SheetError::TooLarge { zh, en } => {
                Message::new(format!("文件太大：{zh}"), format!("file too large: {en}"))
            }
            SheetError::NoHeader { expected } => Message::new(
                format!("没有找到表头，请使用下载的模板；应有的列：{expected}"),
                format!(
                    "no header row found in the first 20 rows; use the downloaded template (columns: {expected})"
                ),
            ),
            SheetError::Columns(v) => Message::new(
                v.iter()
                    .map(|e| e.message.zh.as_str())
                    .collect::<Vec<_>>()
                    .join("；"),
                v.iter()
                    .map(|e| e.message.en.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            SheetError::Write(detail) => Message::new(
                format!("生成 Excel 文件失败：{detail}"),
                format!("could not write the workbook: {detail}"),
            ),
        }
    }

    /// The problem as report lines: header problems keep their row and column, the rest are
    /// file-level (row 0).
    pub fn to_row_errors(&self) -> Vec<RowError> {
        match self {
            SheetError::Columns(v) => v.clone(),
            other => vec![RowError::new(0, "", "", "", other.message())],
        }
    }
}

impl fmt::Display for SheetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let SheetError::Columns(v) = self {
            let lines: Vec<String> = v.iter().map(ToString::to_string).collect();
            return f.write_str(&lines.join("\n"));
        }
        let m = self.message();
        write!(f, "{} / {}", m.zh, m.en)
    }
}

impl std::error::Error for SheetError {}

/// The result of checking a sheet: every row that passed and every error found.
///
/// Imports are all-or-nothing: import `valid` only when `errors` is empty, unless the user
/// explicitly chose "import valid rows". Add database-side findings (unknown region, out of
/// scope, code already registered) with [`ParseOutcome::add_error`] before deciding, so one
/// report holds everything.
#[derive(Debug, Clone)]
pub struct ParseOutcome<T> {
    /// (Excel row number, parsed row), in sheet order.
    pub valid: Vec<(u32, T)>,
    /// Sorted by row; header and file problems come first.
    pub errors: Vec<RowError>,
    /// Data rows seen (valid or not).
    pub data_rows: usize,
    labels: HashMap<&'static str, &'static str>,
    raw: HashMap<u32, HashMap<&'static str, String>>,
}

impl<T> ParseOutcome<T> {
    fn new(columns: &[Column]) -> ParseOutcome<T> {
        ParseOutcome {
            valid: Vec::new(),
            errors: Vec::new(),
            data_rows: 0,
            labels: columns.iter().map(|c| (c.key, c.zh)).collect(),
            raw: HashMap::new(),
        }
    }

    /// Records a problem the caller found (e.g. "region 500236100999 does not exist"). `column`
    /// is a column key ("" for the whole row); the label and the cell's value are filled in,
    /// and the row leaves `valid`.
    pub fn add_error(&mut self, row: u32, column: &str, message: impl Into<Message>) {
        let label = self.labels.get(column).copied().unwrap_or(column);
        let value = self
            .raw
            .get(&row)
            .and_then(|v| v.get(column))
            .map_or("", String::as_str);
        let e = RowError::new(row, column, label, value, message);
        self.valid.retain(|(r, _)| *r != row);
        let at = self.errors.partition_point(|x| x.row <= row);
        self.errors.insert(at, e);
    }

    /// True when nothing is wrong: the whole file may be imported.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Rows with at least one error.
    pub fn error_rows(&self) -> usize {
        let mut rows: Vec<u32> = self
            .errors
            .iter()
            .map(|e| e.row)
            .filter(|r| *r > 0)
            .collect();
        rows.dedup();
        rows.len()
    }

    /// The downloadable error report; pass the uploaded bytes to include an annotated copy.
    pub fn error_report(&self, original: Option<&[u8]>) -> Result<Vec<u8>, SheetError> {
        error_report(&self.errors, original)
    }
}

/// The checks for one row. Concrete sheets get one per data row from [`parse_with`]; each check
/// records at most one error per cell (the first), so one mistake gives one message.
pub struct RowCheck<'a> {
    row: &'a RawRow,
    columns: &'a [Column],
    errors: Vec<RowError>,
}

impl<'a> RowCheck<'a> {
    pub fn row_number(&self) -> u32 {
        self.row.row_number
    }

    /// The cell's text ("" when empty).
    pub fn get(&self, key: &str) -> &'a str {
        self.row.get(key)
    }

    pub fn has_error(&self, key: &str) -> bool {
        self.errors.iter().any(|e| e.column == key)
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Records an error on a cell unless that cell already has one.
    pub fn error(&mut self, key: &str, message: impl Into<Message>) {
        if self.has_error(key) {
            return;
        }
        let label = self
            .columns
            .iter()
            .find(|c| c.key == key)
            .map_or(key, |c| c.zh);
        self.errors.push(RowError::new(
            self.row.row_number,
            key,
            label,
            self.get(key),
            message,
        ));
    }

    /// Free text of at most `max_chars` characters; None (with an error) when longer or when
    /// the cell already has an error.
    pub fn text(&mut self, key: &str, max_chars: usize) -> Option<String> {
        if self.has_error(key) {
            return None;
        }
        let s = self.get(key);
        let n = s.chars().count();
        if n > max_chars {
            self.error(
                key,
                Message::new(
                    format!("不能超过 {max_chars} 个字（现在 {n} 个）"),
                    format!("at most {max_chars} characters (has {n})"),
                ),
            );
            return None;
        }
        Some(s.to_string())
    }

    /// A number within `range`; None when empty, or (with an error) when not a number or out of
    /// range.
    pub fn number(&mut self, key: &str, range: RangeInclusive<f64>) -> Option<f64> {
        let s = self.get(key);
        if s.is_empty() || self.has_error(key) {
            return None;
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && range.contains(&v) => Some(v),
            Ok(v) if v.is_finite() => {
                let (lo, hi) = (range.start(), range.end());
                self.error(
                    key,
                    Message::new(
                        format!("应在 {lo} 到 {hi} 之间，现在是 {s}"),
                        format!("must be between {lo} and {hi}, got {s}"),
                    ),
                );
                None
            }
            _ => {
                self.error(
                    key,
                    Message::new(format!("「{s}」不是数字"), format!("{s:?} is not a number")),
                );
                None
            }
        }
    }

    /// A date as "YYYY-MM-DD"; None when empty, or (with an error) when not a date.
    pub fn date(&mut self, key: &str) -> Option<String> {
        let s = self.get(key);
        if s.is_empty() || self.has_error(key) {
            return None;
        }
        match normalise_date(s) {
            Ok(d) => Some(d),
            Err(m) => {
                self.error(key, m);
                None
            }
        }
    }

    /// The key of an enumeration value given as its key, Chinese label or English name
    /// (spaces and case ignored); None when empty, or (with an error) when not one of them.
    pub fn choice(&mut self, key: &str) -> Option<&'static str> {
        let s = self.get(key);
        if s.is_empty() || self.has_error(key) {
            return None;
        }
        let Some(ColumnKind::Enum(choices)) =
            self.columns.iter().find(|c| c.key == key).map(|c| c.kind)
        else {
            return None;
        };
        let norm = |x: &str| {
            x.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_lowercase()
        };
        let n = norm(s);
        if let Some((k, _)) = choices.iter().find(|(k, zh)| norm(k) == n || norm(zh) == n) {
            return Some(k);
        }
        let zh_list = choices
            .iter()
            .map(|(_, zh)| *zh)
            .collect::<Vec<_>>()
            .join("、");
        let key_list = choices
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ");
        self.error(
            key,
            Message::new(
                format!("「{s}」不是可选值；可选：{zh_list}（也可填对应的英文键）"),
                format!("{s:?} is not allowed; one of: {key_list} (or the Chinese labels)"),
            ),
        );
        None
    }
}

/// Reads `bytes` and runs `check` on every data row, collecting every error; the reusable core
/// of each concrete sheet. Empty required cells are reported before `check` runs, and `check`
/// returns the parsed row (it is kept only when the row has no errors). `check` sees the rows in
/// sheet order, so it can keep state for duplicate detection.
pub fn parse_with<T>(
    bytes: &[u8],
    columns: &[Column],
    mut check: impl FnMut(&mut RowCheck<'_>) -> Option<T>,
) -> ParseOutcome<T> {
    let mut out = ParseOutcome::new(columns);
    let rows = match read_rows(bytes, columns) {
        Ok(rows) => rows,
        Err(e) => {
            out.errors = e.to_row_errors();
            return out;
        }
    };
    if rows.is_empty() {
        out.errors.push(RowError::new(
            0,
            "",
            "",
            "",
            Message::new(
                "表中没有数据行（表头以下是空的）",
                "the sheet has no data rows below the header",
            ),
        ));
        return out;
    }
    out.data_rows = rows.len();
    for raw in &rows {
        let mut chk = RowCheck {
            row: raw,
            columns,
            errors: raw.errors.clone(),
        };
        for c in columns.iter().filter(|c| c.required) {
            if chk.get(c.key).is_empty() {
                chk.error(
                    c.key,
                    Message::new("必填，不能为空", "required, must not be empty"),
                );
            }
        }
        let parsed = check(&mut chk);
        // Errors in column order within a row read like the sheet.
        let pos = |k: &str| {
            columns
                .iter()
                .position(|c| c.key == k)
                .unwrap_or(usize::MAX)
        };
        chk.errors.sort_by_key(|e| pos(&e.column));
        match parsed {
            Some(v) if chk.errors.is_empty() => out.valid.push((raw.row_number, v)),
            None if chk.errors.is_empty() => out.errors.push(RowError::new(
                raw.row_number,
                "",
                "",
                "",
                Message::new("该行无法导入", "this row cannot be imported"),
            )),
            _ => out.errors.append(&mut chk.errors),
        }
        out.raw.insert(raw.row_number, raw.values.clone());
    }
    out
}

/// Cap on cell notes in the annotated copy; the error column carries every message anyway.
const MAX_NOTES: usize = 2_000;

/// The error report to download: sheet 错误列表 lists row, column, value and message (Chinese and
/// English); with the uploaded file, sheet 标注原表 is a copy of its data sheet with the bad
/// cells in red and an 错误说明 column, which staff can fix and upload again as it is.
pub fn error_report(errors: &[RowError], original: Option<&[u8]>) -> Result<Vec<u8>, SheetError> {
    let mut sorted: Vec<&RowError> = errors.iter().collect();
    sorted.sort_by_key(|e| e.row);
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_border(FormatBorder::Thin);
    let ws = wb.add_worksheet();
    ws.set_name("错误列表").map_err(xerr)?;
    let heads = [
        "行号 (row)",
        "列名 (label)",
        "列键 (column)",
        "单元格内容 (value)",
        "错误说明",
        "Error",
    ];
    for (j, h) in heads.iter().enumerate() {
        ws.write_string_with_format(0, j as u16, *h, &header)
            .map_err(xerr)?;
    }
    let mut widths: Vec<usize> = heads.iter().map(|h| display_width(h) + 2).collect();
    if sorted.is_empty() {
        ws.write_string(1, 0, "没有错误 / no errors")
            .map_err(xerr)?;
    }
    for (i, e) in sorted.iter().enumerate() {
        let r = u32::try_from(i + 1).map_err(|_| SheetError::Write("too many errors".into()))?;
        if e.row == 0 {
            ws.write_string(r, 0, "整个文件").map_err(xerr)?;
        } else {
            ws.write_number(r, 0, e.row).map_err(xerr)?;
        }
        let cells = [&e.label, &e.column, &e.value, &e.message.zh, &e.message.en];
        for (j, v) in cells.iter().enumerate() {
            ws.write_string(r, j as u16 + 1, truncate(v))
                .map_err(xerr)?;
            if let Some(w) = widths.get_mut(j + 1) {
                *w = (*w).max(display_width(v) + 2);
            }
        }
    }
    for (j, w) in widths.iter().enumerate() {
        ws.set_column_width(j as u16, (*w).clamp(8, 60) as f64)
            .map_err(xerr)?;
    }
    ws.set_freeze_panes(1, 0).map_err(xerr)?;
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    ws.autofilter(
        0,
        0,
        u32::try_from(sorted.len().max(1)).unwrap_or(u32::MAX),
        heads.len() as u16 - 1,
    )
    .map_err(xerr)?;

    // The annotated copy is a convenience: a file we can't read again just goes without it.
    if let Some(bytes) = original
        && let Ok(Some((_, grid))) = guarded(|| best_sheet(bytes, &error_names(&sorted), true))
    {
        annotated_copy(wb.add_worksheet(), &grid, &sorted)?;
    }
    wb.save_to_buffer().map_err(xerr)
}

/// Excel's per-cell limit is 32,767 characters.
fn truncate(s: &str) -> String {
    if s.chars().count() > 30_000 {
        s.chars().take(30_000).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

fn error_names<'a>(errors: &[&'a RowError]) -> Vec<Names<'a>> {
    let mut names: Vec<Names<'a>> = Vec::new();
    for e in errors {
        if !e.column.is_empty() && !names.iter().any(|n| n.key == e.column) {
            names.push(Names {
                key: &e.column,
                zh: &e.label,
                en: "",
            });
        }
    }
    names
}

fn annotated_copy(ws: &mut Worksheet, grid: &Grid, errors: &[&RowError]) -> Result<(), SheetError> {
    ws.set_name("标注原表").map_err(xerr)?;
    let names = error_names(errors);
    let bad = Format::new()
        .set_background_color(Color::RGB(0xFFC7CE))
        .set_font_color(Color::RGB(0x9C0006));
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let bad_date = bad.clone().set_num_format("yyyy-mm-dd");
    let msg_fmt = Format::new()
        .set_font_color(Color::RGB(0xC00000))
        .set_text_wrap();

    // Where each error column sits in the copy, and where the annotation column goes.
    let mut col_of: HashMap<&str, u32> = HashMap::new();
    let mut header_row = 0;
    let mut ann_col = None;
    if let Some(h) = find_header(grid, &names) {
        header_row = h.row;
        for (c, m, _) in &h.cells {
            match m {
                HeaderMatch::Known(i) => {
                    if let Some(n) = names.get(*i) {
                        col_of.entry(n.key).or_insert(*c);
                    }
                }
                HeaderMatch::Ignored => ann_col = Some(*c),
                HeaderMatch::Unknown => {}
            }
        }
    }
    let last_col = grid
        .rows
        .values()
        .filter_map(|cells| cells.keys().next_back())
        .max()
        .copied()
        .unwrap_or(0);
    let ann_col = ann_col.unwrap_or(last_col + 1);
    let ann_col16 =
        u16::try_from(ann_col).map_err(|_| SheetError::Write("too many columns".into()))?;

    let mut by_row: BTreeMap<u32, Vec<&RowError>> = BTreeMap::new();
    for e in errors.iter().filter(|e| e.row > 0) {
        by_row.entry(e.row - 1).or_default().push(e);
    }
    let bad_cells: HashMap<(u32, u32), &RowError> = errors
        .iter()
        .filter(|e| e.row > 0)
        .filter_map(|e| col_of.get(e.column.as_str()).map(|c| ((e.row - 1, *c), *e)))
        .collect();

    let mut notes = 0;
    let mut widths: HashMap<u16, usize> = HashMap::new();
    let head = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_border(FormatBorder::Thin);
    for (&r, cells) in &grid.rows {
        for (&c, v) in cells {
            if c == ann_col {
                continue;
            }
            let c16 = u16::try_from(c).map_err(|_| SheetError::Write("too many columns".into()))?;
            let err = bad_cells.get(&(r, c));
            let fmt = match (err, r == header_row) {
                (Some(_), _) => Some(&bad),
                (None, true) => Some(&head),
                (None, false) => None,
            };
            let shown = match v {
                Val::Text(s) | Val::DateIso(s) | Val::Err(s) => display_width(s),
                Val::Date(_) => 10,
                _ => 12,
            };
            let w = widths.entry(c16).or_insert(8);
            *w = (*w).max(shown + 2);
            match (v, fmt) {
                (Val::Num(f), Some(x)) => ws.write_number_with_format(r, c16, *f, x),
                (Val::Num(f), None) => ws.write_number(r, c16, *f),
                (Val::Int(i), Some(x)) => ws.write_number_with_format(r, c16, *i as f64, x),
                (Val::Int(i), None) => ws.write_number(r, c16, *i as f64),
                (Val::Bool(b), _) => ws.write_boolean(r, c16, *b),
                (Val::Date(f), _) => ws.write_number_with_format(
                    r,
                    c16,
                    *f,
                    if err.is_some() { &bad_date } else { &date },
                ),
                (Val::Text(s) | Val::DateIso(s) | Val::Err(s), Some(x)) => {
                    ws.write_string_with_format(r, c16, truncate(s), x)
                }
                (Val::Text(s) | Val::DateIso(s) | Val::Err(s), None) => {
                    ws.write_string(r, c16, truncate(s))
                }
            }
            .map_err(xerr)?;
            if let Some(e) = err
                && notes < MAX_NOTES
            {
                notes += 1;
                let note = Note::new(format!("{}\n{}", e.message.zh, e.message.en))
                    .add_author_prefix(false);
                ws.insert_note(r, c16, &note).map_err(xerr)?;
            }
        }
    }
    // Errors on cells that were empty (e.g. a missing required value) still get the red fill.
    for (&(r, c), _) in bad_cells
        .iter()
        .filter(|((r, c), _)| grid.rows.get(r).is_none_or(|cells| !cells.contains_key(c)))
    {
        let c16 = u16::try_from(c).map_err(|_| SheetError::Write("too many columns".into()))?;
        ws.write_blank(r, c16, &bad).map_err(xerr)?;
    }
    ws.write_string_with_format(
        header_row,
        ann_col16,
        format!("错误说明 ({REPORT_COLUMN_KEY})"),
        &Format::new().set_bold(),
    )
    .map_err(xerr)?;
    for (c, w) in widths {
        ws.set_column_width(c, w.min(40) as f64).map_err(xerr)?;
    }
    // Columns holding only text (codes among them) stay text when staff retype a cell, so a
    // corrected 23-digit code doesn't turn into a rounded number.
    let text = Format::new().set_num_format("@");
    let mut numeric_cols: HashSet<u32> = HashSet::new();
    for cells in grid.rows.range(header_row + 1..).map(|(_, c)| c) {
        numeric_cols.extend(
            cells
                .iter()
                .filter(|(_, v)| !matches!(v, Val::Text(_)))
                .map(|(c, _)| *c),
        );
    }
    for c in grid
        .rows
        .get(&header_row)
        .map(|h| h.keys().copied().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if c != ann_col && !numeric_cols.contains(&c) {
            let c16 = u16::try_from(c).map_err(|_| SheetError::Write("too many columns".into()))?;
            ws.set_column_format(c16, &text).map_err(xerr)?;
        }
    }
    ws.set_column_width(ann_col16, 60).map_err(xerr)?;
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    for (r, errs) in by_row {
        if r == header_row {
            continue;
        }
        let text = errs
            .iter()
            .map(|e| {
                if e.label.is_empty() {
                    e.message.zh.clone()
                } else {
                    format!("「{}」{}", e.label, e.message.zh)
                }
            })
            .collect::<Vec<_>>()
            .join("；");
        ws.write_string_with_format(r, ann_col16, truncate(&text), &msg_fmt)
            .map_err(xerr)?;
    }
    ws.set_freeze_panes(header_row + 1, 0).map_err(xerr)?;
    Ok(())
}
