//! `theia dev`: a manager and one local agent (host driver) in this process,
//! on the embedded store, so a newcomer sees the whole system with one
//! command. Runs until Ctrl-C or SIGTERM, then stops the agent, then the
//! manager.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use theia::api::v1;
use theia::config::{Config, ConfigError, Source};
use theia_agent::{AgentConfig, DriverConfig};
use theia_manager::{Manager, ManagerConfig};
use tokio::sync::oneshot;

use crate::args::DevArgs;
use crate::client::Client;
use crate::error::CliError;
use crate::output::print_text;
use theia::access::Role;
use theia::api::auth::Bearer;

/// The local agent's datacenter id.
pub const LOCAL_DC: &str = "local";
/// How long to wait for the local agent to register before printing the banner anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the parts get to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The default manager URL, for which the banner needs no `export`.
const DEFAULT_MANAGER: &str = "http://127.0.0.1:7070";

/// Runs `theia dev`.
pub async fn run(config: &Config, args: DevArgs) -> Result<(), CliError> {
    init_logging(config)?;
    let data = DataDir::open(args.data_dir)?;
    let manager_config = ManagerConfig::for_dir(data.path().join("manager"), args.listen);
    let manager = Manager::bind(manager_config)
        .await
        .map_err(|e| bind_error(&e, args.listen))?;
    let addr = manager.local_addr();
    let url = format!("http://{}", reachable(addr));
    let tokens = Tokens::prepare(&manager, data.path()).await?;

    let agent_config = agent_config(&url, data.path(), &tokens.agent)?;

    // Both parts run on this task (no spawn): neither future needs to be
    // Send, and stopping them in order is a plain state machine.
    let (manager_stop, manager_stopped) = oneshot::channel::<()>();
    let manager_run = manager.serve(async move {
        let _ = manager_stopped.await;
    });
    let (agent_stop, agent_stopped) = oneshot::channel::<()>();
    let agent_run = theia_agent::run(agent_config, async move {
        let _ = agent_stopped.await;
    });
    let ready = tokio::time::timeout(READY_TIMEOUT, wait_for_local_dc(&url, &tokens.admin));
    let signal = shutdown_signal();
    let stop_timer = tokio::time::sleep(Duration::from_secs(365 * 86_400));
    tokio::pin!(manager_run, agent_run, ready, signal, stop_timer);

    let mut parts = Parts {
        manager_stop: Some(manager_stop),
        agent_stop: Some(agent_stop),
        ..Parts::default()
    };
    let mut banner_shown = false;
    while parts.manager_done.is_none() || parts.agent_done.is_none() {
        tokio::select! {
            r = &mut ready, if !banner_shown && !parts.stopping => {
                banner_shown = true;
                print_text(&banner(addr, &url, &data, r.is_ok(), path_hint(), &tokens))?;
            }
            () = &mut signal => {
                if parts.stopping {
                    parts.failure.get_or_insert(CliError::other("interrupted again; stopped without waiting"));
                    break;
                }
                tracing::info!("stopping the local agent, then the manager (interrupt again to quit now)");
                parts.begin_stop(&mut stop_timer);
                signal.set(shutdown_signal());
            }
            r = &mut agent_run, if parts.agent_done.is_none() => {
                if !parts.stopping {
                    parts.failure.get_or_insert(ended("local agent", &r));
                    parts.begin_stop(&mut stop_timer);
                }
                parts.agent_done = Some(r);
            }
            r = &mut manager_run, if parts.manager_done.is_none() => {
                if !parts.stopping {
                    parts.failure.get_or_insert(ended("manager", &r));
                    parts.begin_stop(&mut stop_timer);
                }
                parts.manager_done = Some(r);
            }
            () = &mut stop_timer, if parts.stopping => {
                let which = if parts.agent_done.is_none() { "local agent" } else { "manager" };
                parts.failure.get_or_insert(CliError::other(format!(
                    "the {which} did not stop within {}s",
                    STOP_TIMEOUT.as_secs()
                )));
                break;
            }
        }
        // The manager stops once the agent has, so that the agent does not
        // spend its last moments reconnecting to a manager going away.
        if parts.agent_done.is_some()
            && let Some(stop) = parts.manager_stop.take()
        {
            let _ = stop.send(());
        }
    }
    data.close();
    parts.result()
}

