//! Connected agents: one stream per datacenter, and when each was last heard.

use std::collections::HashMap;
use std::sync::Mutex;

use theia::api::v1::ManagerMessage;
use theia::scheduler::{Liveness, LivenessPolicy};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

/// The sending half of an agent's stream.
pub type AgentTx = mpsc::Sender<Result<ManagerMessage, Status>>;

struct Session {
    id: u64,
    tx: AgentTx,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    last_seen: HashMap<String, (Instant, u64)>,
    /// Unix ms at which any manager of the cluster last heard each datacenter.
    remote_seen: HashMap<String, u64>,
    /// Reports ignored per datacenter since this manager started.
    ignored_reports: HashMap<String, u64>,
    next_id: u64,
}

/// The registry of agent sessions and their liveness.
pub struct Agents {
    inner: Mutex<Inner>,
    policy: LivenessPolicy,
}

impl Agents {
    /// An empty registry judging silence by `policy`.
    pub fn new(policy: LivenessPolicy) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain maps behind; keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a sign of life from `dc` at `wall_ms`.
    pub fn touch(&self, dc: &str, wall_ms: u64) {
        self.lock()
            .last_seen
            .insert(dc.to_owned(), (Instant::now(), wall_ms));
    }

    /// Whether `dc`'s agent is heard from, by this manager or, in a
    /// cluster, by any other.
    pub fn liveness(&self, dc: &str) -> Liveness {
        let inner = self.lock();
        self.judge(&inner, dc, Instant::now(), crate::ledger::wall_ms())
    }

    /// The liveness of each of `dcs`, judged at one instant under one
    /// lock: what the scheduler needs of every datacenter per claim.
    pub fn liveness_of<'a>(&self, dcs: impl IntoIterator<Item = &'a str>) -> Vec<Liveness> {
        let inner = self.lock();
        let (now, wall) = (Instant::now(), crate::ledger::wall_ms());
        dcs.into_iter()
            .map(|dc| self.judge(&inner, dc, now, wall))
            .collect()
    }

    fn judge(&self, inner: &Inner, dc: &str, now: Instant, wall_ms: u64) -> Liveness {
        let local = inner
            .last_seen
            .get(dc)
            .map(|(at, _)| now.saturating_duration_since(*at));
        let remote = inner
            .remote_seen
            .get(dc)
            .map(|ms| std::time::Duration::from_millis(wall_ms.saturating_sub(*ms)));
        let silent = match (local, remote) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.policy.judge(silent)
    }

    /// Counts a report from `dc`'s agent that was not taken.
    pub fn ignored_report(&self, dc: &str) {
        *self
            .lock()
            .ignored_reports
            .entry(dc.to_owned())
            .or_default() += 1;
    }

    /// Reports from `dc`'s agent not taken since this manager started.
    pub fn ignored_reports(&self, dc: &str) -> u64 {
        self.lock().ignored_reports.get(dc).copied().unwrap_or(0)
    }

    /// Records when other managers last heard datacenters (Unix ms).
    pub fn heard_elsewhere(&self, seen: impl IntoIterator<Item = (String, u64)>) {
        let mut inner = self.lock();
        for (dc, ms) in seen {
            let at = inner.remote_seen.entry(dc).or_default();
            *at = (*at).max(ms);
        }
    }

    /// When this manager last heard each datacenter whose agent it serves.
    pub fn heard_here(&self) -> Vec<(String, u64)> {
        let inner = self.lock();
        inner
            .sessions
            .keys()
            .filter_map(|dc| Some((dc.clone(), inner.last_seen.get(dc)?.1)))
            .collect()
    }

    /// Unix ms of the last message from `dc` heard by any manager; 0 if none
    /// since start.
    pub fn last_seen_ms(&self, dc: &str) -> u64 {
        let inner = self.lock();
        let local = inner.last_seen.get(dc).map_or(0, |(_, ms)| *ms);
        local.max(inner.remote_seen.get(dc).copied().unwrap_or(0))
    }

    /// Makes `tx` the stream of `dc`. Refused while another agent for the
    /// same datacenter is connected and alive: that one owns the stream, the
    /// newcomer is a standby and retries.
    pub fn register(&self, dc: &str, tx: AgentTx) -> Result<u64, Status> {
        let alive = self.liveness(dc) == Liveness::Alive;
        let mut inner = self.lock();
        if let Some(existing) = inner.sessions.get(dc)
            && alive
            && !existing.tx.is_closed()
        {
            return Err(Status::failed_precondition(format!(
                "datacenter {dc:?} already has a connected agent; this one stays a standby"
            )));
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.sessions.insert(dc.to_owned(), Session { id, tx });
        Ok(id)
    }

    /// Forgets session `id` of `dc`, unless a newer one replaced it; says
    /// whether it was the current one.
    pub fn unregister(&self, dc: &str, id: u64) -> bool {
        let mut inner = self.lock();
        if inner.sessions.get(dc).is_some_and(|s| s.id == id) {
            inner.sessions.remove(dc);
            return true;
        }
        false
    }

    /// Sends to `dc`'s agent if it is connected. An agent too slow to keep
    /// up is disconnected: on reconnect it receives the full desired state.
    pub fn send(&self, dc: &str, msg: ManagerMessage) {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get(dc) else {
            return;
        };
        if let Err(e) = session.tx.try_send(Ok(msg)) {
            tracing::warn!(datacenter = dc, error = %e, "agent stream is full or closed; dropping the session so it resyncs");
            inner.sessions.remove(dc);
        }
    }

    /// How many agents are connected.
    pub fn connected(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Ends `dc`'s stream, if connected, with `status` as its last word.
    pub fn disconnect(&self, dc: &str, status: Status) {
        if let Some(session) = self.lock().sessions.remove(dc) {
            let _ = session.tx.try_send(Err(status));
        }
    }

    /// Closes every stream (at shutdown).
    pub fn disconnect_all(&self) {
        self.lock().sessions.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn agents() -> Agents {
        Agents::new(LivenessPolicy {
            suspect_after: Duration::from_secs(15),
            down_after: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn silence_turns_a_datacenter_suspect_then_down_and_a_message_revives_it() {
        let a = agents();
        assert_eq!(a.liveness("dc"), Liveness::Down, "never heard from");
        a.touch("dc", 1);
        assert_eq!(a.liveness("dc"), Liveness::Alive);
        tokio::time::advance(Duration::from_secs(16)).await;
        assert_eq!(a.liveness("dc"), Liveness::Suspect);
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(a.liveness("dc"), Liveness::Down);
        a.touch("dc", 2);
        assert_eq!(a.liveness("dc"), Liveness::Alive);
        assert_eq!(a.last_seen_ms("dc"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_agent_is_a_standby_while_the_first_is_alive() {
        let a = agents();
        let (tx1, _rx1) = mpsc::channel(4);
        let (tx2, mut rx2) = mpsc::channel(4);
        let first = a.register("dc", tx1).unwrap();
        a.touch("dc", 1);
        let err = a.register("dc", tx2.clone()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);

        // The first goes quiet: the standby takes over.
        tokio::time::advance(Duration::from_secs(16)).await;
        let second = a.register("dc", tx2).unwrap();
        a.unregister("dc", first);
        assert_eq!(
            a.connected(),
            1,
            "the old session's exit does not remove the new one"
        );
        a.send("dc", ManagerMessage { body: None });
        assert!(rx2.try_recv().is_ok(), "messages go to the new session");
        a.unregister("dc", second);
        assert_eq!(a.connected(), 0);
    }
}
