//! The end-to-end harness: real managers and agents started in this process
//! on 127.0.0.1:0 with their own temp dirs, real theia binaries, and polling
//! helpers bounded in time.
#![allow(dead_code)]

mod hand_agent;
mod pki;
mod raw;
mod receiver;
pub use hand_agent::HandAgent;
pub use pki::TestPki;
pub use raw::raw_unary;
pub use receiver::{Receiver, Silent, http_get};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use theia::api::auth::{Authed, Bearer, authed};
use theia::api::v1;
use theia::model::{Labels, Resources};
use theia_agent::{AgentConfig, DriverConfig};
use theia_manager::{Manager, ManagerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

/// How long any condition may take to come true before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The admin token of every manager this test process started, by its
/// address (`127.0.0.1:port`): what clients, agents and CLI runs present.
static ADMIN_TOKENS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Remembers `token` as the admin token of the manager at `addr`.
pub fn remember_admin_token(addr: &str, token: &str) {
    let mut tokens = ADMIN_TOKENS.lock().unwrap();
    tokens.retain(|(a, _)| a != addr);
    tokens.push((addr.to_owned(), token.to_owned()));
}

/// The admin token of the manager at `addr` (`127.0.0.1:port`, or a URL).
pub fn admin_token(addr: &str) -> String {
    let addr = addr
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    ADMIN_TOKENS
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _)| a == addr)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("no manager of this test listens on {addr}"))
}

/// Remembers the admin token the manager process at `addr` wrote into
/// `data_dir` at its first start.
pub fn remember_process_token(addr: &str, data_dir: &Path) {
    remember_admin_token(addr, &read_admin_token(&data_dir.join("admin.token")));
}

