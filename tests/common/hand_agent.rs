//! An agent driven by hand over a real `AgentService.Connect` stream, to
//! send exactly the messages a test needs (reports out of order, lies).

use theia::api::auth::Authed;
use theia::api::v1;
use theia::api::v1::agent_message::Body as Out;
use theia::api::v1::manager_message::Body as In;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// One class of a report: (class, total, free, held).
pub type Item<'a> = (&'a str, u64, u64, Option<u64>);

/// A hand-driven agent stream.
pub struct HandAgent {
    tx: mpsc::Sender<v1::AgentMessage>,
    inbound: tonic::Streaming<v1::ManagerMessage>,
}

impl HandAgent {
    /// Connects as `dc`, saying Hello, on `channel` (with `dc`'s agent token).
    pub async fn connect(channel: Authed, dc: &str) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let hello = Out::Hello(v1::Hello {
            datacenter: dc.into(),
            version: "test".into(),
            driver: "hand".into(),
            ..Default::default()
        });
        tx.send(v1::AgentMessage { body: Some(hello) })
            .await
            .expect("queued");
        let inbound = v1::agent_service_client::AgentServiceClient::new(channel)
            .connect(ReceiverStream::new(rx))
            .await
            .expect("connected")
            .into_inner();
        Self { tx, inbound }
    }

    /// Sends one message.
    pub async fn send(&self, body: Out) {
        self.tx
            .send(v1::AgentMessage { body: Some(body) })
            .await
            .expect("stream open");
    }

    /// Sends report number `sequence` with `items`, then a heartbeat: once
    /// the heartbeat is taken, so was the report.
    pub async fn report(&self, sequence: u64, items: &[Item<'_>]) {
        let inventory = items
            .iter()
            .map(|(class, total, free, held)| v1::InventoryItem {
                class: (*class).into(),
                total: *total,
                free: *free,
                held: *held,
            })
            .collect();
        self.send(Out::Report(v1::Report {
            sequence,
            inventory,
        }))
        .await;
        self.send(Out::Heartbeat(v1::Heartbeat { sequence })).await;
    }

    /// How the stream ends: skips messages until the manager ends it with
    /// an error (or panics if it ends cleanly).
    pub async fn next_error(&mut self) -> tonic::Status {
        loop {
            match self.inbound.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    }

    /// The next assignment the manager sends.
    pub async fn next_assign(&mut self) -> v1::Assignment {
        loop {
            let msg = self.inbound.message().await.expect("stream").expect("open");
            if let Some(In::Assign(a)) = msg.body {
                return a;
            }
        }
    }
}
