//! The books: every durable object, one last-writer-wins map per kind, and
//! the changes (single registers) that stores persist and replicas exchange.

mod index;

pub use index::{ClaimIndex, TenantUsage};

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crdt::{Crdt, Lww, LwwMap};
use crate::model::{Claim, Datacenter, Profile, Tenant};

/// One register of one map: the unit of persistence and replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// A datacenter under its id.
    Datacenter {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Datacenter>,
    },
    /// A tenant under its name.
    Tenant {
        /// The name.
        key: String,
        /// Its register.
        register: Lww<Tenant>,
    },
    /// A profile under its name.
    Profile {
        /// The name.
        key: String,
        /// Its register.
        register: Lww<Profile>,
    },
    /// A claim under its id.
    Claim {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Claim>,
    },
}

impl Change {
    /// `dc` as written at `ts`, under its id.
    pub fn datacenter(ts: Timestamp, dc: Datacenter) -> Self {
        Self::Datacenter {
            key: dc.id.clone(),
            register: Lww::new(ts, dc),
        }
    }

    /// `tenant` as written at `ts`, under its name.
    pub fn tenant(ts: Timestamp, tenant: Tenant) -> Self {
        Self::Tenant {
            key: tenant.name.clone(),
            register: Lww::new(ts, tenant),
        }
    }

    /// `profile` as written at `ts`, under its name.
    pub fn profile(ts: Timestamp, profile: Profile) -> Self {
        Self::Profile {
            key: profile.name.clone(),
            register: Lww::new(ts, profile),
        }
    }

    /// `claim` as written at `ts`, under its id.
    pub fn claim(ts: Timestamp, claim: Claim) -> Self {
        Self::Claim {
            key: claim.id.clone(),
            register: Lww::new(ts, claim),
        }
    }

    /// Which map, and the key in it.
    pub fn kind_and_key(&self) -> (Kind, &str) {
        match self {
            Self::Datacenter { key, .. } => (Kind::Datacenter, key),
            Self::Tenant { key, .. } => (Kind::Tenant, key),
            Self::Profile { key, .. } => (Kind::Profile, key),
            Self::Claim { key, .. } => (Kind::Claim, key),
        }
    }

    /// The timestamp of the register it carries.
    pub fn timestamp(&self) -> &Timestamp {
        match self {
            Self::Datacenter { register, .. } => register.timestamp(),
            Self::Tenant { register, .. } => register.timestamp(),
            Self::Profile { register, .. } => register.timestamp(),
            Self::Claim { register, .. } => register.timestamp(),
        }
    }

    /// `kind/key`: unique across all maps, used as the storage key.
    pub fn storage_key(&self) -> String {
        let (kind, key) = self.kind_and_key();
        format!("{}/{key}", kind.as_str())
    }
}

/// The maps of the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Datacenters.
    Datacenter,
    /// Tenants.
    Tenant,
    /// Profiles.
    Profile,
    /// Claims.
    Claim,
}

impl Kind {
    /// The name used in storage keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Datacenter => "datacenter",
            Self::Tenant => "tenant",
            Self::Profile => "profile",
            Self::Claim => "claim",
        }
    }
}

/// Every durable object theia keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Books {
    /// Datacenters by id.
    pub datacenters: LwwMap<String, Datacenter>,
    /// Tenants by name.
    pub tenants: LwwMap<String, Tenant>,
    /// Profiles by name.
    pub profiles: LwwMap<String, Profile>,
    /// Claims by id.
    claims: LwwMap<String, Claim>,
    /// Derived from `claims`, kept up to date by every merge.
    index: ClaimIndex,
}

