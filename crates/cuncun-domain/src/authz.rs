//! Who may do what to an emergency-broadcast message, and how its workflow moves: the alert
//! rules, stated once. `decide` is the only function that produces a [`Transition`], and the
//! store writes a message's status only from a `Transition`, so no path (page, API, CAP import,
//! parent platform, background job) can move a message by another rule.
//!
//! The rules are checked against the grid in crates/cuncun-app/tests/authz_grid.csv.

use crate::eb::MessageStatus;
use crate::{RegionCode, Role};
use serde::Serialize;

/// A department's grant, set by an administrator: the event types it may send (exact codes or
/// prefixes such as "11B" for every meteorological event) and the regions it may send to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub event_types: Vec<String>,
    pub regions: Vec<RegionCode>,
}

impl Grant {
    pub fn allows_event(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|p| !p.is_empty() && event_type.starts_with(p.as_str()))
    }
    pub fn allows_area(&self, area: &RegionCode) -> bool {
        self.regions.iter().any(|r| r.contains(area))
    }
}

/// Who a command runs for. Write paths always name one: background jobs act as `System`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person signed in to the console or the API (any role but department sender).
    User { id: i64, name: String, role: Role, region: RegionCode, via: Via },
    /// A department's sender (weather bureau, water resources...): a user with role
    /// `department_sender`, limited by its grant.
    Department { id: i64, name: String, region: RegionCode, grant: Grant, via: Via },
    /// A terminal or front-end, authenticated by its resource code and secret.
    Device { ebrid: String, region: RegionCode },
    /// A trusted parent platform, authenticated by its SM2 signature (EBD interchange).
    Peer { ebrid: String, region: RegionCode },
    /// The platform itself: a named background job.
    System { job: &'static str },
}

/// How a person reached the platform (kept in the audit log's actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Page,
    Api,
    Cli,
}

impl Principal {
    /// The grid's name for this kind of principal.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User { role, .. } => role.key(),
            Principal::Department { .. } => "department",
            Principal::Device { .. } => "device",
            Principal::Peer { .. } => "peer",
            Principal::System { .. } => "system",
        }
    }
    /// The actor written in the audit log.
    pub fn actor(&self) -> String {
        let via = |v: &Via| match v {
            Via::Page => "user",
            Via::Api => "api",
            Via::Cli => "cli",
        };
        match self {
            Principal::User { id, name, via: v, .. } | Principal::Department { id, name, via: v, .. } => {
                format!("{}:{id}:{name}", via(v))
            }
            Principal::Device { ebrid, .. } => format!("device:{ebrid}"),
            Principal::Peer { ebrid, .. } => format!("peer:{ebrid}"),
            Principal::System { job } => format!("system:{job}"),
        }
    }
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Principal::User { id, .. } | Principal::Department { id, .. } => Some(*id),
            _ => None,
        }
    }
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::User { role, .. } => Some(*role),
            Principal::Department { .. } => Some(Role::DepartmentSender),
            _ => None,
        }
    }
    pub fn region(&self) -> Option<&RegionCode> {
        match self {
            Principal::User { region, .. }
            | Principal::Department { region, .. }
            | Principal::Device { region, .. }
            | Principal::Peer { region, .. } => Some(region),
            Principal::System { .. } => None,
        }
    }
}

/// What a rule needs to know of a message.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    pub status: MessageStatus,
    pub drill: bool,
    pub author_id: Option<i64>,
    pub owner_region: &'a RegionCode,
    pub areas: &'a [RegionCode],
    pub event_type: &'a str,
    /// 1 red .. 4 blue; 0 routine.
    pub severity: u8,
    /// The parent platform that sent it (its resource code), for messages received from one.
    pub from_peer: Option<&'a str>,
}

/// Per-platform workflow settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowSettings {
    /// Whether the author of a drill may approve it alone (default: no, four eyes for drills too).
    pub drills_self_approve: bool,
    /// Severities (1 red .. 4 blue) of a trusted parent's warnings that play at once; the others
    /// wait for a local reviewer. Default: red only.
    pub auto_dispatch: Vec<u8>,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        WorkflowSettings { drills_self_approve: false, auto_dispatch: vec![1] }
    }
}

