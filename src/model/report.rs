//! What an agent reports of its datacenter's inventory, checked before it
//! is believed: free never above total, one entry per class.

use std::collections::BTreeMap;

use super::{FieldError, Inventory, ResourceClass};

/// One class of a report, as it came over the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedClass {
    /// The class name.
    pub class: String,
    /// Everything the management plane has.
    pub total: u64,
    /// What it reports free.
    pub free: u64,
    /// theia's share of `total − free` when `free` was measured, if said.
    pub held: Option<u64>,
}

/// A checked report: the inventory per class, and the names of classes
/// this version does not know (left out, so that a newer agent still
/// reports what both understand).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckedReport {
    /// Per known class.
    pub inventory: BTreeMap<ResourceClass, Inventory>,
    /// Classes left out.
    pub unknown: Vec<String>,
}

/// Checks `items` (a report's inventory, in order) and returns what it says,
/// or the first thing wrong with it, named as `report.inventory[i]…`.
pub fn check_report(items: &[ReportedClass]) -> Result<CheckedReport, FieldError> {
    let mut out = CheckedReport::default();
    for (i, item) in items.iter().enumerate() {
        let field = format!("report.inventory[{i}]");
        let class = match ResourceClass::parse(&item.class) {
            Ok(c) => c,
            Err(_) => {
                out.unknown.push(item.class.chars().take(64).collect());
                continue;
            }
        };
        if item.free > item.total {
            return Err(FieldError::new(
                format!("{field}.free"),
                format!(
                    "{} free is more than the total {} of {class}",
                    item.free, item.total
                ),
            ));
        }
        let mut inv = Inventory::reported(item.total, item.free);
        inv.held = item.held;
        if out.inventory.insert(class.clone(), inv).is_some() {
            return Err(FieldError::new(
                format!("{field}.class"),
                format!("{class} is reported twice"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(class: &str, total: u64, free: u64) -> ReportedClass {
        ReportedClass {
            class: class.into(),
            total,
            free,
            held: Some(total - free.min(total)),
        }
    }

    #[test]
    fn a_sound_report_becomes_inventory() {
        let checked =
            check_report(&[item("compute.vcpu", 16, 4), item("compute.memory", 64, 64)]).unwrap();
        let vcpu = &checked.inventory[&ResourceClass::parse("compute.vcpu").unwrap()];
        assert_eq!((vcpu.total, vcpu.free, vcpu.held), (16, 4, Some(12)));
        assert_eq!(checked.inventory.len(), 2);
        assert!(checked.unknown.is_empty());
        let edge = check_report(&[item("compute.vcpu", 16, 16)]).unwrap();
        assert_eq!(edge.inventory.len(), 1, "free equal to total is fine");
    }

    #[test]
    fn free_above_total_is_refused_by_name() {
        let err =
            check_report(&[item("compute.vcpu", 16, 4), item("compute.memory", 8, 9)]).unwrap_err();
        assert_eq!(err.field, "report.inventory[1].free");
        assert_eq!(
            err.reason,
            "9 free is more than the total 8 of compute.memory"
        );
    }

    #[test]
    fn a_class_reported_twice_is_refused() {
        let err =
            check_report(&[item("compute.vcpu", 16, 4), item("compute.vcpu", 16, 8)]).unwrap_err();
        assert_eq!(err.field, "report.inventory[1].class");
        assert_eq!(err.reason, "compute.vcpu is reported twice");
    }

    #[test]
    fn unknown_classes_are_left_out_and_named() {
        let long = "x".repeat(500);
        let checked = check_report(&[
            item("compute.vcpu", 16, 4),
            item("no such class", 1, 1),
            item(&long, 1, 1),
        ])
        .unwrap();
        assert_eq!(checked.inventory.len(), 1);
        assert_eq!(checked.unknown[0], "no such class");
        assert_eq!(checked.unknown[1].len(), 64, "a long name is cut short");
    }
}
