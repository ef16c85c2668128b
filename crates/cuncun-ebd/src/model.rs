//! The EBD document and its 16 body types.
//!
//! Element names and the header, EBM, OMDRequest, EBDResponse and state codes follow the shared
//! EB_STANDARDS.md. Where it is silent (the Info/State report entries, the broadcast log, the
//! coverage and per-resource results), the structure follows what interoperating GY/T 384
//! implementations publicly show; those places say "(structure from implementations)" and
//! unknown elements from a peer are kept as warnings, not refused.

use crate::sample::{Gen, Sample};
use crate::values::*;
use crate::xml::{self, Card, Cx, El, Located, Node, Problem, W, node};
use cuncun_domain::eb::Ebrid;

// ----- header -----

node! {
    /// `SRC`: the sending resource and its receive URL.
    pub struct Src { ebrid: Ebrid = "EBRID", url: Option<String> = "URL" }
}
node! {
    /// `DEST`: the receiving resource.
    pub struct Dest { ebrid: Ebrid = "EBRID" }
}
node! {
    /// `RelatedEBD`: the EBD this one answers.
    pub struct RelatedEbd { ebdid: Ebdid = "EBDID" }
}
node! {
    /// A reference to a resource by its code (`RelatedEBRPS`, `EBRPS` in Dispatch, ...).
    pub struct ResRef { ebrid: Ebrid = "EBRID" }
}
node! {
    /// A reference to a message by its id (`EBM` in EBMStateRequest/Response, `RelatedInfo`).
    pub struct EbmRef { ebmid: Ebmid = "EBMID" }
}

// ----- EBM (GY/T 385 style) -----

node! {
    /// `EBM`: an emergency-broadcast message.
    pub struct Ebm {
        ebm_version: String = "EBMVersion",
        ebmid: Ebmid = "EBMID",
        related_info: Option<EbmRef> = "RelatedInfo",
        msg_basic_info: MsgBasicInfo = "MsgBasicInfo",
        msg_content: MsgContent = "MsgContent",
        dispatch: Vec<Dispatch> = "Dispatch",
    }
}
node! {
    pub struct MsgBasicInfo {
        msg_type: MsgType = "MsgType",
        sender_name: String = "SenderName",
        sender_code: Ebrid = "SenderCode",
        send_time: EbdTime = "SendTime",
        event_type: EventType = "EventType",
        severity: Severity = "Severity",
        start_time: EbdTime = "StartTime",
        end_time: EbdTime = "EndTime",
    }
}
node! {
    pub struct MsgContent {
        language_code: LangCode = "LanguageCode",
        msg_title: String = "MsgTitle",
        msg_desc: String = "MsgDesc",
        area_code: AreaCodes = "AreaCode",
        program_num: Option<String> = "ProgramNum",
        auxiliary: Vec<Auxiliary> = "Auxiliary",
    }
}
node! {
    /// A media file of the message, carried in the same EBDT tar under `AuxiliaryDesc`.
    /// `Digest` is taken to be the hex SM3 of the file (unverified: the standard's text was not
    /// available); a digest of another shape is reported and not checked.
    pub struct Auxiliary {
        auxiliary_type: u64 = "AuxiliaryType",
        auxiliary_desc: String = "AuxiliaryDesc",
        size: u64 = "Size",
        digest: Option<String> = "Digest",
    }
}
node! {
    /// Explicit routing to named platforms, front-ends, adapters and broadcast systems
    /// (structure from implementations).
    pub struct Dispatch {
        language_code: Option<LangCode> = "LanguageCode",
        ebrps: Vec<ResRef> = "EBRPS",
        ebrst: Vec<ResRef> = "EBRST",
        ebras: Vec<ResRef> = "EBRAS",
        ebrbs: Vec<BrdSys> = "EBRBS",
    }
}
node! {
    /// A broadcast system in Dispatch (structure from implementations).
    pub struct BrdSys { brd_sys_type: String = "BrdSysType", brd_sys_info: String = "BrdSysInfo" }
}

// ----- state of a message -----

