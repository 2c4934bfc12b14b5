#!/usr/bin/env python3
"""kafka-python traffic for the fuzz corpus (tests/fuzz_capture.rs).

Usage: fuzz_clients.py BOOTSTRAP

Drives kafka-python at several protocol levels (api_version pins older request versions):
an admin client creating and deleting a topic, acks=all producers (plain and gzip), a
consumer group that commits, group listing, description, offset deletion and group
deletion. Each level is tried on its own; a level the broker refuses is reported and the
next one runs. Prints one line per level and "levels ok: N".
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]
LEVELS = [None, (2, 5, 0), (2, 1, 0), (1, 1, 0), (1, 0, 0), (0, 11, 0)]


def tag(level):
    return "auto" if level is None else "-".join(map(str, level))


def run(level):
    kw = {"bootstrap_servers": bootstrap, "request_timeout_ms": 15000}
    if level is not None:
        kw["api_version"] = level
    name = "py-" + tag(level)
    admin = KafkaAdminClient(**kw)
    try:
        admin.create_topics([NewTopic(name, 2, 1)])
        scratch = name + "-scratch"
        admin.create_topics([NewTopic(scratch, 1, 1, topic_configs={"retention.ms": "60000"})])
        admin.delete_topics([scratch])
        for codec in (None, "gzip"):
            p = KafkaProducer(acks="all", compression_type=codec, linger_ms=5, **kw)
            for i in range(6):
                p.send(name, key=b"k%d" % i, value=b"py value %d" % i,
                       headers=[("h", b"v")], partition=i % 2)
            p.flush(15)
            p.close()
        group = name + "-group"
        c = KafkaConsumer(name, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, session_timeout_ms=6000,
                          heartbeat_interval_ms=500, **kw)
        seen = 0
        deadline = time.time() + 20
        while seen < 12 and time.time() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                seen += len(recs)
            c.commit()
        c.close()
        # kafka-python 3 names these list_groups...; 2.x list_consumer_groups...
        for names, args in (
            (("list_groups", "list_consumer_groups"), ()),
            (("describe_groups", "describe_consumer_groups"), ([group],)),
            (("list_group_offsets", "list_consumer_group_offsets"), (group,)),
            (("delete_group_offsets",), (group, [TopicPartition(name, 0)])),
            (("delete_groups", "delete_consumer_groups"), ([group],)),
        ):
            call = next((getattr(admin, n) for n in names if hasattr(admin, n)), None)
            try:
                if call is not None:
                    call(*args)
            except Exception as e:  # older levels lack some of these requests
                print(f"{tag(level)}: {names[0]}: {e!r}")
        print(f"{tag(level)}: consumed {seen}")
        return seen == 12
    finally:
        admin.close()


ok = 0
for level in LEVELS:
    try:
        ok += bool(run(level))
    except Exception as e:
        print(f"{tag(level)}: failed: {e!r}")
print(f"levels ok: {ok}")
