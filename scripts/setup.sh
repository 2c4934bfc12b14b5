#!/usr/bin/env bash
# Installs the system packages and Python clients the tests and scripts use, if missing.
set -euo pipefail
need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]}" >&2
  fi
fi
# kafka-python drives tests/python/group_consumers.py (tests/consumer_groups.rs).
if ! python3 -c "import kafka" >/dev/null 2>&1; then
  python3 -m pip install --quiet kafka-python 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages kafka-python
fi
