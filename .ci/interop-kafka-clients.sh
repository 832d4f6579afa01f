#!/usr/bin/env bash
# Kafka's own clients against seglog's Kafka-protocol server (feature `kafka-server`):
# kcat (librdkafka), confluent-kafka (librdkafka) and kafka-python, over 127.0.0.1 only, and
# the in-process API on the same data directory (`examples/kafka_embedded.rs`, run while the
# server is stopped: one process holds a directory at a time). Installs what it needs itself:
# kcat from Debian, the Python clients into a virtual environment under target/. Every step
# is bounded by `timeout`; the server is stopped (SIGTERM: handle shut down, store closed) at
# the end, also on failure. Run from `.ci/run`, or alone: `bash .ci/interop-kafka-clients.sh`.

set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
  echo "== installing kcat"
  apt-get update -qq && apt-get install -y -qq kcat >/dev/null
fi
VENV=target/interop-venv
if ! "$VENV/bin/python" -c 'import kafka, confluent_kafka, lz4, zstandard, snappy' 2>/dev/null; then
  echo "== installing kafka-python and confluent-kafka (and kafka-python's codecs) in $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 keeps venv in a separate package.
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q kafka-python confluent-kafka lz4 zstandard python-snappy
fi
PY="$VENV/bin/python"

cargo build -q --features kafka-server --example kafka_server --example kafka_embedded
SERVER_BIN=target/debug/examples/kafka_server
EMBEDDED=target/debug/examples/kafka_embedded

WORK=$(mktemp -d)
DATA="$WORK/data"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BOOT="127.0.0.1:$PORT"
SERVER_PID=

start_server() {
  "$SERVER_BIN" --data-dir "$DATA" --listen "$BOOT" --auto-create-partitions 1 >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "server did not start"; cat "$WORK/server.log"; return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID"
  for _ in $(seq 200); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server did not stop within 20 s"; kill -KILL "$SERVER_PID"; SERVER_PID=; return 1
  fi
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  grep -q '^stopped$' "$WORK/server.log" || { echo "server did not stop cleanly (rc $rc)"; cat "$WORK/server.log"; return 1; }
}

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  [ $rc -eq 0 ] || { echo "== server log"; tail -50 "$WORK/server.log" || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

py() { timeout 300 "$PY" .ci/interop_kafka_clients.py "$BOOT" "$@"; }

echo "== embedded producer, then remote consumer (server stopped while the Producer runs)"
timeout 60 "$EMBEDDED" produce "$DATA" emb 3 100
start_server
py read-embedded emb 100 3

echo "== kcat: metadata"
timeout 30 kcat -b "$BOOT" -L -J >"$WORK/meta.json"
grep -q '"topic":"emb","partitions":\[' "$WORK/meta.json"
grep -q "\"name\":\"$BOOT\"" "$WORK/meta.json"

echo "== kcat: produce keys and headers from a file, consume, compare byte for byte"
"$PY" - "$WORK/in.txt" <<'PYEOF'
import random, string, sys
random.seed(13)
with open(sys.argv[1], "w") as f:
    for i in range(500):
        value = "".join(random.choice(string.printable[:94] + " ") for _ in range(random.randint(0, 300)))
        f.write(f"key-{i}\t{value}\n")
PYEOF
timeout 60 kcat -b "$BOOT" -P -t kc -p 0 -K $'\t' -H trace=abc -H n=1 -l "$WORK/in.txt"
timeout 60 kcat -b "$BOOT" -C -t kc -o beginning -e -q -f '%k\t%s\n' >"$WORK/out.txt"
cmp "$WORK/in.txt" "$WORK/out.txt"
timeout 60 kcat -b "$BOOT" -C -t kc -o beginning -e -q -f '%h\n' | sort | uniq -c >"$WORK/headers.txt"
grep -q '500 trace=abc,n=1' "$WORK/headers.txt"
echo "ok: 500 records with keys and headers came back byte for byte"

echo "== kcat: consume as a group; a second run resumes from the committed offsets"
# (`-o beginning` would override committed offsets in group mode: reset policy instead.)
timeout 60 kcat -b "$BOOT" -G kcat-group -X auto.offset.reset=earliest -e -q -f '%k\t%s\n' kc >"$WORK/group1.txt"
cmp "$WORK/in.txt" "$WORK/group1.txt"
timeout 60 kcat -b "$BOOT" -G kcat-group -X auto.offset.reset=earliest -e -q -f '%k\t%s\n' kc >"$WORK/group2.txt"
[ ! -s "$WORK/group2.txt" ] || { echo "the group re-read committed records"; exit 1; }
echo "ok: group consume, then nothing left for the same group"

echo "== confluent-kafka: acks 0/1/all x none/gzip/snappy/lz4/zstd, Java-compatible partitioner"
py confluent-codecs
echo "== confluent-kafka: a group of two, a third joins, one leaves"
py confluent-group
echo "== kafka-python: admin, acks x codecs, seek, offsets for times, a group of two"
py kafka-python-codecs
py kafka-python-seek-times
py kafka-python-group

echo "== remote producer and group commits, then the in-process Consumer on the same directory"
py produce-for-embedded remote 50 "$WORK/remote-sent.txt"
py commit-for-embedded remote "$WORK/remote-committed.txt"
stop_server
timeout 60 "$EMBEDDED" consume "$DATA" remote | sort -n -k1,1 -k2,2 >"$WORK/remote-read.txt"
cmp "$WORK/remote-sent.txt" "$WORK/remote-read.txt"
echo "ok: the in-process Consumer reads what confluent-kafka produced"
timeout 60 "$EMBEDDED" resume "$DATA" rg remote >"$WORK/resume.txt"
cmp "$WORK/remote-committed.txt" "$WORK/resume.txt"
echo "ok: an in-process member of group rg resumes from the offsets committed remotely"
echo "== interop with Kafka clients passed"
