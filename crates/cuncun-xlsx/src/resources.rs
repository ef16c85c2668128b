//! Emergency-broadcast resources (应急广播资源): loudspeakers, receivers, adapters… one per row.
//!
//! What this module checks is what the file alone can tell: kinds, code formats, ranges, dates,
//! duplicates within the file. Whether the region exists, lies in the uploader's scope, or a
//! resource code is already registered is for the caller to check against the database and
//! record with [`ParseOutcome::add_error`].

use std::collections::HashMap;

use cuncun_domain::RegionCode;
use cuncun_domain::RegionCodeError;
use cuncun_domain::eb::{EbError, Ebrid, RESOURCE_TYPES, ResourceKind};

use crate::sheet::{Cell, Column, ColumnKind, template, write_rows};
use crate::{Message, ParseOutcome, RowCheck, SheetError, parse_with};

/// Name of the data sheet in templates and exports.
pub const SHEET_NAME: &str = "应急广播资源";

/// (key, Chinese label) of every resource kind, taken from the domain table so a corrected
/// table shows up here without edits.
pub const KIND_CHOICES: [(&str, &str); RESOURCE_TYPES.len()] = {
    let mut out = [("", ""); RESOURCE_TYPES.len()];
    let mut i = 0;
    while i < RESOURCE_TYPES.len() {
        out[i] = (RESOURCE_TYPES[i].1, RESOURCE_TYPES[i].3);
        i += 1;
    }
    out
};

/// Longest name, vendor and model accepted.
pub const MAX_TEXT_CHARS: usize = 100;

const KIND: Column = Column {
    key: "kind",
    zh: "资源类型",
    en: "Kind",
    required: true,
    hint_zh: "从下拉列表选择；填中文名称（如 室外大喇叭）或英文键（如 outdoor_loudspeaker）均可",
    example: "室外大喇叭",
    kind: ColumnKind::Enum(&KIND_CHOICES),
};
const REGION: Column = Column {
    key: "region_code",
    zh: "区划代码",
    en: "Region code",
    required: true,
    hint_zh: "所在区划的统计用区划代码：村（社区）12 位、乡镇 9 位、区县 6 位；请保持文本格式，不要存成数字",
    example: "500236100201",
    kind: ColumnKind::Code,
};
const NAME: Column = Column {
    key: "name",
    zh: "名称",
    en: "Name",
    required: true,
    hint_zh: "资源名称，最多 100 字；同一区划内不能重名",
    example: "示例村村委会大喇叭1号",
    kind: ColumnKind::Text,
};
const VENDOR: Column = Column {
    key: "vendor",
    zh: "厂家",
    en: "Vendor",
    required: false,
    hint_zh: "生产厂家，最多 100 字，可不填",
    example: "某某电子有限公司",
    kind: ColumnKind::Text,
};
const MODEL: Column = Column {
    key: "model",
    zh: "型号",
    en: "Model",
    required: false,
    hint_zh: "设备型号，最多 100 字，可不填",
    example: "DLB-100",
    kind: ColumnKind::Text,
};
const INSTALL_DATE: Column = Column {
    key: "install_date",
    zh: "安装日期",
    en: "Install date",
    required: false,
    hint_zh: "安装日期，格式 YYYY-MM-DD（如 2024-05-20），可不填",
    example: "2024-05-20",
    kind: ColumnKind::Date,
};
const LON: Column = Column {
    key: "lon",
    zh: "经度",
    en: "Longitude",
    required: false,
    hint_zh: "十进制经度，-180 到 180（如 109.465）；经纬度要么都填，要么都不填",
    example: "109.465",
    kind: ColumnKind::Number,
};
const LAT: Column = Column {
    key: "lat",
    zh: "纬度",
    en: "Latitude",
    required: false,
    hint_zh: "十进制纬度，-90 到 90（如 31.019）；经纬度要么都填，要么都不填",
    example: "31.019",
    kind: ColumnKind::Number,
};
const RESOURCE_CODE: Column = Column {
    key: "resource_code",
    zh: "资源编码",
    en: "Resource code",
    required: false,
    hint_zh: "已有设备的 23 位资源编码；新设备留空，由系统生成。编码第 2–13 位的区划必须与本行区划代码一致；请保持文本格式",
    example: "65002361002010314010101",
    kind: ColumnKind::Code,
};
const STATUS: Column = Column {
    key: "status",
    zh: "状态",
    en: "Status",
    required: false,
    hint_zh: "导出时的设备状态，仅供查看，导入时忽略",
    example: "",
    kind: ColumnKind::ReadOnly,
};

