//! CAP 1.2 fixtures as departments send them: what the platform understands, what it refuses
//! and where, signatures made by xmlsec1 (tests/fixtures/make_signed.sh), round trips.
#![allow(clippy::unwrap_used)]

use cuncun_cap::dsig::{RsaSigner, SignatureStatus, TrustedKey};
use cuncun_cap::{CheckOptions, CheckReport, Geometry, Level, check, read_alert, write_alert};
use cuncun_domain::RegionCode;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// Region codes of Chongqing (50) exist; others do not.
fn known(r: &RegionCode) -> bool {
    r.as_str().starts_with("50")
}

fn run(bytes: &[u8], key: Option<&TrustedKey>, require: bool) -> CheckReport {
    check(bytes, &CheckOptions { trusted: key, require_signature: require, known_region: &known })
}

fn ok(name: &str) -> CheckReport {
    let r = run(&fixture(name), None, false);
    assert!(r.valid, "{name} should be valid:\n{}", r.render(name));
    r
}

fn key(name: &str) -> TrustedKey {
    TrustedKey::from_bytes(&fixture(name)).unwrap()
}

#[test]
fn chinese_rainstorm_warning_with_polygon_and_geocodes() {
    let r = ok("cn_rainstorm_orange.xml");
    let a = r.alert.as_ref().unwrap();
    assert_eq!(a.identifier, "50023641600100_20260712081500_1");
    assert_eq!(a.infos[0].event_codes[0].value_name, "国家预警信息发布中心");
    assert!(a.infos[0].description.as_deref().unwrap().starts_with("奉节县气象台2026年7月12日"), "CDATA is text");
    assert!(a.infos[0].instruction.as_deref().unwrap().starts_with("1. 政府"), "whitespace trimmed");
    let m = r.mapped.as_ref().unwrap();
    assert_eq!(m.severity, 2, "橙色 parameter -> orange");
    assert!(m.severity_rule.contains("预警级别"), "{}", m.severity_rule);
    assert_eq!(m.event_type, "11B03");
    let regions: Vec<&str> = m.regions.iter().map(|r| r.as_str()).collect();
    assert_eq!(regions, ["500236117000", "500236118000"], "9 and 12 digit codes padded to 12");
    assert_eq!(m.languages.len(), 1);
    assert_eq!(m.title, "奉节县气象台发布暴雨橙色预警");
    assert_eq!(m.sent_ms, Some(1_783_815_300_000));
    // Terminals inside the polygon are picked, the one at 奉节 county town's east is not.
    let picked = m.select_inside(&[("baidi", 109.5, 31.02), ("east", 109.7, 31.02), ("edge", 109.4, 31.0)]);
    assert_eq!(picked, ["baidi", "edge"]);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(r.signature, SignatureStatus::Unsigned);
}

#[test]
fn every_language_is_kept_and_circles_select_by_distance() {
    let r = ok("multilang_typhoon.xml");
    let m = r.mapped.unwrap();
    let langs: Vec<&str> = m.languages.iter().map(|l| l.language.as_str()).collect();
    assert_eq!(langs, ["zh-CN", "en-US"]);
    assert_eq!(m.languages[1].headline, "Typhoon red warning");
    assert_eq!(m.title, "重庆市气象台发布台风红色预警", "the Chinese block is broadcast");
    assert_eq!((m.severity, m.event_type.as_str()), (1, "11B01"));
    assert_eq!(m.regions, [RegionCode::parse("500236").unwrap()]);
    assert_eq!(m.geometries.len(), 1, "the same circle in both languages counts once");
    assert!(matches!(m.geometries[0], Geometry::Circle { radius_km, .. } if radius_km == 25.0));
    // 0.2 degrees north is ~22 km, 0.25 is ~28 km.
    assert_eq!(m.select_inside(&[(1, 109.46, 31.22), (2, 109.46, 31.27)]), [1]);
}