/// Where `theia dev`'s two parts are in their lives.
#[derive(Default)]
struct Parts {
    manager_stop: Option<oneshot::Sender<()>>,
    agent_stop: Option<oneshot::Sender<()>>,
    manager_done: Option<anyhow::Result<()>>,
    agent_done: Option<anyhow::Result<()>>,
    stopping: bool,
    failure: Option<CliError>,
}

impl Parts {
    /// Stops the agent (the manager follows once it has) and starts the clock.
    fn begin_stop(&mut self, timer: &mut std::pin::Pin<&mut tokio::time::Sleep>) {
        self.stopping = true;
        if let Some(stop) = self.agent_stop.take() {
            let _ = stop.send(());
        }
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + STOP_TIMEOUT);
    }

    /// The first failure: a part that ended on its own, or failed stopping.
    fn result(self) -> Result<(), CliError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        for (name, done) in [
            ("local agent", self.agent_done),
            ("manager", self.manager_done),
        ] {
            if let Some(Err(e)) = done {
                return Err(CliError::other(format!("the {name} failed: {e:#}")));
            }
        }
        Ok(())
    }
}

/// The tokens of `theia dev`: the admin's (written to the user's token
/// file, so that `theia` in another terminal needs nothing more) and its
/// agent's. Both are kept in the data directory and reused with it.
struct Tokens {
    admin: String,
    agent: String,
    /// Where the admin token was written for the CLI, if it could be.
    user_file: Option<PathBuf>,
}

impl Tokens {
    async fn prepare(manager: &Manager, data: &Path) -> Result<Self, CliError> {
        let admin = kept_token(
            manager,
            &manager.bootstrap_token_path(),
            "admin",
            Role::Admin,
        )
        .await?;
        let agent = kept_token(
            manager,
            &data.join("agent.token"),
            "theia dev agent",
            Role::Agent(LOCAL_DC.to_owned()),
        )
        .await?;
        let user_file = theia::api::auth::user_token_file(|k| std::env::var(k).ok());
        let user_file = match user_file {
            Some(path) => match theia::api::auth::write_token_file(&path, &admin) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot write the admin token to the user's token file; pass it with --token or THEIA_TOKEN");
                    None
                }
            },
            None => None,
        };
        Ok(Self {
            admin,
            agent,
            user_file,
        })
    }
}

/// The token kept in `file`, or a new one for `role` written there.
async fn kept_token(
    manager: &Manager,
    file: &Path,
    subject: &str,
    role: Role,
) -> Result<String, CliError> {
    if let Ok(token) = theia::api::auth::read_token_file(file) {
        return Ok(token);
    }
    let token = manager
        .issue_token(subject, [role].into(), "made by theia dev")
        .await
        .map_err(|e| CliError::other(format!("cannot make a token for {subject}: {e:#}")))?;
    theia::api::auth::write_token_file(file, &token)
        .map_err(|e| CliError::other(format!("cannot write {}: {e}", file.display())))?;
    Ok(token)
}

/// The agent `theia dev` runs beside its manager.
fn agent_config(url: &str, data_dir: &Path, token: &str) -> Result<AgentConfig, CliError> {
    let bearer = Bearer::new(Some(token)).map_err(|e| CliError::other(format!("token: {e}")))?;
    Ok(AgentConfig {
        managers: vec![url.to_owned()],
        dc: LOCAL_DC.to_owned(),
        labels: [("env".to_owned(), "dev".to_owned())].into(),
        driver: DriverConfig::Host,
        state_dir: data_dir.join("agent"),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(2),
        ca: None,
        bearer,
        client_identity: None,
    })
}

fn init_logging(config: &Config) -> Result<(), CliError> {
    let filter = config.string("log")?;
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| {
        CliError::Config(ConfigError::Invalid {
            key: "log".to_owned(),
            origin: config.source("log").cloned().unwrap_or(Source::Default),
            reason: format!("{filter:?} is not a log filter: {e}"),
        })
    })?;
    // Fails only if a subscriber is set already, which is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .try_init();
    Ok(())
}

/// Where state lives: the user's directory, or a temporary one removed at exit.
enum DataDir {
    Kept(PathBuf),
    Ephemeral(tempfile::TempDir),
}

