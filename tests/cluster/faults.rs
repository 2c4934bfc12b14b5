//! The cluster under faults (part of the `cluster` test binary): a SIGKILLed broker, a
//! SIGTERMed one (controlled shutdown), the controller killed, a broker cut off from the
//! quorum by the harness's proxies; and the soak that repeats them under a producer.
//!
//! These tests check that *new* data is produced and consumed once the leaders moved; what
//! replication keeps across a failover is `tests/replication.rs`'s subject.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::clients::{self, Background};
use crate::cluster::*;
use crate::leader_counts;

/// A node that is not the controller and leads at least one partition of `topic`.
pub(crate) fn victim(c: &Cluster, topic: &str) -> i32 {
    let controller = c.controller();
    let view = c.view(controller, &[topic]);
    let counts = leader_counts(&view, topic);
    c.ids()
        .into_iter()
        .find(|id| *id != controller && counts.get(id).copied().unwrap_or(0) > 0)
        .unwrap_or_else(|| {
            panic!(
                "no node other than the controller {controller} leads a partition of {topic}:\n{}",
                view.summary()
            )
        })
}

/// Waits until every live node has fenced `gone`: it is not among their brokers, and every
/// partition of `topic` (RF > 1) is led by a live broker, with a higher epoch than in
/// `before` where `gone` led it. Returns the first live node's view.
pub(crate) fn wait_failed_over(c: &Cluster, gone: i32, topic: &str, before: &View) -> View {
    let live = c.live();
    let what = format!("nodes {live:?} to fence node {gone} and move the leaders of {topic}");
    c.wait(&what, FAILOVER_TIMEOUT, || {
        let mut first = None;
        for &id in &live {
            let v = c.try_view(id, &[topic])?;
            let moved = v.topic(topic).iter().all(|(p, part)| {
                let old = &before.topic(topic)[p];
                live.contains(&part.leader)
                    && part.error == NONE
                    && !part.isr.contains(&gone)
                    && (old.leader != gone || part.epoch > old.epoch)
            });
            if v.brokers.contains_key(&gone) || !moved || v.topic(topic).is_empty() {
                return Err(format!("{}\n(before: {})", v.summary(), before.summary()));
            }
            first.get_or_insert(v);
        }
        Ok(first.expect("a live node"))
    })
}

