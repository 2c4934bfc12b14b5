"""Transactional clients for tests/transactions.rs: two client families (confluent-kafka,
which is librdkafka, and kafka-python) producing in transactions and running a
consume-transform-produce loop whose input offsets are committed in the transaction.

  txn_clients.py basic BOOTSTRAP TOPIC
      confluent-kafka: a committed, an aborted and a committed transaction; prints the
      values a read_committed and a read_uncommitted consumer see, as JSON.
  txn_clients.py abort-large BOOTSTRAP TOPIC
      librdkafka 0129's case: a topic of 1 MiB segments, an aborted transaction of 3,000
      records of 1,000 bytes (three segments), then one committed record; prints, as JSON,
      what a read_committed consumer reads from the start to the end (and any error).
  txn_clients.py seed BOOTSTRAP TOPIC N
      N plain records "0".."N-1" spread over the topic's partitions.
  txn_clients.py process CLIENT BOOTSTRAP IN OUT TXN_ID GROUP
      CLIENT is confluent or kafka-python: reads IN under read_committed from the group's
      committed offsets (assigned, not subscribed), and for every batch, in one
      transaction, writes "<value>-x" to OUT and commits the input offsets. Prints
      "committed <records>" after each commit; exits once every partition of IN is read
      to its end and nothing new came for 2 s.
  txn_clients.py zombie BOOTSTRAP OUT TXN_ID
      confluent-kafka: begins a transaction of TXN_ID, writes 50 records "zombie-<i>" to
      OUT and exits without ending it (its coordinator aborts it when TXN_ID's next
      producer starts, or at its timeout).
  txn_clients.py verify BOOTSTRAP OUT N
      reads OUT under read_committed and read_uncommitted; prints JSON with the committed
      values' duplicates and missing ones (of "0-x".."N-1-x") and both counts.
"""

import json
import sys
import time


def confluent_read(bootstrap, topic, isolation, idle=3.0):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "verify-%s-%f" % (isolation, time.time()),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    values, eof, last = [], set(), time.time()
    while len(eof) < len(parts) and time.time() - last < idle + 10:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                continue
            raise RuntimeError(str(m.error()))
        values.append(m.value().decode())
        last = time.time()
    c.close()
    return values


def basic(bootstrap, topic):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "basic-" + topic})
    p.init_transactions(30)
    for name, n, commit in (("c", 10, True), ("a", 5, False), ("d", 3, True)):
        p.begin_transaction()
        for i in range(n):
            p.produce(topic, value=("%s%d" % (name, i)).encode(), partition=i % 2)
        # Written to the log before the outcome, so the abort leaves records behind.
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    out = {
        "read_committed": sorted(confluent_read(bootstrap, topic, "read_committed")),
        "read_uncommitted": sorted(confluent_read(bootstrap, topic, "read_uncommitted")),
    }
    print(json.dumps(out))


def abort_large(bootstrap, topic):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics(
        [NewTopic(topic, 1, 1, config={"segment.bytes": "1048576"})]
    )[topic]
    fut.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "large-" + topic,
                  "linger.ms": 50})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3000):
        p.produce(topic, value=b"a" * 1000, partition=0)
        p.poll(0)
    p.flush(60)
    p.abort_transaction(60)
    p.begin_transaction()
    p.produce(topic, value=b"kept", partition=0)
    p.commit_transaction(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "large-" + topic,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, errors, deadline = [], [], time.time() + 30
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                break
            errors.append(str(m.error()))
            continue
        got.append(m.value().decode())
    c.close()
    print(json.dumps({"values": got, "errors": errors}))


def seed(bootstrap, topic, n):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=str(i).encode())
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left:
        raise RuntimeError("%d records not delivered" % left)
    print("seeded", n)


