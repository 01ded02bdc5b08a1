#!/usr/bin/env bash
# Builds the release binaries and the logward images with no registry access
# (practices P3, P10; docs/DEPLOY.md):
#   logward-server:<version>     and :latest   FROM scratch, user 10001
#   logward-collector:<version>  and :latest   FROM scratch, uid 0 without capabilities
#   logward-sinks:latest                       example SMTP/webhook sinks for compose.yml
#
#   deploy/build-images.sh            # all three
#   deploy/build-images.sh server     # or: collector, sinks
#
# Env: CARGO_BUILD_JOBS (cargo's own), LOGWARD_STATIC=1 links the binaries statically
# (glibc, `-C target-feature=+crt-static`; a full rebuild) so the images hold one file
# each; BUSYBOX [/bin/busybox, Debian's busybox-static] for the sinks image.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
wanted=("${@:-server collector sinks}")
read -r -a wanted <<<"${wanted[*]}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"

needs_cargo=0
for kind in "${wanted[@]}"; do
  [ "$kind" = sinks ] || needs_cargo=1
done
bin_dir="$repo/target/release"
if [ "$needs_cargo" = 1 ]; then
  if [ "${LOGWARD_STATIC:-0}" = 1 ]; then
    host="$(rustc -vV | sed -n 's/^host: //p')"
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
      cargo build --release --locked --target "$host" -p logward-server -p logward-collector
    bin_dir="$repo/target/$host/release"
  else
    cargo build --release --locked -p logward-server -p logward-collector
  fi
fi

for kind in "${wanted[@]}"; do
  case "$kind" in
    server | collector)
      "$repo/deploy/docker/build-image.sh" "$kind" "$bin_dir/logward-$kind" "logward-$kind:$version"
      docker tag "logward-$kind:$version" "logward-$kind:latest"
      ;;
    sinks)
      "$repo/deploy/docker/build-image.sh" sinks "${BUSYBOX:-/bin/busybox}" logward-sinks:latest
      ;;
    *)
      echo "build-images.sh: unknown image '$kind' (server, collector or sinks)" >&2
      exit 2
      ;;
  esac
done
docker image ls --filter 'label=logward.image.user' --filter dangling=false --format '{{.Repository}}:{{.Tag}}  {{.Size}}'
