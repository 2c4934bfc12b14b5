#!/usr/bin/env python3
"""Reads __consumer_offsets with kafka-python, as a monitoring tool does, and decodes its
records from Kafka's schemas (OffsetCommitKey/Value, GroupMetadataKey/Value, versions 0-3).

Usage: read_consumer_offsets.py BOOTSTRAP GROUP PARTITIONS EXPECTED_OFFSETS

Reads from the beginning until GROUP has EXPECTED_OFFSETS committed partitions and a
group metadata record with members, then prints one line per finding:
  OFFSET <topic> <partition> <value version> <offset> <metadata>
  GROUP <value version> <protocol type> <generation> <protocol> <leader> <members>
  MEMBER <member id> <client id> <client host> <session timeout>
"""
import struct
import sys
import time

from kafka import KafkaConsumer, TopicPartition

bootstrap, group, partitions, expected = sys.argv[1:5]
partitions, expected = int(partitions), int(expected)


class Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        assert len(out) == n, "truncated"
        self.pos += n
        return out

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def done(self):
        assert self.pos == len(self.data), "bytes left over"


def offset_value(data):
    c = Cursor(data)
    version = c.i16()
    assert 0 <= version <= 3, version
    offset = c.i64()
    if version >= 3:
        c.i32()  # leader epoch
    metadata = c.string()
    c.i64()  # commit timestamp
    if version == 1:
        c.i64()  # expire timestamp
    c.done()
    return version, offset, metadata


def group_value(data):
    c = Cursor(data)
    version = c.i16()
    assert 0 <= version <= 3, version
    protocol_type, generation = c.string(), c.i32()
    protocol, leader = c.string(), c.string()
    if version >= 2:
        c.i64()  # current state timestamp
    members = []
    for _ in range(c.i32()):
        member_id = c.string()
        if version >= 3:
            c.string()  # group instance id
        client_id, client_host = c.string(), c.string()
        if version >= 1:
            c.i32()  # rebalance timeout
        session_timeout = c.i32()
        c.bytes()  # subscription
        c.bytes()  # assignment
        members.append((member_id, client_id, client_host, session_timeout))
    c.done()
    return version, protocol_type, generation, protocol, leader, members


consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
tps = [TopicPartition("__consumer_offsets", p) for p in range(partitions)]
consumer.assign(tps)
consumer.seek_to_beginning(*tps)
offsets, stable = {}, None
deadline = time.time() + 30
while time.time() < deadline and not (len(offsets) >= expected and stable):
    for records in consumer.poll(timeout_ms=200).values():
        for r in records:
            c = Cursor(r.key)
            version = c.i16()
            if version in (0, 1):
                key = (c.string(), c.string(), c.i32())
                if key[0] == group:
                    if r.value is None:
                        offsets.pop(key[1:], None)
                    else:
                        offsets[key[1:]] = offset_value(r.value)
            elif version == 2 and c.string() == group and r.value is not None:
                value = group_value(r.value)
                if value[5]:
                    stable = value
consumer.close()
for (topic, partition), (version, offset, metadata) in sorted(offsets.items()):
    print("OFFSET", topic, partition, version, offset, metadata or "-")
if stable:
    version, protocol_type, generation, protocol, leader, members = stable
    print("GROUP", version, protocol_type, generation, protocol, leader, len(members))
    for m in members:
        print("MEMBER", *m)
