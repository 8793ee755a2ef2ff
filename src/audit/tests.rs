use proptest::prelude::*;

use super::history::{Depth, excess};
use super::*;

fn event(time_ms: u64, actor: &str, action: &str, tenant: &str, code: u32) -> Event {
    let ts = Timestamp {
        ms: time_ms,
        counter: 0,
        node: "m-1".into(),
    };
    let (kind, _) = action.split_once('.').unwrap();
    Draft::ok(action, kind, "x")
        .tenant(tenant)
        .code(code)
        .stamp(&ts, actor, "r-1")
}

#[test]
fn ids_sort_as_stamps_do() {
    let stamps = [
        (999, 5, "m-2"),
        (1000, 0, "m-1"),
        (1000, 0, "m-2"),
        (1000, 11, "m-1"),
        (10_000, 2, "a"),
    ];
    let ids: Vec<String> = stamps
        .iter()
        .map(|(ms, counter, node)| {
            event_id(&Timestamp {
                ms: *ms,
                counter: *counter,
                node: (*node).into(),
            })
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids[1], "0000000001000-0000000000-m-1");
}

#[test]
fn a_stamped_draft_keeps_every_field() {
    let ts = Timestamp {
        ms: 42,
        counter: 3,
        node: "m-7".into(),
    };
    let e = Draft::ok("claim.create", "claim", "c-1")
        .tenant("acme")
        .message("placed 1×dc-eu")
        .code(7)
        .stamp(&ts, "alice", "req-1");
    assert_eq!(
        e,
        Event {
            id: event_id(&ts),
            time_ms: 42,
            actor: "alice".into(),
            action: "claim.create".into(),
            object_kind: "claim".into(),
            object_id: "c-1".into(),
            tenant: "acme".into(),
            code: 7,
            message: "placed 1×dc-eu".into(),
            manager: "m-7".into(),
            request_id: "req-1".into(),
        }
    );
}

#[test]
fn every_filter_field_narrows_and_empty_matches_all() {
    let e = event(1000, "alice", "claim.create", "acme", OK);
    assert!(EventFilter::default().matches(&e));
    let only = |f: EventFilter| f.matches(&e);
    assert!(only(EventFilter {
        since_ms: Some(1000),
        until_ms: Some(1001),
        ..Default::default()
    }));
    assert!(!only(EventFilter {
        since_ms: Some(1001),
        ..Default::default()
    }));
    assert!(!only(EventFilter {
        until_ms: Some(1000),
        ..Default::default()
    }));
    for (f, want) in [
        (
            EventFilter {
                actor: "alice".into(),
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                actor: "bob".into(),
                ..Default::default()
            },
            false,
        ),
        (
            EventFilter {
                tenant: "acme".into(),
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                tenant: "other".into(),
                ..Default::default()
            },
            false,
        ),
        (
            EventFilter {
                object_kind: "claim".into(),
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                object_kind: "tenant".into(),
                ..Default::default()
            },
            false,
        ),
        (
            EventFilter {
                object_id: "x".into(),
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                object_id: "y".into(),
                ..Default::default()
            },
            false,
        ),
        (
            EventFilter {
                action: "claim.create".into(),
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                action: "claim.release".into(),
                ..Default::default()
            },
            false,
        ),
        (
            EventFilter {
                outcome: OutcomeFilter::Ok,
                ..Default::default()
            },
            true,
        ),
        (
            EventFilter {
                outcome: OutcomeFilter::Failed,
                ..Default::default()
            },
            false,
        ),
    ] {
        assert_eq!(only(f.clone()), want, "{f:?}");
    }
    let denied = event(1000, "mallory", "claim.create", "", 7);
    assert!(
        EventFilter {
            outcome: OutcomeFilter::Failed,
            ..Default::default()
        }
        .matches(&denied)
    );
    assert!(
        !EventFilter {
            outcome: OutcomeFilter::Ok,
            ..Default::default()
        }
        .matches(&denied)
    );
}

#[test]
fn the_first_id_a_time_range_can_match_sorts_before_its_events() {
    let f = EventFilter {
        since_ms: Some(1000),
        ..Default::default()
    };
    assert!(f.first_id() <= event(1000, "a", "claim.create", "", 0).id);
    assert!(f.first_id() > event(999, "a", "claim.create", "", 0).id);
}

proptest! {
    /// What is kept is exactly the newest events younger than the age
    /// limit, as many as the count allows: checked against a direct
    /// statement of the rule, not the trimming arithmetic.
    #[test]
    fn trimming_keeps_the_newest_young_events_the_count_allows(
        mut times in proptest::collection::vec(0u64..1000, 0..40),
        max_events in 0usize..50,
        max_age_ms in 0u64..1200,
        now_ms in 0u64..2000,
    ) {
        times.sort_unstable();
        let depth = Depth { max_events, max_age_ms };
        let dropped = excess(times.iter().copied(), times.len(), depth, now_ms);
        let kept = &times[dropped..];
        let young: Vec<u64> = times
            .iter()
            .copied()
            .filter(|t| now_ms.saturating_sub(*t) <= max_age_ms)
            .collect();
        let expected = &young[young.len().saturating_sub(max_events)..];
        prop_assert_eq!(kept, expected);
    }
}

mod describing {
    use crate::audit::describe;
    use crate::clock::Timestamp;
    use crate::model::{Claim, ClaimState, Placement, Window};
    use crate::scheduler::testkit::{amount, datacenter, spec, tenant};
    use crate::state::{Applied, Books, Change, ClaimEnd};

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            ms,
            counter: 0,
            node: "m-1".into(),
        }
    }

    fn claim(dcs: &[&str]) -> Claim {
        Claim {
            id: "c-1".into(),
            spec: spec(dcs.len() as u32, 2),
            state: ClaimState::Placed,
            placements: dcs
                .iter()
                .map(|dc| Placement {
                    datacenter: (*dc).into(),
                    units: 1,
                    resources: amount(2),
                    applied: false,
                    apply_error: String::new(),
                })
                .collect(),
            created_ms: 1,
            updated_ms: 1,
            window: Window::from(1),
        }
    }

    /// `(action, tenant, code)` of a described change.
    type Said = (&'static str, &'static str, u32);

    /// Each change of a life, described against the books as they stand,
    /// then merged: the actions, tenants and outcomes an auditor reads.
    #[test]
    fn a_life_reads_as_the_actions_it_took() {
        let mut books = Books::default();
        let mut report = datacenter("dc-a", 16);
        let mut free_only = report.clone();
        free_only.inventory.values_mut().for_each(|i| i.free = 3);
        let mut bigger = report.clone();
        bigger.inventory.values_mut().for_each(|i| i.total = 32);
        report.driver = "static".into();
        free_only.driver = "static".into();
        bigger.driver = "static".into();
        let mut renamed = tenant("t", 10);
        renamed.owner = "alice".into();
        let failed = Applied {
            applied: false,
            error: "disk full".into(),
            at_ms: 5,
        };
        let applied = Applied {
            applied: true,
            error: String::new(),
            at_ms: 6,
        };
        let steps: Vec<(Change, Option<Said>)> = vec![
            (
                Change::datacenter(ts(1), report),
                Some(("datacenter.register", "", 0)),
            ),
            (Change::datacenter(ts(2), free_only), None),
            (
                Change::datacenter(ts(3), bigger),
                Some(("datacenter.update", "", 0)),
            ),
            (
                Change::tenant(ts(4), tenant("t", 10)),
                Some(("tenant.create", "t", 0)),
            ),
            (
                Change::tenant(ts(5), renamed),
                Some(("tenant.update", "t", 0)),
            ),
            (
                Change::claim(ts(6), claim(&["dc-a"])),
                Some(("claim.create", "t", 0)),
            ),
            (Change::claim(ts(7), claim(&["dc-a"])), None),
            (
                Change::applied("c-1", "dc-a", ts(8), failed.clone()),
                Some(("claim.apply", "t", 2)),
            ),
            (Change::applied("c-1", "dc-a", ts(9), failed), None),
            (
                Change::applied("c-1", "dc-a", ts(10), applied),
                Some(("claim.apply", "t", 0)),
            ),
            (
                Change::claim(ts(11), claim(&["dc-b"])),
                Some(("claim.replace", "t", 0)),
            ),
            (
                Change::end("c-1", ts(12), ClaimEnd::released(12)),
                Some(("claim.release", "t", 0)),
            ),
            (Change::end("c-1", ts(13), ClaimEnd::expired(13)), None),
            (
                Change::Tenant {
                    key: "t".into(),
                    register: crate::crdt::Lww::tombstone(ts(14)),
                },
                Some(("tenant.delete", "t", 0)),
            ),
            (
                Change::Datacenter {
                    key: "dc-a".into(),
                    register: crate::crdt::Lww::tombstone(ts(15)),
                },
                Some(("datacenter.decommission", "", 0)),
            ),
        ];
        for (i, (change, want)) in steps.into_iter().enumerate() {
            let got = describe(&change, &books);
            let got = got
                .as_ref()
                .map(|d| (d.action.as_str(), d.tenant.as_str(), d.code));
            assert_eq!(got, want, "step {i}: {change:?}");
            books.apply(&change);
        }
    }

    #[test]
    fn an_expiry_and_a_replacement_name_what_happened() {
        let mut books = Books::default();
        books.apply(&Change::claim(ts(1), claim(&["dc-a"])));
        let moved = describe(&Change::claim(ts(2), claim(&["dc-b"])), &books).unwrap();
        assert_eq!(moved.message, "moved from 1×dc-a to 1×dc-b");
        let end = Change::end("c-1", ts(3), ClaimEnd::expired(3));
        assert_eq!(describe(&end, &books).unwrap().action, "claim.expire");
        // An end for a claim these books never saw: nothing to say of it.
        let stray = Change::end("c-9", ts(3), ClaimEnd::released(3));
        assert_eq!(describe(&stray, &books), None);
    }
}

