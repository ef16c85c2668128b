//! The service network: households' extra registry fields, repair tickets (state machine and the
//! 24-hour clock), special-care visits, who may see personal data, and the indicator formulas.
//! Pure functions; storage computes the counts set-wise and hands them to [`Indicators::from_counts`].

use crate::model::CoverageMode;
use crate::{RegionCode, Role};
use serde::{Deserialize, Serialize};

/// Declares a closed set of values with a stored key and Chinese and English names.
macro_rules! keyed {
    ($(#[$m:meta])* $name:ident { $($v:ident = $key:literal, $zh:literal, $en:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($v,)+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            pub fn key(self) -> &'static str { match self { $($name::$v => $key,)+ } }
            pub fn name_zh(self) -> &'static str { match self { $($name::$v => $zh,)+ } }
            pub fn name_en(self) -> &'static str { match self { $($name::$v => $en,)+ } }
            /// Accepts the key or either name.
            pub fn parse(s: &str) -> Option<$name> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| v.key() == s || v.name_zh() == s || v.name_en().eq_ignore_ascii_case(s))
            }
        }
    };
}

keyed!(
    /// Fee-waiver category of a household (减免类别). `None` means no waiver.
    FeeWaiver {
        None = "none", "无", "none";
        MinimumLiving = "minimum_living", "低保户", "minimum living allowance";
        FiveGuarantee = "five_guarantee", "五保户", "five-guarantee";
        ThreeWithout = "three_without", "三无人员", "three-without";
        VeteranFamily = "veteran_family", "优抚对象", "entitled veterans' family";
    }
);

keyed!(
    /// Where a ticket came from.
    TicketSource {
        Public = "public", "群众报修页", "public repair page";
        Phone = "phone", "电话", "phone";
        WalkIn = "walk_in", "网点来访", "walk-in";
        Terminal = "terminal", "终端自动", "terminal";
    }
);

keyed!(
    /// What is broken, following the programmes.
    TicketCategory {
        Cable = "cable", "有线电视", "cable TV";
        Terrestrial = "terrestrial", "地面数字电视", "terrestrial (DTMB)";
        Satellite = "satellite", "直播卫星(户户通)", "satellite (户户通)";
        Loudspeaker = "loudspeaker", "村村响", "village loudspeakers (村村响)";
        EbTerminal = "eb_terminal", "应急广播终端", "emergency-broadcast terminal";
        IptvFiveG = "iptv_5g", "IPTV/5G", "IPTV/5G";
        Other = "other", "其他", "other";
    }
);

keyed!(
    /// A repair request or a complaint (complaints are counted for the complaint rate).
    TicketKind {
        Repair = "repair", "报修", "repair";
        Complaint = "complaint", "投诉", "complaint";
    }
);

keyed!(
    TicketStatus {
        New = "new", "新建", "new";
        Assigned = "assigned", "已派单", "assigned";
        OnSite = "on_site", "上门处理中", "on site";
        Resolved = "resolved", "已处理", "resolved";
        Confirmed = "confirmed", "已确认", "confirmed";
        Reopened = "reopened", "重新打开", "reopened";
        Cancelled = "cancelled", "已撤销", "cancelled";
    }
);

keyed!(
    /// The township outlet checklist ("nine ones", 九个一). Each item is kept with its evidence.
    NineOnes {
        Sign = "sign", "一块统一标识牌", "one standard sign";
        Rules = "rules", "一套服务制度上墙", "one set of service rules on the wall";
        Hotline = "hotline", "一部服务电话", "one service telephone";
        Staff = "staff", "一名专职服务人员", "one full-time staff member";
        Toolkit = "toolkit", "一套维修工具", "one repair toolkit";
        Spares = "spares", "一批备品备件", "one stock of spare parts";
        Ledger = "ledger", "一本服务台账", "one service ledger";
        Feedback = "feedback", "一个意见箱", "one suggestion box";
        Pledge = "pledge", "一份服务承诺公示", "one published service pledge";
    }
);

impl TicketStatus {
    /// Work is still to be done on the ticket (the clock runs, it is in the steward's list).
    pub fn is_open(self) -> bool {
        matches!(self, TicketStatus::New | TicketStatus::Assigned | TicketStatus::OnSite | TicketStatus::Reopened)
    }
    /// SQL list of the open statuses, for `status IN (...)`.
    pub const OPEN_SQL: &'static str = "('new','assigned','on_site','reopened')";
}

