//! The `static` driver: the datacenter's totals come from configuration and
//! what is free is what the assignments it holds leave over. It suits
//! management planes theia cannot talk to yet, and tests.

use std::collections::BTreeSet;
use std::path::Path;

use theia::model::Resources;

use super::{
    Assignment, ClassInventory, Driver, DriverError, Outcome, Record, StateFile, class_list,
};

/// Capacity from configuration; assignments are kept in the state file.
#[derive(Debug)]
pub struct StaticDriver {
    totals: Resources,
    state: StateFile,
}

impl StaticDriver {
    /// A driver with `totals` per class and its state in `state_dir`.
    pub fn open(totals: Resources, state_dir: &Path) -> Result<Self, DriverError> {
        Ok(Self {
            totals,
            state: StateFile::open(state_dir)?,
        })
    }

    /// Checks that `assignment` fits beside everything else held.
    fn check_fits(&self, assignment: &Assignment) -> Result<(), DriverError> {
        let used = self.state.used(Some(&assignment.claim_id));
        for (class, requested) in assignment.resources.iter() {
            let Some(total) = self.totals.limit(class) else {
                if requested == 0 {
                    // Nothing of a class we lack is asked for: that fits.
                    continue;
                }
                return Err(DriverError::UnknownClass {
                    class: class.clone(),
                    known: class_list(self.totals.iter().map(|(c, _)| c)),
                });
            };
            let free = total.saturating_sub(used.get(class));
            if requested > free {
                return Err(DriverError::OverCapacity {
                    class: class.clone(),
                    requested: class.format(requested),
                    free: class.format(free),
                    total: class.format(total),
                });
            }
        }
        Ok(())
    }
}

impl Driver for StaticDriver {
    fn name(&self) -> &'static str {
        "static"
    }

    fn inventory(&mut self) -> Vec<ClassInventory> {
        let used = self.state.used(None);
        self.totals
            .iter()
            .map(|(class, total)| ClassInventory {
                class: class.clone(),
                total,
                // Saturating: a smaller configured total after a restart must
                // read as "nothing free", not wrap around.
                free: total.saturating_sub(used.get(class)),
                held: used.get(class),
            })
            .collect()
    }

    fn apply(&mut self, assignment: &Assignment) -> Result<Outcome, DriverError> {
        // A claim held exactly so is confirmed even if the totals shrank
        // since: it was given, and taking it back is the manager's call.
        if self.state.get(&assignment.claim_id) == Some(&Record::from(assignment)) {
            return Ok(Outcome::Unchanged);
        }
        self.check_fits(assignment)?;
        self.state.insert(assignment)
    }

    fn release(&mut self, claim_id: &str) -> Result<Outcome, DriverError> {
        self.state.remove(claim_id)
    }

    fn held(&self) -> BTreeSet<String> {
        self.state.held()
    }
}

#[cfg(test)]
mod tests {
    use theia::model::ResourceClass;

    use super::*;

    const TOTALS: &str = "compute.vcpu=16,compute.memory=64Gi";

    fn driver(dir: &Path) -> StaticDriver {
        StaticDriver::open(Resources::parse_list("inventory", TOTALS).unwrap(), dir).unwrap()
    }

    fn assignment(claim: &str, resources: &str) -> Assignment {
        Assignment {
            claim_id: claim.into(),
            tenant: "acme".into(),
            resources: Resources::parse_list("r", resources).unwrap(),
        }
    }

    fn free(d: &mut StaticDriver, class: &str) -> u64 {
        let class = ResourceClass::parse(class).unwrap();
        let inv = d.inventory();
        let item = inv
            .iter()
            .find(|i| i.class == class)
            .expect("class reported");
        item.free
    }

