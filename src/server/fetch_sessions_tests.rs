use super::*;

const EVICTION: Duration = Duration::from_secs(120);

fn req(offset: i64) -> PartRequest {
    PartRequest {
        fetch_offset: offset,
        log_start_offset: -1,
        max_bytes: 1 << 20,
        current_leader_epoch: -1,
        last_fetched_epoch: -1,
    }
}

fn key(t: &str, p: i32) -> Key {
    (t.to_string(), p)
}

fn answer(hw: i64) -> PartAnswer {
    PartAnswer {
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
    }
}

fn quiet(hw: i64) -> Outcome {
    Outcome {
        answer: answer(hw),
        must_answer: false,
        has_records: false,
        failed: false,
    }
}

/// A session of `n` partitions of topic "t", all answered at high watermark 5.
fn session_of(cache: &FetchSessions, follower: bool, n: i32, now: Instant) -> Created {
    let parts = (0..n).map(|p| (key("t", p), req(5), answer(5))).collect();
    cache.create(follower, parts, now)
}

fn parts_of(plan: &Plan) -> Vec<Key> {
    match plan {
        Plan::Incremental { parts, .. } => parts.iter().map(|(k, _)| k.clone()).collect(),
        other => panic!("expected an incremental plan, got {other:?}"),
    }
}

#[test]
fn full_fetch_epochs_and_session_ids() {
    let now = Instant::now();
    let cache = FetchSessions::new(1, 3, 30, EVICTION, 100);
    assert_eq!(
        cache.begin(0, 0, &[], &[], now),
        Plan::Full { create: true }
    );
    assert_eq!(
        cache.begin(0, -1, &[], &[], now),
        Plan::Full { create: false }
    );
    let id = session_of(&cache, false, 2, now).id;
    assert!(id > 0 && id % 3 == 1, "the id {id} encodes shard 1 of 3");
    // Epoch -1 closes the named session.
    assert_eq!(
        cache.begin(id, -1, &[], &[], now),
        Plan::Full { create: false }
    );
    assert!(cache.is_empty());
    assert_eq!(
        cache.begin(id, 1, &[], &[], now),
        Plan::Error(code::FETCH_SESSION_ID_NOT_FOUND)
    );
}

#[test]
fn incremental_epochs_must_follow_each_other() {
    let now = Instant::now();
    let cache = FetchSessions::new(0, 1, 10, EVICTION, 100);
    let id = session_of(&cache, false, 2, now).id;
    assert_eq!(
        cache.begin(id, 2, &[], &[], now),
        Plan::Error(code::INVALID_FETCH_SESSION_EPOCH)
    );
    assert_eq!(parts_of(&cache.begin(id, 1, &[], &[], now)).len(), 2);
    // The same epoch again is stale.
    assert_eq!(
        cache.begin(id, 1, &[], &[], now),
        Plan::Error(code::INVALID_FETCH_SESSION_EPOCH)
    );
    assert_eq!(parts_of(&cache.begin(id, 2, &[], &[], now)).len(), 2);
    assert_eq!(next_epoch(i32::MAX), 1);
}

#[test]
fn added_updated_and_forgotten_partitions() {
    let now = Instant::now();
    let cache = FetchSessions::new(0, 1, 10, EVICTION, 100);
    let id = session_of(&cache, false, 2, now).id;
    let plan = cache.begin(
        id,
        1,
        &[(key("t", 1), req(9)), (key("u", 0), req(0))],
        &[key("t", 0), key("nope", 3)],
        now,
    );
    let Plan::Incremental { parts, .. } = plan else {
        panic!("incremental expected")
    };
    assert_eq!(
        parts,
        vec![(key("t", 1), req(9)), (key("u", 0), req(0))],
        "t-0 forgotten, t-1 moved to 9, u-0 added"
    );
    // Forgetting the rest closes the session.
    let plan = cache.begin(id, 2, &[], &[key("t", 1), key("u", 0)], now);
    assert_eq!(plan, Plan::Closed);
    assert!(cache.is_empty());
}

#[test]
fn answers_only_what_changed() {
    let now = Instant::now();
    let cache = FetchSessions::new(0, 1, 10, EVICTION, 100);
    let id = session_of(&cache, false, 4, now).id;
    let plan = cache.begin(id, 1, &[(key("t", 9), req(0))], &[], now);
    assert_eq!(parts_of(&plan).len(), 5);
    let records = Outcome {
        has_records: true,
        must_answer: true,
        ..quiet(5)
    };
    let error = Outcome {
        failed: true,
        must_answer: true,
        ..quiet(-1)
    };
    let outcomes = [
        (key("t", 0), quiet(5)), // unchanged
        (key("t", 1), quiet(6)), // high watermark moved
        (key("t", 2), records),  // records
        (key("t", 3), error),    // an error
        (key("t", 9), quiet(0)), // new in the session: never answered
    ];
    assert_eq!(
        cache.answered(id, outcomes.iter().map(|(k, o)| (k, *o))),
        vec![false, true, true, true, true]
    );
    // Read order: the partition that returned records goes last.
    let plan = cache.begin(id, 2, &[], &[], now);
    assert_eq!(
        parts_of(&plan),
        vec![
            key("t", 0),
            key("t", 1),
            key("t", 3),
            key("t", 9),
            key("t", 2)
        ]
    );
    // The same outcomes again: only the records and the error (remembered as unsent).
    let again = [
        (key("t", 0), quiet(5)),
        (key("t", 1), quiet(6)),
        (key("t", 3), quiet(7)),
        (key("t", 9), quiet(0)),
        (key("t", 2), records),
    ];
    assert_eq!(
        cache.answered(id, again.iter().map(|(k, o)| (k, *o))),
        vec![false, false, true, false, true]
    );
    // A session gone meanwhile answers everything.
    assert_eq!(
        cache.answered(id + 1, again.iter().map(|(k, o)| (k, *o))),
        vec![true; 5]
    );
}

