//! Deterministic demo data for one county: hamlets, households, stewards, outlets and terminals,
//! with Chinese names, shaped after a mountainous county such as 奉节县 (Chongqing).
//!
//! Scale: 奉节县 has about 1.0 million registered people in roughly 300,000 households, i.e. some
//! 750 per village committee. The demo generates 150-300 households per village (about 90,000 for
//! 奉节县, a scale factor of roughly 1:3.4) so that demo start-up stays fast; per-household rates
//! (members, coverage, special care) are kept realistic, so percentages on dashboards are plausible
//! while absolute counts are about a third of the real ones.
//!
//! Determinism: every village, township and the county get their own `StdRng` seeded from the
//! caller's seed and the region code, so the output is byte-identical for the same seed and does
//! not depend on the order of the input regions.

use cuncun_domain::model::{
    CoverageMode, NewHamlet, NewHousehold, NewOutlet, NewSteward, NewTerminal, OutletKind, Region,
    TerminalKind,
};
use cuncun_domain::{RegionCode, RegionLevel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DemoCounty {
    pub hamlets: Vec<NewHamlet>,
    pub households: Vec<NewHousehold>,
    pub stewards: Vec<NewSteward>,
    pub outlets: Vec<NewOutlet>,
    pub terminals: Vec<NewTerminal>,
    /// The hamlet each village terminal stands in: (village, terminal name, hamlet name).
    pub terminal_hamlets: Vec<(RegionCode, String, String)>,
    /// Transmitting and relay stations of the county.
    pub transmitters: Vec<DemoSite>,
}

/// A transmitter site (发射台 / 差转台); `kind` is one of tv, fm, dtmb, mw, relay.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSite {
    pub name: String,
    pub kind: &'static str,
    pub village_code: RegionCode,
    pub hamlet: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub frequencies: String,
    pub power_w: f64,
    pub in_service: bool,
}

/// `regions` is the output of `cuncun_regions::extract` for a county (ancestors included); the
/// county, the townships and the villages inside it are used, in code order.
///
/// Without a county-level region (e.g. 东莞市, whose townships sit directly under the city) the
/// parent of the first township stands in for the county; with no township at all the result is
/// empty.
pub fn generate(regions: &[Region], seed: u64) -> DemoCounty {
    let Some(county) = find_centre(regions) else {
        return DemoCounty::default();
    };
    let inside = |r: &&Region| county.code.contains(&r.code) && r.code != county.code;
    let mut townships: Vec<&Region> = regions
        .iter()
        .filter(inside)
        .filter(|r| r.level == RegionLevel::Township)
        .collect();
    let mut villages: Vec<&Region> = regions
        .iter()
        .filter(inside)
        .filter(|r| r.level == RegionLevel::Village)
        .collect();
    townships.sort_by(|a, b| a.code.cmp(&b.code));
    townships.dedup_by(|a, b| a.code == b.code);
    villages.sort_by(|a, b| a.code.cmp(&b.code));
    villages.dedup_by(|a, b| a.code == b.code);

    let county_ctx = CountyCtx::new(county, seed);
    let mut out = DemoCounty::default();
    out.outlets
        .push(county_ctx.county_outlet(townships.first().copied()));

    // Villages grouped by their township (the nearest ancestor in the data), in code order.
    let mut by_township: BTreeMap<&RegionCode, Vec<&Region>> = BTreeMap::new();
    for v in &villages {
        by_township
            .entry(v.parent.as_ref().unwrap_or(&county.code))
            .or_default()
            .push(v);
    }
    for t in &townships {
        let tctx = TownshipCtx::new(&county_ctx, t.code.clone(), &t.name);
        let vs = by_township.remove(&t.code).unwrap_or_default();
        tctx.generate(&vs, &mut out);
    }
    // Villages whose parent is not a listed township (not seen in the 2023 data) still get data.
    for (code, vs) in by_township {
        let tctx = TownshipCtx::new(&county_ctx, code.clone(), &county.name);
        tctx.generate(&vs, &mut out);
    }
    out.transmitters = county_ctx.transmitters(&townships, &villages, &out.hamlets);
    out
}

