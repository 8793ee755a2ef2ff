//! The books: every durable object, one last-writer-wins map per kind, and
//! the changes (single registers) that stores persist and replicas exchange.

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

    /// `kind/key`: unique across all maps, used as the storage key.
    pub fn storage_key(&self) -> String {
        let (kind, key) = match self {
            Self::Datacenter { key, .. } => ("datacenter", key),
            Self::Tenant { key, .. } => ("tenant", key),
            Self::Profile { key, .. } => ("profile", key),
            Self::Claim { key, .. } => ("claim", key),
        };
        format!("{kind}/{key}")
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
    pub claims: LwwMap<String, Claim>,
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
                self.claims
                    .merge(&LwwMap::single(key.clone(), register.clone()));
            }
        }
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
