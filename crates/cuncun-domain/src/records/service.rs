//! Records of service (what the store reads and writes, and the application layer returns).

use crate::RegionCode;
use crate::model::OutletKind;
use crate::service::*;
use serde::{Deserialize, Serialize};
pub use crate::service::HouseholdRecord;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Household {
    pub id: i64,
    #[serde(flatten)]
    pub rec: HouseholdRecord,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HouseholdQuery {
    pub care_only: bool,
    /// Part of the head's name, the phone or the address.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steward {
    pub id: i64,
    pub name: String,
    pub phone: String,
    /// The township the steward belongs to.
    pub region_code: RegionCode,
    /// The user account the steward signs in with (role steward).
    pub user_id: Option<i64>,
    pub villages: Vec<RegionCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardRecord {
    pub name: String,
    pub phone: String,
    pub region_code: RegionCode,
    pub user_id: Option<i64>,
    pub villages: Vec<RegionCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outlet {
    pub id: i64,
    pub kind: OutletKind,
    pub region_code: RegionCode,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub hotline: String,
    pub service_scope: String,
    pub process: String,
    pub head_user_id: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletPatch {
    pub address: Option<String>,
    pub phone: Option<String>,
    pub hotline: Option<String>,
    pub service_scope: Option<String>,
    pub process: Option<String>,
    /// Some(None) clears the head.
    pub head_user_id: Option<Option<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletCheck {
    pub item: NineOnes,
    pub done: bool,
    pub evidence: String,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    pub kind: TicketKind,
    pub source: TicketSource,
    pub category: TicketCategory,
    pub village_code: RegionCode,
    pub household_id: Option<i64>,
    pub reporter_name: String,
    pub reporter_phone: String,
    pub address: String,
    pub description: String,
    /// For tickets opened by a terminal: its resource code.
    pub terminal_ebrid: Option<String>,
    /// At most one open ticket per key (e.g. "terminal:<ebrid>"); creating another returns it.
    pub dedupe_key: Option<String>,
    /// SHA-256 of the resident's confirmation link token, when one was issued.
    pub confirm_token_hash: Option<String>,
    /// The time of the request; None = now. (Back-dated entries come from call-back logs and tests.)
    pub requested_at_ms: Option<i64>,
}

/// A ticket as it stands, for bulk loading (demo data, an earlier system's records, benchmarks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricTicket {
    pub t: NewTicket,
    pub status: TicketStatus,
    pub steward_id: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub rating: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub id: i64,
    pub kind: TicketKind,
    pub source: TicketSource,
    pub category: TicketCategory,
    pub village_code: RegionCode,
    pub household_id: Option<i64>,
    pub reporter_name: String,
    pub reporter_phone: String,
    pub address: String,
    pub description: String,
    pub status: TicketStatus,
    pub steward_id: Option<i64>,
    pub created_at_ms: i64,
    pub deadline_ms: i64,
    pub assigned_at_ms: Option<i64>,
    pub accepted_at_ms: Option<i64>,
    pub on_site_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub confirmed_at_ms: Option<i64>,
    pub cancelled_at_ms: Option<i64>,
    pub escalated_at_ms: Option<i64>,
    pub escalated_to: Option<i64>,
    pub rating: Option<i64>,
    pub resolution_note: String,
    pub terminal_ebrid: Option<String>,
    pub dedupe_key: Option<String>,
    pub reopen_count: i64,
}

impl Ticket {
    pub fn sla(&self, now_ms: i64, escalate_after_ms: i64) -> Sla {
        sla(self.created_at_ms, self.resolved_at_ms, self.status == TicketStatus::Cancelled, now_ms, escalate_after_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketCreated {
    pub ticket: Ticket,
    /// False when an open ticket with the same dedupe key existed and is returned instead.
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFilter {
    pub scope: RegionCode,
    pub statuses: Vec<TicketStatus>,
    pub category: Option<TicketCategory>,
    pub kind: Option<TicketKind>,
    /// Only open tickets past their deadline at `now_ms`.
    pub overdue: bool,
    pub steward_id: Option<i64>,
    /// Only these villages (a steward's); Some(empty) matches nothing.
    pub villages: Option<Vec<RegionCode>>,
    /// Requested in [from_ms, to_ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub now_ms: i64,
}

impl TicketFilter {
    pub fn scope(scope: &RegionCode) -> TicketFilter {
        TicketFilter {
            scope: scope.clone(),
            statuses: Vec::new(),
            category: None,
            kind: None,
            overdue: false,
            steward_id: None,
            villages: None,
            from_ms: None,
            to_ms: None,
            now_ms: crate::time::now_ms(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketEvent {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub from_status: String,
    pub to_status: String,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CareVisit {
    pub id: i64,
    pub household_id: i64,
    pub steward_id: Option<i64>,
    pub year: i64,
    pub visited_at_ms: i64,
    pub note: String,
    pub recorded_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitPlanRow {
    pub household: Household,
    /// Visits recorded in the year.
    pub done: i64,
}

/// Indicator counts of one region (a child of the requested scope, or the scope itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionIndicatorCounts {
    pub region_code: RegionCode,
    pub counts: IndicatorCounts,
}