#[test]
fn update_and_cancel_expose_what_they_replace() {
    let u = ok("update_rainstorm.xml").mapped.unwrap();
    assert!(u.is_update());
    assert_eq!(u.references.len(), 1);
    assert_eq!(u.references[0].identifier, "50023641600100_20260712081500_1");
    assert_eq!(u.severity, 1, "upgraded to red");
    let c = ok("cancel_rainstorm.xml").mapped.unwrap();
    assert!(c.is_cancel());
    let ids: Vec<&str> = c.references.iter().map(|r| r.identifier.as_str()).collect();
    assert_eq!(ids, ["50023641600100_20260712081500_1", "50023641600100_20260712113000_2"]);
}

#[test]
fn nws_and_meteoalarm_files_parse_and_map() {
    let n = ok("nws_tornado.xml").mapped.unwrap();
    assert_eq!((n.severity, n.event_type.as_str()), (1, "11B02"));
    assert!(n.regions.is_empty());
    assert_eq!(n.foreign_geocodes.len(), 3, "SAME and UGC codes are kept, not read as Chinese regions");
    assert!(n.unknown_geocodes.is_empty());
    // Pairs are de-duplicated as pairs: UGC=040087 is new although SAME=040087 and UGC=... exist.
    let twisted = text("nws_tornado.xml").replace("<value>OKC027</value>", "<value>040087</value>");
    let t = run(twisted.as_bytes(), None, false).mapped.unwrap();
    assert_eq!(t.foreign_geocodes.len(), 3);
    let doubled = text("nws_tornado.xml").replace("</area>", "<geocode><valueName>UGC</valueName><value>OKC027</value></geocode></area>");
    assert_eq!(run(doubled.as_bytes(), None, false).mapped.unwrap().foreign_geocodes.len(), 3, "an exact repeat counts once");
    assert!(n.geometries[0].contains(-97.45, 35.28));
    let m = ok("meteoalarm_wind.xml");
    let mm = m.mapped.as_ref().unwrap();
    assert_eq!(mm.severity, 3, "awareness_level yellow");
    assert_eq!(mm.event_type, "11B06", "awareness_type Wind");
    let langs: Vec<&str> = mm.languages.iter().map(|l| l.language.as_str()).collect();
    assert_eq!(langs, ["de-DE", "en-GB"]);
    assert_eq!(m.alert.as_ref().unwrap().codes.len(), 2);
}

/// The invalid fixtures: each error at its element path.
#[test]
fn invalid_files_are_refused_with_located_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("invalid_open_polygon.xml", "/alert/info[1]/area[1]/polygon[1]", "not closed"),
        ("invalid_three_pairs.xml", "/alert/info[1]/area[1]/polygon[1]", "3 coordinate pairs"),
        ("invalid_lat95.xml", "/alert/info[1]/area[1]/polygon[1]", "latitude 95 "),
        ("invalid_bad_enum.xml", "/alert/status", "did you mean Actual"),
        ("invalid_missing_required.xml", "/alert/sender", "required element <sender>"),
        ("invalid_missing_required.xml", "/alert/info[1]/event", "required element <event>"),
        ("invalid_update_no_references.xml", "/alert/references", "msgType Update requires <references>"),
        ("invalid_restricted.xml", "/alert/restriction", "scope is Restricted"),
        ("invalid_restricted.xml", "/alert/sent", "not a CAP dateTime"),
        ("invalid_restricted.xml", "/alert/info[1]/area[1]/circle[1]", "radius \"ten\""),
        ("invalid_not_xml.xml", "line 5", "alrt"),
    ];
    for (file, path, msg) in cases {
        let r = run(&fixture(file), None, false);
        assert!(!r.valid, "{file} must be invalid");
        assert!(
            r.errors().any(|i| i.path == *path && i.message.contains(msg)),
            "{file}: no error at {path} containing {msg:?}; got:\n{}",
            r.render(file)
        );
    }
    // All errors are collected, not just the first.
    let r = run(&fixture("invalid_restricted.xml"), None, false);
    assert_eq!(r.errors().count(), 3, "{}", r.render("invalid_restricted.xml"));
}

