"""kafka-python's KafkaAdminClient against ringbroker: partitions and records.

usage: admin_partitions.py MODE BOOTSTRAP TOPIC

- partitions: create TOPIC with 1 partition, add one (count 2), validate_only changes
  nothing, add two with a manual assignment (count 4), a decrease is refused.
- records: create TOPIC with 1 partition, produce 10 records, delete records below
  offset 4, then all of them (-1); prints the low watermarks.
- logdirs: describe the log dirs of TOPIC (created by the caller); prints
  "SIZE <partition> <bytes>" per partition.

Prints OK on success.
"""
import sys

from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidPartitionsError

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def partition_count():
    (t,) = admin.describe_topics([topic])
    return len(t["partitions"])


if mode == "partitions":
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.create_partitions({topic: 2})
    check(partition_count() == 2, f"count after adding one: {partition_count()}")
    admin.create_partitions({topic: 6}, validate_only=True)
    check(partition_count() == 2, "validate_only added nothing")
    admin.create_partitions({topic: {"count": 4, "assignments": [[0], [0]]}})
    check(partition_count() == 4, f"count after manual assignment: {partition_count()}")
    refused = False
    try:
        admin.create_partitions({topic: 3})
    except InvalidPartitionsError as e:
        print("decrease refused:", e)
        refused = True
    check(refused, "a decrease is refused with InvalidPartitionsError")
elif mode == "records":
    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    for i in range(10):
        producer.send(topic, value=b"v%d" % i, partition=0).get(timeout=10)
    producer.close()
    tp = TopicPartition(topic, 0)
    out = admin.delete_records({tp: 4})
    print("delete below 4:", out)
    check(out[tp]["low_watermark"] == 4, f"low watermark 4: {out}")
    out = admin.delete_records({tp: -1})
    print("delete all:", out)
    check(out[tp]["low_watermark"] == 10, f"low watermark at the high watermark: {out}")
elif mode == "logdirs":
    out = admin.describe_log_dirs({topic: [0, 1]})
    print("log dirs:", out)
    for broker in out if isinstance(out, list) else [out]:
        dirs = broker["log_dirs"] if isinstance(broker, dict) and "log_dirs" in broker else broker
        print("broker:", dirs)
        for d in dirs if isinstance(dirs, list) else [dirs]:
            for t in d.get("topics", []):
                for p in t["partitions"]:
                    print("SIZE", p["partition_index"], p["partition_size"])
else:
    check(False, f"unknown mode {mode}")
print("OK")