/// Everything that can be done to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgCommand {
    /// Write a new draft (the facts are those of the draft).
    Compose,
    /// Change a draft's text, areas or times.
    Edit,
    Submit,
    Approve,
    /// Return a submitted message to its author with a reason.
    SendBack,
    Cancel,
    /// Compose a message that replaces this one once approved (`drill`: the update is a drill).
    Update { drill: bool },
    /// Approve an update of this message, which cancels it in the same transaction.
    Supersede { drill: bool },
    /// Read the message, its receipts in the reader's area and its history.
    View,
    /// Export it as CAP, or read its delivery outside the reader's area.
    ExportCap,
    /// A parent platform's message arrives (the facts are those of the new message).
    Receive,
    /// The dispatcher has sent it to the terminals.
    Dispatch,
    /// Its validity ended with receipts (`completed`) or without any (`expired`).
    Finish { received: bool },
}

impl MsgCommand {
    pub const ALL: [MsgCommand; 16] = [
        MsgCommand::Compose,
        MsgCommand::Edit,
        MsgCommand::Submit,
        MsgCommand::Approve,
        MsgCommand::SendBack,
        MsgCommand::Cancel,
        MsgCommand::Update { drill: false },
        MsgCommand::Update { drill: true },
        MsgCommand::Supersede { drill: false },
        MsgCommand::Supersede { drill: true },
        MsgCommand::View,
        MsgCommand::ExportCap,
        MsgCommand::Receive,
        MsgCommand::Dispatch,
        MsgCommand::Finish { received: true },
        MsgCommand::Finish { received: false },
    ];
    /// The grid's name of the command.
    pub fn key(self) -> &'static str {
        match self {
            MsgCommand::Compose => "compose",
            MsgCommand::Edit => "edit",
            MsgCommand::Submit => "submit",
            MsgCommand::Approve => "approve",
            MsgCommand::SendBack => "send_back",
            MsgCommand::Cancel => "cancel",
            MsgCommand::Update { drill: false } => "update",
            MsgCommand::Update { drill: true } => "update_drill",
            MsgCommand::Supersede { drill: false } => "supersede",
            MsgCommand::Supersede { drill: true } => "supersede_drill",
            MsgCommand::View => "view",
            MsgCommand::ExportCap => "export_cap",
            MsgCommand::Receive => "receive",
            MsgCommand::Dispatch => "dispatch",
            MsgCommand::Finish { received: true } => "complete",
            MsgCommand::Finish { received: false } => "expire",
        }
    }
    /// Commands on a message that does not exist yet.
    pub fn creates(self) -> bool {
        matches!(self, MsgCommand::Compose | MsgCommand::Receive)
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The principal may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Nobody may do this to a message in its present state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
}

/// The step a transition records in the message's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Submit,
    Approve,
    SendBack,
    Cancel,
    /// Cancelled because its update was approved.
    Supersede,
    Receive,
    Dispatch,
    Complete,
    Expire,
}

impl Step {
    pub fn key(self) -> &'static str {
        match self {
            Step::Submit => "submit",
            Step::Approve => "approve",
            Step::SendBack => "send_back",
            Step::Cancel => "cancel",
            Step::Supersede => "supersede",
            Step::Receive => "receive",
            Step::Dispatch => "dispatch",
            Step::Complete => "complete",
            Step::Expire => "expire",
        }
    }
}

/// A status change that the rules allowed. Only this module constructs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: MessageStatus,
    to: MessageStatus,
    step: Step,
}

impl Transition {
    pub fn from(&self) -> MessageStatus {
        self.from
    }
    pub fn to(&self) -> MessageStatus {
        self.to
    }
    pub fn step(&self) -> Step {
        self.step
    }
}

/// What `decide` allows: a status change, or (for reads and composing) none.
pub type Decision = Result<Option<Transition>, Denied>;

fn forbid<T>(why: impl Into<String>) -> Result<T, Denied> {
    Err(Denied::Forbidden(why.into()))
}

