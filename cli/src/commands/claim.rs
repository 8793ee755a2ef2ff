//! `theia claim create|list|show|release|explain|watch`.

use theia::api::v1;

use super::Ctx;
use crate::args::ClaimCommand;
use crate::client::{PAGE, all_pages};
use crate::error::CliError;
use crate::json;
use crate::output::{fields, print_text, table};
use crate::wire::{age, kv_text, list_text, or_dash, state_name, strategy_name, yes_no};

/// Runs a `claim` command.
pub async fn run(ctx: &Ctx, command: ClaimCommand) -> Result<(), CliError> {
    let client = ctx.client().await?;
    let mut claims = client.claims();
    match command {
        ClaimCommand::Watch {
            tenant,
            tenant_selector,
            resume_after,
        } => {
            let stream = claims
                .watch_claims(v1::WatchClaimsRequest {
                    tenant: tenant.unwrap_or_default(),
                    tenant_selector: tenant_selector.unwrap_or_default(),
                    resume_token: resume_after.unwrap_or_default(),
                })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            super::audit::follow(ctx, &client, stream, change_line).await
        }
        ClaimCommand::Create {
            spec,
            request_id,
            quiet,
            wait,
        } => {
            let request = v1::CreateClaimRequest {
                spec: Some(spec.to_wire(request_id.as_deref())),
            };
            let mut c = claims
                .create_claim(request)
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            if wait {
                c = wait_until_active(c, |id| {
                    let mut claims = claims.clone();
                    async move {
                        claims
                            .get_claim(v1::GetClaimRequest { id })
                            .await
                            .map(tonic::Response::into_inner)
                    }
                })
                .await
                .map_err(|e| match e {
                    Waited::Call(s) => client.error(s),
                    Waited::Ended(c) => CliError::other(format!(
                        "claim {} is {} before every agent applied it",
                        c.id,
                        state_name(c.state)
                    )),
                    Waited::Failed(c) => CliError::other(format!(
                        "claim {} failed ({}); it keeps its capacity until released, and turns active if the agent applies it later",
                        c.id,
                        c.failure_reasons.join("; ")
                    )),
                })?;
            }
            // With --output json the claim is printed as JSON anyway, so
            // that stdout always parses.
            if quiet && ctx.out.format == crate::args::OutputFormat::Table {
                return print_text(&c.id);
            }
            ctx.out.show(|| json::proto(&c), || created_view(&c))
        }
        ClaimCommand::List { tenant, all } => {
            let tenant = tenant.unwrap_or_default();
            let list = all_pages("claims", |page_token| {
                let mut claims = claims.clone();
                let request = v1::ListClaimsRequest {
                    tenant: tenant.clone(),
                    include_released: all,
                    page_size: PAGE,
                    page_token,
                };
                async move {
                    let page = claims.list_claims(request).await?.into_inner();
                    Ok((page.claims, page.next_page_token))
                }
            })
            .await
            .map_err(|s| client.error(s))?;
            ctx.out.show(
                || {
                    json::proto(&v1::ListClaimsResponse {
                        claims: list.clone(),
                        next_page_token: String::new(),
                    })
                },
                || list_view(&list),
            )
        }
        ClaimCommand::Show { id } => {
            let c = claims
                .get_claim(v1::GetClaimRequest { id })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out.show(|| json::proto(&c), || show_view(&c))
        }
        ClaimCommand::Release { id } => {
            let c = claims
                .release_claim(v1::ReleaseClaimRequest { id })
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            ctx.out
                .show(|| json::proto(&c), || format!("released claim {}", c.id))
        }
        ClaimCommand::Explain { spec } => {
            let request = v1::ExplainClaimRequest {
                spec: Some(spec.to_wire(None)),
            };
            let e = claims
                .explain_claim(request)
                .await
                .map_err(|s| client.error(s))?
                .into_inner();
            // A question, not a failure: the exit status is 0 either way.
            ctx.out.show(|| json::proto(&e), || explain_view(&e))
        }
    }
}

/// How often `--wait` asks again.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Why waiting for a claim stopped short.
enum Waited {
    /// A call failed.
    Call(tonic::Status),
    /// The claim ended first.
    Ended(Box<v1::Claim>),
    /// An agent could not apply its part.
    Failed(Box<v1::Claim>),
}

