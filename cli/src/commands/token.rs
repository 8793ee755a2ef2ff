//! `theia token create|list|revoke` and `theia whoami`.

use theia::api::v1;

use super::Ctx;
use crate::args::TokenCommand;
use crate::client::{PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, printable, table};
use crate::wire::{age, list_text, or_dash};

fn expiry(t: &v1::Token) -> String {
    if t.expires_unix_ms == 0 {
        "never".to_owned()
    } else {
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(t.expires_unix_ms).unwrap_or(0));
        humantime::format_rfc3339_seconds(at).to_string()
    }
}

/// Runs a `token` command.
pub async fn run(ctx: &Ctx, command: TokenCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let mut access = client.access();
    match command {
        TokenCommand::Create {
            subject,
            roles,
            ttl,
            description,
            quiet,
        } => {
            let made = access
                .create_token(v1::CreateTokenRequest {
                    subject,
                    roles,
                    ttl_seconds: ttl.unwrap_or(0),
                    description: description.unwrap_or_default(),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            let token = made.token.clone().unwrap_or_default();
            if quiet && ctx.out.format == crate::args::OutputFormat::Table {
                return crate::output::print_text(&made.secret);
            }
            ctx.out.show(
                || json::proto(&made),
                || {
                    format!(
                        "{}\n(token {} for {}, roles {}, expires {}; shown once: keep it safe)",
                        made.secret,
                        token.id,
                        printable(&token.subject),
                        list_text(&token.roles),
                        expiry(&token)
                    )
                },
            )
        }
        TokenCommand::List => {
            let tokens = all_pages("tokens", |page_token| {
                let mut access = access.clone();
                let request = v1::ListTokensRequest {
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = access.list_tokens(request).await?.into_inner();
                    Ok((page.tokens, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListTokensResponse {
                        tokens: tokens.clone(),
                        next_page_token: String::new(),
                    })
                },
                || {
                    table(
                        &["ID", "SUBJECT", "ROLES", "EXPIRES", "CREATED", "BY"],
                        tokens.iter().map(|t| {
                            vec![
                                t.id.clone(),
                                printable(&t.subject),
                                list_text(&t.roles),
                                expiry(t),
                                age(t.created_unix_ms),
                                printable(&t.created_by),
                            ]
                        }),
                    )
                },
            )
        }
        TokenCommand::Revoke { id } => {
            access
                .revoke_token(v1::RevokeTokenRequest { id: id.clone() })
                .await
                .map_err(|s| client.error(s))?;
            ctx.out.show(
                || json::proto(&v1::RevokeTokenResponse {}),
                || format!("revoked token {id}"),
            )
        }
    }
}

/// Runs `theia whoami`.
pub async fn whoami(ctx: &Ctx) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let me = client
        .access()
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .map_err(|s| client.error(s))?
        .into_inner();
    let token = me.token.clone().unwrap_or_default();
    ctx.out.show(
        || json::proto(&me),
        || {
            fields(&[
                ("Subject", printable(&token.subject)),
                ("Token", token.id.clone()),
                ("Roles", or_dash(&list_text(&token.roles))),
                ("Tenants", or_dash(&list_text(&me.tenants))),
                ("Expires", expiry(&token)),
            ])
        },
    )
}
