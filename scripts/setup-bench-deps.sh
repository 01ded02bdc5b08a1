#!/usr/bin/env bash
# Installs the Debian packages the full benchmark run (logward-bench all) uses beyond
# the Rust toolchain, only those missing. Safe to run again. Needs root (or the
# packages already present). `--quick` runs without them.
#   rsyslog   the W1 peer: imfile tails the same Docker json-file logs and omfwd
#             forwards them over TCP to a loopback sink in the harness
set -euo pipefail
packages=(rsyslog)
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run this as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "benchmark dependencies present: ${packages[*]}"
