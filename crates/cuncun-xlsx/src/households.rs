//! The household ledger (用户台账) and the stewards list (广电管家), one per row.
//!
//! What the file alone can tell is checked here: codes, phone formats, enumerations, dates, a
//! fee waiver without evidence, duplicates within the file. Whether the village exists, lies in
//! the uploader's scope or a household is already registered is for the caller (see
//! [`ParseOutcome::add_error`]).

use std::collections::HashMap;

use cuncun_domain::model::CoverageMode;
use cuncun_domain::service::{FeeWaiver, HouseholdRecord, normalise_phone};
use cuncun_domain::{RegionCode, RegionLevel};

use crate::resources::region_at;
use crate::sheet::{Cell, Column, ColumnKind, template, write_rows};
use crate::{Message, ParseOutcome, RowCheck, SheetError, parse_with};

pub const HOUSEHOLD_SHEET: &str = "用户台账";
pub const STEWARD_SHEET: &str = "广电管家";

const YES_NO: [(&str, &str); 2] = [("yes", "是"), ("no", "否")];
const WAIVERS: [(&str, &str); 5] = [
    ("none", "无"),
    ("minimum_living", "低保户"),
    ("five_guarantee", "五保户"),
    ("three_without", "三无人员"),
    ("veteran_family", "优抚对象"),
];
/// Reception modes as written in the sheet (Chinese, key); several per cell, or 无 for none.
const RECEPTION: [(&str, &str); 6] = [
    ("cable", "有线"),
    ("terrestrial", "地面数字"),
    ("satellite", "直播卫星"),
    ("iptv", "IPTV"),
    ("5g", "5G"),
    ("none", "无"),
];

const fn col(key: &'static str, zh: &'static str, en: &'static str, required: bool, hint_zh: &'static str, example: &'static str, kind: ColumnKind) -> Column {
    Column { key, zh, en, required, hint_zh, example, kind }
}

const VILLAGE: Column = col("village_code", "行政村代码", "Village code", true, "户所在行政村(社区)的 12 位统计用区划代码；请保持文本格式", "500236100201", ColumnKind::Code);
const HAMLET: Column = col("hamlet", "自然村", "Hamlet", false, "自然村(组)名称", "上院子", ColumnKind::Text);
const HEAD: Column = col("head_name", "户主姓名", "Head of household", true, "户主姓名，最多 50 字", "王大爷", ColumnKind::Text);
const PHONE: Column = col("phone", "联系电话", "Phone", true, "11 位手机号，或带区号的固定电话(如 023-55555555)", "13912345678", ColumnKind::Code);
const ADDRESS: Column = col("address", "住址", "Address", true, "门牌或位置描述，最多 200 字；同一村内户主+住址不能重复", "上院子 3 号", ColumnKind::Text);
const MEMBERS: Column = col("members", "家庭人口", "Members", false, "家庭人口数，0-50", "3", ColumnKind::Number);
const RECEPTION_COL: Column = col("reception", "收视方式", "Reception", true, "可填多项，用顿号或逗号分隔：有线、地面数字、直播卫星、IPTV、5G；都没有填 无", "直播卫星、IPTV", ColumnKind::Text);
const HD: Column = col("hd", "高清", "HD", false, "是 / 否", "是", ColumnKind::Enum(&YES_NO));
const FIBRE: Column = col("fibre", "光纤入户", "Fibre", false, "是 / 否", "否", ColumnKind::Enum(&YES_NO));
const ELDERLY: Column = col("care_elderly", "留守老人", "Elderly left behind", false, "特殊群体：是 / 否", "是", ColumnKind::Enum(&YES_NO));
const CHILDREN: Column = col("care_children", "留守儿童", "Children left behind", false, "特殊群体：是 / 否", "否", ColumnKind::Enum(&YES_NO));
const DISABLED: Column = col("care_disabled", "残疾人", "Disabled", false, "特殊群体：是 / 否", "否", ColumnKind::Enum(&YES_NO));
const WAIVER: Column = col("fee_waiver", "减免类别", "Fee waiver", false, "低保户、五保户、三无人员、优抚对象，或 无", "无", ColumnKind::Enum(&WAIVERS));
const EVIDENCE: Column = col("fee_waiver_evidence", "减免依据", "Waiver evidence", false, "有减免类别时必填：证件号或文件名，最多 200 字", "", ColumnKind::Text);
const UNTIL: Column = col("fee_waiver_until", "减免有效期至", "Waiver valid until", false, "YYYY-MM-DD，长期有效可不填", "", ColumnKind::Date);

