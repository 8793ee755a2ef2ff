//! `theia config show`: every effective key, its value and where it came
//! from. Local only. Secrets are never printed.

use serde_json::{Map, Value as Json, json};
use theia::config::{Config, KEYS, Value, spec};

use crate::args::{ConfigCommand, OutputFormat};
use crate::error::CliError;
use crate::output::{Output, table};

/// What stands in for a secret.
pub const REDACTED: &str = "<redacted>";

/// Runs a `config` command; `format` is the output format, when it is valid
/// (an invalid `output` must not stop the command that helps find it).
pub fn run(
    config: &Config,
    format: Option<OutputFormat>,
    command: ConfigCommand,
) -> Result<(), CliError> {
    match command {
        ConfigCommand::Show => {
            let out = Output {
                format: format.unwrap_or(OutputFormat::Table),
            };
            let rows = rows(config);
            out.show(|| to_json(&rows), || to_table(&rows))
        }
    }
}

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The key.
    pub key: String,
    /// Its value as it may be shown; `None` when unset.
    pub value: Option<Value>,
    /// Where it came from; `None` when unset.
    pub source: Option<String>,
    /// Whether theia knows the key.
    pub known: bool,
}

/// Every known key in `KEYS` order, then unknown keys in key order.
pub fn rows(config: &Config) -> Vec<Row> {
    let mut rows: Vec<Row> = KEYS
        .iter()
        .map(|k| {
            let entry = config.get(k.name);
            Row {
                key: k.name.to_owned(),
                value: entry.map(|(v, _)| shown(k.name, v)),
                source: entry.map(|(_, s)| s.to_string()),
                known: true,
            }
        })
        .collect();
    for (key, source) in config.unknown_keys() {
        // theia cannot know what an unknown key holds (a misspelt secret?),
        // so its value is never printed: the key and its source are enough
        // to find and fix it.
        let value = config.get(&key).map(|_| Value::Text(NOT_SHOWN.to_owned()));
        rows.push(Row {
            key,
            value,
            source: Some(source.to_string()),
            known: false,
        });
    }
    rows
}

/// What stands in for the value of an unknown key.
pub const NOT_SHOWN: &str = "<not shown: unknown key>";

/// The value of a known key as it may be printed.
fn shown(key: &str, value: &Value) -> Value {
    let secret = spec(key).is_some_and(|s| s.secret);
    if !secret {
        return value.clone();
    }
    match value {
        Value::Text(url) if key == "redis" => Value::Text(redact_url_password(url)),
        _ => Value::Text(REDACTED.to_owned()),
    }
}

/// `redis://user:pass@host:6379/0` → `redis://user:<redacted>@host:6379/0`.
/// Anything that does not parse as such is redacted whole; an `@` anywhere
/// counts as the end of the user info, so a password with `/` in it cannot
/// slip through (at worst, too much is redacted).
pub fn redact_url_password(url: &str) -> String {
    // Query parameters may carry a password too (`?password=...`).
    if let Some((base, _query)) = url.split_once('?') {
        return format!("{}?{REDACTED}", redact_url_password(base));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let userinfo = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        // A lone userinfo may be a password (`redis://pass@host`).
        None => REDACTED.to_owned(),
    };
    format!("{scheme}://{userinfo}@{host}")
}

