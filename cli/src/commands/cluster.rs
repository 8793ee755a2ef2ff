//! `theia cluster status`: which managers serve, on which store.

use theia::api::v1;

use super::Ctx;
use crate::args::ClusterCommand;
use crate::error::CliError;
use crate::output::table;

/// Runs `theia cluster ...`.
pub async fn run(ctx: &Ctx, command: ClusterCommand) -> Result<(), CliError> {
    match command {
        ClusterCommand::Status => {
            let client = ctx.client().await?;
            let status = client
                .cluster()
                .get_cluster_status(v1::GetClusterStatusRequest {})
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out
                .show(|| crate::json::proto(&status), || view(&status))
        }
    }
}

fn view(s: &v1::ClusterStatus) -> String {
    let managers = table(
        &["MANAGER", "ADDRESS", "VERSION", "ANSWERED"],
        s.managers.iter().map(|m| {
            let answered = if m.id == s.manager_id { "yes" } else { "" };
            vec![
                m.id.clone(),
                m.address.clone(),
                m.version.clone(),
                answered.to_owned(),
            ]
        }),
    );
    format!(
        "cluster     {}\nstore       {} at {}\npending     {} coalesced change(s)\nagents      {} connected, {} datacenter(s) known\naudit       {} event(s) left out by this manager\n\n{managers}",
        s.cluster_id,
        s.store_backend,
        s.store_location,
        s.pending_changes,
        s.connected_agents,
        s.datacenters,
        s.audit_events_dropped
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_the_cluster_the_store_and_the_managers() {
        let s = v1::ClusterStatus {
            manager_id: "m-1".into(),
            cluster_id: "k-0123456789abcdef".into(),
            managers: vec![v1::Manager {
                id: "m-1".into(),
                address: "127.0.0.1:7070".into(),
                last_seen_unix_ms: 1,
                version: "0.1.0".into(),
            }],
            store_backend: "redis".into(),
            store_location: "redis://***@db:6379".into(),
            audit_events_dropped: 3,
            ..Default::default()
        };
        let text = view(&s);
        for part in [
            "k-0123456789abcdef",
            "redis at redis://***@db:6379",
            "m-1",
            "127.0.0.1:7070",
            "yes",
            "3 event(s) left out",
        ] {
            assert!(text.contains(part), "{part} missing: {text}");
        }
        assert_eq!(crate::json::proto(&s)["storeBackend"], "redis");
    }
}
