//! Background loops: liveness transitions and paced synchronisation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use theia::scheduler::Liveness;

use theia::audit::Draft;

use crate::app::App;
use crate::audit::Call;

/// Watches every datacenter's liveness and reports transitions: a datacenter
/// that goes down is an alert, with the claims it puts at risk.
pub async fn liveness(app: Arc<App>) {
    let mut last: HashMap<String, Liveness> = HashMap::new();
    let mut tick = tokio::time::interval(app.config.heartbeat_interval / 2);
    loop {
        tick.tick().await;
        let mut ledger = app.ledger.lock().await;
        let mut events = Vec::new();
        for id in ledger.books.datacenters.iter().map(|(id, _)| id) {
            // One never heard from (registered, or known from the store at
            // start) has no liveness to change yet: its first is when its
            // agent first speaks.
            if app.agents.last_seen_ms(id) == 0 {
                continue;
            }
            let now = app.agents.liveness(id);
            let before = last.insert(id.clone(), now);
            if before.is_none_or(|b| b == now) {
                continue;
            }
            let books = &ledger.books;
            let at_risk: Vec<&theia::model::Claim> = books
                .index()
                .live_in(id)
                .filter_map(|claim| books.claims().get(claim))
                .filter(|c| c.in_force_at(crate::ledger::wall_ms()))
                .collect();
            let action = match now {
                Liveness::Down => {
                    tracing::error!(datacenter = %id, claims_at_risk = at_risk.len(), "datacenter down: its agent missed its heartbeats");
                    "datacenter.down"
                }
                Liveness::Suspect => {
                    tracing::warn!(datacenter = %id, "datacenter suspect: heartbeats are late");
                    "datacenter.suspect"
                }
                Liveness::Alive => {
                    tracing::info!(datacenter = %id, "datacenter alive again");
                    "datacenter.alive"
                }
            };
            let mut draft = Draft::ok(action, "datacenter", id);
            if now == Liveness::Down {
                draft = draft.message(format!("{} claims at risk", at_risk.len()));
            }
            events.push(draft);
            if now == Liveness::Down {
                events.extend(at_risk.iter().map(|c| {
                    Draft::ok("claim.at_risk", "claim", &c.id)
                        .tenant(&c.spec.tenant)
                        .message(format!("{id} is down"))
                }));
            }
        }
        // Written in its own time: watching liveness does not wait on the store.
        if !events.is_empty() {
            let _ = ledger.record(events.into_iter().map(|d| (d, Call::manager())));
        }
    }
}

/// Prunes released claims past `claim_retention`, a bounded number at a time
/// so that the ledger lock is never held long.
pub async fn housekeeping(app: Arc<App>) {
    const PER_ROUND: usize = 1000;
    let period =
        (app.config.claim_retention / 10).clamp(Duration::from_millis(10), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let retention = u64::try_from(app.config.claim_retention.as_millis()).unwrap_or(u64::MAX);
        let cutoff = crate::ledger::wall_ms().saturating_sub(retention);
        // The trail is trimmed to its depth each round, a bounded number
        // of events per hold of the lock.
        loop {
            let trimmed = app
                .ledger
                .lock()
                .await
                .trim_events(app.config.audit, PER_ROUND);
            let Some(trimmed) = trimmed else { break };
            if let Err(e) = trimmed.wait().await {
                tracing::error!(error = %e, "trimming the audit trail failed in the store");
                break;
            }
        }
        let pruned = {
            let mut ledger = app.ledger.lock().await;
            let old: Vec<String> = ledger
                .books
                .index()
                .released_before(cutoff)
                .take(PER_ROUND)
                .map(str::to_owned)
                .collect();
            if old.is_empty() {
                continue;
            }
            tracing::info!(
                claims = old.len(),
                "pruning released claims past their retention"
            );
            ledger.prune(&old)
        };
        if let Err(e) = pruned.wait().await {
            // Memory has forgotten them already; the store keeps them until
            // the next start, which loads and prunes them again.
            tracing::error!(error = %e, "pruning released claims failed in the store");
        }
    }
}

/// Flushes coalesced changes when HORAO's rule says so.
pub async fn sync(app: Arc<App>) {
    let period = app
        .config
        .sync_delta
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let flushed = {
            let mut ledger = app.ledger.lock().await;
            if !ledger.sync_due(app.config.sync_delta, app.config.sync_max) {
                continue;
            }
            ledger.flush()
        };
        // A failed flush marks its datacenters pending again.
        if let Err(e) = flushed.wait().await {
            tracing::error!(error = %e, "sync failed; will retry");
        }
    }
}
