//! Who may do what: roles, bearer tokens, the authorization table, and the
//! principal a call acts as. Pure: the manager hands in the header it read
//! and the time.

mod role;
mod rules;
mod token;

pub use role::{Role, RoleKind};
pub use rules::{RULES, Rule, rule};
pub use token::{MAX_ROLES, Presented, Token, TokenError, TokenRequest};

use std::collections::{BTreeSet, HashMap};

use crate::state::Books;

/// The token id of a principal made from a client certificate.
const CERTIFICATE: &str = "-";

/// Who a call acts as, once its token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject.
    pub subject: String,
    /// The token's id.
    pub token_id: String,
    /// The token's roles.
    pub roles: BTreeSet<Role>,
    /// The tenants it acts for: its `tenant:` roles, and every tenant that
    /// names its subject as owner or delegate.
    pub tenants: BTreeSet<String>,
    /// When the token expires, Unix milliseconds.
    pub expires_unix_ms: Option<u64>,
}

/// Whose objects a call may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's (admins and operators).
    All,
    /// Only these tenants'.
    Tenants(BTreeSet<String>),
}

impl Scope {
    /// Whether objects of `tenant` are visible.
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenants(tenants) => tenants.contains(tenant),
        }
    }
}

impl Principal {
    /// Whether it holds a role of `kind` (acting for a tenant counts as
    /// the tenant kind).
    pub fn has(&self, kind: RoleKind) -> bool {
        match kind {
            RoleKind::Tenant => !self.tenants.is_empty(),
            kind => self.roles.iter().any(|r| r.kind() == kind),
        }
    }

    /// Who a verified client certificate naming `names` (its DNS names)
    /// speaks for: the agent of each name that is a datacenter id.
    pub fn certified(names: &[&str]) -> Option<Self> {
        let datacenters: BTreeSet<Role> = names
            .iter()
            .filter(|n| crate::model::validate_name("dc", n).is_ok())
            .map(|n| Role::Agent((*n).to_owned()))
            .collect();
        if datacenters.is_empty() {
            return None;
        }
        let listed: Vec<String> = datacenters.iter().map(ToString::to_string).collect();
        Some(Self {
            subject: format!("certificate for {}", listed.join(", ")),
            token_id: CERTIFICATE.to_owned(),
            roles: datacenters,
            tenants: BTreeSet::new(),
            expires_unix_ms: None,
        })
    }

    /// Whether it was made from a client certificate rather than a token.
    pub fn by_certificate(&self) -> bool {
        self.token_id == CERTIFICATE
    }

    /// Whether `rule` lets it call.
    pub fn may(&self, rule: Rule) -> bool {
        match rule {
            Rule::Public | Rule::Authenticated => true,
            Rule::Roles(kinds) => kinds.iter().any(|k| self.has(*k)),
        }
    }

    /// Whose objects it sees.
    pub fn scope(&self) -> Scope {
        if self.has(RoleKind::Admin) || self.has(RoleKind::Operator) {
            Scope::All
        } else {
            Scope::Tenants(self.tenants.clone())
        }
    }

    /// Whether it may speak as the agent of datacenter `dc`.
    pub fn is_agent_of(&self, dc: &str) -> bool {
        self.roles.contains(&Role::Agent(dc.to_owned()))
    }

    /// The datacenters it may speak for as an agent.
    pub fn agent_datacenters(&self) -> Vec<&str> {
        self.roles
            .iter()
            .filter_map(|r| match r {
                Role::Agent(dc) => Some(dc.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Every live token by id, and the tenants each subject is named in: what
/// authenticating a call needs, derived from the books.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    tokens: HashMap<String, Token>,
    members: HashMap<String, BTreeSet<String>>,
}

impl Directory {
    /// The directory the books describe.
    pub fn of(books: &Books) -> Self {
        let tokens = books
            .tokens
            .iter()
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect();
        let mut members: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (name, tenant) in books.tenants.iter() {
            let named = std::iter::once(&tenant.owner).chain(&tenant.delegates);
            for subject in named.filter(|s| !s.is_empty()) {
                members
                    .entry(subject.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        Self { tokens, members }
    }

    /// Checks the `authorization` value of a call (`None` when absent) at
    /// `now_ms`, and says who the call acts as.
    pub fn authenticate(&self, header: Option<&str>, now_ms: u64) -> Result<Principal, TokenError> {
        let presented = Presented::from_header(header.ok_or(TokenError::Missing)?)?;
        let token = self.tokens.get(&presented.id).ok_or(TokenError::Unknown)?;
        presented.check(token, now_ms)?;
        let mut tenants: BTreeSet<String> = token
            .roles
            .iter()
            .filter_map(|r| match r {
                Role::Tenant(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        if let Some(named) = self.members.get(&token.subject) {
            tenants.extend(named.iter().cloned());
        }
        Ok(Principal {
            subject: token.subject.clone(),
            token_id: token.id.clone(),
            roles: token.roles.clone(),
            tenants,
            expires_unix_ms: token.expires_unix_ms,
        })
    }
}

#[cfg(test)]
mod tests;
