//! The agent's side of `AgentService.Connect`, checked message by message
//! against a scripted manager on 127.0.0.1: what it says first, how it
//! converges to a desired set, how it answers Assign and Release, that it
//! fails over past a dead manager and that it stops cleanly. The real
//! manager is exercised by the workspace's end-to-end tests.

use std::time::Duration;

use theia::api::v1;
use theia::api::v1::agent_message::Body as FromAgent;
use theia::api::v1::agent_service_server::{AgentService, AgentServiceServer};
use theia::api::v1::manager_message::Body as ToAgent;
use theia::model::Resources;
use theia_agent::driver::{Assignment, Driver, StaticDriver};
use theia_agent::{AgentConfig, DriverConfig, run};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// How long any expected message may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// One stream an agent opened, seen from the manager's side.
struct Conn {
    inbound: Streaming<v1::AgentMessage>,
    out: mpsc::Sender<Result<v1::ManagerMessage, Status>>,
    heartbeats: Vec<u64>,
}

impl Conn {
    async fn next_any(&mut self) -> Option<FromAgent> {
        let msg = tokio::time::timeout(PATIENCE, self.inbound.message())
            .await
            .expect("the agent speaks in time")
            .expect("the stream is healthy")?;
        Some(msg.body.expect("every agent message has a body"))
    }

    /// The next message that is not a heartbeat; heartbeats are recorded.
    async fn next(&mut self) -> FromAgent {
        loop {
            match self.next_any().await.expect("the stream is open") {
                FromAgent::Heartbeat(h) => self.heartbeats.push(h.sequence),
                other => return other,
            }
        }
    }

    async fn next_heartbeat(&mut self) -> u64 {
        loop {
            if let FromAgent::Heartbeat(h) = self.next_any().await.expect("the stream is open") {
                self.heartbeats.push(h.sequence);
                return h.sequence;
            }
        }
    }

    async fn report(&mut self) -> v1::Report {
        match self.next().await {
            FromAgent::Report(r) => r,
            other => panic!("expected a Report, got {other:?}"),
        }
    }

    async fn result(&mut self) -> v1::AssignmentResult {
        match self.next().await {
            FromAgent::Result(r) => r,
            other => panic!("expected an AssignmentResult, got {other:?}"),
        }
    }

    async fn send(&self, body: ToAgent) {
        self.out
            .send(Ok(v1::ManagerMessage { body: Some(body) }))
            .await
            .expect("the agent's stream is open");
    }
}

#[derive(Clone)]
struct Scripted {
    conns: mpsc::UnboundedSender<Conn>,
}

#[tonic::async_trait]
impl AgentService for Scripted {
    type ConnectStream = ReceiverStream<Result<v1::ManagerMessage, Status>>;

