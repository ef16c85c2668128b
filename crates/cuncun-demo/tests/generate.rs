// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use cuncun_demo::{DemoCounty, generate};
use cuncun_domain::model::{CoverageMode, OutletKind, Region, TerminalKind};
use cuncun_domain::{RegionCode, RegionLevel};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Instant;

fn fengjie() -> &'static [Region] {
    static R: OnceLock<Vec<Region>> = OnceLock::new();
    R.get_or_init(|| cuncun_regions::extract("500236").unwrap())
}

fn fengjie_demo() -> &'static DemoCounty {
    static D: OnceLock<DemoCounty> = OnceLock::new();
    D.get_or_init(|| generate(fengjie(), 42))
}

fn villages(regions: &[Region]) -> Vec<&Region> {
    regions
        .iter()
        .filter(|r| r.level == RegionLevel::Village)
        .collect()
}

fn ratio(n: usize, d: usize) -> f64 {
    n as f64 / d as f64
}

#[test]
fn fast_enough_and_deterministic() {
    let regions = fengjie();
    let t = Instant::now();
    let a = generate(regions, 7);
    let took = t.elapsed();
    eprintln!(
        "generate(500236): {} hamlets, {} households, {} stewards, {} outlets, {} terminals in {took:?}",
        a.hamlets.len(),
        a.households.len(),
        a.stewards.len(),
        a.outlets.len(),
        a.terminals.len()
    );
    assert!(took.as_secs_f64() < 2.0, "took {took:?}");
    let b = generate(regions, 7);
    assert_eq!(a, b);
    // Byte-identical, not just equal (f64 coordinates included).
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_ne!(a.households, generate(regions, 8).households);
}

#[test]
fn independent_of_input_order() {
    let regions = fengjie();
    let mut reversed = regions.to_vec();
    reversed.reverse();
    assert_eq!(generate(&reversed, 42), *fengjie_demo());
    // A village's data depends on its own code only, not on which other villages are present.
    let one_township: Vec<Region> = regions
        .iter()
        .filter(|r| {
            !r.code.as_str().starts_with("500236")
                || r.code.as_str().starts_with("500236117")
                || r.level == RegionLevel::County
        })
        .cloned()
        .collect();
    let part = generate(&one_township, 42);
    let full: Vec<_> = fengjie_demo()
        .households
        .iter()
        .filter(|h| h.village_code.as_str().starts_with("500236117"))
        .collect();
    assert_eq!(part.households.iter().collect::<Vec<_>>(), full);
    assert!(!full.is_empty());
}

#[test]
fn hamlet_totals_match_households() {
    let d = fengjie_demo();
    let mut sums: HashMap<(&RegionCode, &str), (i64, i64)> = HashMap::new();
    for h in &d.households {
        let e = sums
            .entry((&h.village_code, h.hamlet.as_deref().unwrap()))
            .or_default();
        e.0 += 1;
        e.1 += h.members;
    }
    assert_eq!(
        sums.len(),
        d.hamlets.len(),
        "every household's hamlet exists and vice versa"
    );
    for hm in &d.hamlets {
        assert_eq!(
            sums[&(&hm.village_code, hm.name.as_str())],
            (hm.households, hm.population),
            "{}",
            hm.name
        );
    }
    // Hamlet names are unique within a village.
    let names: HashSet<_> = d
        .hamlets
        .iter()
        .map(|h| (&h.village_code, &h.name))
        .collect();
    assert_eq!(names.len(), d.hamlets.len());
}

#[test]
fn everything_lies_inside_the_county() {
    let county = RegionCode::parse("500236").unwrap();
    let regions = fengjie();
    let known: HashMap<&RegionCode, &Region> = regions.iter().map(|r| (&r.code, r)).collect();
    let d = fengjie_demo();
    for h in &d.households {
        assert_eq!(known[&h.village_code].level, RegionLevel::Village);
    }
    for hm in &d.hamlets {
        assert_eq!(known[&hm.village_code].level, RegionLevel::Village);
    }
    for t in &d.terminals {
        assert!(
            county.contains(&t.region_code) && known.contains_key(&t.region_code),
            "{}",
            t.name
        );
        let (lon, lat) = (t.lon.unwrap(), t.lat.unwrap());
        // Strictly inside: points are scattered, not piled up on the box edge by clamping.
        assert!(
            lon > 109.0 && lon < 109.8 && lat > 30.6 && lat < 31.4,
            "{lon},{lat}"
        );
    }
    for s in &d.stewards {
        assert_eq!(known[&s.region_code].level, RegionLevel::Township);
        for v in &s.villages {
            assert_eq!(
                known[v].parent.as_ref(),
                Some(&s.region_code),
                "steward villages are in their township"
            );
        }
    }
    for o in &d.outlets {
        assert!(county.contains(&o.region_code) && known.contains_key(&o.region_code));
    }
}

