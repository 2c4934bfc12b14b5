#!/usr/bin/env bash
# A local three-broker ringbroker cluster on 127.0.0.1, for development.
#
#   scripts/cluster.sh [start] [--debug|--release] [--set KEY=VALUE]...
#       starts nodes 1-3 (Kafka 9092-9094, controller 9192-9194, data and logs in
#       ./data-cluster/node-N), prints how to use them, and stops all three on Ctrl-C.
#       Extra --set pairs go to every broker (after the script's own, so they win).
#   scripts/cluster.sh stop      stops the brokers started here (e.g. from another shell)
#   scripts/cluster.sh status    shows which are running
#
# The broker binary: $RINGBROKER_BIN if set; with --debug / --release that build (built
# if missing); otherwise target/release/ringbroker, else target/debug/ringbroker, else a
# fresh release build. $CARGO_TARGET_DIR is honoured. $CLUSTER_DATA moves the data dir,
# $SHARDS sets shards per broker (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=(1 2 3)
HOST=127.0.0.1
kafka_port() { echo $((9091 + $1)); }
controller_port() { echo $((9191 + $1)); }
DATA=${CLUSTER_DATA:-$PWD/data-cluster}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VOTERS=$(for n in "${NODES[@]}"; do printf '%s@%s:%s,' "$n" "$HOST" "$(controller_port "$n")"; done)
VOTERS=${VOTERS%,}

pid_file() { echo "$DATA/node-$1.pid"; }
log_file() { echo "$DATA/node-$1.log"; }

# The pid of node $1 if it is running and is a ringbroker (a stale pid file may name a
# process that has nothing to do with us).
running_pid() {
  local f pid
  f=$(pid_file "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q ringbroker || return 1
  echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pick_binary() {
  if [[ -n ${RINGBROKER_BIN:-} ]]; then
    echo "$RINGBROKER_BIN"
    return
  fi
  local profile=${1:-}
  if [[ -z $profile ]]; then
    if [[ -x $TARGET/release/ringbroker ]]; then
      profile=release
    elif [[ -x $TARGET/debug/ringbroker ]]; then
      profile=debug
    else
      profile=release
    fi
  fi
  if [[ ! -x $TARGET/$profile/ringbroker ]]; then
    echo "building the $profile broker..." >&2
    if [[ $profile == release ]]; then
      cargo build --release --bin ringbroker >&2
    else
      cargo build --bin ringbroker >&2
    fi
  fi
  echo "$TARGET/$profile/ringbroker"
}

stop_all() {
  local n pid pids=()
  for n in "${NODES[@]}"; do
    if pid=$(running_pid "$n"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$n:$pid")
    fi
  done
  # A broker of a cluster hands its leaderships over before it exits; give it time.
  local deadline=$((SECONDS + 30)) entry
  for entry in "${pids[@]}"; do
    n=${entry%%:*}
    pid=${entry#*:}
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "node $n (pid $pid) did not stop within 30 s of SIGTERM: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    else
      echo "node $n stopped"
    fi
    rm -f "$(pid_file "$n")"
  done
  ((${#pids[@]})) || echo "no broker of this cluster is running"
}

status() {
  local n pid
  for n in "${NODES[@]}"; do
    if pid=$(running_pid "$n"); then
      echo "node $n: running (pid $pid), kafka $HOST:$(kafka_port "$n"), controller $HOST:$(controller_port "$n")"
    else
      echo "node $n: stopped"
    fi
  done
}

start() {
  local profile="" sets=()
  while (($#)); do
    case $1 in
      --debug) profile=debug ;;
      --release) profile=release ;;
      --set)
        [[ $# -ge 2 ]] || { echo "--set needs KEY=VALUE" >&2; exit 2; }
        sets+=(--set "$2")
        shift
        ;;
      *) echo "unknown argument: $1 (see the top of $0)" >&2; exit 2 ;;
    esac
    shift
  done
  local n port
  for n in "${NODES[@]}"; do
    if running_pid "$n" >/dev/null; then
      echo "node $n is already running; 'scripts/cluster.sh stop' first" >&2
      exit 1
    fi
    for port in "$(kafka_port "$n")" "$(controller_port "$n")"; do
      if port_in_use "$port"; then
        echo "port $port is in use (another broker?); 'scripts/cluster.sh stop' or free it" >&2
        exit 1
      fi
    done
  done
  local bin
  bin=$(pick_binary "$profile")
  echo "broker: $bin"
  mkdir -p "$DATA"
  trap 'echo; echo "stopping the cluster..."; stop_all; exit 0' INT TERM
  for n in "${NODES[@]}"; do
    mkdir -p "$DATA/node-$n"
    # Its own session: Ctrl-C reaches this script, which stops the brokers itself.
    setsid "$bin" serve \
      --listen "$HOST:$(kafka_port "$n")" \
      --data-dir "$DATA/node-$n" \
      --shards "${SHARDS:-1}" \
      --set "node.id=$n" \
      --set "controller.quorum.voters=$VOTERS" \
      --set "controller.listen=$HOST:$(controller_port "$n")" \
      "${sets[@]}" \
      </dev/null >>"$(log_file "$n")" 2>&1 &
    echo $! >"$(pid_file "$n")"
  done
  local deadline=$((SECONDS + 60))
  for n in "${NODES[@]}"; do
    until port_in_use "$(kafka_port "$n")"; do
      if ! running_pid "$n" >/dev/null; then
        echo "node $n exited during start-up; the end of $(log_file "$n"):" >&2
        tail -n 20 "$(log_file "$n")" >&2
        stop_all
        exit 1
      fi
      if ((SECONDS > deadline)); then
        echo "node $n does not listen on $(kafka_port "$n") after 60 s; see $(log_file "$n")" >&2
        stop_all
        exit 1
      fi
      sleep 0.2
    done
  done
  local bootstrap
  bootstrap=$(for n in "${NODES[@]}"; do printf '%s:%s,' "$HOST" "$(kafka_port "$n")"; done)
  bootstrap=${bootstrap%,}
  cat <<EOF

Three brokers are up (controller quorum $VOTERS).
  bootstrap   $bootstrap
  data, logs  $DATA/node-N, $DATA/node-N.log

  # brokers, controller, leaders of every partition
  kcat -b $HOST:9092 -L
  # produce (auto-creates "demo"), consume
  echo k:v | kcat -b $HOST:9092 -P -t demo -K:
  kcat -b $HOST:9092 -C -t demo -e
  # crash node 2: within seconds its partitions get other leaders
  kill -KILL \$(cat $(pid_file 2))
  # from another shell
  scripts/cluster.sh status
  scripts/cluster.sh stop

Ctrl-C stops all three.
EOF
  # Report brokers that exit while we wait (a crash, or one you killed).
  local -A reported=()
  local up
  while true; do
    up=0
    for n in "${NODES[@]}"; do
      if running_pid "$n" >/dev/null; then
        up=$((up + 1))
        unset "reported[$n]"
      elif [[ -z ${reported[$n]:-} ]]; then
        echo "node $n is not running (see $(log_file "$n"))"
        reported[$n]=1
      fi
    done
    if ((up == 0)); then
      echo "all three brokers have stopped"
      exit 0
    fi
    sleep 1
  done
}

case ${1:-start} in
  start) shift $(($# > 0 ? 1 : 0)); start "$@" ;;
  stop) stop_all ;;
  status) status ;;
  --*) start "$@" ;;
  *) echo "usage: $0 [start [--debug|--release] [--set KEY=VALUE]...] | stop | status" >&2; exit 2 ;;
esac
