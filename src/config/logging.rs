//! How the programs write their logs: to stderr, filtered by `log`, as
//! text for people or as one JSON object a line (`log_format: json`) for
//! log shippers. In JSON, each line carries the span it was written in
//! (the manager's `rpc` span names the method, the request id and the
//! caller).

use super::{Config, ConfigError};

/// Installs the process's log writer as `config` says; once, at start.
pub fn init_logging(config: &Config) -> Result<(), ConfigError> {
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.string("log_format")?.as_str() {
        "text" => logs
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .init(),
        "json" => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        other => {
            return Err(invalid(
                "log_format",
                format!("{other:?} is not a log format; use text or json"),
            ));
        }
    }
    Ok(())
}
