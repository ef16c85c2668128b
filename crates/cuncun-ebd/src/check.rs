//! The check that `cuncun ebd check` prints and that the receiving HTTP endpoint acts on: what a
//! file (EBD XML or EBDT tar) says, every error with its location, the signature state and the
//! EBDResponse ResultCode it earns.

use crate::model::{Body, Ebd};
use crate::package::{Limits, Package};
use crate::sign::{SigStatus, Verifier, sm3_hex, verify_ebdb};
use crate::values::{EbdTime, Ebdid, ResultCode};
use cuncun_domain::eb::Ebrid;
use crate::xml::Located;

/// What the check is given besides the bytes.
#[derive(Clone, Copy, Default)]
pub struct CheckOptions<'a> {
    /// Trusted peers; without it, signatures are read but not verified.
    pub verifier: Option<&'a dyn Verifier>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Xml,
    Tar,
}

/// One error or warning: where (file entry and element path, line) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub location: String,
    pub message: String,
    /// The ResultCode this finding earns (2 parse failure, 3 content missing).
    pub result_code: u8,
}

impl Finding {
    fn located(file: &str, l: &Located) -> Finding {
        let location = if l.path.is_empty() { format!("{file}:{}", l.line) } else { format!("{file}:{}: {}", l.line, l.path) };
        Finding { location, message: l.problem.to_string(), result_code: l.problem.result_code() }
    }
    fn at(location: impl Into<String>, message: impl Into<String>, result_code: u8) -> Finding {
        Finding { location: location.into(), message: message.into(), result_code }
    }
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub source: String,
    pub container: Container,
    pub ebd: Option<Ebd>,
    /// The EBDID, from the document or (when it does not parse) from the package's file name:
    /// what the EBDResponse relates to.
    pub ebdid: Option<Ebdid>,
    /// The package's files (name, bytes), for a tar.
    pub files: Vec<(String, usize)>,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// For a tar: the signature state. None for a bare XML file.
    pub signature: Option<SigStatus>,
}

impl CheckReport {
    /// Valid: no error, and for a package a signature that is ok, not required, or not checked
    /// (no trust list given).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty() && self.signature.as_ref().is_none_or(|s| s.result_code().is_none())
    }

    /// The EBDResponse ResultCode: 4 when the signature fails, else the worst error's code
    /// (3 content missing, 2 parse failure), else 1 (parsed and valid).
    pub fn result_code(&self) -> u8 {
        if let Some(c) = self.signature.as_ref().and_then(SigStatus::result_code) {
            return c;
        }
        self.errors.iter().map(|e| e.result_code).max().unwrap_or(1)
    }

    /// The receipt to send back for this file (None when not even its EBDID is known).
    pub fn response(&self, own: &Ebrid, ebdid: Ebdid, time: EbdTime) -> Option<Ebd> {
        let received = self.ebdid.as_ref()?;
        let sender = self.ebd.as_ref().map(|e| &e.header.src.ebrid);
        let code = ResultCode::new(self.result_code()).unwrap_or(ResultCode(5));
        let desc = match (&self.signature, self.errors.first()) {
            (Some(s), _) if s.result_code().is_some() => Some(format!("signature: {s}")),
            (_, Some(e)) => Some(format!("{}: {}", e.location, e.message)),
            _ => None,
        };
        Some(Ebd::response_to(received, sender, own, ebdid, time, code, desc))
    }

    /// Human-readable report: what was understood, then warnings and errors.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let state = if self.is_valid() { "valid".to_string() } else { format!("INVALID (ResultCode {})", self.result_code()) };
        out.push_str(&format!("{}: {state}\n", self.source));
        if let Some(ebd) = &self.ebd {
            for (k, v) in describe(ebd) {
                out.push_str(&format!("  {k}: {v}\n"));
            }
        }
        for (name, size) in &self.files {
            out.push_str(&format!("  file: {name} ({size} bytes)\n"));
        }
        if let Some(s) = &self.signature {
            out.push_str(&format!("  signature: {s}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("  warning: {}: {}\n", w.location, w.message));
        }
        for e in &self.errors {
            out.push_str(&format!("  error: {}: {}\n", e.location, e.message));
        }
        out
    }
}

/// Checks one file's bytes: an EBDT tar, or an EBD XML document (detected by content).
pub fn check_bytes(source: &str, bytes: &[u8], opts: &CheckOptions<'_>) -> CheckReport {
    let head = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(bytes);
    let looks_xml = head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
    if looks_xml {
        let mut r = CheckReport {
            source: source.to_string(),
            container: Container::Xml,
            ebd: None,
            ebdid: None,
            files: vec![],
            errors: vec![],
            warnings: vec![],
            signature: None,
        };
        check_ebdb(&mut r, source, bytes, None);
        return r;
    }
    match Package::from_tar(bytes, &opts.limits) {
        Ok(pkg) => check_package(source, &pkg, opts),
        Err(e) => CheckReport {
            source: source.to_string(),
            container: Container::Tar,
            ebd: None,
            ebdid: None,
            files: vec![],
            errors: vec![Finding::at(source, e.to_string(), e.result_code())],
            warnings: vec![],
            signature: None,
        },
    }
}

