use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from, lowest precedence first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The built-in default.
    Default,
    /// `/etc/theia/config.yaml`.
    SystemFile(PathBuf),
    /// `~/.config/theia/config.yaml`.
    UserFile(PathBuf),
    /// The file named by `--config`.
    ConfigFile(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::SystemFile(p) => write!(f, "system file {}", p.display()),
            Self::UserFile(p) => write!(f, "user file {}", p.display()),
            Self::ConfigFile(p) => write!(f, "config file {}", p.display()),
            Self::Env(v) => write!(f, "env {v}"),
            Self::Flag(name) => write!(f, "flag --{}", name.replace('_', "-")),
        }
    }
}
