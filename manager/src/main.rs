//! `theia-manager`: runs one manager until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use theia::config::{LoadOptions, load};
use theia_manager::{ManagerConfig, run};

/// theia-manager: schedules tenants onto logical infrastructure.
///
/// Every option can also come from THEIA_<KEY> or a config file
/// (--config, ~/.config/theia/config.yaml, /etc/theia/config.yaml);
/// deploy/manager.yaml documents each key with its default.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A YAML config file, above the user and system files.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the gRPC API [default: 127.0.0.1:7070].
    #[arg(long)]
    listen: Option<String>,
    /// Address to serve Prometheus metrics on (GET /metrics) [default: none].
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Grafana Loki to push the audit trail to, like http://127.0.0.1:3100 [default: none].
    #[arg(long)]
    loki_url: Option<String>,
    /// X-Scope-OrgID for a multi-tenant Loki [default: none].
    #[arg(long)]
    loki_tenant: Option<String>,
    /// The Sentry DSN to send errors and panics to [default: none].
    #[arg(long)]
    sentry_dsn: Option<String>,
    /// An OTLP/gRPC collector or Elastic APM Server for trace spans, like
    /// http://127.0.0.1:4317 [default: none].
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// PEM file of the certificate (chain) to serve TLS with.
    #[arg(long)]
    tls_cert: Option<String>,
    /// PEM file of the private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<String>,
    /// Serve plaintext (no TLS certificate); warned about at start and on every agent connection.
    #[arg(long)]
    insecure: bool,
    /// Where the embedded store keeps its data [default: /var/lib/theia].
    #[arg(long)]
    data_dir: Option<String>,
    /// This manager's id [default: generated once, kept in the data dir].
    #[arg(long)]
    manager_id: Option<String>,
    /// Cluster secret that seals what is stored in Redis (64 hex characters).
    #[arg(long)]
    secret: Option<String>,
    /// A file holding the cluster secret.
    #[arg(long)]
    secret_file: Option<String>,
    /// Redis URL of the store (redis://HOST:PORT[/DB] or rediss://) [default: embedded store].
    #[arg(long)]
    redis: Option<String>,
    /// PEM file of the authorities that sign Redis's certificate (rediss://) [default: system roots].
    #[arg(long)]
    redis_ca: Option<String>,
    /// Make another admin token at start (written to the bootstrap token file), for when every admin token is lost.
    #[arg(long)]
    new_admin_token: bool,
    /// Calls per second one token may make, in bursts of as many; 0 for no limit [default: 1000].
    #[arg(long)]
    rate_limit: Option<String>,
    /// PEM file of the authorities whose client certificates agents may present instead of a token.
    #[arg(long)]
    client_ca: Option<String>,
    /// Where the first start of an empty store writes the first admin token [default: DATA_DIR/admin.token].
    #[arg(long)]
    bootstrap_token_file: Option<String>,
    /// Seconds a peer's clock may run ahead [default: 1.0].
    #[arg(long)]
    clock_offset: Option<String>,
    /// Seconds between syncs of coalesced changes [default: 180].
    #[arg(long)]
    sync_delta: Option<String>,
    /// Pending changes that force a sync [default: 1000].
    #[arg(long)]
    sync_max: Option<String>,
    /// How often agents send heartbeats [default: 5s].
    #[arg(long)]
    heartbeat_interval: Option<String>,
    /// How often agents report inventory [default: 30s].
    #[arg(long)]
    report_interval: Option<String>,
    /// Silence after which a datacenter is suspect [default: 15s].
    #[arg(long)]
    suspect_after: Option<String>,
    /// Silence after which a datacenter is down [default: 60s].
    #[arg(long)]
    down_after: Option<String>,
    /// How long released claims are kept before they are pruned [default: 7d].
    #[arg(long)]
    claim_retention: Option<String>,
    /// The most events the audit trail keeps [default: 100000].
    #[arg(long)]
    audit_max_events: Option<String>,
    /// How long the audit trail keeps an event [default: 90d].
    #[arg(long)]
    audit_max_age: Option<String>,
    /// How far from its first allowed start a claim with the earliest start
    /// may be placed [default: 31d].
    #[arg(long)]
    planning_window: Option<String>,
    /// Break binpack and spread ties in an order drawn from this number
    /// instead of towards the smallest datacenter id [default: none].
    #[arg(long)]
    tie_break_seed: Option<String>,
    /// Log filter, e.g. info or theia_manager=debug [default: info].
    #[arg(long)]
    log: Option<String>,
    /// How log lines are written: text or json [default: text].
    #[arg(long)]
    log_format: Option<String>,
}

