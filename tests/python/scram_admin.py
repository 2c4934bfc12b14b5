"""SCRAM credentials through confluent-kafka's AdminClient (tests/security.rs).

usage: scram_admin.py MODE BOOTSTRAP TOPIC

BOOTSTRAP is a SASL_PLAINTEXT listener where alice/alice-secret (PLAIN) may administer.

- add: AlterUserScramCredentials upserts carol (SCRAM-SHA-256, 8192 iterations, password
  carol-secret); DescribeUserScramCredentials shows it; a producer as carol delivers.
- works: a producer as carol delivers (after a restart, say).
- remove: carol's credential is deleted; describing carol is RESOURCE_NOT_FOUND and a
  producer as carol fails to authenticate.

Prints OK on success.
"""
import sys
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def config(user, password, mechanism):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}


def carol_produces():
    outcome, errors = [], []
    cfg = config("carol", "carol-secret", "SCRAM-SHA-256")
    cfg["error_cb"] = lambda err: errors.append(err)
    producer = Producer(cfg)
    producer.produce(topic, b"from carol", partition=0,
                     on_delivery=lambda err, msg: outcome.append(err))
    deadline = time.time() + 20
    while not outcome and time.time() < deadline and not any(
            e.code() == KafkaError._AUTHENTICATION for e in errors):
        producer.poll(0.5)
    print("delivery:", outcome, "errors:", [str(e) for e in errors])
    return outcome == [None], errors


admin = AdminClient(config("alice", "alice-secret", "PLAIN"))
if mode == "add":
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    up = UserScramCredentialUpsertion("carol", info, b"carol-secret")
    for f in admin.alter_user_scram_credentials([up], request_timeout=20).values():
        f.result()
    described = admin.describe_user_scram_credentials(["carol"], request_timeout=20)
    d = described["carol"].result()
    print("described:", d)
    infos = [(i.mechanism, i.iterations) for i in d.scram_credential_infos]
    check(infos == [(ScramMechanism.SCRAM_SHA_256, 8192)], f"carol's credential: {infos}")
    ok, _ = carol_produces()
    check(ok, "carol delivers")
elif mode == "works":
    ok, _ = carol_produces()
    check(ok, "carol delivers")
elif mode == "remove":
    de = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)
    for f in admin.alter_user_scram_credentials([de], request_timeout=20).values():
        f.result()
    try:
        admin.describe_user_scram_credentials(["carol"], request_timeout=20)["carol"].result()
        check(False, "carol is still described")
    except KafkaException as e:
        print("describe carol:", e)
        check(e.args[0].code() == KafkaError.RESOURCE_NOT_FOUND, f"RESOURCE_NOT_FOUND: {e}")
    ok, errors = carol_produces()
    check(not ok and any(e.code() == KafkaError._AUTHENTICATION for e in errors),
          "carol is refused")
else:
    check(False, f"unknown mode {mode}")
print("OK")
