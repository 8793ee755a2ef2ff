//! What every handler shares: configuration, the ledger, the agent registry.

use std::net::SocketAddr;
use std::sync::Arc;

use theia::api::{claim_to_wire, v1};
use theia::model::{Claim, Placement, Window};
use theia::scheduler::{Candidate, Liveness};
use theia::state::Books;
use tokio::sync::{Mutex, watch};

use crate::ManagerConfig;
use crate::access::DirectoryCell;
use crate::agents::Agents;
use crate::ledger::{Ledger, wall_ms};
use crate::store::Store;

/// The manager's shared state.
pub struct App {
    /// Settings.
    pub config: ManagerConfig,
    /// This manager's id.
    pub manager_id: String,
    /// Where the API listens.
    pub address: SocketAddr,
    /// The books, under the one lock that serialises decisions.
    pub ledger: Mutex<Ledger>,
    /// Connected agents and their liveness.
    pub agents: Agents,
    /// The store (the writer writes it; the feed reads it).
    pub store: Arc<Store>,
    /// The tokens and tenant members calls are checked against.
    pub directory: Arc<DirectoryCell>,
    /// Where this manager's next round-robin claim starts: after the
    /// datacenter its last one ended on.
    pub rotation: std::sync::Mutex<Option<String>>,
    /// Every manager of the cluster as last announced in a shared store.
    pub peers: std::sync::Mutex<Vec<v1::Manager>>,
    /// Records events no change carries; tells watchers of every event.
    pub trail: Arc<crate::audit::Trail>,
    /// What Prometheus scrapes.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// What the Loki connector did (zeros when there is none).
    pub loki: Arc<crate::connectors::Stats>,
    stop: watch::Sender<bool>,
}

impl App {
    /// Shared state around an opened ledger.
    pub fn new(
        config: ManagerConfig,
        manager_id: String,
        address: SocketAddr,
        ledger: Ledger,
        store: Arc<Store>,
    ) -> Self {
        // Datacenters known from the store count as down until their agent
        // speaks to this manager: nothing is placed on what nobody vouches for.
        let agents = Agents::new(config.liveness);
        let directory = ledger.directory();
        Self {
            directory,
            config,
            manager_id,
            address,
            ledger: Mutex::new(ledger),
            agents,
            store,
            peers: std::sync::Mutex::new(Vec::new()),
            rotation: std::sync::Mutex::new(None),
            trail: Arc::new(crate::audit::Trail::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            loki: Arc::default(),
            stop: watch::channel(false).0,
        }
    }

    /// How long this manager's hold on an agent stream lasts unless renewed:
    /// when it dies, another manager may take the datacenter over after this.
    pub fn stream_lease(&self) -> std::time::Duration {
        self.config
            .liveness
            .suspect_after
            .max(self.config.heartbeat_interval * 3)
    }

    /// Whether this manager serves plaintext on an address other machines
    /// can reach: what `--insecure` warns about.
    pub fn plaintext_on_network(&self) -> bool {
        self.config.tls.is_none() && !self.address.ip().is_loopback()
    }

    /// Tells long-lived streams to end.
    pub fn stop(&self) {
        self.stop.send_replace(true);
        self.agents.disconnect_all();
    }

    /// Completes when the manager is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Every datacenter as the scheduler sees it now.
    pub fn candidates<'a>(&self, books: &'a Books) -> Vec<Candidate<'a>> {
        let datacenters = books.effective_datacenters();
        let liveness = self
            .agents
            .liveness_of(datacenters.keys().map(String::as_str));
        datacenters
            .iter()
            .zip(liveness)
            .map(|((id, dc), liveness)| Candidate {
                dc,
                liveness,
                usage: books.index().datacenter(id),
            })
            .collect()
    }

    /// The datacenters holding part of `claim` that are down, whose agent
    /// could not apply their part, or that are over-committed at some
    /// instant from `now` on.
    pub fn at_risk(&self, books: &Books, claim: &Claim, now: u64) -> Vec<String> {
        if !claim.state_at(now).holds_capacity() {
            return Vec::new();
        }
        let over_committed = |id: &str| {
            books.datacenter(id).is_some_and(|dc| {
                let here = Candidate {
                    dc,
                    liveness: Liveness::Alive,
                    usage: books.index().datacenter(id),
                };
                !here.over_committed(now).is_empty()
            })
        };
        claim
            .placements
            .iter()
            .filter(|p| {
                !p.apply_error.is_empty()
                    || self.agents.liveness(&p.datacenter) == Liveness::Down
                    || over_committed(&p.datacenter)
            })
            .map(|p| p.datacenter.clone())
            .collect()
    }

    /// Schedules `spec` over `window` on `books` as this manager decides
    /// at `now`: round-robin claims continue the rotation. Nothing is
    /// changed; `placed` says whether the outcome is taken (and the
    /// rotation moves on), in which case a claim that fits gets no
    /// per-datacenter verdicts (explaining asks with `placed` false).
    pub fn schedule(
        &self,
        books: &Books,
        spec: &theia::model::ClaimSpec,
        placed: bool,
        window: Window,
        now: u64,
    ) -> theia::scheduler::Outcome {
        let _span = tracing::info_span!(
            "schedule",
            tenant = %spec.tenant,
            units = spec.count,
            explain = !placed
        )
        .entered();
        let mut rotation = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
        let decide = if placed {
            theia::scheduler::place_seeded
        } else {
            theia::scheduler::schedule_seeded
        };
        let outcome = decide(
            &self.candidates(books),
            spec,
            rotation.as_deref(),
            window,
            now,
            self.config.tie_break_seed,
        );
        if placed && outcome.fits && spec.strategy == theia::model::Strategy::RoundRobin {
            rotation.clone_from(&outcome.last_datacenter);
        }
        outcome
    }

    /// The earliest window from `first` on, within the planning window, at
    /// which `spec` fits (quota included), as this manager decides at
    /// `now`; `placed` as for [`schedule`](Self::schedule).
    pub fn schedule_earliest(
        &self,
        books: &Books,
        spec: &theia::model::ClaimSpec,
        tenant: &theia::model::Tenant,
        placed: bool,
        first: Window,
        now: u64,
    ) -> Result<theia::scheduler::Found, Box<theia::scheduler::NoSlot>> {
        let _span = tracing::info_span!(
            "schedule_earliest",
            tenant = %spec.tenant,
            units = spec.count,
            explain = !placed
        )
        .entered();
        let mut rotation = self.rotation.lock().unwrap_or_else(|e| e.into_inner());
        let planning = u64::try_from(self.config.planning_window.as_millis()).unwrap_or(u64::MAX);
        let candidates = self.candidates(books);
        let mut found = theia::scheduler::earliest_start(
            &candidates,
            spec,
            tenant,
            &books.index().tenant(&tenant.name).held,
            first,
            planning,
            rotation.as_deref(),
            now,
            self.config.tie_break_seed,
        );
        if let Ok(slot) = &mut found {
            if placed && spec.strategy == theia::model::Strategy::RoundRobin {
                rotation.clone_from(&slot.outcome.last_datacenter);
            }
            if !placed {
                // The same decision at the start found, with its verdicts.
                slot.outcome = theia::scheduler::schedule_seeded(
                    &candidates,
                    spec,
                    rotation.as_deref(),
                    slot.window,
                    now,
                    self.config.tie_break_seed,
                );
            }
        }
        found
    }

    /// A claim for the wire, with its state and risk judged now on `books`.
    pub fn claim_to_wire(&self, books: &Books, claim: &Claim) -> v1::Claim {
        let now = wall_ms();
        claim_to_wire(claim, self.at_risk(books, claim, now), now)
    }
}

