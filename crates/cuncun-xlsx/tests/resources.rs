mod common;

use calamine::{Data, Reader, Xlsx};
use common::{C, resource_header, s, sheet, where_};
use cuncun_domain::RegionCode;
use cuncun_domain::eb::{Ebrid, ResourceKind};
use cuncun_xlsx::resources::{
    COLUMNS, EXPORT_COLUMNS, ResourceRow, export_resources, parse_resources, resources_template,
};
use cuncun_xlsx::{SheetError, error_report, read_rows};
use std::io::Cursor;

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("region")
}

fn header_refs(h: &[String]) -> Vec<&str> {
    h.iter().map(String::as_str).collect()
}

fn sheet_cells(bytes: &[u8], name: &str) -> Vec<Vec<String>> {
    let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).expect("opens with calamine");
    let range = wb.worksheet_range(name).expect("sheet");
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

#[test]
fn template_round_trip() {
    let bytes = resources_template().expect("template");
    let out = parse_resources(&bytes);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    let village = rc("500236100201");
    let expected = ResourceRow {
        kind: ResourceKind::OutdoorLoudspeaker,
        region_code: village.clone(),
        name: "示例村村委会大喇叭1号".into(),
        vendor: "某某电子有限公司".into(),
        model: "DLB-100".into(),
        install_date: "2024-05-20".into(),
        lon: Some(109.465),
        lat: Some(31.019),
        ebrid: Some(Ebrid::generate(&village, ResourceKind::OutdoorLoudspeaker, 1).expect("ebrid")),
    };
    assert_eq!(out.valid, vec![(2, expected)]);

    // The raw layer gives back each column's example text exactly.
    let raw = read_rows(&bytes, COLUMNS).expect("read");
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].row_number, 2);
    for c in COLUMNS {
        assert_eq!(raw[0].get(c.key), c.example, "column {}", c.key);
    }

    // The 说明 sheet lists every column with its key, and the kinds with labels and keys.
    let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes.clone())).expect("open");
    assert_eq!(wb.sheet_names(), ["应急广播资源", "说明"]);
    let text = sheet_cells(&bytes, "说明").concat().join("|");
    for c in COLUMNS {
        assert!(
            text.contains(c.key) && text.contains(c.zh),
            "说明 lacks {}",
            c.key
        );
    }
    assert!(text.contains("室外大喇叭 (outdoor_loudspeaker)"));
    let _ = wb.worksheet_range("说明").expect("explain sheet");
}