/// Everything the registry keeps about a household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdRecord {
    pub village_code: RegionCode,
    pub hamlet: Option<String>,
    pub head_name: String,
    pub phone: String,
    pub address: String,
    pub members: i64,
    /// How the household receives TV and radio: None = not recorded; Some(empty) = none at all.
    pub reception: Option<Vec<CoverageMode>>,
    pub hd: bool,
    pub fibre: bool,
    pub care_elderly: bool,
    pub care_children: bool,
    pub care_disabled: bool,
    pub fee_waiver: FeeWaiver,
    /// What proves the waiver (certificate number, document), required with a waiver.
    pub fee_waiver_evidence: String,
    /// Last day the waiver is valid (YYYY-MM-DD), empty when open-ended or no waiver.
    pub fee_waiver_until: String,
}

impl HouseholdRecord {
    pub fn special_care(&self) -> bool {
        self.care_elderly || self.care_children || self.care_disabled
    }
    /// The stored form of `reception`.
    pub fn reception_key(&self) -> String {
        match &self.reception {
            None => String::new(),
            Some(v) if v.is_empty() => "none".into(),
            Some(v) => CoverageMode::encode_set(v),
        }
    }
    pub fn reception_of(stored: &str) -> Option<Vec<CoverageMode>> {
        match stored.trim() {
            "" => None,
            "none" => Some(Vec::new()),
            s => Some(CoverageMode::decode_set(s)),
        }
    }
}

/// Who may see names and phone numbers of households and residents unmasked: the people who
/// serve them (operators and stewards). Reviewers, department senders and viewers see masks.
pub fn sees_personal_data(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Broadcaster | Role::Steward)
}

/// Who runs the service desk: takes phone and walk-in requests, assigns, escalates, edits the
/// registry of households, stewards and outlets.
pub fn can_operate_service(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Broadcaster)
}

/// Who may read the service pages at all (lists and indicators). Department senders send
/// warnings and have no business with households.
pub fn can_read_service(role: Role) -> bool {
    !matches!(role, Role::DepartmentSender)
}

/// "李文华" -> "李**": the first character stays.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count();
            format!("{first}{}", "*".repeat(rest.max(1)))
        }
        None => String::new(),
    }
}

/// "13812345678" -> "138****5678"; short numbers keep only their last two digits.
pub fn mask_phone(phone: &str) -> String {
    let p: Vec<char> = phone.trim().chars().collect();
    if p.len() >= 7 {
        let head: String = p[..3].iter().collect();
        let tail: String = p[p.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    } else if p.len() > 2 {
        format!("{}{}", "*".repeat(p.len() - 2), p[p.len() - 2..].iter().collect::<String>())
    } else {
        "*".repeat(p.len())
    }
}

/// A mainland mobile number (11 digits starting with 1) or a landline with area code
/// (0 + 2-3 digit area code + 7-8 digits, an optional hyphen). Returns the digits-only form.
pub fn normalise_phone(s: &str) -> Option<String> {
    let t: String = s.trim().chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mobile = t.len() == 11 && t.starts_with('1');
    let landline = t.starts_with('0') && (10..=12).contains(&t.len());
    (mobile || landline).then_some(t)
}

/// What someone does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TicketAction {
    /// Give the ticket to a steward (the village's steward by default at creation).
    Assign { steward_id: i64 },
    /// The steward has seen it and is on the way.
    Accept,
    OnSite,
    Resolve { note: String },
    /// The resident confirms (by link or call-back) with a rating of 1-5.
    Confirm { rating: u8 },
    Reopen { reason: String },
    Cancel { reason: String },
}