fn find_centre(regions: &[Region]) -> Option<&Region> {
    if let Some(c) = regions.iter().find(|r| r.level == RegionLevel::County) {
        return Some(c);
    }
    let first_township = regions.iter().find(|r| r.level == RegionLevel::Township)?;
    let parent = first_township.parent.as_ref()?;
    regions.iter().find(|r| &r.code == parent)
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An RNG for one (purpose, region) pair, independent of generation order.
fn sub_rng(seed: u64, purpose: u64, code: &RegionCode) -> StdRng {
    // The 12-digit code fits in a u64; digits are checked by RegionCode.
    let n = code
        .as_str()
        .bytes()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    StdRng::seed_from_u64(splitmix64(
        seed ^ splitmix64(n.wrapping_mul(31).wrapping_add(purpose)),
    ))
}

const PURPOSE_COUNTY: u64 = 1;
const PURPOSE_TOWNSHIP: u64 = 2;
const PURPOSE_VILLAGE: u64 = 3;
const PURPOSE_PLACE: u64 = 4;
const PURPOSE_COUNTY_OUTLET: u64 = 5;
const PURPOSE_TOWNSHIP_LOT: u64 = 6;
const PURPOSE_HAMLET_ASSIGN: u64 = 7;
const PURPOSE_SITE: u64 = 8;

// ---------------------------------------------------------------------------------------------
// Name and number material

/// Surnames with approximate shares (per 10,000) from the 2020 census, plus the locally common
/// 向, 冉, 谭 and 覃 of the Three Gorges area.
const SURNAMES: &[(&str, u32)] = &[
    ("王", 712),
    ("李", 700),
    ("张", 674),
    ("刘", 510),
    ("陈", 461),
    ("杨", 322),
    ("黄", 245),
    ("赵", 219),
    ("吴", 200),
    ("周", 195),
    ("徐", 145),
    ("孙", 138),
    ("马", 129),
    ("朱", 126),
    ("胡", 116),
    ("郭", 115),
    ("何", 105),
    ("林", 97),
    ("高", 96),
    ("罗", 95),
    ("郑", 91),
    ("梁", 88),
    ("谢", 72),
    ("宋", 66),
    ("唐", 65),
    ("许", 63),
    ("韩", 61),
    ("邓", 60),
    ("冯", 59),
    ("曹", 57),
    ("彭", 56),
    ("曾", 55),
    ("肖", 54),
    ("田", 53),
    ("董", 52),
    ("袁", 50),
    ("潘", 49),
    ("蒋", 48),
    ("蔡", 47),
    ("余", 47),
    ("杜", 46),
    ("叶", 45),
    ("程", 44),
    ("魏", 43),
    ("苏", 42),
    ("吕", 41),
    ("丁", 40),
    ("任", 39),
    ("卢", 38),
    ("姚", 37),
    ("沈", 36),
    ("钟", 35),
    ("姜", 34),
    ("崔", 33),
    ("谭", 60),
    ("陆", 31),
    ("范", 30),
    ("汪", 29),
    ("廖", 28),
    ("石", 27),
    ("金", 26),
    ("韦", 25),
    ("贾", 24),
    ("夏", 23),
    ("付", 22),
    ("方", 21),
    ("邹", 20),
    ("熊", 25),
    ("白", 18),
    ("孟", 17),
    ("秦", 16),
    ("邱", 15),
    ("侯", 14),
    ("江", 13),
    ("尹", 12),
    ("薛", 11),
    ("段", 10),
    ("雷", 10),
    ("龙", 10),
    ("黎", 10),
    ("陶", 9),
    ("贺", 9),
    ("毛", 9),
    ("龚", 8),
    ("万", 8),
    ("覃", 20),
    ("向", 45),
    ("冉", 25),
    ("牟", 12),
    ("鲜", 5),
];

const GIVEN_MALE: &[&str] = &[
    "德", "明", "国", "华", "建", "军", "平", "志", "文", "荣", "贵", "发", "成", "林", "强", "勇",
    "洪", "富", "昌", "金", "春", "永", "兴", "光", "祥", "伟", "涛", "清", "云", "海", "山", "福",
    "全", "生", "友", "才", "顺", "中", "良", "开", "学", "江", "远", "波", "斌",
];
const GIVEN_FEMALE: &[&str] = &[
    "秀", "英", "芳", "兰", "琼", "玉", "珍", "凤", "霞", "梅", "桂", "丽", "群", "莲", "碧", "素",
    "淑", "燕", "红", "萍", "翠", "容", "琴", "菊", "慧", "敏", "静", "娟", "香", "艳",
];

/// Endings of hamlet names built on a clan surname (王家湾, 李家坝).
const CLAN_SUFFIXES: &[&str] = &[
    "家湾",
    "家坝",
    "家沟",
    "家坪",
    "家院子",
    "家梁",
    "家岩",
    "家垭",
    "家槽",
    "家嘴",
    "家坡",
    "家河",
];
/// Descriptive hamlet names: a landscape word plus a landform (石板沟, 大坪).
const PLACE_HEADS: &[&str] = &[
    "石板", "大", "小", "上", "下", "中", "新", "老", "黄泥", "青杠", "竹林", "柏树", "桐子",
    "茶园", "枫香", "松林", "岩", "水井", "龙洞", "白果", "核桃", "高", "长", "马鞍", "狮子",
    "凉水", "干", "团", "晒", "沙", "麻柳", "杉木", "火烧", "烂泥", "梨子", "板栗",
];
const PLACE_TAILS: &[&str] = &[
    "沟", "坪", "坝", "湾", "梁", "岩", "垭", "槽", "坡", "包", "堡", "岭", "嘴", "溪", "口",
];
/// Residents' groups of urban communities (社区).
const ESTATE_HEADS: &[&str] = &[
    "滨江", "诗城", "白帝", "桂花", "移民", "新城", "阳光", "学府", "锦绣", "江南", "朝阳", "幸福",
    "和平", "翠屏", "金山", "梧桐", "柑橘", "天池", "夔门", "永安",
];
const ESTATE_TAILS: &[&str] = &["小区", "花园", "苑", "新村", "安置点", "家园"];
const TOWN_STREETS: &[&str] = &[
    "正街",
    "新街",
    "老街",
    "中街",
    "解放路",
    "人民路",
    "建设路",
    "滨江路",
    "移民街",
    "场镇路",
];

const MOBILE_PREFIXES: &[&str] = &[
    "133", "135", "136", "138", "139", "150", "151", "152", "155", "157", "158", "159", "177",
    "180", "181", "182", "183", "187", "188", "189", "191", "193", "195", "198", "199",
];

/// Terminal makes per vendor: (vendor, outdoor loudspeaker, column speaker, in-home receiver).
const VENDORS: &[(&str, &str, &str, &str)] = &[
    ("华数", "HS-OL200", "HS-CS60", "HS-R10"),
    ("迪威", "EB-OL200", "EB-CS40", "EB-IR10"),
    ("数码视讯", "SM-EB3000", "SM-CS60", "SM-R100"),
    ("国广", "GG-EBT100", "GG-YZ60", "GG-SYJ10"),
];

/// Rough bounding boxes (lon min, lon max, lat min, lat max) of counties known to the demo.
fn bounding_box(county: &RegionCode) -> Option<(f64, f64, f64, f64)> {
    match county.short() {
        "500236" => Some((109.0, 109.8, 30.6, 31.4)),
        _ => None,
    }
}

/// Long-distance dialling code of a few known places, by the longest matching code prefix.
fn area_code(county: &RegionCode) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("11", "010"),
        ("12", "022"),
        ("31", "021"),
        ("50", "023"),
        ("1408", "0359"),
        ("5104", "0812"),
        ("5305", "0875"),
    ];
    CODES
        .iter()
        .filter(|(p, _)| county.short().starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, c)| *c)
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &[&'a T]) -> &'a T {
    items[rng.gen_range(0..items.len())]
}

fn pick_surname(rng: &mut StdRng) -> &'static str {
    let total: u32 = SURNAMES.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (s, w) in SURNAMES {
        if x < *w {
            return s;
        }
        x -= w;
    }
    SURNAMES[0].0
}

