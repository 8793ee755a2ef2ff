//! `theia audit list|tail`: the audit trail, read back and followed.

use std::io::Write;

use theia::api::v1;

use super::Ctx;
use crate::args::{AuditCommand, EventSelection, OutcomeArg, OutputFormat};
use crate::client::PAGE;
use crate::error::CliError;
use crate::json;
use crate::output::{printable, table};

/// Runs an `audit` command.
pub async fn run(ctx: &Ctx, command: AuditCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    match command {
        AuditCommand::List {
            select,
            limit,
            oldest_first,
        } => {
            let filter = filter(&select);
            let mut events = Vec::new();
            let mut page_token = String::new();
            loop {
                let want = if limit == 0 {
                    PAGE
                } else {
                    u32::try_from(limit - events.len())
                        .unwrap_or(PAGE)
                        .min(PAGE)
                };
                let page = client
                    .audit()
                    .list_events(v1::ListEventsRequest {
                        filter: Some(filter.clone()),
                        page_size: want,
                        page_token,
                        newest_first: !oldest_first,
                    })
                    .await
                    .map_err(|s| client.error(s))?
                    .into_inner();
                events.extend(page.events);
                page_token = page.next_page_token;
                if page_token.is_empty() || (limit != 0 && events.len() >= limit) {
                    break;
                }
            }
            // Read in the order things happened, the newest last.
            if !oldest_first {
                events.reverse();
            }
            ctx.out.show(
                || {
                    json::proto(&v1::ListEventsResponse {
                        events: events.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&events),
            )
        }
        AuditCommand::Tail {
            select,
            resume_after,
        } => {
            let stream = client
                .audit()
                .watch_events(v1::WatchEventsRequest {
                    filter: Some(filter(&select)),
                    resume_after: resume_after.unwrap_or_default(),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            follow(ctx, &client, stream, line).await
        }
    }
}

/// Prints each item of `stream` as it comes, as `line` words it (one JSON
/// object a line with --output json), until interrupted or the reader of
/// stdout goes away.
pub async fn follow<T: prost::Message + prost::Name + Default>(
    ctx: &Ctx,
    client: &crate::client::Client,
    mut stream: tonic::Streaming<T>,
    line: impl Fn(&T) -> String,
) -> Result<(), CliError> {
    loop {
        let item = tokio::select! {
            item = stream.message() => item.map_err(|s| client.error(s))?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(item) = item else {
            return Err(CliError::other(
                "the manager ended the stream (it is stopping); run again with --resume-after and the last token printed to go on",
            ));
        };
        let text = match ctx.out.format {
            OutputFormat::Table => line(&item),
            // One JSON object a line, to be read as it comes.
            OutputFormat::Json | OutputFormat::Yaml => json::proto(&item).to_string(),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing to do.
            return Ok(());
        }
    }
}

/// The query the selection makes.
fn filter(s: &EventSelection) -> v1::EventFilter {
    let ms = |v: Option<u64>| v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
    v1::EventFilter {
        since_unix_ms: ms(s.since),
        until_unix_ms: ms(s.until),
        actor: s.actor.clone().unwrap_or_default(),
        tenant: s.tenant.clone().unwrap_or_default(),
        object_kind: s.kind.clone().unwrap_or_default(),
        object_id: s.object.clone().unwrap_or_default(),
        action: s.action.clone().unwrap_or_default(),
        outcome: match s.outcome {
            None => v1::Outcome::Any,
            Some(OutcomeArg::Ok) => v1::Outcome::Ok,
            Some(OutcomeArg::Failed) => v1::Outcome::Failed,
        } as i32,
    }
}

/// The gRPC code's canonical name, `ok` for success.
pub fn outcome(code: u32) -> String {
    let name = match code {
        0 => "ok",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        other => return format!("code {other}"),
    };
    name.to_owned()
}

fn time(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

fn object(e: &v1::Event) -> String {
    if e.object_id.is_empty() {
        e.object_kind.clone()
    } else {
        format!("{}/{}", e.object_kind, e.object_id)
    }
}

fn list_view(events: &[v1::Event]) -> String {
    if events.is_empty() {
        return "no events".to_owned();
    }
    table(
        &[
            "TIME", "ACTOR", "ACTION", "OBJECT", "TENANT", "OUTCOME", "MESSAGE",
        ],
        events.iter().map(|e| {
            vec![
                time(e.time_unix_ms),
                printable(&e.actor),
                e.action.clone(),
                printable(&object(e)),
                if e.tenant.is_empty() {
                    "-".to_owned()
                } else {
                    e.tenant.clone()
                },
                outcome(e.code),
                printable(&e.message),
            ]
        }),
    )
}

/// One event as one line, for following.
fn line(e: &v1::Event) -> String {
    let tenant = if e.tenant.is_empty() {
        String::new()
    } else {
        format!(" tenant={}", e.tenant)
    };
    let message = if e.message.is_empty() {
        String::new()
    } else {
        format!(": {}", printable(&e.message))
    };
    format!(
        "{} {} {} {}{tenant} {}{message}  [{}]",
        time(e.time_unix_ms),
        printable(&e.actor),
        e.action,
        printable(&object(e)),
        outcome(e.code),
        e.id
    )
}
