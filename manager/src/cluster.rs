//! What a manager does only in a cluster (a shared Redis store): tail the
//! feed of other managers' writes and merge them, and share when each
//! datacenter's agent was last heard and which managers are up.

use std::sync::Arc;
use std::time::Duration;

use theia::api::v1;

use theia::audit::Draft;
use theia::state::Change;

use crate::app::App;
use crate::audit::Call;
use crate::ledger::wall_ms;
use crate::store::{FeedEntry, Store};

/// How long one read of the feed waits for news.
const FEED_BLOCK: Duration = Duration::from_secs(1);

/// Merges every batch another manager writes, in the order they were
/// written, and tells this manager's agents what changed for them.
pub async fn feed(app: Arc<App>) {
    let Store::Redis(redis) = &*app.store else {
        return;
    };
    let mut position = redis.feed_start().to_owned();
    loop {
        match redis.read_feed(&position, FEED_BLOCK).await {
            Ok(read) => {
                if read.missed {
                    tracing::warn!("fell behind the trimmed feed; reloading every register");
                    reload(&app).await;
                }
                position = read.position;
                merge(&app, read.entries).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the feed; will retry");
                tokio::time::sleep(FEED_BLOCK).await;
            }
        }
    }
}

async fn merge(app: &App, entries: Vec<FeedEntry>) {
    if entries.is_empty() {
        return;
    }
    let mut effects = Vec::new();
    let mut heard = Vec::new();
    {
        let mut ledger = app.ledger.lock().await;
        let mut refused = Vec::new();
        for entry in entries {
            for change in &entry.changes {
                match ledger.merge_remote(change) {
                    Ok(mut e) => {
                        effects.append(&mut e);
                        if let Change::Event { register, .. } = change
                            && let Some(event) = register.get()
                        {
                            heard.push(event.clone());
                        }
                    }
                    Err(e) => {
                        tracing::error!(
                            manager = %entry.manager,
                            key = %change.storage_key(),
                            error = %e,
                            "refused a change from another manager whose clock runs ahead"
                        );
                        let draft = Draft::ok("clock.refuse", "manager", &entry.manager)
                            .code(tonic::Code::FailedPrecondition as u32)
                            .message(e.to_string());
                        refused.push((draft, Call::manager()));
                    }
                }
            }
            ledger.learn(&entry.generations);
        }
        for (draft, call) in refused {
            app.trail.refused(draft, call);
        }
    }
    for (dc, msg) in effects {
        app.agents.send(&dc, msg);
    }
    for event in heard {
        app.trail.publish(event);
    }
}

/// Merges every stored register again, then has agents resync.
async fn reload(app: &App) {
    match app.store.load().await {
        Ok(changes) => {
            let mut ledger = app.ledger.lock().await;
            for change in &changes {
                let _ = ledger.merge_remote(change);
            }
            drop(ledger);
            app.agents.disconnect_all();
        }
        Err(e) => {
            tracing::error!(error = %e, "reloading from the store failed; will retry at the next gap")
        }
    }
}

/// Every heartbeat interval: shares when this manager heard its agents and
/// announces itself; takes in what the other managers heard and announced.
pub async fn exchange(app: Arc<App>) {
    let Store::Redis(redis) = &*app.store else {
        return;
    };
    let mut tick = tokio::time::interval(app.config.heartbeat_interval);
    loop {
        tick.tick().await;
        let me = v1::Manager {
            id: app.manager_id.clone(),
            address: app.address.to_string(),
            last_seen_unix_ms: i64::try_from(wall_ms()).unwrap_or(i64::MAX),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let announcement = serde_json::json!({
            "address": me.address,
            "last_seen_unix_ms": me.last_seen_unix_ms,
            "version": me.version,
        })
        .to_string();
        let heard_here = app.agents.heard_here();
        for (dc, _) in &heard_here {
            match redis
                .take_stream(dc, &app.manager_id, app.stream_lease())
                .await
            {
                Ok(None) => {}
                Ok(Some(holder)) => {
                    tracing::warn!(datacenter = %dc, %holder, "another manager took this datacenter's stream over")
                }
                Err(e) => {
                    tracing::warn!(datacenter = %dc, error = %e, "cannot renew the stream lease; will retry")
                }
            }
        }
        match redis.exchange_seen(&heard_here, &announcement).await {
            Ok((seen, managers)) => {
                let dcs: Vec<String> = {
                    let ledger = app.ledger.lock().await;
                    ledger
                        .books
                        .datacenters
                        .iter()
                        .map(|(id, _)| id.clone())
                        .collect()
                };
                let heard = dcs
                    .into_iter()
                    .filter_map(|dc| Some((dc.clone(), *seen.get(&redis.seen_field(&dc))?)));
                app.agents.heard_elsewhere(heard);
                let mut peers: Vec<v1::Manager> = managers
                    .into_iter()
                    .filter_map(|(id, text)| {
                        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                        Some(v1::Manager {
                            id,
                            address: v["address"].as_str()?.to_owned(),
                            last_seen_unix_ms: v["last_seen_unix_ms"].as_i64()?,
                            version: v["version"].as_str()?.to_owned(),
                        })
                    })
                    .collect();
                peers.sort_by(|a, b| a.id.cmp(&b.id));
                *app.peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = peers;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot share liveness with the cluster; will retry")
            }
        }
    }
}