fn person_name(rng: &mut StdRng, surname: &str) -> String {
    let pool = if rng.gen_bool(0.6) {
        GIVEN_MALE
    } else {
        GIVEN_FEMALE
    };
    let mut name = surname.to_string();
    name.push_str(pick(rng, pool));
    if rng.gen_bool(0.7) {
        name.push_str(pick(rng, pool));
    }
    name
}

fn mobile(rng: &mut StdRng) -> String {
    format!(
        "{}{:08}",
        pick(rng, MOBILE_PREFIXES),
        rng.gen_range(0..100_000_000u32)
    )
}

/// "XX村村民委员会" -> "XX村", "XX社区居民委员会" -> "XX社区": the names people use.
fn short_village_name(name: &str) -> String {
    for (suffix, kind) in [
        ("村民委员会", "村"),
        ("村委会", "村"),
        ("居民委员会", "社区"),
        ("居委会", "社区"),
    ] {
        if let Some(rest) = name.strip_suffix(suffix) {
            if rest.ends_with(kind) {
                return rest.to_string();
            }
            return format!("{rest}{kind}");
        }
    }
    name.to_string()
}

// ---------------------------------------------------------------------------------------------
// County and township

struct CountyCtx<'a> {
    seed: u64,
    county: &'a Region,
    bbox: Option<(f64, f64, f64, f64)>,
    area_code: String,
    /// First digits of the county's landline numbers (one exchange for the county).
    exchange: u32,
    hotline: String,
}

