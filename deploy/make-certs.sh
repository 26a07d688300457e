#!/usr/bin/env bash
# Makes the example federation's TLS files: a private CA and, for each compose service
# (hotline-uk, hotline-kr, hotline-br, platform), a certificate for its service name signed by
# that CA, in the layout compose.yaml mounts at /etc/redline/tls:
#
#   OUT/ca.crt, OUT/ca.key              the CA (keep ca.key offline; only ca.crt is mounted)
#   OUT/<service>/tls.crt, tls.key      the node's certificate chain and private key
#   OUT/<service>/ca.crt                the CA again, to verify the peers it pulls from
#
#   deploy/make-certs.sh [OUT]          # OUT defaults to deploy/tls (ignored by git)
#
# An existing CA in OUT is reused, so new services can be added without re-issuing the rest.
# This is an example PKI for trying the federation; hotlines federating for real use
# certificates from their own PKI (or a public CA, with no `ca` line in [[peers]]).
set -euo pipefail

out=${1:-"$(cd "$(dirname "$0")" && pwd)/tls"}
services=(hotline-uk hotline-kr hotline-br platform)
days=825

command -v openssl >/dev/null || { echo "make-certs: openssl is needed" >&2; exit 1; }
umask 077
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ ! -f "$out/ca.key" ]]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" \
    -subj "/CN=Redline example federation CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
chmod 0644 "$out/ca.crt"

for service in "${services[@]}"; do
  dir="$out/$service"
  mkdir -p "$dir"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$dir/tls.key" -out "$work/$service.csr" -subj "/CN=$service" 2>/dev/null
  # A server certificate for the service name (peers dial https://<service>:7443), also good
  # as a client certificate should a peer require mutual TLS.
  printf '%s\n' \
    "subjectAltName=DNS:$service" \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" >"$work/$service.ext"
  openssl x509 -req -in "$work/$service.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -days "$days" -extfile "$work/$service.ext" -out "$dir/tls.crt" 2>/dev/null
  cp "$out/ca.crt" "$dir/ca.crt"
  chmod 0644 "$dir/tls.crt" "$dir/ca.crt"
  chmod 0755 "$dir"
done
rm -f "$out/ca.srl"

echo "make-certs: CA and certificates for ${services[*]} in $out"
echo "make-certs: the image runs as uid 10001, which must be able to read each tls.key:"
echo "  sudo chown -R 10001:10001 $out/{$(IFS=,; echo "${services[*]}")}"
