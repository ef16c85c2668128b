//! Role and region scope, the two questions every command asks first. Commands call these
//! rather than comparing roles and codes themselves, so that one answer (and one refusal text)
//! serves every page, API call and job.

use crate::{Error, Result};
use cuncun_domain::authz::Principal;
use cuncun_domain::records::Actor;
use cuncun_domain::{RegionCode, Role};

/// The audit actor of a principal.
pub fn actor(p: &Principal) -> Actor {
    Actor(p.actor())
}

/// The principal's region; the system (a job) acts everywhere, so it has none and is refused
/// here: jobs call the store through their own commands, not through user-facing ones.
pub fn region(p: &Principal) -> Result<&RegionCode> {
    p.region().ok_or_else(|| Error::Forbidden("this command needs a person or a device with a region".into()))
}

/// Refuses unless `code` lies inside the principal's region.
pub fn in_scope(p: &Principal, code: &RegionCode) -> Result<()> {
    if region(p)?.contains(code) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("region {code} is outside your region")))
    }
}

/// Whether `code` lies inside the principal's region (for filtering lists).
pub fn sees(p: &Principal, code: &RegionCode) -> bool {
    p.region().is_some_and(|r| r.contains(code))
}

/// The principal's role, when it is a person (a user or a department sender).
pub fn role(p: &Principal) -> Option<Role> {
    p.role()
}

/// Refuses unless the principal is a person with one of `roles`; `what` completes "only ... may".
pub fn require(p: &Principal, roles: &[Role], what: &str) -> Result<()> {
    match p.role() {
        Some(r) if roles.contains(&r) => Ok(()),
        _ => Err(Error::Forbidden(what.to_string())),
    }
}

/// Refuses unless the principal is an administrator; returns their region.
pub fn admin(p: &Principal) -> Result<&RegionCode> {
    require(p, &[Role::Admin], "only an administrator may do this")?;
    region(p)
}