impl<'a> CountyCtx<'a> {
    fn new(county: &'a Region, seed: u64) -> Self {
        let mut rng = sub_rng(seed, PURPOSE_COUNTY, &county.code);
        let area_code = match area_code(&county.code) {
            Some(c) => c.to_string(),
            None => format!("0{}", rng.gen_range(310..=999)),
        };
        // Eight-digit local numbers under one county exchange (奉节县 numbers are 023-56xx xxxx).
        let exchange = rng.gen_range(5000..=5999);
        let hotline = format!("{area_code}-{exchange}{:04}", rng.gen_range(0..10_000));
        CountyCtx {
            seed,
            county,
            bbox: bounding_box(&county.code),
            area_code,
            exchange,
            hotline,
        }
    }

    fn landline(&self, rng: &mut StdRng) -> String {
        format!(
            "{}-{}{:04}",
            self.area_code,
            self.exchange,
            rng.gen_range(0..10_000)
        )
    }

    fn county_outlet(&self, seat: Option<&Region>) -> NewOutlet {
        let mut rng = sub_rng(self.seed, PURPOSE_COUNTY_OUTLET, &self.county.code);
        let seat = seat.map(|t| t.name.as_str()).unwrap_or("");
        let road = pick(
            &mut rng,
            &["人民路", "建设路", "滨江路", "解放路", "新华路"],
        );
        NewOutlet {
            kind: OutletKind::County,
            region_code: self.county.code.clone(),
            name: format!("{}广电服务中心", self.county.name),
            address: format!(
                "{}{seat}{road}{}号",
                self.county.name,
                rng.gen_range(1..=300)
            ),
            phone: self.landline(&mut rng),
            hotline: self.hotline.clone(),
        }
    }

