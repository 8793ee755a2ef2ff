//! The objects theia keeps books of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    FieldError, Labels, ResourceClass, Resources, Selector, Timing, Window, validate_labels,
    validate_name, validate_request_id,
};

/// The most units one claim may ask for.
pub const MAX_CLAIM_COUNT: u32 = 10_000;
const MAX_DELEGATES: usize = 64;
const MAX_TEXT_LEN: usize = 256;

pub(crate) fn validate_text(field: &str, text: &str) -> Result<(), FieldError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(FieldError::new(
            field,
            format!(
                "is {} characters long, at most {MAX_TEXT_LEN} are allowed",
                text.len()
            ),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// One resource class of one datacenter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// What the management plane has.
    pub total: u64,
    /// What the management plane reports free (including theia's placements).
    pub free: u64,
    /// Held back by the operator; never placed.
    pub reserved: u64,
    /// Over-commit factor on `total - reserved`; 1.0 means none.
    pub allocation_ratio: f64,
    /// theia's assignments the agent held when it measured `free` (`None`
    /// from agents that do not say): the other half of a consistent pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
}

impl Inventory {
    /// An inventory as an agent reports it, with no reservation or over-commit.
    pub fn reported(total: u64, free: u64) -> Self {
        Self {
            total,
            free: free.min(total),
            reserved: 0,
            allocation_ratio: 1.0,
            held: None,
        }
    }

    /// The same, saying how much of what is used was theia's when `free`
    /// was measured.
    #[must_use]
    pub fn holding(mut self, held: u64) -> Self {
        self.held = Some(held);
        self
    }

    /// What the management plane uses beyond theia's assignments. From a
    /// report that says what it held, that is exact; otherwise `applied`
    /// (theia's placements its agent confirmed) stands in, which overstates
    /// what is free while a confirmed assignment is not yet in `free`.
    pub fn external(&self, applied: u64) -> u64 {
        let used = self.total.saturating_sub(self.free);
        used.saturating_sub(self.held.unwrap_or(applied))
    }

    /// `(total - reserved) × allocation_ratio`, rounded down.
    pub fn capacity(&self) -> u64 {
        let base = self.total.saturating_sub(self.reserved);
        if self.allocation_ratio == 1.0 {
            return base;
        }
        // f64 is exact below 2^53; above, capacity is approximate by design.
        let scaled = (base as f64) * self.allocation_ratio.max(0.0);
        if scaled >= u64::MAX as f64 {
            u64::MAX
        } else {
            scaled as u64
        }
    }
}

/// A datacenter: one management plane with one agent beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datacenter {
    /// Its id, as the agent names it.
    pub id: String,
    /// Labels for selectors.
    pub labels: Labels,
    /// Whether new placements may land here.
    pub schedulable: bool,
    /// Per class, what the management plane reported.
    pub inventory: BTreeMap<ResourceClass, Inventory>,
    /// The version of the agent that last reported.
    pub agent_version: String,
    /// The driver of that agent.
    pub driver: String,
}

impl Datacenter {
    /// A new datacenter as announced by its agent.
    pub fn new(id: impl Into<String>, labels: Labels) -> Self {
        Self {
            id: id.into(),
            labels,
            schedulable: true,
            inventory: BTreeMap::new(),
            agent_version: String::new(),
            driver: String::new(),
        }
    }
}

/// The largest allocation ratio an operator may set on a class.
pub const MAX_ALLOCATION_RATIO: f64 = 1000.0;

/// What an operator sets on a datacenter: a register of its own, apart
/// from what the agent reports, so that no report (from any manager) ever
/// takes it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatacenterSettings {
    /// Held back per class; never placed.
    #[serde(default)]
    pub reserved: BTreeMap<ResourceClass, u64>,
    /// Over-commit factor per class on `total - reserved`; 1.0 when unset.
    #[serde(default)]
    pub allocation_ratio: BTreeMap<ResourceClass, f64>,
    /// Whether new placements may land here.
    pub schedulable: bool,
    /// Labels that replace the agent's, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

impl Default for DatacenterSettings {
    fn default() -> Self {
        Self {
            reserved: BTreeMap::new(),
            allocation_ratio: BTreeMap::new(),
            schedulable: true,
            labels: None,
        }
    }
}

