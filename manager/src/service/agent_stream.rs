//! `AgentService.Connect`: one long-lived stream per datacenter.
//!
//! Reconciliation is level-triggered: on every connect the agent receives
//! the full desired set of assignments, so a lost message or a restart never
//! leaves a management plane out of step.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use theia::api::v1;
use theia::api::v1::agent_message::Body as In;
use theia::api::v1::agent_service_server::AgentService;
use theia::api::v1::manager_message::Body as Out;
use theia::audit::Draft;
use theia::model::{ClaimState, FieldError};
use theia::model::{Datacenter, ReportedClass, check_report, validate_labels, validate_name};
use theia::scheduler::{Candidate, Liveness};
use theia::state::{Applied, Change};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::Api;
use crate::access::caller;
use crate::app::desired_state;
use crate::error::ApiError;
use crate::ledger::{Ledger, wall_ms};
use crate::store::Store;
use crate::writer::Durable;

/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for one agent before it counts as too slow.
const OUTBOUND_QUEUE: usize = 1024;
/// Assignment results waiting for the books before the stream is slowed.
const RESULT_QUEUE: usize = 256;
/// The most classes one report may carry.
const MAX_REPORT_ITEMS: usize = 256;

/// The longest `Hello.version` or `Hello.driver` taken.
const MAX_HELLO_TEXT: usize = 64;