/// Checks an unpacked package: the EBD, its media and its signature.
pub fn check_package(source: &str, pkg: &Package, opts: &CheckOptions<'_>) -> CheckReport {
    let mut r = CheckReport {
        source: source.to_string(),
        container: Container::Tar,
        ebd: None,
        ebdid: Some(pkg.ebdid.clone()),
        files: vec![],
        errors: vec![],
        warnings: vec![],
        signature: None,
    };
    let ebdb_name = crate::package::ebdb_name(&pkg.ebdid);
    r.files.push((ebdb_name.clone(), pkg.ebdb.len()));
    if let Some(s) = &pkg.ebds {
        r.files.push((crate::package::ebds_name(&pkg.ebdid), s.len()));
    }
    r.files.extend(pkg.media.iter().map(|m| (m.name.clone(), m.data.len())));
    check_ebdb(&mut r, &ebdb_name, &pkg.ebdb, Some(&pkg.ebdid));

    if let Some(ebd) = &r.ebd
        && let Body::Ebm(ebm) = &ebd.body
    {
        for (i, aux) in ebm.msg_content.auxiliary.iter().enumerate() {
            let loc = format!("{ebdb_name}: EBD/EBM/MsgContent/Auxiliary[{}]", i + 1);
            let Some(file) = pkg.media.iter().find(|m| m.name == aux.auxiliary_desc.trim()) else {
                r.errors.push(Finding::at(loc, format!("media file {:?} is not in the package", aux.auxiliary_desc), 3));
                continue;
            };
            if file.data.len() as u64 != aux.size {
                r.errors.push(Finding::at(
                    &loc,
                    format!("Size says {} bytes, {} has {}", aux.size, file.name, file.data.len()),
                    2,
                ));
            }
            if let Some(d) = aux.digest.as_deref().map(str::trim) {
                if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    if !d.eq_ignore_ascii_case(&sm3_hex(&file.data)) {
                        r.errors.push(Finding::at(&loc, format!("Digest does not match the SM3 of {}", file.name), 2));
                    }
                } else {
                    r.warnings.push(Finding::at(&loc, "Digest is not a hex SM3 digest; not checked", 2));
                }
            }
        }
    }

    let sender = r.ebd.as_ref().map(|e| e.header.src.ebrid.clone());
    let heartbeat = r.ebd.as_ref().is_some_and(|e| !e.needs_signature());
    r.signature = Some(if heartbeat && pkg.ebds.is_none() {
        SigStatus::NotRequired
    } else {
        verify_ebdb(&pkg.ebdid, &pkg.ebdb, pkg.ebds.as_deref(), sender.as_ref(), opts.verifier)
    });
    r
}

fn check_ebdb(r: &mut CheckReport, file: &str, bytes: &[u8], file_ebdid: Option<&Ebdid>) {
    match Ebd::parse(bytes) {
        Ok((ebd, warnings)) => {
            r.warnings.extend(warnings.iter().map(|w| Finding::located(file, w)));
            semantic(r, file, &ebd, file_ebdid);
            r.ebdid = Some(ebd.header.ebdid.clone());
            r.ebd = Some(ebd);
        }
        Err(e) => {
            r.errors.extend(e.errors.iter().map(|l| Finding::located(file, l)));
            r.warnings.extend(e.warnings.iter().map(|w| Finding::located(file, w)));
        }
    }
}

/// Checks across fields that the element-by-element parse cannot see.
fn semantic(r: &mut CheckReport, file: &str, ebd: &Ebd, file_ebdid: Option<&Ebdid>) {
    let h = &ebd.header;
    if let Some(id) = file_ebdid
        && id != &h.ebdid
    {
        r.errors.push(Finding::at(format!("{file}: EBD/EBDID"), format!("the file name says EBDID {id}, the document {}", h.ebdid), 2));
    }
    if !h.ebdid.is_standard_shape() {
        r.warnings.push(Finding::at(
            format!("{file}: EBD/EBDID"),
            "not the usual 41-digit form (2-digit prefix + EBRID + 16-digit sequence)",
            2,
        ));
    }
    if let Body::Ebm(ebm) = &ebd.body {
        let b = &ebm.msg_basic_info;
        if b.end_time < b.start_time {
            r.errors.push(Finding::at(format!("{file}: EBD/EBM/MsgBasicInfo/EndTime"), format!("EndTime {} is before StartTime {}", b.end_time, b.start_time), 2));
        }
        if b.sender_code != h.src.ebrid {
            r.warnings.push(Finding::at(
                format!("{file}: EBD/EBM/MsgBasicInfo/SenderCode"),
                format!("SenderCode {} is not the SRC EBRID {} (a forwarded message?)", b.sender_code, h.src.ebrid),
                2,
            ));
        }
        if b.msg_type.0 == 2 && ebm.related_info.is_none() {
            r.warnings.push(Finding::at(format!("{file}: EBD/EBM"), "a cancel (MsgType 2) without RelatedInfo/EBMID", 3));
        }
        if ebm.msg_content.area_code.0.is_empty() {
            r.errors.push(Finding::at(format!("{file}: EBD/EBM/MsgContent/AreaCode"), "no area", 3));
        }
    }
}