#[test]
fn more_validation_rules() {
    let base = text("cn_rainstorm_orange.xml");
    let bad = base
        .replace("<cap:urgency>Immediate</cap:urgency>", "<cap:urgency>Now</cap:urgency>")
        .replace("<cap:category>Met</cap:category>", "<cap:category>Weather</cap:category>")
        .replace("<cap:responseType>Prepare</cap:responseType>", "<cap:responseType>Run</cap:responseType>")
        .replace("<cap:sender>50023641600100</cap:sender>", "<cap:sender>a b</cap:sender>")
        .replace("<cap:expires>2026-07-13T08:15:00+08:00</cap:expires>", "<cap:expires>2026-07-11T08:15:00+08:00</cap:expires>")
        .replace("<cap:value>11B03</cap:value>", "<cap:value></cap:value>")
        .replace("<cap:msgType>Alert</cap:msgType>", "<cap:msgType>Alert</cap:msgType><cap:msgType>Alert</cap:msgType>")
        .replace("<cap:scope>Public</cap:scope>", "<cap:scope>Public</cap:scope><cap:references>only-one-part</cap:references>");
    let r = run(bad.as_bytes(), None, false);
    let want = [
        ("/alert/info[1]/urgency", "\"Now\" is not one of"),
        ("/alert/info[1]/category[1]", "\"Weather\""),
        ("/alert/info[1]/responseType[1]", "\"Run\""),
        ("/alert/sender", "must not contain ' '"),
        ("/alert/info[1]/expires", "not after"),
        ("/alert/info[1]/eventCode[1]/value", "missing or empty"),
        ("/alert/msgType", "appears more than once"),
        ("/alert/references", "not a \"sender,identifier,sent\" triple"),
    ];
    for (path, msg) in want {
        assert!(r.errors().any(|i| i.path == path && i.message.contains(msg)), "no {path} {msg:?}:\n{}", r.render("x"));
    }
    // CAP 1.1 is refused; no namespace is tolerated with a warning.
    let r = run(base.replace("cap:1.2", "cap:1.1").as_bytes(), None, false);
    assert!(r.errors().any(|i| i.message.contains("only CAP 1.2")));
    let plain = text("update_rainstorm.xml").replace(" xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"", "");
    let r = run(plain.as_bytes(), None, false);
    assert!(r.valid, "{}", r.render("plain"));
    assert!(r.issues.iter().any(|i| i.level == Level::Warning && i.message.contains("no namespace")));
}

#[test]
fn unknown_region_codes_and_events_are_reported() {
    let base = text("cn_rainstorm_orange.xml")
        .replace("<cap:value>500236117</cap:value>", "<cap:value>990236117</cap:value>")
        .replace("<cap:value>500236118000</cap:value>", "<cap:value>5002</cap:value>")
        .replace("<cap:value>11B03</cap:value>", "<cap:value>unknown</cap:value>")
        .replace("<cap:event>暴雨</cap:event>", "<cap:event>某种新灾害</cap:event>")
        .replace("暴雨橙色预警</cap:headline>", "预警</cap:headline>");
    let r = run(base.as_bytes(), None, false);
    assert!(r.valid, "warnings only: {}", r.render("x"));
    let m = r.mapped.unwrap();
    assert_eq!(m.unknown_geocodes, ["990236117", "5002"]);
    assert!(m.regions.is_empty());
    assert_eq!(m.event_type, cuncun_cap::map::GENERIC_MET);
    assert!(r.issues.iter().any(|i| i.path == "/alert/info[1]/area[1]/geocode[1]" && i.message.contains("not in the division data")));
    assert!(r.issues.iter().any(|i| i.path == "/alert/info[1]/event" && i.message.contains("generic 11B99")));
}

#[test]
fn chinese_event_table_and_colour_rules() {
    use cuncun_cap::map::event_code_for_text;
    let cases = [
        ("暴雨", "11B03"),
        ("台风", "11B01"),
        ("大风", "11B06"),
        ("雷雨大风", "11B20"),
        ("高温", "11B09"),
        ("寒潮", "11B05"),
        ("暴雪", "11B04"),
        ("冰雹", "11B15"),
        ("雷电", "11B14"),
        ("大雾", "11B17"),
        ("霾", "11B19"),
        ("道路结冰", "11B21"),
        ("干旱", "11B22"),
        ("霜冻", "11B16"),
        ("地质灾害", "11E01"),
        ("山洪", "11A06"),
        ("森林火险", "11B25"),
        ("Severe Thunderstorm Warning", "11B20"),
        ("Winter Storm Warning", "11B04"),
    ];
    for (t, code) in cases {
        assert_eq!(event_code_for_text(&format!("{t}黄色预警")).map(|x| x.0), Some(code), "{t}");
    }
    assert_eq!(event_code_for_text("Special notice"), None, "no 'ice' inside 'notice'");
    // A colour in the headline wins over a contradicting CAP severity, with a warning.
    let x = text("update_rainstorm.xml")
        .replace("<parameter>\n      <valueName>预警级别</valueName>\n      <value>红色</value>\n    </parameter>\n", "")
        .replace("将暴雨橙色预警升级为红色预警", "发布暴雨蓝色预警");
    let r = run(x.as_bytes(), None, false);
    let m = r.mapped.as_ref().unwrap();
    assert_eq!(m.severity, 4, "{}", m.severity_rule);
    assert!(r.issues.iter().any(|i| i.message.contains("the colour wins")));
}

#[test]
fn xmlsec1_signatures_verify_and_tampering_is_refused() {
    let rsa = key("rsa_cert.pem");
    let ec = key("ec_cert.pem");
    let other = key("other_rsa_cert.pem");
    for (file, k, c14n) in [
        ("signed_rsa_exc.xml", &rsa, "xml-exc-c14n#"),
        ("signed_rsa_inc.xml", &rsa, "REC-xml-c14n-20010315"),
        ("signed_ecdsa_inc.xml", &ec, "REC-xml-c14n-20010315"),
        ("signed_ecdsa_exc.xml", &ec, "xml-exc-c14n#"),
        ("signed_rsa_inc_xmllang.xml", &rsa, "REC-xml-c14n-20010315"),
    ] {
        let r = run(&fixture(file), Some(k), true);
        assert!(r.valid, "{}", r.render(file));
        assert!(matches!(&r.signature, SignatureStatus::Valid { canonicalization, .. } if canonicalization.ends_with(c14n)), "{file}: {:?}", r.signature);
        // Without a trusted key the digest is still checked; the signature is reported unchecked.
        assert!(matches!(run(&fixture(file), None, false).signature, SignatureStatus::NotChecked { .. }));
        // Someone else's key: refused.
        let wrong = if std::ptr::eq(k, &rsa) { &other } else { &rsa };
        let r = run(&fixture(file), Some(wrong), false);
        assert!(!r.valid && r.signature.is_refused(), "{file} with the wrong key: {:?}", r.signature);
        // One changed character of the content: refused.
        let t = text(file);
        let changed = if t.contains("白帝镇") { t.replacen("白帝镇", "草堂镇", 1) } else { t.replacen("10级", "12级", 1) };
        assert_ne!(changed, t);
        let r = run(changed.as_bytes(), Some(k), false);
        assert!(
            matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("digest mismatch")),
            "{file} tampered: {:?}",
            r.signature
        );
        assert!(r.errors().any(|i| i.message.starts_with("signature refused")));
        // A changed signature value: refused.
        let sv = t.find("<SignatureValue>").unwrap() + "<SignatureValue>".len();
        let mut bytes = t.clone().into_bytes();
        bytes[sv + 2] = if bytes[sv + 2] == b'A' { b'B' } else { b'A' };
        assert!(run(&bytes, Some(k), false).signature.is_refused(), "{file} with a changed SignatureValue");
    }
    // Unsigned is its own status; refused only when the sender must sign.
    let unsigned = fixture("cn_rainstorm_orange.xml");
    assert_eq!(run(&unsigned, Some(&rsa), false).signature, SignatureStatus::Unsigned);
    assert!(run(&unsigned, Some(&rsa), false).valid);
    let r = run(&unsigned, Some(&rsa), true);
    assert!(!r.valid && r.errors().any(|i| i.message.contains("unsigned")));
}

