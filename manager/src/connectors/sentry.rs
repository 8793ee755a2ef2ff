//! Sentry: errors (every `error`-level log line, with the lines before it
//! as breadcrumbs) and panics, through the official `sentry` crate, sent
//! by a transport of the manager's own over rustls (the crate's transports
//! bring reqwest and native-tls).
//!
//! Envelopes wait in a bounded queue for a thread of their own, so a slow
//! or dead Sentry never slows the manager; what does not fit, or could not
//! be sent after a few tries, is counted as left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use hyper::Uri;
use sentry::{ClientInitGuard, ClientOptions, Envelope, Transport};

use super::Stats;
use super::http::{PostError, post};

/// Envelopes that may wait, at most.
const QUEUE: usize = 100;
/// Tries per envelope.
const TRIES: u32 = 3;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the Sentry connector did, for the metrics.
pub static STATS: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);

/// Starts reporting to the Sentry of `dsn`; reporting lasts as long as the
/// guard. Refuses a DSN that is not one.
pub fn init(dsn: &str) -> Result<ClientInitGuard, String> {
    let parsed: sentry::types::Dsn = dsn
        .parse()
        .map_err(|e| format!("{dsn:?} is not a Sentry DSN: {e}"))?;
    let transport = Arc::new(Envelopes::start(&parsed)?);
    let mut options = ClientOptions::default();
    options.dsn = Some(parsed);
    options.release = Some(concat!("theia-manager@", env!("CARGO_PKG_VERSION")).into());
    options.transport = Some(Arc::new(transport));
    Ok(sentry::init(options))
}

/// Posts envelopes from a queue, on a thread of its own.
struct Envelopes {
    queue: SyncSender<Vec<u8>>,
    pending: Arc<AtomicU64>,
}

impl Envelopes {
    fn start(dsn: &sentry::types::Dsn) -> Result<Self, String> {
        let url: Uri = dsn
            .envelope_api_url()
            .as_str()
            .parse()
            .map_err(|e| format!("the DSN's envelope URL is unusable: {e}"))?;
        let auth = dsn
            .to_auth(Some(concat!("theia-manager/", env!("CARGO_PKG_VERSION"))))
            .to_string();
        let (queue, intake) = sync_channel(QUEUE);
        let pending = Arc::new(AtomicU64::new(0));
        let left = pending.clone();
        std::thread::Builder::new()
            .name("sentry".into())
            .spawn(move || send_all(&url, &auth, &intake, &left))
            .map_err(|e| format!("cannot start the Sentry thread: {e}"))?;
        Ok(Self { queue, pending })
    }
}

/// Sends each envelope of `intake`, tried a few times.
fn send_all(url: &Uri, auth: &str, intake: &Receiver<Vec<u8>>, pending: &AtomicU64) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let headers = [
        ("content-type", "application/x-sentry-envelope".to_owned()),
        ("x-sentry-auth", auth.to_owned()),
    ];
    while let Ok(body) = intake.recv() {
        let mut tries = 0;
        let sent = loop {
            tries += 1;
            match runtime.block_on(post(url, &headers, body.clone(), POST_TIMEOUT)) {
                Ok(()) => break true,
                Err(PostError::Retry(_)) if tries < TRIES => {
                    std::thread::sleep(Duration::from_millis(500 * u64::from(tries)));
                }
                Err(_) => break false,
            }
        };
        if sent {
            STATS.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            STATS.drop_some(1);
        }
        pending.fetch_sub(1, Ordering::Relaxed);
        STATS
            .queued
            .store(pending.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

impl Transport for Envelopes {
    fn send_envelope(&self, envelope: Envelope) {
        let mut body = Vec::new();
        if envelope.to_writer(&mut body).is_err() {
            STATS.drop_some(1);
            return;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                STATS.drop_some(1);
            }
        }
        STATS
            .queued
            .store(self.pending.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn flush(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.pending.load(Ordering::Relaxed) > 0 {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}
