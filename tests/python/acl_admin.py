"""confluent-kafka (librdkafka) against ringbroker's authorizer (tests/acls.rs).

usage: acl_admin.py MODE BOOTSTRAP TOPIC

BOOTSTRAP is a SASL_PLAINTEXT listener with the super user admin/admin-secret and the
user alice/alice-secret (SCRAM-SHA-256).

- grant: as admin, CreateAcls ALLOW ALL on TOPIC to User:alice, then DescribeAcls finds it.
- revoke: as admin, DeleteAcls removes it.
- allowed: alice produces a record to TOPIC.
- refused: alice's record to TOPIC fails with TOPIC_AUTHORIZATION_FAILED.
- group: alice produces 3 records with an idempotent producer, then reads them in the
  consumer group "readers" (subscribe, commit), starting at the group's committed
  offset 1 (past the one record already there); the group's committed offset is then 4.

Prints OK on success.
"""
import sys
import time

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def config(user, password, mechanism):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}


binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice",
                     "*", AclOperation.ALL, AclPermissionType.ALLOW)
match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                         AclOperation.ANY, AclPermissionType.ANY)

if mode in ("grant", "revoke"):
    admin = AdminClient(config("admin", "admin-secret", "PLAIN"))
    if mode == "grant":
        for f in admin.create_acls([binding], request_timeout=20).values():
            f.result()
        found = admin.describe_acls(match, request_timeout=20).result()
        print("described:", found)
        check(found == [binding], f"DescribeAcls finds the binding: {found}")
    else:
        deleted = [f.result() for f in admin.delete_acls([match], request_timeout=20).values()]
        print("deleted:", deleted)
        check(deleted == [[binding]], f"DeleteAcls removes the binding: {deleted}")
        check(admin.describe_acls(match, request_timeout=20).result() == [], "none left")
elif mode in ("allowed", "refused"):
    outcome = []
    producer = Producer(config("alice", "alice-secret", "SCRAM-SHA-256"))
    producer.produce(topic, b"from alice", partition=0,
                     on_delivery=lambda err, msg: outcome.append(err))
    deadline = time.time() + 30
    while not outcome and time.time() < deadline:
        producer.poll(0.5)
    print("delivery:", outcome)
    check(len(outcome) == 1, "a delivery report")
    if mode == "allowed":
        check(outcome[0] is None, f"delivered: {outcome}")
    else:
        check(outcome[0] is not None
              and outcome[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
              f"TOPIC_AUTHORIZATION_FAILED: {outcome}")
elif mode == "group":
    from confluent_kafka import Consumer, TopicPartition
    producer = Producer(dict(config("alice", "alice-secret", "SCRAM-SHA-256"),
                             **{"enable.idempotence": True}))
    errors = []
    for i in range(3):
        producer.produce(topic, b"idem-%d" % i, partition=0,
                         on_delivery=lambda err, msg: err and errors.append(err))
    check(producer.flush(30) == 0 and not errors, f"idempotent delivery: {errors}")
    consumer = Consumer(dict(config("alice", "alice-secret", "SCRAM-SHA-256"),
                             **{"group.id": "readers", "auto.offset.reset": "earliest",
                                "enable.auto.commit": False}))
    consumer.subscribe([topic])
    got = []
    deadline = time.time() + 60
    while len(got) < 3 and time.time() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
        elif m is not None:
            print("consumer error:", m.error())
    print("consumed:", got)
    check(got == [b"idem-0", b"idem-1", b"idem-2"], f"read from the committed offset: {got}")
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=20)
    consumer.close()
    check(committed[0].offset == 4, f"committed {committed}")
else:
    check(False, f"unknown mode {mode}")
print("OK")
