//! `theia-agent`: runs one datacenter's agent until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use theia::config::{LoadOptions, load};
use theia_agent::{AgentConfig, run};

/// theia-agent: reports a datacenter's capacity to theia's managers and
/// applies their assignments.
///
/// Every option can also come from THEIA_<KEY> or a config file
/// (--config, ~/.config/theia/config.yaml, /etc/theia/config.yaml).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A YAML config file, above the user and system files.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Managers to connect to, tried in order [default: http://127.0.0.1:7070].
    #[arg(long, value_name = "URL,...")]
    managers: Option<String>,
    /// Id of the datacenter this agent speaks for.
    #[arg(long)]
    dc: Option<String>,
    /// Labels of the datacenter, e.g. region=eu,tier=core.
    #[arg(long, value_name = "KEY=VALUE,...")]
    labels: Option<String>,
    /// How the agent reaches the management plane: static or host [default: host].
    #[arg(long)]
    driver: Option<String>,
    /// Static driver: total per class, e.g. compute.vcpu=512,compute.memory=2Ti.
    #[arg(long, value_name = "CLASS=QUANTITY,...")]
    inventory: Option<String>,
    /// Where the agent keeps the assignments it applied [default: /var/lib/theia-agent].
    #[arg(long)]
    state_dir: Option<String>,
    /// First reconnect delay; doubles up to --reconnect-max, with jitter [default: 1s].
    #[arg(long)]
    reconnect_min: Option<String>,
    /// Longest reconnect delay [default: 30s].
    #[arg(long)]
    reconnect_max: Option<String>,
    /// PEM file of the authorities that sign the managers' certificates [default: the system's CA bundle].
    #[arg(long)]
    ca: Option<String>,
    /// The agent:<dc> bearer token (prefer THEIA_TOKEN or --token-file: flags show in ps).
    #[arg(long)]
    token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long)]
    token_file: Option<String>,
    /// PEM client certificate for managers that set client_ca (its DNS name is the datacenter id).
    #[arg(long)]
    client_cert: Option<String>,
    /// PEM private key of --client-cert.
    #[arg(long)]
    client_key: Option<String>,
    /// Log filter, e.g. info or theia_agent=debug [default: info].
    #[arg(long)]
    log: Option<String>,
    /// How log lines are written: text or json [default: text].
    #[arg(long)]
    log_format: Option<String>,
}

impl Args {
    /// The flags that were given, as configuration keys.
    fn flags(&self) -> Vec<(String, String)> {
        [
            ("managers", &self.managers),
            ("dc", &self.dc),
            ("labels", &self.labels),
            ("driver", &self.driver),
            ("inventory", &self.inventory),
            ("state_dir", &self.state_dir),
            ("reconnect_min", &self.reconnect_min),
            ("reconnect_max", &self.reconnect_max),
            ("ca", &self.ca),
            ("token", &self.token),
            ("token_file", &self.token_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
            ("log", &self.log),
            ("log_format", &self.log_format),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect()
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what systemd and container
/// runtimes send).
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

async fn main_inner(args: Args) -> anyhow::Result<()> {
    let flags = args.flags();
    let config = load(&LoadOptions::from_process(args.config, flags))?;
    theia::config::init_logging(&config)?;
    for (key, source) in config.unknown_keys() {
        tracing::warn!(%key, %source, "unknown configuration key; ignored");
    }
    run(AgentConfig::from_config(&config)?, shutdown_signal()).await
}

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything uses TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // A usage error is one line and exit status 2.
            eprintln!(
                "{}",
                theia::config::usage_error_line(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
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