mod describing_the_rest {
    use std::collections::BTreeSet;

    use crate::access::Token;
    use crate::audit::describe;
    use crate::clock::Timestamp;
    use crate::crdt::Lww;
    use crate::model::{Maintenance, Profile, Window};
    use crate::scheduler::testkit::amount;
    use crate::state::{Books, Change};

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            ms,
            counter: 0,
            node: "m-1".into(),
        }
    }

    /// Each step described against the books as they stand, then merged.
    fn actions(steps: Vec<Change>) -> Vec<Option<(String, String)>> {
        let mut books = Books::default();
        steps
            .into_iter()
            .map(|change| {
                let said = describe(&change, &books).map(|d| (d.action, d.message));
                books.apply(&change);
                said
            })
            .collect()
    }

    #[test]
    fn tokens_profiles_and_maintenance_read_as_what_was_done() {
        let token = Token {
            id: "t1".into(),
            subject: "ops@example.com".into(),
            roles: BTreeSet::new(),
            expires_unix_ms: None,
            created_unix_ms: 1,
            created_by: "admin".into(),
            description: String::new(),
            secret_hash: String::new(),
        };
        let profile = Profile {
            name: "small".into(),
            resources: amount(1),
            description: String::new(),
        };
        let maintenance = Maintenance {
            id: "mt-1".into(),
            datacenter: "dc-a".into(),
            resources: None,
            window: Window::between(10, 20),
            reason: "disks".into(),
            created_by: "ops".into(),
            created_ms: 1,
            cancelled_ms: None,
        };
        let mut cancelled = maintenance.clone();
        cancelled.cancelled_ms = Some(15);
        let mut recancelled = cancelled.clone();
        recancelled.cancelled_ms = Some(16);
        let mut renamed = maintenance.clone();
        renamed.reason = "fans".into();
        let said = actions(vec![
            Change::token(ts(1), token.clone()),
            Change::token(ts(2), token),
            Change::Token {
                key: "t1".into(),
                register: Lww::tombstone(ts(3)),
            },
            Change::Token {
                key: "t1".into(),
                register: Lww::tombstone(ts(4)),
            },
            Change::profile(ts(5), profile.clone()),
            Change::profile(ts(6), profile),
            Change::Profile {
                key: "small".into(),
                register: Lww::tombstone(ts(7)),
            },
            Change::maintenance(ts(8), maintenance),
            Change::maintenance(ts(9), renamed),
            Change::maintenance(ts(10), cancelled),
            Change::maintenance(ts(11), recancelled),
        ]);
        let action = |i: usize| said[i].as_ref().map(|(a, _)| a.as_str());
        assert_eq!(action(0), Some("token.create"));
        assert_eq!(said[0].as_ref().unwrap().1, "for ops@example.com");
        assert_eq!(action(1), None, "the same token again");
        assert_eq!(action(2), Some("token.revoke"));
        assert_eq!(action(3), None, "revoked twice");
        assert_eq!(action(4), Some("profile.create"));
        assert_eq!(action(5), Some("profile.update"));
        assert_eq!(action(6), Some("profile.delete"));
        assert_eq!(action(7), Some("maintenance.create"));
        assert_eq!(said[7].as_ref().unwrap().1, "on dc-a: disks");
        assert_eq!(action(8), None, "not cancelled: nothing to say");
        assert_eq!(action(9), Some("maintenance.cancel"));
        assert_eq!(action(10), None, "cancelled already");
    }
}
