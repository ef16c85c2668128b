//! Columns and the writing side: templates and exports share one header layout so that whatever
//! we hand out reads back in.

use rust_xlsxwriter::{
    Color, DataValidation, DataValidationErrorStyle, ExcelDateTime, Format, FormatAlign,
    FormatBorder, Note, Workbook, Worksheet, XlsxError,
};

use crate::SheetError;
use crate::values::{display_width, normalise_date};

/// What a column holds; decides the cell format on writing and the conversion on reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnKind {
    /// Free text.
    Text,
    /// Digits that identify something (region code, device code). Written as text (`@`); number
    /// cells are read back as integer digit strings where that is exact.
    Code,
    /// A decimal number.
    Number,
    /// A calendar date; written with format `yyyy-mm-dd`, read back as "YYYY-MM-DD".
    Date,
    /// One of a fixed list of `(key, Chinese label)`; the cell may hold either.
    Enum(&'static [(&'static str, &'static str)]),
    /// Exported for information (e.g. online status) and ignored on import, so an edited export
    /// can be uploaded again.
    ReadOnly,
}

/// One column of a sheet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// Machine key, stable across label edits: `region_code`.
    pub key: &'static str,
    /// Chinese label shown to staff: `区划代码`.
    pub zh: &'static str,
    /// English name, accepted as a header too.
    pub en: &'static str,
    pub required: bool,
    /// What to put in the cell, in Chinese, for the 说明 sheet and the header note.
    pub hint_zh: &'static str,
    /// The template's example value ("" for none).
    pub example: &'static str,
    pub kind: ColumnKind,
}

impl Column {
    /// The header cell text: `*名称 (name)` for required columns, `型号 (model)` otherwise.
    pub fn header(&self) -> String {
        format!(
            "{}{} ({})",
            if self.required { "*" } else { "" },
            self.zh,
            self.key
        )
    }

    /// "Allowed values" text for the 说明 sheet.
    pub fn allowed_zh(&self) -> String {
        match self.kind {
            ColumnKind::Text => "文本".into(),
            ColumnKind::Code => "数字代码，请保持单元格为文本格式".into(),
            ColumnKind::Number => "数字".into(),
            ColumnKind::Date => "日期 YYYY-MM-DD".into(),
            ColumnKind::ReadOnly => "导出时填写，导入时忽略".into(),
            ColumnKind::Enum(choices) => choices
                .iter()
                .map(|(k, zh)| format!("{zh} ({k})"))
                .collect::<Vec<_>>()
                .join("、"),
        }
    }
}

/// One exported cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        if s.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s.to_string())
        }
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        if s.is_empty() {
            Cell::Empty
        } else {
            Cell::Text(s)
        }
    }
}
impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Number)
    }
}

/// Rows that get dropdowns and formats in a template: enough for any county list.
const TEMPLATE_ROWS: u32 = 10_000;

pub(crate) fn xerr(e: XlsxError) -> SheetError {
    SheetError::Write(e.to_string())
}

struct Formats {
    header: Format,
    header_required: Format,
    text: Format,
    date: Format,
}

fn formats() -> Formats {
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center);
    Formats {
        header_required: header.clone().set_font_color(Color::RGB(0xC00000)),
        header,
        text: Format::new().set_num_format("@"),
        date: Format::new().set_num_format("yyyy-mm-dd"),
    }
}

/// Header row, column widths and column formats shared by templates and exports.
fn write_header(
    ws: &mut Worksheet,
    columns: &[Column],
    f: &Formats,
    widths: &[f64],
) -> Result<(), SheetError> {
    for (i, c) in columns.iter().enumerate() {
        let col = col_num(i)?;
        let hf = if c.required {
            &f.header_required
        } else {
            &f.header
        };
        ws.write_string_with_format(0, col, c.header(), hf)
            .map_err(xerr)?;
        ws.set_column_width(col, widths.get(i).copied().unwrap_or(12.0))
            .map_err(xerr)?;
        // Column formats make cells typed later by staff inherit text/date formatting.
        match c.kind {
            ColumnKind::Code => {
                ws.set_column_format(col, &f.text).map_err(xerr)?;
            }
            ColumnKind::Date => {
                ws.set_column_format(col, &f.date).map_err(xerr)?;
            }
            _ => {}
        }
    }
    ws.set_freeze_panes(1, 0).map_err(xerr)?;
    // Printed lists go on file in county offices: one page wide, header on every page.
    ws.set_landscape().set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(0, 0).map_err(xerr)?;
    Ok(())
}

