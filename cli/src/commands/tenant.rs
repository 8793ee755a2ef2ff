//! `theia tenant create|update|list|show|delete`.

use std::collections::BTreeSet;

use theia::api::v1;

use super::Ctx;
use crate::args::{KvList, TenantCommand};
use crate::client::{PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, table};
use crate::wire::{kv_text, list_text, or_dash};

/// Runs a `tenant` command.
pub async fn run(ctx: &Ctx, command: TenantCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let mut tenants = client.tenants();
    match command {
        TenantCommand::Create {
            name,
            quota,
            owner,
            delegates,
            labels,
        } => {
            let tenant = new_tenant(name, quota, owner, delegates, labels);
            let t = tenants
                .create_tenant(v1::CreateTenantRequest {
                    tenant: Some(tenant),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out
                .show(|| json::proto(&t), || format!("created tenant {}", t.name))
        }
        TenantCommand::Update {
            name,
            quota,
            owner,
            delegates,
            labels,
        } => {
            let mut paths = Vec::new();
            for (given, path) in [
                (quota.is_some(), "quota"),
                (owner.is_some(), "owner"),
                (!delegates.is_empty(), "delegates"),
                (labels.is_some(), "labels"),
            ] {
                if given {
                    paths.push(path.to_owned());
                }
            }
            if paths.is_empty() {
                return Err(CliError::other(
                    "nothing to change: give --quota, --owner, --delegate or --labels",
                ));
            }
            let tenant = new_tenant(name, quota, owner, delegates, labels);
            let t = tenants
                .update_tenant(v1::UpdateTenantRequest {
                    tenant: Some(tenant),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out
                .show(|| json::proto(&t), || format!("updated tenant {}", t.name))
        }
        TenantCommand::List => {
            let list = all_pages("tenants", |page_token| {
                let mut tenants = tenants.clone();
                let request = v1::ListTenantsRequest {
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = tenants.list_tenants(request).await?.into_inner();
                    Ok((page.tenants, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListTenantsResponse {
                        tenants: list.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&list),
            )
        }
        TenantCommand::Show { name } => {
            let t = tenants
                .get_tenant(v1::GetTenantRequest { name })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&t), || show_view(&t))
        }
        TenantCommand::Delete { name } => {
            tenants
                .delete_tenant(v1::DeleteTenantRequest { name: name.clone() })
                .await
                .map_err(|s| client.error(s))?;
            ctx.out.show(
                || json::proto(&v1::DeleteTenantResponse {}),
                || format!("deleted tenant {name}"),
            )
        }
    }
}

/// The tenant `tenant create` asks for.
fn new_tenant(
    name: String,
    quota: Option<KvList>,
    owner: Option<String>,
    delegates: Vec<String>,
    labels: Option<KvList>,
) -> v1::Tenant {
    v1::Tenant {
        name,
        owner: owner.unwrap_or_default(),
        delegates,
        labels: labels.as_ref().map(KvList::to_wire).unwrap_or_default(),
        quota: quota.as_ref().map(KvList::to_wire).unwrap_or_default(),
        ..Default::default()
    }
}

fn list_view(list: &[v1::Tenant]) -> String {
    if list.is_empty() {
        return "no tenants; create one with `theia tenant create NAME`".to_owned();
    }
    table(
        &["NAME", "OWNER", "CLAIMS", "USAGE", "QUOTA", "LABELS"],
        list.iter().map(|t| {
            vec![
                t.name.clone(),
                or_dash(&t.owner),
                t.claims.to_string(),
                kv_text(&t.usage),
                kv_text(&t.quota),
                kv_text(&t.labels),
            ]
        }),
    )
}

fn show_view(t: &v1::Tenant) -> String {
    let head = fields(&[
        ("name", t.name.clone()),
        ("owner", or_dash(&t.owner)),
        ("delegates", list_text(&t.delegates)),
        ("labels", kv_text(&t.labels)),
        ("claims", t.claims.to_string()),
    ]);
    let classes: BTreeSet<&String> = t.quota.keys().chain(t.usage.keys()).collect();
    if classes.is_empty() {
        return format!("{head}\n\nno quota set and nothing in use");
    }
    let rows = classes.into_iter().map(|class| {
        vec![
            class.clone(),
            t.usage
                .get(class)
                .cloned()
                .unwrap_or_else(|| "0".to_owned()),
            t.quota
                .get(class)
                .cloned()
                .unwrap_or_else(|| "unlimited".to_owned()),
        ]
    });
    format!("{head}\n\n{}", table(&["CLASS", "USAGE", "QUOTA"], rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_kv_list;

    #[test]
    fn create_passes_lists_through_as_maps() {
        let t = new_tenant(
            "acme".into(),
            Some(parse_kv_list("compute.vcpu=512,compute.memory=2Ti").unwrap()),
            Some("ops@acme".into()),
            vec!["alice".into(), "bob".into()],
            Some(parse_kv_list("team=infra").unwrap()),
        );
        assert_eq!(t.name, "acme");
        assert_eq!(t.quota["compute.memory"], "2Ti");
        assert_eq!(t.quota.len(), 2);
        assert_eq!(t.owner, "ops@acme");
        assert_eq!(t.delegates, ["alice", "bob"]);
        assert_eq!(t.labels["team"], "infra");
        assert!(t.usage.is_empty());
    }

    #[test]
    fn show_lists_every_class_with_usage_and_quota() {
        let t = v1::Tenant {
            name: "acme".into(),
            quota: [("compute.vcpu".to_owned(), "8".to_owned())].into(),
            usage: [("compute.memory".to_owned(), "2Gi".to_owned())].into(),
            ..Default::default()
        };
        let view = show_view(&t);
        assert!(view.contains("compute.memory  2Gi    unlimited"), "{view}");
        assert!(view.contains("compute.vcpu    0      8"), "{view}");
    }
}
