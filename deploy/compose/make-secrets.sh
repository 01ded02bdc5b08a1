#!/usr/bin/env bash
# Makes deploy/compose/secrets/ for deploy/compose.yml (practice P10; docs/DEPLOY.md):
#   ca.pem, ca.key          a private CA (ECDSA P-256), kept here only to sign the server
#   server.pem, server.key  the server's certificate for DNS:server, DNS:localhost,
#                           IP:127.0.0.1, signed by the CA; key owned by uid 10001 (the
#                           server image's user), mode 0400
#   collector.token         the collector's bearer token (mode 0400, uid 0: the collector)
#   api-reader.token, api-admin.token   API tokens for you (mode 0400, your user)
#   server.toml             compose/server.toml plus [security]: TLS and the tokens'
#                           SHA-256 hashes (the tokens themselves are never stored there)
# Tokens come from `logward-server token new`, run in the server image (no host binary
# needed). Needs openssl, docker and root (for the owners). Run once before `up`;
# --force replaces existing secrets (then restart the stack).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/secrets"
image="${LOGWARD_SERVER_IMAGE:-logward-server:latest}"
days="${LOGWARD_CERT_DAYS:-397}"
if [ -e "$out/server.toml" ] && [ "${1:-}" != --force ]; then
  echo "make-secrets.sh: $out exists; --force replaces it" >&2
  exit 1
fi
umask 077
rm -rf "$out"
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=logward compose CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=server" \
  -keyout server.key -out server.csr 2>/dev/null
printf '%s\n' "subjectAltName=DNS:server,DNS:localhost,IP:127.0.0.1" \
  "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl

# One `token new` per credential; keeps the token line and the config lines.
token() {
  local name="$1"
  shift
  local text
  text="$(docker run --rm --network none --read-only --cap-drop ALL \
    --security-opt no-new-privileges "$image" token new "$@")"
  sed -n 's/^token: //p' <<<"$text" >"$name.token"
  sed -n '/^\[\[security\./,$p' <<<"$text" >"$name.toml"
}
token collector --identity compose-collector
token api-reader --identity compose-reader --api-role reader
token api-admin --identity compose-admin --api-role admin

{
  cat "$here/server.toml"
  echo
  echo "# --- added by make-secrets.sh ---"
  echo "[security.tls]"
  echo 'cert = "/etc/logward/server.pem"'
  echo 'key = "/etc/logward/server.key"'
  echo
  cat collector.toml api-reader.toml api-admin.toml
} >server.toml
rm -f collector.toml api-reader.toml api-admin.toml

chmod 0644 ca.pem server.pem server.toml
chmod 0400 ca.key server.key collector.token api-reader.token api-admin.token
chown 10001:10001 server.key # the server image's user
chown 0:0 collector.token    # the collector runs as uid 0 (without capabilities)
if [ -n "${SUDO_UID:-}" ]; then
  chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" api-reader.token api-admin.token
fi
chmod 0755 "$out"
echo "secrets in $out; try:"
echo "  curl --cacert $out/ca.pem -H \"Authorization: Bearer \$(cat $out/api-reader.token)\" \\"
echo "    'https://127.0.0.1:7421/api/v1/search?q=*&start=now-15m&limit=5'"
