#!/usr/bin/env python3
"""kafka-python against a ringbroker cluster, knowing one broker only.

Usage: cluster_clients.py BOOTSTRAP TOPIC GROUP COUNT BROKERS

BOOTSTRAP is a single broker. The client must discover the other brokers from Metadata
(BROKERS of them, each leading some partitions of TOPIC), produce COUNT messages with
acks=all (message i to partition i % partitions) to whichever broker leads each
partition, then consume them all in consumer group GROUP (its coordinator may be yet
another broker) and commit. Every message must come back exactly once, from the
partition it was produced to, and the committed offsets must be the end offsets.
Prints OK and the leaders it saw; exits non-zero with the reason otherwise.
"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConfigurationError

bootstrap, topic, group, count, brokers = sys.argv[1:6]
count, brokers = int(count), int(brokers)


def fail(msg):
    sys.exit(f"cluster_clients.py: {msg}")


def wait(what, probe, show=lambda: None, timeout=30):
    """Calls probe() until it returns something true; returns that value. On timeout,
    fails with what show() says was seen last (or the last exception)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            got = probe()
            if got:
                return got
            last = show()
        except Exception as e:  # a broker not ready yet: retried
            last = repr(e)
        time.sleep(0.2)
    fail(f"timed out waiting for {what}; last seen: {last}")


def node_id(b):
    # kafka-python 3 has MetadataResponseBroker.node_id, 2.x BrokerMetadata.nodeId.
    return getattr(b, "node_id", getattr(b, "nodeId", None))


# Idempotence (kafka-python 3's default) is turned off: these tests do not need it.
try:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False
    )
except KafkaConfigurationError:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)

# The client's own view of the cluster, learnt from the one bootstrap broker.
partitions = sorted(wait(f"partitions of {topic}", lambda: producer.partitions_for(topic)))
cluster = producer._metadata  # kafka-python's ClusterMetadata (2.x and 3.x)


def leaders():
    got = {p: cluster.leader_for_partition(TopicPartition(topic, p)) for p in partitions}
    if len(cluster.brokers()) == brokers and all(l is not None and l >= 0 for l in got.values()):
        return got
    cluster.request_update()
    return None


seen_leaders = wait(
    f"{brokers} brokers and a leader for every partition",
    leaders,
    lambda: {
        "brokers": sorted(node_id(b) for b in cluster.brokers()),
        "leaders": {p: cluster.leader_for_partition(TopicPartition(topic, p)) for p in partitions},
    },
)
distinct = set(seen_leaders.values())
if len(distinct) < min(brokers, len(partitions)):
    fail(f"partitions led by {sorted(distinct)} only: {seen_leaders}")

sent = {}
futures = []
for i in range(count):
    p = partitions[i % len(partitions)]
    value = f"pyc-{i}"
    sent[value] = p
    futures.append((value, p, producer.send(topic, value=value.encode(), partition=p)))
producer.flush(timeout=60)
for value, p, f in futures:
    md = f.get(timeout=30)
    if md.partition != p:
        fail(f"{value} was acknowledged by partition {md.partition}, sent to {p}")
producer.close()

consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id=group,
    enable_auto_commit=False,
    auto_offset_reset="earliest",
    session_timeout_ms=6000,
    heartbeat_interval_ms=500,
    max_poll_interval_ms=30000,
)
got = []
deadline = time.time() + 90
while len(got) < count:
    if time.time() > deadline:
        fail(f"consumed {len(got)} of {count} messages in 90 s")
    for tp, records in consumer.poll(timeout_ms=200).items():
        for r in records:
            got.append((r.value.decode(), tp.partition))
consumer.commit()
if len(got) != len(set(got)):
    fail(f"{len(got) - len(set(got))} messages consumed twice")
wrong = [(v, p) for v, p in got if sent.get(v) != p]
if wrong or len(got) != count:
    fail(f"consumed {len(got)} messages; unexpected or misplaced: {wrong[:5]}")

tps = [TopicPartition(topic, p) for p in partitions]
ends = consumer.end_offsets(tps)
for tp in tps:
    committed = consumer.committed(tp)
    if committed != ends[tp]:
        fail(f"partition {tp.partition}: committed {committed}, end offset {ends[tp]}")
consumer.close()
print("OK leaders", seen_leaders, "brokers", sorted(node_id(b) for b in cluster.brokers()))