#[test]
fn plausible_counts() {
    let regions = fengjie();
    let vs = villages(regions);
    let townships = regions
        .iter()
        .filter(|r| r.level == RegionLevel::Township)
        .count();
    let d = fengjie_demo();

    let mut per_village: BTreeMap<&RegionCode, (usize, i64)> = BTreeMap::new();
    for hm in &d.hamlets {
        let e = per_village.entry(&hm.village_code).or_default();
        e.0 += 1;
        e.1 += hm.households;
    }
    assert_eq!(per_village.len(), vs.len());
    for (code, (hamlets, households)) in &per_village {
        assert!((3..=9).contains(hamlets), "{code}: {hamlets} hamlets");
        assert!(
            (150..=300).contains(households),
            "{code}: {households} households"
        );
    }
    let small = d.hamlets.iter().filter(|h| h.households < 20).count();
    assert!(
        small > 0 && ratio(small, d.hamlets.len()) < 0.3,
        "{small} small hamlets"
    );

    let n = d.households.len();
    let members: i64 = d.households.iter().map(|h| h.members).sum();
    let mean = members as f64 / n as f64;
    assert!((2.5..=3.1).contains(&mean), "mean members {mean}");
    assert!(d.households.iter().all(|h| (1..=6).contains(&h.members)));
    let count = |f: &dyn Fn(&cuncun_domain::model::NewHousehold) -> bool| {
        ratio(d.households.iter().filter(|h| f(h)).count(), n)
    };
    let checks = [
        ("hd", count(&|h| h.hd), 0.45, 0.65),
        ("fibre", count(&|h| h.fibre), 0.5, 0.7),
        (
            "no coverage",
            count(&|h| h.coverage_modes.is_empty()),
            0.003,
            0.02,
        ),
        (
            "two modes",
            count(&|h| h.coverage_modes.len() == 2),
            0.1,
            0.35,
        ),
        (
            "satellite",
            count(&|h| h.coverage_modes.contains(&CoverageMode::Satellite)),
            0.3,
            0.7,
        ),
        (
            "cable",
            count(&|h| h.coverage_modes.contains(&CoverageMode::Cable)),
            0.1,
            0.4,
        ),
        (
            "terrestrial",
            count(&|h| h.coverage_modes.contains(&CoverageMode::Terrestrial)),
            0.05,
            0.25,
        ),
        (
            "iptv",
            count(&|h| h.coverage_modes.contains(&CoverageMode::Iptv)),
            0.1,
            0.4,
        ),
        (
            "5g",
            count(&|h| h.coverage_modes.contains(&CoverageMode::FiveG)),
            0.01,
            0.1,
        ),
        ("elderly", count(&|h| h.care_elderly), 0.06, 0.10),
        ("children", count(&|h| h.care_children), 0.03, 0.05),
        ("disabled", count(&|h| h.care_disabled), 0.02, 0.04),
    ];
    for (what, r, lo, hi) in checks {
        eprintln!("{what}: {:.1}%", r * 100.0);
        assert!((lo..=hi).contains(&r), "{what}: {r}");
    }
    // Mode sets are stored in a fixed order without repeats.
    for h in &d.households {
        assert_eq!(
            CoverageMode::decode_set(&CoverageMode::encode_set(&h.coverage_modes)),
            h.coverage_modes
        );
    }

    // Stewards: each village exactly once, 1-3 villages each.
    let mut covered: Vec<&RegionCode> = d.stewards.iter().flat_map(|s| &s.villages).collect();
    assert!(
        d.stewards
            .iter()
            .all(|s| (1..=3).contains(&s.villages.len()))
    );
    covered.sort();
    let mut expected: Vec<&RegionCode> = vs.iter().map(|v| &v.code).collect();
    expected.sort();
    assert_eq!(covered, expected);
    assert!(d.stewards.len() >= vs.len() / 3 && d.stewards.len() <= vs.len());
    let _ = townships;
}