pub const HOUSEHOLD_COLUMNS: &[Column] =
    &[VILLAGE, HAMLET, HEAD, PHONE, ADDRESS, MEMBERS, RECEPTION_COL, HD, FIBRE, ELDERLY, CHILDREN, DISABLED, WAIVER, EVIDENCE, UNTIL];

const ST_NAME: Column = col("name", "姓名", "Name", true, "管家姓名，最多 50 字", "李文华", ColumnKind::Text);
const ST_PHONE: Column = col("phone", "手机", "Phone", true, "11 位手机号，将公示给村民", "13800000001", ColumnKind::Code);
const ST_TOWNSHIP: Column = col("township_code", "所属乡镇代码", "Township code", true, "9 位(或 12 位补零)乡镇区划代码", "500236100", ColumnKind::Code);
const ST_VILLAGES: Column = col("villages", "负责行政村", "Villages", true, "负责的行政村 12 位代码，多个用逗号或顿号分隔，须在所属乡镇内", "500236100201,500236100202", ColumnKind::Text);
const ST_USER: Column = col("username", "登录账号", "Username", false, "管家登录平台用的账号(角色须为管家)，可不填", "liwh", ColumnKind::Text);

pub const STEWARD_COLUMNS: &[Column] = &[ST_NAME, ST_PHONE, ST_TOWNSHIP, ST_VILLAGES, ST_USER];

pub fn households_template() -> Result<Vec<u8>, SheetError> {
    template(HOUSEHOLD_COLUMNS, HOUSEHOLD_SHEET)
}

pub fn stewards_template() -> Result<Vec<u8>, SheetError> {
    template(STEWARD_COLUMNS, STEWARD_SHEET)
}

fn yes_no(b: bool) -> Cell {
    (if b { "是" } else { "否" }).into()
}

/// The reception cell: Chinese names joined by 、; 无 for none; empty when not recorded.
pub fn reception_text(r: &Option<Vec<CoverageMode>>) -> String {
    match r {
        None => String::new(),
        Some(v) if v.is_empty() => "无".into(),
        Some(v) => v
            .iter()
            .filter_map(|m| RECEPTION.iter().find(|(k, _)| *k == m.key()).map(|(_, zh)| *zh))
            .collect::<Vec<_>>()
            .join("、"),
    }
}

/// An export in the template's layout (names and phones as the caller decided to show them).
pub fn export_households<'a>(rows: impl IntoIterator<Item = &'a HouseholdRecord>) -> Result<Vec<u8>, SheetError> {
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|h| {
            vec![
                h.village_code.as_str().into(),
                h.hamlet.clone().unwrap_or_default().into(),
                h.head_name.as_str().into(),
                h.phone.as_str().into(),
                h.address.as_str().into(),
                Some(h.members as f64).into(),
                reception_text(&h.reception).into(),
                yes_no(h.hd),
                yes_no(h.fibre),
                yes_no(h.care_elderly),
                yes_no(h.care_children),
                yes_no(h.care_disabled),
                h.fee_waiver.name_zh().into(),
                h.fee_waiver_evidence.as_str().into(),
                h.fee_waiver_until.as_str().into(),
            ]
        })
        .collect();
    write_rows(HOUSEHOLD_COLUMNS, HOUSEHOLD_SHEET, &cells)
}

/// One steward row of a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardRow {
    pub name: String,
    pub phone: String,
    pub township: RegionCode,
    pub villages: Vec<RegionCode>,
    /// The account to link, "" for none.
    pub username: String,
}

pub fn export_stewards<'a>(rows: impl IntoIterator<Item = &'a StewardRow>) -> Result<Vec<u8>, SheetError> {
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|s| {
            vec![
                s.name.as_str().into(),
                s.phone.as_str().into(),
                s.township.short().into(),
                s.villages.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(",").into(),
                s.username.as_str().into(),
            ]
        })
        .collect();
    write_rows(STEWARD_COLUMNS, STEWARD_SHEET, &cells)
}

