// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use cuncun_domain::model::Region;
use cuncun_domain::{RegionCode, RegionLevel};
use cuncun_regions::{RegionsError, count_levels, extract, extract_all, lookup};
use std::collections::HashSet;
use std::time::Instant;

/// Every parent appears earlier in the list, codes are unique, levels come from the code, and
/// everything after the ancestors lies inside `root`.
fn check_order(regions: &[Region], root: Option<&str>) {
    let mut seen: HashSet<&RegionCode> = HashSet::new();
    for r in regions {
        assert_eq!(r.level, r.code.level(), "{}", r.code);
        match &r.parent {
            Some(p) => {
                assert!(
                    seen.contains(p),
                    "parent {p} of {} {} not seen before it",
                    r.code,
                    r.name
                );
                assert!(
                    p.contains(&r.code) && p.level() < r.level,
                    "{p} is not above {}",
                    r.code
                );
            }
            None => assert_eq!(r.level, RegionLevel::Province, "{} has no parent", r.code),
        }
        assert!(seen.insert(&r.code), "duplicate code {}", r.code);
    }
    if let Some(root) = root {
        let root = RegionCode::parse(root).unwrap();
        let at = regions
            .iter()
            .position(|r| r.code == root)
            .expect("root in output");
        assert_eq!(
            at,
            root.ancestors().len().min(at),
            "only ancestors precede the root"
        );
        assert!(regions[at..].iter().all(|r| root.contains(&r.code)));
        assert!(regions[..at].iter().all(|r| r.code.contains(&root)));
    }
}

fn timed_extract(code: &str) -> Vec<Region> {
    let t = Instant::now();
    let v = extract(code).unwrap();
    eprintln!("extract({code}): {} regions in {:?}", v.len(), t.elapsed());
    check_order(&v, Some(code));
    v
}

#[test]
fn fengjie_500236() {
    let v = timed_extract("500236");
    // The bundled data has 392 villages here (data/regions/README.md says 402, which is wrong;
    // 392 is also the number of village broadcast rooms in the county plan).
    assert_eq!(count_levels(&v), [1, 1, 1, 33, 392]);
    let head: Vec<_> = v[..3]
        .iter()
        .map(|r| (r.code.to_string(), r.name.as_str()))
        .collect();
    assert_eq!(
        head,
        [
            ("50".into(), "重庆市"),
            ("5002".into(), "县"),
            ("500236".into(), "奉节县")
        ]
    );
    assert_eq!(v[3].code.to_string(), "500236001");
    assert_eq!(v[3].parent, Some(RegionCode::parse("500236").unwrap()));
    // The padded 12-digit form is the same code.
    assert_eq!(extract("500236000000").unwrap(), v);
}

#[test]
fn baoshan_5305() {
    let v = timed_extract("5305");
    assert_eq!(count_levels(&v), [1, 1, 5, 76, 957]);
}

#[test]
fn jishan_140824() {
    let v = timed_extract("140824");
    assert_eq!(count_levels(&v), [1, 1, 1, 9, 151]);
}

#[test]
fn sichuan_51() {
    let v = timed_extract("51");
    let c = count_levels(&v);
    assert_eq!(c[0], 1);
    assert_eq!(c[2..], [183, 3111, 34412]);
}

#[test]
fn all_of_china() {
    let t = Instant::now();
    let v = extract_all().unwrap();
    eprintln!("extract_all: {} regions in {:?}", v.len(), t.elapsed());
    // The files hold 2978 counties, 41352 townships and 620573 villages; five rows repeat a
    // higher-level code once padded to 12 digits and are merged into it (see the crate docs).
    assert_eq!(count_levels(&v), [31, 342, 2975, 41351, 620572]);
    check_order(&v, None);
    // Ascending 12-digit codes.
    assert!(v.windows(2).all(|w| w[0].code < w[1].code));
}