/// xmlsec1 signed an alert full of canonicalization corner cases (character
/// references in attributes, CDATA, PIs and comments inside and around the root, namespace
/// redeclarations, xmlns="", attribute order and quoting) with inclusive c14n, exclusive c14n and
/// exclusive c14n with a PrefixList. Changes that c14n erases (quoting, attribute order, CRLF,
/// CDATA vs. escaped text, character references) keep the signature valid; a changed value does not.
#[test]
fn canonicalization_matches_xmlsec1_on_corner_cases() {
    let rsa = key("rsa_cert.pem");
    for f in ["signed_torture_inc.xml", "signed_torture_exc.xml", "signed_torture_exc_prefixlist.xml"] {
        let t = text(f);
        let r = run(t.as_bytes(), Some(&rsa), true);
        assert!(matches!(r.signature, SignatureStatus::Valid { .. }), "{f}: {}", r.render(f));
        assert!(r.valid && r.mapped.as_ref().unwrap().is_drill);
        let neutral: [(&str, &str); 7] = [
            ("z=\"last\" a=\"first\"", "a='first'   z='last'"),
            ("<cap:scope>Public</cap:scope>", "<cap:scope   >Public</cap:scope >"),
            ("<ext:hop xmlns:ext=\"urn:example:ext2\" order=\"2\"/>", "<ext:hop order='2' xmlns:ext='urn:example:ext2'></ext:hop>"),
            ("中文", "&#x4E2D;&#25991;"),
            ("<![CDATA[<raw> & ]]]]><![CDATA[> stuff]]>", "&lt;raw&gt; &amp; ]]&gt; stuff"),
            ("ext:b=\"q&quot;uote's\"", "ext:b='q\"uote&apos;s'"),
            ("\n", "\r\n"),
        ];
        let mut same = t.clone();
        for (from, to) in neutral {
            assert!(same.contains(from), "{f}: {from:?}");
            same = same.replace(from, to);
        }
        assert_ne!(same, t);
        let r = run(same.as_bytes(), Some(&rsa), true);
        assert!(matches!(r.signature, SignatureStatus::Valid { .. }), "{f} after c14n-neutral edits: {:?}", r.signature);
        for changed in [
            t.replace("order=\"2\"", "order=\"3\""),
            t.replace("ext:a=\"tab&#9;nl", "ext:a=\"tab nl"),
            t.replace("line1&#13;", "line1"),
            t.replace("<?route-hint priority=\"high\"?>", ""),
            t.replace("xmlns:ext=\"urn:example:ext2\"", "xmlns:ext=\"urn:example:ext3\""),
        ] {
            assert_ne!(changed, t);
            let r = run(changed.as_bytes(), Some(&rsa), true);
            assert!(matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("digest mismatch")), "{f}: {:?}", r.signature);
        }
    }
}