/// The rows the brief names, one problem each, between two good rows.
#[test]
fn bad_rows_are_each_reported_once() {
    let h = resource_header();
    let village = rc("500236100201");
    let other = rc("500236100202");
    let good_code = Ebrid::generate(&village, ResourceKind::OutdoorLoudspeaker, 1)
        .expect("ebrid")
        .to_string();
    let foreign = Ebrid::generate(&other, ResourceKind::OutdoorLoudspeaker, 1)
        .expect("ebrid")
        .to_string();
    let row = |kind: &'static str,
               region: &'static str,
               name: &'static str,
               lat: &'static str,
               code: &str| {
        vec![
            s(kind),
            s(region),
            s(name),
            C::E,
            C::E,
            C::E,
            s("109.5"),
            s(lat),
            C::Own(code.to_string()),
        ]
    };
    let bytes = sheet(
        &header_refs(&h),
        &[
            row("室外大喇叭", "500236100201", "一号喇叭", "31.0", &good_code), // 2 ok
            row("大喇叭X", "500236100201", "二号喇叭", "31.0", ""),            // 3 bad kind
            row("column_speaker", "5002x6", "三号喇叭", "31.0", ""),           // 4 bad region
            row("音柱", "500236100201", "四号喇叭", "95", ""),                 // 5 lat out of range
            row("音柱", "500236100201", "", "31.0", ""),                       // 6 missing name
            row("音柱", "500236100201", "六号喇叭", "31.0", &good_code),       // 7 duplicate code
            row("音柱", "500236100201", "七号喇叭", "31.0", &foreign), // 8 other region's code
            row("入户终端", "500236100", "八号终端", "31.0", ""),      // 9 ok (township)
        ],
    );
    let out = parse_resources(&bytes);
    let got = where_(&out.errors);
    let want: Vec<(u32, String)> = [
        (3, "kind"),
        (4, "region_code"),
        (5, "lat"),
        (6, "name"),
        (7, "resource_code"),
        (8, "resource_code"),
    ]
    .iter()
    .map(|(r, c)| (*r, c.to_string()))
    .collect();
    assert_eq!(got, want, "{:#?}", out.errors);
    assert_eq!(
        out.valid.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [2, 9]
    );
    assert_eq!(out.data_rows, 8);
    assert_eq!(out.error_rows(), 6);

    let msg = |i: usize| out.errors[i].to_string();
    assert!(msg(0).starts_with("第 3 行「资源类型」："), "{}", msg(0));
    assert!(
        msg(0).contains("室外大喇叭"),
        "lists the allowed labels: {}",
        msg(0)
    );
    assert!(
        msg(1).contains("5002x6") && msg(1).contains("/ row 4, column region_code:"),
        "{}",
        msg(1)
    );
    assert!(
        msg(2).contains("-90") && msg(2).contains("95"),
        "{}",
        msg(2)
    );
    assert!(msg(3).contains("必填"), "{}", msg(3));
    assert!(
        msg(4).contains("第 2 行") && msg(4).contains("row 2"),
        "names the earlier row: {}",
        msg(4)
    );
    assert!(
        msg(5).contains("500236100202") && msg(5).contains("500236100201"),
        "{}",
        msg(5)
    );
    assert_eq!(out.errors[4].value, good_code);

    let township = &out.valid[1].1;
    assert_eq!(township.region_code.as_str(), "500236100000");
    assert_eq!(township.kind, ResourceKind::InHomeReceiver);
}

#[test]
fn duplicate_names_in_one_region_and_every_error_of_a_row() {
    let h = resource_header();
    let bytes = sheet(
        &header_refs(&h),
        &[
            vec![s("音柱"), s("500236100201"), s("村口音柱")],
            vec![s("音柱"), s("500236100202"), s("村口音柱")], // other region: fine
            vec![s("音柱"), s("500236100201"), s(" 村口音柱 ")], // 4: same name, same region
            // 5: four problems in one row, all reported.
            vec![
                s("喇叭"),
                s("500236100201"),
                s("五号"),
                C::E,
                C::E,
                s("2024-02-30"),
                s("200"),
                C::E,
                s("123"),
            ],
        ],
    );
    let out = parse_resources(&bytes);
    let got = where_(&out.errors);
    assert_eq!(
        got,
        [
            (4, "name".to_string()),
            (5, "kind".into()),
            (5, "install_date".into()),
            (5, "lon".into()),
            (5, "lat".into()),
            (5, "resource_code".into()),
        ],
        "{:#?}",
        out.errors
    );
    assert!(out.errors[0].message.zh.contains("第 2 行"));
    assert!(
        out.errors[4].message.zh.contains("纬度"),
        "lon without lat blames lat"
    );
}

#[test]
fn codes_stored_as_numbers_are_recovered_exactly() {
    let h = resource_header();
    let code = "65002361002010314010101";
    let bytes = sheet(
        &header_refs(&h),
        &[
            // Number cell (Excel shows 5.00236E+11).
            vec![
                s("音柱"),
                C::N(500_236_100_201.0),
                s("甲"),
                C::E,
                C::E,
                C::N(45432.0),
                C::E,
                C::E,
                s(code),
            ],
            // Scientific notation kept as text, e.g. after a CSV round trip.
            vec![
                s("音柱"),
                s("5.00236100201E11"),
                s("乙"),
                C::E,
                C::E,
                C::D(2024, 5, 20),
            ],
            vec![
                s("音柱"),
                s("500236100201.0"),
                s("丙"),
                C::E,
                C::E,
                s("2024/5/20"),
            ],
            // A 23-digit code in a number cell has lost digits inside Excel: refused.
            vec![
                s("音柱"),
                s("500236100201"),
                s("丁"),
                C::E,
                C::E,
                C::E,
                C::E,
                C::E,
                C::N(6.5e22),
            ],
            // A county code typed as a number.
            vec![s("音柱"), C::N(500_236.0), s("戊")],
        ],
    );
    let out = parse_resources(&bytes);
    assert_eq!(
        where_(&out.errors),
        [(5, "resource_code".to_string())],
        "{:#?}",
        out.errors
    );
    assert!(
        out.errors[0].message.zh.contains("文本格式"),
        "{}",
        out.errors[0]
    );
    let regions: Vec<&str> = out
        .valid
        .iter()
        .map(|(_, r)| r.region_code.as_str())
        .collect();
    assert_eq!(
        regions,
        [
            "500236100201",
            "500236100201",
            "500236100201",
            "500236000000"
        ]
    );
    let dates: Vec<&str> = out
        .valid
        .iter()
        .map(|(_, r)| r.install_date.as_str())
        .collect();
    assert_eq!(dates, ["2024-05-20", "2024-05-20", "2024-05-20", ""]);
    assert_eq!(out.valid[0].1.ebrid.as_ref().map(Ebrid::as_str), Some(code));
}

