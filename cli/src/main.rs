//! `theia`: parses the command line and hands it to [`theia_cli::run`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything uses TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = theia_cli::Cli::parse();
    let result = match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let result = runtime.block_on(theia_cli::run(cli));
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        }
        Err(e) => Err(theia_cli::CliError::other(format!(
            "cannot start the async runtime: {e}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", e.line());
            ExitCode::FAILURE
        }
    }
}
