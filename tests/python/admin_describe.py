"""kafka-python against ringbroker: the client reads the broker as Kafka 4.0 from its
ApiVersions; an idempotent producer writes records with chosen timestamps; the admin
client finds the record with the largest timestamp (ListOffsets v7+), the earliest local
and latest tiered offsets (v8, v9), and the producer's state (DescribeProducers).
Prints OK on success.

usage: admin_describe.py BOOTSTRAP
"""
import sys
import time

from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic, OffsetSpec

bootstrap = sys.argv[1]
topic = "py-describe"


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(topic, 1, 1)])
tp = TopicPartition(topic, 0)

producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                         linger_ms=50)
# The producer settles its `api_version` from the broker's ApiVersions.
version = producer.config["api_version"]
print("kafka-python reads the broker as", version)
check(version == (4, 0), f"broker version {version}")
now = int(time.time() * 1000)
stamps = [now - 3000, now - 1000, now - 2000, now - 1000]
for i, ts in enumerate(stamps):
    producer.send(topic, value=b"v%d" % i, partition=0, timestamp_ms=ts)
producer.flush()

offsets = admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})
print("max timestamp:", offsets[tp])
check((offsets[tp].offset, offsets[tp].timestamp) == (1, now - 1000),
      f"MAX_TIMESTAMP answered {offsets[tp]}")
offsets = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST_LOCAL})
check(offsets[tp].offset == 0, f"EARLIEST_LOCAL answered {offsets[tp]}")
offsets = admin.list_partition_offsets({tp: OffsetSpec.LATEST_TIERED})
check(offsets[tp].offset == -1, f"LATEST_TIERED answered {offsets[tp]}")
offsets = admin.list_partition_offsets({tp: OffsetSpec.LATEST})
check(offsets[tp].offset == 4, f"LATEST answered {offsets[tp]}")

states = admin.describe_producers([tp])
print("producers:", states[tp])
active = states[tp].active_producers
check(len(active) == 1, f"one producer expected: {active}")
p = active[0]
check(p.producer_id >= 0 and p.producer_epoch == 0, f"producer id and epoch: {p}")
check(p.last_sequence == len(stamps) - 1, f"last sequence: {p}")
check(p.last_timestamp == now - 1000, f"last timestamp: {p}")
check((p.coordinator_epoch, p.current_transaction_start_offset) == (-1, -1), f"{p}")
producer.close()
admin.close()
print("OK")
