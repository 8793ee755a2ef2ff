//! Benchmarks of the pure core: the scheduler and the CRDT merge.
//! `cargo bench --bench core`; numbers and how to read them in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use theia::clock::HybridClock;
use theia::crdt::{Crdt, LwwMap};
use theia::model::{
    ClaimSpec, Datacenter, Inventory, Labels, ResourceClass, Resources, Selector, Strategy, Window,
};
use theia::scheduler::{Candidate, DatacenterUsage, Liveness, place_seeded, schedule_seeded};

fn datacenters(n: usize) -> Vec<Datacenter> {
    let vcpu = ResourceClass::parse("compute.vcpu").unwrap();
    let mem = ResourceClass::parse("compute.memory").unwrap();
    (0..n)
        .map(|i| {
            let mut labels = Labels::new();
            labels.insert("region".into(), if i % 2 == 0 { "eu" } else { "us" }.into());
            let mut dc = Datacenter::new(format!("dc-{i:04}"), labels);
            dc.inventory
                .insert(vcpu.clone(), Inventory::reported(4096, 4096));
            dc.inventory
                .insert(mem.clone(), Inventory::reported(16 << 40, 16 << 40));
            dc
        })
        .collect()
}

fn spec(count: u32, strategy: Strategy) -> ClaimSpec {
    ClaimSpec {
        tenant: "acme".into(),
        request_id: String::new(),
        count,
        profile: None,
        unit: Resources::parse_list("resources", "compute.vcpu=16,compute.memory=64Gi").unwrap(),
        selector: Selector::parse("selector", "region=eu").unwrap(),
        datacenters: vec![],
        distinct_datacenters: false,
        max_per_datacenter: 0,
        strategy,
        timing: Default::default(),
    }
}

fn bench_schedule(c: &mut Criterion) {
    let mut group = c.benchmark_group("schedule");
    for (dcs, units) in [(10, 10), (100, 10), (100, 100), (1000, 1), (1000, 100)] {
        let world = datacenters(dcs);
        let cands: Vec<Candidate<'_>> = world
            .iter()
            .map(|dc| Candidate {
                dc,
                liveness: Liveness::Alive,
                usage: DatacenterUsage::none(),
            })
            .collect();
        for strategy in [Strategy::Binpack, Strategy::Spread] {
            let s = spec(units, strategy);
            let id = BenchmarkId::new(
                format!("{strategy:?}").to_lowercase(),
                format!("{dcs}dc-{units}u"),
            );
            let w = Window::always();
            group.bench_with_input(id, &s, |b, s| {
                b.iter(|| black_box(place_seeded(&cands, s, None, w, 0, None)))
            });
            if dcs == 1000 {
                let id = BenchmarkId::new(
                    format!("{strategy:?}-explain").to_lowercase(),
                    format!("{dcs}dc-{units}u"),
                );
                group.bench_with_input(id, &s, |b, s| {
                    b.iter(|| black_box(schedule_seeded(&cands, s, None, w, 0, None)))
                });
            }
        }
    }
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("lww_map_merge");
    for n in [1_000u64, 10_000] {
        let mut clock_a = HybridClock::new("a", std::time::Duration::from_secs(1));
        let mut clock_b = HybridClock::new("b", std::time::Duration::from_secs(1));
        let mut a: LwwMap<u64, u64> = LwwMap::new();
        let mut b: LwwMap<u64, u64> = LwwMap::new();
        for k in 0..n {
            a.merge(&LwwMap::update_mutator(k, clock_a.now(k), k));
            b.merge(&LwwMap::update_mutator(k, clock_b.now(k + 1), k + 1));
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &(a, b), |bench, (a, b)| {
            bench.iter(|| {
                let mut x = a.clone();
                x.merge(b);
                black_box(x)
            })
        });
    }
    group.finish();
}

/// 1-unit claims on 1,000 datacenters that hold 100,000 claims between
/// them, each over a random window within 30 days (100 a datacenter, so
/// about 200 change points each), in 4 classes: the open-ended claim and
/// one of a day, as placed (`open-ended`) and as explained (`-explain`).
fn bench_schedule_over_time(c: &mut Criterion) {
    const DAY: u64 = 86_400_000;
    let mut group = c.benchmark_group("schedule_over_time");
    let more = [
        ("storage.block", Inventory::reported(1 << 50, 1 << 50)),
        ("network.ipv4", Inventory::reported(65_536, 65_536)),
    ];
    for dcs in [1000usize, 10_000] {
        let mut world = datacenters(dcs);
        for dc in &mut world {
            for (class, inv) in &more {
                dc.inventory
                    .insert(ResourceClass::parse(class).unwrap(), inv.clone());
            }
        }
        let per_dc = 100_000 / dcs;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let usages: Vec<DatacenterUsage> = (0..dcs)
            .map(|_| {
                let mut u = DatacenterUsage::default();
                for _ in 0..per_dc {
                    let start = next() % (30 * DAY);
                    let end = start + 1 + next() % (3 * DAY);
                    let held = Resources::parse_list(
                        "r",
                        "compute.vcpu=1,compute.memory=1Gi,storage.block=10Gi,network.ipv4=1",
                    )
                    .unwrap();
                    u.allocated.add(Window::between(start, end), false, &held);
                }
                u
            })
            .collect();
        let cands: Vec<Candidate<'_>> = world
            .iter()
            .zip(&usages)
            .map(|(dc, usage)| Candidate {
                dc,
                liveness: Liveness::Alive,
                usage,
            })
            .collect();
        let mut s = spec(1, Strategy::Binpack);
        s.unit = Resources::parse_list(
            "r",
            "compute.vcpu=16,compute.memory=64Gi,storage.block=1Ti,network.ipv4=4",
        )
        .unwrap();
        // Every datacenter weighed: no selector.
        s.selector = Selector::default();
        for (name, window) in [
            ("open-ended", Window::from(10 * DAY)),
            ("one-day", Window::between(10 * DAY, 11 * DAY)),
        ] {
            let claims = format!("{dcs}dc-{}claims", per_dc * dcs);
            let id = BenchmarkId::new(name, &claims);
            group.bench_with_input(id, &window, |b, w| {
                b.iter(|| black_box(place_seeded(&cands, &s, None, *w, 10 * DAY, None)))
            });
            let id = BenchmarkId::new(format!("{name}-explain"), &claims);
            group.bench_with_input(id, &window, |b, w| {
                b.iter(|| black_box(schedule_seeded(&cands, &s, None, *w, 10 * DAY, None)))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_schedule,
    bench_schedule_over_time,
    bench_merge
);
criterion_main!(benches);