/// The import columns, in template order.
pub const COLUMNS: &[Column] = &[
    KIND,
    REGION,
    NAME,
    VENDOR,
    MODEL,
    INSTALL_DATE,
    LON,
    LAT,
    RESOURCE_CODE,
];
/// The export columns: the import columns plus a read-only status, so an edited export can be
/// uploaded again.
pub const EXPORT_COLUMNS: &[Column] = &[
    KIND,
    REGION,
    NAME,
    VENDOR,
    MODEL,
    INSTALL_DATE,
    LON,
    LAT,
    RESOURCE_CODE,
    STATUS,
];

/// One valid row. Empty optional text is "".
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    pub kind: ResourceKind,
    pub region_code: RegionCode,
    pub name: String,
    pub vendor: String,
    pub model: String,
    /// "YYYY-MM-DD" or "".
    pub install_date: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// An existing device's code; None for a new device (the caller generates one).
    pub ebrid: Option<Ebrid>,
}

/// The template to download: header, one example row, a dropdown of kinds, and the 说明 sheet.
pub fn resources_template() -> Result<Vec<u8>, SheetError> {
    template(COLUMNS, SHEET_NAME)
}

/// An export of resources with a status text each (e.g. 在线 / 离线), in the template's layout.
pub fn export_resources<'a>(
    rows: impl IntoIterator<Item = (&'a ResourceRow, &'a str)>,
) -> Result<Vec<u8>, SheetError> {
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|(r, status)| {
            vec![
                r.kind.name_zh().into(),
                r.region_code.short().into(),
                r.name.as_str().into(),
                r.vendor.as_str().into(),
                r.model.as_str().into(),
                r.install_date.as_str().into(),
                r.lon.into(),
                r.lat.into(),
                r.ebrid.as_ref().map_or(Cell::Empty, |e| e.as_str().into()),
                status.into(),
            ]
        })
        .collect();
    write_rows(EXPORT_COLUMNS, SHEET_NAME, &cells)
}

