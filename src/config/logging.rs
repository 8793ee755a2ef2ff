//! How the programs write their logs: to stderr, filtered by `log`, as
//! text for people or as one JSON object a line (`log_format: json`) for
//! log shippers. In JSON, each line carries the span it was written in
//! (the manager's `rpc` span names the method, the request id and the
//! caller).

use super::{Config, ConfigError};

/// A layer that sees every log line besides the writer (Sentry's).
pub type ExtraLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Installs the process's log writer as `config` says; once, at start.
pub fn init_logging(config: &Config) -> Result<(), ConfigError> {
    init_logging_with(config, None)
}

/// The same, with `extra` beside the writer: it sees every line the `log`
/// filter lets through.
pub fn init_logging_with(config: &Config, extra: Option<ExtraLayer>) -> Result<(), ConfigError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: config
            .source(key)
            .cloned()
            .unwrap_or(super::Source::Default),
        reason,
    };
    let filter = config.string("log")?;
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|e| invalid("log", format!("{filter:?} is not a log filter: {e}")))?;
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let writer: ExtraLayer = match config.string("log_format")?.as_str() {
        "text" => logs
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .boxed(),
        "json" => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        other => {
            return Err(invalid(
                "log_format",
                format!("{other:?} is not a log format; use text or json"),
            ));
        }
    };
    let mut layers = vec![writer];
    layers.extend(extra);
    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .init();
    Ok(())
}
