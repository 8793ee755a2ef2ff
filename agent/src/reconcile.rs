//! Level-triggered reconciliation: from what the driver holds and the full
//! set the manager wants, what to release and what to apply.

use std::collections::{BTreeSet, HashSet};

use theia::api::v1;

/// The steps that take a driver from what it holds to the desired set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Held claims the manager no longer wants, in claim order. Released
    /// first, so that their capacity is free for what is applied next.
    pub release: Vec<String>,
    /// Every desired assignment once, in the manager's order: the new ones
    /// and the held ones alike, because applying a held claim is a no-op
    /// success and the manager needs an APPLY result for each to mark it
    /// applied (and a held claim whose share changed is updated).
    pub apply: Vec<v1::Assignment>,
    /// How many of `apply` are not held yet.
    pub new: usize,
}

/// Plans the convergence of `held` to `desired`. When the manager names a
/// claim twice, the first wins.
pub fn plan(held: &BTreeSet<String>, desired: Vec<v1::Assignment>) -> Plan {
    let mut seen = HashSet::new();
    let apply: Vec<v1::Assignment> = desired
        .into_iter()
        .filter(|a| seen.insert(a.claim_id.clone()))
        .collect();
    let release = held
        .iter()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    let new = apply.iter().filter(|a| !held.contains(&a.claim_id)).count();
    Plan {
        release,
        apply,
        new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn desired(ids: &[(&str, u64)]) -> Vec<v1::Assignment> {
        ids.iter()
            .map(|(id, vcpu)| v1::Assignment {
                claim_id: id.to_string(),
                tenant: "acme".into(),
                resources: [("compute.vcpu".to_owned(), *vcpu)].into(),
            })
            .collect()
    }

    fn ids(a: &[v1::Assignment]) -> Vec<&str> {
        a.iter().map(|a| a.claim_id.as_str()).collect()
    }

    #[test]
    fn releases_what_is_not_wanted_and_applies_everything_wanted() {
        let p = plan(&held(&["a", "b", "c"]), desired(&[("d", 1), ("b", 1)]));
        assert_eq!(p.release, ["a", "c"]);
        assert_eq!(ids(&p.apply), ["d", "b"]);
        assert_eq!(p.new, 1);
    }

    #[test]
    fn an_empty_desired_set_releases_everything() {
        let p = plan(&held(&["x", "y"]), Vec::new());
        assert_eq!(p.release, ["x", "y"]);
        assert!(p.apply.is_empty());
        assert_eq!(p.new, 0);
    }

    #[test]
    fn nothing_held_applies_all() {
        let p = plan(&held(&[]), desired(&[("a", 1), ("b", 2)]));
        assert!(p.release.is_empty());
        assert_eq!(ids(&p.apply), ["a", "b"]);
        assert_eq!(p.new, 2);
    }

    #[test]
    fn in_step_means_nothing_released_but_everything_confirmed() {
        let p = plan(&held(&["a", "b"]), desired(&[("b", 1), ("a", 1)]));
        assert!(p.release.is_empty());
        assert_eq!(ids(&p.apply), ["b", "a"]);
        assert_eq!(p.new, 0);
    }

    #[test]
    fn a_claim_named_twice_is_applied_once_the_first_way() {
        let p = plan(&held(&[]), desired(&[("a", 1), ("a", 5), ("b", 1)]));
        assert_eq!(ids(&p.apply), ["a", "b"]);
        assert_eq!(p.apply[0].resources["compute.vcpu"], 1);
        assert_eq!(p.new, 2);
    }
}
