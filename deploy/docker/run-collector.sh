#!/usr/bin/env bash
# Runs logward-collector hardened on this Docker host (docs/DEPLOY.md explains each flag
# and the practice it serves). tests/tests/hardened_container.rs runs it with these flags.
#
#   LOGWARD_SERVER=https://logs.example.com:7420 \
#   LOGWARD_CA=/etc/logward/ca.pem LOGWARD_TOKEN_FILE=/etc/logward/collector.token \
#     deploy/docker/run-collector.sh
#
# Env (defaults in brackets): LOGWARD_SERVER [http://127.0.0.1:7420: change it],
# LOGWARD_COLLECTOR_IMAGE [logward-collector:latest], LOGWARD_NETWORK [logward],
# LOGWARD_HOSTNAME [this host's name], LOGWARD_CONFIG [none: a collector.toml to mount],
# LOGWARD_CA [none: PEM CA that signs the server's certificate], LOGWARD_TOKEN_FILE
# [none: the collector's bearer token], LOGWARD_MEMORY [256m], LOGWARD_PIDS [64],
# LOGWARD_CPUS [1].
set -euo pipefail

image="${LOGWARD_COLLECTOR_IMAGE:-logward-collector:latest}"
network="${LOGWARD_NETWORK:-logward}"
docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null

args=(
  --name logward-collector
  --detach
  --restart unless-stopped
  --label logward.component=collector       # names it for deploy/rules/logward-self.yml
  --network "$network"                      # P6: its own bridge network, never host
  --user 0:0                                # uid 0 WITHOUT capabilities: see DEPLOY.md (P1)
  --cap-drop ALL                            # P1: empty bounding set, nothing added back
  --security-opt no-new-privileges          # P1: no setuid or file-capability gain
  --read-only                               # P2: immutable root filesystem, no tmpfs needed
  --memory "${LOGWARD_MEMORY:-256m}"        # P5: bounded memory ...
  --memory-swap "${LOGWARD_MEMORY:-256m}"   #     ... and no swap beyond it
  --pids-limit "${LOGWARD_PIDS:-64}"        # P5: no fork bomb
  --cpus "${LOGWARD_CPUS:-1}"               # P5: bounded CPU
  --log-opt max-size=10m --log-opt max-file=3
  # P9: the logs to ship, read-only. The only host path it sees.
  --mount type=bind,src=/var/lib/docker/containers,dst=/var/lib/docker/containers,readonly
  # P9: checkpoints on a named volume, so a restart resumes where the server acknowledged.
  --mount type=volume,src=logward-collector-state,dst=/var/lib/logward-collector
  --env "LOGWARD_HOSTNAME=${LOGWARD_HOSTNAME:-$(hostname)}"
  --env "LOGWARD_SERVER=${LOGWARD_SERVER:-http://127.0.0.1:7420}"
)
if [ -n "${LOGWARD_CONFIG:-}" ]; then
  args+=(--mount "type=bind,src=$(realpath "$LOGWARD_CONFIG"),dst=/etc/logward/collector.toml,readonly"
    --env LOGWARD_COLLECTOR_CONFIG=/etc/logward/collector.toml)
fi
if [ -n "${LOGWARD_CA:-}" ]; then # P10: verify the server against this CA
  args+=(--mount "type=bind,src=$(realpath "$LOGWARD_CA"),dst=/etc/logward/ca.pem,readonly"
    --env LOGWARD_CA_FILE=/etc/logward/ca.pem)
fi
if [ -n "${LOGWARD_TOKEN_FILE:-}" ]; then # P10: authenticate to the server
  args+=(--mount "type=bind,src=$(realpath "$LOGWARD_TOKEN_FILE"),dst=/etc/logward/collector.token,readonly"
    --env LOGWARD_TOKEN_FILE=/etc/logward/collector.token)
fi
exec docker run "${args[@]}" "$image"
