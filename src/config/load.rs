//! Gathers configuration layers from the process: the only I/O of the
//! configuration module, done once at start-up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Config, ConfigError, Setting, Source, env_settings, parse_file, resolve};

/// Where to look, so tests can point at their own files and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The file given by `--config`; it must exist.
    pub config_file: Option<PathBuf>,
    /// The user file, normally `~/.config/theia/config.yaml`; may be absent.
    pub user_file: Option<PathBuf>,
    /// The system file, normally `/etc/theia/config.yaml`; may be absent.
    pub system_file: Option<PathBuf>,
    /// The environment.
    pub env: BTreeMap<String, String>,
    /// Flags given on the command line: key and value.
    pub flags: Vec<(String, String)>,
}

impl LoadOptions {
    /// The real process: its environment, `$HOME` and `/etc`.
    pub fn from_process(config_file: Option<PathBuf>, flags: Vec<(String, String)>) -> Self {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let user_file = env
            .get("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("theia/config.yaml"));
        let config_file = config_file.or_else(|| env.get("THEIA_CONFIG").map(PathBuf::from));
        Self {
            config_file,
            user_file,
            system_file: Some(PathBuf::from("/etc/theia/config.yaml")),
            env,
            flags,
        }
    }
}

fn read_optional(path: &PathBuf) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Reads every layer and merges them with THEIA's precedence.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let mut layers: Vec<Setting> = Vec::new();
    if let Some(path) = &opts.system_file
        && let Some(text) = read_optional(path)?
    {
        layers.extend(parse_file(Source::SystemFile(path.clone()), &text)?);
    }
    if let Some(path) = &opts.user_file
        && let Some(text) = read_optional(path)?
    {
        layers.extend(parse_file(Source::UserFile(path.clone()), &text)?);
    }
    if let Some(path) = &opts.config_file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        layers.extend(parse_file(Source::ConfigFile(path.clone()), &text)?);
    }
    // THEIA_CONFIG names the file; it is not a setting of its own.
    layers.extend(
        env_settings(&opts.env)
            .into_iter()
            .filter(|s| s.key != "config"),
    );
    layers.extend(opts.flags.iter().map(|(k, v)| Setting {
        key: k.clone(),
        value: super::Value::Text(v.clone()),
        source: Source::Flag(k.clone()),
    }));
    Ok(resolve(layers))
}
