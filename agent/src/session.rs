//! One stream with one manager: connect, Hello and a first Report, then
//! Welcome, heartbeats, reports and the manager's assignments until the
//! stream ends or the agent stops.

use std::time::Duration;

use theia::api::auth::{Bearer, authed};
use theia::api::v1;
use theia::api::v1::agent_message::Body as Out;
use theia::api::v1::agent_service_client::AgentServiceClient;
use theia::api::v1::manager_message::Body as In;
use theia::model::Labels;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::cluster::ClusterMemory;
use crate::driver::{Assignment, Driver, DriverError, Outcome};
use crate::reconcile::plan;

/// How often to send a heartbeat until the manager says otherwise.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// How often to send a report until the manager says otherwise.
pub(crate) const DEFAULT_REPORT: Duration = Duration::from_secs(30);
/// The shortest interval a Welcome may set, so that a zero or a typo in a
/// manager's configuration cannot make the agent spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// How long a TCP (and TLS) connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the manager may take to welcome the agent after the stream
/// opened; a manager that never does is as good as unreachable.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 pings find a manager that vanished without closing the
/// connection (a partition, a powered-off host): the agent only sends on
/// the stream and would otherwise not notice for a long time.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to let the manager close its side after the agent said goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
/// Messages queued for the manager; a full desired set's results are sent
/// as fast as the stream takes them.
const OUTBOUND_QUEUE: usize = 256;
/// A desired set of many assignments is one message; allow it to be large.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The agent is stopping.
    Shutdown,
    /// The manager could not be reached or did not welcome the agent.
    Unreachable(String),
    /// The manager welcomed the agent, then the stream ended.
    Lost(String),
}

/// Resolves once the agent must stop (or once nobody can tell it any more).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A Welcome's interval, or `default` when the manager sent none.
pub(crate) fn interval_from_ms(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms).max(MIN_INTERVAL)
    }
}

