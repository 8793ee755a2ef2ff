//! `theia secret generate`: a new cluster secret, from the operating
//! system's randomness. Local only; printed once, to stdout, and nowhere else.

use theia_manager::Secret;

use crate::args::SecretCommand;
use crate::error::CliError;
use crate::output::print_text;

/// Runs `theia secret ...`.
pub fn run(command: SecretCommand) -> Result<(), CliError> {
    match command {
        SecretCommand::Generate => print_text(&Secret::generate().to_hex()),
    }
}
