//! Builds small workbooks the way staff's files look, cell type by cell type.
#![allow(dead_code)]

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

pub enum C {
    S(&'static str),
    Own(String),
    N(f64),
    /// A date-formatted cell.
    D(u16, u8, u8),
    E,
}

pub fn s(v: &'static str) -> C {
    C::S(v)
}

/// One sheet named `name`: `header` in row 1, `rows` from row 2.
pub fn sheet_named(name: &str, header: &[&str], rows: &[Vec<C>]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(name).expect("sheet name");
    for (j, h) in header.iter().enumerate() {
        ws.write_string(0, j as u16, *h).expect("header");
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (i, row) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        for (j, c) in row.iter().enumerate() {
            let j = j as u16;
            match c {
                C::S(v) => {
                    ws.write_string(r, j, *v).expect("cell");
                }
                C::Own(v) => {
                    ws.write_string(r, j, v).expect("cell");
                }
                C::N(v) => {
                    ws.write_number(r, j, *v).expect("cell");
                }
                C::D(y, m, d) => {
                    let dt = ExcelDateTime::from_ymd(*y, *m, *d).expect("date");
                    ws.write_datetime_with_format(r, j, dt, &date)
                        .expect("cell");
                }
                C::E => {}
            }
        }
    }
    wb.save_to_buffer().expect("save")
}

pub fn sheet(header: &[&str], rows: &[Vec<C>]) -> Vec<u8> {
    sheet_named("Sheet1", header, rows)
}

/// The template's header texts for the resource sheet.
pub fn resource_header() -> Vec<String> {
    cuncun_xlsx::resources::COLUMNS
        .iter()
        .map(|c| c.header())
        .collect()
}

/// (row, column key) of each error, for exact comparisons.
pub fn where_(errors: &[cuncun_xlsx::RowError]) -> Vec<(u32, String)> {
    errors.iter().map(|e| (e.row, e.column.clone())).collect()
}