    #[test]
    fn free_is_total_minus_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path());
        assert_eq!(d.name(), "static");
        assert_eq!(free(&mut d, "compute.vcpu"), 16);
        d.apply(&assignment("c1", "compute.vcpu=4,compute.memory=8Gi"))
            .unwrap();
        d.apply(&assignment("c2", "compute.vcpu=8")).unwrap();
        assert_eq!(free(&mut d, "compute.vcpu"), 4);
        assert_eq!(free(&mut d, "compute.memory"), 56 << 30);
        let inv = d.inventory();
        assert_eq!(inv.len(), 2, "only configured classes are reported");
        assert!(inv.iter().all(|i| i.total == 16 || i.total == 64 << 30));
        assert!(
            inv.iter().all(|i| i.held == i.total - i.free),
            "every used unit is theia's, and the report says so: {inv:?}"
        );
        assert_eq!(d.release("c1").unwrap(), Outcome::Changed);
        assert_eq!(free(&mut d, "compute.vcpu"), 8);
        assert_eq!(free(&mut d, "compute.memory"), 64 << 30);
        assert_eq!(d.held(), BTreeSet::from(["c2".to_owned()]));
    }

    #[test]
    fn refuses_more_than_is_free_naming_the_class_and_amounts() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path());
        d.apply(&assignment("c1", "compute.memory=60Gi")).unwrap();
        let e = d
            .apply(&assignment("c2", "compute.vcpu=1,compute.memory=8Gi"))
            .unwrap_err();
        assert!(matches!(e, DriverError::OverCapacity { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "compute.memory: needs 8Gi but only 4Gi of 64Gi are free"
        );
        // Nothing of the refused claim is held.
        assert_eq!(d.held(), BTreeSet::from(["c1".to_owned()]));
        assert_eq!(free(&mut d, "compute.vcpu"), 16);
        // Exactly what is free fits.
        d.apply(&assignment("c3", "compute.memory=4Gi")).unwrap();
        assert_eq!(free(&mut d, "compute.memory"), 0);
    }

    #[test]
    fn refuses_a_class_it_does_not_have() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path());
        let e = d
            .apply(&assignment("c1", "compute.vcpu=1,compute.gpu=2"))
            .unwrap_err();
        assert!(matches!(e, DriverError::UnknownClass { .. }), "{e}");
        let text = e.to_string();
        assert!(text.starts_with("compute.gpu is not in"), "{text}");
        assert!(text.contains("compute.memory, compute.vcpu"), "{text}");
        assert!(d.held().is_empty());
        // Asking for none of it is not asking for it.
        d.apply(&assignment("c2", "compute.vcpu=1,compute.gpu=0"))
            .unwrap();
    }

    #[test]
    fn re_applying_and_re_releasing_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path());
        let a = assignment("c1", "compute.vcpu=12");
        assert_eq!(d.apply(&a).unwrap(), Outcome::Changed);
        // Would not fit a second time: the claim is not counted twice.
        assert_eq!(d.apply(&a).unwrap(), Outcome::Unchanged);
        assert_eq!(free(&mut d, "compute.vcpu"), 4);
        // A changed share is measured without its old self.
        assert_eq!(
            d.apply(&assignment("c1", "compute.vcpu=16")).unwrap(),
            Outcome::Changed
        );
        assert_eq!(free(&mut d, "compute.vcpu"), 0);
        assert_eq!(d.release("c1").unwrap(), Outcome::Changed);
        assert_eq!(d.release("c1").unwrap(), Outcome::Unchanged);
        assert_eq!(d.release("unknown").unwrap(), Outcome::Unchanged);
        assert_eq!(free(&mut d, "compute.vcpu"), 16);
    }

    #[test]
    fn what_is_held_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut d = driver(dir.path());
            d.apply(&assignment("c1", "compute.vcpu=6")).unwrap();
            d.apply(&assignment("c2", "compute.vcpu=2")).unwrap();
            d.release("c2").unwrap();
        }
        let mut d = driver(dir.path());
        assert_eq!(d.held(), BTreeSet::from(["c1".to_owned()]));
        assert_eq!(free(&mut d, "compute.vcpu"), 10);
        assert_eq!(
            d.apply(&assignment("c1", "compute.vcpu=6")).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(d.release("c2").unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn a_held_claim_is_confirmed_even_when_totals_shrank() {
        let dir = tempfile::tempdir().unwrap();
        driver(dir.path())
            .apply(&assignment("c1", "compute.vcpu=12"))
            .unwrap();
        let small = Resources::parse_list("inventory", "compute.vcpu=8").unwrap();
        let mut d = StaticDriver::open(small, dir.path()).unwrap();
        assert_eq!(free(&mut d, "compute.vcpu"), 0);
        assert_eq!(
            d.apply(&assignment("c1", "compute.vcpu=12")).unwrap(),
            Outcome::Unchanged
        );
        assert!(d.apply(&assignment("c2", "compute.vcpu=1")).is_err());
    }
}