#[test]
fn signatures_that_do_not_cover_the_alert_are_refused() {
    let t = text("signed_rsa_exc.xml");
    let rsa = key("rsa_cert.pem");
    // Reference to something else than the whole alert.
    let r = run(t.replacen("URI=\"\"", "URI=\"#other\"", 1).as_bytes(), Some(&rsa), false);
    assert!(matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("does not point at <alert>")), "{:?}", r.signature);
    // Signature moved inside an info block (wrapping).
    let sig_start = t.find("<Signature").unwrap();
    let sig_end = t.find("</Signature>").unwrap() + "</Signature>".len();
    let sig = &t[sig_start..sig_end];
    let moved = t.replacen(sig, "", 1).replacen("</cap:info>", &format!("{sig}</cap:info>"), 1);
    let r = run(moved.as_bytes(), Some(&rsa), false);
    assert!(matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("not a direct child")), "{:?}", r.signature);
    // Unsupported algorithm: named.
    let r = run(t.replace("xmldsig-more#rsa-sha256", "xmldsig-more#rsa-sha512").as_bytes(), Some(&rsa), false);
    assert!(matches!(&r.signature, SignatureStatus::Invalid { reason } if reason.contains("unsupported signature algorithm")));
}

#[test]
fn cuncun_signs_what_it_and_xmlsec1_verify() {
    let signer = RsaSigner::from_pem(&text("rsa_key.pem"), Some(&text("rsa_cert.pem"))).unwrap();
    let signed = signer.sign(&text("update_rainstorm.xml")).unwrap();
    let r = run(signed.as_bytes(), Some(&key("rsa_cert.pem")), true);
    assert!(r.valid, "{}", r.render("signed"));
    assert!(matches!(r.signature, SignatureStatus::Valid { .. }));
    assert_eq!(r.alert.unwrap(), read_alert(&text("update_rainstorm.xml")).unwrap(), "signing changes no content");
    // signed_by_cuncun.xml was made by `cuncun cap sign` and accepted by `xmlsec1 --verify`
    // (make_signed.sh); RSA PKCS#1 v1.5 is deterministic, so today's signer makes the same bytes.
    assert_eq!(signed, text("signed_by_cuncun.xml"));
    assert!(matches!(signer.sign(&signed), Err(cuncun_cap::dsig::SignError::AlreadySigned)));
    // The corner-case alert too (CRLF, CDATA, PIs, namespaces), without a certificate in KeyInfo.
    let bare = RsaSigner::from_pem(&text("rsa_key.pem"), None).unwrap();
    let signed = bare.sign(&text("c14n_torture.xml")).unwrap();
    assert_eq!(signed, text("signed_by_cuncun_torture.xml"), "xmlsec1 accepted these bytes");
    assert!(matches!(run(signed.as_bytes(), Some(&key("rsa_cert.pem")), true).signature, SignatureStatus::Valid { .. }));
}

