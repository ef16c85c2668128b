//! What each department may send: event types and regions, set by an administrator of a region
//! that holds the department's account.

use crate::{App, Error, Result};
use cuncun_domain::authz::{Grant, Principal};
use cuncun_domain::{RegionCode, Role};
use cuncun_store::Actor;

impl App {
    /// The department sender `user_id`, if the principal administers it: an administrator of a
    /// region holding the account, or the CLI (a system principal: whoever runs it holds the
    /// database already).
    async fn managed_department(&self, p: &Principal, user_id: i64) -> Result<cuncun_domain::model::User> {
        let region = match p {
            Principal::User { role: Role::Admin, region, .. } => Some(region),
            Principal::System { .. } => None,
            _ => return Err(Error::Forbidden("only an administrator sets what a department may send".into())),
        };
        let u = self.store.user(user_id).await?.ok_or_else(|| Error::NotFound(format!("user {user_id}")))?;
        if region.is_some_and(|r| !r.contains(&u.region_code)) {
            return Err(Error::Forbidden(format!("user {} is outside your region", u.username)));
        }
        if u.role != Role::DepartmentSender {
            return Err(Error::BadRequest(format!("user {} is not a department sender", u.username)));
        }
        Ok(u)
    }

    /// A department's grant (empty when none is set: it may send nothing).
    pub async fn grant(&self, p: &Principal, user_id: i64) -> Result<Grant> {
        self.managed_department(p, user_id).await?;
        Ok(self.store.department_grant(user_id).await?.unwrap_or_default())
    }

    /// Sets a department's grant: event codes or prefixes (5 characters at most, e.g. "11B" for
    /// every meteorological event) and regions inside the department's own region. Audited.
    pub async fn set_grant(&self, p: &Principal, user_id: i64, event_types: &[String], regions: &[String]) -> Result<Grant> {
        let u = self.managed_department(p, user_id).await?;
        let mut g = Grant::default();
        for e in event_types.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).take(200) {
            if e.len() > 5 || !e.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
                return Err(Error::BadRequest(format!("event_types: {e:?} is not an event code or prefix (e.g. 11B or 11B03)")));
            }
            g.event_types.push(e.to_string());
        }
        for r in regions.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).take(1000) {
            let code = RegionCode::parse(r).map_err(|e| Error::BadRequest(format!("regions: {e}")))?;
            if !u.region_code.contains(&code) {
                return Err(Error::BadRequest(format!("regions: {} is outside the department's region {}", code.short(), u.region_code.short())));
            }
            g.regions.push(code);
        }
        self.store.set_department_grant(user_id, &g, &Actor(p.actor())).await?;
        Ok(g)
    }
}
