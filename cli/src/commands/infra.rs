//! `theia infra`: the logical infrastructure.

use theia::api::v1;

use super::Ctx;
use crate::args::InfraArgs;
use crate::error::CliError;
use crate::json;
use crate::output::table;
use crate::wire::short_quantity;

/// Runs `theia infra`.
pub async fn run(ctx: &Ctx, args: InfraArgs) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let request = v1::GetLogicalInfrastructureRequest {
        selector: args.selector.unwrap_or_default(),
    };
    let infra = client
        .infrastructure()
        .get_logical_infrastructure(request)
        .await
        .map_err(|s| client.error(s))?
        .into_inner();
    ctx.out.show(|| json::proto(&infra), || view(&infra))
}

fn view(l: &v1::LogicalInfrastructure) -> String {
    let scope = if l.selector.is_empty() {
        "all datacenters".to_owned()
    } else {
        format!("datacenters matching {}", l.selector)
    };
    let counts = table(
        &["DATACENTERS", "ALIVE", "SUSPECT", "DOWN"],
        [vec![
            l.datacenters.to_string(),
            l.alive.to_string(),
            l.suspect.to_string(),
            l.down.to_string(),
        ]],
    );
    let capacity = if l.capacity.is_empty() {
        "no capacity reported".to_owned()
    } else {
        table(
            &["CLASS", "TOTAL", "ALLOCATED", "AVAILABLE"],
            l.capacity.iter().map(|c| {
                vec![
                    c.class.clone(),
                    short_quantity(&c.class, &c.total),
                    short_quantity(&c.class, &c.allocated),
                    short_quantity(&c.class, &c.available),
                ]
            }),
        )
    };
    format!("logical infrastructure of {scope}\n\n{counts}\n\n{capacity}")
}
