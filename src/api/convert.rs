//! Conversions between wire messages and domain types.

use std::collections::HashMap;

use super::v1;
use crate::model::{
    Claim, ClaimSpec, ClaimState, FieldError, Labels, Placement, Profile, Resources, Selector,
    Strategy, Tenant, Timing,
};

/// An optional instant or length in ms from the wire: 0 means unset, and a
/// negative one is refused.
pub(super) fn optional_ms(field: &str, value: i64) -> Result<Option<u64>, FieldError> {
    match u64::try_from(value) {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(ms)),
        Err(_) => Err(FieldError::new(
            field,
            format!("{value} is negative; give Unix milliseconds, or 0 for none"),
        )),
    }
}

/// Unix ms (or a length in ms) for the wire, where 0 means none.
pub fn ms_to_wire(ms: Option<u64>) -> i64 {
    ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

fn resources(field: &str, map: &HashMap<String, String>) -> Result<Resources, FieldError> {
    Resources::parse_map(field, map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn labels(map: HashMap<String, String>) -> Labels {
    map.into_iter().collect()
}

/// A tenant from the wire; usage and claim counts (output only) are ignored.
pub fn tenant_from_wire(t: v1::Tenant) -> Result<Tenant, FieldError> {
    let tenant = Tenant {
        quota: resources("quota", &t.quota)?,
        name: t.name,
        owner: t.owner,
        delegates: t.delegates,
        labels: labels(t.labels),
    };
    tenant.validate()?;
    Ok(tenant)
}

/// A tenant for the wire, with what its live claims hold.
pub fn tenant_to_wire(t: &Tenant, usage: &Resources, claims: u32) -> v1::Tenant {
    v1::Tenant {
        name: t.name.clone(),
        owner: t.owner.clone(),
        delegates: t.delegates.clone(),
        labels: t.labels.clone().into_iter().collect(),
        quota: t.quota.to_strings().into_iter().collect(),
        usage: usage.to_strings().into_iter().collect(),
        claims,
    }
}

/// A profile from the wire.
pub fn profile_from_wire(p: v1::Profile) -> Result<Profile, FieldError> {
    let profile = Profile {
        resources: resources("resources", &p.resources)?,
        name: p.name,
        description: p.description,
    };
    profile.validate()?;
    Ok(profile)
}

/// A profile for the wire.
pub fn profile_to_wire(p: &Profile) -> v1::Profile {
    v1::Profile {
        name: p.name.clone(),
        resources: p.resources.to_strings().into_iter().collect(),
        description: p.description.clone(),
    }
}

/// The strategy named by a wire enum value.
pub fn strategy_from_wire(value: i32) -> Result<Strategy, FieldError> {
    match v1::Strategy::try_from(value) {
        Ok(v1::Strategy::Unspecified | v1::Strategy::Binpack) => Ok(Strategy::Binpack),
        Ok(v1::Strategy::Spread) => Ok(Strategy::Spread),
        Ok(v1::Strategy::RoundRobin) => Ok(Strategy::RoundRobin),
        Err(_) => Err(FieldError::new(
            "strategy",
            format!("{value} is not a strategy; use STRATEGY_BINPACK or STRATEGY_SPREAD"),
        )),
    }
}

fn strategy_to_wire(s: Strategy) -> i32 {
    match s {
        Strategy::Binpack => v1::Strategy::Binpack as i32,
        Strategy::Spread => v1::Strategy::Spread as i32,
        Strategy::RoundRobin => v1::Strategy::RoundRobin as i32,
    }
}

/// A claim spec from the wire. With a profile, the unit is left empty for the
/// caller to fill from its books, then [`ClaimSpec::validate`] must run.
pub fn claim_spec_from_wire(s: v1::ClaimSpec) -> Result<ClaimSpec, FieldError> {
    let profile = Some(s.profile).filter(|p| !p.is_empty());
    if let Some(p) = &profile {
        crate::model::validate_name("profile", p)?;
    }
    let unit = resources("resources", &s.resources)?;
    match (&profile, unit.is_zero()) {
        (Some(_), false) => {
            return Err(FieldError::new(
                "resources",
                "give either a profile or resources, not both",
            ));
        }
        (None, true) => {
            return Err(FieldError::new(
                "resources",
                "give a profile or resources for each unit, e.g. compute.vcpu=4",
            ));
        }
        _ => {}
    }
    Ok(ClaimSpec {
        tenant: s.tenant,
        request_id: s.request_id,
        count: s.count,
        profile,
        unit,
        selector: Selector::parse("selector", &s.selector)?,
        datacenters: s.datacenters,
        distinct_datacenters: s.distinct_datacenters,
        max_per_datacenter: s.max_per_datacenter,
        strategy: strategy_from_wire(s.strategy)?,
        timing: Timing {
            start_ms: optional_ms("start_unix_ms", s.start_unix_ms)?,
            end_ms: optional_ms("end_unix_ms", s.end_unix_ms)?,
            duration_ms: optional_ms("duration_ms", s.duration_ms)?,
            earliest: s.earliest_start,
        },
    })
}

/// A claim spec for the wire.
pub fn claim_spec_to_wire(s: &ClaimSpec) -> v1::ClaimSpec {
    v1::ClaimSpec {
        tenant: s.tenant.clone(),
        request_id: s.request_id.clone(),
        count: s.count,
        profile: s.profile.clone().unwrap_or_default(),
        resources: if s.profile.is_some() {
            HashMap::new()
        } else {
            s.unit.to_strings().into_iter().collect()
        },
        selector: s.selector.to_string(),
        datacenters: s.datacenters.clone(),
        distinct_datacenters: s.distinct_datacenters,
        max_per_datacenter: s.max_per_datacenter,
        strategy: strategy_to_wire(s.strategy),
        start_unix_ms: ms_to_wire(s.timing.start_ms),
        end_unix_ms: ms_to_wire(s.timing.end_ms),
        duration_ms: ms_to_wire(s.timing.duration_ms),
        earliest_start: s.timing.earliest,
    }
}

/// A placement for the wire.
pub fn placement_to_wire(p: &Placement) -> v1::Placement {
    v1::Placement {
        datacenter: p.datacenter.clone(),
        units: p.units,
        resources: p.resources.to_strings().into_iter().collect(),
        applied: p.applied,
        apply_error: p.apply_error.clone(),
    }
}

fn state_to_wire(s: ClaimState) -> i32 {
    match s {
        ClaimState::Pending => v1::ClaimState::Pending as i32,
        ClaimState::Placed => v1::ClaimState::Placed as i32,
        ClaimState::Active => v1::ClaimState::Active as i32,
        ClaimState::Failed => v1::ClaimState::Failed as i32,
        ClaimState::Released => v1::ClaimState::Released as i32,
        ClaimState::Expired => v1::ClaimState::Expired as i32,
    }
}

/// A claim for the wire in its state at `now`; `at_risk` lists its
/// datacenters that are down or could not apply their part.
pub fn claim_to_wire(c: &Claim, at_risk: Vec<String>, now: u64) -> v1::Claim {
    let state = c.state_at(now);
    v1::Claim {
        id: c.id.clone(),
        spec: Some(claim_spec_to_wire(&c.spec)),
        state: state_to_wire(state),
        failure_reasons: if state == ClaimState::Failed {
            c.failure_reasons()
        } else {
            Vec::new()
        },
        start_unix_ms: ms_to_wire(Some(c.window.start)),
        end_unix_ms: ms_to_wire(c.window.end),
        placements: c.placements.iter().map(placement_to_wire).collect(),
        at_risk: !at_risk.is_empty(),
        at_risk_datacenters: at_risk,
        unit_resources: c.spec.unit.to_strings().into_iter().collect(),
        created_unix_ms: i64::try_from(c.created_ms).unwrap_or(i64::MAX),
        updated_unix_ms: i64::try_from(c.updated_ms).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_spec() -> v1::ClaimSpec {
        v1::ClaimSpec {
            tenant: "acme".into(),
            count: 2,
            resources: [("compute.vcpu".to_owned(), "4".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn claim_spec_round_trips() {
        let spec = claim_spec_from_wire(wire_spec()).unwrap();
        assert_eq!(spec.total().to_string(), "compute.vcpu=8");
        let back = claim_spec_to_wire(&spec);
        assert_eq!(
            back.resources.get("compute.vcpu").map(String::as_str),
            Some("4")
        );
        assert_eq!(back.strategy, v1::Strategy::Binpack as i32);
    }

    #[test]
    fn claim_spec_errors_name_the_field() {
        let mut s = wire_spec();
        s.profile = "small".into();
        assert_eq!(claim_spec_from_wire(s).unwrap_err().field, "resources");
        let mut s = wire_spec();
        s.resources
            .insert("compute.memory".into(), "12 parsecs".into());
        assert_eq!(
            claim_spec_from_wire(s).unwrap_err().field,
            "resources[compute.memory]"
        );
        let mut s = wire_spec();
        s.strategy = 42;
        assert_eq!(claim_spec_from_wire(s).unwrap_err().field, "strategy");
        let mut s = wire_spec();
        s.selector = "=x".into();
        assert_eq!(claim_spec_from_wire(s).unwrap_err().field, "selector");
        for field in ["start_unix_ms", "end_unix_ms", "duration_ms"] {
            let mut s = wire_spec();
            match field {
                "start_unix_ms" => s.start_unix_ms = -1,
                "end_unix_ms" => s.end_unix_ms = -1,
                _ => s.duration_ms = -1,
            }
            assert_eq!(claim_spec_from_wire(s).unwrap_err().field, field);
        }
    }

    #[test]
    fn timing_round_trips_and_zero_means_unset() {
        let mut s = wire_spec();
        s.start_unix_ms = 1_000;
        s.duration_ms = 500;
        let spec = claim_spec_from_wire(s).unwrap();
        assert_eq!(
            spec.timing,
            Timing {
                start_ms: Some(1_000),
                end_ms: None,
                duration_ms: Some(500),
                earliest: false,
            }
        );
        let back = claim_spec_to_wire(&spec);
        assert_eq!(
            (back.start_unix_ms, back.end_unix_ms, back.duration_ms),
            (1_000, 0, 500)
        );
        assert!(
            claim_spec_from_wire(wire_spec())
                .unwrap()
                .timing
                .is_default()
        );
    }

    #[test]
    fn tenant_quota_is_validated() {
        let t = v1::Tenant {
            name: "acme".into(),
            quota: [("compute.vcpus".to_owned(), "4".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            tenant_from_wire(t).unwrap_err().field,
            "quota[compute.vcpus]"
        );
    }
}