impl DataDir {
    fn open(dir: Option<PathBuf>) -> Result<Self, CliError> {
        match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    CliError::other(format!("cannot create data dir {}: {e}", dir.display()))
                })?;
                Ok(Self::Kept(dir))
            }
            None => tempfile::Builder::new()
                .prefix("theia-dev-")
                .tempdir()
                .map(Self::Ephemeral)
                .map_err(|e| CliError::other(format!("cannot create a temporary data dir: {e}"))),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Self::Kept(p) => p,
            Self::Ephemeral(t) => t.path(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Kept(p) => p.display().to_string(),
            Self::Ephemeral(t) => format!(
                "{} (ephemeral; pass --data-dir to keep state)",
                t.path().display()
            ),
        }
    }

    fn close(self) {
        if let Self::Ephemeral(t) = self {
            let path = t.path().display().to_string();
            match t.close() {
                Ok(()) => tracing::info!(%path, "removed the ephemeral data dir"),
                Err(e) => tracing::warn!(%path, error = %e, "cannot remove the ephemeral data dir"),
            }
        }
    }
}

/// A part that ended before it was asked to.
fn ended(name: &str, result: &anyhow::Result<()>) -> CliError {
    match result {
        Ok(()) => CliError::other(format!("the {name} stopped unexpectedly")),
        Err(e) => CliError::other(format!("the {name} failed: {e:#}")),
    }
}

fn bind_error(e: &anyhow::Error, listen: SocketAddr) -> CliError {
    let in_use = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    });
    if in_use {
        return CliError::other(format!(
            "cannot listen on {listen}: the address is in use (is theia-manager or another `theia dev` running? pass --listen to choose another)"
        ));
    }
    CliError::other(format!("{e:#}"))
}

