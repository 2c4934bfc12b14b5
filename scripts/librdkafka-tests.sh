#!/usr/bin/env bash
# Runs librdkafka's own test suite (tests/NNNN-*.c of the librdkafka that the rdkafka-sys
# dev-dependency vendors) against a ringbroker.
#
#   scripts/librdkafka-tests.sh TESTS=0011            # quick mode (-Q), own broker
#   scripts/librdkafka-tests.sh TESTS=0011,0012 -p1   # runner flags replace the default -Q
#   scripts/librdkafka-tests.sh TESTS=0011 --broker 127.0.0.1:9092   # a running broker
#   scripts/librdkafka-tests.sh TESTS=0011 --build-only
#
# Arguments:
#   NAME=VALUE        exported to the test runner (TESTS, SUBTESTS, TEST_LEVEL, TEST_DEBUG,
#                     TEST_KAFKA_VERSION, ...; see tests/README.md of librdkafka)
#   --broker H:P      use this broker instead of starting one
#   --report FILE     write the runner's JSON report (TEST_REPORT) to FILE
#   --build-only      build the runner and print its path
#   -X...             test-runner flags (-Q quick, -p<N> parallel, -E no sockem, -P
#                     idempotent, ...). Without any, -Q is used.
#
# The runner is built once per librdkafka version under $CARGO_TARGET_DIR (default
# ./target)/librdkafka-tests/: librdkafka itself (static, without SSL/SASL/zstd, -O0; about
# 45 s on 2 cores), then test.c, its helpers and only the tests TESTS names (the other test
# entry points are weak stubs that skip). A later run with other TESTS compiles those tests
# and relinks; without TESTS every test is compiled. Nothing is written outside that
# directory (and the broker's temporary work dir).
#
# Without --broker, a ringbroker is started on a free port with a fresh data dir
# (RINGBROKER_BIN, else a release build), with auto-created topics of 4 partitions, as
# librdkafka's own test clusters have, and 2 shards (RINGBROKER_SHARDS); extra broker
# settings: RINGBROKER_SET="k=v k=v".
#
# Exit status: the runner's (0 when every selected test passed or was skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BROKER=""
REPORT=""
BUILD_ONLY=0
RUNNER_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --broker | --report)
      [ $# -ge 2 ] || { echo "librdkafka-tests: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --broker ]; then BROKER=$2; else REPORT=$2; fi
      shift ;;
    --broker=*) BROKER=${1#--broker=} ;;
    --report=*) REPORT=${1#--report=} ;;
    --build-only) BUILD_ONLY=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) RUNNER_ARGS+=("$1") ;;
    [A-Z]*=*) export "${1?}" ;;
    *) echo "librdkafka-tests: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#RUNNER_ARGS[@]} -gt 0 ] || RUNNER_ARGS=(-Q)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac

# --- the vendored librdkafka -------------------------------------------------------------
SRC=${LIBRDKAFKA_SRC:-}
if [ -z "$SRC" ]; then
  manifest=$("${CARGO:-cargo}" metadata --format-version 1 --locked 2>/dev/null |
    grep -o '"manifest_path":"[^"]*/rdkafka-sys-[^"/]*/Cargo.toml"' | head -n 1 |
    sed 's/^"manifest_path":"//; s/"$//') || true
  [ -n "$manifest" ] || { echo "librdkafka-tests: rdkafka-sys not found (cargo fetch?)" >&2; exit 1; }
  SRC=$(dirname "$manifest")/librdkafka
