//! `theia`: parses the command line and hands it to [`theia_cli::run`].

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Help and version print as clap renders them; a usage error is one line
/// and exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        theia::config::usage_error_line(&e.render().to_string())
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // ring is the only crypto provider; install it before anything uses TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match theia_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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
            ExitCode::from(e.exit_code())
        }
    }
}