/// What a person reads first about an EBD: (label, value) lines.
pub fn describe(ebd: &Ebd) -> Vec<(&'static str, String)> {
    let h = &ebd.header;
    let mut v = vec![
        ("type", ebd.ebd_type().to_string()),
        ("EBDID", h.ebdid.to_string()),
        ("from", resource(&h.src.ebrid)),
        ("to", h.dest.as_ref().map_or("(no DEST)".into(), |d| resource(&d.ebrid))),
        ("time", h.ebd_time.to_string()),
    ];
    if let Some(rel) = &h.related_ebd {
        v.push(("answers EBD", rel.ebdid.to_string()));
    }
    match &ebd.body {
        Body::Ebm(m) => {
            let b = &m.msg_basic_info;
            let c = &m.msg_content;
            v.push(("EBMID", m.ebmid.to_string()));
            v.push(("message type", format!("{} {}", b.msg_type.0, b.msg_type.label())));
            if let Some(r) = &m.related_info {
                v.push(("related EBMID", r.ebmid.to_string()));
            }
            v.push(("severity", format!("{} {}", b.severity.0, b.severity.label())));
            let names = b.event_type.names().map(|(zh, en)| format!(" {zh} {en}")).unwrap_or_default();
            v.push(("event", format!("{}{names}", b.event_type.0)));
            v.push(("sender", format!("{} ({})", b.sender_name, b.sender_code)));
            v.push(("valid", format!("{} to {}", b.start_time, b.end_time)));
            let areas: Vec<String> = c.area_code.0.iter().map(|a| format!("{} ({})", a.as_str(), a.level().key())).collect();
            v.push(("areas", areas.join(", ")));
            v.push(("language", c.language_code.0.clone()));
            v.push(("title", c.msg_title.clone()));
            for a in &c.auxiliary {
                v.push(("media", format!("{} (type {}, {} bytes)", a.auxiliary_desc, a.auxiliary_type, a.size)));
            }
            if !m.dispatch.is_empty() {
                v.push(("dispatch entries", m.dispatch.len().to_string()));
            }
        }
        Body::EbmStateRequest(r) => v.push(("asks state of EBMID", r.ebm.ebmid.to_string())),
        Body::EbmStateResponse(r) => {
            v.push(("EBMID", r.ebm.ebmid.to_string()));
            v.push(("broadcast state", format!("{} {}", r.brd_state_code.0, r.brd_state_code.label())));
            if let Some(c) = &r.coverage {
                v.push(("coverage rate", c.coverage_rate.clone()));
            }
        }
        Body::OmdRequest(o) => {
            v.push(("asks for", format!("{} ({})", o.omd_type.as_str(), o.params.rpt_type.as_str())));
        }
        Body::EbrpsInfo(i) => v.push(("platforms", i.items.len().to_string())),
        Body::EbrstInfo(i) => v.push(("stations/front-ends", i.items.len().to_string())),
        Body::EbrasInfo(i) => v.push(("adapters", i.items.len().to_string())),
        Body::EbrbsInfo(i) => v.push(("broadcast systems", i.items.len().to_string())),
        Body::EbrdtInfo(i) => v.push(("terminals", i.items.len().to_string())),
        Body::EbrpsState(s) => v.push(("platform states", s.items.len().to_string())),
        Body::EbrasState(s) => v.push(("adapter states", s.items.len().to_string())),
        Body::EbrbsState(s) => v.push(("broadcast system states", s.items.len().to_string())),
        Body::EbrdtState(s) => v.push(("terminal states", s.items.len().to_string())),
        Body::EbmBrdLog(l) => v.push(("log entries", l.items.len().to_string())),
        Body::ConnectionCheck(c) => v.push(("heartbeat at", c.rpt_time.to_string())),
        Body::EbdResponse(r) => {
            v.push(("result", format!("{} {}", r.result_code.0, r.result_code.label())));
            if let Some(d) = &r.result_desc {
                v.push(("description", d.clone()));
            }
        }
    }
    v
}

fn resource(e: &cuncun_domain::eb::Ebrid) -> String {
    format!("{e} (region {})", e.region12())
}
