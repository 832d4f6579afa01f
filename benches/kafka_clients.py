"""Loopback throughput of seglog's Kafka-protocol server with librdkafka (confluent-kafka).

Produces N records of 100 bytes (acks=1, linger.ms=5, batch.size 1 MB, no compression: what a
throughput-tuned Kafka producer uses), then consumes them back from offset 0 with a
standalone consumer (10 MB per partition fetch, librdkafka's local queue
raised to 1,000,000 records and its fetch backoff off). Prints records/s for each phase and the CPU time
of the client (this process) and of the server (`/proc/<pid>/stat`) over each phase.

    cargo build --release --features kafka-server --example kafka_server
    target/release/examples/kafka_server --data-dir /tmp/bench --listen 127.0.0.1:19092 &
    python benches/kafka_clients.py 127.0.0.1:19092 SERVER_PID [N]

Needs confluent-kafka (`.ci/interop-kafka-clients.sh` installs it in target/interop-venv).
"""

import os
import resource
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOT, SERVER_PID = sys.argv[1], int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
TICK = os.sysconf("SC_CLK_TCK")


def server_cpu():
    with open(f"/proc/{SERVER_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def client_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measured(name, phase):
    s0, c0, t0 = server_cpu(), client_cpu(), time.perf_counter()
    phase()
    dt = time.perf_counter() - t0
    s, c = server_cpu() - s0, client_cpu() - c0
    print(f"{name}: {N} records in {dt:.2f} s = {N / dt:,.0f} records/s; "
          f"CPU: server {s:.2f} s ({100 * s / dt:.0f}% of one core), client {c:.2f} s ({100 * c / dt:.0f}%)")


def produce():
    p = Producer({"bootstrap.servers": BOOT, "acks": "1", "linger.ms": 5,
                  "batch.size": 1_000_000, "batch.num.messages": 100_000,
                  "queue.buffering.max.messages": 2_000_000, "compression.type": "none"})
    value = b"x" * 100
    for _ in range(N):
        while True:
            try:
                p.produce("bench", value=value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0


def consume():
    # librdkafka pauses fetching while its local queue holds `queued.min.messages` and then
    # backs off `fetch.queue.backoff.ms` (1 s): a throughput consumer raises and lowers them.
    c = Consumer({"bootstrap.servers": BOOT, "group.id": "bench", "enable.auto.commit": False,
                  "queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 0,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    end = c.get_watermark_offsets(TopicPartition("bench", 0), timeout=30)[1]
    c.assign([TopicPartition("bench", 0, end - N)])
    got = 0
    while got < N:
        for m in c.consume(num_messages=10_000, timeout=1):
            if m.error() is None:
                got += 1
    c.close()


ADMIN = AdminClient({"bootstrap.servers": BOOT})
ADMIN.create_topics([NewTopic(f"bench", 1, 1)])["bench"].exception(30)  # exists on reruns
measured("produce", produce)
measured("consume", consume)