#[test]
fn outlets_and_terminals() {
    let regions = fengjie();
    let d = fengjie_demo();
    let county: Vec<_> = d
        .outlets
        .iter()
        .filter(|o| o.kind == OutletKind::County)
        .collect();
    assert_eq!(county.len(), 1);
    assert_eq!(county[0].name, "奉节县广电服务中心");
    assert!(county[0].address.starts_with("奉节县"));
    let hotline = &county[0].hotline;
    assert!(
        hotline.starts_with("023-5") && hotline.len() == 12,
        "{hotline}"
    );
    assert!(
        d.outlets
            .iter()
            .all(|o| &o.hotline == hotline && !o.phone.is_empty() && !o.address.is_empty())
    );

    for t in regions.iter().filter(|r| r.level == RegionLevel::Township) {
        let mine: Vec<_> = d
            .outlets
            .iter()
            .filter(|o| o.region_code == t.code)
            .collect();
        assert_eq!(mine.len(), 1, "{}", t.name);
        assert_eq!(
            (mine[0].kind, mine[0].name.clone()),
            (OutletKind::Township, format!("{}广电服务站", t.name))
        );
        let columns = d
            .terminals
            .iter()
            .filter(|x| x.region_code == t.code && x.kind == TerminalKind::ColumnSpeaker)
            .count();
        assert!((1..=2).contains(&columns));
    }
    for v in villages(regions) {
        let agents: Vec<_> = d
            .outlets
            .iter()
            .filter(|o| o.region_code == v.code)
            .collect();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].kind, OutletKind::VillageAgent);
        assert!(agents[0].name.ends_with("广电代办点"));
        let kinds = |k| {
            d.terminals
                .iter()
                .filter(|x| x.region_code == v.code && x.kind == k)
                .count()
        };
        assert!(
            (2..=6).contains(&kinds(TerminalKind::OutdoorLoudspeaker)),
            "{}",
            v.name
        );
        assert!(kinds(TerminalKind::ColumnSpeaker) <= 3);
        assert!(kinds(TerminalKind::InHomeReceiver) <= 6);
    }
    assert!(
        d.terminals
            .iter()
            .any(|t| t.kind == TerminalKind::InHomeReceiver)
    );
    let vendors: HashSet<_> = d.terminals.iter().map(|t| t.vendor.as_str()).collect();
    assert!(
        vendors.len() >= 2
            && vendors
                .iter()
                .all(|v| ["华数", "迪威", "数码视讯", "国广"].contains(v))
    );
    let names: HashSet<_> = d
        .terminals
        .iter()
        .map(|t| (&t.region_code, &t.name))
        .collect();
    assert_eq!(
        names.len(),
        d.terminals.len(),
        "terminal names are unique per region"
    );
}

