//! Storage of the service network: the household registry with its service fields, stewards and
//! their villages, outlets with published information and the "nine ones" checklist, repair
//! tickets (lifecycle, events, photos, escalation), special-care visits and the indicator counts.

use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::model::OutletKind;
use cuncun_domain::service::*;
use serde::{Deserialize, Serialize};

pub use cuncun_domain::service::HouseholdRecord;

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
            now_ms: crate::now_ms(),
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

#[async_trait]
pub trait ServiceStore {
    // Households
    async fn add_household(&self, h: &HouseholdRecord, actor: &Actor) -> Result<Household>;
    async fn update_household(&self, id: i64, h: &HouseholdRecord, actor: &Actor) -> Result<Household>;
    async fn household(&self, id: i64) -> Result<Option<Household>>;
    async fn households_in(&self, scope: &RegionCode, q: &HouseholdQuery, limit: i64, offset: i64) -> Result<Vec<Household>>;
    /// (village code, head name, address) of every household in the scope, for duplicate checks.
    async fn household_keys(&self, scope: &RegionCode) -> Result<Vec<(String, String, String)>>;
    /// Inserts all rows in one transaction (all or nothing); one audit entry summarises it.
    async fn import_households(&self, rows: &[HouseholdRecord], source: &str, actor: &Actor) -> Result<u64>;

    // Stewards
    async fn add_steward(&self, s: &StewardRecord, actor: &Actor) -> Result<Steward>;
    /// Inserts all rows in one transaction (all or nothing).
    async fn import_stewards(&self, rows: &[StewardRecord], source: &str, actor: &Actor) -> Result<u64>;
    async fn set_steward_user(&self, steward_id: i64, user_id: Option<i64>, actor: &Actor) -> Result<Steward>;
    async fn steward(&self, id: i64) -> Result<Option<Steward>>;
    async fn steward_of_user(&self, user_id: i64) -> Result<Option<Steward>>;
    /// Stewards whose township lies in the scope.
    async fn stewards_in(&self, scope: &RegionCode) -> Result<Vec<Steward>>;
    /// The village's default steward (the first one registered for it).
    async fn village_steward(&self, village: &RegionCode) -> Result<Option<Steward>>;

    // Outlets
    async fn outlets_in(&self, scope: &RegionCode) -> Result<Vec<Outlet>>;
    async fn outlet(&self, id: i64) -> Result<Option<Outlet>>;
    async fn update_outlet(&self, id: i64, p: &OutletPatch, actor: &Actor) -> Result<Outlet>;
    async fn outlet_checklist(&self, outlet_id: i64) -> Result<Vec<OutletCheck>>;
    async fn set_outlet_check(&self, outlet_id: i64, item: NineOnes, done: bool, evidence: &str, actor: &Actor) -> Result<()>;

    // Tickets
    /// Creates a ticket, assigned to the village's steward when there is one. With a dedupe key
    /// that an open ticket already has, returns that ticket unchanged (`created` false).
    async fn create_ticket(&self, t: &NewTicket, actor: &Actor) -> Result<TicketCreated>;
    /// Inserts tickets as they stand, in bulk and one transaction; one audit entry summarises it.
    async fn import_tickets(&self, rows: &[HistoricTicket], source: &str, actor: &Actor) -> Result<u64>;
    async fn ticket(&self, id: i64) -> Result<Option<Ticket>>;
    async fn ticket_by_confirm_token(&self, token_hash: &str) -> Result<Option<Ticket>>;
    /// Newest first.
    async fn tickets(&self, f: &TicketFilter, limit: i64, offset: i64) -> Result<Vec<Ticket>>;
    /// Applies `action` (state machine in the domain); the change, an event and an audit entry
    /// are written in one transaction.
    async fn transition_ticket(&self, id: i64, action: &TicketAction, actor: &Actor, now_ms: i64) -> Result<Ticket>;
    async fn ticket_events(&self, id: i64) -> Result<Vec<TicketEvent>>;
    async fn add_ticket_photo(&self, ticket_id: i64, content_type: &str, bytes: &[u8], actor: &Actor) -> Result<i64>;
    /// (ticket id, content type, bytes).
    async fn ticket_photo(&self, photo_id: i64) -> Result<Option<(i64, String, Vec<u8>)>>;
    async fn ticket_photo_ids(&self, ticket_id: i64) -> Result<Vec<i64>>;
    /// Marks open tickets requested at least `escalate_after_ms` ago and not yet escalated as
    /// escalated to the head of the village's township outlet (else the county centre's head).
    async fn escalate_due(&self, now_ms: i64, escalate_after_ms: i64) -> Result<Vec<Ticket>>;

    // Special-care visits
    async fn record_visit(&self, household_id: i64, steward_id: Option<i64>, visited_at_ms: i64, note: &str, actor: &Actor) -> Result<CareVisit>;
    async fn visits_of(&self, household_id: i64) -> Result<Vec<CareVisit>>;
    /// Special-care households of the scope with the visits done in `year` (Beijing calendar).
    async fn visit_plan(&self, scope: &RegionCode, year: i64, limit: i64, offset: i64) -> Result<Vec<VisitPlanRow>>;

    // Indicators
    /// Counts for the scope as one row, or per child region when `by_child`; tickets requested
    /// in [from_ms, to_ms), visits of `year`.
    async fn service_counts(&self, scope: &RegionCode, from_ms: i64, to_ms: i64, year: i64, by_child: bool) -> Result<Vec<RegionIndicatorCounts>>;
}
