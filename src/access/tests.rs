use super::*;
use crate::clock::HybridClock;
use crate::crdt::Lww;
use crate::model::Tenant;
use crate::state::Change;

fn issue(books: &mut Books, clock: &mut HybridClock, n: u8, roles: &[Role]) -> String {
    let request = TokenRequest {
        subject: format!("user{n}@example.com"),
        roles: roles.iter().cloned().collect(),
        expires_unix_ms: None,
        description: String::new(),
    };
    let (record, text) = request.issue([n; 8], [n; 32], 0, "bootstrap");
    books.apply(&Change::token(clock.now(1), record));
    text
}

fn bearer(text: &str) -> String {
    format!("Bearer {text}")
}

fn tenant(name: &str, owner: &str, delegates: &[&str]) -> Tenant {
    Tenant {
        name: name.into(),
        owner: owner.into(),
        delegates: delegates.iter().map(|d| d.to_string()).collect(),
        labels: Default::default(),
        quota: Default::default(),
    }
}

#[test]
fn a_token_authenticates_as_its_subject_with_its_roles() {
    let mut clock = HybridClock::new("m", std::time::Duration::from_secs(1));
    let mut books = Books::default();
    let admin = issue(&mut books, &mut clock, 1, &[Role::Admin]);
    let dir = Directory::of(&books);
    let p = dir.authenticate(Some(&bearer(&admin)), 10).unwrap();
    assert!(!p.by_certificate());
    assert_eq!(p.subject, "user1@example.com");
    assert_eq!(p.token_id, "0101010101010101");
    assert!(p.has(RoleKind::Admin));
    assert!(!p.has(RoleKind::Operator));
    assert!(!p.has(RoleKind::Tenant));
    assert_eq!(p.scope(), Scope::All);
    assert_eq!(dir.authenticate(None, 10), Err(TokenError::Missing));
    assert_eq!(
        dir.authenticate(Some("Bearer nope"), 10),
        Err(TokenError::Malformed)
    );
    let (_, stranger) = TokenRequest {
        subject: "x".into(),
        roles: BTreeSet::new(),
        expires_unix_ms: None,
        description: String::new(),
    }
    .issue([9; 8], [9; 32], 0, "nobody");
    assert_eq!(
        dir.authenticate(Some(&bearer(&stranger)), 10),
        Err(TokenError::Unknown)
    );
}

#[test]
fn a_revoked_token_is_unknown_and_stays_so_whatever_order_changes_arrive_in() {
    let mut clock = HybridClock::new("m", std::time::Duration::from_secs(1));
    let mut books = Books::default();
    let text = issue(&mut books, &mut clock, 2, &[Role::Operator]);
    let created = books.current(&Change::Token {
        key: "0202020202020202".into(),
        register: Lww::tombstone(clock.now(1)),
    });
    let revoke = Change::Token {
        key: "0202020202020202".into(),
        register: Lww::tombstone(clock.now(2)),
    };
    books.apply(&revoke);
    assert_eq!(
        Directory::of(&books).authenticate(Some(&bearer(&text)), 10),
        Err(TokenError::Unknown)
    );
    let mut other = Books::default();
    other.apply(&revoke);
    other.apply(&created.unwrap());
    assert_eq!(
        Directory::of(&other).authenticate(Some(&bearer(&text)), 10),
        Err(TokenError::Unknown)
    );
}

