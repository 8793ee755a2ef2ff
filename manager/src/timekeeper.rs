//! What time itself changes in the books: when a claim's window starts its
//! agents are told to assign it, and when it ends the claim expires (on
//! every manager; each writes the same end, so it expires once whichever
//! writes first) and its agents are told to release it.

use std::sync::Arc;
use std::time::Duration;

use theia::api::v1::ManagerMessage;
use theia::state::{Change, ClaimEnd};

use crate::app::{App, assign_effects, release_effects};
use crate::ledger::{Ledger, wall_ms};

/// The longest the timekeeper sleeps: a claim created with a start sooner
/// than this is assigned at most this late.
const LONGEST_NAP: Duration = Duration::from_millis(100);

/// The most claims expired in one round, so that the ledger lock is never
/// held long; the rest follow in the next round.
const PER_ROUND: usize = 1000;

/// Runs for as long as the manager does.
pub async fn run(app: Arc<App>) {
    let mut last = wall_ms();
    loop {
        let next = app
            .ledger
            .lock()
            .await
            .books
            .index()
            .next_boundary_after(last);
        let nap = next.map_or(LONGEST_NAP, |t| {
            Duration::from_millis(t.saturating_sub(wall_ms())).min(LONGEST_NAP)
        });
        tokio::time::sleep(nap).await;
        let now = wall_ms();
        if now < last {
            // The system clock went back: nothing new is due.
            continue;
        }
        let expired = {
            let mut ledger = app.ledger.lock().await;
            // Sent through the writer, after everything queued before (an
            // agent never hears of a claim that is not durable), releases
            // first: a claim that ends when another starts leaves room for it.
            let mut effects = Vec::new();
            let changes = expire_due(&mut ledger, now, &mut effects);
            let books = &ledger.books;
            for id in books.index().starting(last, now) {
                if let Some(claim) = books.claims().get(id).filter(|c| c.in_force_at(now)) {
                    tracing::info!(claim = %claim.id, tenant = %claim.spec.tenant, "claim window started: agents told to assign it");
                    effects.extend(assign_effects(claim));
                }
            }
            if changes.is_empty() && effects.is_empty() {
                last = now;
                continue;
            }
            ledger.commit(changes, effects)
        };
        last = now;
        if let Err(e) = expired.wait().await {
            // Memory took them; the next start loads what the store kept
            // and the claims expire again there.
            tracing::error!(error = %e, "writing expired claims failed in the store");
        }
    }
}

/// The ends of up to [`PER_ROUND`] live claims whose window is over by
/// `now`, to commit; their releases are added to `effects`. The timekeeper
/// calls it each round, and a placement before it decides, so that an
/// agent always hears of an expired claim's release before an assignment
/// placed in the room it left.
pub fn expire_due(
    ledger: &mut Ledger,
    now: u64,
    effects: &mut Vec<(String, ManagerMessage)>,
) -> Vec<Change> {
    let books = &ledger.books;
    let ending: Vec<_> = books
        .index()
        .ending_by(now)
        .take(PER_ROUND)
        .filter_map(|id| books.claims().get(id))
        .filter_map(|c| Some((c.id.clone(), c.window.end?, release_effects(c))))
        .collect();
    let mut changes = Vec::with_capacity(ending.len());
    for (id, end, release) in ending {
        tracing::info!(claim = %id, "claim window ended: expired, agents told to release it");
        effects.extend(release);
        let ts = ledger.stamp();
        changes.push(Change::end(&id, ts, ClaimEnd::expired(end)));
    }
    changes
}
