//! One module per command group; each turns arguments into requests and
//! answers into output.

pub mod audit;
pub mod cert;
pub mod claim;
pub mod cluster;
pub mod config;
pub mod dc;
pub mod dev;
pub mod docs;
pub mod infra;
pub mod maintenance;
pub mod profile;
pub mod secret;
pub mod tenant;
pub mod token;

use theia::config::{Config, ConfigError, Source};

use crate::args::OutputFormat;
use crate::client::Client;
use crate::error::CliError;
use crate::output::Output;

/// What every command gets: the effective configuration and the output format.
#[derive(Debug)]
pub struct Ctx {
    /// The effective configuration.
    pub config: Config,
    /// Where results go.
    pub out: Output,
}

impl Ctx {
    /// Checks the output format and keeps the configuration.
    pub fn new(config: Config) -> Result<Self, CliError> {
        let format = output_format(&config)?;
        Ok(Self {
            config,
            out: Output { format },
        })
    }

    /// Connects to the configured manager.
    pub async fn client(&self) -> Result<Client, CliError> {
        let ca = match self.config.opt_string("ca")?.filter(|s| !s.is_empty()) {
            None => None,
            Some(file) => {
                let path = std::path::PathBuf::from(file);
                let pem = theia::api::tls::read_ca(&path).map_err(|reason| {
                    CliError::Config(ConfigError::Invalid {
                        key: "ca".to_owned(),
                        origin: self.config.source("ca").cloned().unwrap_or(Source::Default),
                        reason,
                    })
                })?;
                Some((path, pem))
            }
        };
        let user_file = theia::api::auth::user_token_file(|k| std::env::var(k).ok());
        let token = theia::api::auth::configured_token(&self.config, user_file.as_deref())?;
        let bearer = theia::api::auth::Bearer::new(token.as_deref())
            .map_err(|reason| CliError::other(format!("token: {reason}")))?;
        Client::connect_trusting(&self.config.string("manager")?, ca, bearer).await
    }
}

/// The `output` key, checked.
pub fn output_format(config: &Config) -> Result<OutputFormat, CliError> {
    let text = config.string("output")?;
    OutputFormat::parse(&text).map_err(|reason| {
        CliError::Config(ConfigError::Invalid {
            key: "output".to_owned(),
            origin: config.source("output").cloned().unwrap_or(Source::Default),
            reason,
        })
    })
}