/// The address to connect to: a wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Waits until the local agent's datacenter is registered and alive.
async fn wait_for_local_dc(url: &str, token: &str) {
    let Ok(bearer) = Bearer::new(Some(token)) else {
        return;
    };
    loop {
        if let Ok(client) = Client::connect(url, bearer.clone()).await {
            let answer = client
                .infrastructure()
                .get_datacenter(v1::GetDatacenterRequest {
                    id: LOCAL_DC.to_owned(),
                })
                .await;
            if answer.is_ok_and(|dc| dc.get_ref().liveness == v1::Liveness::Alive as i32) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory of this `theia` when no `theia` is on `PATH` (as after
/// `cargo run`): the banner then says how to put it there.
fn path_hint() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d.join("theia").is_file()) {
        return None;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
}

fn banner(
    listen: SocketAddr,
    url: &str,
    data: &DataDir,
    ready: bool,
    path_hint: Option<PathBuf>,
    tokens: &Tokens,
) -> String {
    let target = url.trim_start_matches("http://");
    let mut lines = vec![
        "theia dev: a manager and a local agent in one process".to_owned(),
        format!("  manager     {url} (gRPC, listening on {listen}; reflection and health on)"),
        format!("  data dir    {}", data.describe()),
        format!("  datacenter  {LOCAL_DC} (host driver, labels env=dev)"),
        format!("  token       {} (admin)", tokens.admin),
    ];
    match &tokens.user_file {
        Some(file) => lines.push(format!(
            "              written to {}, where theia finds it",
            file.display()
        )),
        None => lines.push(format!(
            "              export THEIA_TOKEN={}   # for theia in another terminal",
            tokens.admin
        )),
    }
    if !ready {
        lines.push(format!(
            "  note        the local agent has not registered within {}s; see the log",
            READY_TIMEOUT.as_secs()
        ));
    }
    lines.push(String::new());
    lines.push("Try, in another terminal:".to_owned());
    if let Some(dir) = &path_hint {
        lines.push(format!(
            "  export PATH=\"{}:$PATH\"   # theia is not on your PATH yet",
            dir.display()
        ));
    }
    if url != DEFAULT_MANAGER {
        lines.push(format!("  export THEIA_MANAGER={url}"));
    }
    for example in [
        "theia dc list".to_owned(),
        "theia infra".to_owned(),
        "theia tenant create acme --quota compute.vcpu=8".to_owned(),
        "theia profile create small --resources compute.vcpu=1,compute.memory=1Gi".to_owned(),
        "theia claim create --tenant acme --profile small --count 2".to_owned(),
        "theia claim list".to_owned(),
        format!("grpcurl -plaintext {target} list"),
        format!(
            "grpcurl -plaintext -H \"authorization: Bearer {}\" {target} theia.v1.AccessService/WhoAmI",
            tokens.admin
        ),
    ] {
        lines.push(format!("  {example}"));
    }
    lines.push(String::new());
    lines.push("Ctrl-C stops both.".to_owned());
    lines.join("\n")
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str =
        "theia_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        let a: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        assert_eq!(reachable(a), "127.0.0.1:7070".parse().unwrap());
        let b: SocketAddr = "[::]:1".parse().unwrap();
        assert_eq!(reachable(b), "[::1]:1".parse().unwrap());
        let c: SocketAddr = "10.0.0.1:9".parse().unwrap();
        assert_eq!(reachable(c), c);
    }

    #[test]
    fn the_banner_says_where_and_what_to_try() {
        let dir = DataDir::open(None).unwrap();
        let listen: SocketAddr = "127.0.0.1:17070".parse().unwrap();
        let tokens = Tokens {
            admin: TOKEN.to_owned(),
            agent: TOKEN.to_owned(),
            user_file: Some(PathBuf::from("/home/u/.config/theia/token")),
        };
        let text = banner(
            listen,
            "http://127.0.0.1:17070",
            &dir,
            true,
            Some(PathBuf::from("/src/theia/target/debug")),
            &tokens,
        );
        assert!(
            text.contains(&format!("token       {TOKEN} (admin)")),
            "{text}"
        );
        assert!(
            text.contains("written to /home/u/.config/theia/token"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "-H \"authorization: Bearer {TOKEN}\" 127.0.0.1:17070 theia.v1.AccessService/WhoAmI"
            )),
            "{text}"
        );
        assert!(
            text.contains("export PATH=\"/src/theia/target/debug:$PATH\""),
            "{text}"
        );
        let first_hint = text.find("export PATH").unwrap();
        let first_try = text.find("theia dc list").unwrap();
        assert!(first_hint < first_try, "the PATH comes first: {text}");
        assert!(
            !banner(listen, DEFAULT_MANAGER, &dir, true, None, &tokens).contains("export"),
            "nothing to export when theia is on PATH and the manager is the default"
        );
        assert!(
            text.contains("ephemeral; pass --data-dir to keep state"),
            "{text}"
        );
        assert!(
            text.contains("export THEIA_MANAGER=http://127.0.0.1:17070"),
            "{text}"
        );
        assert!(
            text.contains("grpcurl -plaintext 127.0.0.1:17070 list"),
            "{text}"
        );
        assert!(text.contains("theia claim create --tenant acme --profile small --count 2"));
        let no_file = Tokens {
            user_file: None,
            ..tokens
        };
        assert!(
            banner(listen, DEFAULT_MANAGER, &dir, true, None, &no_file)
                .contains(&format!("export THEIA_TOKEN={TOKEN}"))
        );
        let path = dir.path().to_owned();
        dir.close();
        assert!(!path.exists());
    }

    #[test]
    fn the_local_agent_reports_to_this_manager() {
        let c = agent_config("http://127.0.0.1:1", Path::new("/d"), TOKEN).unwrap();
        assert_eq!(c.bearer, Bearer::new(Some(TOKEN)).unwrap());
        assert_eq!(c.managers, ["http://127.0.0.1:1"]);
        assert_eq!(c.dc, "local");
        assert_eq!(c.labels.get("env").map(String::as_str), Some("dev"));
        assert_eq!(c.state_dir, Path::new("/d/agent"));
        assert!(matches!(c.driver, DriverConfig::Host));
    }

    #[tokio::test]
    async fn a_taken_port_is_one_clear_line() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = match Manager::bind(ManagerConfig::for_dir(dir.path(), addr)).await {
            Ok(_) => panic!("bound a taken port"),
            Err(e) => bind_error(&e, addr),
        };
        assert_eq!(
            err.line(),
            format!(
                "cannot listen on {addr}: the address is in use (is theia-manager or another `theia dev` running? pass --listen to choose another)"
            )
        );
    }
}
