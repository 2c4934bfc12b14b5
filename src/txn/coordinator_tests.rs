//! Unit tests of the transaction coordinator's state machine.

use super::*;

fn coordinator() -> TxnCoordinator {
    let mut c = TxnCoordinator::new(900_000);
    c.load(Vec::new());
    c
}

fn written(c: &mut TxnCoordinator, id: &str, step: Result<Step, TxnError>) -> TxnMeta {
    match step {
        Ok(Step::Write(m)) => {
            c.written(id, m.clone());
            m
        }
        other => panic!("expected a write, got {other:?}"),
    }
}

fn parts(ps: &[(&str, i32)]) -> Vec<(String, i32)> {
    ps.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

#[test]
fn a_transaction_goes_from_init_to_commit() {
    let mut c = coordinator();
    let mut ids = 100..;
    let mut fresh = || ids.next();
    let m = {
        let step = c_init(&mut c, "t", None, &mut fresh);
        written(&mut c, "t", step)
    };
    assert_eq!(
        (m.producer_id, m.epoch, m.status),
        (100, 0, TxnStatus::Empty)
    );
    let step = c.add_partitions("t", 100, 0, &parts(&[("a", 0), ("a", 1)]), 5);
    let m = written(&mut c, "t", step);
    assert_eq!(m.status, TxnStatus::Ongoing);
    assert_eq!(m.start_ms, 5);
    // Adding partitions already in the transaction persists nothing.
    assert!(matches!(
        c.add_partitions("t", 100, 0, &parts(&[("a", 1)]), 6),
        Ok(Step::Done(_))
    ));
    // A wrong epoch is fenced, a wrong producer id does not map.
    assert_eq!(
        c.add_partitions("t", 100, 1, &parts(&[("b", 0)]), 6),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        c.end("t", 7, 0, true, 6),
        Err(TxnError::InvalidProducerIdMapping)
    );
    let m = {
        let step = c.end("t", 100, 0, true, 7);
        written(&mut c, "t", step)
    };
    assert_eq!(m.status, TxnStatus::PrepareCommit);
    // Markers in flight: the id is busy.
    assert_eq!(
        c.end("t", 100, 0, true, 8),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(c.prepared(), Vec::new(), "already being completed");
    let done = c.markers_written("t", 9).expect("complete");
    assert_eq!(done.status, TxnStatus::CompleteCommit);
    assert!(done.partitions.is_empty());
    c.written("t", done);
    // A retried EndTxn after completion answers as before; the other outcome is
    // refused.
    assert!(matches!(c.end("t", 100, 0, true, 10), Ok(Step::Done(_))));
    assert_eq!(
        c.end("t", 100, 0, false, 10),
        Err(TxnError::InvalidTxnState)
    );
}

fn c_init(
    c: &mut TxnCoordinator,
    id: &str,
    current: Option<(i64, i16)>,
    fresh: &mut dyn FnMut() -> Option<i64>,
) -> Result<Step, TxnError> {
    c.init(id, 60_000, current, 0, fresh)
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let mut c = coordinator();
    let mut ids = 7..;
    let mut fresh = || ids.next();
    {
        let step = c_init(&mut c, "t", None, &mut fresh);
        written(&mut c, "t", step)
    };
    let step = c.add_partitions("t", 7, 0, &parts(&[("a", 0)]), 1);
    written(&mut c, "t", step);
    // The second producer's init aborts the open transaction under epoch 1 and asks
    // it to retry.
    let abort = {
        let step = c_init(&mut c, "t", None, &mut fresh);
        written(&mut c, "t", step)
    };
    assert_eq!((abort.status, abort.epoch), (TxnStatus::PrepareAbort, 1));
    assert_eq!(
        abort.partitions.len(),
        1,
        "markers go to the open partitions"
    );
    assert_eq!(
        c_init(&mut c, "t", None, &mut fresh),
        Err(TxnError::ConcurrentTransactions)
    );
    let done = c.markers_written("t", 2).expect("complete");
    c.written("t", done);
    let m = {
        let step = c_init(&mut c, "t", None, &mut fresh);
        written(&mut c, "t", step)
    };
    assert_eq!((m.producer_id, m.epoch, m.status), (7, 2, TxnStatus::Empty));
    // The old producer is fenced.
    assert_eq!(
        c.add_partitions("t", 7, 0, &parts(&[("a", 0)]), 3),
        Err(TxnError::ProducerFenced)
    );
    // KIP-360: a producer that holds an older epoch is fenced, one holding the current
    // epoch gets the next.
    assert_eq!(
        c_init(&mut c, "t", Some((7, 0)), &mut fresh),
        Err(TxnError::ProducerFenced)
    );
    let m = {
        let step = c_init(&mut c, "t", Some((7, 2)), &mut fresh);
        written(&mut c, "t", step)
    };
    assert_eq!(m.epoch, 3);
}

#[test]
fn timed_out_transactions_are_aborted_under_a_new_epoch() {
    let mut c = coordinator();
    let mut fresh = || Some(1);
    {
        let step = c.init("t", 1_000, None, 0, &mut fresh);
        written(&mut c, "t", step)
    };
    let step = c.add_partitions("t", 1, 0, &parts(&[("a", 0)]), 10);
    written(&mut c, "t", step);
    assert!(c.expired(1_010).is_empty());
    let due = c.expired(1_011);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.status, TxnStatus::PrepareAbort);
    assert_eq!(due[0].1.epoch, 1);
    assert!(c.expired(5_000).is_empty(), "claimed once");
    c.written("t", due[0].1.clone());
    let done = c.markers_written("t", 1_100).expect("complete");
    assert_eq!((done.status, done.epoch), (TxnStatus::CompleteAbort, 1));
    c.written("t", done);
    // The fenced producer recovers (KIP-360): its epoch, one before the abort's, gets
    // the next one; an older epoch does not.
    assert_eq!(
        c.init("t", 1_000, Some((1, -1)), 0, &mut fresh),
        Err(TxnError::ProducerFenced)
    );
    let step = c.init("t", 1_000, Some((1, 0)), 0, &mut fresh);
    assert!(
        matches!(step, Ok(Step::Write(ref m)) if m.epoch == 2),
        "{step:?}"
    );
    // The timeout bound.
    assert_eq!(
        c.init("u", 900_001, None, 0, &mut fresh),
        Err(TxnError::InvalidTransactionTimeout)
    );
}

#[test]
fn prepared_transactions_found_at_load_are_completed() {
    let mut c = TxnCoordinator::new(900_000);
    let mut fresh = || Some(1);
    assert_eq!(
        c.init("t", 1_000, None, 0, &mut fresh),
        Err(TxnError::LoadInProgress)
    );
    let meta = TxnMeta {
        producer_id: 3,
        epoch: 0,
        timeout_ms: 1000,
        status: TxnStatus::PrepareCommit,
        partitions: parts(&[("a", 0)]).into_iter().collect(),
        last_update_ms: 0,
        start_ms: 0,
    };
    c.load(vec![
        ("t".to_string(), Some(meta.clone())),
        ("gone".to_string(), Some(meta.clone())),
        ("gone".to_string(), None),
    ]);
    assert_eq!(c.prepared(), vec![("t".to_string(), meta)]);
    assert!(c.get("gone").is_none());
}

#[test]
fn idle_ids_expire_and_busy_or_open_ones_do_not() {
    let mut c = coordinator();
    let mut ids = 1..;
    let mut fresh = || ids.next();
    // "idle" last changed at 0; "open" has a transaction open since 0.
    let Ok(Step::Write(idle)) = c.init("idle", 1_000, None, 0, &mut fresh) else {
        panic!("a write")
    };
    c.written("idle", idle);
    let Ok(Step::Write(open)) = c.init("open", 1_000, None, 0, &mut fresh) else {
        panic!("a write")
    };
    c.written("open", open.clone());
    let step = c.add_partitions("open", open.producer_id, 0, &parts(&[("a", 0)]), 0);
    let Ok(Step::Write(ongoing)) = step else {
        panic!("a write")
    };
    c.written("open", ongoing);
    assert!(c.expired_ids(100, 100).is_empty(), "not yet");
    let due = c.expired_ids(101, 100);
    let due: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(due, ["idle"]);
    assert!(c.expired_ids(500, 100).is_empty(), "claimed once");
    c.removed("idle");
    assert!(c.get("idle").is_none());
    // The id starts afresh: a new producer id at epoch 0.
    let step = c.init("idle", 1_000, None, 600, &mut fresh);
    assert!(matches!(step, Ok(Step::Write(ref m)) if m.epoch == 0 && m.producer_id == 3));
}
