//! `theia profile create|list|show|delete`.

use theia::api::v1;

use super::Ctx;
use crate::args::ProfileCommand;
use crate::client::{PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, table};
use crate::wire::{kv_text, or_dash, sorted};

/// Runs a `profile` command.
pub async fn run(ctx: &Ctx, command: ProfileCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let mut profiles = client.profiles();
    match command {
        ProfileCommand::Create {
            name,
            resources,
            description,
        } => {
            let profile = v1::Profile {
                name,
                resources: resources.to_wire(),
                description: description.unwrap_or_default(),
            };
            let p = profiles
                .create_profile(v1::CreateProfileRequest {
                    profile: Some(profile),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(
                || json::proto(&p),
                || format!("created profile {} ({})", p.name, kv_text(&p.resources)),
            )
        }
        ProfileCommand::List => {
            let list = all_pages("profiles", |page_token| {
                let mut profiles = profiles.clone();
                let request = v1::ListProfilesRequest {
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = profiles.list_profiles(request).await?.into_inner();
                    Ok((page.profiles, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListProfilesResponse {
                        profiles: list.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&list),
            )
        }
        ProfileCommand::Show { name } => {
            let p = profiles
                .get_profile(v1::GetProfileRequest { name })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&p), || show_view(&p))
        }
        ProfileCommand::Delete { name } => {
            profiles
                .delete_profile(v1::DeleteProfileRequest { name: name.clone() })
                .await
                .map_err(|s| client.error(s))?;
            ctx.out.show(
                || json::proto(&v1::DeleteProfileResponse {}),
                || format!("deleted profile {name}"),
            )
        }
    }
}

fn list_view(list: &[v1::Profile]) -> String {
    if list.is_empty() {
        return "no profiles; create one with `theia profile create NAME --resources ...`"
            .to_owned();
    }
    table(
        &["NAME", "RESOURCES", "DESCRIPTION"],
        list.iter().map(|p| {
            vec![
                p.name.clone(),
                kv_text(&p.resources),
                or_dash(&p.description),
            ]
        }),
    )
}

fn show_view(p: &v1::Profile) -> String {
    let head = fields(&[
        ("name", p.name.clone()),
        ("description", or_dash(&p.description)),
    ]);
    let rows = sorted(&p.resources)
        .into_iter()
        .map(|(class, amount)| vec![class.to_owned(), amount.to_owned()]);
    format!("{head}\n\n{}", table(&["CLASS", "PER_UNIT"], rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_resources_in_class_order_and_description_last() {
        let p = v1::Profile {
            name: "m.large".into(),
            resources: [
                ("compute.vcpu".to_owned(), "64".to_owned()),
                ("compute.memory".to_owned(), "256Gi".to_owned()),
            ]
            .into(),
            description: "general purpose".into(),
        };
        let view = list_view(&[p]);
        let row: Vec<&str> = view.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            [
                "m.large",
                "compute.memory=256Gi,compute.vcpu=64",
                "general",
                "purpose"
            ]
        );
    }
}