#[test]
fn export_reads_back_the_same() {
    let v = rc("500236100201");
    let rows = vec![
        ResourceRow {
            kind: ResourceKind::BuildingPa,
            region_code: v.clone(),
            name: "学校楼宇广播 =1+1".into(),
            vendor: "厂家".into(),
            model: "M-1".into(),
            install_date: "2023-11-02".into(),
            lon: Some(109.123_456_7),
            lat: Some(-0.5),
            ebrid: Some(Ebrid::generate(&v, ResourceKind::BuildingPa, 100).expect("ebrid")),
        },
        ResourceRow {
            kind: ResourceKind::FrontEnd,
            region_code: rc("500236"),
            name: "县广播室".into(),
            vendor: String::new(),
            model: String::new(),
            install_date: String::new(),
            lon: None,
            lat: None,
            ebrid: None,
        },
    ];
    let statuses = ["在线", "离线"];
    let bytes = export_resources(rows.iter().zip(statuses)).expect("export");
    let out = parse_resources(&bytes);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    let back: Vec<ResourceRow> = out.valid.into_iter().map(|(_, r)| r).collect();
    assert_eq!(back, rows);
    let raw = read_rows(&bytes, EXPORT_COLUMNS).expect("read");
    assert_eq!(
        raw.iter().map(|r| r.get("status")).collect::<Vec<_>>(),
        statuses
    );
    assert_eq!(raw[0].get("kind"), "楼宇广播接口");
}

#[test]
fn error_report_lists_everything_and_its_copy_can_be_uploaded_again() {
    let h = resource_header();
    let original = sheet(
        &header_refs(&h),
        &[
            vec![s("音柱"), s("500236100201"), s("一号")],
            vec![s("音柱"), s("5002x6"), s("二号")],
            vec![s("音柱"), s("500236100201"), C::E],
        ],
    );
    let mut out = parse_resources(&original);
    assert_eq!(out.valid.len(), 1);
    // The caller's database check: region 500236100201 is outside the uploader's scope.
    out.add_error(
        2,
        "region_code",
        (
            "区划 500236100201 不在您的管辖范围内",
            "region 500236100201 is outside your scope",
        ),
    );
    assert!(
        out.valid.is_empty(),
        "a row with a caller error leaves valid"
    );
    assert_eq!(
        where_(&out.errors),
        [
            (2, "region_code".to_string()),
            (3, "region_code".into()),
            (4, "name".into())
        ]
    );
    assert_eq!(out.errors[0].label, "区划代码");
    assert_eq!(out.errors[0].value, "500236100201");
    assert_eq!(
        out.errors[0].to_string(),
        "第 2 行「区划代码」：区划 500236100201 不在您的管辖范围内 / row 2, column region_code: region 500236100201 is outside your scope"
    );

    let report = out.error_report(Some(&original)).expect("report");
    let mut wb: Xlsx<_> =
        Xlsx::new(Cursor::new(report.clone())).expect("report opens with calamine");
    assert_eq!(wb.sheet_names(), ["错误列表", "标注原表"]);
    let _ = wb.worksheet_range("错误列表").expect("list");
    let list = sheet_cells(&report, "错误列表");
    assert_eq!(list.len(), 4, "header + 3 errors: {list:?}");
    assert_eq!(list[1][0], "2");
    assert_eq!(list[1][2], "region_code");
    assert_eq!(list[1][3], "500236100201");
    assert!(list[1][4].contains("管辖范围"));
    assert!(list[1][5].contains("outside your scope"));
    assert!(list[2][4].contains("5002x6"));
    assert!(list[3][4].contains("必填") && list[3][5].contains("required"));

    let copy = sheet_cells(&report, "标注原表");
    assert!(
        copy[0].last().is_some_and(|h| h.contains("_errors")),
        "{:?}",
        copy[0]
    );
    assert!(
        copy[2].last().is_some_and(|m| m.contains("「区划代码」")),
        "{:?}",
        copy[2]
    );

    // Uploading the report unchanged finds the same file-side errors in the same rows.
    let again = parse_resources(&report);
    assert_eq!(
        where_(&again.errors),
        [(3, "region_code".to_string()), (4, "name".into())],
        "{:#?}",
        again.errors
    );
    assert_eq!(again.valid.len(), 1);

    // Without the original: just the list.
    let plain = error_report(&out.errors, None).expect("report");
    let wb: Xlsx<_> = Xlsx::new(Cursor::new(plain)).expect("open");
    assert_eq!(wb.sheet_names(), ["错误列表"]);
}

