//! `theia dc list|show|register|update|delete|drain|watch`.

use theia::api::v1;

use super::Ctx;
use crate::args::DcCommand;
use crate::client::{PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, table};
use crate::wire::{age, kv_text, liveness_name, or_dash, short_quantity, yes_no};

/// Runs a `dc` command.
pub async fn run(ctx: &Ctx, command: DcCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    match command {
        DcCommand::Watch {
            selector,
            resume_after,
        } => {
            let stream = client
                .infrastructure()
                .watch_datacenters(v1::WatchDatacentersRequest {
                    selector: selector.unwrap_or_default(),
                    resume_token: resume_after.unwrap_or_default(),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            super::audit::follow(ctx, &client, stream, change_line).await
        }
        DcCommand::List { selector } => {
            let selector = selector.unwrap_or_default();
            let dcs = all_pages("datacenters", |page_token| {
                let mut infra = client.infrastructure();
                let request = v1::ListDatacentersRequest {
                    selector: selector.clone(),
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = infra.list_datacenters(request).await?.into_inner();
                    Ok((page.datacenters, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListDatacentersResponse {
                        datacenters: dcs.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&dcs),
            )
        }
        DcCommand::Show { dc } => {
            let dc = client
                .infrastructure()
                .get_datacenter(v1::GetDatacenterRequest { id: dc })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&dc), || show_view(&dc))
        }
        DcCommand::Register { dc, labels } => {
            let dc = client
                .infrastructure()
                .register_datacenter(v1::RegisterDatacenterRequest {
                    id: dc,
                    labels: labels.map(|l| l.to_wire()).unwrap_or_default(),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(
                || json::proto(&dc),
                || {
                    format!(
                        "registered datacenter {id}; its agent connects with a token from: theia token create --subject agent-{id} --role agent:{id}",
                        id = dc.id
                    )
                },
            )
        }
        DcCommand::Update {
            dc,
            reserved,
            allocation_ratio,
            schedulable,
            labels,
        } => {
            let mut paths = Vec::new();
            let mut request = v1::UpdateDatacenterRequest {
                id: dc,
                ..Default::default()
            };
            if let Some(r) = reserved {
                request.reserved = r.to_wire();
                paths.push("reserved".to_owned());
            }
            if let Some(r) = allocation_ratio {
                for (class, text) in &r.0 {
                    let ratio: f64 = text.parse().map_err(|_| {
                        CliError::other(format!(
                            "--allocation-ratio: {class}={text} is not a number such as 4 or 1.5"
                        ))
                    })?;
                    request.allocation_ratio.insert(class.clone(), ratio);
                }
                paths.push("allocation_ratio".to_owned());
            }
            if let Some(s) = schedulable {
                request.schedulable = s;
                paths.push("schedulable".to_owned());
            }
            if let Some(l) = labels {
                request.labels = l.to_wire();
                paths.push("labels".to_owned());
            }
            if paths.is_empty() {
                return Err(CliError::other(
                    "nothing to change: pass --reserved, --allocation-ratio, --schedulable or --labels",
                ));
            }
            request.update_mask = Some(prost_types::FieldMask { paths });
            let dc = client
                .infrastructure()
                .update_datacenter(request)
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&dc), || show_view(&dc))
        }
        DcCommand::Drain {
            dc,
            reason,
            dry_run,
        } => {
            if !dry_run {
                client
                    .infrastructure()
                    .update_datacenter(v1::UpdateDatacenterRequest {
                        id: dc.clone(),
                        schedulable: false,
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["schedulable".to_owned()],
                        }),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| client.error(s))?;
            }
            let request = v1::CreateMaintenanceRequest {
                datacenter: dc,
                all: true,
                reason,
                force: true,
                dry_run,
                ..Default::default()
            };
            super::maintenance::create(ctx, &client, request).await
        }
        DcCommand::Delete { dc } => {
            client
                .infrastructure()
                .delete_datacenter(v1::DeleteDatacenterRequest { id: dc.clone() })
                .await
                .map_err(|s| client.error(s))?;
            ctx.out.show(
                || json::proto(&v1::DeleteDatacenterResponse {}),
                || format!("deleted datacenter {dc}"),
            )
        }
    }
}

/// One change of a datacenter as one line, for following.
fn change_line(change: &v1::DatacenterChange) -> String {
    let Some(dc) = &change.datacenter else {
        return format!("{}  [{}]", change.action, change.resume_token);
    };
    if change.action == "datacenter.decommission" {
        return format!("{} {}  [{}]", change.action, dc.id, change.resume_token);
    }
    format!(
        "{} {} {} schedulable={} claims={} labels={}  [{}]",
        change.action,
        dc.id,
        liveness_name(dc.liveness),
        yes_no(dc.schedulable),
        dc.claims,
        kv_text(&dc.labels),
        change.resume_token
    )
}

fn list_view(dcs: &[v1::Datacenter]) -> String {
    if dcs.is_empty() {
        return "no datacenters; register one with `theia dc register ID` (or make its agent token), then start its theia-agent".to_owned();
    }
    table(
        &[
            "ID",
            "LIVENESS",
            "SCHEDULABLE",
            "CLAIMS",
            "SEEN",
            "DRIVER",
            "LABELS",
        ],
        dcs.iter().map(|dc| {
            vec![
                dc.id.clone(),
                liveness_name(dc.liveness).to_owned(),
                yes_no(dc.schedulable).to_owned(),
                dc.claims.to_string(),
                age(dc.last_seen_unix_ms),
                or_dash(&dc.driver),
                kv_text(&dc.labels),
            ]
        }),
    )
}

fn capacity_table(capacity: &[v1::ClassCapacity]) -> String {
    table(
        &[
            "CLASS",
            "TOTAL",
            "RESERVED",
            "RATIO",
            "ALLOCATED",
            "AVAILABLE",
            "REPORTED_FREE",
        ],
        capacity.iter().map(|c| {
            vec![
                c.class.clone(),
                short_quantity(&c.class, &c.total),
                short_quantity(&c.class, &c.reserved),
                format!("{}", c.allocation_ratio),
                short_quantity(&c.class, &c.allocated),
                short_quantity(&c.class, &c.available),
                short_quantity(&c.class, &c.reported_free),
            ]
        }),
    )
}

fn show_view(dc: &v1::Datacenter) -> String {
    let head = fields(&[
        ("id", dc.id.clone()),
        ("liveness", liveness_name(dc.liveness).to_owned()),
        ("schedulable", yes_no(dc.schedulable).to_owned()),
        ("last seen", last_seen(dc.last_seen_unix_ms)),
        ("agent", or_dash(&dc.agent_version)),
        ("driver", or_dash(&dc.driver)),
        ("labels", kv_text(&dc.labels)),
        ("claims", dc.claims.to_string()),
        (
            "over-committed",
            if dc.over_committed.is_empty() {
                "no".to_owned()
            } else {
                format!("{} (its claims are at risk)", dc.over_committed.join(", "))
            },
        ),
        ("ignored reports", dc.ignored_reports.to_string()),
    ]);
    if dc.capacity.is_empty() {
        return format!("{head}\n\nno capacity reported yet");
    }
    format!("{head}\n\n{}", capacity_table(&dc.capacity))
}

fn last_seen(unix_ms: i64) -> String {
    match age(unix_ms) {
        a if a == "never" => a,
        a => format!("{a} ago"),
    }
}
