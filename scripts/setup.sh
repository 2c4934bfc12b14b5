#!/usr/bin/env bash
# Installs the system packages the tests and scripts use, if missing:
#   kcat      scripts/smoke.sh (Debian's kcat links librdkafka 2.0.2)
#   gcc, make, perl  the rdkafka dev-dependency builds a bundled librdkafka
#   g++       librdkafka's test runner (tests/librdkafka_suite.rs, scripts/librdkafka-tests.sh)
#   python3, pip, kafka-python, confluent-kafka  the Python client tests (tests/python/)
#   ss (iproute2)  tests/cli.rs reads a client socket's congestion control
#   libssl-dev, pkg-config  the rdkafka dev-dependency links OpenSSL (its `ssl` feature) for
#             the TLS and SCRAM tests (tests/security.rs, tests/acls.rs)
set -euo pipefail
need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi
# kafka-python drives tests/python/group_consumers.py (tests/consumer_groups.rs) and
# tests/python/cluster_clients.py (tests/cluster.rs).
if ! python3 -c "import kafka" >/dev/null 2>&1; then
  python3 -m pip install --quiet kafka-python 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages kafka-python
fi
# confluent-kafka (librdkafka's Python binding, a wheel with librdkafka inside) drives
# tests/python/admin_confluent.py (tests/admin_describe.rs).
if ! python3 -c "import confluent_kafka" >/dev/null 2>&1; then
  python3 -m pip install --quiet confluent-kafka 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages confluent-kafka
fi