impl Args {
    /// The settings given on the command line, as configuration keys.
    fn flags(&self) -> Vec<(String, String)> {
        [
            ("listen", &self.listen),
            ("metrics_listen", &self.metrics_listen),
            ("loki_url", &self.loki_url),
            ("loki_tenant", &self.loki_tenant),
            ("sentry_dsn", &self.sentry_dsn),
            ("otlp_endpoint", &self.otlp_endpoint),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("insecure", &self.insecure.then(|| "true".to_owned())),
            ("data_dir", &self.data_dir),
            ("manager_id", &self.manager_id),
            ("secret", &self.secret),
            ("secret_file", &self.secret_file),
            ("redis", &self.redis),
            ("redis_ca", &self.redis_ca),
            ("bootstrap_token_file", &self.bootstrap_token_file),
            ("client_ca", &self.client_ca),
            ("rate_limit", &self.rate_limit),
            (
                "new_admin_token",
                &self.new_admin_token.then(|| "true".to_owned()),
            ),
            ("clock_offset", &self.clock_offset),
            ("sync_delta", &self.sync_delta),
            ("sync_max", &self.sync_max),
            ("heartbeat_interval", &self.heartbeat_interval),
            ("report_interval", &self.report_interval),
            ("suspect_after", &self.suspect_after),
            ("down_after", &self.down_after),
            ("claim_retention", &self.claim_retention),
            ("audit_max_events", &self.audit_max_events),
            ("audit_max_age", &self.audit_max_age),
            ("planning_window", &self.planning_window),
            ("tie_break_seed", &self.tie_break_seed),
            ("log", &self.log),
            ("log_format", &self.log_format),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect()
    }
}

/// Parses the command line; a usage error is one line and exit status 2.
fn parse_args() -> Result<Args, ExitCode> {
    Args::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "{}",
            theia::config::usage_error_line(&e.render().to_string())
        );
        ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn main_inner(args: Args) -> anyhow::Result<()> {
    let flags = args.flags();
    let config = load(&LoadOptions::from_process(args.config, flags))?;
    // Before logging, so that error lines reach Sentry; kept until exit,
    // when what is queued is sent.
    let sentry = match config.opt_string("sentry_dsn")?.filter(|s| !s.is_empty()) {
        Some(dsn) => Some(theia_manager::sentry_init(&dsn).map_err(|reason| {
            theia::config::ConfigError::Invalid {
                key: "sentry_dsn".to_owned(),
                origin: config
                    .source("sentry_dsn")
                    .cloned()
                    .unwrap_or(theia::config::Source::Default),
                reason,
            }
        })?),
        None => None,
    };
    let otlp = match config
        .opt_string("otlp_endpoint")?
        .filter(|s| !s.is_empty())
    {
        Some(endpoint) => Some(theia_manager::otlp_init(&endpoint).map_err(|reason| {
            theia::config::ConfigError::Invalid {
                key: "otlp_endpoint".to_owned(),
                origin: config
                    .source("otlp_endpoint")
                    .cloned()
                    .unwrap_or(theia::config::Source::Default),
                reason,
            }
        })?),
        None => None,
    };
    let mut extra: Vec<theia::config::ExtraLayer> = Vec::new();
    extra.extend(sentry.as_ref().map(|_| theia_manager::sentry_layer()));
    let provider = otlp.map(|(provider, layer)| {
        extra.push(layer);
        provider
    });
    let extra = (!extra.is_empty()).then(|| Box::new(extra) as theia::config::ExtraLayer);
    theia::config::init_logging_with(&config, extra)?;
    for (key, source) in config.unknown_keys() {
        tracing::warn!(%key, %source, "unknown configuration key; ignored");
    }
    let ran = run(ManagerConfig::from_config(&config)?, shutdown_signal()).await;
    if let Some(provider) = provider {
        // The spans still queued go out now, within the SDK's own bound.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    ran
}

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything uses TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_inner(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