impl TicketAction {
    pub fn key(&self) -> &'static str {
        match self {
            TicketAction::Assign { .. } => "assign",
            TicketAction::Accept => "accept",
            TicketAction::OnSite => "on_site",
            TicketAction::Resolve { .. } => "resolve",
            TicketAction::Confirm { .. } => "confirm",
            TicketAction::Reopen { .. } => "reopen",
            TicketAction::Cancel { .. } => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a ticket that is {from} cannot be {action}")]
    NotAllowed { from: &'static str, action: &'static str },
    #[error("rating must be 1 to 5, got {0}")]
    BadRating(u8),
    #[error("{0} needs a short text")]
    TextRequired(&'static str),
    #[error("the ticket has no steward yet; assign one first")]
    NoSteward,
}

/// The state machine: the status after `action`, or why not. `has_steward` says whether the
/// ticket is assigned to someone (accept, on site and resolve need one).
pub fn next_status(from: TicketStatus, action: &TicketAction, has_steward: bool) -> Result<TicketStatus, TransitionError> {
    use TicketStatus::*;
    let not = || TransitionError::NotAllowed { from: from.key(), action: action.key() };
    let needs_steward = |to: TicketStatus| if has_steward { Ok(to) } else { Err(TransitionError::NoSteward) };
    match action {
        TicketAction::Assign { .. } => match from {
            New | Assigned | OnSite | Reopened => Ok(Assigned),
            _ => Err(not()),
        },
        TicketAction::Accept => match from {
            Assigned | Reopened => needs_steward(Assigned),
            _ => Err(not()),
        },
        TicketAction::OnSite => match from {
            Assigned | Reopened => needs_steward(OnSite),
            _ => Err(not()),
        },
        TicketAction::Resolve { note } => match from {
            Assigned | OnSite | Reopened if note.trim().is_empty() => Err(TransitionError::TextRequired("resolve")),
            Assigned | OnSite | Reopened => needs_steward(Resolved),
            _ => Err(not()),
        },
        TicketAction::Confirm { rating } => match from {
            Resolved if !(1..=5).contains(rating) => Err(TransitionError::BadRating(*rating)),
            Resolved => Ok(Confirmed),
            _ => Err(not()),
        },
        TicketAction::Reopen { reason } => match from {
            Resolved if reason.trim().is_empty() => Err(TransitionError::TextRequired("reopen")),
            Resolved => Ok(Reopened),
            _ => Err(not()),
        },
        TicketAction::Cancel { reason } => match from {
            New | Assigned | Reopened if reason.trim().is_empty() => Err(TransitionError::TextRequired("cancel")),
            New | Assigned | Reopened => Ok(Cancelled),
            _ => Err(not()),
        },
    }
}

pub const HOUR_MS: i64 = 3_600_000;
/// The service promise: a repair is resolved within 24 hours of the request.
pub const SLA_MS: i64 = 24 * HOUR_MS;
/// Default: tickets still open 20 hours after the request escalate to the outlet head.
pub const DEFAULT_ESCALATE_AFTER_MS: i64 = 20 * HOUR_MS;

/// Where a ticket stands against its 24-hour deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Sla {
    /// Open, more than the escalation margin left.
    Running { remaining_ms: i64 },
    /// Open and past the escalation point, deadline not yet passed.
    Near { remaining_ms: i64 },
    /// Open past the deadline.
    Overdue { over_ms: i64 },
    /// Resolved within 24 hours; the clock stopped at `took_ms`.
    Met { took_ms: i64 },
    /// Resolved, but late.
    Missed { took_ms: i64 },
    /// Cancelled: the clock does not count.
    Stopped,
}

/// The clock runs from the request (`created_ms`) to the first resolution still standing
/// (`resolved_ms`; a reopened ticket's clock runs on from the original request).
pub fn sla(created_ms: i64, resolved_ms: Option<i64>, cancelled: bool, now_ms: i64, escalate_after_ms: i64) -> Sla {
    if cancelled {
        return Sla::Stopped;
    }
    match resolved_ms {
        Some(r) => {
            let took = r - created_ms;
            if took <= SLA_MS { Sla::Met { took_ms: took } } else { Sla::Missed { took_ms: took } }
        }
        None => {
            let elapsed = now_ms - created_ms;
            if elapsed > SLA_MS {
                Sla::Overdue { over_ms: elapsed - SLA_MS }
            } else if elapsed >= escalate_after_ms {
                Sla::Near { remaining_ms: SLA_MS - elapsed }
            } else {
                Sla::Running { remaining_ms: SLA_MS - elapsed }
            }
        }
    }
}

/// "5 h 12 min" / "5小时12分".
pub fn format_duration(ms: i64, zh: bool) -> String {
    let mins = ms.max(0) / 60_000;
    let (h, m) = (mins / 60, mins % 60);
    if zh { format!("{h}小时{m}分") } else { format!("{h} h {m} min") }
}

/// Required fields of a household for the data-completeness indicator: head of household,
/// a valid phone, address, hamlet, and how it receives TV and radio (which may be "none").
pub const COMPLETENESS_FIELDS: [&str; 5] = ["head_name", "phone", "address", "hamlet", "reception"];

/// Visits planned per special-care household per year.
pub const VISITS_PER_YEAR: i64 = 2;

/// Raw counts over a region subtree and a period, computed set-wise by storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorCounts {
    /// Tickets (repairs and complaints, not cancelled) requested in the period.
    pub tickets: i64,
    /// Of those, resolved (resolved, confirmed) now.
    pub closed: i64,
    /// Of those, resolved within 24 hours of the request.
    pub closed_24h: i64,
    /// Sum of (resolved - requested) over the closed ones, in ms.
    pub close_ms_sum: i64,
    /// Complaints requested in the period.
    pub complaints: i64,
    /// Households registered in the region (the complaint-rate base).
    pub households: i64,
    /// Confirmed tickets with a rating, and those rated 4 or 5.
    pub rated: i64,
    pub satisfied: i64,
    /// Special-care households, and visits done in the year (at most 2 counted per household).
    pub care_households: i64,
    pub visits_done: i64,
    /// Households with every field of [`COMPLETENESS_FIELDS`].
    pub complete_households: i64,
}