node! {
    /// `EBMStateRequest`: asks for the broadcast state of a message.
    pub struct EbmStateRequest { ebm: EbmRef = "EBM" }
}
node! {
    /// `EBMStateResponse`: the broadcast state of a message.
    pub struct EbmStateResponse {
        rpt_time: EbdTime = "RptTime",
        ebm: EbmRef = "EBM",
        brd_state_code: BrdState = "BrdStateCode",
        brd_state_desc: Option<String> = "BrdStateDesc",
        coverage: Option<Coverage> = "Coverage",
        res_brd_info: Option<ResBrdInfo> = "ResBrdInfo",
    }
}
node! {
    /// Actual coverage (structure from implementations): rate as a decimal text (e.g. `0.95`),
    /// the covered areas, and a free-form resource count statistic.
    pub struct Coverage {
        coverage_rate: String = "CoverageRate",
        area_code: Option<AreaCodes> = "AreaCode",
        res_brd_stat: Option<String> = "ResBrdStat",
    }
}
node! {
    pub struct ResBrdInfo { items: Vec<ResBrdItem> = "ResBrdItem" }
}
node! {
    /// One resource's result (structure assumed: the implementations seen differ here).
    pub struct ResBrdItem {
        ebrid: Ebrid = "EBRID",
        brd_state_code: BrdState = "BrdStateCode",
        brd_state_desc: Option<String> = "BrdStateDesc",
        start_time: Option<EbdTime> = "StartTime",
        end_time: Option<EbdTime> = "EndTime",
    }
}

// ----- OMDRequest and report parameters -----

node! {
    /// `OMDRequest`: asks the peer for one of the Info, State or EBMBrdLog reports.
    pub struct OmdRequest { omd_type: OmdType = "OMDType", params: OmdParams = "Params" }
}
node! {
    pub struct OmdParams {
        rpt_start_time: Option<EbdTime> = "RptStartTime",
        rpt_end_time: Option<EbdTime> = "RptEndTime",
        rpt_type: RptType = "RptType",
    }
}
node! {
    /// The parameters a report answers (echoed from the OMDRequest; absent when pushed).
    pub struct ReportParams {
        rpt_start_time: Option<EbdTime> = "RptStartTime",
        rpt_end_time: Option<EbdTime> = "RptEndTime",
        rpt_type: Option<RptType> = "RptType",
    }
}

// ----- Info reports (entry structure from implementations) -----

node! {
    /// A platform (`EBRPS`).
    pub struct Ebrps {
        rpt_time: EbdTime = "RptTime",
        rpt_type: DataOp = "RptType",
        related_ebrps: Option<ResRef> = "RelatedEBRPS",
        ebrid: Ebrid = "EBRID",
        ebr_name: String = "EBRName",
        address: Option<String> = "Address",
        contact: Option<String> = "Contact",
        phone_number: Option<String> = "PhoneNumber",
        longitude: Option<String> = "Longitude",
        latitude: Option<String> = "Latitude",
        url: Option<String> = "URL",
    }
}
node! {
    /// A station / front-end (`EBRST`).
    pub struct Ebrst {
        rpt_time: EbdTime = "RptTime",
        rpt_type: DataOp = "RptType",
        related_ebrps: Option<ResRef> = "RelatedEBRPS",
        ebrid: Ebrid = "EBRID",
        ebr_name: String = "EBRName",
        address: Option<String> = "Address",
        contact: Option<String> = "Contact",
        phone_number: Option<String> = "PhoneNumber",
        longitude: Option<String> = "Longitude",
        latitude: Option<String> = "Latitude",
    }
}
node! {
    /// An adapter (`EBRAS`).
    pub struct Ebras {
        rpt_time: EbdTime = "RptTime",
        rpt_type: DataOp = "RptType",
        related_ebrps: Option<ResRef> = "RelatedEBRPS",
        related_ebrst: Option<ResRef> = "RelatedEBRST",
        ebrid: Ebrid = "EBRID",
        ebr_name: String = "EBRName",
        longitude: Option<String> = "Longitude",
        latitude: Option<String> = "Latitude",
        url: Option<String> = "URL",
    }
}
node! {
    /// A broadcast system (`EBRBS`). Radio/TV transmission parameters are not modelled (kept as
    /// unknown-element warnings).
    pub struct Ebrbs {
        rpt_time: EbdTime = "RptTime",
        rpt_type: DataOp = "RptType",
        related_ebrps: Option<ResRef> = "RelatedEBRPS",
        related_ebrst: Option<ResRef> = "RelatedEBRST",
        related_ebras: Option<ResRef> = "RelatedEBRAS",
        ebrid: Ebrid = "EBRID",
        ebr_name: Option<String> = "EBRName",
        longitude: Option<String> = "Longitude",
        latitude: Option<String> = "Latitude",
        url: Option<String> = "URL",
        square: Option<String> = "Square",
        area_code: Option<AreaCodes> = "AreaCode",
        population: Option<String> = "Population",
        language_code: Option<LangCode> = "LanguageCode",
        equip_room: Option<String> = "EquipRoom",
    }
}
node! {
    /// A terminal (`EBRDT`).
    pub struct Ebrdt {
        rpt_time: EbdTime = "RptTime",
        rpt_type: DataOp = "RptType",
        related_ebrps: Option<ResRef> = "RelatedEBRPS",
        ebrid: Ebrid = "EBRID",
        ebr_name: String = "EBRName",
        longitude: Option<String> = "Longitude",
        latitude: Option<String> = "Latitude",
    }
}
node! {
    pub struct EbrpsInfo { params: Option<ReportParams> = "Params", items: Vec<Ebrps> = "EBRPS" }
}
node! {
    pub struct EbrstInfo { params: Option<ReportParams> = "Params", items: Vec<Ebrst> = "EBRST" }
}
node! {
    pub struct EbrasInfo { params: Option<ReportParams> = "Params", items: Vec<Ebras> = "EBRAS" }
}
node! {
    pub struct EbrbsInfo { params: Option<ReportParams> = "Params", items: Vec<Ebrbs> = "EBRBS" }
}
node! {
    pub struct EbrdtInfo { params: Option<ReportParams> = "Params", items: Vec<Ebrdt> = "EBRDT" }
}

