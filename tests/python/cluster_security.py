"""confluent-kafka (librdkafka) against a three-broker ringbroker cluster with an
authorizer, SASL listeners for clients and a SASL_SSL listener between brokers
(tests/cluster_security.rs).

usage: cluster_security.py MODE BOOTSTRAP TOPIC [COUNT]

BOOTSTRAP is one broker's SASL_PLAINTEXT listener. The super user admin/admin-secret
(SCRAM-SHA-256) exists in every broker's data dir; alice is created here.

- create: as admin, creates TOPIC: one partition, three replicas, min.insync.replicas=2.
- add-user: as admin, AlterUserScramCredentials creates alice (SCRAM-SHA-256, password
  alice-secret) through this broker.
- grant: as admin, CreateAcls ALLOW ALL on TOPIC and READ on groups prefixed "alice-" to
  User:alice through this broker.
- produce: alice produces COUNT records to TOPIC partition 0 with acks=all and idempotence;
  every one must be acknowledged.
- consume: alice reads TOPIC partition 0 from the start and must see COUNT records, in
  order, values "v0".."v{COUNT-1}".
- refused: alice's record to TOPIC fails with TOPIC_AUTHORIZATION_FAILED.

Prints OK on success.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 0


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def config(user, password):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": user,
            "sasl.password": password}


if mode == "create":
    admin = AdminClient(config("admin", "admin-secret"))
    new = NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})
    for f in admin.create_topics([new], request_timeout=30).values():
        f.result()
elif mode == "add-user":
    admin = AdminClient(config("admin", "admin-secret"))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    up = UserScramCredentialUpsertion("alice", info, b"alice-secret")
    for f in admin.alter_user_scram_credentials([up], request_timeout=30).values():
        f.result()
elif mode == "grant":
    admin = AdminClient(config("admin", "admin-secret"))
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.ALL, AclPermissionType.ALLOW),
                AclBinding(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED,
                           "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW)]
    for f in admin.create_acls(bindings, request_timeout=30).values():
        f.result()
elif mode in ("produce", "refused"):
    outcome, errors = [], []
    cfg = config("alice", "alice-secret")
    cfg.update({"acks": "all", "enable.idempotence": mode == "produce",
                "error_cb": lambda err: errors.append(str(err)),
                "message.timeout.ms": 30000})
    producer = Producer(cfg)
    n = count if mode == "produce" else 1
    for i in range(n):
        producer.produce(topic, f"v{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: outcome.append(err))
    deadline = time.time() + 40
    while len(outcome) < n and time.time() < deadline:
        producer.poll(0.2)
    failed = [e for e in outcome if e is not None]
    print("acknowledged:", len(outcome) - len(failed), "failed:", failed[:3], "errors:",
          errors[:3])
    if mode == "produce":
        check(len(outcome) == n and not failed, f"all {n} records acknowledged")
    else:
        check(len(outcome) == 1 and outcome[0] is not None
              and outcome[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
              "TOPIC_AUTHORIZATION_FAILED")
elif mode == "consume":
    cfg = config("alice", "alice-secret")
    cfg.update({"group.id": "alice-readers", "enable.auto.commit": False,
                "auto.offset.reset": "earliest"})
    consumer = Consumer(cfg)
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.time() + 40
    while len(values) < count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        check(m.error() is None, f"no fetch error ({m.error()})")
        values.append(m.value().decode())
    consumer.close()
    check(values == [f"v{i}" for i in range(count)],
          f"{count} records in order, got {len(values)}: {values[:3]}...")
else:
    check(False, f"mode {mode}")
print("OK")
