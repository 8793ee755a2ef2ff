//! `theia maintenance create|list|show|cancel`, and the impact report that
//! `theia dc drain` shares.

use theia::api::v1;

use super::Ctx;
use crate::args::MaintenanceCommand;
use crate::client::{Client, PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, table};
use crate::wire::{kv_text, or_dash};

/// Runs a `maintenance` command.
pub async fn run(ctx: &Ctx, command: MaintenanceCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let mut infra = client.infrastructure();
    match command {
        MaintenanceCommand::Create {
            datacenter,
            resources,
            all,
            start,
            end,
            duration,
            reason,
            force,
            dry_run,
        } => {
            let ms = |v: Option<u64>| v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
            let request = v1::CreateMaintenanceRequest {
                datacenter,
                resources: resources.map(|r| r.to_wire()).unwrap_or_default(),
                all,
                start_unix_ms: ms(start),
                end_unix_ms: ms(end),
                duration_ms: ms(duration),
                reason,
                force,
                dry_run,
            };
            create(ctx, &client, request).await
        }
        MaintenanceCommand::List { datacenter, all } => {
            let datacenter = datacenter.unwrap_or_default();
            let list = all_pages("maintenance", |page_token| {
                let mut infra = client.infrastructure();
                let request = v1::ListMaintenancesRequest {
                    datacenter: datacenter.clone(),
                    include_ended: all,
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = infra.list_maintenances(request).await?.into_inner();
                    Ok((page.maintenances, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListMaintenancesResponse {
                        maintenances: list.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&list),
            )
        }
        MaintenanceCommand::Show { id } => {
            let m = infra
                .get_maintenance(v1::GetMaintenanceRequest { id })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&m), || show_view(&m))
        }
        MaintenanceCommand::Cancel { id } => {
            let m = infra
                .cancel_maintenance(v1::CancelMaintenanceRequest { id })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(
                || json::proto(&m),
                || format!("cancelled maintenance {}", m.id),
            )
        }
    }
}

/// Sends `request` and prints the impact and what became of it.
pub async fn create(
    ctx: &Ctx,
    client: &Client,
    request: v1::CreateMaintenanceRequest,
) -> Result<(), CliError> {
    let answer = client
        .infrastructure()
        .create_maintenance(request)
        .await
        .map_err(|s| client.error(s))?
        .into_inner();
    ctx.out
        .show(|| json::proto(&answer), || created_view(&answer))
}

fn instant(ms: i64) -> String {
    if ms <= 0 {
        return "-".to_owned();
    }
    theia::model::format_instant(u64::try_from(ms).unwrap_or(0))
}

fn what(m: &v1::Maintenance) -> String {
    if m.all {
        "all".to_owned()
    } else {
        kv_text(&m.resources)
    }
}

fn until(m: &v1::Maintenance) -> String {
    if m.end_unix_ms > 0 {
        instant(m.end_unix_ms)
    } else {
        "cancelled".to_owned()
    }
}

fn created_view(a: &v1::CreateMaintenanceResponse) -> String {
    let default = v1::Maintenance::default();
    let m = a.maintenance.as_ref().unwrap_or(&default);
    let mut out = if a.accepted {
        format!(
            "maintenance {} on {}: {} from {} until {}",
            m.id,
            m.datacenter,
            what(m),
            instant(m.start_unix_ms),
            until(m)
        )
    } else {
        format!(
            "dry run: maintenance on {} ({} from {} until {}) would",
            m.datacenter,
            what(m),
            instant(m.start_unix_ms),
            until(m)
        )
    };
    if a.over_capacity.is_empty() {
        out.push_str(if a.accepted {
            "\nno claim is affected"
        } else {
            " affect no claim"
        });
        return out;
    }
    if !a.accepted {
        out.push_str(" take capacity that claims hold:");
    }
    out.push_str("\n\n");
    out.push_str(&table(
        &["CLASS", "NEEDED", "CAPACITY", "AT"],
        a.over_capacity.iter().map(|s| {
            vec![
                s.class.clone(),
                s.needed.clone(),
                s.capacity.clone(),
                instant(s.at_unix_ms),
            ]
        }),
    ));
    out.push_str("\n\n");
    out.push_str(&table(
        &["TENANT", "CLAIMS"],
        a.affected
            .iter()
            .map(|t| vec![t.tenant.clone(), t.claims.join(",")]),
    ));
    if a.accepted {
        out.push_str(&format!(
            "\n\nre-placed: {}\nat risk (fit nowhere else): {}",
            or_dash(&a.replaced.join(",")),
            or_dash(&a.at_risk.join(","))
        ));
    }
    out
}

fn list_view(list: &[v1::Maintenance]) -> String {
    if list.is_empty() {
        return "no maintenance".to_owned();
    }
    table(
        &["ID", "DATACENTER", "TAKES", "START", "END", "REASON"],
        list.iter().map(|m| {
            vec![
                m.id.clone(),
                m.datacenter.clone(),
                what(m),
                instant(m.start_unix_ms),
                until(m),
                m.reason.clone(),
            ]
        }),
    )
}

fn show_view(m: &v1::Maintenance) -> String {
    fields(&[
        ("id", m.id.clone()),
        ("datacenter", m.datacenter.clone()),
        ("takes", what(m)),
        ("start", instant(m.start_unix_ms)),
        ("end", until(m)),
        ("reason", or_dash(&m.reason)),
        ("created by", or_dash(&m.created_by)),
        ("created", instant(m.created_unix_ms)),
        ("cancelled", instant(m.cancelled_unix_ms)),
    ])
}