#[test]
fn write_then_parse_gives_the_same_alert() {
    for f in [
        "cn_rainstorm_orange.xml",
        "multilang_typhoon.xml",
        "update_rainstorm.xml",
        "cancel_rainstorm.xml",
        "nws_tornado.xml",
        "meteoalarm_wind.xml",
        "signed_rsa_exc.xml",
        "c14n_torture.xml",
    ] {
        let a = read_alert(&text(f)).unwrap();
        let out = write_alert(&a);
        assert_eq!(read_alert(&out).unwrap(), a, "{f}");
        assert_eq!(write_alert(&read_alert(&out).unwrap()), out, "{f}: output is deterministic");
    }
    // Characters that need escaping survive.
    let mut a = read_alert(&text("update_rainstorm.xml")).unwrap();
    a.infos[0].description = Some("a < b & c > d \"q\" 'x'\r\nline".into());
    assert_eq!(read_alert(&write_alert(&a)).unwrap(), a);
}

#[test]
fn platform_message_exports_as_cap_and_maps_back() {
    let m = ok("multilang_typhoon.xml").mapped.unwrap();
    let a = cuncun_cap::alert_from_platform(&m);
    let xml = write_alert(&a);
    let r = run(xml.as_bytes(), None, false);
    assert!(r.valid, "{}\n{xml}", r.render("export"));
    let back = r.mapped.unwrap();
    assert_eq!(back.severity, m.severity);
    assert_eq!(back.event_type, m.event_type);
    assert_eq!(back.regions, m.regions);
    assert_eq!(back.geometries, m.geometries);
    assert_eq!(back.languages, m.languages);
    assert_eq!((back.sent_ms, back.expires_ms), (m.sent_ms, m.expires_ms));
    let u = ok("cancel_rainstorm.xml").mapped.unwrap();
    let back = run(write_alert(&cuncun_cap::alert_from_platform(&u)).as_bytes(), None, false).mapped.unwrap();
    assert_eq!(back.references, u.references);
}