#[test]
fn killed_broker_fails_over_and_rejoins_after_restart() {
    let mut c = Cluster::start3();
    let topic = "fo";
    let before = c.create_topic_ok(1, topic, 6, 3);
    c.create_topic_ok(1, "fo-solo", 3, 1);
    let gone = victim(&c, topic);
    let solo_before = c.view(gone, &["fo-solo"]);
    let solo_on_gone: Vec<i32> = solo_before
        .leaders("fo-solo")
        .into_iter()
        .filter(|(_, l)| *l == gone)
        .map(|(p, _)| p)
        .collect();
    assert!(
        !solo_on_gone.is_empty(),
        "node {gone} leads no partition of fo-solo:\n{}",
        solo_before.summary()
    );

    let mut bg = Background::start(&c.bootstrap_all(), topic, 6, "fo");
    let t0 = Instant::now();
    bg.wait_delivered_since(t0, 6, Duration::from_secs(30), "before the kill");

    let killed = Instant::now();
    c.kill(gone);
    let after = wait_failed_over(&c, gone, topic, &before);
    eprintln!(
        "node {gone} killed: leaders moved after {:?}\n{}",
        killed.elapsed(),
        after.summary()
    );
    for (p, part) in after.topic(topic) {
        assert_eq!(
            part.replicas,
            before.topic(topic)[&p].replicas,
            "{topic}-{p}: replicas changed by a failover"
        );
    }
    // DescribeCluster v2 lists the fenced broker only when asked, marked fenced.
    let live = c.live()[0];
    let mut raw = crate::common::RawClient::connect(c.broker(live).addr());
    for with_fenced in [false, true] {
        let req = kafka_protocol::messages::DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(with_fenced);
        let resp = raw.call(2, &req);
        let listed: Vec<(i32, bool)> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        let mut want: Vec<(i32, bool)> = c.live().into_iter().map(|id| (id, false)).collect();
        if with_fenced {
            want.push((gone, true));
            want.sort();
        }
        assert_eq!(
            listed, want,
            "DescribeCluster v2, fenced brokers asked: {with_fenced}"
        );
    }
    // Partitions whose only replica died have no leader.
    for id in c.live() {
        let what = format!(
            "node {id}: fo-solo partitions {solo_on_gone:?}, only on dead node {gone}, \
             without a leader"
        );
        c.wait(&what, FAILOVER_TIMEOUT, || {
            let v = c.try_view(id, &["fo-solo"])?;
            let parts = v.topic("fo-solo");
            let leaderless = |p: &i32| {
                parts
                    .get(p)
                    .is_some_and(|x| (x.leader, x.error) == (-1, LEADER_NOT_AVAILABLE))
            };
            if solo_on_gone.iter().all(leaderless) {
                Ok(())
            } else {
                Err(v.summary())
            }
        });
    }

    // The producer keeps delivering to every partition, those that moved included.
    let failed_over = Instant::now();
    bg.wait_delivered_since(
        failed_over,
        6,
        Duration::from_secs(30),
        "after the failover",
    );
    bg.stop();
    assert_eq!(
        bg.log.failures(),
        Vec::<String>::new(),
        "deliveries failed across the failover"
    );
    // ...and what was delivered after it can be consumed from the new leaders.
    let fresh: Vec<clients::Delivered> = bg
        .log
        .delivered()
        .into_iter()
        .filter(|d| d.at > failed_over)
        .collect();
    let mut from: BTreeMap<i32, i64> = BTreeMap::new();
    for d in &fresh {
        let o = from.entry(d.partition).or_insert(d.offset);
        *o = (*o).min(d.offset);
    }
    let want: BTreeSet<String> = fresh.iter().map(|d| d.value.clone()).collect();
    clients::read_values(
        &c.bootstrap(c.live()[0]),
        topic,
        &from,
        &want,
        Duration::from_secs(60),
    );

    // Restarted, it is listed again by everyone, and leads its single-replica partitions.
    c.restart(gone);
    c.wait_formed(&c.ids());
    c.wait(
        &format!("fo-solo partitions {solo_on_gone:?} led by node {gone} again"),
        FAILOVER_TIMEOUT,
        || {
            let v = c.try_view(gone, &["fo-solo"])?;
            let parts = v.topic("fo-solo");
            let ok = solo_on_gone.iter().all(|p| {
                parts
                    .get(p)
                    .is_some_and(|x| x.leader == gone && x.error == NONE)
            });
            if ok { Ok(()) } else { Err(v.summary()) }
        },
    );
    let (err, _) = c
        .produce(gone, "fo-solo", solo_on_gone[0], &["back"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        err, NONE,
        "Produce to fo-solo-{} at node {gone} after its restart",
        solo_on_gone[0]
    );
}

#[test]
fn sigterm_moves_leadership_off_before_exit() {
    let mut c = Cluster::start3();
    let topic = "graceful";
    let before = c.create_topic_ok(1, topic, 6, 3);
    let gone = victim(&c, topic);
    let controller = c.controller();
    let other = c
        .ids()
        .into_iter()
        .find(|id| *id != gone && *id != controller)
        .expect("a third node");
    let led_before = c.view(controller, &[topic, OFFSETS_TOPIC]).led_by(gone);

    c.stop(gone);
    // Right after the exit the controller's metadata has moved every leadership; the other
    // broker applies the same metadata log, a moment later at most.
    let v = c.view(controller, &[topic, OFFSETS_TOPIC]);
    assert_eq!(
        v.led_by(gone),
        Vec::<(String, i32)>::new(),
        "after its SIGTERM exit node {gone} still leads (it led {led_before:?}):\n{}",
        v.summary()
    );
    c.wait(
        &format!("node {other} to show no partition led by stopped node {gone}"),
        Duration::from_secs(2),
        || {
            let v = c.try_view(other, &[topic, OFFSETS_TOPIC])?;
            if v.led_by(gone).is_empty() {
                Ok(())
            } else {
                Err(v.summary())
            }
        },
    );
    let after = wait_failed_over(&c, gone, topic, &before);
    for (p, part) in after.topic(topic) {
        let old = &before.topic(topic)[&p];
        if old.leader == gone {
            assert!(
                part.epoch > old.epoch,
                "{topic}-{p}: epoch {} not above {}",
                part.epoch,
                old.epoch
            );
        }
    }
    // New data goes to the new leaders.
    for (p, leader) in after.leaders(topic) {
        let r = c
            .produce(leader, topic, p, &["after-sigterm"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.0, NONE, "Produce {topic}-{p} at its new leader {leader}");
    }
}

#[test]
fn killing_the_controller_elects_another() {
    let mut c = Cluster::start3();
    let old = c.controller();
    c.kill(old);
    let live = c.live();
    let new = c.wait_formed(&live);
    assert_ne!(new, old, "the killed node is still named controller");
    // Through the survivor that is not the controller: forwarded to the new one.
    let follower = live
        .iter()
        .copied()
        .find(|id| *id != new)
        .expect("a follower");
    let v = c.create_topic_ok(follower, "after-controller", 4, 2);
    assert!(
        v.leaders("after-controller")
            .values()
            .all(|l| live.contains(l)),
        "{}",
        v.summary()
    );
    let (err, msg) = c.create_topic(new, "after-controller-rf3", 1, 3);
    assert_eq!(
        err, INVALID_REPLICATION_FACTOR,
        "RF 3 with 2 brokers alive: {msg}"
    );

    c.restart(old);
    let again = c.wait_formed(&c.ids());
    eprintln!("controller {old} killed -> {new}; after its restart: {again}");
    c.create_topic_ok(old, "after-controller-back", 3, 3);
}

#[test]
fn isolated_broker_is_fenced_and_comes_back_when_healed() {
    let mut c = Cluster::start(Options {
        proxies: true,
        ..Options::default()
    });
    let topic = "iso";
    let before = c.create_topic_ok(1, topic, 6, 3);
    let cut = victim(&c, topic);
    let led: Vec<i32> = before
        .leaders(topic)
        .into_iter()
        .filter(|(_, l)| *l == cut)
        .map(|(p, _)| p)
        .collect();
    let (sent, received) = c.proxied_bytes(cut);
    assert!(
        sent > 0 && received > 0,
        "no controller traffic of node {cut} went through its proxies (sent {sent}, received \
         {received}): do the brokers connect to the voter addresses?\n{}",
        c.describe()
    );
    let r = c
        .produce(cut, topic, led[0], &["before-cut"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.0, NONE,
        "Produce {topic}-{} at its leader {cut} before the partition",
        led[0]
    );

    // Followers' fetches go through the data proxies too.
    let others: Vec<i32> = c.ids().into_iter().filter(|id| *id != cut).collect();
    let data = |c: &Cluster, id: i32| c.data_proxy_stats(id).expect("a data proxy");
    c.wait(
        "replica fetches answered through the data proxies of the isolated node and another",
        Duration::from_secs(20),
        || {
            let through = |id: i32| data(&c, id).bytes_down > 0;
            if others.iter().any(|id| through(*id)) && through(cut) {
                Ok(())
            } else {
                Err(c.describe())
            }
        },
    );
    let refused_before: u64 = others.iter().map(|id| data(&c, *id).refused).sum();

    let t0 = Instant::now();
    c.isolate(cut);
    let cut_data = data(&c, cut);
    let after = wait_failed_over(&c, cut, topic, &before);
    eprintln!(
        "node {cut} isolated: fenced after {:?}\n{}",
        t0.elapsed(),
        after.summary()
    );

    // The isolated broker stops taking writes once it has not heard from the controller for
    // the session timeout.
    let refused = c.wait(
        &format!(
            "isolated node {cut} to refuse Produce to {topic}-{}",
            led[0]
        ),
        FAILOVER_TIMEOUT,
        || match c.produce(cut, topic, led[0], &["during-cut"])? {
            (NOT_LEADER_OR_FOLLOWER, _) => Ok(t0.elapsed()),
            other => Err(format!("Produce at node {cut}: {other:?}")),
        },
    );
    eprintln!("isolated node {cut} refuses produce {refused:?} after the cut");
    assert!(
        c.unexpectedly_dead().is_empty(),
        "a broker died: {:?}",
        c.unexpectedly_dead()
    );
    for p in &led {
        let r = c
            .produce(cut, topic, *p, &["during-cut"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.0, NOT_LEADER_OR_FOLLOWER,
            "isolated node {cut}: Produce {topic}-{p}, which it led"
        );
    }
    for (p, leader) in after.leaders(topic) {
        let r = c
            .produce(leader, topic, p, &["new-leader"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.0, NONE,
            "Produce {topic}-{p} at its new leader {leader} during the partition"
        );
    }

    // The data path was partitioned too: nothing reached the isolated broker's inter-broker
    // listener, and its own fetches from the others' leaders were refused.
    let now = data(&c, cut);
    assert_eq!(
        (now.bytes_up, now.bytes_down),
        (cut_data.bytes_up, cut_data.bytes_down),
        "bytes reached isolated node {cut}'s inter-broker listener"
    );
    let refused_after: u64 = others.iter().map(|id| data(&c, *id).refused).sum();
    assert!(
        refused_after > refused_before,
        "isolated node {cut} never tried (and failed) to fetch from the others"
    );

    c.heal(cut);
    c.wait_formed(&c.ids());
    // Back in sync: the healed broker describes the partitions as the others do, and the
    // leaders it names take writes.
    let other = c
        .ids()
        .into_iter()
        .find(|id| *id != cut)
        .expect("another node");
    c.wait(
        &format!("node {cut} to agree with node {other} on the leaders of {topic}"),
        FAILOVER_TIMEOUT,
        || {
            let mine = c.try_view(cut, &[topic])?;
            let theirs = c.try_view(other, &[topic])?;
            if mine.topic(topic) == theirs.topic(topic) {
                Ok(())
            } else {
                Err(format!("{}\n{}", mine.summary(), theirs.summary()))
            }
        },
    );
    for (p, leader) in c.view(cut, &[topic]).leaders(topic) {
        let r = c
            .produce(leader, topic, p, &["healed"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.0, NONE,
            "Produce {topic}-{p} at leader {leader} after healing"
        );
    }
}

/// Rounds of faults under a producer; each round ends with three brokers agreeing and new
/// messages acknowledged on every partition. `CLUSTER_SOAK_FAULTS` picks the faults taken in
/// turn (default `kill,kill-controller,sigterm,isolate`).
#[test]
#[ignore = "soak: CLUSTER_SOAK_ROUNDS=40 cargo test --test cluster -- --ignored cluster_soak"]
fn cluster_soak() {
    let rounds: usize = std::env::var("CLUSTER_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(12);
    let faults: Vec<String> = std::env::var("CLUSTER_SOAK_FAULTS")
        .unwrap_or_else(|_| "kill,kill-controller,sigterm,isolate".into())
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    for f in &faults {
        assert!(
            ["kill", "kill-controller", "sigterm", "isolate"].contains(&f.as_str()),
            "unknown fault {f:?} in CLUSTER_SOAK_FAULTS"
        );
    }
    let mut c = Cluster::start(Options {
        proxies: true,
        ..Options::default()
    });
    let topic = "soak";
    c.create_topic_ok(1, topic, 6, 3);
    let mut bg = Background::start(&c.bootstrap_all(), topic, 6, "soak");
    for round in 0..rounds {
        let fault = faults[round % faults.len()].as_str();
        let controller = c.controller();
        let before = c.view(controller, &[topic]);
        // Leadership is not moved back when a broker returns: prefer a broker that leads
        // something, else any broker other than the controller.
        let node = match fault {
            "kill-controller" => controller,
            _ => before
                .leaders(topic)
                .values()
                .copied()
                .find(|l| *l != controller)
                .unwrap_or_else(|| {
                    c.ids()
                        .into_iter()
                        .find(|id| *id != controller)
                        .expect("a follower")
                }),
        };
        let started = Instant::now();
        match fault {
            "kill" | "kill-controller" => c.kill(node),
            "sigterm" => c.stop(node),
            _ => c.isolate(node),
        }
        wait_failed_over(&c, node, topic, &before);
        let moved = Instant::now();
        bg.wait_delivered_since(
            moved,
            6,
            Duration::from_secs(30),
            &format!("round {round} ({fault}): after losing node {node}"),
        );
        if fault == "isolate" {
            c.heal(node);
        } else {
            c.restart(node);
        }
        c.wait_formed(&c.ids());
        c.wait_topic(topic, 6, 3);
        bg.wait_delivered_since(
            Instant::now(),
            6,
            Duration::from_secs(30),
            &format!("round {round} ({fault}): after node {node} came back"),
        );
        eprintln!(
            "round {round}: {fault} node {node}, back in {:?} (failover {:?})",
            started.elapsed(),
            moved - started
        );
    }
    bg.stop();
    assert_eq!(
        bg.log.failures(),
        Vec::<String>::new(),
        "deliveries failed during the soak"
    );
}
