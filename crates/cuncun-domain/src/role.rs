//! Roles and what each may do. A user has one role and one region; every check is role AND scope.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and settings inside their region.
    Admin,
    /// Operates the broadcast network.
    Broadcaster,
    /// Approves what goes on air.
    Reviewer,
    /// A department (weather, water, emergency management...) that submits warnings.
    DepartmentSender,
    /// Field service (广电管家).
    Steward,
    /// Read-only.
    Viewer,
}

pub const ALL_ROLES: [Role; 6] = [
    Role::Admin,
    Role::Broadcaster,
    Role::Reviewer,
    Role::DepartmentSender,
    Role::Steward,
    Role::Viewer,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected one of admin, broadcaster, reviewer, department_sender, steward, viewer")]
pub struct UnknownRole(pub String);

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Broadcaster => "broadcaster",
            Role::Reviewer => "reviewer",
            Role::DepartmentSender => "department_sender",
            Role::Steward => "steward",
            Role::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Result<Role, UnknownRole> {
        ALL_ROLES
            .into_iter()
            .find(|r| r.key() == s.trim())
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
    /// May create, edit and disable users (within their own region).
    pub fn can_manage_users(self) -> bool {
        self == Role::Admin
    }
    /// May edit the region tree (hamlets) and registry data.
    pub fn can_edit_regions(self) -> bool {
        matches!(self, Role::Admin | Role::Broadcaster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_rights() {
        for r in ALL_ROLES {
            assert_eq!(Role::parse(r.key()).unwrap(), r);
        }
        assert!(Role::parse("root").is_err());
        assert!(Role::Admin.can_manage_users());
        assert!(!Role::Steward.can_manage_users());
        assert!(!Role::Viewer.can_edit_regions());
    }
}