#[test]
fn atom_feed_lists_active_alerts_only() {
    let names = ["cn_rainstorm_orange.xml", "update_rainstorm.xml", "multilang_typhoon.xml", "nws_tornado.xml"];
    let alerts: Vec<_> = names.iter().map(|n| read_alert(&text(n)).unwrap()).collect();
    // 2026-07-12 12:00 +08:00: the rainstorm alert was replaced by its update; the typhoon
    // (August) has no earlier expiry so it is listed; the tornado (May) has expired.
    let now = 1_783_828_800_000;
    let active = cuncun_cap::active_alerts(&alerts, now);
    let ids: Vec<&str> = active.iter().map(|a| a.identifier.as_str()).collect();
    assert_eq!(ids, ["50023641600100_20260712113000_2", "50000041600000_20260815143000_3"]);
    let feed = cuncun_cap::atom_feed("https://cuncun.example/cap/feed", "奉节县 预警", now, &active);
    assert_eq!(feed, cuncun_cap::atom_feed("https://cuncun.example/cap/feed", "奉节县 预警", now, &active));
    let doc = cuncun_cap::xml::parse(&feed).unwrap();
    let entries: Vec<_> = doc.root.elements().filter(|e| e.local == "entry").collect();
    assert_eq!(entries.len(), 2);
    // Newest first, and each entry carries the alert, which parses back to the same alert.
    let first = entries[0].elements().find(|e| e.local == "title").unwrap().text();
    assert_eq!(first, "重庆市气象台发布台风红色预警");
    let content = entries[1].elements().find(|e| e.local == "content").unwrap();
    let inner = content.elements().next().unwrap();
    assert_eq!(inner.ns.as_deref(), Some(cuncun_cap::model::CAP12_NS));
    let mut all = alerts.clone();
    all.push(read_alert(&text("cancel_rainstorm.xml")).unwrap());
    let ids: Vec<String> = cuncun_cap::active_alerts(&all, now).iter().map(|a| a.identifier.clone()).collect();
    assert_eq!(ids, ["50000041600000_20260815143000_3"], "the Cancel withdraws both rainstorm messages");
}

/// Mutated documents (bytes flipped, cut, duplicated, markup inserted) never panic the checker,
/// signed ones included (so c14n and signature code see garbage too).
#[test]
fn fuzz_mutated_documents_never_panic() {
    // 20,000 in CI; CUNCUN_FUZZ_ITERATIONS and CUNCUN_FUZZ_SEED run longer or other campaigns by hand.
    let iterations: usize = std::env::var("CUNCUN_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed: u64 = std::env::var("CUNCUN_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x9E37_79B9_7F4A_7C15);
    let seeds: Vec<Vec<u8>> = [
        "cn_rainstorm_orange.xml",
        "multilang_typhoon.xml",
        "cancel_rainstorm.xml",
        "nws_tornado.xml",
        "meteoalarm_wind.xml",
        "signed_rsa_exc.xml",
        "signed_ecdsa_inc.xml",
        "signed_torture_exc_prefixlist.xml",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    let rsa = key("rsa_cert.pem");
    let tokens: &[&[u8]] = &[
        b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b"&#x110000;", b"<![CDATA[", b"]]>", b"\"", b"'",
        b"xmlns:cap=\"\"", b"<info>", b"</info>", b"<polygon>1,2 3,4</polygon>", b"<!DOCTYPE x>", b"<?pi x?>",
        b"\xff\xfe", b"\xe4\xb8", b",", b" ", b"-", b"9999", b"<cap:alert>", b"</alert>", b"<circle>1,1 x</circle>",
    ];
    let mut state: u64 = seed.max(1);
    let mut rnd = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let mut valid = 0;
    for i in 0..iterations {
        let mut d = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rnd(4) {
            let pos = rnd(d.len() + 1);
            match rnd(5) {
                0 if !d.is_empty() => {
                    let p = pos.min(d.len() - 1);
                    d[p] = rnd(256) as u8;
                }
                1 => {
                    let end = (pos + rnd(64)).min(d.len());
                    d.drain(pos..end);
                }
                2 => {
                    let t = tokens[rnd(tokens.len())];
                    d.splice(pos..pos, t.iter().copied());
                }
                3 => {
                    let end = (pos + rnd(200)).min(d.len());
                    let chunk = d[pos..end].to_vec();
                    let at = rnd(d.len() + 1);
                    d.splice(at..at, chunk);
                }
                _ => d.truncate(pos),
            }
        }
        let r = run(&d, Some(&rsa), false);
        if r.valid {
            valid += 1;
        }
        let _ = r.render("fuzz");
    }
    // Some mutations land in text and stay valid; most break something.
    assert!(valid > 0 && valid < iterations, "valid {valid} of {iterations}");
}