fn col_num(i: usize) -> Result<u16, SheetError> {
    u16::try_from(i).map_err(|_| SheetError::Write(format!("too many columns ({i})")))
}

fn row_num(i: usize) -> Result<u32, SheetError> {
    u32::try_from(i).map_err(|_| SheetError::Write(format!("too many rows ({i})")))
}

fn widths<'a>(columns: &[Column], samples: impl Iterator<Item = (usize, &'a str)>) -> Vec<f64> {
    let mut w: Vec<usize> = columns
        .iter()
        .map(|c| display_width(&c.header()) + 2)
        .collect();
    for (i, s) in samples {
        if let Some(x) = w.get_mut(i) {
            *x = (*x).max(display_width(s) + 2);
        }
    }
    w.into_iter().map(|x| x.clamp(8, 50) as f64).collect()
}

/// A template to download: the header, one grey italic example row, a dropdown on enumeration
/// columns, a note on each header cell, and a 说明 sheet describing every column.
pub fn template(columns: &[Column], sheet_name_zh: &str) -> Result<Vec<u8>, SheetError> {
    let f = formats();
    let example = Format::new()
        .set_italic()
        .set_font_color(Color::RGB(0x808080));
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(sheet_name_zh).map_err(xerr)?;
    let w = widths(
        columns,
        columns.iter().enumerate().map(|(i, c)| (i, c.example)),
    );
    write_header(ws, columns, &f, &w)?;
    for (i, c) in columns.iter().enumerate() {
        let col = col_num(i)?;
        let note = format!(
            "{}{}\n{}",
            c.zh,
            if c.required {
                "（必填）"
            } else {
                "（选填）"
            },
            if c.hint_zh.is_empty() {
                c.allowed_zh()
            } else {
                c.hint_zh.to_string()
            }
        );
        ws.insert_note(
            0,
            col,
            &Note::new(note).add_author_prefix(false).set_width(300),
        )
        .map_err(xerr)?;
        write_example(ws, col, c, &example)?;
        if let ColumnKind::Enum(choices) = c.kind {
            let labels: Vec<&str> = choices.iter().map(|(_, zh)| *zh).collect();
            // Excel caps a list at 255 characters; past that the 说明 sheet still lists them.
            if let Ok(dv) = DataValidation::new().allow_list_strings(&labels) {
                let dv = dv
                    .set_error_style(DataValidationErrorStyle::Warning)
                    .ignore_blank(true);
                ws.add_data_validation(1, col, TEMPLATE_ROWS, col, &dv)
                    .map_err(xerr)?;
            }
        }
    }
    explain_sheet(&mut wb, columns, &f)?;
    wb.save_to_buffer().map_err(xerr)
}

fn write_example(
    ws: &mut Worksheet,
    col: u16,
    c: &Column,
    example: &Format,
) -> Result<(), SheetError> {
    if c.example.is_empty() {
        return Ok(());
    }
    match c.kind {
        ColumnKind::Number => match c.example.parse::<f64>() {
            Ok(v) => ws.write_number_with_format(1, col, v, example),
            Err(_) => ws.write_string_with_format(1, col, c.example, example),
        },
        ColumnKind::Date => match date_cell(c.example) {
            Some(d) => ws.write_datetime_with_format(
                1,
                col,
                d,
                &example.clone().set_num_format("yyyy-mm-dd"),
            ),
            None => ws.write_string_with_format(1, col, c.example, example),
        },
        ColumnKind::Code => {
            ws.write_string_with_format(1, col, c.example, &example.clone().set_num_format("@"))
        }
        _ => ws.write_string_with_format(1, col, c.example, example),
    }
    .map_err(xerr)?;
    Ok(())
}

fn date_cell(s: &str) -> Option<ExcelDateTime> {
    let d = normalise_date(s).ok()?;
    let n = |r: std::ops::Range<usize>| d.get(r).and_then(|x| x.parse::<u16>().ok());
    let (y, m, dd) = (n(0..4)?, n(5..7)?, n(8..10)?);
    ExcelDateTime::from_ymd(y, u8::try_from(m).ok()?, u8::try_from(dd).ok()?).ok()
}