/// A short, printable word (a version, a driver's name): what operators see
/// in `theia dc show` and in the log, so nothing that can drive a terminal.
fn short_printable(field: &str, text: &str) -> Result<(), FieldError> {
    if text.len() > MAX_HELLO_TEXT {
        return Err(FieldError::new(
            field,
            format!("is {} bytes; at most {MAX_HELLO_TEXT}", text.len()),
        ));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            format!(
                "{} must not contain control characters",
                theia::model::quoted(text)
            ),
        ));
    }
    Ok(())
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Api {
    /// Records the datacenter an agent announced (write-through when its
    /// identity changed); the answer says when that is durable.
    fn hello(ledger: &mut Ledger, hello: &v1::Hello) -> Option<Durable> {
        let labels: BTreeMap<String, String> = hello.labels.clone().into_iter().collect();
        let known = ledger.books.datacenters.get(&hello.datacenter).cloned();
        let mut dc = known
            .clone()
            .unwrap_or_else(|| Datacenter::new(hello.datacenter.clone(), labels.clone()));
        dc.labels = labels;
        dc.agent_version = hello.version.clone();
        dc.driver = hello.driver.clone();
        (known.as_ref() != Some(&dc)).then(|| ledger.put(|ts| Change::datacenter(ts, dc)))
    }

    /// Takes in an inventory report. New totals are placement-relevant and
    /// written through; changes of `free` alone are coalesced.
    async fn report(&self, dc_id: &str, report: v1::Report) -> Result<(), ApiError> {
        if report.inventory.len() > MAX_REPORT_ITEMS {
            return Err(FieldError::new(
                "report.inventory",
                format!("at most {MAX_REPORT_ITEMS} classes"),
            )
            .into());
        }
        let items: Vec<ReportedClass> = report
            .inventory
            .into_iter()
            .map(|i| ReportedClass {
                class: i.class,
                total: i.total,
                free: i.free,
                held: i.held,
            })
            .collect();
        let checked = check_report(&items)?;
        for class in &checked.unknown {
            tracing::warn!(datacenter = dc_id, class = %class.escape_debug(), "agent reported a class this manager does not know; left out");
        }
        let mut ledger = self.ledger.lock().await;
        let Some(mut dc) = ledger.books.datacenters.get(&dc_id.to_owned()).cloned() else {
            return Ok(());
        };
        let mut inventory = checked.inventory;
        for (class, inv) in &mut inventory {
            if let Some(old) = dc.inventory.get(class) {
                inv.reserved = old.reserved;
                inv.allocation_ratio = old.allocation_ratio;
            }
        }
        let totals_changed = inventory.len() != dc.inventory.len()
            || inventory
                .iter()
                .any(|(c, inv)| dc.inventory.get(c).is_none_or(|old| old.total != inv.total));
        if inventory == dc.inventory {
            return Ok(());
        }
        dc.inventory = inventory;
        if totals_changed {
            let usage = ledger.books.index().datacenter(dc_id);
            let view = match ledger.books.settings.get(&dc_id.to_owned()) {
                Some(settings) => settings.apply(&dc),
                None => dc.clone(),
            };
            let over = Candidate {
                dc: &view,
                liveness: Liveness::Alive,
                usage,
            }
            .over_committed(wall_ms());
            if !over.is_empty() {
                let classes: Vec<String> = over.iter().map(ToString::to_string).collect();
                tracing::warn!(datacenter = dc_id, classes = %classes.join(","), "the reported totals are below what theia placed here: over-committed, its claims are at risk");
            }
        }
        let ts = ledger.stamp();
        let change = Change::datacenter(ts, dc);
        if totals_changed {
            let durable = ledger.commit(vec![change], Vec::new());
            drop(ledger);
            durable.wait().await?;
        } else {
            ledger.apply_coalesced(change);
            if ledger.sync_due(self.config.sync_delta, self.config.sync_max) {
                // Not awaited: a failed flush marks its datacenters pending again.
                let _ = ledger.flush();
            }
        }
        Ok(())
    }

    /// Records an agent's answer to an assignment. Applied: the placement is
    /// confirmed, and a claim whose every placement is confirmed is active.
    /// Refused: the placement is not applied, the claim is at risk with the
    /// agent's reason, until a later apply (on reconnect) succeeds.
    async fn result(&self, dc_id: &str, result: v1::AssignmentResult) -> Result<(), ApiError> {
        if result.action != v1::AssignmentAction::Apply as i32 {
            if result.ok {
                tracing::debug!(datacenter = dc_id, claim = %result.claim_id, "agent released an assignment");
            } else {
                tracing::warn!(datacenter = dc_id, claim = %result.claim_id, error = %result.error, "agent could not release an assignment");
            }
            return Ok(());
        }
        let mut ledger = self.ledger.lock().await;
        let Some(claim) = ledger.books.claims().get(&result.claim_id) else {
            return Ok(());
        };
        if !claim.state.holds_capacity() {
            return Ok(());
        }
        let Some(p) = claim.placed_in(dc_id) else {
            return Ok(());
        };
        let error = if result.ok {
            String::new()
        } else {
            result.error.chars().take(1024).collect()
        };
        if p.applied == result.ok && p.apply_error == error {
            return Ok(());
        }
        if result.ok {
            tracing::debug!(datacenter = dc_id, claim = %claim.id, "agent applied an assignment");
        } else {
            tracing::warn!(datacenter = dc_id, claim = %claim.id, error = %error, "agent could not apply an assignment; the claim is at risk");
        }
        // Only this datacenter's flag is written: the claim's state follows
        // from the flags and its end, so no writer undoes another's part.
        let id = claim.id.clone();
        let flag = Applied {
            applied: result.ok,
            error,
            at_ms: wall_ms(),
        };
        let durable = ledger.put(|ts| Change::applied(&id, dc_id, ts, flag));
        if ledger
            .books
            .claims()
            .get(&id)
            .is_some_and(|c| c.state == ClaimState::Active)
        {
            tracing::info!(claim = %id, "claim active: every agent applied it");
        }
        drop(ledger);
        durable.wait().await?;
        Ok(())
    }

    /// Takes in what an agent reported and the results it sent, in order,
    /// apart from the stream's read loop: a report waiting for the books
    /// (behind a large API read, say) never holds up the heartbeats that
    /// keep the datacenter alive. Only the newest report waiting counts;
    /// results are all taken.
    async fn intake(
        &self,
        dc: String,
        mut reports: watch::Receiver<Option<v1::Report>>,
        mut results: mpsc::Receiver<v1::AssignmentResult>,
    ) {
        let mut reports_open = true;
        loop {
            tokio::select! {
                biased;
                result = results.recv() => match result {
                    Some(result) => {
                        if let Err(e) = self.result(&dc, result).await {
                            tracing::warn!(datacenter = %dc, error = %e, "assignment result not taken");
                        }
                    }
                    None => break,
                },
                changed = reports.changed(), if reports_open => {
                    if changed.is_err() {
                        reports_open = false;
                        continue;
                    }
                    let Some(report) = reports.borrow_and_update().clone() else {
                        continue;
                    };
                    match self.report(&dc, report).await {
                        Ok(()) => {}
                        Err(e) => {
                            if matches!(e, ApiError::Invalid(_)) {
                                self.agents.ignored_report(&dc);
                                let draft = Draft::ok("report.refuse", "datacenter", &dc)
                                    .code(tonic::Code::InvalidArgument as u32)
                                    .message(e.to_string());
                                self.trail.refused(draft, crate::audit::current());
                            }
                            tracing::warn!(datacenter = %dc, error = %e, "report not taken");
                        }
                    }
                }
            }
        }
    }

    async fn session(&self, dc: String, id: u64, mut inbound: Streaming<v1::AgentMessage>) {
        let mut stopping = self.stopping();
        // Reports must come in order: one older than the newest taken (a
        // replay, or a reordering) would put stale figures back.
        let mut last_report = 0u64;
        let (reports, pending_reports) = watch::channel(None);
        let (results, pending_results) = mpsc::channel(RESULT_QUEUE);
        let intake = {
            let api = self.clone();
            let dc = dc.clone();
            let call = crate::audit::current();
            tokio::spawn(
                crate::audit::serve(call, async move {
                    api.intake(dc, pending_reports, pending_results).await
                })
                .in_current_span(),
            )
        };
        loop {
            let msg = tokio::select! {
                msg = inbound.message() => msg,
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            let body = match msg {
                Ok(Some(v1::AgentMessage { body: Some(body) })) => body,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    tracing::info!(datacenter = %dc, "agent disconnected");
                    break;
                }
                Err(status) => {
                    tracing::info!(datacenter = %dc, error = %status.message(), "agent stream broke");
                    break;
                }
            };
            self.agents.touch(&dc, wall_ms());
            match body {
                In::Heartbeat(_) => {}
                In::Report(report) if report.sequence <= last_report => {
                    self.agents.ignored_report(&dc);
                    tracing::debug!(datacenter = %dc, sequence = report.sequence, newest = last_report, "report older than one already taken; ignored");
                }
                In::Report(report) => {
                    last_report = report.sequence;
                    reports.send_replace(Some(report));
                }
                In::Result(result) => {
                    // Waits only when results pile up faster than the books
                    // take them: then the agent is slowed, not forgotten.
                    if results.send(result).await.is_err() {
                        break;
                    }
                }
                In::Hello(_) => {
                    tracing::warn!(datacenter = %dc, "hello sent twice on one stream; ignored");
                }
            }
        }
        // What the agent sent before it went is still taken in.
        drop((reports, results));
        let _ = intake.await;
        if self.agents.unregister(&dc, id)
            && let Store::Redis(redis) = &*self.store
        {
            redis.release_stream(&dc, &self.manager_id).await;
        }
    }
}

