"""kafka-python's KafkaAdminClient against ringbroker: create a topic, change its configs
with IncrementalAlterConfigs (SET, APPEND, DELETE) and AlterConfigs, read them back with
DescribeConfigs, and see a bad value refused. Prints OK on success.

usage: admin_configs.py BOOTSTRAP TOPIC
"""
import sys

from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

bootstrap, topic = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
admin.create_topics([NewTopic(topic, 1, 1)])


def configs():
    out = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                 include_synonyms=True, config_filter="all")
    (entries,) = out["TOPIC"].values() if "TOPIC" in out else list(out.values())[0].values()
    return entries


def value(entries, key):
    e = entries[key]
    return e["value"] if isinstance(e, dict) else e


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


before = configs()
print("described", len(before), "configs")
check(value(before, "retention.ms") == "604800000", f"default retention.ms: {before['retention.ms']}")

res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
    "retention.ms": (AlterConfigOp.SET, "3600000"),
    "cleanup.policy": (AlterConfigOp.APPEND, "delete"),
})], incremental=True)
print("incremental:", res)
now = configs()
check(value(now, "retention.ms") == "3600000", f"retention.ms after SET: {now['retention.ms']}")
check(value(now, "cleanup.policy") == "delete", f"cleanup.policy: {now['cleanup.policy']}")

res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
    "retention.ms": (AlterConfigOp.DELETE, None),
})], incremental=True)
now = configs()
check(value(now, "retention.ms") == "604800000", f"retention.ms after DELETE: {now['retention.ms']}")

res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
    "max.message.bytes": "50000",
})], incremental=False)
print("alter:", res)
now = configs()
check(value(now, "max.message.bytes") == "50000", f"max.message.bytes: {now['max.message.bytes']}")

refused = False
try:
    res = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
        "segment.bytes": "7",
    })], incremental=True)
    print("bad value:", res)
    refused = "InvalidConfigurationError" in str(res)
except Exception as e:  # kafka-python raises on an error code in some versions
    print("bad value raised:", repr(e))
    refused = True
check(refused, "segment.bytes=7 refused")
check(value(configs(), "segment.bytes") == "1073741824", "segment.bytes unchanged")
print("OK")
