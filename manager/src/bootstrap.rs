//! The first admin token: made at the first start of a store that never
//! held a token, and handed over once, in a file only the manager's user
//! can read.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use theia::access::{Role, TokenRequest};

use crate::app::App;

/// The subject of the first admin token, and its maker.
const SUBJECT: &str = "admin";

/// Makes the first admin token if the store never held a token (or, with
/// `again`, in any case), and writes it to `path`. The file is written (under a temporary name) before the
/// token is stored and renamed once it is durable, so that a failed start
/// leaves neither a token nobody holds nor a file with a token that does
/// not exist.
pub async fn first_admin_token(app: &App, path: &Path, again: bool) -> anyhow::Result<()> {
    let mut ledger = app.ledger.lock().await;
    if !again && ledger.books.tokens.registers().next().is_some() {
        return Ok(());
    }
    let request = TokenRequest {
        subject: SUBJECT.to_owned(),
        roles: [Role::Admin].into(),
        expires_unix_ms: None,
        description: "made at the first start; make named tokens with `theia token create`"
            .to_owned(),
    };
    let by = if again {
        "new-admin-token"
    } else {
        "bootstrap"
    };
    let (token, secret, durable) = crate::service::issue(&mut ledger, request, by);
    drop(ledger);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("bootstrap_token_file: cannot create {}", dir.display()))?;
    }
    let staged = path.with_extension("token.new");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staged)?;
        f.write_all(format!("{secret}\n").as_bytes())?;
        f.sync_all()
    };
    write().with_context(|| format!("bootstrap_token_file: cannot write {}", staged.display()))?;
    if let Err(e) = durable.wait().await {
        let _ = std::fs::remove_file(&staged);
        return Err(anyhow::anyhow!(e).context("cannot store the first admin token"));
    }
    std::fs::rename(&staged, path)
        .with_context(|| format!("bootstrap_token_file: cannot write {}", path.display()))?;
    tracing::warn!(file = %path.display(), token = %token.id, made_by = by, "made an admin token and wrote it to this file (mode 0600); keep it safe, make named tokens with `theia token create`, then delete the file");
    Ok(())
}