/// Refuses an agent whose datacenter nobody registered (or that was deleted).
fn registered(books: &theia::state::Books, dc: &str) -> Result<(), Status> {
    if books.datacenters.contains_key(&dc.to_owned()) {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "datacenter {dc:?} is not registered: an operator registers it (theia dc register {dc}) or creates its agent token"
    )))
}

type OutStream = Pin<Box<dyn Stream<Item = Result<v1::ManagerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Api {
    type ConnectStream = OutStream;

    async fn connect(
        &self,
        req: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let peer = req.remote_addr();
        let principal = caller(&req)?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10s of connecting"))??;
        let Some(v1::AgentMessage {
            body: Some(In::Hello(hello)),
        }) = first
        else {
            return Err(ApiError::from(FieldError::new(
                "body",
                "the first message on a stream must be a Hello",
            ))
            .into());
        };
        validate_name("hello.datacenter", &hello.datacenter).map_err(ApiError::from)?;
        for (field, text) in [
            ("hello.version", &hello.version),
            ("hello.driver", &hello.driver),
        ] {
            short_printable(field, text).map_err(ApiError::from)?;
        }
        let labels: BTreeMap<String, String> = hello.labels.clone().into_iter().collect();
        validate_labels("hello.labels", &labels).map_err(ApiError::from)?;
        let dc = hello.datacenter.clone();
        if !principal.is_agent_of(&dc) {
            tracing::warn!(datacenter = %dc, token = %principal.token_id, subject = %principal.subject.escape_debug(), "agent refused: its token does not speak for this datacenter");
            let status = Status::permission_denied(format!(
                "this token speaks for the agent of {}; it may not connect as {dc:?}",
                principal.agent_datacenters().join(", ")
            ));
            let draft = Draft::ok("agent.refuse", "datacenter", &dc)
                .code(status.code() as u32)
                .message(status.message());
            self.trail.refused(draft, crate::audit::current());
            return Err(status);
        }
        if principal.by_certificate() {
            // A certificate from client_ca was issued by the operator for
            // this datacenter: like making its agent token, it registers it.
            let mut ledger = self.ledger.lock().await;
            if !ledger.books.datacenters.contains_key(&dc) {
                let labels: BTreeMap<String, String> = hello.labels.clone().into_iter().collect();
                let made =
                    ledger.put(|ts| Change::datacenter(ts, Datacenter::new(dc.clone(), labels)));
                drop(ledger);
                made.wait().await.map_err(ApiError::from)?;
                tracing::info!(datacenter = %dc, "datacenter registered by its agent's client certificate");
            }
        }
        registered(&self.ledger.lock().await.books, &dc)?;

        // In a cluster exactly one manager serves a datacenter's stream.
        if let Store::Redis(redis) = &*self.store {
            match redis
                .take_stream(&dc, &self.manager_id, self.stream_lease())
                .await
            {
                Ok(None) => {}
                Ok(Some(holder)) => {
                    return Err(Status::failed_precondition(format!(
                        "datacenter {dc:?} is served by manager {holder:?}; this agent stays a standby"
                    )));
                }
                Err(e) => return Err(ApiError::from(e).into()),
            }
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        // Register, record, greet and send the desired state under the ledger
        // lock, so that no Assign or Release can slip in before the full set.
        let (id, recorded) = {
            let mut ledger = self.ledger.lock().await;
            registered(&ledger.books, &dc)?;
            let id = self.agents.register(&dc, tx.clone())?;
            self.agents.touch(&dc, wall_ms());
            let recorded = Self::hello(&mut ledger, &hello);
            let welcome = v1::Welcome {
                manager_id: self.manager_id.clone(),
                heartbeat_interval_ms: duration_ms(self.config.heartbeat_interval),
                report_interval_ms: duration_ms(self.config.report_interval),
                cluster_id: ledger.cluster_id().to_owned(),
            };
            for body in [
                Out::Welcome(welcome),
                Out::Desired(desired_state(&ledger.books, &dc, wall_ms())),
            ] {
                tx.try_send(Ok(v1::ManagerMessage { body: Some(body) }))
                    .map_err(|_| Status::unavailable("agent stream closed"))?;
            }
            (id, recorded)
        };
        if let Some(recorded) = recorded
            && let Err(e) = recorded.wait().await
        {
            self.agents.unregister(&dc, id);
            return Err(ApiError::from(e).into());
        }
        drop(tx);
        tracing::info!(datacenter = %dc, version = %hello.version, driver = %hello.driver, "agent connected");
        if self.plaintext_on_network() {
            let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            tracing::warn!(datacenter = %dc, peer = %peer, "agent connected over plaintext (insecure): its assignments and reports cross the network unprotected");
        }
        let api = self.clone();
        // The stream's tasks log in its call's span: its request id and
        // the agent's token subject name every line of the session.
        // And what they commit names the agent as its actor.
        let call = crate::audit::current();
        tokio::spawn(
            crate::audit::serve(call, async move { api.session(dc, id, inbound).await })
                .in_current_span(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