impl DatacenterSettings {
    /// Checks the ratios (finite, above 0, at most [`MAX_ALLOCATION_RATIO`])
    /// and the labels.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (class, ratio) in &self.allocation_ratio {
            if !ratio.is_finite() || *ratio <= 0.0 || *ratio > MAX_ALLOCATION_RATIO {
                return Err(FieldError::new(
                    format!("allocation_ratio[{class}]"),
                    format!("must be above 0 and at most {MAX_ALLOCATION_RATIO}, not {ratio}"),
                ));
            }
        }
        if let Some(labels) = &self.labels {
            validate_labels("labels", labels)?;
        }
        Ok(())
    }

    /// `reported` as the operator set it: its reservations, ratios,
    /// schedulable flag and labels over what the agent said.
    pub fn apply(&self, reported: &Datacenter) -> Datacenter {
        let mut dc = reported.clone();
        for (class, inv) in &mut dc.inventory {
            inv.reserved = self.reserved.get(class).copied().unwrap_or(0);
            inv.allocation_ratio = self.allocation_ratio.get(class).copied().unwrap_or(1.0);
        }
        dc.schedulable = self.schedulable;
        if let Some(labels) = &self.labels {
            dc.labels = labels.clone();
        }
        dc
    }
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Unique name.
    pub name: String,
    /// Who is responsible for it.
    pub owner: String,
    /// Principals that may act for it.
    pub delegates: Vec<String>,
    /// Free-form labels.
    pub labels: Labels,
    /// Upper bound per class at any instant; absent classes are not limited.
    pub quota: Resources,
}

impl Tenant {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        validate_text("owner", &self.owner)?;
        if self.delegates.len() > MAX_DELEGATES {
            return Err(FieldError::new(
                "delegates",
                format!("at most {MAX_DELEGATES} are allowed"),
            ));
        }
        for (i, d) in self.delegates.iter().enumerate() {
            if d.is_empty() {
                return Err(FieldError::new(
                    format!("delegates[{i}]"),
                    "must not be empty",
                ));
            }
            validate_text(&format!("delegates[{i}]"), d)?;
        }
        validate_labels("labels", &self.labels)
    }
}

/// A named bundle of resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique name, e.g. `m.large`.
    pub name: String,
    /// What one unit of this profile holds.
    pub resources: Resources,
    /// What it is for.
    pub description: String,
}

impl Profile {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        validate_text("description", &self.description)?;
        if self.resources.is_zero() {
            return Err(FieldError::new(
                "resources",
                "must ask for at least one resource, e.g. compute.vcpu=4",
            ));
        }
        Ok(())
    }
}

/// How the scheduler ranks the datacenters a unit fits in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Most allocated first.
    #[default]
    Binpack,
    /// Least allocated first.
    Spread,
    /// Each unit to the next datacenter in id order, after the one the
    /// previous round-robin claim ended on.
    #[serde(rename = "round-robin")]
    RoundRobin,
}

/// What a claim asks for, with the profile already resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSpec {
    /// Whose claim it is.
    pub tenant: String,
    /// Makes creation idempotent per tenant; may be empty.
    pub request_id: String,
    /// How many units.
    pub count: u32,
    /// The profile the unit came from, if any.
    pub profile: Option<String>,
    /// What one unit holds.
    pub unit: Resources,
    /// Only datacenters whose labels match.
    pub selector: Selector,
    /// Only these datacenters, when not empty.
    pub datacenters: Vec<String>,
    /// Every unit in a different datacenter.
    pub distinct_datacenters: bool,
    /// At most this many units per datacenter; 0 means no limit.
    pub max_per_datacenter: u32,
    /// How to rank datacenters.
    pub strategy: Strategy,
    /// When it should hold; by default from now until released.
    #[serde(default, skip_serializing_if = "Timing::is_default")]
    pub timing: Timing,
}

impl ClaimSpec {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("tenant", &self.tenant)?;
        validate_request_id("request_id", &self.request_id)?;
        if self.count == 0 {
            return Err(FieldError::new("count", "must be at least 1"));
        }
        if self.count > MAX_CLAIM_COUNT {
            return Err(FieldError::new(
                "count",
                format!(
                    "is {}, at most {MAX_CLAIM_COUNT} units are allowed per claim",
                    self.count
                ),
            ));
        }
        if self.unit.is_zero() {
            return Err(FieldError::new(
                "resources",
                "a unit must ask for at least one resource",
            ));
        }
        for (class, amount) in self.unit.iter() {
            if amount.checked_mul(u64::from(self.count)).is_none() {
                return Err(FieldError::new(
                    "count",
                    format!(
                        "{} units of {} {class} add up to more than can be counted",
                        self.count,
                        class.format(amount)
                    ),
                ));
            }
        }
        if self.datacenters.len() > 1024 {
            return Err(FieldError::new("datacenters", "at most 1024 may be listed"));
        }
        for (i, dc) in self.datacenters.iter().enumerate() {
            validate_name(&format!("datacenters[{i}]"), dc)?;
        }
        self.timing.validate()
    }

    /// What all units hold together.
    pub fn total(&self) -> Resources {
        self.unit.times(u64::from(self.count))
    }
}