fi
[ -f "$SRC/tests/test.c" ] || { echo "librdkafka-tests: no librdkafka tests in $SRC" >&2; exit 1; }
VERSION=$(basename "$(dirname "$SRC")")        # rdkafka-sys-4.10.0+2.12.1
VERSION=${VERSION##*+}                          # 2.12.1
CACHE=$TARGET/librdkafka-tests/$VERSION
TREE=$CACHE/librdkafka
TESTDIR=$TREE/tests
mkdir -p "$CACHE"

# One build at a time (cargo test and a developer may both be here).
exec 9>"$CACHE/.lock"
flock 9

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
log() { echo "librdkafka-tests: $*" >&2; }

if [ ! -f "$TREE/.ringbroker-libs-built" ]; then
  start=$(date +%s)
  log "building librdkafka $VERSION into $TREE (once)"
  rm -rf "$TREE"
  cp -a "$SRC" "$TREE"
  chmod -R u+w "$TREE"
  (
    cd "$TREE"
    ./configure --disable-ssl --disable-gssapi --disable-curl --disable-zstd \
      --disable-lz4-ext --disable-optimization >"$CACHE/configure.log" 2>&1 ||
      { tail -n 30 "$CACHE/configure.log" >&2; exit 1; }
    make -j"$JOBS" -C src librdkafka.a >"$CACHE/build.log" 2>&1 &&
      make -j"$JOBS" -C src-cpp librdkafka++.a >>"$CACHE/build.log" 2>&1 ||
      { tail -n 30 "$CACHE/build.log" >&2; exit 1; }
  )
  touch "$TREE/.ringbroker-libs-built"
  log "librdkafka built in $(($(date +%s) - start)) s"
fi

# --- the test runner ---------------------------------------------------------------------
# Test sources to compile: those whose number TESTS names (all without TESTS).
sources=()
if [ -n "${TESTS:-}" ]; then
  IFS=', ' read -r -a wanted <<<"$TESTS"
  for t in "${wanted[@]}"; do
    t=${t%%[-_]*}  # 0011_produce_batch: the file is 0011-produce_batch.c
    [ -n "$t" ] || continue
    found=0
    for f in "$TESTDIR"/"$t"*-*.c "$TESTDIR"/"$t"*-*.cpp; do
      [ -f "$f" ] && sources+=("$(basename "$f")") && found=1
    done
    [ "$found" = 1 ] || log "no test source matches $t"
  done
else
  for f in "$TESTDIR"/[08]*-*.c "$TESTDIR"/[08]*-*.cpp; do
    sources+=("$(basename "$f")")
  done
fi
objs=()
for s in "${sources[@]+"${sources[@]}"}"; do objs+=("${s%.*}.o"); done

# Weak entry points for every test test.c declares: the tests not compiled in skip.
stubs=$TESTDIR/ringbroker_stubs.c
if [ ! -f "$stubs" ]; then
  {
    echo '/* Generated by ringbroker scripts/librdkafka-tests.sh: weak entry points for'
    echo ' * the tests not compiled into this runner. */'
    echo '#include "test.h"'
    sed -n 's/^_TEST_DECL(\([0-9A-Za-z_]*\));$/\1/p' "$TESTDIR/test.c" | while read -r name; do
      echo "__attribute__((weak)) int main_$name(int argc, char **argv) {"
      echo "        TEST_SKIP(\"not compiled into this runner: \""
      echo "                  \"scripts/librdkafka-tests.sh TESTS=... builds it\\n\");"
      echo "        return 0;"
      echo "}"
    done
  } >"$stubs.tmp"
  mv "$stubs.tmp" "$stubs"
fi

# Our own makefile next to librdkafka's: only the objects we name, and test.o is not
# rebuilt on every run (librdkafka's makes it depend on a phony target).
cat >"$TESTDIR/ringbroker.mk" <<'EOF'
BIN = test-runner
CC_LD = $(CXX)
HELPERS = test.o rusage.o testcpp.o tinycthread.o tinycthread_extra.o rdlist.o \
          sockem.o sockem_ctrl.o ringbroker_stubs.o
OBJS = $(HELPERS) $(TEST_OBJS)
LIBS += -lrdkafka++ -lrdkafka
CFLAGS += -I../src
CXXFLAGS += -I../src -I../src-cpp
LDFLAGS += -rdynamic -L../src -L../src-cpp
include ../mklove/Makefile.base
tinycthread.o: ../src/tinycthread.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $<
tinycthread_extra.o: ../src/tinycthread_extra.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $<
rdlist.o: ../src/rdlist.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $<
$(BIN): ../src/librdkafka.a ../src-cpp/librdkafka++.a
-include $(DEPS)
EOF

start=$(date +%s)
# Link every test compiled so far, so one runner serves all earlier selections.
(
  cd "$TESTDIR"
  make -s -j"$JOBS" -f ringbroker.mk TEST_OBJS="${objs[*]+"${objs[*]}"}" \
    ${objs[@]+"${objs[@]}"} test.o rusage.o testcpp.o tinycthread.o tinycthread_extra.o \
    rdlist.o sockem.o sockem_ctrl.o ringbroker_stubs.o >"$CACHE/runner-build.log" 2>&1 ||
    { tail -n 40 "$CACHE/runner-build.log" >&2; exit 1; }
  all=()
  for o in [08]*-*.o; do [ -f "$o" ] && all+=("$o"); done
  if [ -f test-runner ]; then
    for o in "${all[@]+"${all[@]}"}"; do
      [ "$o" -nt test-runner ] && rm -f test-runner && break
    done
    if [ -f test-runner ] && [ -f .linked ] &&
      [ "$(cat .linked)" != "${all[*]+"${all[*]}"}" ]; then
      rm -f test-runner
    fi
  fi
  make -s -f ringbroker.mk TEST_OBJS="${all[*]+"${all[*]}"}" test-runner \
    >>"$CACHE/runner-build.log" 2>&1 || { tail -n 40 "$CACHE/runner-build.log" >&2; exit 1; }
  echo "${all[*]+"${all[*]}"}" >.linked
)
elapsed=$(($(date +%s) - start))
[ "$elapsed" -lt 2 ] || log "test runner built in $elapsed s"
RUNNER=$TESTDIR/test-runner

if [ "$BUILD_ONLY" = 1 ]; then
  echo "$RUNNER"
  exit 0
fi
flock -u 9

# --- the broker --------------------------------------------------------------------------
WORK=$(mktemp -d "$TARGET/librdkafka-tests/run.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ "${STATUS:-1}" = 0 ]; then rm -rf "$WORK"; else log "work dir kept: $WORK"; fi
}
trap cleanup EXIT

if [ -z "$BROKER" ]; then
  BIN=${RINGBROKER_BIN:-}
  if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin ringbroker
    BIN=$TARGET/release/ringbroker
  fi
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  BROKER=127.0.0.1:$PORT
  sets=(--set auto.create.topics.enable=true --set num.partitions=4)
  for kv in ${RINGBROKER_SET:-}; do sets+=(--set "$kv"); done
  "$BIN" serve --listen "$BROKER" --data-dir "$WORK/data" --shards "${RINGBROKER_SHARDS:-2}" "${sets[@]}" \
    >"$WORK/broker.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { tail -n 30 "$WORK/broker.log" >&2; exit 1; }
    sleep 0.1
  done
  log "ringbroker $BIN on $BROKER (log: $WORK/broker.log)"
fi

# --- run ---------------------------------------------------------------------------------
cat >"$WORK/test.conf" <<EOF
metadata.broker.list=$BROKER
test.topic.random=true
EOF
export RDKAFKA_TEST_CONF=$WORK/test.conf
# ringbroker answers ApiVersions as Kafka 4.0 does.
export TEST_KAFKA_VERSION=${TEST_KAFKA_VERSION:-4.0.0}
export RDKAFKA_GITVER="librdkafka $VERSION (rdkafka-sys)"
[ -z "$REPORT" ] || export TEST_REPORT=$REPORT
log "running: TESTS=${TESTS:-all} $RUNNER ${RUNNER_ARGS[*]}"
set +e
(cd "$WORK" && "$RUNNER" "${RUNNER_ARGS[@]}")
STATUS=$?
set -e
exit "$STATUS"
