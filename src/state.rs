//! The books: every durable object, one last-writer-wins map per kind, and
//! the changes (single registers) that stores persist and replicas exchange.

mod claim;
mod index;

pub use claim::{Applied, AppliedFlags, ClaimEnd, assemble};
pub use index::{ClaimIndex, TenantUsage};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::access::Token;
use crate::audit::Event;
use crate::clock::Timestamp;
use crate::crdt::{Crdt, Lww, LwwMap};
use crate::model::{Claim, Datacenter, DatacenterSettings, Maintenance, Profile, Tenant};

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
    /// What an operator set on a datacenter, under its id.
    #[serde(rename = "datacenter_settings")]
    Settings {
        /// The datacenter's id.
        key: String,
        /// Its register.
        register: Lww<DatacenterSettings>,
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
    /// A claim's record (what was asked, where it was placed) under its id.
    Claim {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Claim>,
    },
    /// How a claim ended, under its id.
    #[serde(rename = "claim_end")]
    End {
        /// The claim's id.
        key: String,
        /// Its register.
        register: Lww<ClaimEnd>,
    },
    /// A bearer token's record under its id.
    Token {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Token>,
    },
    /// A maintenance window under its id.
    Maintenance {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Maintenance>,
    },
    /// What one datacenter's agent said of its part of a claim.
    #[serde(rename = "claim_applied")]
    Applied {
        /// The claim's id.
        claim: String,
        /// The datacenter.
        datacenter: String,
        /// Its register.
        register: Lww<Applied>,
    },
    /// An event of the audit trail under its id.
    Event {
        /// The id.
        key: String,
        /// Its register.
        register: Lww<Event>,
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

    /// `token`'s record as written at `ts`, under its id.
    pub fn token(ts: Timestamp, token: Token) -> Self {
        Self::Token {
            key: token.id.clone(),
            register: Lww::new(ts, token),
        }
    }

    /// `claim`'s record as written at `ts`, under its id.
    pub fn claim(ts: Timestamp, claim: Claim) -> Self {
        Self::Claim {
            key: claim.id.clone(),
            register: Lww::new(ts, claim),
        }
    }

    /// `maintenance` as written at `ts`, under its id.
    pub fn maintenance(ts: Timestamp, maintenance: Maintenance) -> Self {
        Self::Maintenance {
            key: maintenance.id.clone(),
            register: Lww::new(ts, maintenance),
        }
    }

    /// The end of claim `id`, written at `ts`.
    pub fn end(id: &str, ts: Timestamp, end: ClaimEnd) -> Self {
        Self::End {
            key: id.to_owned(),
            register: Lww::new(ts, end),
        }
    }

    /// `datacenter`'s word on its part of claim `id`, written at `ts`.
    pub fn applied(id: &str, datacenter: &str, ts: Timestamp, applied: Applied) -> Self {
        Self::Applied {
            claim: id.to_owned(),
            datacenter: datacenter.to_owned(),
            register: Lww::new(ts, applied),
        }
    }

    /// `event`, written at `ts`, under its id.
    pub fn event(ts: Timestamp, event: Event) -> Self {
        Self::Event {
            key: event.id.clone(),
            register: Lww::new(ts, event),
        }
    }

    /// The timestamp of the register it carries.
    pub fn timestamp(&self) -> &Timestamp {
        match self {
            Self::Datacenter { register, .. } => register.timestamp(),
            Self::Settings { register, .. } => register.timestamp(),
            Self::Tenant { register, .. } => register.timestamp(),
            Self::Profile { register, .. } => register.timestamp(),
            Self::Token { register, .. } => register.timestamp(),
            Self::Claim { register, .. } => register.timestamp(),
            Self::End { register, .. } => register.timestamp(),
            Self::Maintenance { register, .. } => register.timestamp(),
            Self::Applied { register, .. } => register.timestamp(),
            Self::Event { register, .. } => register.timestamp(),
        }
    }

    /// Whether the register it carries records a deletion.
    pub fn is_tombstone(&self) -> bool {
        match self {
            Self::Datacenter { register, .. } => register.is_tombstone(),
            Self::Settings { register, .. } => register.is_tombstone(),
            Self::Tenant { register, .. } => register.is_tombstone(),
            Self::Profile { register, .. } => register.is_tombstone(),
            Self::Token { register, .. } => register.is_tombstone(),
            Self::Claim { register, .. } => register.is_tombstone(),
            Self::End { register, .. } => register.is_tombstone(),
            Self::Maintenance { register, .. } => register.is_tombstone(),
            Self::Applied { register, .. } => register.is_tombstone(),
            Self::Event { register, .. } => register.is_tombstone(),
        }
    }

    /// The claim this change is part of, if it is part of one.
    pub fn claim_id(&self) -> Option<&str> {
        match self {
            Self::Claim { key, .. } | Self::End { key, .. } => Some(key),
            Self::Applied { claim, .. } => Some(claim),
            _ => None,
        }
    }

    /// `kind/key`: unique across all maps, used as the storage key.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Datacenter { key, .. } => format!("datacenter/{key}"),
            Self::Settings { key, .. } => format!("datacenter_settings/{key}"),
            Self::Tenant { key, .. } => format!("tenant/{key}"),
            Self::Profile { key, .. } => format!("profile/{key}"),
            Self::Token { key, .. } => format!("token/{key}"),
            Self::Claim { key, .. } => format!("claim/{key}"),
            Self::End { key, .. } => format!("claim_end/{key}"),
            Self::Maintenance { key, .. } => format!("maintenance/{key}"),
            Self::Applied {
                claim, datacenter, ..
            } => format!("claim_applied/{claim}/{datacenter}"),
            Self::Event { key, .. } => format!("event/{key}"),
        }
    }
}