#[test]
fn owners_and_delegates_act_for_their_tenants_and_see_only_them() {
    let mut clock = HybridClock::new("m", std::time::Duration::from_secs(1));
    let mut books = Books::default();
    let owner = issue(&mut books, &mut clock, 3, &[]);
    let delegate = issue(&mut books, &mut clock, 4, &[Role::Tenant("gamma".into())]);
    let agent = issue(&mut books, &mut clock, 5, &[Role::Agent("dc-a".into())]);
    books.apply(&Change::tenant(
        clock.now(2),
        tenant("acme", "user3@example.com", &["user4@example.com"]),
    ));
    books.apply(&Change::tenant(
        clock.now(2),
        tenant("beta", "user3@example.com", &[]),
    ));
    books.apply(&Change::tenant(clock.now(2), tenant("other", "", &[""])));
    let dir = Directory::of(&books);

    let o = dir.authenticate(Some(&bearer(&owner)), 0).unwrap();
    assert_eq!(o.tenants, ["acme".to_owned(), "beta".to_owned()].into());
    assert!(o.has(RoleKind::Tenant));
    let scope = o.scope();
    assert!(scope.sees("acme") && scope.sees("beta") && !scope.sees("other"));

    let d = dir.authenticate(Some(&bearer(&delegate)), 0).unwrap();
    assert_eq!(d.tenants, ["acme".to_owned(), "gamma".to_owned()].into());

    let a = dir.authenticate(Some(&bearer(&agent)), 0).unwrap();
    assert!(a.tenants.is_empty());
    assert!(a.is_agent_of("dc-a") && !a.is_agent_of("dc-b"));
    assert_eq!(a.agent_datacenters(), vec!["dc-a"]);
    assert_eq!(a.scope(), Scope::Tenants(BTreeSet::new()));
    assert!(!a.scope().sees(""));
}

#[test]
fn a_client_certificate_speaks_for_the_datacenters_it_names_only() {
    let p = Principal::certified(&["dc-a", "Not A Name", "dc-b"]).unwrap();
    assert!(p.by_certificate());
    assert!(p.is_agent_of("dc-a") && p.is_agent_of("dc-b"));
    assert_eq!(p.roles.len(), 2);
    assert!(p.tenants.is_empty());
    assert_eq!(p.scope(), Scope::Tenants(BTreeSet::new()));
    assert!(p.may(rule("/theia.v1.AgentService/Connect").unwrap()));
    assert!(!p.may(rule("/theia.v1.ClaimService/ListClaims").unwrap()));
    assert_eq!(Principal::certified(&["*.example.com"]), None);
    assert_eq!(Principal::certified(&[]), None);
}

#[test]
fn the_table_lets_each_kind_call_what_it_names_and_nothing_else() {
    let principal = |roles: &[Role], tenants: &[&str]| Principal {
        subject: "s".into(),
        token_id: "t".into(),
        roles: roles.iter().cloned().collect(),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        expires_unix_ms: None,
    };
    let admin = principal(&[Role::Admin], &[]);
    let operator = principal(&[Role::Operator], &[]);
    let auditor = principal(&[Role::Auditor], &[]);
    let tenant = principal(&[Role::Tenant("acme".into())], &["acme"]);
    let agent = principal(&[Role::Agent("dc".into())], &[]);
    let none = principal(&[], &[]);
    let may = |p: &Principal, path: &str| p.may(rule(path).unwrap());

    let create_token = "/theia.v1.AccessService/CreateToken";
    let connect = "/theia.v1.AgentService/Connect";
    let create_claim = "/theia.v1.ClaimService/CreateClaim";
    let list_claims = "/theia.v1.ClaimService/ListClaims";
    let create_tenant = "/theia.v1.TenantService/CreateTenant";
    let who = "/theia.v1.AccessService/WhoAmI";

    assert!(may(&admin, create_token) && !may(&operator, create_token));
    assert!(may(&agent, connect) && !may(&admin, connect) && !may(&tenant, connect));
    assert!(may(&tenant, create_claim) && may(&admin, create_claim));
    assert!(!may(&operator, create_claim) && may(&operator, list_claims));
    assert!(may(&operator, create_tenant) && !may(&tenant, create_tenant));
    for p in [&admin, &operator, &auditor, &tenant, &agent, &none] {
        assert!(may(p, who));
        assert!(p.may(Rule::Public));
    }
    let audit = |p: &str| p.starts_with("/theia.v1.AuditService/");
    for (path, _) in RULES.iter().filter(|(p, _)| *p != who) {
        assert_eq!(may(&auditor, path), audit(path), "auditor and {path}");
        assert_eq!(may(&admin, path), *path != connect, "admin and {path}");
        assert!(
            !(may(&operator, path) && audit(path)),
            "operator and {path}"
        );
        assert!(!may(&none, path), "a token without roles may call {path}");
        assert_eq!(may(&agent, path), *path == connect, "agent and {path}");
    }
}
