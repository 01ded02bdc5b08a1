#!/usr/bin/env bash
# Builds one logward image with no registry access (practices P3, P10): `FROM scratch`
# plus a root filesystem assembled here from a binary built on this machine, the shared
# libraries `ldd` lists for it (none for a static binary), /etc/passwd and /etc/group
# with the image's user, and the image's state directory. Nothing is pulled.
#
#   deploy/docker/build-image.sh server    BINARY TAG   # logward-server, user 10001
#   deploy/docker/build-image.sh collector BINARY TAG   # logward-collector, uid 0 without capabilities
#   deploy/docker/build-image.sh sinks     BUSYBOX TAG  # example SMTP and webhook sinks, user 10002
#
# BINARY is the path of the built binary (e.g. target/release/logward-server); for
# `sinks`, a static busybox (Debian's busybox-static: /bin/busybox).
# Env: LOGWARD_IMAGE_LABELS="k=v k2=v2" adds image labels (the tests use it to find and
# remove their images).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kind="${1:?usage: build-image.sh server|collector|sinks BINARY TAG}"
binary="${2:?missing BINARY}"
tag="${3:?missing TAG}"
[ -x "$binary" ] || { echo "build-image.sh: $binary is not an executable file" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
mkdir -p "$root/etc" "$stage/state"

# Copies the dynamic loader and every shared library the binary needs, at the paths
# `ldd` prints, so the loader finds them with no ld.so.cache. A static binary needs none.
copy_libs() {
  local bin="$1" lib
  if ! ldd "$bin" >/dev/null 2>&1; then
    return 0 # "not a dynamic executable"
  fi
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

case "$kind" in
  server)
    name=logward-server
    uid=10001
    user_line="logward:x:10001:10001:logward server:/var/lib/logward:/nonexistent"
    group_line="logward:x:10001:"
    ;;
  collector)
    name=logward-collector
    uid=0
    # uid 0 with every capability dropped: see docs/DEPLOY.md ("Why the collector is
    # uid 0") for the proof that no non-root user can read Docker's 0710 directories
    # and 0600 config.v2.json under no-new-privileges.
    user_line=""
    group_line=""
    ;;
  sinks)
    name=busybox
    uid=10002
    user_line="sink:x:10002:10002:example sinks:/nonexistent:/nonexistent"
    group_line="sink:x:10002:"
    ;;
  *)
    echo "build-image.sh: unknown image kind '$kind' (server, collector or sinks)" >&2
    exit 2
    ;;
esac

mkdir -p "$root/usr/local/bin"
cp -L "$binary" "$root/usr/local/bin/$name"
chmod 0755 "$root/usr/local/bin/$name"
copy_libs "$binary"
{
  echo "root:x:0:0:root:/nonexistent:/nonexistent"
  [ -z "$user_line" ] || echo "$user_line"
  echo "nobody:x:65534:65534:nobody:/nonexistent:/nonexistent"
} >"$root/etc/passwd"
{
  echo "root:x:0:"
  [ -z "$group_line" ] || echo "$group_line"
  echo "nogroup:x:65534:"
} >"$root/etc/group"
mkdir -p "$root/etc/logward"

if [ "$kind" = sinks ]; then
  mkdir -p "$root/bin" "$root/www/cgi-bin"
  mv "$root/usr/local/bin/busybox" "$root/bin/busybox"
  for applet in sh nc httpd head cat printf echo date tr; do
    ln -s busybox "$root/bin/$applet"
  done
  cp "$here/sinks/smtp-sink.sh" "$root/bin/smtp-sink"
  cp "$here/sinks/webhook-sink.cgi" "$root/www/cgi-bin/hook"
  chmod 0755 "$root/bin/smtp-sink" "$root/www/cgi-bin/hook"
fi

cp "$here/$kind.Dockerfile" "$stage/Dockerfile"
chmod -R go-w "$root"

labels=()
for kv in ${LOGWARD_IMAGE_LABELS:-}; do
  labels+=(--label "$kv")
done

# BuildKit needs the buildx plugin; without it the classic builder does the same job
# (FROM scratch pulls nothing either way).
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
if ! out="$(docker build --quiet --tag "$tag" "${labels[@]}" \
  --label "org.opencontainers.image.title=$name" \
  --label "logward.image.user=$uid" \
  "$stage" 2>&1)"; then
  echo "build-image.sh: docker build of $tag failed:" >&2
  echo "$out" >&2
  exit 1
fi
echo "built $tag ($kind, $(du -sh "$root" | cut -f1) rootfs)"
