#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Safe to run again.
# Nothing is needed yet beyond cargo; later tests add Debian packages here
# (systemd-journal-remote, an SMTP server), installed only when missing.
set -euo pipefail
need=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "test dependencies present"