/// The assignment an agent receives for one placement of a claim.
pub fn assignment(claim: &Claim, placement: &Placement) -> v1::Assignment {
    v1::Assignment {
        claim_id: claim.id.clone(),
        tenant: claim.spec.tenant.clone(),
        resources: placement.resources.to_base_units().into_iter().collect(),
    }
}

/// Tells each datacenter of `claim` to assign its part.
pub fn assign_effects(claim: &Claim) -> Vec<(String, v1::ManagerMessage)> {
    claim
        .placements
        .iter()
        .map(|p| {
            let assign = v1::manager_message::Body::Assign(assignment(claim, p));
            (
                p.datacenter.clone(),
                v1::ManagerMessage { body: Some(assign) },
            )
        })
        .collect()
}

/// Tells each datacenter of `claim` to take its part back.
pub fn release_effects(claim: &Claim) -> Vec<(String, v1::ManagerMessage)> {
    claim
        .placements
        .iter()
        .map(|p| {
            let release = v1::manager_message::Body::Release(v1::Release {
                claim_id: claim.id.clone(),
            });
            (
                p.datacenter.clone(),
                v1::ManagerMessage {
                    body: Some(release),
                },
            )
        })
        .collect()
}

/// What an agent for `dc` should hold at `now`: every live claim placed
/// there whose window holds then.
pub fn desired_state(books: &Books, dc: &str, now: u64) -> v1::DesiredState {
    let assignments = books
        .index()
        .live_in(dc)
        .filter_map(|id| books.claims().get(id))
        .filter(|c| c.in_force_at(now))
        .filter_map(|c| c.placed_in(dc).map(|p| assignment(c, p)))
        .collect();
    v1::DesiredState { assignments }
}