// ----- State reports -----

node! {
    /// One resource's state (the same shape for every kind).
    pub struct ResStateItem {
        rpt_time: EbdTime = "RptTime",
        ebrid: Ebrid = "EBRID",
        state_code: ResState = "StateCode",
        state_desc: Option<String> = "StateDesc",
    }
}
node! {
    pub struct EbrpsState { params: Option<ReportParams> = "Params", items: Vec<ResStateItem> = "EBRPS" }
}
node! {
    pub struct EbrasState { params: Option<ReportParams> = "Params", items: Vec<ResStateItem> = "EBRAS" }
}
node! {
    pub struct EbrbsState { params: Option<ReportParams> = "Params", items: Vec<ResStateItem> = "EBRBS" }
}
node! {
    pub struct EbrdtState { params: Option<ReportParams> = "Params", items: Vec<ResStateItem> = "EBRDT" }
}

// ----- broadcast log (structure from implementations) -----

node! {
    /// `EBMBrdLog`: broadcast log entries.
    pub struct EbmBrdLog { params: Option<ReportParams> = "Params", items: Vec<EbmBrdItem> = "EBMBrdItem" }
}
node! {
    pub struct EbmBrdItem {
        ebm: BrdLogEbm = "EBM",
        unit_info: Option<UnitInfo> = "UnitInfo",
        brd_state_code: BrdState = "BrdStateCode",
        brd_state_desc: Option<String> = "BrdStateDesc",
        coverage: Option<Coverage> = "Coverage",
        res_brd_info: Option<ResBrdInfo> = "ResBrdInfo",
    }
}
node! {
    /// The message a log entry is about.
    pub struct BrdLogEbm {
        ebmid: Ebmid = "EBMID",
        msg_basic_info: Option<MsgBasicInfo> = "MsgBasicInfo",
        msg_content: Option<MsgContent> = "MsgContent",
    }
}
node! {
    /// Who released the message.
    pub struct UnitInfo { units: Vec<Unit> = "Unit" }
}
node! {
    pub struct Unit {
        ebrps: Option<ResRef> = "EBRPS",
        unit_id: Option<String> = "UnitID",
        unit_name: Option<String> = "UnitName",
        person_id: Option<String> = "PersonID",
        person_name: Option<String> = "PersonName",
    }
}

// ----- heartbeat and receipt -----

node! {
    /// `ConnectionCheck`: heartbeat to the parent.
    pub struct ConnectionCheck { rpt_time: EbdTime = "RptTime" }
}
node! {
    /// `EBDResponse`: the receipt for an EBD (answering it through RelatedEBD).
    pub struct EbdResponse { result_code: ResultCode = "ResultCode", result_desc: Option<String> = "ResultDesc" }
}

// ----- the document -----

