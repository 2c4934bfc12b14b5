"""confluent-kafka's AdminClient (librdkafka 2.x) against ringbroker: describe the cluster,
alter a topic config incrementally and read it back, add partitions and produce to a new
one, find the record with the largest timestamp, delete records and see the new log start,
describe the topic. Prints OK on success.

usage: admin_confluent.py BOOTSTRAP
"""
import sys
import time

from confluent_kafka import Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, OffsetSpec,
                                   ResourceType)

bootstrap = sys.argv[1]
topic = "cf-admin"
admin = AdminClient({"bootstrap.servers": bootstrap})


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(10)

cluster = admin.describe_cluster(request_timeout=10).result()
print("cluster:", cluster.cluster_id, cluster.controller, cluster.nodes)
check(cluster.cluster_id == "ringbroker", f"cluster id {cluster.cluster_id}")
check(len(cluster.nodes) == 1 and cluster.controller.id == cluster.nodes[0].id,
      f"one broker, the controller: {cluster.nodes}")

res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
    ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
admin.incremental_alter_configs([res])[res].result(10)
(described,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
entries = described.result(10)
entry = entries["retention.ms"]
check(entry.value == "3600000", f"retention.ms read back: {entry}")
check(entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, f"its source: {entry.source}")

admin.create_partitions([NewPartitions(topic, 4)])[topic].result(10)
desc = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
check(len(desc.partitions) == 4, f"4 partitions after CreatePartitions: {desc.partitions}")

producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "topic.metadata.refresh.interval.ms": 1000})
now = int(time.time() * 1000)
stamps = [now - 4000, now - 1000, now - 3000, now - 2000, now - 1000]
delivered = []
for i, ts in enumerate(stamps):
    producer.produce(topic, value=b"v%d" % i, key=b"k", partition=3, timestamp=ts,
                     on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
producer.flush(15)
check([e for e, _ in delivered] == [None] * 5, f"deliveries to the new partition: {delivered}")

tp = TopicPartition(topic, 3)
top = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(10)
check((top.offset, top.timestamp) == (1, now - 1000), f"max timestamp: {top}")

deleted = admin.delete_records([TopicPartition(topic, 3, 2)])
(future,) = deleted.values()
check(future.result(10).low_watermark == 2, "low watermark after DeleteRecords")
earliest = admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10)
latest = admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(10)
check((earliest.offset, latest.offset) == (2, 5), f"earliest {earliest}, latest {latest}")
print("OK")