#[test]
fn headers_are_found_by_key_label_or_both() {
    // Reordered, keys only, labels with full-width parentheses and spaces, a title row above.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "2024 年应急广播资源登记表")
        .expect("title");
    for (j, h) in [
        "name",
        " 区划代码 ",
        "资源类型（kind）",
        "Longitude",
        "纬度",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(2, j as u16, *h).expect("h");
    }
    for (j, v) in [
        "广场喇叭",
        "500236100201",
        "outdoor_loudspeaker",
        "109",
        "31",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(3, j as u16, *v).expect("v");
    }
    let bytes = wb.save_to_buffer().expect("save");
    let out = parse_resources(&bytes);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    assert_eq!(out.valid.len(), 1);
    assert_eq!(out.valid[0].0, 4, "row numbers are Excel's");
    assert_eq!(out.valid[0].1.lon, Some(109.0));
}

#[test]
fn header_problems_are_named_together() {
    let bytes = sheet(
        &["资源类型 (kind)", "备注", "区划代码", "region_code"],
        &[vec![
            s("音柱"),
            s("x"),
            s("500236"),
            s("500236"),
            s("stray"),
        ]],
    );
    let err = read_rows(&bytes, COLUMNS).expect_err("bad header");
    let SheetError::Columns(problems) = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    assert_eq!(problems.len(), 4, "{text}");
    assert!(text.contains("「备注」"), "unknown column named: {text}");
    assert!(text.contains("出现了两次"), "duplicate column: {text}");
    assert!(text.contains("第 E 列"), "headless data column: {text}");
    assert!(
        text.contains("缺少必填列「*名称 (name)」"),
        "missing required: {text}"
    );
    assert!(problems.iter().all(|p| p.row == 1));

    let out = parse_resources(&bytes);
    assert_eq!(out.errors.len(), 4);
    assert!(out.valid.is_empty());
}

#[test]
fn empty_rows_are_skipped_and_an_empty_sheet_is_an_error() {
    let h = resource_header();
    let bytes = sheet(
        &header_refs(&h),
        &[
            vec![],
            vec![s("音柱"), s("500236100201"), s("甲")],
            vec![s("  "), C::E],
            vec![s("音柱"), s("500236100201"), s("乙")],
        ],
    );
    let out = parse_resources(&bytes);
    assert!(out.errors.is_empty(), "{:#?}", out.errors);
    assert_eq!(
        out.valid.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [3, 5]
    );

    let empty = sheet(&header_refs(&h), &[]);
    let out = parse_resources(&empty);
    assert_eq!(where_(&out.errors), [(0, String::new())]);
    assert!(
        out.errors[0].to_string().starts_with("文件："),
        "{}",
        out.errors[0]
    );
}
