"""kafka-python's KafkaAdminClient against ringbroker: change dynamic broker configs of
broker 0 with IncrementalAlterConfigs and AlterConfigs, read them back with
DescribeConfigs, and see a non-dynamic key refused. Prints OK on success.

usage: admin_broker_configs.py BOOTSTRAP
"""
import sys

from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
BROKER = ConfigResourceType.BROKER


def configs():
    out = admin.describe_configs([ConfigResource(BROKER, "0")], include_synonyms=True,
                                 config_filter="all")
    (entries,) = out["BROKER"].values() if "BROKER" in out else list(out.values())[0].values()
    return entries


def value(entries, key):
    e = entries[key]
    return e["value"] if isinstance(e, dict) else e


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


check(value(configs(), "log.retention.ms") == "604800000", "default log.retention.ms")

res = admin.alter_configs([ConfigResource(BROKER, "0", configs={
    "log.retention.ms": (AlterConfigOp.SET, "3600000"),
})], incremental=True)
print("incremental:", res)
check(value(configs(), "log.retention.ms") == "3600000", "log.retention.ms after SET")

# AlterConfigs replaces every dynamic config of the broker; kafka-python sends the other
# modified ones along (read with DescribeConfigs), so log.retention.ms stays.
res = admin.alter_configs([ConfigResource(BROKER, "0", configs={
    "log.segment.ms": "7200000",
})], incremental=False)
print("alter:", res)
now = configs()
check(value(now, "log.segment.ms") == "7200000", f"log.segment.ms: {now['log.segment.ms']}")
check(value(now, "log.retention.ms") == "3600000", "log.retention.ms kept by the client")

# reset_configs: IncrementalAlterConfigs DELETE, back to the built-in default.
res = admin.reset_configs([ConfigResource(BROKER, "0", configs=["log.retention.ms"])])
print("reset:", res)
now = configs()
check(value(now, "log.retention.ms") == "604800000", "log.retention.ms after reset")
check(value(now, "log.segment.ms") == "7200000", "log.segment.ms kept by the reset")

refused = False
try:
    res = admin.alter_configs([ConfigResource(BROKER, "0", configs={
        "log.io": (AlterConfigOp.SET, "direct"),
    })], incremental=True, raise_on_unknown=False)
    print("non-dynamic:", res)
    refused = "InvalidConfigurationError" in str(res) or "Invalid" in str(res)
except Exception as e:  # kafka-python raises on an error code in some versions
    print("non-dynamic raised:", repr(e))
    refused = True
check(refused, "log.io refused")
check(value(configs(), "log.io") == "buffered", "log.io unchanged")
print("OK")
