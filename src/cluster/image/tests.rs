use super::*;

fn register(img: &mut Image, id: i32) {
    img.apply(Command::Register {
        id,
        host: "h".into(),
        port: 9000 + id as u16,
        incarnation: 7,
        endpoints: Vec::new(),
    });
}

fn topic(name: &str, partitions: i32, rf: i16) -> Command {
    Command::CreateTopics {
        topics: vec![NewTopic {
            name: name.into(),
            id: "00".into(),
            partitions,
            replication_factor: rf,
            configs: BTreeMap::new(),
            assignments: None,
        }],
    }
}

fn leaders(img: &Image, name: &str) -> Vec<i32> {
    img.topics[name]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect()
}

#[test]
fn leaders_spread_evenly_across_topics() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("a", 2, 1));
    img.apply(topic("b", 4, 3));
    let counts = img.leader_counts(&img.live());
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    for p in &img.topics["b"].partitions {
        let mut r = p.replicas.clone();
        r.sort();
        r.dedup();
        assert_eq!(r.len(), 3, "{p:?}");
        assert_eq!(p.replicas[0], p.leader);
    }
}

#[test]
fn replication_factor_beyond_live_brokers_is_refused() {
    let mut img = Image::default();
    register(&mut img, 1);
    register(&mut img, 2);
    img.apply(Command::Fence { id: 2 });
    let Outcome::Topics(out) = img.apply(topic("t", 1, 2)) else {
        panic!("topics outcome");
    };
    assert_eq!(out[0].error_code, codes::INVALID_REPLICATION_FACTOR);
    assert!(!img.topics.contains_key("t"));
    let Outcome::Topics(out) = img.apply(topic("t", 1, 1)) else {
        panic!("topics outcome");
    };
    assert_eq!(out[0].error_code, codes::NONE);
    let Outcome::Topics(out) = img.apply(topic("t", 1, 1)) else {
        panic!("topics outcome");
    };
    assert_eq!(out[0].error_code, codes::TOPIC_ALREADY_EXISTS);
}

#[test]
fn fencing_moves_leadership_to_a_live_replica_and_bumps_the_epoch() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("r3", 3, 3));
    img.apply(topic("r1", 3, 1));
    assert_eq!(leaders(&img, "r3"), vec![1, 2, 3]);
    img.apply(Command::Fence { id: 2 });
    let p = &img.topics["r3"].partitions[1];
    assert_eq!((p.leader, p.leader_epoch), (3, 1));
    assert!(!p.isr.contains(&2));
    // A partition whose only replica is fenced has no leader until it returns.
    let lone = img.topics["r1"]
        .partitions
        .iter()
        .position(|p| p.replicas == vec![2])
        .expect("one r1 partition on broker 2");
    assert_eq!(img.topics["r1"].partitions[lone].leader, -1);
    register(&mut img, 2);
    let p = &img.topics["r1"].partitions[lone];
    assert_eq!((p.leader, p.leader_epoch), (2, 2));
    // A returning replica is not in sync until its leader says so (AlterPartition).
    assert!(!img.topics["r3"].partitions[1].isr.contains(&2));
    // Nothing else moved back.
    assert_eq!(img.topics["r3"].partitions[1].leader, 3);
}

fn alter(img: &mut Image, leader_epoch: i32, partition_epoch: i32, isr: Vec<i32>) -> i16 {
    let p = &img.topics["r3"].partitions[1];
    let cmd = Command::AlterPartition {
        topic: "r3".into(),
        partition: 1,
        leader: p.leader,
        leader_epoch,
        partition_epoch,
        isr,
    };
    codes_of(img.apply(cmd))[0]
}

