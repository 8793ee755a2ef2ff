//! `theia infra`: the logical infrastructure, now or over time.

use theia::api::v1;

use super::Ctx;
use crate::args::{InfraArgs, InfraCommand};
use crate::error::CliError;
use crate::json;
use crate::output::table;
use crate::wire::short_quantity;

/// Runs `theia infra`.
pub async fn run(ctx: &Ctx, args: InfraArgs) -> Result<(), CliError> {
    let client = ctx.client().await?;
    if let Some(InfraCommand::Timeline {
        selector,
        datacenter,
        from,
        to,
        step,
    }) = args.command
    {
        let ms = |v: Option<u64>| v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let request = v1::GetCapacityTimelineRequest {
            selector: selector.unwrap_or_default(),
            datacenter: datacenter.unwrap_or_default(),
            from_unix_ms: ms(from),
            to_unix_ms: ms(to),
            step_ms: ms(step),
        };
        let timeline = client
            .infrastructure()
            .get_capacity_timeline(request)
            .await
            .map_err(|s| client.error(s))?
            .into_inner();
        return ctx
            .out
            .show(|| json::proto(&timeline), || timeline_view(&timeline));
    }
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

/// Eight heights of a bar, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One row of bars: each point's share of its capacity, `·` where there
/// is no capacity at all.
fn bars(points: &[v1::CapacityPoint], value: impl Fn(&v1::CapacityPoint) -> u64) -> String {
    points
        .iter()
        .map(|p| {
            if p.capacity == 0 {
                return '·';
            }
            let share = value(p).min(p.capacity) as f64 / p.capacity as f64;
            if value(p) == 0 {
                ' '
            } else {
                BARS[((share * 8.0).ceil() as usize).clamp(1, 8) - 1]
            }
        })
        .collect()
}

fn timeline_view(t: &v1::CapacityTimeline) -> String {
    let instant = |ms: i64| theia::model::format_instant(u64::try_from(ms).unwrap_or(0));
    let step = crate::wire::span(t.step_ms / 1000);
    let mut out = format!(
        "capacity of {} from {} to {}, one column per {step}",
        if t.datacenters.len() == 1 {
            format!("datacenter {}", t.datacenters[0])
        } else {
            format!("{} datacenters", t.datacenters.len())
        },
        instant(t.from_unix_ms),
        instant(t.to_unix_ms),
    );
    if t.classes.is_empty() {
        out.push_str("\n\nno capacity reported");
        return out;
    }
    for c in &t.classes {
        let peak = |f: fn(&v1::CapacityPoint) -> u64| {
            let class = &c.class;
            let most = c.points.iter().map(f).max().unwrap_or(0);
            crate::wire::short_quantity(
                class,
                &theia::model::ResourceClass::parse(class)
                    .map_or_else(|_| most.to_string(), |k| k.format(most)),
            )
        };
        let least_free = c.points.iter().map(|p| p.free).min().unwrap_or(0);
        let least = theia::model::ResourceClass::parse(&c.class)
            .map_or_else(|_| least_free.to_string(), |k| k.format(least_free));
        out.push_str(&format!(
            "\n\n{}  (capacity up to {}, least free {})\n  allocated    |{}|  peak {}\n  maintenance  |{}|  peak {}",
            c.class,
            peak(|p| p.capacity),
            crate::wire::short_quantity(&c.class, &least),
            bars(&c.points, |p| p.allocated),
            peak(|p| p.allocated),
            bars(&c.points, |p| p.maintenance),
            peak(|p| p.maintenance),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(capacity: u64, allocated: u64) -> v1::CapacityPoint {
        v1::CapacityPoint {
            capacity,
            allocated,
            ..Default::default()
        }
    }

    #[test]
    fn bars_rise_with_the_share_of_capacity() {
        let points = [
            point(8, 0),
            point(8, 1),
            point(8, 4),
            point(8, 8),
            point(8, 20),
            point(0, 0),
        ];
        assert_eq!(bars(&points, |p| p.allocated), " ▁▄██·");
    }

    #[test]
    fn the_chart_names_its_span_and_each_class() {
        let t = v1::CapacityTimeline {
            from_unix_ms: 1_796_083_200_000,
            to_unix_ms: 1_796_083_200_000 + 2 * 3_600_000,
            step_ms: 3_600_000,
            datacenters: vec!["dc-eu".into()],
            classes: vec![v1::ClassTimeline {
                class: "compute.vcpu".into(),
                points: vec![point(16, 4), point(16, 16)],
            }],
        };
        let view = timeline_view(&t);
        assert!(
            view.starts_with("capacity of datacenter dc-eu from 2026-12-01T00:00:00Z to 2026-12-01T02:00:00Z, one column per 60m"),
            "{view}"
        );
        assert!(view.contains("  allocated    |▂█|  peak 16"), "{view}");
    }
}
