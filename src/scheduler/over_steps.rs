//! Capacity over time, one step at a time: what a capacity timeline shows
//! for one class of one datacenter.

use super::{Candidate, available};
use crate::model::{ResourceClass, Window};

/// One class of one datacenter over one step, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCapacity {
    /// What theia may place at all.
    pub capacity: u64,
    /// Held by claims, at their peak within the step.
    pub allocated: u64,
    /// Taken by maintenance at its peak within the step; all of the
    /// capacity while the whole datacenter is in maintenance.
    pub maintenance: u64,
    /// Placeable at every instant of the step.
    pub free: u64,
}

impl StepCapacity {
    /// Adds `other` (another datacenter's), saturating.
    pub fn add(&mut self, other: StepCapacity) {
        self.capacity = self.capacity.saturating_add(other.capacity);
        self.allocated = self.allocated.saturating_add(other.allocated);
        self.maintenance = self.maintenance.saturating_add(other.maintenance);
        self.free = self.free.saturating_add(other.free);
    }
}

/// `class` of `c` over `step`; nothing free where `schedulable` is false.
pub fn step_capacity(
    c: &Candidate<'_>,
    class: &ResourceClass,
    step: Window,
    schedulable: bool,
) -> StepCapacity {
    let allocated = c.usage.allocated.peak(class, step).amount;
    let Some(inv) = c.dc.inventory.get(class) else {
        return StepCapacity {
            allocated,
            ..StepCapacity::default()
        };
    };
    let capacity = inv.capacity();
    if c.usage.closed_within(step).next().is_some() {
        return StepCapacity {
            capacity,
            allocated,
            maintenance: capacity,
            free: 0,
        };
    }
    let held = c
        .usage
        .allocated
        .peak_with(&c.usage.maintenance, class, step)
        .amount;
    StepCapacity {
        capacity,
        allocated,
        maintenance: c.usage.maintenance.peak(class, step).amount,
        free: if schedulable {
            available(inv, held, c.usage.applied.get(class))
        } else {
            0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Datacenter, Inventory, Labels};
    use crate::scheduler::testkit::{amount, vcpu};
    use crate::scheduler::{DatacenterUsage, Liveness};

    #[test]
    fn a_step_shows_the_peaks_within_it_and_what_is_left() {
        let mut dc = Datacenter::new("dc", Labels::new());
        let mut inv = Inventory::reported(16, 14);
        inv.allocation_ratio = 2.0;
        dc.inventory.insert(vcpu(), inv);
        let mut usage = DatacenterUsage::default();
        usage
            .allocated
            .add(Window::between(0, 50), true, &amount(4));
        usage
            .allocated
            .add(Window::between(40, 60), false, &amount(6));
        usage
            .maintenance
            .add(Window::between(55, 70), false, &amount(8));
        let c = Candidate {
            dc: &dc,
            liveness: Liveness::Alive,
            usage: &usage,
        };
        // 32 of capacity; 2 used outside theia (16 − 14, none of it theia's).
        let at = |s, e| step_capacity(&c, &vcpu(), Window::between(s, e), true);
        assert_eq!(
            at(0, 40),
            StepCapacity {
                capacity: 32,
                allocated: 4,
                maintenance: 0,
                free: 26
            }
        );
        assert_eq!(
            at(40, 60),
            StepCapacity {
                capacity: 32,
                allocated: 10,
                maintenance: 8,
                free: 16
            },
            "6 and 8 overlap at 55; 4 and 6 at 40"
        );
        assert_eq!(at(70, 80).free, 30);
        assert_eq!(
            step_capacity(&c, &vcpu(), Window::between(0, 40), false).free,
            0
        );
        let mut sum = at(0, 40);
        sum.add(at(0, 40));
        assert_eq!(sum.free, 52);
        // The whole datacenter in maintenance: nothing free, all taken.
        usage.closed.push((Window::between(75, 90), "m".into()));
        let c = Candidate {
            dc: &dc,
            liveness: Liveness::Alive,
            usage: &usage,
        };
        let closed = step_capacity(&c, &vcpu(), Window::between(70, 80), true);
        assert_eq!((closed.maintenance, closed.free), (32, 0));
        // A class the datacenter does not offer has no capacity; what
        // claims hold there still shows.
        let gpu = ResourceClass::parse("compute.gpu").unwrap();
        assert_eq!(
            step_capacity(&c, &gpu, Window::between(0, 10), true),
            StepCapacity::default()
        );
        let mut gpus = crate::model::Resources::new();
        gpus.set(gpu.clone(), 2);
        usage.allocated.add(Window::from(0), true, &gpus);
        let c = Candidate {
            dc: &dc,
            liveness: Liveness::Alive,
            usage: &usage,
        };
        assert_eq!(
            step_capacity(&c, &gpu, Window::between(0, 10), true),
            StepCapacity {
                allocated: 2,
                ..StepCapacity::default()
            }
        );
    }
}
