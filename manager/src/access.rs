//! The gate in front of every service: it reads the bearer token, checks it
//! against the directory and the authorization table, and hands the
//! principal to the handler. A call the table does not name is refused.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use theia::access::{Directory, Principal, Rule, rule};
use theia::state::Books;
use tonic::Status;
use tonic::codegen::{BoxFuture, http};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::audit::{ANONYMOUS, Call, RequestId, Trail};
use crate::ledger::wall_ms;

/// The directory calls are checked against, replaced whole whenever a
/// token or tenant changes (rare), read without waiting on the ledger.
#[derive(Debug, Default)]
pub struct DirectoryCell(RwLock<Arc<Directory>>);

impl DirectoryCell {
    /// A cell holding the directory of `books`.
    pub fn new(books: &Books) -> Self {
        Self(RwLock::new(Arc::new(Directory::of(books))))
    }

    /// The directory now.
    pub fn get(&self) -> Arc<Directory> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Derives the directory from `books` again.
    pub fn refresh(&self, books: &Books) {
        let fresh = Arc::new(Directory::of(books));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}

/// How many calls each principal may make: a token bucket per token id.
type Limiter = governor::DefaultKeyedRateLimiter<String>;

/// Builds [`Gate`]s around services.
#[derive(Clone)]
pub struct GateLayer {
    directory: Arc<DirectoryCell>,
    limiter: Option<Arc<Limiter>>,
    trail: Arc<Trail>,
}

impl GateLayer {
    /// A layer checking calls against `directory`, each principal allowed
    /// `rate` calls a second in bursts of as many (no limit without one),
    /// recording refusals in `trail`.
    pub fn new(
        directory: Arc<DirectoryCell>,
        rate: Option<std::num::NonZeroU32>,
        trail: Arc<Trail>,
    ) -> Self {
        let limiter = rate.map(|r| Arc::new(Limiter::keyed(governor::Quota::per_second(r))));
        Self {
            directory,
            limiter,
            trail,
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            directory: self.directory.clone(),
            limiter: self.limiter.clone(),
            trail: self.trail.clone(),
        }
    }
}

/// Authenticates and authorizes every call before `S` sees it.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    directory: Arc<DirectoryCell>,
    limiter: Option<Arc<Limiter>>,
    trail: Arc<Trail>,
}

/// The audit trail's record of a call refused with `status`.
fn denial(path: &str, status: &Status) -> theia::audit::Draft {
    theia::audit::Draft::ok("call.deny", "method", path)
        .code(status.code() as u32)
        .message(status.message())
}

/// Refuses a call of `principal` beyond its rate.
fn within_rate(limiter: Option<&Limiter>, principal: &Principal) -> Result<(), Status> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    let key = if principal.by_certificate() {
        &principal.subject
    } else {
        &principal.token_id
    };
    limiter.check_key(key).map_err(|not_until| {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Status::resource_exhausted(format!(
            "this token is over its rate limit ({} calls/s); retry in {} ms",
            not_until.quota().burst_size(),
            wait.as_millis().max(1)
        ))
    })
}

/// The DNS names of the client certificate the TLS handshake verified
/// against `client_ca`, if the caller presented one.
fn certificate_names<B>(req: &http::Request<B>) -> Vec<String> {
    let Some(info) = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>() else {
        return Vec::new();
    };
    let Some(chain) = info.peer_certs() else {
        return Vec::new();
    };
    let Some(leaf) = chain.first() else {
        return Vec::new();
    };
    let der = rustls::pki_types::CertificateDer::from(leaf.as_ref().to_vec());
    match webpki::EndEntityCert::try_from(&der) {
        Ok(cert) => cert.valid_dns_names().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Who a call at `path` with `authorization` (or, without one, a client
/// certificate naming `certified`) acts as: `None` for public calls, a
/// status for refused ones, with the subject of the credentials presented
/// when they were valid.
fn admit(
    directory: &Directory,
    path: &str,
    authorization: Option<&str>,
    certified: &[String],
) -> Result<Option<Principal>, (Status, Option<String>)> {
    let Some(rule) = rule(path) else {
        return Err((
            Status::unimplemented(format!(
                "{} is not a method theia serves",
                theia::model::quoted(path)
            )),
            None,
        ));
    };
    if rule == Rule::Public {
        return Ok(None);
    }
    let names: Vec<&str> = certified.iter().map(String::as_str).collect();
    let principal = match (authorization, Principal::certified(&names)) {
        (None, Some(by_certificate)) => by_certificate,
        _ => directory
            .authenticate(authorization, wall_ms())
            .map_err(|e| (Status::unauthenticated(e.to_string()), None))?,
    };
    if !principal.may(rule) {
        let roles: Vec<String> = principal.roles.iter().map(ToString::to_string).collect();
        let held = if roles.is_empty() && principal.tenants.is_empty() {
            "no role".to_owned()
        } else if roles.is_empty() {
            "tenant access".to_owned()
        } else {
            roles.join(", ")
        };
        let Rule::Roles(kinds) = rule else {
            unreachable!("public and authenticated calls are allowed to every token")
        };
        let needed: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        tracing::info!(subject = %principal.subject.escape_debug(), token = %principal.token_id, method = path, "call refused: the token lacks the role");
        return Err((
            Status::permission_denied(format!(
                "{path} needs one of the roles {}; this token ({}) has {held}",
                needed.join(", "),
                principal.subject.escape_debug(),
            )),
            Some(principal.subject.clone()),
        ));
    }
    Ok(Some(principal))
}

impl<S, B> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("?"));
        let certified = if authorization.is_none() {
            certificate_names(&req)
        } else {
            Vec::new()
        };
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let path = req.uri().path().to_owned();
        match admit(&self.directory.get(), &path, authorization, &certified) {
            Ok(principal) => {
                let actor = match &principal {
                    Some(p) => p.subject.clone(),
                    None => ANONYMOUS.to_owned(),
                };
                if let Some(principal) = principal {
                    tracing::Span::current()
                        .record("caller", principal.subject.escape_debug().to_string());
                    if let Err(status) = within_rate(self.limiter.as_deref(), &principal) {
                        self.trail
                            .refused(denial(&path, &status), Call { actor, request_id });
                        let response = status.into_http();
                        return Box::pin(async move { Ok(response) });
                    }
                    req.extensions_mut().insert(principal);
                }
                // The ready clone serves this call; a fresh one waits for the next.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                let call = Call { actor, request_id };
                Box::pin(crate::audit::serve(call, ready.call(req)))
            }
            Err((status, subject)) => {
                let actor = subject.unwrap_or_else(|| ANONYMOUS.to_owned());
                self.trail
                    .refused(denial(&path, &status), Call { actor, request_id });
                let response = status.into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// The principal the gate found for a call.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("this call was not authenticated"))
}
