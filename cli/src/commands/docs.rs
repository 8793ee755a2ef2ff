//! `theia completion` and `theia man`: shell completions and man pages,
//! generated from the same command definitions the parser uses, so they
//! never drift from what `theia` accepts.

use std::path::Path;

use clap::CommandFactory;

use crate::Cli;
use crate::error::CliError;

/// Prints the completion script for `shell` to stdout.
pub fn completion(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "theia", &mut std::io::stdout());
    Ok(())
}

/// Writes `theia.1` and `theia-<command>.1` for every command into `dir`.
pub fn man(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::other(format!("cannot create {}: {e}", dir.display())))?;
    let written = pages(dir, Cli::command(), "theia")?;
    println!("wrote {written} man pages into {}", dir.display());
    Ok(())
}

fn pages(dir: &Path, command: clap::Command, name: &str) -> Result<usize, CliError> {
    let command = command.display_name(name.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|e| CliError::other(format!("cannot render {name}.1: {e}")))?;
    std::fs::write(&path, page)
        .map_err(|e| CliError::other(format!("cannot write {}: {e}", path.display())))?;
    let mut written = 1;
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        written += pages(dir, sub.clone(), &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_command() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "theia", &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["claim", "tenant", "explain", "cluster"] {
                assert!(text.contains(word), "{shell:?} completion lacks {word}");
            }
        }
    }

    #[test]
    fn man_pages_cover_every_command() {
        let dir = tempfile::tempdir().unwrap();
        man(dir.path()).unwrap();
        let top = std::fs::read_to_string(dir.path().join("theia.1")).unwrap();
        assert!(top.contains(".TH theia"), "{top}");
        let create = std::fs::read_to_string(dir.path().join("theia-claim-create.1")).unwrap();
        assert!(
            create.contains("request"),
            "claim create documents its options"
        );
        assert!(dir.path().join("theia-secret-generate.1").is_file());
    }
}