/// Every durable object theia keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Books {
    /// Datacenters by id, as their agents (and registration) made them.
    pub datacenters: LwwMap<String, Datacenter>,
    /// What operators set on datacenters, by id.
    pub settings: LwwMap<String, DatacenterSettings>,
    /// Derived: each datacenter with its settings applied, what scheduling
    /// and answers see.
    effective: BTreeMap<String, Datacenter>,
    /// Tenants by name.
    pub tenants: LwwMap<String, Tenant>,
    /// Profiles by name.
    pub profiles: LwwMap<String, Profile>,
    /// Token records by id.
    pub tokens: LwwMap<String, Token>,
    /// Maintenance windows by id, cancelled ones included.
    pub maintenances: LwwMap<String, Maintenance>,
    records: LwwMap<String, Claim>,
    ends: LwwMap<String, ClaimEnd>,
    applied: AppliedFlags,
    /// Derived: each claim as assembled from its registers.
    claims: BTreeMap<String, Claim>,
    /// Derived from `claims`, kept up to date by every merge.
    index: ClaimIndex,
    /// The audit trail by event id, which is time order.
    events: BTreeMap<String, Lww<Event>>,
}

/// Merges `register` into `map` under `key`.
fn merge_into<V: Clone>(map: &mut LwwMap<String, V>, key: &str, register: &Lww<V>) {
    map.merge(&LwwMap::single(key.to_owned(), register.clone()));
}