impl IndicatorCounts {
    /// Every count is additive over disjoint regions: a parent's counts are its children's sum.
    pub fn add(&mut self, o: &IndicatorCounts) {
        self.tickets += o.tickets;
        self.closed += o.closed;
        self.closed_24h += o.closed_24h;
        self.close_ms_sum += o.close_ms_sum;
        self.complaints += o.complaints;
        self.households += o.households;
        self.rated += o.rated;
        self.satisfied += o.satisfied;
        self.care_households += o.care_households;
        self.visits_done += o.visits_done;
        self.complete_households += o.complete_households;
    }
}

/// The indicators, as percentages rounded to two decimals (None when the base is zero).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Indicators {
    pub counts: IndicatorCounts,
    pub closure_rate: Option<f64>,
    pub closure_24h_rate: Option<f64>,
    /// Mean time from request to resolution, ms.
    pub avg_close_ms: Option<i64>,
    pub complaint_rate: Option<f64>,
    pub satisfaction_rate: Option<f64>,
    pub visit_completion: Option<f64>,
    pub data_completeness: Option<f64>,
}

/// part / whole as a percentage, rounded half away from zero to 2 decimals.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    if whole <= 0 {
        return None;
    }
    // Integer arithmetic in hundredths of a percent, so 110/114 is exactly 96.49.
    let scaled = (part as i128 * 20_000 + whole as i128) / (2 * whole as i128);
    Some(scaled as f64 / 100.0)
}

impl Indicators {
    pub fn from_counts(c: IndicatorCounts) -> Indicators {
        Indicators {
            closure_rate: percent(c.closed, c.tickets),
            // The 24-hour closure rate is over all tickets of the period, as the Baoshan
            // figure (110 of 114 within 24 h = 96.49%) is.
            closure_24h_rate: percent(c.closed_24h, c.tickets),
            avg_close_ms: (c.closed > 0).then(|| c.close_ms_sum / c.closed),
            complaint_rate: percent(c.complaints, c.households),
            satisfaction_rate: percent(c.satisfied, c.rated),
            visit_completion: percent(c.visits_done, c.care_households * VISITS_PER_YEAR),
            data_completeness: percent(c.complete_households, c.households),
            counts: c,
        }
    }
}