/// Asks for the claim (with `get`) until it is active, showing where it is
/// on a progress line; a claim that ends or fails first is an error.
async fn wait_until_active<F, Fut>(mut c: v1::Claim, get: F) -> Result<v1::Claim, Waited>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<v1::Claim, tonic::Status>>,
{
    let mut progress = crate::output::Progress::on_terminal();
    loop {
        match v1::ClaimState::try_from(c.state) {
            Ok(v1::ClaimState::Active) => {
                progress.done();
                return Ok(c);
            }
            Ok(v1::ClaimState::Released | v1::ClaimState::Expired) => {
                progress.done();
                return Err(Waited::Ended(Box::new(c)));
            }
            Ok(v1::ClaimState::Failed) => {
                progress.done();
                return Err(Waited::Failed(Box::new(c)));
            }
            _ => progress.show(&wait_line(&c, crate::wire::now_ms())),
        }
        tokio::time::sleep(WAIT_POLL).await;
        c = get(c.id.clone()).await.map_err(Waited::Call)?;
    }
}

/// Where a claim being waited for is: how long until it starts, or how
/// many of its datacenters applied it.
fn wait_line(c: &v1::Claim, now_ms: i64) -> String {
    if c.state == v1::ClaimState::Pending as i32 {
        let secs = (c.start_unix_ms - now_ms).max(0) / 1000;
        return format!(
            "claim {} pending: starts in {}",
            c.id,
            crate::wire::span(secs)
        );
    }
    let applied = c.placements.iter().filter(|p| p.applied).count();
    format!(
        "claim {} placed: {applied} of {} datacenters applied it…",
        c.id,
        c.placements.len()
    )
}

/// The window a claim holds over, for people: `from now until released`,
/// `2026-12-01T00:00:00Z → 2026-12-08T00:00:00Z`.
fn window_text(c: &v1::Claim) -> String {
    let instant = |ms: i64| theia::model::format_instant(u64::try_from(ms).unwrap_or(0));
    let end = if c.end_unix_ms > 0 {
        instant(c.end_unix_ms)
    } else {
        "released".to_owned()
    };
    format!("{} → {end}", instant(c.start_unix_ms))
}

/// `profile small` or the explicit resources of one unit.
fn unit_text(spec: Option<&v1::ClaimSpec>) -> String {
    match spec {
        Some(s) if !s.profile.is_empty() => format!("profile {}", s.profile),
        Some(s) => kv_text(&s.resources),
        None => "-".to_owned(),
    }
}

/// Where the units went, as `dc1:2,dc2:1`.
fn placement_text(placements: &[v1::Placement]) -> String {
    let parts: Vec<String> = placements
        .iter()
        .map(|p| format!("{}:{}", p.datacenter, p.units))
        .collect();
    list_text(&parts)
}

fn placements_table(placements: &[v1::Placement], with_applied: bool) -> String {
    let mut headers = vec!["DATACENTER", "UNITS", "RESOURCES"];
    if with_applied {
        headers.push("APPLIED");
    }
    let failures: String = placements
        .iter()
        .filter(|p| with_applied && !p.apply_error.is_empty())
        .map(|p| {
            format!(
                "\n{}: the agent could not apply it: {}",
                p.datacenter, p.apply_error
            )
        })
        .collect();
    let rows = table(
        &headers,
        placements.iter().map(|p| {
            let mut row = vec![
                p.datacenter.clone(),
                p.units.to_string(),
                kv_text(&p.resources),
            ];
            if with_applied {
                row.push(yes_no(p.applied).to_owned());
            }
            row
        }),
    );
    format!("{rows}{failures}")
}

fn created_view(c: &v1::Claim) -> String {
    let (tenant, count) = c
        .spec
        .as_ref()
        .map_or(("-", 0), |s| (s.tenant.as_str(), s.count));
    let units = if count == 1 { "unit" } else { "units" };
    let window = if c.state == v1::ClaimState::Pending as i32 || c.end_unix_ms > 0 {
        format!(", {}", window_text(c))
    } else {
        String::new()
    };
    format!(
        "claim {} {}: {count} {units} of {} for tenant {tenant}{window}\n\n{}",
        c.id,
        state_name(c.state),
        unit_text(c.spec.as_ref()),
        placements_table(&c.placements, true)
    )
}

