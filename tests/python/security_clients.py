"""Python clients against ringbroker's secured listeners (tests/security.rs).

usage: security_clients.py MODE BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CAFILE TOPIC

MECHANISM, USER and PASSWORD are "-" on SSL listeners, CAFILE is "-" on plaintext ones.

- kafka-python: produce 5 records with KafkaProducer, read them back with KafkaConsumer.
- confluent: the same with confluent-kafka (librdkafka inside the wheel).
- kafka-python-refused: the credentials must be refused (an authentication error).
- confluent-refused: the same with confluent-kafka.

Prints OK on success.
"""
import sys
import time

mode, bootstrap, protocol, mechanism, user, password, cafile, topic = sys.argv[1:9]


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def kafka_python_config():
    cfg = {"bootstrap_servers": bootstrap, "security_protocol": protocol}
    if "SASL" in protocol:
        cfg.update(sasl_mechanism=mechanism, sasl_plain_username=user,
                   sasl_plain_password=password)
    if "SSL" in protocol:
        cfg.update(ssl_cafile=cafile, ssl_check_hostname=True)
    return cfg


def confluent_config():
    cfg = {"bootstrap.servers": bootstrap, "security.protocol": protocol}
    if "SASL" in protocol:
        cfg.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                    "sasl.password": password})
    if "SSL" in protocol:
        cfg["ssl.ca.location"] = cafile
    return cfg


values = [b"py-%d" % i for i in range(5)]

if mode == "kafka-python":
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    producer = KafkaProducer(linger_ms=0, **kafka_python_config())
    for v in values:
        producer.send(topic, value=v, partition=0).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=20000, **kafka_python_config())
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == len(values):
            break
    consumer.close()
    check(got == values, f"read back {got}")
elif mode == "confluent":
    from confluent_kafka import Consumer, Producer, TopicPartition
    errors = []
    producer = Producer(confluent_config())
    for v in values:
        producer.produce(topic, value=v, partition=0,
                         on_delivery=lambda err, msg: err and errors.append(err))
    left = producer.flush(30)
    check(left == 0 and not errors, f"delivery: {left} left, errors {errors}")
    cfg = confluent_config()
    cfg.update({"group.id": "py-security", "enable.auto.commit": False})
    consumer = Consumer(cfg)
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < len(values) and time.time() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    check(got == values, f"read back {got}")
elif mode == "kafka-python-refused":
    from kafka import KafkaProducer
    from kafka.errors import KafkaError
    cfg = kafka_python_config()
    # kafka-python 3 retries a refused bootstrap for bootstrap_timeout_ms (30 s).
    if "bootstrap_timeout_ms" in KafkaProducer.DEFAULT_CONFIG:
        cfg["bootstrap_timeout_ms"] = 5000
    try:
        KafkaProducer(request_timeout_ms=5000, max_block_ms=5000,
                      **cfg).send(topic, b"x").get(timeout=5)
        check(False, "the producer was let in")
    except KafkaError as e:
        print("refused:", type(e).__name__, e)
elif mode == "confluent-refused":
    from confluent_kafka import KafkaError, Producer
    seen = []
    cfg = confluent_config()
    cfg["error_cb"] = lambda err: seen.append(err)
    producer = Producer(cfg)
    producer.produce(topic, b"x")
    deadline = time.time() + 20
    while time.time() < deadline and not any(
            e.code() == KafkaError._AUTHENTICATION for e in seen):
        producer.poll(0.5)
    codes = [e.code() for e in seen]
    print("errors:", [str(e) for e in seen])
    check(KafkaError._AUTHENTICATION in codes, f"an authentication error: {codes}")
    check(len(producer) == 1, "the record was not delivered")
else:
    check(False, f"unknown mode {mode}")
print("OK")