macro_rules! bodies {
    ($($V:ident($T:ty) = $name:literal),+ $(,)?) => {
        /// The body of an EBD: one element named by `EBDType`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Body { $($V($T)),+ }

        impl Body {
            /// The 16 EBDType names.
            pub const TYPES: &'static [&'static str] = &[$($name),+];
            /// The EBDType (and body element) name.
            pub fn type_name(&self) -> &'static str {
                match self { $(Body::$V(_) => $name),+ }
            }
            fn read(name: &str, el: &El, path: &str, cx: &mut Cx) -> Option<Body> {
                match name {
                    $($name => <$T as Node>::read(el, path, cx).map(Body::$V),)+
                    _ => None,
                }
            }
            fn write(&self, w: &mut W) {
                match self { $(Body::$V(b) => b.write($name, w)),+ }
            }
            /// A random valid body of the named type.
            pub fn sample_of(name: &str, g: &mut Gen) -> Option<Body> {
                match name {
                    $($name => Some(Body::$V(<$T as Sample>::sample(g))),)+
                    _ => None,
                }
            }
        }
    };
}

bodies! {
    Ebm(Ebm) = "EBM",
    EbmStateRequest(EbmStateRequest) = "EBMStateRequest",
    EbmStateResponse(EbmStateResponse) = "EBMStateResponse",
    OmdRequest(OmdRequest) = "OMDRequest",
    EbrpsInfo(EbrpsInfo) = "EBRPSInfo",
    EbrstInfo(EbrstInfo) = "EBRSTInfo",
    EbrasInfo(EbrasInfo) = "EBRASInfo",
    EbrbsInfo(EbrbsInfo) = "EBRBSInfo",
    EbrdtInfo(EbrdtInfo) = "EBRDTInfo",
    EbrpsState(EbrpsState) = "EBRPSState",
    EbrasState(EbrasState) = "EBRASState",
    EbrbsState(EbrbsState) = "EBRBSState",
    EbrdtState(EbrdtState) = "EBRDTState",
    EbmBrdLog(EbmBrdLog) = "EBMBrdLog",
    ConnectionCheck(ConnectionCheck) = "ConnectionCheck",
    EbdResponse(EbdResponse) = "EBDResponse",
}

/// The common header of every EBD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub ebd_version: String,
    pub ebdid: Ebdid,
    pub src: Src,
    pub dest: Option<Dest>,
    pub ebd_time: EbdTime,
    pub related_ebd: Option<RelatedEbd>,
}

/// An EBD document: header and one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ebd {
    pub header: Header,
    pub body: Body,
}

/// Every error found in a document (all of them, each located), and warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors {
    pub errors: Vec<Located>,
    pub warnings: Vec<Located>,
}

impl std::fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}

impl ParseErrors {
    /// The EBDResponse ResultCode: 3 if content is missing, else 2.
    pub fn result_code(&self) -> u8 {
        self.errors.iter().map(|e| e.problem.result_code()).max().unwrap_or(2)
    }
}

const HEADER_ELEMENTS: &[&str] = &["EBDVersion", "EBDID", "EBDType", "SRC", "DEST", "EBDTime", "RelatedEBD"];

