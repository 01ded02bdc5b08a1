#!/usr/bin/env bash
# Runs logward-server hardened (docs/DEPLOY.md explains each flag and its practice).
#
#   LOGWARD_SERVER_CONFIG=/srv/logward/server.toml deploy/docker/run-server.sh
#
# The config must make the listeners reachable (grpc_addr = "0.0.0.0:7420",
# http_addr = "0.0.0.0:7421") and protect them: [security.tls] and
# [[security.collectors]] / [[security.api_tokens]] (docs/SECURITY.md), or, on a trusted
# network only, `allow_plaintext` / `allow_open`. Files it names (certificates, keys)
# go under the directory of the config, which is mounted read-only at /etc/logward.
#
# Env (defaults in brackets): LOGWARD_SERVER_CONFIG [required], LOGWARD_SERVER_IMAGE
# [logward-server:latest], LOGWARD_NETWORK [logward], LOGWARD_PUBLISH [127.0.0.1: the
# host address the ports are published on], LOGWARD_MEMORY [1g], LOGWARD_PIDS [256],
# LOGWARD_CPUS [2], LOGWARD_RULES_DIR [deploy/rules of this checkout].
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$(realpath "${LOGWARD_SERVER_CONFIG:?set LOGWARD_SERVER_CONFIG to the server.toml}")"
rules="$(realpath "${LOGWARD_RULES_DIR:-$here/../rules}")"
image="${LOGWARD_SERVER_IMAGE:-logward-server:latest}"
network="${LOGWARD_NETWORK:-logward}"
publish="${LOGWARD_PUBLISH:-127.0.0.1}"
docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null

args=(
  --name logward-server
  --detach
  --restart unless-stopped
  --label logward.component=server
  --network "$network"                     # P6: its own bridge network, never host
  --publish "$publish:7420:7420"           # gRPC ingest
  --publish "$publish:7421:7421"           # HTTP API
  --user 10001:10001                       # P1: the image's unprivileged user
  --cap-drop ALL                           # P1: needs none (ports above 1024)
  --security-opt no-new-privileges         # P1
  --read-only                              # P2: immutable root filesystem
  --memory "${LOGWARD_MEMORY:-1g}"         # P5: size it with [index] writer_heap_mb
  --memory-swap "${LOGWARD_MEMORY:-1g}"
  --pids-limit "${LOGWARD_PIDS:-256}"      # P5
  --cpus "${LOGWARD_CPUS:-2}"              # P5
  --log-opt max-size=10m --log-opt max-file=3
  # P9: index, detections, alert outbox: a named volume, never tmpfs (it must survive).
  --mount type=volume,src=logward-data,dst=/var/lib/logward
  # Configuration and the files it names, and the rules directory: read-only (P2).
  --mount "type=bind,src=$(dirname "$config"),dst=/etc/logward,readonly"
  --mount "type=bind,src=$rules,dst=/etc/logward-rules,readonly"
  --env LOGWARD_RULES_DIR=/etc/logward-rules
)
exec docker run "${args[@]}" "$image" --config "/etc/logward/$(basename "$config")"
