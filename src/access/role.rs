//! Roles: what a token may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{FieldError, quoted, validate_name};

/// One role a token carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Role {
    /// Everything but speaking as an agent: tokens, and all an operator does.
    Admin,
    /// Datacenters, profiles, tenants and quotas; reads and releases claims.
    Operator,
    /// Reads the audit trail and nothing else.
    Auditor,
    /// Acts for one tenant: its claims, nothing of other tenants.
    Tenant(String),
    /// The agent of one datacenter: may `Connect` as it.
    Agent(String),
}

/// The kinds of role, without their object: what the authorization table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    /// [`Role::Admin`].
    Admin,
    /// [`Role::Operator`].
    Operator,
    /// [`Role::Auditor`].
    Auditor,
    /// [`Role::Tenant`], or a subject named as a tenant's owner or delegate.
    Tenant,
    /// [`Role::Agent`].
    Agent,
}

impl RoleKind {
    /// Every kind, in the order the authorization table shows them.
    pub const ALL: [RoleKind; 5] = [
        RoleKind::Admin,
        RoleKind::Operator,
        RoleKind::Auditor,
        RoleKind::Tenant,
        RoleKind::Agent,
    ];

    /// The name used in tables and messages.
    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Admin => "admin",
            RoleKind::Operator => "operator",
            RoleKind::Auditor => "auditor",
            RoleKind::Tenant => "tenant:<name>",
            RoleKind::Agent => "agent:<dc>",
        }
    }
}

impl Role {
    /// Its kind.
    pub fn kind(&self) -> RoleKind {
        match self {
            Role::Admin => RoleKind::Admin,
            Role::Operator => RoleKind::Operator,
            Role::Auditor => RoleKind::Auditor,
            Role::Tenant(_) => RoleKind::Tenant,
            Role::Agent(_) => RoleKind::Agent,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Admin => f.write_str("admin"),
            Role::Operator => f.write_str("operator"),
            Role::Auditor => f.write_str("auditor"),
            Role::Tenant(name) => write!(f, "tenant:{name}"),
            Role::Agent(dc) => write!(f, "agent:{dc}"),
        }
    }
}

impl FromStr for Role {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<Self, FieldError> {
        let object = |field: &str, name: &str| -> Result<String, FieldError> {
            validate_name(field, name)?;
            Ok(name.to_owned())
        };
        match text.split_once(':') {
            None => match text {
                "admin" => Ok(Role::Admin),
                "operator" => Ok(Role::Operator),
                "auditor" => Ok(Role::Auditor),
                _ => Err(FieldError::new(
                    "role",
                    format!(
                        "{} is not a role; use admin, operator, auditor, tenant:<name> or agent:<dc>",
                        quoted(text)
                    ),
                )),
            },
            Some(("tenant", name)) => Ok(Role::Tenant(object("role", name)?)),
            Some(("agent", dc)) => Ok(Role::Agent(object("role", dc)?)),
            Some(_) => Err(FieldError::new(
                "role",
                format!(
                    "{} is not a role; only tenant:<name> and agent:<dc> take a name",
                    quoted(text)
                ),
            )),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = FieldError;
    fn try_from(text: String) -> Result<Self, FieldError> {
        text.parse()
    }
}

impl From<Role> for String {
    fn from(role: Role) -> String {
        role.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for text in ["admin", "operator", "auditor", "tenant:acme", "agent:dc-1"] {
            let role: Role = text.parse().unwrap();
            assert_eq!(role.to_string(), text);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert_eq!(Role::Tenant("a".into()).kind(), RoleKind::Tenant);
        assert_eq!(Role::Agent("a".into()).kind(), RoleKind::Agent);
        assert_eq!(Role::Admin.kind(), RoleKind::Admin);
        assert_eq!(Role::Operator.kind(), RoleKind::Operator);
        assert_eq!(Role::Auditor.kind(), RoleKind::Auditor);
    }

    #[test]
    fn kinds_are_named_as_the_table_shows_them() {
        let names: Vec<&str> = RoleKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "admin",
                "operator",
                "auditor",
                "tenant:<name>",
                "agent:<dc>"
            ]
        );
    }

    #[test]
    fn unknown_roles_and_bad_names_are_refused_with_a_hint() {
        for bad in ["root", "tenant:", "tenant:Acme", "agent:a b", "admin:x", ""] {
            let err = bad.parse::<Role>().unwrap_err().to_string();
            assert!(err.starts_with("role"), "{bad}: {err}");
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("tenant:<name>")
        );
    }
}
