//! What the scheduler's tests build their worlds from: vCPU amounts, a
//! one-class claim spec, a tenant with a vCPU quota, a datacenter.

use crate::model::{
    ClaimSpec, Datacenter, Inventory, Labels, ResourceClass, Resources, Selector, Strategy, Tenant,
};

/// `compute.vcpu`.
pub fn vcpu() -> ResourceClass {
    ResourceClass::parse("compute.vcpu").unwrap()
}

/// `n` vCPU.
pub fn amount(n: u64) -> Resources {
    let mut r = Resources::new();
    r.set(vcpu(), n);
    r
}

/// `count` units of `unit` vCPU for tenant `t`, binpacked, from now on.
pub fn spec(count: u32, unit: u64) -> ClaimSpec {
    ClaimSpec {
        tenant: "t".into(),
        request_id: String::new(),
        count,
        profile: None,
        unit: amount(unit),
        selector: Selector::default(),
        datacenters: vec![],
        distinct_datacenters: false,
        max_per_datacenter: 0,
        strategy: Strategy::Binpack,
        timing: Default::default(),
    }
}

/// Tenant `name` with a quota of `quota` vCPU.
pub fn tenant(name: &str, quota: u64) -> Tenant {
    Tenant {
        name: name.into(),
        owner: String::new(),
        delegates: vec![],
        labels: Labels::new(),
        quota: amount(quota),
    }
}

/// Datacenter `id` with `total` vCPU, all of it free.
pub fn datacenter(id: &str, total: u64) -> Datacenter {
    let mut d = Datacenter::new(id, Labels::new());
    d.inventory
        .insert(vcpu(), Inventory::reported(total, total));
    d
}