/// Makes a token with `role` for `subject` through the `theia` CLI, as the
/// admin of the manager at `addr` would.
pub fn cli_token(addr: &str, subject: &str, role: &str) -> String {
    let theia = bin_dir().join("theia");
    let (ok, out, err) = run(
        &theia,
        &[
            "token",
            "create",
            "--subject",
            subject,
            "--role",
            role,
            "--output",
            "json",
        ],
        addr,
    );
    assert!(ok, "theia token create failed: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    json["secret"].as_str().expect("a secret").to_owned()
}

/// Reads the admin token a manager wrote at its first start.
pub fn read_admin_token(path: &Path) -> String {
    theia::api::auth::read_token_file(path).unwrap_or_else(|e| panic!("admin token: {e}"))
}

/// `channel` presenting `token`.
pub fn with_token(channel: Channel, token: &str) -> Authed {
    authed(
        channel,
        Bearer::new(Some(token)).expect("a well-formed token"),
    )
}

/// Makes a token with `roles` for `subject` on the manager at `addr`, as
/// its admin.
pub async fn make_token(addr: &str, subject: &str, roles: &[&str]) -> String {
    let channel = with_token(plain_channel(addr).await, &admin_token(addr));
    v1::access_service_client::AccessServiceClient::new(channel)
        .create_token(v1::CreateTokenRequest {
            subject: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("the admin makes a token")
        .into_inner()
        .secret
}

/// A channel to the manager at `addr` for the agent of `dc` (its token
/// made, which registers the datacenter).
pub async fn agent_channel(addr: &str, dc: &str) -> Authed {
    let token = make_token(addr, &format!("agent-{dc}"), &[&format!("agent:{dc}")]).await;
    with_token(plain_channel(addr).await, &token)
}

/// Installs ring as the one crypto provider; every test calls this first.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Liveness settings short enough for tests, yet with room for a loaded
/// machine: a heartbeat 30 times late is needed to call a datacenter down.
pub fn fast(config: &mut ManagerConfig) {
    config.heartbeat_interval = Duration::from_millis(100);
    config.report_interval = Duration::from_millis(200);
    config.liveness.suspect_after = Duration::from_millis(1000);
    config.liveness.down_after = Duration::from_millis(3000);
}

/// The real `theia-manager` binary on `redis`, in a process of its own (so
/// that it can be killed with SIGKILL), listening on `addr` with its data in
/// `dir` and [`fast`] liveness settings; returns once it serves.
pub fn manager_process(dir: &Path, addr: &str, redis: &TestRedis, secret: &str) -> Child {
    let token_file = redis.admin_token_file();
    let (child, _) = spawn_until(
        &bin_dir().join("theia-manager"),
        &[
            "--listen",
            addr,
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "--redis",
            &redis.url(),
            "--secret",
            secret,
            "--heartbeat-interval",
            "100ms",
            "--report-interval",
            "200ms",
            "--suspect-after",
            "1s",
            "--down-after",
            "3s",
            "--insecure",
            "--bootstrap-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
        "serving",
    );
    remember_admin_token(addr, &read_admin_token(&token_file));
    child
}

/// A channel to a manager at `addr` (`127.0.0.1:port`) with its admin
/// token, reconnecting by itself when the manager comes back.
pub async fn channel_to(addr: &str) -> Authed {
    with_token(plain_channel(addr).await, &admin_token(addr))
}

/// A channel to a manager at `addr`, presenting no token.
pub async fn plain_channel(addr: &str) -> Channel {
    let addr = addr.trim_start_matches("http://");
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("address")
        .connect()
        .await
        .expect("manager answers")
}

/// A test-fast manager config in `dir` on 127.0.0.1:0 without a rate
/// limit, for tests that make many calls with one token.
pub fn unlimited_config(dir: &Path) -> ManagerConfig {
    let mut config = fast_config(dir);
    config.rate_limit = None;
    config
}

/// A test-fast manager config in `dir` on 127.0.0.1:0.
pub fn fast_config(dir: &Path) -> ManagerConfig {
    let mut config = ManagerConfig::for_dir(dir, "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config
}

/// A manager running in this process.
pub struct TestManager {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its admin token.
    pub token: String,
    /// Where it serves Prometheus metrics, when it does.
    pub metrics: Option<std::net::SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestManager {
    /// Starts a manager on 127.0.0.1:0 with its store in `dir`.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(fast_config(dir)).await
    }

    /// Starts a manager with `config` (its listen address should be port 0).
    pub async fn start_with(config: ManagerConfig) -> Self {
        // After a kill, the old manager's tasks may take a moment to let go
        // of the store, as a dying process would.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let manager = loop {
            match Manager::bind(config.clone()).await {
                Ok(m) => break m,
                Err(e)
                    if e.to_string().contains("already open")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("manager binds: {e:#}"),
            }
        };
        let addr = manager.local_addr();
        let metrics = manager.metrics_addr();
        let token = read_admin_token(&manager.bootstrap_token_path());
        remember_admin_token(&addr.to_string(), &token);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(manager.serve(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            token,
            metrics,
            shutdown: Some(tx),
            task,
        }
    }

    /// `http://addr`, as agents and clients dial it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel to its API, as its admin.
    pub async fn channel(&self) -> Authed {
        with_token(self.plain_channel().await, &self.token)
    }

    /// A channel to its API presenting no token.
    pub async fn plain_channel(&self) -> Channel {
        plain_channel(&self.addr.to_string()).await
    }

    /// A channel as the agent of `dc` (its token made and the datacenter
    /// registered).
    pub async fn agent_channel(&self, dc: &str) -> Authed {
        agent_channel(&self.addr.to_string(), dc).await
    }

    /// A channel presenting a new token for `subject` with `roles`.
    pub async fn channel_as(&self, subject: &str, roles: &[&str]) -> Authed {
        let token = make_token(&self.addr.to_string(), subject, roles).await;
        with_token(self.plain_channel().await, &token)
    }

    /// Stops it gracefully and waits until its store is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("manager stops in time");
        result.expect("manager task").expect("manager ran cleanly");
    }

    /// Kills it: the task is aborted mid-flight, nothing is flushed.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// An agent with the static driver running in this process.
pub struct TestAgent {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Where its driver keeps applied assignments.
    pub state_dir: PathBuf,
}

impl TestAgent {
    /// Starts an agent for `dc` with `inventory` (e.g. `compute.vcpu=16`).
    pub fn start(
        managers: Vec<String>,
        dc: &str,
        labels: &[(&str, &str)],
        inventory: &str,
        state_dir: PathBuf,
    ) -> Self {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = AgentConfig {
            managers,
            dc: dc.to_owned(),
            labels,
            driver: DriverConfig::Static {
                inventory: Resources::parse_list("inventory", inventory).unwrap(),
            },
            state_dir: state_dir.clone(),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(500),
            ca: None,
            bearer: Bearer::default(),
            client_identity: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        // The agent's token is made by the first manager's admin, as an
        // operator would before starting it.
        let first = config.managers[0].clone();
        let task = tokio::spawn(async move {
            let token = make_token(
                &first,
                &format!("agent-{}", config.dc),
                &[&format!("agent:{}", config.dc)],
            )
            .await;
            let config = AgentConfig {
                bearer: Bearer::new(Some(&token)).expect("a well-formed token"),
                ..config
            };
            theia_agent::run(config, async move {
                let _ = rx.await;
            })
            .await
        });
        Self {
            shutdown: Some(tx),
            task,
            state_dir,
        }
    }

    /// Stops it and waits until it is gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("agent stops in time");
        result.expect("agent task").expect("agent ran cleanly");
    }

    /// The claim ids its driver holds, from its state.
    pub fn held(&self) -> Vec<String> {
        theia_agent::driver::read_state(&self.state_dir)
            .expect("the agent's state reads")
            .into_keys()
            .collect()
    }

    /// Waits for it to stop by itself, and says why it did.
    pub async fn failure(mut self) -> String {
        let result = tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("agent stops in time");
        match result.expect("agent task") {
            Ok(()) => panic!("the agent ran cleanly"),
            Err(e) => format!("{e:#}"),
        }
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// API clients on one channel.
#[derive(Clone)]
pub struct Clients {
    /// InfrastructureService.
    pub infra: v1::infrastructure_service_client::InfrastructureServiceClient<Authed>,
    /// TenantService.
    pub tenants: v1::tenant_service_client::TenantServiceClient<Authed>,
    /// ProfileService.
    pub profiles: v1::profile_service_client::ProfileServiceClient<Authed>,
    /// ClaimService.
    pub claims: v1::claim_service_client::ClaimServiceClient<Authed>,
    /// ClusterService.
    pub cluster: v1::cluster_service_client::ClusterServiceClient<Authed>,
}

impl Clients {
    /// Clients for the manager behind `channel`.
    pub fn new(channel: Authed) -> Self {
        Self {
            infra: v1::infrastructure_service_client::InfrastructureServiceClient::new(
                channel.clone(),
            ),
            tenants: v1::tenant_service_client::TenantServiceClient::new(channel.clone()),
            profiles: v1::profile_service_client::ProfileServiceClient::new(channel.clone()),
            claims: v1::claim_service_client::ClaimServiceClient::new(channel.clone()),
            cluster: v1::cluster_service_client::ClusterServiceClient::new(channel),
        }
    }

    /// A datacenter, if the manager knows it.
    pub async fn dc(&mut self, id: &str) -> Option<v1::Datacenter> {
        self.infra
            .get_datacenter(v1::GetDatacenterRequest { id: id.into() })
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// Waits until datacenter `id` has `liveness`; fails the test after [`PATIENCE`].
    pub async fn wait_liveness(&self, id: &str, liveness: v1::Liveness) -> v1::Datacenter {
        let what = format!("{id} is {}", liveness.as_str_name());
        eventually(&what, || {
            let mut api = self.clone();
            async move { api.dc(id).await.filter(|d| d.liveness == liveness as i32) }
        })
        .await
    }

    /// Waits until datacenter `id` has reported its inventory.
    pub async fn wait_reported(&self, id: &str) -> v1::Datacenter {
        eventually(&format!("{id} reports"), || {
            let mut api = self.clone();
            async move { api.dc(id).await.filter(|d| !d.capacity.is_empty()) }
        })
        .await
    }

    /// Waits until claim `id` is in `state`.
    pub async fn wait_state(&self, id: &str, state: v1::ClaimState) -> v1::Claim {
        eventually(&format!("{id} is {}", state.as_str_name()), || {
            let mut api = self.clone();
            async move { Some(api.claim(id).await).filter(|c| c.state == state as i32) }
        })
        .await
    }

    /// The names of every tenant (one page).
    pub async fn tenant_names(&mut self) -> Vec<String> {
        self.tenants
            .list_tenants(v1::ListTenantsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("list tenants")
            .into_inner()
            .tenants
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    /// Waits until datacenter `id` shows `total` of `class`: its report was
    /// taken (reports are taken apart from heartbeats, in their own order).
    pub async fn wait_total(&self, id: &str, class: &str, total: &str) -> v1::Datacenter {
        let what = format!("{id} reports {total} {class}");
        eventually(&what, || {
            let mut api = self.clone();
            async move {
                api.dc(id).await.filter(|d| {
                    d.capacity
                        .iter()
                        .any(|c| c.class == class && c.total == total)
                })
            }
        })
        .await
    }

    /// Every claim, once none is still waiting for its agents to confirm:
    /// a snapshot that no agent result changes afterwards.
    pub async fn settled_claims(&self) -> Vec<v1::Claim> {
        eventually("every live claim is active", || {
            let mut api = self.clone();
            async move {
                let all = api.all_claims().await;
                all.iter()
                    .all(|c| c.state != v1::ClaimState::Placed as i32)
                    .then_some(all)
            }
        })
        .await
    }

    /// The id of the cluster this manager belongs to.
    pub async fn cluster_id(&mut self) -> String {
        self.cluster
            .get_cluster_status(v1::GetClusterStatusRequest {})
            .await
            .expect("cluster status")
            .into_inner()
            .cluster_id
    }

    /// Creates tenant `name` with `quota` (`[("compute.vcpu", "12")]`); panics if refused.
    pub async fn create_tenant(&mut self, name: &str, quota: &[(&str, &str)]) {
        let tenant = v1::Tenant {
            name: name.into(),
            quota: map(quota),
            ..Default::default()
        };
        let req = v1::CreateTenantRequest {
            tenant: Some(tenant),
        };
        self.tenants
            .create_tenant(req)
            .await
            .expect("tenant created");
    }

    /// Creates profile `name` with `resources`; panics if refused.
    pub async fn create_profile(&mut self, name: &str, resources: &[(&str, &str)]) {
        let profile = v1::Profile {
            name: name.into(),
            resources: map(resources),
            ..Default::default()
        };
        let req = v1::CreateProfileRequest {
            profile: Some(profile),
        };
        self.profiles
            .create_profile(req)
            .await
            .expect("profile created");
    }

    /// Creates a claim.
    pub async fn create_claim(&mut self, spec: v1::ClaimSpec) -> Result<v1::Claim, tonic::Status> {
        let req = v1::CreateClaimRequest { spec: Some(spec) };
        self.claims
            .create_claim(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A claim by id.
    pub async fn claim(&mut self, id: &str) -> v1::Claim {
        self.claims
            .get_claim(v1::GetClaimRequest { id: id.into() })
            .await
            .expect("claim exists")
            .into_inner()
    }

    /// Every claim, released ones too, page after page.
    pub async fn all_claims(&mut self) -> Vec<v1::Claim> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = v1::ListClaimsRequest {
                include_released: true,
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let page = self
                .claims
                .list_claims(req)
                .await
                .expect("list claims")
                .into_inner();
            out.extend(page.claims);
            if page.next_page_token.is_empty() {
                return out;
            }
            page_token = page.next_page_token;
        }
    }
}

/// What must survive a restart unchanged, per claim: id, state and
/// placements (datacenter, units, applied), in id order.
pub type ClaimsSnapshot = Vec<(String, i32, Vec<(String, u32, bool)>)>;

/// The [`ClaimsSnapshot`] of `claims`.
pub fn claims_snapshot(claims: &[v1::Claim]) -> ClaimsSnapshot {
    let mut out: ClaimsSnapshot = claims
        .iter()
        .map(|c| {
            let placed = c.placements.iter();
            let placed = placed.map(|p| (p.datacenter.clone(), p.units, p.applied));
            (c.id.clone(), c.state, placed.collect())
        })
        .collect();
    out.sort();
    out
}

/// `k=v` pairs as a wire map.
pub fn map(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A claim spec of `count` units of `profile` for `tenant`.
pub fn spec(tenant: &str, profile: &str, count: u32) -> v1::ClaimSpec {
    v1::ClaimSpec {
        tenant: tenant.into(),
        profile: profile.into(),
        count,
        ..Default::default()
    }
}

/// The capacity row of `class` in a datacenter.
pub fn class<'a>(dc: &'a v1::Datacenter, class: &str) -> &'a v1::ClassCapacity {
    dc.capacity
        .iter()
        .find(|c| c.class == class)
        .unwrap_or_else(|| panic!("{} has no {class}", dc.id))
}

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-<hash> → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for bin in ["theia", "theia-manager", "theia-agent"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`, as scripts/test.sh does)",
            dir.join(bin).display()
        );
    }
    dir
}

/// The grpcurl on PATH; the test command installs it, a missing one fails the test.
pub fn grpcurl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("grpcurl"))
        .find(|p| p.is_file())
        .expect("grpcurl is not on PATH: run the tests with scripts/test.sh, which installs it")
}

/// A child process that is killed if the test ends early.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `program args` and waits until a line of its output (stdout or
/// stderr) contains `marker`; returns the child and the first
/// `127.0.0.1:<port>` address that appeared in its output.
pub fn spawn_until(program: &Path, args: &[&str], marker: &str) -> (Child, String) {
    let mut command = std::process::Command::new(program);
    command.args(args);
    spawn_command_until(command, marker)
}

/// Like [`spawn_until`], for a command the caller has set up (a shell line
/// from the README, with its own environment and directory).
pub fn spawn_command_until(mut command: std::process::Command, marker: &str) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .env("NO_COLOR", "1")
        .env_remove("THEIA_MANAGER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[child] {line}");
                let _ = tx.send(line);
            }
        });
    }
    let child = Child(child);
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut addr = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{} never printed {marker:?}", program.display()));
        if addr.is_none()
            && let Some(i) = line.find("127.0.0.1:")
        {
            let rest = &line[i + "127.0.0.1:".len()..];
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !port.is_empty() && port != "0" {
                addr = Some(format!("127.0.0.1:{port}"));
            }
        }
        if line.contains(marker)
            && let Some(addr) = addr
        {
            return (child, addr);
        }
    }
}

/// Runs a binary to completion: (success, stdout, stderr).
pub fn run(program: &Path, args: &[&str], manager: &str) -> (bool, String, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .env("THEIA_MANAGER", format!("http://{manager}"))
        .env("THEIA_TOKEN", admin_token(manager))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A real `redis-server` on a free loopback port, with its own directory,
/// the append-only file synced on every write (as theia needs it), killed
/// when dropped.
pub struct TestRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory (the append-only file lives here).
    pub dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl TestRedis {
    /// Starts one; fails the test when redis-server is missing (the test
    /// command installs it).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        redis.launch();
        redis
    }

    fn launch(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--maxmemory-policy", "noeviction", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run the tests with scripts/test.sh, which installs it");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the first manager on it writes its admin token, so that every
    /// manager of a test cluster knows it.
    pub fn admin_token_file(&self) -> PathBuf {
        self.dir.path().join("admin.token")
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli` against it and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills it as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again on the same port and directory: it
    /// comes back from its append-only file.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Every byte of its append-only files: what a dump of Redis shows.
    pub fn files(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in walk(self.dir.path()) {
            out.extend(std::fs::read(entry).unwrap_or_default());
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A manager config on `redis` with `secret` (64 hex characters), test-fast.
pub fn redis_config(dir: &Path, redis: &TestRedis, secret: &str) -> ManagerConfig {
    let mut config = ManagerConfig::for_dir(dir, "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.redis = Some(redis.url());
    config.secret = Some(theia_manager::Secret::from_hex(secret).unwrap());
    config.bootstrap_token_file = Some(redis.admin_token_file());
    config
}

/// Whether the variable `key` was set by cargo or nextest for this test
/// process, and is not part of a user's shell: left in a child's
/// environment, some of it (CARGO_MANIFEST_DIR) makes cargo rebuild.
pub fn injected_by_the_test_runner(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&key)
        || ["CARGO_PKG_", "CARGO_BIN_EXE_", "NEXTEST", "__NEXTEST"]
            .iter()
            .any(|p| key.starts_with(p))
}