#[test]
fn alter_partition_checks_versions_and_gives_the_preferred_replica_its_lead_back() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("r3", 3, 3));
    img.apply(Command::Fence { id: 2 });
    register(&mut img, 2);
    let p = img.topics["r3"].partitions[1].clone();
    assert_eq!((p.replicas[0], p.leader), (2, 3));
    let (le, pe) = (p.leader_epoch, p.partition_epoch);
    // Stale versions, strangers, fenced or repeated members, an ISR without its leader.
    assert_eq!(
        alter(&mut img, le - 1, pe, vec![3, 1, 2]),
        codes::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        alter(&mut img, le, pe + 1, vec![3, 1, 2]),
        codes::INVALID_UPDATE_VERSION
    );
    assert_eq!(
        alter(&mut img, le, pe, vec![3, 1, 4]),
        codes::INELIGIBLE_REPLICA
    );
    assert_eq!(
        alter(&mut img, le, pe, vec![3, 1, 1]),
        codes::INELIGIBLE_REPLICA
    );
    assert_eq!(
        alter(&mut img, le, pe, vec![1, 2]),
        codes::INELIGIBLE_REPLICA
    );
    assert_eq!(img.topics["r3"].partitions[1], p, "refusals change nothing");
    // Shrinking keeps the leader; expanding with the preferred replica hands it back.
    assert_eq!(alter(&mut img, le, pe, vec![3]), codes::NONE);
    let q = &img.topics["r3"].partitions[1];
    assert_eq!(
        (q.leader, q.leader_epoch, q.partition_epoch, q.isr.clone()),
        (3, le, pe + 1, vec![3])
    );
    assert_eq!(alter(&mut img, le, pe + 1, vec![3, 2]), codes::NONE);
    let q = &img.topics["r3"].partitions[1];
    assert_eq!(
        (q.leader, q.leader_epoch, q.isr.clone()),
        (2, le + 1, vec![3, 2])
    );
}

#[test]
fn elections_take_in_sync_replicas_only_unless_unclean_is_allowed() {
    for unclean in [false, true] {
        let mut img = Image::default();
        for id in 1..=3 {
            register(&mut img, id);
        }
        img.apply(topic("r3", 3, 3));
        if unclean {
            img.apply(Command::AlterTopicConfigs {
                topics: vec![TopicConfigs {
                    name: "r3".into(),
                    configs: [(UNCLEAN_ELECTION.to_string(), "true".to_string())].into(),
                }],
            });
        }
        // Partition 1 is led by 2; its ISR shrinks to the leader alone, then 2 dies.
        let p = img.topics["r3"].partitions[1].clone();
        assert_eq!(p.leader, 2);
        assert_eq!(
            alter(&mut img, p.leader_epoch, p.partition_epoch, vec![2]),
            codes::NONE
        );
        img.apply(Command::Fence { id: 2 });
        let q = img.topics["r3"].partitions[1].clone();
        if unclean {
            assert!(q.leader == 3 || q.leader == 1, "{q:?}");
            assert_eq!(q.isr, vec![q.leader]);
        } else {
            // Out-of-sync replicas 3 and 1 are alive, yet nobody leads: the last in-sync
            // replica stays listed and takes its partition back when it returns.
            assert_eq!((q.leader, q.isr.clone()), (-1, vec![2]));
            register(&mut img, 2);
            let r = &img.topics["r3"].partitions[1];
            assert_eq!((r.leader, r.isr.clone()), (2, vec![2]));
            assert!(r.leader_epoch > q.leader_epoch);
        }
    }
}

#[test]
fn a_stale_controlled_shutdown_does_not_fence_a_new_incarnation() {
    let mut img = Image::default();
    register(&mut img, 1);
    img.apply(Command::ControlledShutdown {
        id: 1,
        incarnation: 6,
    });
    assert!(img.is_live(1));
    img.apply(Command::ControlledShutdown {
        id: 1,
        incarnation: 7,
    });
    assert!(!img.is_live(1));
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut img = Image::default();
    let mut seen = Vec::new();
    for b in [1, 2, 1, 3] {
        let Outcome::ProducerIds { start, end } =
            img.apply(Command::AllocateProducerIds { broker: b })
        else {
            panic!("ids outcome");
        };
        assert!(seen.iter().all(|(s, e)| end <= *s || start >= *e));
        seen.push((start, end));
    }
    assert_eq!(img.next_producer_id, 4 * PRODUCER_ID_BLOCK);
}

#[test]
fn alter_topic_configs_replaces_overrides_of_existing_topics_only() {
    let mut img = Image::default();
    register(&mut img, 1);
    let Command::CreateTopics { mut topics } = topic("t", 2, 1) else {
        panic!("create command");
    };
    topics[0].configs = [("flush".to_string(), "fsync".to_string())].into();
    img.apply(Command::CreateTopics { topics });
    let before = img.topics["t"].partitions.clone();
    let want: BTreeMap<String, String> = [("retention.ms".to_string(), "1000".to_string())].into();
    let cmd = Command::AlterTopicConfigs {
        topics: vec![
            TopicConfigs {
                name: "t".into(),
                configs: want.clone(),
            },
            TopicConfigs {
                name: "gone".into(),
                configs: want.clone(),
            },
        ],
    };
    // Deterministic: two images applying the same command agree.
    let mut other = img.clone();
    let out = img.apply(cmd.clone());
    assert_eq!(out, other.apply(cmd));
    assert_eq!(img, other);
    let Outcome::Topics(out) = out else {
        panic!("topics outcome");
    };
    let codes: Vec<i16> = out.iter().map(|o| o.error_code).collect();
    assert_eq!(codes, vec![codes::NONE, codes::UNKNOWN_TOPIC_OR_PARTITION]);
    // The overrides are replaced whole (flush is gone); placement is untouched.
    assert_eq!(img.topics["t"].configs, want);
    assert_eq!(img.topics["t"].partitions, before);
    assert!(!img.topics.contains_key("gone"));
}