    /// The county's transmitting stations: the county radio and TV station (FM, and DTMB since
    /// the analogue switch-off) on a hill of the county seat, a relay station (差转台) in about
    /// one rural township in three, and one analogue TV relay kept on the register out of
    /// service. Relays stand in their village's main hamlet.
    fn transmitters(&self, townships: &[&Region], villages: &[&Region], hamlets: &[NewHamlet]) -> Vec<DemoSite> {
        let mut rng = sub_rng(self.seed, PURPOSE_SITE, &self.county.code);
        let in_township = |t: &RegionCode| -> Vec<&Region> { villages.iter().copied().filter(|v| t.contains(&v.code)).collect() };
        let main_hamlet = |v: &RegionCode| hamlets.iter().find(|h| &h.village_code == v).map(|h| h.name.clone());
        let mut out = Vec::new();
        let mut site = |rng: &mut StdRng, name: String, kind: &'static str, village: &Region, township: &str, frequencies: String, power_w: f64, in_service: bool| {
            let (lon, lat) = match self.place(&village.code, township) {
                Some((x, y)) => (Some(round6(x + rng.gen_range(-0.01..=0.01))), Some(round6(y + rng.gen_range(-0.01..=0.01)))),
                None => (None, None),
            };
            out.push(DemoSite { name, kind, village_code: village.code.clone(), hamlet: main_hamlet(&village.code), lon, lat, frequencies, power_w, in_service });
        };
        let county = self.county.name.as_str();
        let fm_county = format!("{:.1}", 88.0 + f64::from(rng.gen_range(0..100_u32)) / 10.0);
        let dtmb = rng.gen_range(13..=48);
        if let Some(seat) = townships.first()
            && let Some(v) = in_township(&seat.code).first()
        {
            site(&mut rng, format!("{county}广播电视发射台"), "fm", v, &seat.name, format!("FM {fm_county} MHz（县台）, FM 106.1 MHz（转播中央台）"), 1000.0, true);
            site(&mut rng, format!("{county}地面数字电视发射台"), "dtmb", v, &seat.name, format!("DS-{dtmb}, DS-{}", dtmb + 4), 500.0, true);
        }
        let mut retired = false;
        for t in townships.iter().skip(1).filter(|t| !t.name.ends_with("街道")) {
            if !rng.gen_bool(0.35) {
                continue;
            }
            let vs = in_township(&t.code);
            let Some(v) = vs.get(rng.gen_range(0..vs.len().max(1))) else { continue };
            let power = f64::from(rng.gen_range(1..=4_u32)) * 25.0;
            site(&mut rng, format!("{}广播电视差转台", t.name), "relay", v, &t.name, format!("FM {fm_county} MHz, DS-{dtmb}（转播）"), power, true);
            if !retired {
                retired = true;
                site(&mut rng, format!("{}电视差转台（模拟）", t.name), "tv", v, &t.name, "CH-8（模拟电视，2020年停播）".to_string(), 30.0, false);
            }
        }
        out
    }

    /// A point for a region: 街道 cluster round the county seat (taken as the box centre), other
    /// townships scatter over the box, villages lie round their township and terminals round their
    /// village. The margins keep the scatter inside the box, so clamping rarely bites.
    fn place(&self, code: &RegionCode, township_name: &str) -> Option<(f64, f64)> {
        let (x0, x1, y0, y1) = self.bbox?;
        let mut rng = sub_rng(self.seed, PURPOSE_PLACE, code);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let (cx, cy, dx, dy) = match code.level() {
            RegionLevel::Village => {
                let (tx, ty) = code.parent().and_then(|t| self.place(&t, township_name))?;
                (tx, ty, VILLAGE_SPREAD, VILLAGE_SPREAD)
            }
            _ if township_name.ends_with("街道") => (cx, cy, 0.04, 0.04),
            _ => (cx, cy, (x1 - x0) / 2.0 - MARGIN, (y1 - y0) / 2.0 - MARGIN),
        };
        let x = (cx + rng.gen_range(-dx..=dx)).clamp(x0, x1);
        let y = (cy + rng.gen_range(-dy..=dy)).clamp(y0, y1);
        Some((x, y))
    }
}

/// Degrees a village lies from its township, and a terminal from its village.
const VILLAGE_SPREAD: f64 = 0.06;
const TERMINAL_SPREAD: f64 = 0.008;
const MARGIN: f64 = VILLAGE_SPREAD + TERMINAL_SPREAD + 0.002;

/// Rounds to six decimals (about 0.1 m) so stored coordinates look like survey data.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

struct TownshipCtx<'a> {
    county: &'a CountyCtx<'a>,
    code: RegionCode,
    name: String,
    /// The vendor of the township's procurement lot; most of its terminals come from it.
    vendor: usize,
    /// 乡 (rural townships) are more remote than 镇 and 街道.
    remote_bias: f64,
}

impl<'a> TownshipCtx<'a> {
    fn new(county: &'a CountyCtx<'a>, code: RegionCode, name: &str) -> Self {
        let mut rng = sub_rng(county.seed, PURPOSE_TOWNSHIP_LOT, &code);
        let remote_bias = if name.ends_with('乡') {
            0.25
        } else if name.ends_with("街道") {
            -0.3
        } else {
            0.0
        };
        TownshipCtx {
            county,
            vendor: rng.gen_range(0..VENDORS.len()),
            code,
            name: name.to_string(),
            remote_bias,
        }
    }

    fn generate(&self, villages: &[&Region], out: &mut DemoCounty) {
        let mut rng = sub_rng(self.county.seed, PURPOSE_TOWNSHIP, &self.code);
        let street = pick(&mut rng, TOWN_STREETS);
        out.outlets.push(NewOutlet {
            kind: OutletKind::Township,
            region_code: self.code.clone(),
            name: format!("{}广电服务站", self.name),
            address: format!(
                "{}{}{street}{}号",
                self.county.county.name,
                self.name,
                rng.gen_range(1..=120)
            ),
            phone: self.county.landline(&mut rng),
            hotline: self.county.hotline.clone(),
        });
        for i in 1..=rng.gen_range(1..=2) {
            let t = self.terminal(
                &mut rng,
                TerminalKind::ColumnSpeaker,
                &self.code,
                format!("{}{i}号音柱", self.name),
            );
            out.terminals.push(t);
        }
        // One steward for every 1-3 neighbouring villages.
        let mut rest = villages;
        while !rest.is_empty() {
            let n = rng.gen_range(1..=3).min(rest.len());
            let (mine, tail) = rest.split_at(n);
            rest = tail;
            let surname = pick_surname(&mut rng);
            out.stewards.push(NewSteward {
                name: person_name(&mut rng, surname),
                phone: mobile(&mut rng),
                region_code: self.code.clone(),
                villages: mine.iter().map(|v| v.code.clone()).collect(),
            });
        }
        for v in villages {
            VillageGen::new(self, v).generate(out);
        }
    }

