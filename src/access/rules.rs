//! The authorization table: every RPC and the roles that may call it.
//!
//! The manager looks every call up here before any handler runs; a method
//! missing from the table is refused. Scoping within a call (a tenant sees
//! only its own claims) is the handler's part, through [`super::Principal`].

use super::RoleKind;

/// Who may call one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, with or without a token (health checks, reflection).
    Public,
    /// Any valid token, whatever its roles.
    Authenticated,
    /// A valid token holding one of these kinds of role.
    Roles(&'static [RoleKind]),
}

use RoleKind::{Admin, Agent, Auditor, Operator, Tenant};

const MANAGE: &[RoleKind] = &[Admin, Operator];
const READ_SHARED: &[RoleKind] = &[Admin, Operator, Tenant];
const TENANT_WORK: &[RoleKind] = &[Admin, Tenant];
const ADMIN: &[RoleKind] = &[Admin];
const AGENT: &[RoleKind] = &[Agent];
const AUDIT: &[RoleKind] = &[Admin, Auditor];

/// Every RPC of `theia.v1`, by its full method path, with its rule.
pub const RULES: &[(&str, Rule)] = &[
    ("/theia.v1.AgentService/Connect", Rule::Roles(AGENT)),
    (
        "/theia.v1.InfrastructureService/ListDatacenters",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/GetDatacenter",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/GetLogicalInfrastructure",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.InfrastructureService/RegisterDatacenter",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/DeleteDatacenter",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/UpdateDatacenter",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/CreateMaintenance",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/GetMaintenance",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/ListMaintenances",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/CancelMaintenance",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/GetCapacityTimeline",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.InfrastructureService/WatchDatacenters",
        Rule::Roles(MANAGE),
    ),
    ("/theia.v1.TenantService/CreateTenant", Rule::Roles(MANAGE)),
    (
        "/theia.v1.TenantService/GetTenant",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.TenantService/ListTenants",
        Rule::Roles(READ_SHARED),
    ),
    ("/theia.v1.TenantService/UpdateTenant", Rule::Roles(MANAGE)),
    ("/theia.v1.TenantService/DeleteTenant", Rule::Roles(MANAGE)),
    (
        "/theia.v1.ProfileService/CreateProfile",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.ProfileService/GetProfile",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ProfileService/ListProfiles",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ProfileService/DeleteProfile",
        Rule::Roles(MANAGE),
    ),
    (
        "/theia.v1.ClaimService/CreateClaim",
        Rule::Roles(TENANT_WORK),
    ),
    ("/theia.v1.ClaimService/GetClaim", Rule::Roles(READ_SHARED)),
    (
        "/theia.v1.ClaimService/ListClaims",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ClaimService/ReleaseClaim",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ClaimService/ExplainClaim",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ClaimService/WatchClaims",
        Rule::Roles(READ_SHARED),
    ),
    (
        "/theia.v1.ClusterService/GetClusterStatus",
        Rule::Roles(MANAGE),
    ),
    ("/theia.v1.AccessService/CreateToken", Rule::Roles(ADMIN)),
    ("/theia.v1.AccessService/ListTokens", Rule::Roles(ADMIN)),
    ("/theia.v1.AccessService/RevokeToken", Rule::Roles(ADMIN)),
    ("/theia.v1.AccessService/WhoAmI", Rule::Authenticated),
    ("/theia.v1.AuditService/ListEvents", Rule::Roles(AUDIT)),
    ("/theia.v1.AuditService/WatchEvents", Rule::Roles(AUDIT)),
];

/// Services that answer without a token: health checks and reflection
/// (the schema is public; `proto/` is).
const PUBLIC_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The rule for the method at `path`; `None` for a method theia does not
/// serve (refused: the table is the whole API).
pub fn rule(path: &str) -> Option<Rule> {
    if PUBLIC_SERVICES.iter().any(|s| path.starts_with(s)) {
        return Some(Rule::Public);
    }
    RULES.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_services_and_unknown_methods() {
        assert_eq!(rule("/grpc.health.v1.Health/Check"), Some(Rule::Public));
        assert_eq!(
            rule("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Some(Rule::Public)
        );
        assert_eq!(
            rule("/theia.v1.AccessService/WhoAmI"),
            Some(Rule::Authenticated)
        );
        assert_eq!(rule("/theia.v1.ClaimService/Nope"), None);
        assert_eq!(rule("/theia.v1.ClaimService/CreateClaim/"), None);
        assert_eq!(rule(""), None);
        assert_eq!(
            rule("/theia.v1.AgentService/Connect"),
            Some(Rule::Roles(&[Agent]))
        );
    }

    #[test]
    fn every_method_appears_once() {
        let mut paths: Vec<_> = RULES.iter().map(|(p, _)| *p).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), RULES.len());
    }
}