#[test]
fn cities_without_counties() {
    // 东莞市, 中山市, 儋州市: townships hang directly under the city.
    for (city, townships) in [("4419", 36), ("4420", 23), ("4604", 18)] {
        let v = timed_extract(city);
        let c = count_levels(&v);
        assert_eq!(c[..3], [1, 1, 0], "{city}");
        assert_eq!(c[3], townships, "{city}");
        let city_code = RegionCode::parse(city).unwrap();
        for t in v.iter().filter(|r| r.level == RegionLevel::Township) {
            assert_eq!(t.parent.as_ref(), Some(&city_code), "{}", t.code);
        }
    }
    // The 6-digit pseudo-county is the same 12-digit code as the city.
    let dg = lookup("441900").unwrap();
    assert_eq!(
        (dg.code.to_string().as_str(), dg.name.as_str(), dg.level),
        ("4419", "东莞市", RegionLevel::City)
    );
    let street = lookup("441900003").unwrap();
    assert_eq!(street.name, "东城街道");
    assert_eq!(street.parent, Some(RegionCode::parse("4419").unwrap()));
    // 嘉峪关市 has one real county-level district 620201 (also named 嘉峪关市).
    let v = timed_extract("6202");
    assert_eq!(count_levels(&v)[2], 1);
    assert!(
        v.iter()
            .filter(|r| r.level == RegionLevel::Township)
            .all(|r| r.parent == Some(RegionCode::parse("620201").unwrap()))
    );
}

#[test]
fn kinmen_placeholder_rows_merge_into_the_county() {
    let v = timed_extract("350527");
    assert_eq!(count_levels(&v), [1, 1, 1, 0, 0]);
    assert_eq!(v[2].name, "金门县");
    assert_eq!(lookup("350527000").unwrap().level, RegionLevel::County);
}

#[test]
fn lookups_at_every_level() {
    let p = lookup("50").unwrap();
    assert_eq!(
        (p.name.as_str(), p.level, p.parent),
        ("重庆市", RegionLevel::Province, None)
    );
    let c = lookup("500236").unwrap();
    assert_eq!(
        (c.name.as_str(), c.parent.unwrap().to_string()),
        ("奉节县", "5002".to_string())
    );
    let t = lookup("500236001").unwrap();
    assert_eq!(
        (t.name.as_str(), t.level),
        ("永安街道", RegionLevel::Township)
    );
    let fengjie = extract("500236").unwrap();
    let first_village = fengjie
        .iter()
        .find(|r| r.level == RegionLevel::Village)
        .unwrap();
    let v = lookup(first_village.code.as_str()).unwrap();
    assert_eq!(&v, first_village);
    assert_eq!(v.parent.unwrap().to_string(), "500236001");
    let v = lookup("110101001001").unwrap();
    assert_eq!(v.name, "多福巷社区居委会");
    // A village alone: its ancestors then itself.
    let e = extract("110101001001").unwrap();
    assert_eq!(count_levels(&e), [1, 1, 1, 1, 1]);
    check_order(&e, Some("110101001001"));
}

#[test]
fn unknown_and_bad_codes() {
    let e = extract("500299").unwrap_err();
    assert!(
        matches!(&e, RegionsError::UnknownCode(c) if c == "500299"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "unknown region code 500299: not in the bundled 2023 national division data"
    );
    assert!(matches!(
        lookup("500299"),
        Err(RegionsError::UnknownCode(_))
    ));
    assert!(matches!(
        lookup("500236100999"),
        Err(RegionsError::UnknownCode(_))
    ));
    assert!(matches!(
        extract("500236100999"),
        Err(RegionsError::UnknownCode(_))
    ));
    assert!(matches!(extract("99"), Err(RegionsError::UnknownCode(_))));
    assert!(matches!(extract("50a"), Err(RegionsError::BadCode(_))));
    assert!(matches!(lookup("50023"), Err(RegionsError::BadCode(_))));
    assert!(matches!(extract("000000"), Err(RegionsError::BadCode(_))));
}
