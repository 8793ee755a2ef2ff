//! `--output json`: wire messages as JSON documents with the proto's
//! snake_case field names and enums as lower-case words.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use theia::api::v1;

use crate::wire::{liveness_name, state_name, strategy_name};

/// A string map as a JSON object (keys sorted).
pub fn map(m: &HashMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// One class of capacity.
pub fn capacity(c: &v1::ClassCapacity) -> Value {
    json!({
        "class": c.class,
        "total": c.total,
        "reported_free": c.reported_free,
        "reserved": c.reserved,
        "allocation_ratio": c.allocation_ratio,
        "allocated": c.allocated,
        "available": c.available,
    })
}

/// A datacenter.
pub fn datacenter(dc: &v1::Datacenter) -> Value {
    json!({
        "id": dc.id,
        "labels": map(&dc.labels),
        "schedulable": dc.schedulable,
        "liveness": liveness_name(dc.liveness),
        "last_seen_unix_ms": dc.last_seen_unix_ms,
        "agent_version": dc.agent_version,
        "driver": dc.driver,
        "capacity": dc.capacity.iter().map(capacity).collect::<Vec<_>>(),
        "claims": dc.claims,
        "over_committed": dc.over_committed,
        "ignored_reports": dc.ignored_reports,
    })
}

/// The logical infrastructure.
pub fn logical(l: &v1::LogicalInfrastructure) -> Value {
    json!({
        "selector": l.selector,
        "datacenters": l.datacenters,
        "alive": l.alive,
        "suspect": l.suspect,
        "down": l.down,
        "capacity": l.capacity.iter().map(capacity).collect::<Vec<_>>(),
    })
}

/// A tenant.
pub fn tenant(t: &v1::Tenant) -> Value {
    json!({
        "name": t.name,
        "owner": t.owner,
        "delegates": t.delegates,
        "labels": map(&t.labels),
        "quota": map(&t.quota),
        "usage": map(&t.usage),
        "claims": t.claims,
    })
}

/// A resource profile.
pub fn profile(p: &v1::Profile) -> Value {
    json!({
        "name": p.name,
        "resources": map(&p.resources),
        "description": p.description,
    })
}

/// What a claim asks for.
pub fn spec(s: &v1::ClaimSpec) -> Value {
    json!({
        "tenant": s.tenant,
        "request_id": s.request_id,
        "count": s.count,
        "profile": s.profile,
        "resources": map(&s.resources),
        "selector": s.selector,
        "datacenters": s.datacenters,
        "distinct_datacenters": s.distinct_datacenters,
        "max_per_datacenter": s.max_per_datacenter,
        "strategy": strategy_name(s.strategy),
    })
}

/// Where some of a claim's units landed.
pub fn placement(p: &v1::Placement) -> Value {
    json!({
        "datacenter": p.datacenter,
        "units": p.units,
        "resources": map(&p.resources),
        "applied": p.applied,
        "apply_error": p.apply_error,
    })
}

/// A claim.
pub fn claim(c: &v1::Claim) -> Value {
    json!({
        "id": c.id,
        "spec": c.spec.as_ref().map_or(Value::Null, spec),
        "state": state_name(c.state),
        "placements": c.placements.iter().map(placement).collect::<Vec<_>>(),
        "at_risk": c.at_risk,
        "at_risk_datacenters": c.at_risk_datacenters,
        "unit_resources": map(&c.unit_resources),
        "created_unix_ms": c.created_unix_ms,
        "updated_unix_ms": c.updated_unix_ms,
    })
}

/// The answer to `claim explain`.
pub fn explain(e: &v1::ExplainClaimResponse) -> Value {
    json!({
        "fits": e.fits,
        "summary": e.summary,
        "placements": e.placements.iter().map(placement).collect::<Vec<_>>(),
        "verdicts": e.verdicts.iter().map(|v| json!({
            "datacenter": v.datacenter,
            "units_that_fit": v.units_that_fit,
            "reasons": v.reasons,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[(&str, &str)]) -> HashMap<String, String> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_claim_renders_with_enum_names_and_readable_fields() {
        let c = v1::Claim {
            id: "c-1".into(),
            spec: Some(v1::ClaimSpec {
                tenant: "acme".into(),
                count: 2,
                profile: "small".into(),
                strategy: v1::Strategy::Spread as i32,
                ..Default::default()
            }),
            state: v1::ClaimState::Active as i32,
            placements: vec![v1::Placement {
                datacenter: "local".into(),
                units: 2,
                resources: strings(&[("compute.vcpu", "2"), ("compute.memory", "2Gi")]),
                applied: true,
                apply_error: String::new(),
            }],
            unit_resources: strings(&[("compute.vcpu", "1")]),
            created_unix_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let v = claim(&c);
        assert_eq!(v["id"], "c-1");
        assert_eq!(v["state"], "active");
        assert_eq!(v["spec"]["strategy"], "spread");
        assert_eq!(v["spec"]["tenant"], "acme");
        assert_eq!(v["spec"]["count"], 2);
        assert_eq!(v["placements"][0]["datacenter"], "local");
        assert_eq!(v["placements"][0]["resources"]["compute.memory"], "2Gi");
        assert_eq!(v["placements"][0]["applied"], true);
        assert_eq!(v["unit_resources"]["compute.vcpu"], "1");
        assert_eq!(v["at_risk"], false);
        assert_eq!(v["created_unix_ms"], 1_700_000_000_000_i64);
    }

    #[test]
    fn a_datacenter_renders_liveness_as_a_word() {
        let dc = v1::Datacenter {
            id: "dc1".into(),
            liveness: v1::Liveness::Down as i32,
            labels: strings(&[("region", "eu")]),
            capacity: vec![v1::ClassCapacity {
                class: "compute.vcpu".into(),
                total: "64".into(),
                available: "60".into(),
                allocation_ratio: 1.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = datacenter(&dc);
        assert_eq!(v["liveness"], "down");
        assert_eq!(v["labels"]["region"], "eu");
        assert_eq!(v["capacity"][0]["available"], "60");
    }

    #[test]
    fn explain_keeps_reasons_per_datacenter() {
        let e = v1::ExplainClaimResponse {
            fits: false,
            summary: "does not fit".into(),
            placements: vec![],
            verdicts: vec![v1::DatacenterVerdict {
                datacenter: "dc1".into(),
                units_that_fit: 0,
                reasons: vec!["compute.vcpu: needs 4, 2 available".into()],
            }],
        };
        let v = explain(&e);
        assert_eq!(v["fits"], false);
        assert_eq!(v["verdicts"][0]["units_that_fit"], 0);
        assert_eq!(
            v["verdicts"][0]["reasons"][0],
            "compute.vcpu: needs 4, 2 available"
        );
    }
}