fn phone(chk: &mut RowCheck<'_>, key: &str) -> Option<String> {
    let s = chk.get(key);
    if s.is_empty() || chk.has_error(key) {
        return None;
    }
    let p = normalise_phone(s);
    if p.is_none() {
        chk.error(
            key,
            Message::new(
                format!("「{s}」不是有效电话：手机 11 位(1 开头)，固话须带区号(0 开头)"),
                format!("{s:?} is not a phone number: a mobile has 11 digits starting with 1, a landline starts with its 0 area code"),
            ),
        );
    }
    p
}

fn flag(chk: &mut RowCheck<'_>, key: &str) -> bool {
    chk.choice(key) == Some("yes")
}

fn reception(chk: &mut RowCheck<'_>) -> Option<Option<Vec<CoverageMode>>> {
    let key = RECEPTION_COL.key;
    let s = chk.get(key).to_string();
    if s.is_empty() {
        return Some(None);
    }
    let mut modes = Vec::new();
    let mut none = false;
    for part in s.split(['、', ',', '，', ';', '；', '/', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_lowercase();
        match RECEPTION.iter().find(|(k, zh)| *k == lower || zh.to_lowercase() == lower) {
            Some(("none", _)) => none = true,
            Some((k, _)) => modes.extend(CoverageMode::parse(k)),
            None => {
                chk.error(
                    key,
                    Message::new(
                        format!("「{part}」不是收视方式；可选：有线、地面数字、直播卫星、IPTV、5G、无"),
                        format!("{part:?} is not a reception mode; one of cable, terrestrial, satellite, iptv, 5g, none"),
                    ),
                );
                return None;
            }
        }
    }
    if none && !modes.is_empty() {
        chk.error(key, Message::new("填了「无」就不能再填其他收视方式", "\"none\" cannot be combined with other modes"));
        return None;
    }
    Some(Some(modes))
}

fn village(chk: &mut RowCheck<'_>, key: &str) -> Option<RegionCode> {
    let v = region_at(chk, key)?;
    if v.level() != RegionLevel::Village {
        chk.error(key, Message::new(format!("「{v}」不是行政村代码(应为 12 位)"), format!("{v} is not a village code (12 digits)")));
        return None;
    }
    Some(v)
}

/// Checks every row of a household sheet; duplicates (same village, head and address) within
/// the file name the earlier row.
pub fn parse_households(bytes: &[u8]) -> ParseOutcome<HouseholdRecord> {
    let mut seen: HashMap<(String, String, String), u32> = HashMap::new();
    parse_with(bytes, HOUSEHOLD_COLUMNS, |chk| {
        let village_code = village(chk, VILLAGE.key);
        let hamlet = chk.text(HAMLET.key, 50);
        let head = chk.text(HEAD.key, 50);
        let phone = phone(chk, PHONE.key);
        let address = chk.text(ADDRESS.key, 200);
        let members = chk.number(MEMBERS.key, 0.0..=50.0);
        if members.is_some_and(|m| m.fract() != 0.0) {
            chk.error(MEMBERS.key, Message::new("家庭人口应为整数", "members must be a whole number"));
        }
        let reception = reception(chk);
        let (hd, fibre) = (flag(chk, HD.key), flag(chk, FIBRE.key));
        let (e, c, d) = (flag(chk, ELDERLY.key), flag(chk, CHILDREN.key), flag(chk, DISABLED.key));
        let waiver = chk.choice(WAIVER.key).and_then(FeeWaiver::parse).unwrap_or(FeeWaiver::None);
        let evidence = chk.text(EVIDENCE.key, 200).unwrap_or_default();
        if waiver != FeeWaiver::None && evidence.trim().is_empty() {
            chk.error(EVIDENCE.key, Message::new("有减免类别时必须填写减免依据", "a fee waiver needs its evidence"));
        }
        let until = chk.date(UNTIL.key).unwrap_or_default();
        let row = chk.row_number();
        if let (Some(v), Some(h), Some(a)) = (&village_code, &head, &address) {
            let key = (v.as_str().to_string(), h.trim().to_string(), a.trim().to_string());
            if let Some(first) = seen.get(&key) {
                chk.error(
                    HEAD.key,
                    Message::new(format!("与第 {first} 行重复(同村、同户主、同住址)"), format!("duplicate of row {first} (same village, head and address)")),
                );
            } else {
                seen.insert(key, row);
            }
        }
        Some(HouseholdRecord {
            village_code: village_code?,
            hamlet: hamlet.filter(|h| !h.trim().is_empty()),
            head_name: head?,
            phone: phone?,
            address: address?,
            members: members.unwrap_or(0.0) as i64,
            reception: reception?,
            hd,
            fibre,
            care_elderly: e,
            care_children: c,
            care_disabled: d,
            fee_waiver: waiver,
            fee_waiver_evidence: evidence,
            fee_waiver_until: until,
        })
    })
}

/// Checks every row of a stewards sheet: villages must lie in the row's township.
pub fn parse_stewards(bytes: &[u8]) -> ParseOutcome<StewardRow> {
    let mut seen: HashMap<(String, String), u32> = HashMap::new();
    parse_with(bytes, STEWARD_COLUMNS, |chk| {
        let name = chk.text(ST_NAME.key, 50);
        let phone = phone(chk, ST_PHONE.key);
        let township = region_at(chk, ST_TOWNSHIP.key);
        if let Some(t) = &township
            && t.level() != RegionLevel::Township
        {
            chk.error(ST_TOWNSHIP.key, Message::new(format!("「{t}」不是乡镇代码(应为 9 位)"), format!("{t} is not a township code (9 digits)")));
        }
        let mut villages = Vec::new();
        let text = chk.get(ST_VILLAGES.key).to_string();
        for part in text.split(['、', ',', '，', ';', '；', ' ', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
            match RegionCode::parse(part) {
                Ok(v) if v.level() == RegionLevel::Village => {
                    if let Some(t) = &township
                        && !t.contains(&v)
                    {
                        chk.error(ST_VILLAGES.key, Message::new(format!("行政村 {v} 不在所属乡镇 {t} 内"), format!("village {v} is not in township {t}")));
                    }
                    if !villages.contains(&v) {
                        villages.push(v);
                    }
                }
                _ => {
                    chk.error(ST_VILLAGES.key, Message::new(format!("「{part}」不是 12 位行政村代码"), format!("{part:?} is not a 12-digit village code")));
                }
            }
        }
        let username = chk.text(ST_USER.key, 64).unwrap_or_default();
        let row = chk.row_number();
        if let (Some(n), Some(p)) = (&name, &phone) {
            let key = (n.trim().to_string(), p.clone());
            if let Some(first) = seen.get(&key) {
                chk.error(ST_NAME.key, Message::new(format!("与第 {first} 行重复(同姓名同手机)"), format!("duplicate of row {first} (same name and phone)")));
            } else {
                seen.insert(key, row);
            }
        }
        Some(StewardRow { name: name?, phone: phone?, township: township?, villages, username: username.trim().to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trips_and_bad_rows_are_named() {
        let t = households_template().unwrap();
        let ok = parse_households(&t);
        assert!(ok.is_clean(), "{:?}", ok.errors);
        assert_eq!(ok.valid[0].1.reception, Some(vec![CoverageMode::Satellite, CoverageMode::Iptv]));
        let mut good = ok.valid[0].1.clone();
        let mut dup = good.clone();
        let mut bad = good.clone();
        bad.phone = "12345".into();
        bad.address = "别处".into();
        let mut waiver = good.clone();
        waiver.address = "又一处".into();
        waiver.fee_waiver = FeeWaiver::MinimumLiving;
        good.reception = Some(vec![]);
        dup.hamlet = None;
        let bytes = export_households([&good, &dup, &bad, &waiver]).unwrap();
        let out = parse_households(&bytes);
        let errs: Vec<(u32, &str)> = out.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
        assert_eq!(errs, [(3, "head_name"), (4, "phone"), (5, "fee_waiver_evidence")], "{:?}", out.errors);
        assert_eq!(out.valid.len(), 1);
        assert_eq!(out.valid[0].1.reception, Some(vec![]), "无 is explicitly none");
    }

    #[test]
    fn stewards_villages_must_be_in_the_township() {
        let row = StewardRow {
            name: "李文华".into(),
            phone: "13800000001".into(),
            township: RegionCode::parse("500236100").unwrap(),
            villages: vec![RegionCode::parse("500236100201").unwrap(), RegionCode::parse("500236001001").unwrap()],
            username: String::new(),
        };
        let out = parse_stewards(&export_stewards([&row]).unwrap());
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert_eq!((out.errors[0].row, out.errors[0].column.as_str()), (2, "villages"));
        assert!(parse_stewards(&stewards_template().unwrap()).is_clean());
    }
}