/// One change of a claim as one line, for following.
fn change_line(change: &v1::ClaimChange) -> String {
    let Some(c) = &change.claim else {
        return format!("{}  [{}]", change.action, change.resume_token);
    };
    let tenant = c.spec.as_ref().map_or("-", |s| s.tenant.as_str());
    let risk = if c.at_risk { " at risk" } else { "" };
    format!(
        "{} {} {tenant} {} {}{risk}  [{}]",
        change.action,
        c.id,
        state_name(c.state),
        placement_text(&c.placements),
        change.resume_token
    )
}

fn list_view(list: &[v1::Claim]) -> String {
    if list.is_empty() {
        return "no claims".to_owned();
    }
    table(
        &[
            "ID",
            "TENANT",
            "STATE",
            "UNITS",
            "UNIT",
            "PLACEMENT",
            "AT_RISK",
            "AGE",
        ],
        list.iter().map(|c| {
            let spec = c.spec.as_ref();
            vec![
                c.id.clone(),
                spec.map_or_else(|| "-".to_owned(), |s| s.tenant.clone()),
                state_name(c.state).to_owned(),
                spec.map_or(0, |s| s.count).to_string(),
                spec.map_or_else(
                    || "-".to_owned(),
                    |s| {
                        if s.profile.is_empty() {
                            kv_text(&s.resources)
                        } else {
                            s.profile.clone()
                        }
                    },
                ),
                placement_text(&c.placements),
                yes_no(c.at_risk).to_owned(),
                age(c.created_unix_ms),
            ]
        }),
    )
}

fn show_view(c: &v1::Claim) -> String {
    let default = v1::ClaimSpec::default();
    let s = c.spec.as_ref().unwrap_or(&default);
    let at_risk = if c.at_risk {
        format!("yes ({})", list_text(&c.at_risk_datacenters))
    } else {
        "no".to_owned()
    };
    let max_per_dc = match s.max_per_datacenter {
        0 => "no limit".to_owned(),
        n => n.to_string(),
    };
    let head = fields(&[
        ("id", c.id.clone()),
        ("tenant", or_dash(&s.tenant)),
        ("state", state_name(c.state).to_owned()),
        ("at risk", at_risk),
        ("failure", or_dash(&c.failure_reasons.join("; "))),
        ("units", s.count.to_string()),
        ("profile", or_dash(&s.profile)),
        ("per unit", kv_text(&c.unit_resources)),
        ("selector", or_dash(&s.selector)),
        ("datacenters", list_text(&s.datacenters)),
        ("distinct dcs", yes_no(s.distinct_datacenters).to_owned()),
        ("max per dc", max_per_dc),
        ("strategy", strategy_name(s.strategy).to_owned()),
        ("request id", or_dash(&s.request_id)),
        ("window", window_text(c)),
        ("created", format!("{} ago", age(c.created_unix_ms))),
        ("updated", format!("{} ago", age(c.updated_unix_ms))),
    ]);
    if c.placements.is_empty() {
        return format!("{head}\n\nno placements");
    }
    format!("{head}\n\n{}", placements_table(&c.placements, true))
}