/// Shows an optional percentage, "—" when there is no base.
pub fn show_percent(p: Option<f64>) -> String {
    p.map(|v| format!("{v:.2}%")).unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baoshan_arithmetic() {
        assert_eq!(percent(110, 114), Some(96.49));
        let i = Indicators::from_counts(IndicatorCounts { tickets: 114, closed: 112, closed_24h: 110, ..Default::default() });
        assert_eq!(show_percent(i.closure_24h_rate), "96.49%");
        assert_eq!(percent(1, 3), Some(33.33));
        assert_eq!(percent(2, 3), Some(66.67));
        assert_eq!(percent(1, 0), None);
    }

    #[test]
    fn lifecycle() {
        use TicketStatus::*;
        let a = TicketAction::Assign { steward_id: 1 };
        assert_eq!(next_status(New, &a, false), Ok(Assigned));
        assert_eq!(next_status(Assigned, &TicketAction::OnSite, true), Ok(OnSite));
        assert_eq!(next_status(New, &TicketAction::OnSite, false).unwrap_err().to_string(), "a ticket that is new cannot be on_site");
        assert_eq!(next_status(Assigned, &TicketAction::OnSite, false), Err(TransitionError::NoSteward));
        let r = TicketAction::Resolve { note: "重新对星".into() };
        assert_eq!(next_status(OnSite, &r, true), Ok(Resolved));
        assert_eq!(next_status(OnSite, &TicketAction::Resolve { note: " ".into() }, true), Err(TransitionError::TextRequired("resolve")));
        assert_eq!(next_status(Resolved, &TicketAction::Confirm { rating: 6 }, true), Err(TransitionError::BadRating(6)));
        assert_eq!(next_status(Resolved, &TicketAction::Confirm { rating: 5 }, true), Ok(Confirmed));
        assert_eq!(next_status(Resolved, &TicketAction::Reopen { reason: "又坏了".into() }, true), Ok(Reopened));
        assert!(next_status(Confirmed, &TicketAction::Reopen { reason: "x".into() }, true).is_err());
        assert!(next_status(Confirmed, &a, true).is_err());
        assert_eq!(next_status(Reopened, &r, true), Ok(Resolved));
        assert!(next_status(Resolved, &TicketAction::Cancel { reason: "x".into() }, true).is_err());
    }

    #[test]
    fn clock_and_escalation() {
        let t0 = 1_000_000;
        let esc = DEFAULT_ESCALATE_AFTER_MS;
        assert_eq!(sla(t0, None, false, t0 + HOUR_MS, esc), Sla::Running { remaining_ms: 23 * HOUR_MS });
        assert_eq!(sla(t0, None, false, t0 + 20 * HOUR_MS, esc), Sla::Near { remaining_ms: 4 * HOUR_MS });
        assert_eq!(sla(t0, None, false, t0 + 25 * HOUR_MS, esc), Sla::Overdue { over_ms: HOUR_MS });
        let took = 5 * HOUR_MS + 12 * 60_000;
        assert_eq!(sla(t0, Some(t0 + took), false, t0 + 100 * HOUR_MS, esc), Sla::Met { took_ms: took });
        assert_eq!(format_duration(took, true), "5小时12分");
        assert_eq!(sla(t0, Some(t0 + SLA_MS + 1), false, 0, esc), Sla::Missed { took_ms: SLA_MS + 1 });
        assert_eq!(sla(t0, Some(t0 + SLA_MS), false, 0, esc), Sla::Met { took_ms: SLA_MS });
        assert_eq!(sla(t0, None, true, t0 + 30 * HOUR_MS, esc), Sla::Stopped);
    }

    #[test]
    fn masking_and_phones() {
        assert_eq!(mask_name("李文华"), "李**");
        assert_eq!(mask_name("王"), "王*");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("12"), "**");
        assert!(sees_personal_data(Role::Steward));
        assert!(!sees_personal_data(Role::Viewer));
        assert!(!sees_personal_data(Role::Reviewer));
        assert_eq!(normalise_phone("138 1234 5678").as_deref(), Some("13812345678"));
        assert_eq!(normalise_phone("023-5555666").as_deref(), Some("0235555666"));
        assert_eq!(normalise_phone("1381234567"), None);
        assert_eq!(normalise_phone("abc"), None);
    }

    #[test]
    fn enumerations_parse_by_key_or_name() {
        assert_eq!(FeeWaiver::parse("低保户"), Some(FeeWaiver::MinimumLiving));
        assert_eq!(TicketCategory::parse("satellite"), Some(TicketCategory::Satellite));
        assert_eq!(NineOnes::ALL.len(), 9);
        assert_eq!(TicketStatus::parse("on_site"), Some(TicketStatus::OnSite));
    }
}
