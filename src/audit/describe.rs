//! Which event a change of the books is: read against the books before the
//! change is merged, so that what it changes is known.

use crate::audit::{Draft, UNKNOWN};
use crate::model::{ClaimState, Datacenter};
use crate::state::{Books, Change};

/// The event `change` is when merged into `books`, or none for a change no
/// one needs to see: a report that only moved free capacity, a register
/// merged again, an event itself.
pub fn describe(change: &Change, books: &Books) -> Option<Draft> {
    match change {
        Change::Datacenter { key, register } => {
            let before = books.datacenters.get(key);
            match (before, register.get()) {
                (Some(_), None) => Some(Draft::ok("datacenter.decommission", "datacenter", key)),
                (None, Some(dc)) => {
                    let draft = Draft::ok("datacenter.register", "datacenter", key);
                    Some(if dc.driver.is_empty() {
                        draft
                    } else {
                        draft.message(format!(
                            "by its agent {}, driver {}",
                            dc.agent_version, dc.driver
                        ))
                    })
                }
                (Some(old), Some(new)) => {
                    let what = changed_in(old, new);
                    (!what.is_empty()).then(|| {
                        Draft::ok("datacenter.update", "datacenter", key)
                            .message(format!("changed: {}", what.join(", ")))
                    })
                }
                (None, None) => None,
            }
        }
        Change::Settings { key, register } => {
            let action = if register.is_tombstone() {
                "datacenter.reset"
            } else {
                "datacenter.configure"
            };
            Some(Draft::ok(action, "datacenter", key))
        }
        Change::Tenant { key, register } => {
            let action = match (books.tenants.get(key).is_some(), register.get().is_some()) {
                (false, true) => "tenant.create",
                (true, true) => "tenant.update",
                (true, false) => "tenant.delete",
                (false, false) => return None,
            };
            Some(Draft::ok(action, "tenant", key).tenant(key))
        }
        Change::Profile { key, register } => {
            let action = match (books.profiles.get(key).is_some(), register.get().is_some()) {
                (false, true) => "profile.create",
                (true, true) => "profile.update",
                (true, false) => "profile.delete",
                (false, false) => return None,
            };
            Some(Draft::ok(action, "profile", key))
        }
        Change::Token { key, register } => {
            let before = books.tokens.get(key);
            match (before, register.get()) {
                (None, Some(token)) => Some(
                    Draft::ok("token.create", "token", key)
                        .message(format!("for {}", token.subject.escape_debug())),
                ),
                (Some(_), None) => Some(Draft::ok("token.revoke", "token", key)),
                _ => None,
            }
        }
        Change::Claim { key, register } => {
            let claim = register.get()?;
            let before = books.claims().get(key);
            let placed_in = |c: &crate::model::Claim| {
                c.placements
                    .iter()
                    .map(|p| format!("{}×{}", p.units, p.datacenter))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match before {
                None => Some(
                    Draft::ok("claim.create", "claim", key)
                        .tenant(&claim.spec.tenant)
                        .message(format!("placed {}", placed_in(claim))),
                ),
                Some(old) if old.placements != claim.placements => Some(
                    Draft::ok("claim.replace", "claim", key)
                        .tenant(&claim.spec.tenant)
                        .message(format!(
                            "moved from {} to {}",
                            placed_in(old),
                            placed_in(claim)
                        )),
                ),
                Some(_) => None,
            }
        }
        Change::End { key, register } => {
            let end = register.get()?;
            let claim = books.claims().get(key)?;
            if claim.state.ended() {
                return None;
            }
            let action = match end.state {
                ClaimState::Expired => "claim.expire",
                _ => "claim.release",
            };
            Some(Draft::ok(action, "claim", key).tenant(&claim.spec.tenant))
        }
        Change::Applied {
            claim,
            datacenter,
            register,
        } => {
            let now = register.get()?;
            let placed = books.claims().get(claim)?;
            let before = placed.placed_in(datacenter);
            if before.is_some_and(|p| p.applied == now.applied && p.apply_error == now.error) {
                return None;
            }
            let draft = Draft::ok("claim.apply", "claim", claim).tenant(&placed.spec.tenant);
            Some(if now.applied {
                draft.message(format!("applied in {datacenter}"))
            } else {
                draft
                    .code(UNKNOWN)
                    .message(format!("{datacenter} could not apply it: {}", now.error))
            })
        }
        Change::Maintenance { key, register } => {
            let m = register.get()?;
            let before = books.maintenances.get(key);
            match before {
                None => Some(
                    Draft::ok("maintenance.create", "maintenance", key)
                        .message(format!("on {}: {}", m.datacenter, m.reason)),
                ),
                Some(old) if old.cancelled_ms.is_none() && m.cancelled_ms.is_some() => Some(
                    Draft::ok("maintenance.cancel", "maintenance", key)
                        .message(format!("on {}", m.datacenter)),
                ),
                Some(_) => None,
            }
        }
        Change::Event { .. } => None,
    }
}

/// What an agent's report changed besides free capacity: labels, totals,
/// schedulable, agent version or driver.
fn changed_in(old: &Datacenter, new: &Datacenter) -> Vec<&'static str> {
    let mut what = Vec::new();
    if old.labels != new.labels {
        what.push("labels");
    }
    let totals = |dc: &Datacenter| {
        dc.inventory
            .iter()
            .map(|(class, inv)| (class.clone(), inv.total))
            .collect::<Vec<_>>()
    };
    if totals(old) != totals(new) {
        what.push("totals");
    }
    if old.schedulable != new.schedulable {
        what.push("schedulable");
    }
    if old.agent_version != new.agent_version {
        what.push("agent version");
    }
    if old.driver != new.driver {
        what.push("driver");
    }
    what
}