fn conflict<T>(m: &MessageFacts<'_>, action: &str) -> Result<T, Denied> {
    Err(Denied::Conflict(format!("cannot {action} a message that is {}", m.status.key())))
}

/// Whether the principal's region holds the message entirely: its owner region and every area.
/// A message owned by a higher level is never "covered" by a lower one, even where it is aimed.
fn covers(p: &Principal, m: &MessageFacts<'_>) -> bool {
    match p.region() {
        Some(r) => r.contains(m.owner_region) && m.areas.iter().all(|a| r.contains(a)),
        None => false,
    }
}

/// Seeing an approved message because it is aimed at (or over) one's area.
fn aimed_at(p: &Principal, m: &MessageFacts<'_>) -> bool {
    let Some(r) = p.region() else { return false };
    let on_air_or_past = !matches!(m.status, MessageStatus::Draft | MessageStatus::Submitted);
    on_air_or_past && m.areas.iter().any(|a| a.contains(r) || r.contains(a))
}

fn is_own(p: &Principal, m: &MessageFacts<'_>) -> bool {
    match p {
        Principal::Peer { ebrid, .. } => m.from_peer == Some(ebrid.as_str()),
        _ => p.user_id().is_some() && p.user_id() == m.author_id,
    }
}

/// The department's grant must hold the message's event type and every area.
fn check_grant(p: &Principal, m: &MessageFacts<'_>) -> Result<(), Denied> {
    if let Principal::Department { grant, .. } = p {
        if !grant.allows_event(m.event_type) {
            return forbid(format!("your department is not granted event type {}", m.event_type));
        }
        if let Some(a) = m.areas.iter().find(|a| !grant.allows_area(a)) {
            return forbid(format!("your department is not granted area {}", a.short()));
        }
    }
    Ok(())
}

/// May write new messages inside its region (and grant).
fn may_compose(p: &Principal, m: &MessageFacts<'_>) -> Result<(), Denied> {
    match p {
        Principal::User { role: Role::Admin | Role::Broadcaster, .. } | Principal::Department { .. } => {}
        Principal::User { .. } => return forbid("your role may not compose messages"),
        Principal::Peer { .. } => return forbid("a parent platform's messages arrive through the interchange"),
        Principal::Device { .. } => return forbid("devices do not act on messages"),
        Principal::System { .. } => return forbid("the system does not compose messages"),
    }
    if let Some(a) = m.areas.iter().find(|a| !p.region().is_some_and(|r| r.contains(a))) {
        return forbid(format!("target area {} is outside your region", a.short()));
    }
    if !covers(p, m) {
        return forbid("this message belongs to a higher level; only that level or above may change it");
    }
    check_grant(p, m)
}

/// The right to cancel (or update) this message.
fn may_cancel(p: &Principal, m: &MessageFacts<'_>) -> Result<(), Denied> {
    match p {
        Principal::Peer { .. } if is_own(p, m) => Ok(()),
        Principal::Peer { .. } => forbid("a parent platform may cancel or update only what it sent"),
        Principal::Device { .. } => forbid("devices do not act on messages"),
        Principal::System { .. } => forbid("the system does not cancel messages"),
        Principal::User { role: Role::Steward | Role::Viewer | Role::DepartmentSender, .. } => {
            forbid("your role may not cancel or update messages")
        }
        Principal::Department { .. } if !is_own(p, m) => forbid("a department may cancel or update only its own messages"),
        _ if !covers(p, m) => forbid(
            "this message belongs to a higher level or reaches areas outside your region; only that level or above may cancel or update it",
        ),
        _ => check_grant(p, m),
    }
}

fn step(m: &MessageFacts<'_>, to: MessageStatus, step: Step) -> Decision {
    Ok(Some(Transition { from: m.status, to, step }))
}