/// A timer that first fires one period from now.
fn ticker(period: Duration) -> Interval {
    let mut t = interval_at(Instant::now() + period, period);
    // After a stall, one heartbeat is enough; a burst would tell nothing new.
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Prints a transport error with its causes, which carry the useful part
/// ("connection refused", "dns error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Layers often repeat their inner error's text; say it once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A duration in whole milliseconds, for log fields.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// The sending half of a stream, which gives way when the agent stops.
struct Link {
    tx: mpsc::Sender<v1::AgentMessage>,
    stop: watch::Receiver<bool>,
    welcomed: bool,
}

impl Link {
    /// How a broken stream ends the session.
    fn ended(&self, reason: String) -> End {
        if self.welcomed {
            End::Lost(reason)
        } else {
            End::Unreachable(reason)
        }
    }

    async fn send(&mut self, body: Out) -> Result<(), End> {
        let msg = v1::AgentMessage { body: Some(body) };
        tokio::select! {
            sent = self.tx.send(msg) => {
                sent.map_err(|_| self.ended("the stream closed while sending".into()))
            }
            _ = stopped(&mut self.stop) => Err(End::Shutdown),
        }
    }
}

/// How often to speak, as the manager asked.
struct Pace {
    heartbeat: Interval,
    report: Interval,
}

impl Pace {
    fn new(heartbeat: Duration, report: Duration) -> Self {
        Self {
            heartbeat: ticker(heartbeat),
            report: ticker(report),
        }
    }
}

/// What outlives a session: the datacenter's identity, the driver and the
/// sequence numbers, which keep increasing across reconnects.
pub(crate) struct Agent {
    dc: String,
    labels: Labels,
    driver: Box<dyn Driver>,
    cluster: ClusterMemory,
    tls: ClientTlsConfig,
    bearer: Bearer,
    report_seq: u64,
    heartbeat_seq: u64,
}

impl Agent {
    /// An agent for `dc` driving `driver`; `tls` is used for `https` managers.
    pub(crate) fn new(
        dc: String,
        labels: Labels,
        driver: Box<dyn Driver>,
        cluster: ClusterMemory,
        tls: ClientTlsConfig,
        bearer: Bearer,
    ) -> Self {
        Self {
            bearer,
            dc,
            labels,
            driver,
            cluster,
            tls,
            report_seq: 0,
            heartbeat_seq: 0,
        }
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("{url:?} is not a URL: {}", chain(&e)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let endpoint = endpoint
            .user_agent(format!("theia-agent/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|e| chain(&e))?;
        if endpoint.uri().scheme_str() == Some("https") {
            return endpoint
                .tls_config(self.tls.clone())
                .map_err(|e| format!("TLS: {}", chain(&e)));
        }
        Ok(endpoint)
    }

    fn hello(&self) -> Out {
        Out::Hello(v1::Hello {
            datacenter: self.dc.clone(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            driver: self.driver.name().to_owned(),
        })
    }

    fn report(&mut self) -> Out {
        self.report_seq += 1;
        let inventory = self
            .driver
            .inventory()
            .into_iter()
            .map(|i| v1::InventoryItem {
                class: i.class.to_string(),
                total: i.total,
                free: i.free,
                held: Some(i.held),
            })
            .collect();
        Out::Report(v1::Report {
            sequence: self.report_seq,
            inventory,
        })
    }

    fn heartbeat(&mut self) -> Out {
        self.heartbeat_seq += 1;
        Out::Heartbeat(v1::Heartbeat {
            sequence: self.heartbeat_seq,
        })
    }

    /// Applies one assignment and says how it went.
    fn apply(&mut self, wire: v1::Assignment) -> Out {
        let claim_id = wire.claim_id.clone();
        let outcome = Assignment::try_from(wire).and_then(|a| {
            let outcome = self.driver.apply(&a);
            if matches!(outcome, Ok(Outcome::Changed)) {
                tracing::info!(claim = %a.claim_id, tenant = %a.tenant, resources = %a.resources, "applied");
            }
            outcome
        });
        result(claim_id, v1::AssignmentAction::Apply, outcome)
    }

    /// Releases one claim and says how it went.
    fn release(&mut self, claim_id: String) -> Out {
        let outcome = self.driver.release(&claim_id);
        if matches!(outcome, Ok(Outcome::Changed)) {
            tracing::info!(claim = %claim_id, "released");
        }
        result(claim_id, v1::AssignmentAction::Release, outcome)
    }

    /// Converges the driver to the manager's full desired set: releases
    /// first, then an APPLY result for every desired claim, then a report.
    async fn converge(&mut self, desired: Vec<v1::Assignment>, link: &mut Link) -> Result<(), End> {
        let plan = plan(&self.driver.held(), desired);
        tracing::info!(
            desired = plan.apply.len(),
            new = plan.new,
            release = plan.release.len(),
            "converging to the desired set"
        );
        for claim_id in plan.release {
            let result = self.release(claim_id);
            link.send(result).await?;
        }
        for assignment in plan.apply {
            let result = self.apply(assignment);
            link.send(result).await?;
        }
        Ok(())
    }

    /// Connects to `url` and speaks with it until the stream ends or `stop`
    /// turns true.
    pub(crate) async fn session(&mut self, url: &str, stop: &watch::Receiver<bool>) -> End {
        let mut stop = stop.clone();
        let endpoint = match self.endpoint(url) {
            Ok(e) => e,
            Err(reason) => return End::Unreachable(reason),
        };
        let channel = tokio::select! {
            connected = endpoint.connect() => match connected {
                Ok(channel) => channel,
                Err(e) => return End::Unreachable(format!("cannot connect: {}", chain(&e))),
            },
            _ = stopped(&mut stop) => return End::Shutdown,
        };

        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        // Queued before the call: the manager answers only once it has read
        // the Hello, and the first Report tells it the capacity at once.
        for body in [self.hello(), self.report()] {
            if tx.try_send(v1::AgentMessage { body: Some(body) }).is_err() {
                return End::Unreachable("the outbound queue refused the Hello".into());
            }
        }
        let mut client = AgentServiceClient::new(authed(channel, self.bearer.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let inbound = tokio::select! {
            answered = client.connect(ReceiverStream::new(rx)) => match answered {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    return End::Unreachable(format!("the manager refused the stream: {}", describe(&status)));
                }
            },
            _ = stopped(&mut stop) => return End::Shutdown,
        };
        let link = Link {
            tx,
            stop,
            welcomed: false,
        };
        self.converse(url, inbound, link).await
    }

    async fn converse(
        &mut self,
        url: &str,
        mut inbound: Streaming<v1::ManagerMessage>,
        mut link: Link,
    ) -> End {
        let mut pace = Pace::new(DEFAULT_HEARTBEAT, DEFAULT_REPORT);
        let welcome_deadline = sleep(WELCOME_TIMEOUT);
        tokio::pin!(welcome_deadline);
        loop {
            let step = tokio::select! {
                _ = stopped(&mut link.stop) => Err(End::Shutdown),
                _ = &mut welcome_deadline, if !link.welcomed => Err(End::Unreachable(format!(
                    "no Welcome within {}s of opening the stream",
                    WELCOME_TIMEOUT.as_secs()
                ))),
                _ = pace.heartbeat.tick() => {
                    let heartbeat = self.heartbeat();
                    link.send(heartbeat).await
                }
                _ = pace.report.tick() => {
                    let report = self.report();
                    link.send(report).await
                }
                received = inbound.message() => match received {
                    Ok(Some(msg)) => self.handle(url, msg, &mut link, &mut pace).await,
                    Ok(None) => Err(link.ended("the manager closed the stream".into())),
                    Err(status) => Err(link.ended(describe(&status))),
                },
            };
            if let Err(end) = step {
                if matches!(end, End::Shutdown) {
                    goodbye(link, inbound).await;
                }
                return end;
            }
        }
    }

    async fn handle(
        &mut self,
        url: &str,
        msg: v1::ManagerMessage,
        link: &mut Link,
        pace: &mut Pace,
    ) -> Result<(), End> {
        // A message without a body is one a newer manager added: not ours.
        let Some(body) = msg.body else {
            return Ok(());
        };
        match body {
            In::Welcome(w) => {
                let holds = !self.driver.held().is_empty();
                if let Err(reason) = self.cluster.admit(&w.cluster_id, holds) {
                    tracing::error!(manager = %url, datacenter = %self.dc, "{reason}");
                    return Err(End::Unreachable(reason));
                }
                let heartbeat = interval_from_ms(w.heartbeat_interval_ms, DEFAULT_HEARTBEAT);
                let report = interval_from_ms(w.report_interval_ms, DEFAULT_REPORT);
                *pace = Pace::new(heartbeat, report);
                link.welcomed = true;
                tracing::info!(
                    manager = %url,
                    manager_id = %w.manager_id,
                    cluster_id = %w.cluster_id,
                    datacenter = %self.dc,
                    heartbeat_ms = millis(heartbeat),
                    report_ms = millis(report),
                    "connected to manager"
                );
                return Ok(());
            }
            In::Desired(desired) => self.converge(desired.assignments, link).await?,
            In::Assign(assignment) => {
                let result = self.apply(assignment);
                link.send(result).await?;
            }
            In::Release(release) => {
                let result = self.release(release.claim_id);
                link.send(result).await?;
            }
        }
        // Free capacity just changed (or was confirmed): tell the manager
        // now rather than at the next tick, and start that tick over.
        let report = self.report();
        link.send(report).await?;
        pace.report.reset();
        Ok(())
    }
}

/// An AssignmentResult for `claim_id`.
fn result(
    claim_id: String,
    action: v1::AssignmentAction,
    outcome: Result<Outcome, DriverError>,
) -> Out {
    let (ok, error) = match outcome {
        Ok(_) => (true, String::new()),
        Err(e) => {
            let verb = match action {
                v1::AssignmentAction::Release => "release",
                _ => "apply",
            };
            tracing::warn!(claim = %claim_id, error = %e, "cannot {verb}");
            (false, e.to_string())
        }
    };
    Out::Result(v1::AssignmentResult {
        claim_id,
        action: action as i32,
        ok,
        error,
    })
}

/// Half-closes the stream and lets the manager end its side, so that it sees
/// a clean disconnect rather than a reset; bounded so that stopping stays
/// prompt.
async fn goodbye(link: Link, mut inbound: Streaming<v1::ManagerMessage>) {
    drop(link);
    let drain = async { while let Ok(Some(_)) = inbound.message().await {} };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_welcome_sets_the_intervals_within_reason() {
        assert_eq!(interval_from_ms(0, DEFAULT_HEARTBEAT), DEFAULT_HEARTBEAT);
        assert_eq!(interval_from_ms(1, DEFAULT_HEARTBEAT), MIN_INTERVAL);
        assert_eq!(
            interval_from_ms(250, DEFAULT_REPORT),
            Duration::from_millis(250)
        );
    }
}