    async fn connect(
        &self,
        req: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let (out, rx) = mpsc::channel(64);
        let conn = Conn {
            inbound: req.into_inner(),
            out,
            heartbeats: Vec::new(),
        };
        self.conns
            .send(conn)
            .map_err(|_| Status::unavailable("test over"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A scripted manager on 127.0.0.1; its streams arrive on the receiver.
async fn scripted_manager() -> (String, mpsc::UnboundedReceiver<Conn>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::new(Scripted { conns: tx }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, rx)
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

async fn next_conn(conns: &mut mpsc::UnboundedReceiver<Conn>) -> Conn {
    tokio::time::timeout(PATIENCE, conns.recv())
        .await
        .expect("the agent connects in time")
        .expect("the server runs")
}

fn assignment(claim: &str, vcpu: u64) -> v1::Assignment {
    v1::Assignment {
        claim_id: claim.into(),
        tenant: "acme".into(),
        resources: [("compute.vcpu".to_owned(), vcpu)].into(),
    }
}

fn free_vcpu(report: &v1::Report) -> u64 {
    let item = report
        .inventory
        .iter()
        .find(|i| i.class == "compute.vcpu")
        .expect("vcpu reported");
    assert_eq!(item.total, 16);
    item.free
}

fn welcome() -> ToAgent {
    ToAgent::Welcome(v1::Welcome {
        manager_id: "m-test".into(),
        heartbeat_interval_ms: 50,
        report_interval_ms: 60_000,
        cluster_id: "k-test".into(),
    })
}

fn assert_result(r: &v1::AssignmentResult, claim: &str, action: v1::AssignmentAction, ok: bool) {
    assert_eq!(r.claim_id, claim, "{r:?}");
    assert_eq!(r.action, action as i32, "{r:?}");
    assert_eq!(r.ok, ok, "{r:?}");
}

#[tokio::test]
async fn speaks_the_protocol_fails_over_and_stops_cleanly() {
    let (url, mut conns) = scripted_manager().await;
    let state = tempfile::tempdir().unwrap();
    let inventory = Resources::parse_list("inventory", "compute.vcpu=16").unwrap();
    {
        // What a previous run of the agent left behind.
        let mut before = StaticDriver::open(inventory.clone(), state.path()).unwrap();
        for (claim, vcpu) in [("held", 2), ("stale", 1)] {
            let a = Assignment::try_from(assignment(claim, vcpu)).unwrap();
            before.apply(&a).unwrap();
        }
    }
    let config = AgentConfig {
        // The dead manager comes first: the agent must move on to the live one.
        managers: vec![dead_url(), url],
        dc: "dc-1".into(),
        labels: [("region".to_owned(), "eu".to_owned())].into(),
        driver: DriverConfig::Static { inventory },
        state_dir: state.path().to_owned(),
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(40),
        ca: None,
        bearer: Default::default(),
        client_identity: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = tokio::spawn(run(config, async move {
        let _ = stopped.await;
    }));

    // Hello first, then a report at once, before any Welcome.
    let mut conn = next_conn(&mut conns).await;
    let FromAgent::Hello(hello) = conn.next().await else {
        panic!("the first message must be a Hello");
    };
    assert_eq!(hello.datacenter, "dc-1");
    assert_eq!(hello.driver, "static");
    assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(hello.labels.get("region").map(String::as_str), Some("eu"));
    let first = conn.report().await;
    assert_eq!(free_vcpu(&first), 13);

    // The full desired set: stale goes, held is confirmed, new is applied.
    conn.send(welcome()).await;
    conn.send(ToAgent::Desired(v1::DesiredState {
        assignments: vec![assignment("new", 4), assignment("held", 2)],
    }))
    .await;
    use v1::AssignmentAction::{Apply, Release};
    assert_result(&conn.result().await, "stale", Release, true);
    assert_result(&conn.result().await, "new", Apply, true);
    assert_result(&conn.result().await, "held", Apply, true);
    let converged = conn.report().await;
    assert!(converged.sequence > first.sequence);
    assert_eq!(free_vcpu(&converged), 10);

    // Heartbeats at the Welcome's pace, numbered upwards.
    let h1 = conn.next_heartbeat().await;
    let h2 = conn.next_heartbeat().await;
    assert!(h2 > h1);

    // Too much is refused with the reason; free does not change.
    conn.send(ToAgent::Assign(assignment("big", 100))).await;
    let refused = conn.result().await;
    assert_result(&refused, "big", Apply, false);
    assert!(
        refused
            .error
            .contains("compute.vcpu: needs 100 but only 10 of 16"),
        "{}",
        refused.error
    );
    assert_eq!(free_vcpu(&conn.report().await), 10);

    conn.send(ToAgent::Release(v1::Release {
        claim_id: "new".into(),
    }))
    .await;
    assert_result(&conn.result().await, "new", Release, true);
    let released = conn.report().await;
    assert_eq!(free_vcpu(&released), 14);
    let last_heartbeat = *conn.heartbeats.last().expect("heartbeats seen");

    // The manager goes away: the agent tries the dead one, then comes back.
    drop(conn);
    let mut conn = next_conn(&mut conns).await;
    assert!(matches!(conn.next().await, FromAgent::Hello(_)));
    let again = conn.report().await;
    assert!(
        again.sequence > released.sequence,
        "report sequence keeps rising across reconnects"
    );
    assert_eq!(free_vcpu(&again), 14);
    conn.send(welcome()).await;
    assert!(conn.next_heartbeat().await > last_heartbeat);
    conn.send(ToAgent::Desired(v1::DesiredState {
        assignments: vec![],
    }))
    .await;
    assert_result(&conn.result().await, "held", Release, true);
    assert_eq!(free_vcpu(&conn.report().await), 16);

    // Stopping half-closes the stream (a clean end for the manager) and
    // returns Ok.
    stop.send(()).unwrap();
    loop {
        match conn.next_any().await {
            None => break,
            Some(FromAgent::Heartbeat(_)) => continue,
            Some(other) => panic!("unexpected {other:?} while stopping"),
        }
    }
    tokio::time::timeout(PATIENCE, agent)
        .await
        .expect("the agent stops in time")
        .expect("the agent task")
        .expect("the agent ran cleanly");
    assert!(
        theia_agent::driver::read_state(state.path())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn stops_promptly_while_waiting_to_reconnect() {
    let state = tempfile::tempdir().unwrap();
    let config = AgentConfig {
        managers: vec![dead_url()],
        dc: "dc-1".into(),
        labels: Default::default(),
        driver: DriverConfig::Static {
            inventory: Resources::parse_list("inventory", "compute.vcpu=1").unwrap(),
        },
        state_dir: state.path().to_owned(),
        reconnect_min: Duration::from_secs(3600),
        reconnect_max: Duration::from_secs(3600),
        ca: None,
        bearer: Default::default(),
        client_identity: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let start = tokio::time::Instant::now();
    let agent = tokio::spawn(run(config, async move {
        let _ = stopped.await;
    }));
    // Long enough to have failed to connect and be in the backoff, which is
    // at least half an hour.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        !agent.is_finished(),
        "an unreachable manager is no reason to stop"
    );
    stop.send(()).unwrap();
    agent.await.unwrap().expect("the agent ran cleanly");
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "stopped after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_unusable_state_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let config = AgentConfig {
        managers: vec![dead_url()],
        dc: "dc-1".into(),
        labels: Default::default(),
        driver: DriverConfig::Host,
        state_dir: file.join("state"),
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(10),
        ca: None,
        bearer: Default::default(),
        client_identity: None,
    };
    let e = run(config, std::future::pending()).await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("host driver") && text.contains("file/state"),
        "{text}"
    );
}
