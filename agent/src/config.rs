//! The agent's settings, read from theia's layered configuration and checked
//! before anything starts, so that a typo is reported with its key instead of
//! turning into endless reconnects.

use std::path::PathBuf;
use std::time::Duration;

use theia::config::{Config, ConfigError, Source};
use theia::model::{Labels, Resources, validate_labels, validate_name};
use tonic::transport::Endpoint;

/// Everything `theia-agent` needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Manager URLs such as `http://127.0.0.1:7070`, tried in order.
    pub managers: Vec<String>,
    /// The id of the datacenter this agent speaks for.
    pub dc: String,
    /// The datacenter's labels, sent in every Hello.
    pub labels: Labels,
    /// How the agent reaches the management plane.
    pub driver: DriverConfig,
    /// Where the driver keeps the assignments it applied.
    pub state_dir: PathBuf,
    /// The ceiling of the first reconnect delay.
    pub reconnect_min: Duration,
    /// The longest reconnect delay.
    pub reconnect_max: Duration,
    /// A PEM file of the authorities trusted for `https://` managers
    /// instead of the system's bundle.
    pub ca: Option<PathBuf>,
    /// The `agent:<dc>` token presented to managers.
    pub bearer: theia::api::auth::Bearer,
    /// The client certificate and key (PEM files) presented to managers
    /// that accept one in place of a token.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

/// Which driver connects the agent to its management plane.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverConfig {
    /// Capacity as configured: totals per class, in base units.
    Static {
        /// Total per class.
        inventory: Resources,
    },
    /// The capacity of the machine the agent runs on.
    Host,
}

impl DriverConfig {
    /// The driver's name as the `driver` key and the Hello spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Static { .. } => "static",
            Self::Host => "host",
        }
    }
}