fn explain_sheet(wb: &mut Workbook, columns: &[Column], f: &Formats) -> Result<(), SheetError> {
    let ws = wb.add_worksheet();
    ws.set_name("说明").map_err(xerr)?;
    let wrap = Format::new().set_text_wrap();
    let bold = Format::new().set_bold();
    let lines = [
        "填写说明：第一张表的第 1 行是表头，请勿修改或删除；从第 2 行起每行一条记录。",
        "第 2 行是灰色示例，它也会被导入——请改写成真实数据或整行删除。",
        "带 * 的列必填。代码类列（如区划代码）请保持“文本”格式，否则 Excel 会把长数字改成科学计数法并丢失末尾数字。",
        "导入时先检查全部行：有任何错误时不会导入任何数据（除非选择“只导入正确的行”），并可下载错误报告逐行修改。",
    ];
    for (i, l) in lines.iter().enumerate() {
        ws.write_string_with_format(row_num(i)?, 0, *l, &bold)
            .map_err(xerr)?;
    }
    let top = row_num(lines.len() + 1)?;
    let heads = ["列名", "键 (key)", "必填", "填写说明", "允许的值", "示例"];
    for (j, h) in heads.iter().enumerate() {
        ws.write_string_with_format(top, col_num(j)?, *h, &f.header)
            .map_err(xerr)?;
    }
    for (i, c) in columns.iter().enumerate() {
        let r = top + 1 + row_num(i)?;
        let cells = [
            c.zh.to_string(),
            c.key.to_string(),
            if c.required { "是" } else { "否" }.to_string(),
            c.hint_zh.to_string(),
            c.allowed_zh(),
            c.example.to_string(),
        ];
        for (j, v) in cells.iter().enumerate() {
            ws.write_string_with_format(r, col_num(j)?, v, &wrap)
                .map_err(xerr)?;
        }
    }
    for (j, w) in [16.0, 20.0, 6.0, 50.0, 50.0, 26.0].into_iter().enumerate() {
        ws.set_column_width(col_num(j)?, w).map_err(xerr)?;
    }
    Ok(())
}

/// An export: the template's header, then one row per entry (no example row). Text in a date
/// column that reads as a date is written as a real date; code columns are text. Rows shorter
/// than `columns` are padded with empty cells; longer rows are an error.
pub fn write_rows(
    columns: &[Column],
    sheet_name_zh: &str,
    rows: &[Vec<Cell>],
) -> Result<Vec<u8>, SheetError> {
    let f = formats();
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(sheet_name_zh).map_err(xerr)?;
    let samples = rows.iter().take(200).flat_map(|r| {
        r.iter().enumerate().filter_map(|(i, c)| match c {
            Cell::Text(s) => Some((i, s.as_str())),
            _ => None,
        })
    });
    let w = widths(columns, samples);
    write_header(ws, columns, &f, &w)?;
    let date_fmt = &f.date;
    for (ri, row) in rows.iter().enumerate() {
        if row.len() > columns.len() {
            return Err(SheetError::Write(format!(
                "export row {} has {} cells but the sheet has {} columns",
                ri + 1,
                row.len(),
                columns.len()
            )));
        }
        let r = row_num(ri + 1)?;
        for (ci, (cell, c)) in row.iter().zip(columns).enumerate() {
            let col = col_num(ci)?;
            match cell {
                Cell::Empty => {}
                Cell::Number(v) if v.is_finite() => {
                    ws.write_number(r, col, *v).map_err(xerr)?;
                }
                // Excel has no NaN or infinity; an empty cell says "unknown" best.
                Cell::Number(_) => {}
                Cell::Text(s) => match (c.kind, date_cell(s)) {
                    (ColumnKind::Date, Some(d)) => {
                        ws.write_datetime_with_format(r, col, d, date_fmt)
                            .map_err(xerr)?;
                    }
                    (ColumnKind::Code, _) => {
                        ws.write_string_with_format(r, col, s, &f.text)
                            .map_err(xerr)?;
                    }
                    _ => {
                        ws.write_string(r, col, s).map_err(xerr)?;
                    }
                },
            }
        }
    }
    if !columns.is_empty() {
        ws.autofilter(0, 0, row_num(rows.len())?, col_num(columns.len() - 1)?)
            .map_err(xerr)?;
    }
    wb.save_to_buffer().map_err(xerr)
}