    fn terminal(
        &self,
        rng: &mut StdRng,
        kind: TerminalKind,
        code: &RegionCode,
        name: String,
    ) -> NewTerminal {
        let vendor = if rng.gen_bool(0.85) {
            self.vendor
        } else {
            rng.gen_range(0..VENDORS.len())
        };
        let (vendor, outdoor, column, receiver) = VENDORS[vendor];
        let model = match kind {
            TerminalKind::OutdoorLoudspeaker => outdoor,
            TerminalKind::InHomeReceiver => receiver,
            _ => column,
        };
        let (lon, lat) = match self.county.place(code, &self.name) {
            Some((x, y)) => {
                let (x0, x1, y0, y1) = self.county.bbox.unwrap_or((x, x, y, y));
                let lon = (x + rng.gen_range(-TERMINAL_SPREAD..=TERMINAL_SPREAD)).clamp(x0, x1);
                let lat = (y + rng.gen_range(-TERMINAL_SPREAD..=TERMINAL_SPREAD)).clamp(y0, y1);
                (Some(round6(lon)), Some(round6(lat)))
            }
            None => (None, None),
        };
        NewTerminal {
            kind,
            region_code: code.clone(),
            name,
            vendor: vendor.to_string(),
            model: model.to_string(),
            lon,
            lat,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Village

struct VillageGen<'a> {
    town: &'a TownshipCtx<'a>,
    village: &'a Region,
    name: String,
    urban: bool,
    /// 0 (by the road) to 1 (far up the mountain): fewer fibre lines, more satellite dishes.
    remote: f64,
    rng: StdRng,
}

impl<'a> VillageGen<'a> {
    fn new(town: &'a TownshipCtx<'a>, village: &'a Region) -> Self {
        let mut rng = sub_rng(town.county.seed, PURPOSE_VILLAGE, &village.code);
        let name = short_village_name(&village.name);
        let urban = name.ends_with("社区");
        let remote = if urban {
            0.0
        } else {
            (rng.gen_range(0.0..1.0) + town.remote_bias).clamp(0.0, 1.0)
        };
        VillageGen {
            town,
            village,
            name,
            urban,
            remote,
            rng,
        }
    }

    fn generate(mut self, out: &mut DemoCounty) {
        let hamlets = self.hamlet_names();
        let sizes = self.hamlet_sizes(hamlets.len());
        let code = &self.village.code;
        let first_household = out.households.len();
        let first_terminal = out.terminals.len();
        for ((hamlet, clan), size) in hamlets.iter().zip(&sizes) {
            let mut population = 0;
            for n in 1..=*size {
                let h = self.household(hamlet, *clan, n);
                population += h.members;
                out.households.push(h);
            }
            out.hamlets.push(NewHamlet {
                village_code: code.clone(),
                name: hamlet.clone(),
                households: *size,
                population,
            });
        }

        let rng = &mut self.rng;
        let agent_hamlet = hamlets.first().map(|(h, _)| h.as_str()).unwrap_or("");
        out.outlets.push(NewOutlet {
            kind: OutletKind::VillageAgent,
            region_code: code.clone(),
            name: format!("{}广电代办点", self.name),
            address: format!(
                "{}{}{agent_hamlet}{}号",
                self.town.name,
                self.name,
                rng.gen_range(1..=40)
            ),
            phone: mobile(rng),
            hotline: self.town.county.hotline.clone(),
        });

        let town = self.town;
        for i in 1..=rng.gen_range(2..=6) {
            let t = town.terminal(
                rng,
                TerminalKind::OutdoorLoudspeaker,
                code,
                format!("{}{i}号大喇叭", self.name),
            );
            out.terminals.push(t);
        }
        for i in 1..=rng.gen_range(0..=3) {
            let t = town.terminal(
                rng,
                TerminalKind::ColumnSpeaker,
                code,
                format!("{}{i}号音柱", self.name),
            );
            out.terminals.push(t);
        }
        // In-home receivers go to a few special-care households, as in the 应急广播 pilots.
        let mut receivers = 0;
        for h in &out.households[first_household..] {
            if receivers < 6
                && (h.care_elderly || h.care_children || h.care_disabled)
                && rng.gen_bool(0.3)
            {
                receivers += 1;
                let t = town.terminal(
                    rng,
                    TerminalKind::InHomeReceiver,
                    code,
                    format!("{}户内接收终端", h.address),
                );
                out.terminals.push(t);
            }
        }

        // Where each terminal stands: a village puts most loudspeakers and column speakers in
        // its largest hamlets not yet served, one at a time, and some a second in the main
        // hamlet (the village centre); an in-home receiver stands in its household's hamlet.
        // Villages with more hamlets than loudspeakers leave some hamlets uncovered.
        let mut arng = sub_rng(town.county.seed, PURPOSE_HAMLET_ASSIGN, code);
        let mut largest: Vec<usize> = (0..hamlets.len()).collect();
        largest.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
        let mut next = largest.into_iter();
        for t in &out.terminals[first_terminal..] {
            let i = if t.kind == TerminalKind::InHomeReceiver {
                hamlets.iter().position(|(h, _)| {
                    t.name.strip_prefix(&format!("{}{h}", self.name)).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                })
            } else if arng.gen_bool(0.8) {
                next.next()
            } else {
                None
            };
            let hamlet = &hamlets[i.unwrap_or(0)].0;
            out.terminal_hamlets.push((code.clone(), t.name.clone(), hamlet.clone()));
        }
    }

    /// 3-9 distinct names; the surname is kept for clan hamlets, whose households mostly share it.
    fn hamlet_names(&mut self) -> Vec<(String, Option<&'static str>)> {
        let count = self.rng.gen_range(3..=9);
        let mut names: Vec<(String, Option<&'static str>)> = Vec::with_capacity(count);
        let mut seen = HashSet::new();
        for i in 0..count {
            let mut made = None;
            for _ in 0..20 {
                let candidate = self.hamlet_name();
                if seen.insert(candidate.0.clone()) {
                    made = Some(candidate);
                    break;
                }
            }
            // Twenty collisions in a row are unlikely; fall back to a numbered group.
            names.push(made.unwrap_or_else(|| (format!("第{}组", i + 1), None)));
        }
        names
    }

    fn hamlet_name(&mut self) -> (String, Option<&'static str>) {
        let rng = &mut self.rng;
        if self.urban {
            return (
                format!("{}{}", pick(rng, ESTATE_HEADS), pick(rng, ESTATE_TAILS)),
                None,
            );
        }
        if rng.gen_bool(0.5) {
            let surname = pick_surname(rng);
            (
                format!("{surname}{}", pick(rng, CLAN_SUFFIXES)),
                Some(surname),
            )
        } else {
            (
                format!("{}{}", pick(rng, PLACE_HEADS), pick(rng, PLACE_TAILS)),
                None,
            )
        }
    }

    /// 150-300 households split over the hamlets: about one hamlet in five is a small cluster of
    /// 5-19 households, the others share the rest with random weights.
    fn hamlet_sizes(&mut self, hamlets: usize) -> Vec<i64> {
        let rng = &mut self.rng;
        let total: i64 = rng.gen_range(150..=300);
        let small: Vec<bool> = (0..hamlets).map(|i| i > 0 && rng.gen_bool(0.2)).collect();
        let mut sizes: Vec<i64> = small
            .iter()
            .map(|&s| if s { rng.gen_range(5..=19) } else { 0 })
            .collect();
        let weights: Vec<f64> = small
            .iter()
            .map(|&s| if s { 0.0 } else { rng.gen_range(0.5..1.5) })
            .collect();
        let rest = total - sizes.iter().sum::<i64>();
        let wsum: f64 = weights.iter().sum();
        for (s, w) in sizes.iter_mut().zip(&weights) {
            if *w > 0.0 {
                *s = (rest as f64 * w / wsum).floor() as i64;
            }
        }
        // Rounding leftovers go to the first big hamlet (the one the village is named after).
        let leftover = total - sizes.iter().sum::<i64>();
        if let Some(i) = small.iter().position(|s| !s) {
            sizes[i] += leftover;
        }
        sizes
    }

    fn household(&mut self, hamlet: &str, clan: Option<&'static str>, n: i64) -> NewHousehold {
        let (urban, remote) = (self.urban, self.remote);
        let rng = &mut self.rng;
        let surname = match clan {
            Some(s) if rng.gen_bool(0.45) => s,
            _ => pick_surname(rng),
        };
        let head_name = person_name(rng, surname);
        // 1-6 members, mean about 2.8 (rural households have shrunk with out-migration).
        let members = match rng.gen_range(0..100) {
            0..18 => 1,
            18..48 => 2,
            48..70 => 3,
            70..85 => 4,
            85..95 => 5,
            _ => 6,
        };
        let fibre = rng.gen_bool(if urban {
            0.9
        } else {
            (0.8 - 0.45 * remote).clamp(0.05, 0.95)
        });
        let hd = rng.gen_bool(if fibre { 0.7 } else { 0.35 });
        let coverage_modes = coverage(rng, urban, remote, fibre);
        let care_elderly = rng.gen_bool(if members <= 2 { 0.12 } else { 0.04 });
        let care_children = members >= 2 && rng.gen_bool(0.05);
        let care_disabled = rng.gen_bool(0.03);
        NewHousehold {
            village_code: self.village.code.clone(),
            hamlet: Some(hamlet.to_string()),
            head_name,
            phone: mobile(rng),
            address: format!("{}{hamlet}{n}号", self.name),
            members,
            coverage_modes,
            hd,
            fibre,
            care_elderly,
            care_children,
            care_disabled,
        }
    }
}

/// One main way of receiving TV, a second one for about a quarter of households, none for ~1%.
/// Satellite (直播卫星户户通) dominates remote mountain villages; IPTV needs a fibre line.
fn coverage(rng: &mut StdRng, urban: bool, remote: f64, fibre: bool) -> Vec<CoverageMode> {
    use CoverageMode::*;
    if rng.gen_bool(0.01) {
        return Vec::new();
    }
    let weights: [(CoverageMode, f64); 5] = if urban {
        [
            (Cable, 0.45),
            (Iptv, 0.33),
            (FiveG, 0.08),
            (Terrestrial, 0.08),
            (Satellite, 0.06),
        ]
    } else {
        [
            (Satellite, 0.40 + 0.3 * remote),
            (Cable, 0.25 * (1.0 - remote)),
            (Terrestrial, 0.12),
            (Iptv, 0.18),
            (FiveG, 0.03),
        ]
    };
    let mut modes = Vec::with_capacity(2);
    let first = weighted_mode(rng, &weights, fibre, &modes);
    modes.push(first);
    if rng.gen_bool(0.25) {
        let second = weighted_mode(rng, &weights, fibre, &modes);
        if !modes.contains(&second) {
            modes.push(second);
        }
    }
    // Stored as a set in a fixed order.
    CoverageMode::ALL
        .into_iter()
        .filter(|m| modes.contains(m))
        .collect()
}

fn weighted_mode(
    rng: &mut StdRng,
    weights: &[(CoverageMode, f64)],
    fibre: bool,
    taken: &[CoverageMode],
) -> CoverageMode {
    let usable = |m: CoverageMode| (fibre || m != CoverageMode::Iptv) && !taken.contains(&m);
    let total: f64 = weights
        .iter()
        .filter(|(m, _)| usable(*m))
        .map(|(_, w)| w)
        .sum();
    let mut x = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
    for &(m, w) in weights.iter().filter(|(m, _)| usable(*m)) {
        if x < w {
            return m;
        }
        x -= w;
    }
    CoverageMode::Satellite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn village_short_names() {
        assert_eq!(short_village_name("桥湾村村民委员会"), "桥湾村");
        assert_eq!(short_village_name("真武村民委员会"), "真武村");
        assert_eq!(short_village_name("朝阳社区居民委员会"), "朝阳社区");
        assert_eq!(short_village_name("多福巷社区居委会"), "多福巷社区");
        assert_eq!(short_village_name("新村委会"), "新村");
        assert_eq!(short_village_name("某农场生活区"), "某农场生活区");
    }
}