impl Books {
    /// Merges one change (from this node, a store or a peer).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Datacenter { key, register } => {
                merge_into(&mut self.datacenters, key, register)
            }
            Change::Settings { key, register } => merge_into(&mut self.settings, key, register),
            Change::Tenant { key, register } => merge_into(&mut self.tenants, key, register),
            Change::Profile { key, register } => merge_into(&mut self.profiles, key, register),
            Change::Token { key, register } => merge_into(&mut self.tokens, key, register),
            Change::Claim { key, register } => merge_into(&mut self.records, key, register),
            Change::End { key, register } => merge_into(&mut self.ends, key, register),
            Change::Maintenance { key, register } => {
                let before = self.maintenances.get(key).cloned();
                merge_into(&mut self.maintenances, key, register);
                self.index
                    .update_maintenance(before.as_ref(), self.maintenances.get(key));
            }
            Change::Applied {
                claim,
                datacenter,
                register,
            } => merge_into(
                self.applied.entry(claim.clone()).or_default(),
                datacenter,
                register,
            ),
            Change::Event { key, register } => {
                let newer = self
                    .events
                    .get(key)
                    .is_none_or(|held| held.timestamp() < register.timestamp());
                if newer {
                    self.events.insert(key.clone(), register.clone());
                }
            }
        }
        if let Some(id) = change.claim_id() {
            self.refresh(id);
        }
        self.refresh_datacenter(change);
    }

    /// Applies datacenter `id`'s settings to its record anew, when `change`
    /// is either.
    fn refresh_datacenter(&mut self, change: &Change) {
        let (Change::Datacenter { key, .. } | Change::Settings { key, .. }) = change else {
            return;
        };
        match self.datacenters.get(key) {
            Some(reported) => {
                let dc = match self.settings.get(key) {
                    Some(settings) => settings.apply(reported),
                    None => reported.clone(),
                };
                self.effective.insert(key.clone(), dc);
            }
            None => {
                self.effective.remove(key);
            }
        }
    }

    /// Datacenter `id` with its operator's settings applied.
    pub fn datacenter(&self, id: &str) -> Option<&Datacenter> {
        self.effective.get(id)
    }

    /// Every datacenter with its operator's settings applied, by id.
    pub fn effective_datacenters(&self) -> &BTreeMap<String, Datacenter> {
        &self.effective
    }

    /// Assembles claim `id` anew from its registers and updates the index.
    fn refresh(&mut self, id: &str) {
        let before = self.claims.remove(id);
        let after = self
            .records
            .get(&id.to_owned())
            .map(|r| assemble(r, self.ends.get(&id.to_owned()), self.applied.get(id)));
        self.index.update(before.as_ref(), after.as_ref());
        if let Some(claim) = after {
            self.claims.insert(id.to_owned(), claim);
        }
    }

    /// Every claim, live or released, by id, as assembled from its registers.
    pub fn claims(&self) -> &BTreeMap<String, Claim> {
        &self.claims
    }

    /// Whether any register, live or deleted, uses claim id `id`.
    pub fn claim_id_taken(&self, id: &str) -> bool {
        let id = id.to_owned();
        self.records.register(&id).is_some() || self.ends.register(&id).is_some()
    }

    /// The indices over the claims.
    pub fn index(&self) -> &ClaimIndex {
        &self.index
    }

    /// The current register behind a change's key, as a change: what a store
    /// must hold after the change is merged.
    pub fn current(&self, change: &Change) -> Option<Change> {
        Some(match change {
            Change::Datacenter { key, .. } => Change::Datacenter {
                key: key.clone(),
                register: self.datacenters.register(key)?.clone(),
            },
            Change::Settings { key, .. } => Change::Settings {
                key: key.clone(),
                register: self.settings.register(key)?.clone(),
            },
            Change::Tenant { key, .. } => Change::Tenant {
                key: key.clone(),
                register: self.tenants.register(key)?.clone(),
            },
            Change::Profile { key, .. } => Change::Profile {
                key: key.clone(),
                register: self.profiles.register(key)?.clone(),
            },
            Change::Token { key, .. } => Change::Token {
                key: key.clone(),
                register: self.tokens.register(key)?.clone(),
            },
            Change::Claim { key, .. } => Change::Claim {
                key: key.clone(),
                register: self.records.register(key)?.clone(),
            },
            Change::End { key, .. } => Change::End {
                key: key.clone(),
                register: self.ends.register(key)?.clone(),
            },
            Change::Maintenance { key, .. } => Change::Maintenance {
                key: key.clone(),
                register: self.maintenances.register(key)?.clone(),
            },
            Change::Applied {
                claim, datacenter, ..
            } => Change::Applied {
                claim: claim.clone(),
                datacenter: datacenter.clone(),
                register: self.applied.get(claim)?.register(datacenter)?.clone(),
            },
            Change::Event { key, .. } => Change::Event {
                key: key.clone(),
                register: self.events.get(key)?.clone(),
            },
        })
    }

    /// Puts back what the key of `change` held before (`prior`, as
    /// [`Books::current`] gave it), or forgets the key when `prior` is none:
    /// for the one writer undoing a change its store refused. Not a merge:
    /// it goes back in time.
    pub fn restore(&mut self, change: &Change, prior: Option<Change>) {
        let maintenance = |books: &Self| match change {
            Change::Maintenance { key, .. } => books.maintenances.get(key).cloned(),
            _ => None,
        };
        let before = maintenance(self);
        self.forget(change);
        if let Some(prior) = prior.filter(|p| p.storage_key() == change.storage_key()) {
            self.put(prior);
        }
        if let Some(id) = change.claim_id() {
            self.refresh(id);
        }
        self.refresh_datacenter(change);
        if matches!(change, Change::Maintenance { .. }) {
            self.index
                .update_maintenance(before.as_ref(), maintenance(self).as_ref());
        }
    }

    /// Removes the register under `change`'s key, whatever it holds.
    fn forget(&mut self, change: &Change) {
        match change {
            Change::Datacenter { key, .. } => self.datacenters.restore(key.clone(), None),
            Change::Settings { key, .. } => self.settings.restore(key.clone(), None),
            Change::Tenant { key, .. } => self.tenants.restore(key.clone(), None),
            Change::Profile { key, .. } => self.profiles.restore(key.clone(), None),
            Change::Token { key, .. } => self.tokens.restore(key.clone(), None),
            Change::Claim { key, .. } => self.records.restore(key.clone(), None),
            Change::End { key, .. } => self.ends.restore(key.clone(), None),
            Change::Maintenance { key, .. } => self.maintenances.restore(key.clone(), None),
            Change::Applied {
                claim, datacenter, ..
            } => {
                if let Some(flags) = self.applied.get_mut(claim) {
                    flags.restore(datacenter.clone(), None);
                    if flags.registers().next().is_none() {
                        self.applied.remove(claim);
                    }
                }
            }
            Change::Event { key, .. } => {
                self.events.remove(key);
            }
        }
    }

    /// Sets the register of `change` under its key, whatever was there.
    fn put(&mut self, change: Change) {
        match change {
            Change::Datacenter { key, register } => self.datacenters.restore(key, Some(register)),
            Change::Settings { key, register } => self.settings.restore(key, Some(register)),
            Change::Tenant { key, register } => self.tenants.restore(key, Some(register)),
            Change::Profile { key, register } => self.profiles.restore(key, Some(register)),
            Change::Token { key, register } => self.tokens.restore(key, Some(register)),
            Change::Claim { key, register } => self.records.restore(key, Some(register)),
            Change::End { key, register } => self.ends.restore(key, Some(register)),
            Change::Maintenance { key, register } => {
                self.maintenances.restore(key, Some(register));
            }
            Change::Applied {
                claim,
                datacenter,
                register,
            } => self
                .applied
                .entry(claim)
                .or_default()
                .restore(datacenter, Some(register)),
            Change::Event { key, register } => {
                self.events.insert(key, register);
            }
        }
    }

    /// The audit trail from the first event whose id is `from` or after,
    /// in id (time) order.
    pub fn events_from<'a>(&'a self, from: &str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events
            .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            .filter_map(|(_, r)| r.get())
    }

    /// The audit trail before event id `before` (from the newest when
    /// none), newest first.
    pub fn events_back<'a>(&'a self, before: Option<&str>) -> impl Iterator<Item = &'a Event> + 'a {
        let end = match before {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        self.events
            .range::<str, _>((std::ops::Bound::Unbounded, end))
            .rev()
            .filter_map(|(_, r)| r.get())
    }

    /// How many events the trail holds.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Forgets the oldest events beyond `depth` at `now_ms` for good, at
    /// most `limit` of them; returns the storage keys that held them.
    pub fn trim_events(
        &mut self,
        depth: crate::audit::history::Depth,
        now_ms: u64,
        limit: usize,
    ) -> Vec<String> {
        let times = self.events.values().map(|r| r.timestamp().ms);
        let n = crate::audit::history::excess(times, self.events.len(), depth, now_ms).min(limit);
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            if let Some((key, _)) = self.events.pop_first() {
                keys.push(format!("event/{key}"));
            }
        }
        keys
    }

    /// Forgets claim `id` for good, every register of it (past its
    /// retention); returns the storage keys that held them.
    pub fn prune_claim(&mut self, id: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let key = id.to_owned();
        if self.records.register(&key).is_some() {
            keys.push(format!("claim/{id}"));
            self.records.restore(key.clone(), None);
        }
        if self.ends.register(&key).is_some() {
            keys.push(format!("claim_end/{id}"));
            self.ends.restore(key.clone(), None);
        }
        if let Some(flags) = self.applied.remove(id) {
            keys.extend(
                flags
                    .registers()
                    .map(|(dc, _)| format!("claim_applied/{id}/{dc}")),
            );
        }
        self.refresh(id);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::HybridClock;
    use crate::model::Resources;

    #[test]
    fn maintenance_counts_while_it_holds_and_undoing_or_cancelling_gives_it_back() {
        use crate::model::{Maintenance, ResourceClass, Window};
        let mut clock = HybridClock::new("m1", std::time::Duration::from_secs(1));
        let vcpu = ResourceClass::parse("compute.vcpu").unwrap();
        let m = |resources: Option<Resources>, cancelled: Option<u64>| Maintenance {
            id: "m-1".into(),
            datacenter: "dc".into(),
            resources,
            window: Window::between(100, 200),
            reason: "racks".into(),
            created_by: "admin".into(),
            created_ms: 0,
            cancelled_ms: cancelled,
        };
        let eight = Resources::parse_list("r", "compute.vcpu=8").unwrap();
        let mut books = Books::default();
        let first = Change::maintenance(clock.now(1), m(Some(eight.clone()), None));
        let prior = books.current(&first);
        books.apply(&first);
        let taken = |b: &Books, t| b.index().datacenter("dc").maintenance.level(&vcpu, t);
        assert_eq!(
            (taken(&books, 99), taken(&books, 100), taken(&books, 200)),
            (0, 8, 0)
        );
        books.restore(&first, prior);
        assert_eq!(books, Books::default(), "undone, as if never written");
        books.apply(&first);
        // Cancelled at 150: it takes nothing from then on.
        books.apply(&Change::maintenance(
            clock.now(2),
            m(Some(eight.clone()), Some(150)),
        ));
        assert_eq!((taken(&books, 120), taken(&books, 150)), (8, 0));
        // The whole datacenter, then cancelled before it starts.
        let all = Change::maintenance(clock.now(3), m(None, None));
        books.apply(&all);
        assert_eq!(taken(&books, 120), 0);
        assert_eq!(
            books.index().datacenter("dc").closed,
            [(Window::between(100, 200), "m-1".to_owned())]
        );
        books.apply(&Change::maintenance(clock.now(4), m(None, Some(10))));
        assert!(books.index().datacenter("dc").is_empty());
        assert_eq!(
            books
                .maintenances
                .get(&"m-1".to_owned())
                .unwrap()
                .cancelled_ms,
            Some(10)
        );
    }

    #[test]
    fn operator_settings_apply_over_every_report_whatever_the_order() {
        use crate::model::{Inventory, Labels, ResourceClass};
        let mut clock = HybridClock::new("m1", std::time::Duration::from_secs(1));
        let vcpu = ResourceClass::parse("compute.vcpu").unwrap();
        let eu: Labels = [("region".to_owned(), "eu".to_owned())].into();
        let us: Labels = [("region".to_owned(), "us".to_owned())].into();
        let reported = |total: u64| {
            let mut dc = Datacenter::new("dc", eu.clone());
            dc.inventory
                .insert(vcpu.clone(), Inventory::reported(total, total));
            dc
        };
        let first = Change::datacenter(clock.now(1), reported(16));
        let settings = Change::Settings {
            key: "dc".into(),
            register: Lww::new(
                clock.now(2),
                DatacenterSettings {
                    reserved: [(vcpu.clone(), 4)].into(),
                    allocation_ratio: [(vcpu.clone(), 2.0)].into(),
                    schedulable: false,
                    labels: Some(us.clone()),
                },
            ),
        };
        let later = Change::datacenter(clock.now(3), reported(20));
        let orders = [
            [&first, &settings, &later],
            [&later, &first, &settings],
            [&settings, &later, &first],
        ];
        for order in orders {
            let mut books = Books::default();
            for change in order {
                books.apply(change);
            }
            let dc = books.datacenter("dc").expect("known");
            let inv = &dc.inventory[&vcpu];
            assert_eq!(
                (inv.total, inv.reserved, inv.allocation_ratio),
                (20, 4, 2.0)
            );
            assert_eq!(inv.capacity(), 32);
            assert!(!dc.schedulable);
            assert_eq!(dc.labels, us);
            assert_eq!(books.datacenters.get(&"dc".to_owned()).unwrap().labels, eu);
            assert_eq!(books.effective_datacenters().len(), 1);
        }

        let mut books = Books::default();
        books.apply(&first);
        books.apply(&settings);
        books.apply(&Change::Settings {
            key: "dc".into(),
            register: Lww::tombstone(clock.now(4)),
        });
        let dc = books.datacenter("dc").unwrap();
        assert_eq!(
            dc.inventory[&vcpu].capacity(),
            16,
            "without settings, the report"
        );
        assert!(dc.schedulable);
        books.apply(&Change::Datacenter {
            key: "dc".into(),
            register: Lww::tombstone(clock.now(5)),
        });
        assert!(books.datacenter("dc").is_none());
        assert!(books.effective_datacenters().is_empty());
    }

    #[test]
    fn a_change_undone_without_a_prior_is_forgotten_and_tombstones_say_so() {
        let mut clock = HybridClock::new("m1", std::time::Duration::from_secs(1));
        let settings = Change::Settings {
            key: "dc".into(),
            register: Lww::new(clock.now(1), DatacenterSettings::default()),
        };
        let record = Change::datacenter(clock.now(1), Datacenter::new("dc", Default::default()));
        assert!(!settings.is_tombstone() && !record.is_tombstone());
        let gone = Change::Settings {
            key: "dc".into(),
            register: Lww::tombstone(clock.now(2)),
        };
        assert!(gone.is_tombstone());
        assert_eq!(settings.storage_key(), "datacenter_settings/dc");

        let mut books = Books::default();
        books.apply(&record);
        books.apply(&settings);
        assert!(books.current(&settings).is_some());
        // The writer undoing a refused write it made first: nothing was there.
        books.restore(&settings, None);
        assert!(books.current(&settings).is_none());
        assert!(books.settings.is_empty());
        books.restore(&record, None);
        assert!(books.datacenter("dc").is_none(), "the view follows");
        // And with a prior, that prior comes back.
        books.apply(&record);
        let prior = books.current(&record);
        let newer = Change::datacenter(clock.now(3), Datacenter::new("dc", Default::default()));
        books.apply(&newer);
        books.restore(&newer, prior.clone());
        assert_eq!(books.current(&record), prior);
    }

    #[test]
    fn settings_are_validated() {
        let vcpu = crate::model::ResourceClass::parse("compute.vcpu").unwrap();
        let with = |r: f64| DatacenterSettings {
            allocation_ratio: [(vcpu.clone(), r)].into(),
            ..DatacenterSettings::default()
        };
        assert!(with(1.5).validate().is_ok());
        assert!(with(crate::model::MAX_ALLOCATION_RATIO).validate().is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1000.5] {
            let err = with(bad).validate().unwrap_err().to_string();
            assert!(err.starts_with("allocation_ratio[compute.vcpu]"), "{err}");
        }
    }

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