fn add(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> Command {
    Command::CreatePartitions {
        topics: vec![NewPartitions {
            name: name.into(),
            count,
            assignments,
        }],
    }
}

fn codes_of(out: Outcome) -> Vec<i16> {
    let Outcome::Topics(out) = out else {
        panic!("topics outcome");
    };
    out.iter().map(|o| o.error_code).collect()
}

#[test]
fn added_partitions_spread_leaders_and_keep_the_replication_factor() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("t", 1, 2));
    let before = img.topics["t"].partitions.clone();
    assert_eq!(codes_of(img.apply(add("t", 7, None))), vec![codes::NONE]);
    let parts = &img.topics["t"].partitions;
    assert_eq!(parts.len(), 7);
    // The existing partition is untouched.
    assert_eq!(parts[0], before[0]);
    for p in parts {
        assert_eq!(p.replicas.len(), 2, "{p:?}");
        assert_ne!(p.replicas[0], p.replicas[1]);
        assert_eq!(p.leader, p.replicas[0]);
    }
    // Leaders of all 7 partitions, old and new, spread evenly over the 3 brokers.
    let counts = img.leader_counts(&img.live());
    let mut spread: Vec<usize> = counts.values().copied().collect();
    spread.sort();
    assert_eq!(spread, vec![2, 2, 3]);
}

#[test]
fn create_partitions_refuses_what_kafka_refuses_and_changes_nothing() {
    let mut img = Image::default();
    for id in 1..=2 {
        register(&mut img, id);
    }
    img.apply(topic("t", 3, 2));
    let before = img.clone();
    assert_eq!(
        codes_of(img.apply(add("gone", 4, None))),
        vec![codes::UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        codes_of(img.apply(add("t", 3, None))),
        vec![codes::INVALID_PARTITIONS]
    );
    assert_eq!(
        codes_of(img.apply(add("t", 2, None))),
        vec![codes::INVALID_PARTITIONS]
    );
    for bad in [
        vec![vec![1, 2]],                // one assignment for two new partitions
        vec![vec![1, 2], vec![1]],       // fewer replicas than the topic has
        vec![vec![1, 2], vec![2, 2]],    // a broker twice
        vec![vec![1, 2], vec![1, 9]],    // an unknown broker
        vec![vec![1, 2], vec![1, 2, 3]], // more replicas than the topic has
    ] {
        assert_eq!(
            codes_of(img.apply(add("t", 5, Some(bad.clone())))),
            vec![codes::INVALID_REPLICA_ASSIGNMENT],
            "{bad:?}"
        );
    }
    assert_eq!(img, before, "refusals change nothing");
    // A manual assignment is taken as given; its first live replica leads.
    img.apply(Command::Fence { id: 2 });
    let ok = Some(vec![vec![2, 1], vec![1, 2]]);
    assert_eq!(codes_of(img.apply(add("t", 5, ok))), vec![codes::NONE]);
    let parts = &img.topics["t"].partitions;
    assert_eq!(
        (parts[3].replicas.clone(), parts[3].leader),
        (vec![2, 1], 1)
    );
    assert_eq!(parts[3].isr, vec![1]);
    assert_eq!(
        (parts[4].replicas.clone(), parts[4].leader),
        (vec![1, 2], 1)
    );
    // With one live broker, placing a replication factor of 2 is refused.
    assert_eq!(
        codes_of(img.apply(add("t", 6, None))),
        vec![codes::INVALID_REPLICATION_FACTOR]
    );
}

#[test]
fn create_partitions_applies_deterministically_and_once() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("t", 2, 1));
    let cmd = add("t", 5, None);
    let mut other = img.clone();
    let out = img.apply(cmd.clone());
    assert_eq!(out, other.apply(cmd.clone()));
    assert_eq!(img, other, "every voter ends with the same image");
    // The same command applied again (a retried proposal) adds nothing more.
    let after = img.clone();
    assert_eq!(codes_of(img.apply(cmd)), vec![codes::INVALID_PARTITIONS]);
    assert_eq!(img, after);
    assert_eq!(img.topics["t"].partitions.len(), 5);
}