/// The one rule book: may `p` do `cmd` to the message `m`, and what does it become?
/// Read and compose commands return `Ok(None)` when allowed.
pub fn decide(p: &Principal, cmd: MsgCommand, m: &MessageFacts<'_>, s: &WorkflowSettings) -> Decision {
    use MessageStatus::*;
    if let Principal::Device { .. } = p {
        return forbid("devices do not act on messages");
    }
    match cmd {
        MsgCommand::Compose => may_compose(p, m).map(|_| None),
        MsgCommand::Receive => match p {
            Principal::Peer { .. } => {
                // A trusted parent has had its four eyes; drills never dispatch by themselves.
                let auto = !m.drill && s.auto_dispatch.contains(&m.severity);
                Ok(Some(Transition { from: Draft, to: if auto { Approved } else { Submitted }, step: Step::Receive }))
            }
            _ => forbid("only a parent platform sends messages through the interchange"),
        },
        MsgCommand::View => {
            if matches!(p, Principal::System { .. }) || covers(p, m) || is_own(p, m) || aimed_at(p, m) {
                Ok(None)
            } else if m.areas.iter().any(|a| p.region().is_some_and(|r| a.contains(r) || r.contains(a))) {
                forbid("a message aimed at your area is visible once it is approved")
            } else {
                forbid("this message is outside your region")
            }
        }
        MsgCommand::ExportCap => {
            if matches!(p, Principal::System { .. }) || covers(p, m) {
                Ok(None)
            } else {
                forbid("only the level that owns a message may export it or read all of its delivery")
            }
        }
        // Who may act is decided before whether the message's state allows it, so that a
        // principal without the right hears "forbidden" whatever the state.
        MsgCommand::Edit | MsgCommand::Submit => {
            may_compose(p, m)?;
            if !is_own(p, m) {
                return forbid("only its author may change or submit a draft");
            }
            if m.status != Draft {
                return conflict(m, if cmd == MsgCommand::Edit { "edit" } else { "submit" });
            }
            if cmd == MsgCommand::Edit { Ok(None) } else { step(m, Submitted, Step::Submit) }
        }
        MsgCommand::Approve | MsgCommand::SendBack => {
            if !matches!(p, Principal::User { role: Role::Admin | Role::Reviewer, .. }) {
                return forbid("only a reviewer or administrator may approve or send back");
            }
            if !covers(p, m) {
                return forbid("this message belongs to a higher level or reaches areas outside your region");
            }
            if m.status != Submitted {
                return conflict(m, if cmd == MsgCommand::Approve { "approve" } else { "send back" });
            }
            if cmd == MsgCommand::SendBack {
                return step(m, Draft, Step::SendBack);
            }
            if is_own(p, m) && !(m.drill && s.drills_self_approve) {
                return forbid(if m.drill {
                    "this platform requires a second person to approve drills too"
                } else {
                    "a real warning needs an approver other than its author"
                });
            }
            step(m, Approved, Step::Approve)
        }
        MsgCommand::Cancel => {
            may_cancel(p, m)?;
            if m.status.is_final() {
                return conflict(m, "cancel");
            }
            step(m, Cancelled, Step::Cancel)
        }
        MsgCommand::Update { drill } | MsgCommand::Supersede { drill } => {
            if drill && !m.drill {
                return forbid("a drill can never update or cancel a real message");
            }
            if !drill && m.drill {
                return forbid("a drill is updated by a drill, not by a real warning");
            }
            // Writing an update needs the right to compose; approving it (Supersede) does not.
            if matches!(cmd, MsgCommand::Update { .. }) && !matches!(p, Principal::Peer { .. }) {
                may_compose(p, m)?;
            }
            may_cancel(p, m)?;
            if m.status.is_final() {
                return conflict(m, "update");
            }
            // What the original becomes when the update is approved.
            step(m, Cancelled, Step::Supersede)
        }
        MsgCommand::Dispatch | MsgCommand::Finish { .. } => {
            if !matches!(p, Principal::System { .. }) {
                return forbid("only the dispatcher moves a message on air");
            }
            match (cmd, m.status) {
                (MsgCommand::Dispatch, Approved) => step(m, Dispatching, Step::Dispatch),
                (MsgCommand::Finish { received: true }, Dispatching) => step(m, Completed, Step::Complete),
                (MsgCommand::Finish { received: false }, Approved | Dispatching) => step(m, Expired, Step::Expire),
                _ => conflict(m, cmd.key()),
            }
        }
    }
}
