//! What can go wrong, worded for the person at the terminal: `main` prints
//! one `error: <message>` line and exits with [`CliError::exit_code`]:
//! 1 when refused, 2 for usage and configuration errors, 3 when the manager
//! cannot be reached.

use std::error::Error as StdError;
use std::fmt;

use tonic::Code;

/// A failed command.
#[derive(Debug)]
pub enum CliError {
    /// No connection to the manager.
    Unreachable {
        /// The manager's URL.
        url: String,
        /// What the transport said.
        cause: String,
    },
    /// The manager did not answer in time.
    TimedOut(String),
    /// The manager answered with an error.
    Api {
        /// The gRPC code.
        code: Code,
        /// The server's message; it names the field or the limit.
        message: String,
    },
    /// The configuration could not be read or a value does not fit.
    Config(theia::config::ConfigError),
    /// Anything else, already worded for the user.
    Other(String),
}

impl CliError {
    /// An error with a message of its own.
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other(message.into())
    }

    /// Reads a failed call: transport failures (they carry a source) mean the
    /// manager was not reached; anything else is the server's answer.
    pub fn from_status(status: tonic::Status, url: &str) -> Self {
        // Plain HTTP/2 to a TLS port: the handshake fails as a broken
        // stream, a protocol error or a call cancelled under it.
        let broken = status.code() != Code::Unavailable
            && (status.source().is_some()
                || status.message().contains("h2 protocol error")
                || status.message() == "transport error");
        if url.starts_with("http://") && broken {
            return Self::Unreachable {
                url: url.to_owned(),
                cause: format!(
                    "{} (if it serves TLS, use https://{})",
                    status.message(),
                    url.trim_start_matches("http://")
                ),
            };
        }
        if status.code() == Code::Unavailable && status.source().is_some() {
            let cause = match status.source() {
                Some(source) => chain(source),
                None => status.message().to_owned(),
            };
            return Self::Unreachable {
                url: url.to_owned(),
                cause,
            };
        }
        if status.code() == Code::Cancelled && status.source().is_some() {
            return Self::TimedOut(format!(
                "the manager at {url} did not answer in time: {}",
                status.message()
            ));
        }
        Self::Api {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// The process exit status for this error: 1 refused (the manager or
    /// the command said no), 2 usage or configuration, 3 unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable { .. } | Self::TimedOut(_) => 3,
            Self::Api {
                code: Code::Unavailable | Code::DeadlineExceeded,
                ..
            } => 3,
            Self::Config(_) => 2,
            Self::Api { .. } | Self::Other(_) => 1,
        }
    }

    /// The line printed after `error: `, without line breaks.
    pub fn line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A short word for a gRPC code, in front of the server's message.
pub fn code_word(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "conflict, try again",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not supported by this manager",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// An error and its sources as one line, `outer: inner: innermost`, with
/// repeats (wrappers that print their source) left out.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { url, cause } if cause.contains("certificate") => write!(
                f,
                "cannot reach the manager at {url}: its certificate is not trusted (pass --ca with the authority that signed it): {cause}"
            ),
            Self::Unreachable { url, cause } => write!(
                f,
                "cannot reach the manager at {url} (is theia-manager or `theia dev` running?): {cause}"
            ),
            Self::Api { code, message } if message.is_empty() => f.write_str(code_word(*code)),
            Self::Api { code, message } => write!(f, "{}: {message}", code_word(*code)),
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::Other(m) | Self::TimedOut(m) => f.write_str(m),
        }
    }
}

impl StdError for CliError {}

impl From<theia::config::ConfigError> for CliError {
    fn from(e: theia::config::ConfigError) -> Self {
        Self::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_say_refused_usage_or_unreachable() {
        let api = |code| CliError::Api {
            code,
            message: "m".into(),
        };
        assert_eq!(api(Code::ResourceExhausted).exit_code(), 1);
        assert_eq!(api(Code::NotFound).exit_code(), 1);
        assert_eq!(api(Code::Unavailable).exit_code(), 3);
        assert_eq!(CliError::other("x").exit_code(), 1);
        assert_eq!(CliError::TimedOut("t".into()).exit_code(), 3);
        let unreachable = CliError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            cause: "refused".into(),
        };
        assert_eq!(unreachable.exit_code(), 3);
        let config = CliError::Config(theia::config::ConfigError::Invalid {
            key: "output".into(),
            origin: theia::config::Source::Default,
            reason: "r".into(),
        });
        assert_eq!(config.exit_code(), 2);
    }

    #[test]
    fn server_errors_keep_their_message_behind_a_code_word() {
        let e = CliError::from_status(
            tonic::Status::not_found("name: tenant \"nobody\" does not exist"),
            "http://x",
        );
        assert_eq!(
            e.line(),
            "not found: name: tenant \"nobody\" does not exist"
        );
        let e = CliError::from_status(tonic::Status::failed_precondition("holds 2 claims"), "u");
        assert_eq!(e.line(), "refused: holds 2 claims");
    }

    #[test]
    fn a_server_sent_unavailable_is_not_a_connection_failure() {
        let e = CliError::from_status(tonic::Status::unavailable("the store failed"), "u");
        assert_eq!(e.line(), "unavailable: the store failed");
    }

    #[test]
    fn transport_failures_say_where_and_why() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(tonic::ConnectError(Box::new(io))));
        assert_eq!(status.code(), Code::Unavailable);
        let e = CliError::from_status(status, "http://127.0.0.1:7070");
        let line = e.line();
        assert!(line.starts_with("cannot reach the manager at http://127.0.0.1:7070 (is theia-manager or `theia dev` running?): "), "{line}");
        assert!(line.contains("connection refused"), "{line}");
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(CliError::other("a\nb\n").line(), "a b");
    }
}
