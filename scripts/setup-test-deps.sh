#!/usr/bin/env bash
# Installs the Debian packages the test suite uses beyond the Rust toolchain, only
# those missing. Safe to run again. Needs root (or the packages already present).
#   busybox-static    a static busybox, imported with `docker import` as the tiny test
#                     image of the Docker engine tests (there is no registry to pull from)
#   python3-aiosmtpd  a real SMTP server on loopback for the alerting tests
#   systemd-journal-remote  turns export-format text into real .journal files for the
#                     journald source tests
set -euo pipefail
packages=(busybox-static python3-aiosmtpd systemd-journal-remote)
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
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "test dependencies present: ${packages[*]}"