fn explain_view(e: &v1::ExplainClaimResponse) -> String {
    let mut out = format!(
        "fits: {}{}",
        yes_no(e.fits),
        if e.summary.is_empty() {
            String::new()
        } else {
            format!(" ({})", e.summary)
        }
    );
    if !e.placements.is_empty() {
        out.push_str("\n\nwould place:\n");
        out.push_str(&placements_table(&e.placements, false));
    }
    if !e.verdicts.is_empty() {
        out.push_str("\n\n");
        out.push_str(&table(
            &["DATACENTER", "UNITS_THAT_FIT", "REASONS"],
            e.verdicts.iter().map(|v| {
                vec![
                    v.datacenter.clone(),
                    v.units_that_fit.to_string(),
                    or_dash(&v.reasons.join("; ")),
                ]
            }),
        ));
    }
    if !e.rejected_by.is_empty() {
        let mut counts: Vec<(&String, &u32)> = e.rejected_by.iter().collect();
        // Most datacenters first, then by name.
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = counts.iter().map(|(f, n)| format!("{f} {n}")).collect();
        out.push_str(&format!("\n\nruled out by: {}", listed.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(dc: &str, units: u32) -> v1::Placement {
        v1::Placement {
            datacenter: dc.into(),
            units,
            resources: [("compute.vcpu".to_owned(), units.to_string())].into(),
            applied: false,
            apply_error: String::new(),
        }
    }

    /// `--wait` asks until the claim leaves `placed`: a refusal stops it
    /// with the agent's reason, an apply returns the claim.
    #[tokio::test(start_paused = true)]
    async fn waiting_stops_at_failed_with_the_reason_and_returns_at_active() {
        let claim = |state: v1::ClaimState, reasons: &[&str]| v1::Claim {
            id: "c-1".into(),
            state: state as i32,
            failure_reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
            placements: vec![placement("dc-eu", 1)],
            ..Default::default()
        };
        let asked = std::sync::atomic::AtomicU32::new(0);
        let then = |last: v1::Claim| {
            let asked = &asked;
            move |_id: String| {
                let n = asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let c = if n < 2 {
                    claim(v1::ClaimState::Placed, &[])
                } else {
                    last.clone()
                };
                async move { Ok(c) }
            }
        };
        let failed = claim(v1::ClaimState::Failed, &["dc-eu: no room"]);
        match wait_until_active(claim(v1::ClaimState::Placed, &[]), then(failed)).await {
            Err(Waited::Failed(c)) => assert_eq!(c.failure_reasons, vec!["dc-eu: no room"]),
            Err(Waited::Call(s)) => panic!("{s}"),
            Err(Waited::Ended(c)) => panic!("not failed: {c:?}"),
            Ok(c) => panic!("not failed: {c:?}"),
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 3);
        asked.store(0, std::sync::atomic::Ordering::SeqCst);
        let active = claim(v1::ClaimState::Active, &[]);
        let got = wait_until_active(claim(v1::ClaimState::Placed, &[]), then(active)).await;
        assert!(matches!(got, Ok(c) if c.state == v1::ClaimState::Active as i32));
    }

    #[test]
    fn created_view_names_the_claim_and_its_placement() {
        let c = v1::Claim {
            id: "c-00ab".into(),
            spec: Some(v1::ClaimSpec {
                tenant: "acme".into(),
                count: 2,
                profile: "small".into(),
                ..Default::default()
            }),
            state: v1::ClaimState::Placed as i32,
            placements: vec![placement("local", 2)],
            ..Default::default()
        };
        let view = created_view(&c);
        let first = view.lines().next().unwrap();
        assert_eq!(
            first,
            "claim c-00ab placed: 2 units of profile small for tenant acme"
        );
        assert!(
            view.contains("local       2      compute.vcpu=2  no"),
            "{view}"
        );
    }

    #[test]
    fn explain_lists_reasons_per_datacenter_when_it_does_not_fit() {
        let e = v1::ExplainClaimResponse {
            fits: false,
            summary: "needs 3 units, 1 fit".into(),
            placements: vec![],
            verdicts: vec![
                v1::DatacenterVerdict {
                    datacenter: "a".into(),
                    units_that_fit: 1,
                    reasons: vec![],
                    filters: vec![],
                },
                v1::DatacenterVerdict {
                    datacenter: "b".into(),
                    units_that_fit: 0,
                    reasons: vec!["down".into(), "compute.vcpu: 0 available".into()],
                    filters: vec!["down".into(), "capacity:compute.vcpu".into()],
                },
            ],
            rejected_by: [
                ("down".to_owned(), 1),
                ("capacity:compute.vcpu".to_owned(), 1),
                ("selector".to_owned(), 3),
            ]
            .into(),
            ..Default::default()
        };
        let view = explain_view(&e);
        assert!(
            view.starts_with("fits: no (needs 3 units, 1 fit)"),
            "{view}"
        );
        assert!(!view.contains("would place"), "{view}");
        let b = view.lines().find(|l| l.starts_with("b ")).unwrap();
        assert!(b.ends_with("down; compute.vcpu: 0 available"), "{b}");
        assert!(
            view.ends_with("ruled out by: selector 3, capacity:compute.vcpu 1, down 1"),
            "{view}"
        );
    }

    #[test]
    fn placements_read_compactly_in_lists() {
        assert_eq!(
            placement_text(&[placement("a", 2), placement("b", 1)]),
            "a:2,b:1"
        );
        assert_eq!(placement_text(&[]), "-");
    }
}