#[test]
fn broker_configs_are_applied_and_kept_in_snapshots() {
    let mut img = Image::default();
    let configs: BTreeMap<String, String> =
        [("log.retention.ms".to_string(), "1000".to_string())].into();
    let out = img.apply(Command::AlterBrokerConfigs {
        broker: None,
        configs: configs.clone(),
    });
    assert_eq!(out, Outcome::Done);
    assert_eq!(img.broker_configs.default, configs);
    img.apply(Command::AlterBrokerConfigs {
        broker: Some(2),
        configs: configs.clone(),
    });
    assert_eq!(img.broker_configs.of(Some(2)), Some(&configs));
    // A snapshot carries them; one of an older version (without them) still loads.
    let back: Image = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
    assert_eq!(back, img);
    let old: Image =
        serde_json::from_str(r#"{"brokers":{},"topics":{},"next_producer_id":0}"#).unwrap();
    assert!(old.broker_configs.default.is_empty() && old.broker_configs.brokers.is_empty());
    // Replacing with nothing removes the broker's overrides.
    img.apply(Command::AlterBrokerConfigs {
        broker: Some(2),
        configs: BTreeMap::new(),
    });
    assert_eq!(img.broker_configs.of(Some(2)), None);
}

#[test]
fn chosen_replicas_are_checked_and_lead_from_the_first_live_one() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(Command::Fence { id: 2 });
    let create = |name: &str, assignments: Vec<Vec<i32>>| Command::CreateTopics {
        topics: vec![NewTopic {
            name: name.into(),
            id: "01".into(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
            assignments: Some(assignments),
        }],
    };
    let code = |o: Outcome| match o {
        Outcome::Topics(t) => t[0].error_code,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        code(img.apply(create("m", vec![vec![2, 3], vec![3, 1]]))),
        codes::NONE
    );
    let m = &img.topics["m"].partitions;
    assert_eq!(
        (m[0].leader, m[0].isr.clone()),
        (3, vec![3]),
        "broker 2 is fenced"
    );
    assert_eq!((m[1].leader, m[1].replicas.clone()), (3, vec![3, 1]));
    for bad in [
        vec![vec![1, 1]],
        vec![vec![1, 9]],
        vec![vec![1, 2], vec![3]],
        vec![vec![]],
    ] {
        assert_eq!(
            code(img.apply(create("bad", bad.clone()))),
            codes::INVALID_REPLICA_ASSIGNMENT,
            "{bad:?}"
        );
        assert!(!img.topics.contains_key("bad"));
    }
}

#[test]
fn the_cluster_wide_unclean_default_applies_and_enabling_it_elects_at_once() {
    let mut img = Image::default();
    for id in 1..=3 {
        register(&mut img, id);
    }
    img.apply(topic("r3", 3, 3));
    let p = img.topics["r3"].partitions[1].clone();
    assert_eq!(
        alter(&mut img, p.leader_epoch, p.partition_epoch, vec![2]),
        codes::NONE
    );
    img.apply(Command::Fence { id: 2 });
    assert_eq!(
        img.topics["r3"].partitions[1].leader, -1,
        "clean: nobody leads"
    );
    // The cluster-wide dynamic default turns unclean election on: the leaderless
    // partition is led by a live replica at once, with a new epoch.
    img.apply(Command::AlterBrokerConfigs {
        broker: None,
        configs: [(UNCLEAN_ELECTION.to_string(), "true".to_string())].into(),
    });
    let q = img.topics["r3"].partitions[1].clone();
    assert!(q.leader == 1 || q.leader == 3, "{q:?}");
    assert_eq!(q.isr, vec![q.leader]);
    assert!(q.leader_epoch > p.leader_epoch);
    // A topic's own `false` wins over the cluster's `true`.
    img.apply(Command::AlterTopicConfigs {
        topics: vec![TopicConfigs {
            name: "r3".into(),
            configs: [(UNCLEAN_ELECTION.to_string(), "false".to_string())].into(),
        }],
    });
    let r = img.topics["r3"].partitions[0].clone();
    let leader = r.leader;
    let (e, pe) = (r.leader_epoch, r.partition_epoch);
    let shrink = Command::AlterPartition {
        topic: "r3".into(),
        partition: 0,
        leader,
        leader_epoch: e,
        partition_epoch: pe,
        isr: vec![leader],
    };
    assert_eq!(codes_of(img.apply(shrink))[0], codes::NONE);
    img.apply(Command::Fence { id: leader });
    assert_eq!(img.topics["r3"].partitions[0].leader, -1);
}