fn to_table(rows: &[Row]) -> String {
    let line = |r: &Row| {
        vec![
            r.key.clone(),
            r.value.as_ref().map_or_else(|| "-".to_owned(), display),
            r.source.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    };
    let known = table(
        &["KEY", "VALUE", "SOURCE"],
        rows.iter().filter(|r| r.known).map(line),
    );
    let unknown: Vec<&Row> = rows.iter().filter(|r| !r.known).collect();
    if unknown.is_empty() {
        return known;
    }
    format!(
        "{known}\n\nunknown keys (ignored; misspelt?):\n{}",
        table(&["KEY", "VALUE", "SOURCE"], unknown.into_iter().map(line))
    )
}

fn display(v: &Value) -> String {
    match v.to_string() {
        s if s.is_empty() => "\"\"".to_owned(),
        s => s,
    }
}

fn to_json(rows: &[Row]) -> Json {
    let entries = rows.iter().map(|r| {
        let value = match &r.value {
            None => Json::Null,
            Some(Value::Text(s)) => json!(s),
            Some(Value::List(l)) => json!(l),
            Some(Value::Map(m)) => json!(m),
        };
        let entry = json!({ "value": value, "source": r.source, "known": r.known });
        (r.key.clone(), entry)
    });
    Json::Object(entries.collect::<Map<_, _>>())
}

#[cfg(test)]
mod tests {
    use theia::config::{Setting, Source, resolve};

    use super::*;

    fn env(key: &str, value: &str) -> Setting {
        Setting {
            key: key.to_owned(),
            value: Value::Text(value.to_owned()),
            source: Source::Env(format!("THEIA_{}", key.to_ascii_uppercase())),
        }
    }

    fn row<'a>(rows: &'a [Row], key: &str) -> &'a Row {
        rows.iter().find(|r| r.key == key).unwrap()
    }

    #[test]
    fn every_known_key_is_listed_in_order_with_its_source() {
        let config = resolve([env("manager", "http://m:7070")]);
        let rows = rows(&config);
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let expected: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(keys, expected);
        let m = row(&rows, "manager");
        assert_eq!(m.value, Some(Value::Text("http://m:7070".into())));
        assert_eq!(m.source.as_deref(), Some("env THEIA_MANAGER"));
        assert_eq!(row(&rows, "output").source.as_deref(), Some("default"));
        // Unset keys have neither value nor source.
        assert_eq!(row(&rows, "secret").value, None);
        let table = to_table(&rows);
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["secret", "-", "-"]),
            "{table}"
        );
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let config = resolve([
            env("secret", "hunter2"),
            env("redis", "redis://app:s3cr3t@redis:6379/0"),
            env("api_token", "tok-123"),
            env("secrt", "misspelt-secret"),
        ]);
        let rows = rows(&config);
        assert_eq!(
            row(&rows, "secret").value,
            Some(Value::Text(REDACTED.into()))
        );
        assert_eq!(
            row(&rows, "redis").value,
            Some(Value::Text(format!("redis://app:{REDACTED}@redis:6379/0")))
        );
        let unknown = row(&rows, "api_token");
        assert!(!unknown.known);
        assert_eq!(unknown.value, Some(Value::Text(NOT_SHOWN.into())));
        let printed = format!("{}{}", to_table(&rows), to_json(&rows));
        for secret in ["hunter2", "s3cr3t", "tok-123", "misspelt-secret"] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }

    #[test]
    fn unknown_keys_are_marked() {
        let config = resolve([env("colour", "blue")]);
        let rows = rows(&config);
        let t = to_table(&rows);
        let (_, unknown) = t.split_once("unknown keys").unwrap();
        assert!(
            unknown.contains("colour") && unknown.contains("env THEIA_COLOUR"),
            "{t}"
        );
        assert!(
            !t.contains("blue"),
            "values of unknown keys are not printed: {t}"
        );
        let j = to_json(&rows);
        assert_eq!(j["colour"]["known"], false);
        assert_eq!(j["colour"]["value"], NOT_SHOWN);
        assert_eq!(j["manager"]["known"], true);
        assert_eq!(j["secret"]["value"], Json::Null);
    }

    #[test]
    fn redis_urls_lose_only_their_password() {
        assert_eq!(
            redact_url_password("redis://redis:6379"),
            "redis://redis:6379"
        );
        assert_eq!(
            redact_url_password("rediss://:pw@h:6380/1?password=x"),
            format!("rediss://:{REDACTED}@h:6380/1?{REDACTED}")
        );
        assert_eq!(
            redact_url_password("redis://pw@h"),
            format!("redis://{REDACTED}@h")
        );
        assert_eq!(redact_url_password("not a url pw"), REDACTED);
        assert_eq!(
            redact_url_password("redis://:p/w@h"),
            format!("redis://:{REDACTED}@h")
        );
    }
}