fn is_chinese(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

fn is_mobile(p: &str) -> bool {
    p.len() == 11
        && p.starts_with('1')
        && (b'3'..=b'9').contains(&p.as_bytes()[1])
        && p.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn names_phones_and_addresses() {
    let d = fengjie_demo();
    let regions = fengjie();
    let village_names: HashMap<&RegionCode, &str> =
        regions.iter().map(|r| (&r.code, r.name.as_str())).collect();
    for h in &d.households {
        assert!(
            is_chinese(&h.head_name) && (2..=3).contains(&h.head_name.chars().count()),
            "{}",
            h.head_name
        );
        assert!(is_mobile(&h.phone), "{}", h.phone);
        let hamlet = h.hamlet.as_deref().unwrap();
        assert!(
            h.address.contains(hamlet) && h.address.ends_with('号'),
            "{}",
            h.address
        );
        // The address starts with the usual short form of the village name (桥湾村, 朝阳社区).
        let full = village_names[&h.village_code];
        let short = h.address.split(hamlet).next().unwrap();
        assert!(
            full.starts_with(short.trim_end_matches("村").trim_end_matches("社区")),
            "{full} / {}",
            h.address
        );
    }
    for s in &d.stewards {
        assert!(is_chinese(&s.name) && is_mobile(&s.phone));
    }
    // Common surnames dominate: 王李张刘陈 together head roughly a quarter to a third of households.
    let top5 = d
        .households
        .iter()
        .filter(|h| {
            ["王", "李", "张", "刘", "陈"]
                .iter()
                .any(|s| h.head_name.starts_with(s))
        })
        .count();
    let r = ratio(top5, d.households.len());
    assert!((0.2..=0.45).contains(&r), "{r}");
    for hm in d.hamlets.iter().take(30) {
        eprint!("{} ", hm.name);
    }
    eprintln!();
    for h in d.households.iter().step_by(9000) {
        eprintln!(
            "{} {} {} {} {:?}",
            h.head_name, h.phone, h.address, h.members, h.coverage_modes
        );
    }
    for o in d.outlets.iter().take(3) {
        eprintln!(
            "{:?} {} {} {} {}",
            o.kind, o.name, o.address, o.phone, o.hotline
        );
    }
    for t in d.terminals.iter().take(5) {
        eprintln!(
            "{:?} {} {} {} {:?} {:?}",
            t.kind, t.name, t.vendor, t.model, t.lon, t.lat
        );
    }
}

#[test]
fn other_counties() {
    // 稷山县: no bounding box is known, so no coordinates; the area code is 0359.
    let regions = cuncun_regions::extract("140824").unwrap();
    let d = generate(&regions, 1);
    assert_eq!(d.outlets.len(), 1 + 9 + 151);
    assert!(
        d.terminals
            .iter()
            .all(|t| t.lon.is_none() && t.lat.is_none())
    );
    assert!(d.outlets[0].hotline.starts_with("0359-"));
    assert_eq!(d.outlets[0].name, "稷山县广电服务中心");
    // 东莞市 has no county level: the city stands in for it.
    let regions = cuncun_regions::extract("4419").unwrap();
    let d = generate(&regions, 1);
    assert_eq!(d.outlets[0].name, "东莞市广电服务中心");
    assert_eq!(
        d.outlets
            .iter()
            .filter(|o| o.kind == OutletKind::Township)
            .count(),
        36
    );
    // Nothing to generate without townships.
    assert_eq!(generate(&regions[..1], 1), DemoCounty::default());
}

/// Every village terminal stands in a hamlet of its village; most hamlets of 20+ households are
/// served, not all (a figure a county would report), and in-home receivers stand where their
/// household lives.
#[test]
fn terminals_stand_in_hamlets_and_most_big_hamlets_are_served() {
    let d = fengjie_demo();
    let hamlets: HashMap<(&RegionCode, &str), i64> = d.hamlets.iter().map(|h| ((&h.village_code, h.name.as_str()), h.households)).collect();
    let village_terminals: Vec<_> = d.terminals.iter().filter(|t| t.region_code.level() == RegionLevel::Village).collect();
    assert_eq!(d.terminal_hamlets.len(), village_terminals.len(), "one hamlet per village terminal");
    let mut served = HashSet::new();
    for ((v, name, hamlet), t) in d.terminal_hamlets.iter().zip(&village_terminals) {
        assert_eq!((v, name), (&t.region_code, &t.name));
        assert!(hamlets.contains_key(&(v, hamlet.as_str())), "{hamlet} is a hamlet of {v}");
        if t.kind == TerminalKind::InHomeReceiver {
            assert!(t.name.contains(hamlet.as_str()), "{} stands in {hamlet}", t.name);
        }
        served.insert((v, hamlet.as_str()));
    }
    let big: Vec<_> = hamlets.iter().filter(|(_, n)| **n >= 20).map(|(k, _)| *k).collect();
    let covered = big.iter().filter(|k| served.contains(*k)).count();
    let rate = ratio(covered, big.len());
    eprintln!("demo hamlet coverage {rate:.3} ({covered} of {}), {} transmitter sites", big.len(), d.transmitters.len());
    assert!((0.75..0.97).contains(&rate), "hamlet coverage {rate:.3} ({covered} of {})", big.len());

    // Transmitters: the county station and a few relays, one analogue relay out of service.
    let kinds: Vec<_> = d.transmitters.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&"fm") && kinds.contains(&"dtmb") && kinds.iter().filter(|k| **k == "relay").count() >= 3, "{kinds:?}");
    assert_eq!(d.transmitters.iter().filter(|s| !s.in_service).count(), 1);
    assert!(d.transmitters.iter().all(|s| s.village_code.level() == RegionLevel::Village && s.lon.is_some() && !s.frequencies.is_empty()));
}