#[test]
fn the_cache_is_bounded_and_evicts_as_kafka_does() {
    let t0 = Instant::now();
    // Two slots on this shard (5 over 2 shards: 3 on shard 0, 2 on shard 1).
    let cache = FetchSessions::new(1, 2, 5, EVICTION, 100);
    let a = session_of(&cache, false, 3, t0).id;
    let b = session_of(&cache, false, 5, t0).id;
    assert!(a != 0 && b != 0);
    // Full, nothing stale, both young: no session, for a consumer or a follower.
    assert_eq!(session_of(&cache, false, 50, t0).id, 0);
    // A follower may evict a young consumer's session, the smallest one.
    let f = session_of(&cache, true, 4, t0);
    assert!(f.id != 0 && f.evicted);
    assert_eq!(cache.begin(a, 1, &[], &[], t0), Plan::Error(70));
    // Past the eviction time, b (used at t0) is stale: any new session takes its place.
    let later = t0 + EVICTION + Duration::from_secs(1);
    assert_eq!(parts_of(&cache.begin(f.id, 1, &[], &[], later)).len(), 4);
    let c = session_of(&cache, false, 1, later);
    assert!(c.id != 0 && c.evicted);
    assert_eq!(cache.begin(b, 1, &[], &[], later), Plan::Error(70));
    assert_eq!(cache.len(), 2);
    // Not stale, old enough: a larger consumer session evicts the smallest consumer's
    // (c has 1 partition), but never a follower's.
    let much_later = later + EVICTION + Duration::from_secs(1);
    assert_eq!(
        parts_of(&cache.begin(f.id, 2, &[], &[], much_later)).len(),
        4
    );
    assert_eq!(
        parts_of(&cache.begin(c.id, 1, &[], &[], much_later)).len(),
        1
    );
    let d = session_of(&cache, false, 2, much_later + Duration::from_secs(1));
    assert!(d.id != 0 && d.evicted);
    assert_eq!(cache.begin(c.id, 2, &[], &[], much_later), Plan::Error(70));
    assert_eq!(
        session_of(&cache, false, 50, much_later).id,
        0,
        "f is a follower's"
    );
    // No slots: no sessions.
    let none = FetchSessions::new(0, 1, 0, EVICTION, 100);
    assert_eq!(session_of(&none, true, 1, t0).id, 0);
}

#[test]
fn hostile_sessions_are_refused() {
    let now = Instant::now();
    let cache = FetchSessions::new(0, 1, 10, EVICTION, 3);
    assert_eq!(
        session_of(&cache, false, 4, now).id,
        0,
        "over the partition cap"
    );
    let long = "x".repeat(TOPIC_NAME_MAX + 1);
    let parts = vec![(key(&long, 0), req(0), answer(0))];
    assert_eq!(cache.create(false, parts, now).id, 0, "a name no topic has");
    let id = session_of(&cache, false, 3, now).id;
    let grow = [(key("t", 7), req(0))];
    assert_eq!(cache.begin(id, 1, &grow, &[], now), Plan::Error(70));
    assert!(
        cache.is_empty(),
        "the session that grew past the cap is gone"
    );
    // The cap holds for the sessions together: 2 + 2 > 3, and the first is young.
    let first = session_of(&cache, false, 2, now).id;
    assert_ne!(first, 0);
    assert_eq!(session_of(&cache, false, 2, now).id, 0);
    // A follower's may evict it, as that makes room.
    let f = session_of(&cache, true, 2, now);
    assert!(f.id != 0 && f.evicted);
    // Updating partitions already held does not count against the cap.
    let same = [(key("t", 0), req(9))];
    assert!(matches!(
        cache.begin(f.id, 1, &same, &[], now),
        Plan::Incremental { .. }
    ));
    // Growing past it does: 2 + 1 held, one more is too many.
    let one = session_of(&cache, false, 1, now).id;
    assert_ne!(one, 0);
    let grow = [(key("t", 5), req(0))];
    assert_eq!(cache.begin(f.id, 2, &grow, &[], now), Plan::Error(70));
    assert_eq!(cache.len(), 1);
}