impl Ebd {
    pub fn ebd_type(&self) -> &'static str {
        self.body.type_name()
    }

    /// Parses an EBD XML document. Returns the document and its warnings, or every error.
    pub fn parse(bytes: &[u8]) -> Result<(Ebd, Vec<Located>), ParseErrors> {
        let root = xml::parse_tree(bytes).map_err(|e| ParseErrors { errors: vec![e], warnings: vec![] })?;
        let mut cx = Cx::default();
        let ebd = Self::from_tree(&root, &mut cx);
        match ebd {
            Some(ebd) if cx.errors.is_empty() => Ok((ebd, cx.warnings)),
            _ => Err(ParseErrors { errors: cx.errors, warnings: cx.warnings }),
        }
    }

    fn from_tree(root: &El, cx: &mut Cx) -> Option<Ebd> {
        if root.name != "EBD" {
            cx.error(&root.name, root.line, Problem::WrongRoot { expected: "EBD", found: root.name.clone() });
            return None;
        }
        let p = "EBD";
        let ebd_version = <String as Card>::read_in(root, "EBDVersion", p, cx);
        let ebdid = <Ebdid as Card>::read_in(root, "EBDID", p, cx);
        let ebd_type = <String as Card>::read_in(root, "EBDType", p, cx);
        let src = <Src as Card>::read_in(root, "SRC", p, cx);
        let dest = <Option<Dest> as Card>::read_in(root, "DEST", p, cx);
        let ebd_time = <EbdTime as Card>::read_in(root, "EBDTime", p, cx);
        let related_ebd = <Option<RelatedEbd> as Card>::read_in(root, "RelatedEBD", p, cx);
        let body = ebd_type.as_deref().map(str::trim).and_then(|t| {
            let line = root.named("EBDType").next().map_or(root.line, |e| e.line);
            let Some(&name) = Body::TYPES.iter().find(|n| **n == t) else {
                cx.error("EBD/EBDType", line, Problem::UnknownType(t.to_string()));
                return None;
            };
            let found: Vec<&El> = root.named(name).collect();
            match found.as_slice() {
                [el] => Body::read(name, el, &format!("EBD/{name}"), cx),
                [] => {
                    let other = root
                        .children
                        .iter()
                        .find(|c| !HEADER_ELEMENTS.contains(&c.name.as_str()))
                        .map_or_else(|| "nothing".to_string(), |c| c.name.clone());
                    cx.error(p, root.line, Problem::TypeMismatch { declared: name.to_string(), found: other });
                    None
                }
                many => {
                    cx.error(&format!("EBD/{name}"), root.line, Problem::Repeated(name.to_string(), many.len()));
                    None
                }
            }
        });
        // Without a readable body, any body element is "known" (its problem is reported already).
        let bodies: &[&str] = match &body {
            Some(b) => &[b.type_name()][..],
            None => Body::TYPES,
        };
        let known: Vec<&str> = HEADER_ELEMENTS.iter().chain(bodies).copied().collect();
        cx.unknown(root, p, &known);
        Some(Ebd {
            header: Header {
                ebd_version: ebd_version?,
                ebdid: ebdid?,
                src: src?,
                dest: dest?,
                ebd_time: ebd_time?,
                related_ebd: related_ebd?,
            },
            body: body?,
        })
    }

    /// Writes the document: deterministic (same value, same bytes), UTF-8, two-space indents.
    pub fn to_xml(&self) -> String {
        let mut w = W::new();
        w.open("EBD");
        let h = &self.header;
        h.ebd_version.write_in("EBDVersion", &mut w);
        h.ebdid.write_in("EBDID", &mut w);
        w.leaf("EBDType", self.ebd_type());
        h.src.write_in("SRC", &mut w);
        h.dest.write_in("DEST", &mut w);
        h.ebd_time.write_in("EBDTime", &mut w);
        h.related_ebd.write_in("RelatedEBD", &mut w);
        self.body.write(&mut w);
        w.close("EBD");
        w.finish()
    }

    /// A new EBD from `src` with the given id, time and body (version "1").
    pub fn new(ebdid: Ebdid, src: Ebrid, dest: Option<Ebrid>, time: EbdTime, body: Body) -> Ebd {
        Ebd {
            header: Header {
                ebd_version: "1".into(),
                ebdid,
                src: Src { ebrid: src, url: None },
                dest: dest.map(|ebrid| Dest { ebrid }),
                ebd_time: time,
                related_ebd: None,
            },
            body,
        }
    }

    /// A random valid EBD of the named type (None for an unknown name).
    pub fn sample_of(name: &str, g: &mut Gen) -> Option<Ebd> {
        let body = Body::sample_of(name, g)?;
        Some(Ebd {
            header: Header {
                ebd_version: String::sample(g),
                ebdid: Ebdid::sample(g),
                src: Src::sample(g),
                dest: Option::<Dest>::sample(g),
                ebd_time: EbdTime::sample(g),
                related_ebd: Option::<RelatedEbd>::sample(g),
            },
            body,
        })
    }

    /// The receipt for a received EBD: `EBDResponse` from `own` to the sender, with `RelatedEBD`
    /// naming the received EBDID and the ResultCode of its check.
    pub fn response_to(
        received: &Ebdid,
        sender: Option<&Ebrid>,
        own: &Ebrid,
        ebdid: Ebdid,
        time: EbdTime,
        result_code: ResultCode,
        desc: Option<String>,
    ) -> Ebd {
        let mut e = Ebd::new(
            ebdid,
            own.clone(),
            sender.cloned(),
            time,
            Body::EbdResponse(EbdResponse { result_code, result_desc: desc }),
        );
        e.header.related_ebd = Some(RelatedEbd { ebdid: received.clone() });
        e
    }

    /// Heartbeats are not signature-checked (as the implementations do).
    pub fn needs_signature(&self) -> bool {
        !matches!(self.body, Body::ConnectionCheck(_))
    }
}