/// Checks every row of an uploaded resource sheet (template or export layout) and reports every
/// error, including duplicates within the file: a resource code used twice, or one name used
/// twice in one region; the later row gets the error, naming the earlier row.
pub fn parse_resources(bytes: &[u8]) -> ParseOutcome<ResourceRow> {
    let mut codes: HashMap<String, u32> = HashMap::new();
    let mut names: HashMap<(String, String), u32> = HashMap::new();
    parse_with(bytes, EXPORT_COLUMNS, |chk| {
        let kind = chk.choice(KIND.key).and_then(ResourceKind::parse);
        let region = region(chk);
        let name = chk.text(NAME.key, MAX_TEXT_CHARS);
        let vendor = chk.text(VENDOR.key, MAX_TEXT_CHARS);
        let model = chk.text(MODEL.key, MAX_TEXT_CHARS);
        let install_date = chk.date(INSTALL_DATE.key);
        let lon = chk.number(LON.key, -180.0..=180.0);
        let lat = chk.number(LAT.key, -90.0..=90.0);
        // A point needs both halves; blame the empty one.
        match (chk.get(LON.key).is_empty(), chk.get(LAT.key).is_empty()) {
            (false, true) => chk.error(
                LAT.key,
                (
                    "填写了经度，也要填写纬度",
                    "longitude is given, latitude is missing",
                ),
            ),
            (true, false) => chk.error(
                LON.key,
                (
                    "填写了纬度，也要填写经度",
                    "latitude is given, longitude is missing",
                ),
            ),
            _ => {}
        }
        let ebrid = resource_code(chk, region.as_ref());

        let row = chk.row_number();
        if let Some(e) = &ebrid {
            if let Some(first) = codes.get(e.as_str()) {
                chk.error(
                    RESOURCE_CODE.key,
                    Message::new(
                        format!("与第 {first} 行的资源编码重复"),
                        format!("same resource code as row {first}"),
                    ),
                );
            } else {
                codes.insert(e.as_str().to_string(), row);
            }
        }
        if let (Some(r), Some(n)) = (&region, &name)
            && !n.is_empty()
        {
            let key = (r.as_str().to_string(), n.clone());
            if let Some(first) = names.get(&key) {
                chk.error(
                    NAME.key,
                    Message::new(
                        format!("与第 {first} 行同一区划下名称重复"),
                        format!("same name in the same region as row {first}"),
                    ),
                );
            } else {
                names.insert(key, row);
            }
        }

        Some(ResourceRow {
            kind: kind?,
            region_code: region?,
            name: name?,
            vendor: vendor.unwrap_or_default(),
            model: model.unwrap_or_default(),
            install_date: install_date.unwrap_or_default(),
            lon,
            lat,
            ebrid,
        })
    })
}

fn region(chk: &mut RowCheck<'_>) -> Option<RegionCode> {
    region_at(chk, REGION.key)
}

/// The region code in column `key`, or None (with an error naming what is wrong in Chinese and
/// English) when it is not one; None without error when the cell is empty.
pub(crate) fn region_at(chk: &mut RowCheck<'_>, key: &str) -> Option<RegionCode> {
    let s = chk.get(key);
    if s.is_empty() || chk.has_error(key) {
        return None;
    }
    match RegionCode::parse(s) {
        Ok(r) => Some(r),
        Err(e) => {
            let zh = match &e {
                RegionCodeError::NotDigits(_) => format!("区划代码「{s}」只能包含数字"),
                RegionCodeError::BadLength(_, n) => {
                    format!("区划代码应为 2、4、6、9 或 12 位数字，「{s}」是 {n} 位")
                }
                RegionCodeError::Zero(_) => format!("区划代码「{s}」无效（前两位或全部为 0）"),
            };
            chk.error(key, Message::new(zh, e.to_string()));
            None
        }
    }
}

fn resource_code(chk: &mut RowCheck<'_>, region: Option<&RegionCode>) -> Option<Ebrid> {
    let s = chk.get(RESOURCE_CODE.key);
    if s.is_empty() || chk.has_error(RESOURCE_CODE.key) {
        return None;
    }
    let e = match Ebrid::parse(s) {
        Ok(e) => e,
        Err(err) => {
            let zh = match &err {
                EbError::BadEbridLevel(_) => "资源编码第 1 位（区域级别）应为 1–6".to_string(),
                EbError::BadEbridRegion(..) => "资源编码第 2–13 位不是有效的区划代码".to_string(),
                _ => format!("资源编码应为 23 位数字，「{s}」是 {} 位", s.chars().count()),
            };
            chk.error(RESOURCE_CODE.key, Message::new(zh, err.to_string()));
            return None;
        }
    };
    if let Some(r) = region
        && e.region12() != r.as_str()
    {
        chk.error(
            RESOURCE_CODE.key,
            Message::new(
                format!(
                    "资源编码中的区划 {} 与本行区划代码 {} 不一致",
                    e.region12(),
                    r.as_str()
                ),
                format!(
                    "the resource code is for region {}, but the row's region code is {}",
                    e.region12(),
                    r.as_str()
                ),
            ),
        );
    }
    // Still returned when it mismatches, so a later duplicate of it is reported too; the row
    // itself is invalid because of the error above.
    Some(e)
}