def process_confluent(bootstrap, src, dst, txn_id, group):
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "transaction.timeout.ms": 10000,
        }
    )
    p.init_transactions(60)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    parts = sorted(c.list_topics(src, timeout=10).topics[src].partitions)
    tps = [TopicPartition(src, q) for q in parts]
    committed = c.committed(tps, timeout=30)
    c.assign(
        [TopicPartition(src, t.partition, t.offset if t.offset >= 0 else 0) for t in committed]
    )
    total, last = 0, time.time()

    def drained():
        # Done once the input has had nothing new for a while and every partition has
        # been read to its end (a partition whose leader moved may just be unreachable).
        if time.time() - last < 2:
            return False
        for tp in c.position(tps):
            _, high = c.get_watermark_offsets(tp, timeout=10)
            if tp.offset < high:
                return False
        return True

    while not drained():
        msgs = c.consume(200, 0.5)
        msgs = [m for m in msgs if not m.error()]
        if not msgs:
            continue
        last = time.time()
        p.begin_transaction()
        ends = {}
        for m in msgs:
            p.produce(dst, key=m.key(), value=m.value() + b"-x")
            ends[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(src, q, o) for q, o in ends.items()]
        p.send_offsets_to_transaction(offsets, c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        total += len(msgs)
        print("committed", total, flush=True)
    c.close()


def process_kafka_python(bootstrap, src, dst, txn_id, group):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    p = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=txn_id,
        transaction_timeout_ms=10000,
    )
    p.init_transactions()
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tps = [TopicPartition(src, q) for q in sorted(c.partitions_for_topic(src))]
    c.assign(tps)
    for tp in tps:
        off = c.committed(tp)
        c.seek(tp, off if off is not None and off >= 0 else 0)
    total, last = 0, time.time()

    def drained():
        if time.time() - last < 2:
            return False
        ends = c.end_offsets(tps)
        return all(c.position(tp) >= ends[tp] for tp in tps)

    while not drained():
        batches = c.poll(timeout_ms=500, max_records=200)
        msgs = [m for ms in batches.values() for m in ms]
        if not msgs:
            continue
        last = time.time()
        p.begin_transaction()
        ends = {}
        for m in msgs:
            p.send(dst, key=m.key, value=m.value + b"-x")
            ends[m.partition] = m.offset + 1
        offsets = {TopicPartition(src, q): OffsetAndMetadata(o, "", -1) for q, o in ends.items()}
        p.send_offsets_to_transaction(offsets, group)
        p.commit_transaction()
        total += len(msgs)
        print("committed", total, flush=True)
    c.close()


def zombie(bootstrap, topic, txn_id):
    import os
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(50):
        p.produce(topic, value=("zombie-%d" % i).encode())
    left = p.flush(30)
    if left:
        raise RuntimeError("%d zombie records not written" % left)
    sys.stdout.flush()
    os._exit(0)


def verify(bootstrap, topic, n):
    committed = confluent_read(bootstrap, topic, "read_committed")
    uncommitted = confluent_read(bootstrap, topic, "read_uncommitted")
    seen, dups = set(), []
    for v in committed:
        if v in seen:
            dups.append(v)
        seen.add(v)
    missing = [i for i in range(n) if "%d-x" % i not in seen]
    print(
        json.dumps(
            {
                "committed": len(committed),
                "uncommitted": len(uncommitted),
                "duplicates": dups[:20],
                "duplicate_count": len(dups),
                "missing_count": len(missing),
                "missing": missing[:20],
                "foreign": [v for v in seen if not v.endswith("-x")][:20],
            }
        )
    )


def main():
    mode = sys.argv[1]
    if mode == "basic":
        basic(sys.argv[2], sys.argv[3])
    elif mode == "abort-large":
        abort_large(sys.argv[2], sys.argv[3])
    elif mode == "seed":
        seed(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "process":
        client, rest = sys.argv[2], sys.argv[3:8]
        if client == "confluent":
            process_confluent(*rest)
        else:
            process_kafka_python(*rest)
    elif mode == "zombie":
        zombie(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "verify":
        verify(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