impl Books {
    /// Merges one change (from this node, a store or a peer).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Datacenter { key, register } => {
                self.datacenters
                    .merge(&LwwMap::single(key.clone(), register.clone()));
            }
            Change::Tenant { key, register } => {
                self.tenants
                    .merge(&LwwMap::single(key.clone(), register.clone()));
            }
            Change::Profile { key, register } => {
                self.profiles
                    .merge(&LwwMap::single(key.clone(), register.clone()));
            }
            Change::Claim { key, register } => {
                let before = self.claims.get(key).cloned();
                self.claims
                    .merge(&LwwMap::single(key.clone(), register.clone()));
                self.index.update(before.as_ref(), self.claims.get(key));
            }
        }
    }

    /// Every claim, live or released, by id.
    pub fn claims(&self) -> &LwwMap<String, Claim> {
        &self.claims
    }

    /// The indices over the claims.
    pub fn index(&self) -> &ClaimIndex {
        &self.index
    }

    /// Puts back what the key of `change` held before (`prior`, as
    /// [`Books::current`] gave it), or forgets the key when `prior` is none:
    /// for the one writer undoing a change its store refused, and for pruning
    /// claims past their retention. Not a merge: it goes back in time.
    pub fn restore(&mut self, change: &Change, prior: Option<Change>) {
        let (kind, key) = change.kind_and_key();
        match (kind, prior) {
            (_, Some(Change::Datacenter { key, register })) => {
                self.datacenters.restore(key, Some(register));
            }
            (_, Some(Change::Tenant { key, register })) => {
                self.tenants.restore(key, Some(register));
            }
            (_, Some(Change::Profile { key, register })) => {
                self.profiles.restore(key, Some(register));
            }
            (_, Some(Change::Claim { key, register })) => self.restore_claim(key, Some(register)),
            (Kind::Datacenter, None) => self.datacenters.restore(key.to_owned(), None),
            (Kind::Tenant, None) => self.tenants.restore(key.to_owned(), None),
            (Kind::Profile, None) => self.profiles.restore(key.to_owned(), None),
            (Kind::Claim, None) => self.restore_claim(key.to_owned(), None),
        }
    }

    fn restore_claim(&mut self, key: String, register: Option<Lww<Claim>>) {
        let before = self.claims.get(&key).cloned();
        self.claims.restore(key.clone(), register);
        self.index.update(before.as_ref(), self.claims.get(&key));
    }

    /// The current register behind a change's key, as a change: what a store
    /// must hold after the change is merged.
    pub fn current(&self, change: &Change) -> Option<Change> {
        Some(match change {
            Change::Datacenter { key, .. } => Change::Datacenter {
                key: key.clone(),
                register: self.datacenters.register(key)?.clone(),
            },
            Change::Tenant { key, .. } => Change::Tenant {
                key: key.clone(),
                register: self.tenants.register(key)?.clone(),
            },
            Change::Profile { key, .. } => Change::Profile {
                key: key.clone(),
                register: self.profiles.register(key)?.clone(),
            },
            Change::Claim { key, .. } => Change::Claim {
                key: key.clone(),
                register: self.claims.register(key)?.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::HybridClock;
    use crate::model::Resources;

    #[test]
    fn changes_round_trip_through_json_and_merge_in_any_order() {
        let mut clock = HybridClock::new("m1", std::time::Duration::from_secs(1));
        let profile = |n: &str| Profile {
            name: "small".into(),
            resources: Resources::parse_list("resources", n).unwrap(),
            description: String::new(),
        };
        let a = Change::Profile {
            key: "small".into(),
            register: Lww::new(clock.now(1), profile("compute.vcpu=1")),
        };
        let b = Change::Profile {
            key: "small".into(),
            register: Lww::new(clock.now(2), profile("compute.vcpu=2")),
        };
        let json = serde_json::to_string(&b).unwrap();
        let b2: Change = serde_json::from_str(&json).unwrap();
        assert_eq!(b, b2);
        assert_eq!(b.storage_key(), "profile/small");

        let (mut x, mut y) = (Books::default(), Books::default());
        x.apply(&a);
        x.apply(&b2);
        y.apply(&b);
        y.apply(&a);
        assert_eq!(x, y);
        assert_eq!(
            x.profiles
                .get(&"small".to_owned())
                .unwrap()
                .resources
                .to_string(),
            "compute.vcpu=2"
        );
    }
}