/// Where a claim is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimState {
    /// Accepted and placed; its window has not started (shown only: the
    /// books keep such a claim as placed, and time tells them apart).
    Pending,
    /// Placed; not every agent has confirmed yet.
    Placed,
    /// Every agent confirmed.
    Active,
    /// Placed, and an agent could not apply its part (each placement says
    /// why in `apply_error`). It keeps its capacity while the agent retries
    /// (on every reconnect) and is active again once every part applied;
    /// release it to give the capacity up.
    Failed,
    /// Given back.
    Released,
    /// Its window ended.
    Expired,
}

impl ClaimState {
    /// Whether the claim holds capacity (at some instant of its window).
    pub fn holds_capacity(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Placed | Self::Active | Self::Failed
        )
    }

    /// Whether it has ended: released or expired.
    pub fn ended(self) -> bool {
        matches!(self, Self::Released | Self::Expired)
    }

    /// Lower-case name, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placed => "placed",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }
}

/// Some of a claim's units in one datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Where.
    pub datacenter: String,
    /// How many units.
    pub units: u32,
    /// What they hold together.
    pub resources: Resources,
    /// Whether the datacenter's agent confirmed it.
    pub applied: bool,
    /// Why the agent could not apply it, when it could not; empty otherwise.
    #[serde(default)]
    pub apply_error: String,
}

/// A request that holds capacity for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Unique id.
    pub id: String,
    /// What was asked.
    pub spec: ClaimSpec,
    /// Where it is in its life.
    pub state: ClaimState,
    /// Where its units landed.
    pub placements: Vec<Placement>,
    /// When it was made, Unix ms.
    pub created_ms: u64,
    /// When it last changed, Unix ms.
    pub updated_ms: u64,
    /// When it holds capacity, as resolved when it was placed (claims from
    /// before windows: from the start of time until released).
    #[serde(default = "Window::always")]
    pub window: Window,
}

impl Claim {
    /// Why it failed: one line per datacenter whose agent could not apply
    /// its part, `dc: what the agent said`. Empty unless failed.
    pub fn failure_reasons(&self) -> Vec<String> {
        if self.state != ClaimState::Failed {
            return Vec::new();
        }
        self.placements
            .iter()
            .filter(|p| !p.applied && !p.apply_error.is_empty())
            .map(|p| format!("{}: {}", p.datacenter, p.apply_error))
            .collect()
    }

    /// Whether it has a placement in `dc`.
    pub fn placed_in(&self, dc: &str) -> Option<&Placement> {
        self.placements.iter().find(|p| p.datacenter == dc)
    }

    /// Whether its window started when it was made: it holds from then on,
    /// and no decision is made for an earlier instant.
    pub fn starts_when_made(&self) -> bool {
        self.window.start <= self.created_ms
    }

    /// Its state at `now`: a live claim whose window has not started is
    /// pending, one whose window is over is expired (before any manager
    /// wrote so).
    pub fn state_at(&self, now: u64) -> ClaimState {
        match self.state {
            s if !s.holds_capacity() => s,
            _ if self.window.ended_by(now) => ClaimState::Expired,
            _ if now < self.window.start => ClaimState::Pending,
            s => s,
        }
    }

    /// Whether its agents should hold it at `now`: live, not ended, and
    /// started. One that started when it was made counts as started
    /// whatever `now` says: another manager whose clock is a little behind
    /// the one that placed it must still hand it to its agents, and no
    /// timekeeper would (only later starts are awaited).
    pub fn in_force_at(&self, now: u64) -> bool {
        self.state.holds_capacity()
            && !self.window.ended_by(now)
            && (self.starts_when_made() || self.window.start <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClaimSpec {
        ClaimSpec {
            tenant: "acme".into(),
            request_id: String::new(),
            count: 2,
            profile: None,
            unit: Resources::parse_list("resources", "compute.vcpu=4").unwrap(),
            selector: Selector::default(),
            datacenters: vec![],
            distinct_datacenters: false,
            max_per_datacenter: 0,
            strategy: Strategy::Binpack,
            timing: Default::default(),
        }
    }

    #[test]
    fn claim_spec_validation_names_the_field() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.count = 0;
        assert_eq!(s.validate().unwrap_err().field, "count");
        let mut s = spec();
        s.unit = Resources::new();
        assert_eq!(s.validate().unwrap_err().field, "resources");
        let mut s = spec();
        s.tenant = String::new();
        assert_eq!(s.validate().unwrap_err().field, "tenant");
        let mut s = spec();
        s.datacenters = vec!["Bad DC".into()];
        assert_eq!(s.validate().unwrap_err().field, "datacenters[0]");
    }

    #[test]
    fn capacity_applies_reservation_and_over_commit() {
        let inv = Inventory {
            total: 100,
            free: 100,
            reserved: 20,
            allocation_ratio: 1.5,
            held: None,
        };
        assert_eq!(inv.capacity(), 120);
        assert_eq!(
            Inventory::reported(10, 50).free,
            10,
            "free never exceeds total"
        );
    }
}
