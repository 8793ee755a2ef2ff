use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A configuration value: text (from a flag, a variable or a YAML scalar),
/// a list or a map (from YAML, or typed as `a,b` and `k=v,k2=v2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A scalar.
    Text(String),
    /// A YAML sequence of scalars.
    List(Vec<String>),
    /// A YAML mapping of scalars.
    Map(BTreeMap<String, String>),
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        serde_yaml_ng::Value::Null => Some(String::new()),
        _ => None,
    }
}

impl Value {
    /// Converts a YAML value; nested structures beyond one level are refused.
    pub fn from_yaml(v: &serde_yaml_ng::Value) -> Result<Self, String> {
        if let Some(s) = scalar(v) {
            return Ok(Self::Text(s));
        }
        match v {
            serde_yaml_ng::Value::Sequence(items) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(|| "list items must be plain values".to_owned()))
                .collect::<Result<_, _>>()
                .map(Self::List),
            serde_yaml_ng::Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| match (scalar(k), scalar(v)) {
                    (Some(k), Some(v)) => Ok((k, v)),
                    _ => Err("map entries must be plain key: value pairs".to_owned()),
                })
                .collect::<Result<_, _>>()
                .map(Self::Map),
            _ => Err("unsupported YAML value".to_owned()),
        }
    }

    /// The value as text.
    pub fn as_text(&self) -> Result<String, String> {
        match self {
            Self::Text(s) => Ok(s.clone()),
            _ => Err("expected a single value, not a list or map".to_owned()),
        }
    }

    /// A duration: `500ms`, `5s`, `2m`, or a plain number of seconds.
    pub fn as_duration(&self) -> Result<Duration, String> {
        let s = self.as_text()?;
        let s = s.trim();
        if let Ok(secs) = s.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Ok(Duration::from_secs_f64(secs));
        }
        humantime::parse_duration(s).map_err(|e| {
            format!("{s:?} is not a duration ({e}); use e.g. 500ms, 5s, 2m or a number of seconds")
        })
    }

    /// A yes or no: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`.
    pub fn as_bool(&self) -> Result<bool, String> {
        let s = self.as_text()?;
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" | "" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        }
    }

    /// A whole number.
    pub fn as_u64(&self) -> Result<u64, String> {
        let s = self.as_text()?;
        s.trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))
    }

    /// A finite, non-negative number.
    pub fn as_f64(&self) -> Result<f64, String> {
        let s = self.as_text()?;
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!("{s:?} is not a non-negative number")),
        }
    }

    /// A list; text is split on commas.
    pub fn as_list(&self) -> Result<Vec<String>, String> {
        match self {
            Self::List(l) => Ok(l.clone()),
            Self::Text(s) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()),
            Self::Map(_) => Err("expected a list, not a map".to_owned()),
        }
    }

    /// A map; text is read as `k=v,k2=v2`.
    pub fn as_map(&self) -> Result<BTreeMap<String, String>, String> {
        match self {
            Self::Map(m) => Ok(m.clone()),
            Self::Text(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    item.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| format!("{item:?} is not key=value"))
                })
                .collect(),
            Self::List(_) => Err("expected a map, not a list".to_owned()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::List(l) => f.write_str(&l.join(",")),
            Self::Map(m) => {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}
