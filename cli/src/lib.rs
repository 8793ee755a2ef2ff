//! `theia`: the operator and tenant command line. It talks to a
//! theia-manager over the `theia.v1` gRPC API, prints tables for people or
//! JSON for programs, and with `theia dev` runs a manager and a local agent
//! in one process.
//!
//! The binary only parses the command line and calls [`run`]; every failure
//! comes back as a [`CliError`] that `main` prints as one `error: ` line.
#![forbid(unsafe_code)]

pub mod args;
mod client;
mod commands;
pub mod error;
mod json;
mod output;
mod when;
mod wire;

use theia::config::{LoadOptions, load};

pub use args::Cli;
use args::Command;
use commands::{Ctx, output_format};
pub use error::CliError;

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { global, command } = cli;
    let config = load(&LoadOptions::from_process(
        global.config.clone(),
        global.flags(),
    ))?;
    match command {
        // Needs no manager, and must work even when `output` is wrong.
        Command::Config(c) => commands::config::run(&config, output_format(&config).ok(), c),
        Command::Dev(args) => commands::dev::run(&config, args).await,
        Command::Secret(c) => commands::secret::run(c),
        Command::Cert(crate::args::CertCommand::Init(a)) => commands::cert::init(a),
        Command::Completion(a) => commands::docs::completion(a.shell),
        Command::Man(a) => commands::docs::man(&a.dir),
        Command::Cluster(c) => commands::cluster::run(&Ctx::new(config)?, c).await,
        Command::Audit(c) => commands::audit::run(&Ctx::new(config)?, c).await,
        Command::Dc(c) => commands::dc::run(&Ctx::new(config)?, c).await,
        Command::Infra(a) => commands::infra::run(&Ctx::new(config)?, a).await,
        Command::Tenant(c) => commands::tenant::run(&Ctx::new(config)?, c).await,
        Command::Profile(c) => commands::profile::run(&Ctx::new(config)?, c).await,
        Command::Claim(c) => commands::claim::run(&Ctx::new(config)?, c).await,
        Command::Maintenance(c) => commands::maintenance::run(&Ctx::new(config)?, c).await,
        Command::Token(c) => commands::token::run(&Ctx::new(config)?, c).await,
        Command::Whoami => commands::token::whoami(&Ctx::new(config)?).await,
    }
}
