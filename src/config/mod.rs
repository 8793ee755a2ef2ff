//! Configuration with THEIA's precedence, highest first: a command-line flag,
//! an environment variable `THEIA_<KEY>`, the file named by `--config`,
//! `~/.config/theia/config.yaml`, `/etc/theia/config.yaml`. Files merge per
//! key: a key missing in a higher file falls through to a lower one.
//!
//! Merging is pure ([`resolve`]); [`load`] only gathers the layers from the
//! process (files, environment) at start-up.

mod keys;
mod load;
mod logging;
mod source;
mod value;

use std::collections::BTreeMap;

pub use keys::{HORAO_ALIASES, KEYS, KeySpec, env_var, spec};
pub use load::{LoadOptions, load};
pub use logging::{ExtraLayer, init_logging, init_logging_with};
pub use source::Source;
pub use value::Value;

/// Why configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A file is not a YAML mapping of keys.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: Source,
        /// Why.
        message: String,
    },
    /// A value does not fit its key.
    #[error("{key} (from {origin}): {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// Where the bad value came from.
        origin: Source,
        /// Why it does not fit.
        reason: String,
    },
    /// A key without default is needed but unset.
    #[error("{key} is not set; {hint}")]
    Missing {
        /// The key.
        key: String,
        /// How to set it.
        hint: String,
    },
}

/// One value from one place.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The key, normalised to lower case with `_`.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Where it came from.
    pub source: Source,
}

/// Normalises a key as written by people: `Data-Dir` is `data_dir`.
pub fn normalise_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// Parses a YAML file's text into settings; it must be a mapping (or empty).
pub fn parse_file(source: Source, text: &str) -> Result<Vec<Setting>, ConfigError> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            origin: source.clone(),
            message: e.to_string(),
        })?;
    let map = match doc {
        serde_yaml_ng::Value::Null => return Ok(Vec::new()),
        serde_yaml_ng::Value::Mapping(m) => m,
        _ => {
            return Err(ConfigError::Parse {
                origin: source,
                message: "expected a mapping of keys to values, e.g. `listen: 127.0.0.1:7070`"
                    .into(),
            });
        }
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k {
            serde_yaml_ng::Value::String(s) => normalise_key(&s),
            other => {
                return Err(ConfigError::Parse {
                    origin: source,
                    message: format!("key {other:?} is not a string"),
                });
            }
        };
        let value = Value::from_yaml(&v).map_err(|message| ConfigError::Parse {
            origin: source.clone(),
            message: format!("{key}: {message}"),
        })?;
        out.push(Setting {
            key,
            value,
            source: source.clone(),
        });
    }
    Ok(out)
}

/// Settings from environment variables: `THEIA_<KEY>` for every known key,
/// HORAO's names below them, and unknown `THEIA_*` variables kept so that
/// they are reported.
pub fn env_settings(env: &BTreeMap<String, String>) -> Vec<Setting> {
    let mut out = Vec::new();
    for (var, key) in HORAO_ALIASES {
        if let Some(v) = env.get(*var) {
            out.push(Setting {
                key: (*key).to_owned(),
                value: Value::Text(v.clone()),
                source: Source::Env((*var).to_owned()),
            });
        }
    }
    for (var, v) in env {
        let Some(rest) = var.strip_prefix("THEIA_") else {
            continue;
        };
        out.push(Setting {
            key: rest.to_ascii_lowercase(),
            value: Value::Text(v.clone()),
            source: Source::Env(var.clone()),
        });
    }
    out
}

/// The effective configuration: every key's value and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, (Value, Source)>,
}

/// Merges settings given lowest precedence first over the built-in defaults.
pub fn resolve(layers: impl IntoIterator<Item = Setting>) -> Config {
    let mut values = BTreeMap::new();
    for k in KEYS {
        if let Some(d) = k.default {
            values.insert(
                k.name.to_owned(),
                (Value::Text(d.to_owned()), Source::Default),
            );
        }
    }
    for s in layers {
        values.insert(s.key, (s.value, s.source));
    }
    Config { values }
}

impl Config {
    /// Every set key with its value and source, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value, &Source)> {
        self.values.iter().map(|(k, (v, s))| (k.as_str(), v, s))
    }

    /// Keys that theia does not know, with where they were set: reported to
    /// the user, never silently dropped.
    pub fn unknown_keys(&self) -> Vec<(String, Source)> {
        self.values
            .iter()
            .filter(|(k, _)| spec(k).is_none())
            .map(|(k, (_, s))| (k.clone(), s.clone()))
            .collect()
    }

    /// The raw value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<(&Value, &Source)> {
        self.values.get(key).map(|(v, s)| (v, s))
    }

    /// Sets `key` as if it had been given as a flag (used by `theia dev`).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(
            key.to_owned(),
            (Value::Text(value.into()), Source::Flag(key.to_owned())),
        );
    }

    fn typed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((v, source)) = self.values.get(key) else {
            return Ok(None);
        };
        parse(v).map(Some).map_err(|reason| ConfigError::Invalid {
            key: key.to_owned(),
            origin: source.clone(),
            reason,
        })
    }

    fn required<T>(&self, key: &str, v: Option<T>) -> Result<T, ConfigError> {
        v.ok_or_else(|| ConfigError::Missing {
            key: key.to_owned(),
            hint: format!(
                "set --{} or {} or `{key}:` in a config file",
                key.replace('_', "-"),
                env_var(key)
            ),
        })
    }

    /// A text value, if set.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.typed(key, Value::as_text)
    }

    /// A text value that must be set.
    pub fn string(&self, key: &str) -> Result<String, ConfigError> {
        let v = self.opt_string(key)?;
        self.required(key, v)
    }

    /// A duration (`5s`, `2m`, or a number of seconds) that must be set.
    pub fn duration(&self, key: &str) -> Result<std::time::Duration, ConfigError> {
        let v = self.typed(key, Value::as_duration)?;
        self.required(key, v)
    }

    /// A yes or no; `false` when unset.
    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        Ok(self.typed(key, Value::as_bool)?.unwrap_or(false))
    }

    /// A whole number that must be set.
    pub fn u64(&self, key: &str) -> Result<u64, ConfigError> {
        let v = self.typed(key, Value::as_u64)?;
        self.required(key, v)
    }

    /// A whole number, if set.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.typed(key, Value::as_u64)
    }

    /// A non-negative number that must be set.
    pub fn f64(&self, key: &str) -> Result<f64, ConfigError> {
        let v = self.typed(key, Value::as_f64)?;
        self.required(key, v)
    }

    /// A list (YAML sequence or `a,b,c`); empty when unset.
    pub fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self.typed(key, Value::as_list)?.unwrap_or_default())
    }

    /// A map (YAML mapping or `k=v,k2=v2`); empty when unset.
    pub fn map(&self, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        Ok(self.typed(key, Value::as_map)?.unwrap_or_default())
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.values.get(key).map(|(_, s)| s)
    }
}

/// Folds a command-line parser's multi-line usage error into the one
/// `error: ...` line every theia program prints: the lines before `Usage:`,
/// joined, and a pointer to `--help`.
pub fn usage_error_line(rendered: &str) -> String {
    let text: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim_start().starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let text = text.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("error: {text} (see --help)")
}

#[cfg(test)]
mod tests;
