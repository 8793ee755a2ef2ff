//! Accepting connections so that strangers cannot starve the manager of
//! them: a bounded number of connections (below the process's descriptor
//! limit), and connections that never speak closed after a handshake
//! timeout, or sooner, oldest first, when a new one needs the room.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a new connection may stay silent before it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept back from connections: the store, logs, Redis.
const RESERVED_DESCRIPTORS: u64 = 64;
/// The most connections served at once, whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 16_384;

/// How many connections this process can hold: raises the soft limit on
/// open files to the hard one, then keeps some back.
pub fn connection_limit() -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = soft.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(MAX_CONNECTIONS)
}

/// A connection that has not sent a byte yet, as the acceptor sees it.
struct Silent {
    spoken: Arc<AtomicBool>,
    close: oneshot::Sender<()>,
}

/// Accepts on `listener` and yields guarded connections, at most `limit`
/// open at once; ends when the receiver is dropped.
pub fn guarded(listener: TcpListener, limit: usize) -> mpsc::Receiver<io::Result<Guarded>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let open = Arc::new(AtomicUsize::new(0));
        let mut silent: VecDeque<Silent> = VecDeque::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let stream = match stream {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a
                    // moment rather than spin, and keep serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            silent.retain(|s| !s.spoken.load(Ordering::Relaxed) && !s.close.is_closed());
            if open.load(Ordering::Relaxed) >= limit {
                // Make room by closing the oldest connection that never spoke.
                match silent.pop_front() {
                    Some(oldest) => {
                        let _ = oldest.close.send(());
                    }
                    None => {
                        tracing::warn!(
                            limit,
                            "connection limit reached; a new connection was refused"
                        );
                        drop(stream);
                        continue;
                    }
                }
            }
            let _ = stream.set_nodelay(true);
            let spoken = Arc::new(AtomicBool::new(false));
            let (close, closed) = oneshot::channel();
            silent.push_back(Silent {
                spoken: spoken.clone(),
                close,
            });
            open.fetch_add(1, Ordering::Relaxed);
            let guarded = Guarded {
                io: stream,
                spoken,
                closed: Some(closed),
                deadline: Box::pin(tokio::time::sleep(HANDSHAKE_TIMEOUT)),
                open: open.clone(),
            };
            if tx.send(Ok(guarded)).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A TCP connection that is closed if it stays silent too long or the
/// acceptor needs its room before it spoke.
pub struct Guarded {
    io: TcpStream,
    spoken: Arc<AtomicBool>,
    /// Resolves when the acceptor closes this connection for room; `None`
    /// once it resolved either way (a oneshot is polled to completion once).
    closed: Option<oneshot::Receiver<()>>,
    deadline: Pin<Box<Sleep>>,
    open: Arc<AtomicUsize>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.spoken.load(Ordering::Relaxed) {
            let mut evicted = false;
            if let Some(closed) = &mut this.closed
                && let Poll::Ready(outcome) = Pin::new(closed).poll(cx)
            {
                evicted = outcome.is_ok();
                this.closed = None;
            }
            if evicted || this.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection said nothing in time",
                )));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.spoken.store(true, Ordering::Relaxed);
        }
        read
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