/// Checks that `url` can be dialled: it parses as a URI with an `http` or
/// `https` scheme and a host.
pub(crate) fn check_manager_url(url: &str) -> Result<(), String> {
    let scheme_ok = ["http://", "https://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    });
    // Checked on the text: tonic reads `unix:` paths as endpoints of their own.
    if !scheme_ok {
        return Err(format!(
            "{url:?} needs an http:// or https:// scheme, e.g. http://127.0.0.1:7070"
        ));
    }
    let endpoint =
        Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let uri = endpoint.uri();
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

impl AgentConfig {
    /// Reads and checks the agent's keys; errors name the key and where its
    /// value came from.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            origin: c.source(key).cloned().unwrap_or(Source::Default),
            reason,
        };

        let managers = c.list("managers")?;
        if managers.is_empty() {
            return Err(invalid(
                "managers",
                "list at least one manager URL, e.g. http://127.0.0.1:7070".into(),
            ));
        }
        for url in &managers {
            check_manager_url(url).map_err(|reason| invalid("managers", reason))?;
        }

        let dc = c.string("dc")?;
        validate_name("dc", &dc).map_err(|e| invalid("dc", e.reason))?;
        let labels: Labels = c.map("labels")?;
        validate_labels("labels", &labels).map_err(|e| invalid("labels", e.to_string()))?;

        let inventory = c.map("inventory")?;
        let driver = match c.string("driver")?.trim() {
            "static" => {
                if inventory.is_empty() {
                    return Err(ConfigError::Missing {
                        key: "inventory".into(),
                        hint: "the static driver needs the datacenter's totals, e.g. \
                               --inventory compute.vcpu=512,compute.memory=2Ti"
                            .into(),
                    });
                }
                let pairs = inventory.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let inventory = Resources::parse_map("inventory", pairs)
                    .map_err(|e| invalid("inventory", e.to_string()))?;
                DriverConfig::Static { inventory }
            }
            "host" => {
                if !inventory.is_empty() {
                    return Err(invalid(
                        "inventory",
                        "is only read by the static driver; set driver to static or unset inventory"
                            .into(),
                    ));
                }
                DriverConfig::Host
            }
            other => {
                return Err(invalid(
                    "driver",
                    format!("{other:?} is not a driver; use static or host"),
                ));
            }
        };

        let state_dir = c.string("state_dir")?;
        if state_dir.trim().is_empty() {
            return Err(invalid("state_dir", "must not be empty".into()));
        }

        let reconnect_min = c.duration("reconnect_min")?;
        let reconnect_max = c.duration("reconnect_max")?;
        if reconnect_min < Duration::from_millis(10) {
            // Zero would retry a dead manager in a hot loop.
            return Err(invalid("reconnect_min", "must be at least 10ms".into()));
        }
        if reconnect_max < reconnect_min {
            return Err(invalid(
                "reconnect_max",
                "must be at least reconnect_min".into(),
            ));
        }

        let ca = c
            .opt_string("ca")?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(path) = &ca {
            theia::api::tls::read_ca(path).map_err(|reason| invalid("ca", reason))?;
        }

        let client_identity = match (
            c.opt_string("client_cert")?.filter(|s| !s.is_empty()),
            c.opt_string("client_key")?.filter(|s| !s.is_empty()),
        ) {
            (Some(cert), Some(key)) => {
                for (k, file, marker) in [
                    ("client_cert", &cert, "-----BEGIN CERTIFICATE-----"),
                    ("client_key", &key, "PRIVATE KEY-----"),
                ] {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| invalid(k, format!("cannot read {file}: {e}")))?;
                    if !text.contains(marker) {
                        return Err(invalid(
                            k,
                            format!("{file} is not a PEM file of the right kind"),
                        ));
                    }
                }
                Some((PathBuf::from(cert), PathBuf::from(key)))
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("client_cert", "needs client_key".into())),
            (None, Some(_)) => return Err(invalid("client_key", "needs client_cert".into())),
        };
        let token = theia::api::auth::configured_token(c, None)?;
        let bearer = theia::api::auth::Bearer::new(token.as_deref())
            .map_err(|reason| invalid("token", reason))?;

        Ok(Self {
            managers,
            dc,
            labels,
            driver,
            state_dir: PathBuf::from(state_dir),
            reconnect_min,
            reconnect_max,
            ca,
            bearer,
            client_identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use theia::config::resolve;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut c = resolve([]);
        for (k, v) in pairs {
            c.set(k, *v);
        }
        c
    }

    fn error_of(pairs: &[(&str, &str)]) -> ConfigError {
        AgentConfig::from_config(&config(pairs)).expect_err("config must be refused")
    }

    fn invalid_key(e: &ConfigError) -> &str {
        match e {
            ConfigError::Invalid { key, .. } | ConfigError::Missing { key, .. } => key,
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn reads_a_static_agent() {
        let c = AgentConfig::from_config(&config(&[
            ("dc", "ams-1"),
            ("labels", "region=eu,tier=core"),
            ("driver", "static"),
            ("inventory", "compute.vcpu=512,compute.memory=2Ti"),
            ("managers", "http://10.0.0.1:7070, https://m2.example:7070"),
            ("state_dir", "/tmp/agent"),
            ("reconnect_min", "250ms"),
            ("reconnect_max", "10s"),
        ]))
        .unwrap();
        assert_eq!(c.dc, "ams-1");
        assert_eq!(c.labels.get("region").map(String::as_str), Some("eu"));
        assert_eq!(
            c.managers,
            ["http://10.0.0.1:7070", "https://m2.example:7070"]
        );
        let DriverConfig::Static { inventory } = &c.driver else {
            panic!("static driver expected, got {:?}", c.driver);
        };
        assert_eq!(
            inventory,
            &Resources::parse_list("x", "compute.vcpu=512,compute.memory=2Ti").unwrap()
        );
        assert_eq!(c.state_dir, PathBuf::from("/tmp/agent"));
        assert_eq!(c.reconnect_min, Duration::from_millis(250));
        assert_eq!(c.reconnect_max, Duration::from_secs(10));
    }

    #[test]
    fn defaults_to_the_host_driver_and_the_local_manager() {
        let c = AgentConfig::from_config(&config(&[("dc", "lab")])).unwrap();
        assert_eq!(c.driver, DriverConfig::Host);
        assert_eq!(c.managers, ["http://127.0.0.1:7070"]);
        assert!(c.labels.is_empty());
        assert_eq!(c.reconnect_min, Duration::from_secs(1));
        assert_eq!(c.reconnect_max, Duration::from_secs(30));
    }

    #[test]
    fn names_the_key_of_a_bad_dc() {
        let e = error_of(&[("dc", "Bad DC")]);
        assert_eq!(invalid_key(&e), "dc");
        assert!(e.to_string().contains("lower-case"), "{e}");
        let e = error_of(&[]);
        assert!(
            matches!(&e, ConfigError::Missing { key, .. } if key == "dc"),
            "{e}"
        );
    }

    #[test]
    fn names_the_key_of_bad_labels() {
        let e = error_of(&[("dc", "a"), ("labels", "bad key=x")]);
        assert_eq!(invalid_key(&e), "labels");
        let e = error_of(&[("dc", "a"), ("labels", "novalue")]);
        assert_eq!(invalid_key(&e), "labels");
    }

    #[test]
    fn names_the_key_of_a_bad_driver() {
        let e = error_of(&[("dc", "a"), ("driver", "openstack")]);
        assert_eq!(invalid_key(&e), "driver");
        assert!(e.to_string().contains("static or host"), "{e}");
    }

    #[test]
    fn the_static_driver_needs_a_valid_inventory() {
        let e = error_of(&[("dc", "a"), ("driver", "static")]);
        assert!(
            matches!(&e, ConfigError::Missing { key, .. } if key == "inventory"),
            "{e}"
        );
        let e = error_of(&[
            ("dc", "a"),
            ("driver", "static"),
            ("inventory", "compute.cpu=4"),
        ]);
        assert_eq!(invalid_key(&e), "inventory");
        assert!(e.to_string().contains("compute.cpu"), "{e}");
        let e = error_of(&[
            ("dc", "a"),
            ("driver", "static"),
            ("inventory", "compute.vcpu=x"),
        ]);
        assert_eq!(invalid_key(&e), "inventory");
    }

    #[test]
    fn an_inventory_for_the_host_driver_is_refused() {
        let e = error_of(&[("dc", "a"), ("inventory", "compute.vcpu=4")]);
        assert_eq!(invalid_key(&e), "inventory");
        assert!(e.to_string().contains("static"), "{e}");
    }

    #[test]
    fn names_the_key_of_a_bad_manager_url() {
        for bad in [
            "127.0.0.1:7070",
            "ftp://m1:21",
            "http://",
            "http://exa mple:1",
            "",
            "http://ok:1,unix:/tmp/sock",
        ] {
            let e = error_of(&[("dc", "a"), ("managers", bad)]);
            assert_eq!(invalid_key(&e), "managers", "{bad:?}: {e}");
        }
    }

    #[test]
    fn reconnect_delays_must_make_sense() {
        let e = error_of(&[("dc", "a"), ("reconnect_min", "0s")]);
        assert_eq!(invalid_key(&e), "reconnect_min");
        let e = error_of(&[
            ("dc", "a"),
            ("reconnect_min", "5s"),
            ("reconnect_max", "1s"),
        ]);
        assert_eq!(invalid_key(&e), "reconnect_max");
        let e = error_of(&[("dc", "a"), ("reconnect_max", "soon")]);
        assert_eq!(invalid_key(&e), "reconnect_max");
    }
}
