#!/usr/bin/env python3
"""Two kafka-python consumers in one group against ringbroker.

Usage: group_consumers.py BOOTSTRAP TOPIC GROUP COUNT PARTITIONS

The consumers join the group and must split the partitions evenly; then COUNT messages
are produced (partition i % PARTITIONS) and consumed, each poll batch committed
synchronously after it is processed. Every message must be seen exactly once. Prints OK.
"""
import sys
import threading
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConfigurationError

bootstrap, topic, group, count, partitions = sys.argv[1:6]
count, partitions = int(count), int(partitions)

lock = threading.Lock()
assignments = {}
seen = []
stop = threading.Event()
errors = []


def consume(name):
    try:
        c = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=3000,
            heartbeat_interval_ms=300,
            max_poll_interval_ms=10000,
        )
        while not stop.is_set():
            batches = c.poll(timeout_ms=100)
            with lock:
                assignments[name] = sorted(tp.partition for tp in c.assignment())
            values = [r.value.decode() for recs in batches.values() for r in recs]
            if values:
                c.commit()
                with lock:
                    seen.extend(values)
        c.close()
    except Exception as e:  # reported to the test through the exit status
        errors.append(f"{name}: {e!r}")
        stop.set()


def wait(what, pred, timeout=30):
    deadline = time.time() + timeout
    while not pred():
        if errors:
            stop.set()
            sys.exit(f"consumer failed: {errors}")
        if time.time() > deadline:
            # Stop the consumer threads first, or the interpreter waits for them forever.
            stop.set()
            sys.exit(f"timed out waiting for {what}: {assignments} {len(seen)}")
        time.sleep(0.05)


threads = [threading.Thread(target=consume, args=(n,), daemon=True) for n in ("k0", "k1")]
for t in threads:
    t.start()


def balanced():
    with lock:
        got = list(assignments.values())
    half = partitions // 2
    union = sorted(p for a in got for p in a)
    return len(got) == 2 and all(len(a) == half for a in got) and union == list(range(partitions))


wait("a balanced group", balanced)
# Idempotence (kafka-python 3's default) needs InitProducerId, which the broker does not
# have yet; kafka-python 2 has no such setting.
try:
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
except KafkaConfigurationError:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
for i in range(count):
    producer.send(topic, value=f"py-{i}".encode(), partition=i % partitions)
producer.flush()
producer.close()
wait("all messages", lambda: len(seen) >= count)
time.sleep(0.5)
stop.set()
for t in threads:
    t.join()
if errors:
    sys.exit(f"consumer failed: {errors}")
expected = sorted(f"py-{i}" for i in range(count))
if sorted(seen) != expected:
    sys.exit(f"not exactly once: {len(seen)} seen, {len(set(seen))} distinct")
print("OK", assignments)
