#!/bin/sh
# package.sh builds the Fabric chaincode-as-a-service package of the keymesh
# asset-transfer contract, deterministically: the same LABEL and ADDRESS
# always give the same bytes, so the same package id
# (LABEL:sha256(package)), however often it is rebuilt.
#
#   usage: package.sh LABEL ADDRESS [OUTDIR]
#   e.g.   package.sh asset_1.0 asset-ccaas.org1.example.com:9999 /tmp
#
# It writes OUTDIR/LABEL.tar.gz (metadata.json + code.tar.gz holding
# connection.json) and prints the package id, which the running service
# needs as CORE_CHAINCODE_ID_NAME. Needs GNU tar and gzip.
set -eu

label=${1:?usage: package.sh LABEL ADDRESS [OUTDIR]}
address=${2:?usage: package.sh LABEL ADDRESS [OUTDIR]}
out=${3:-.}

case $label in
  [A-Za-z0-9]*) ;;
  *) echo "package.sh: label must start with a letter or digit" >&2; exit 2 ;;
esac
if printf '%s' "$label" | grep -q '[^A-Za-z0-9_.+-]'; then
  echo "package.sh: label may hold only letters, digits and _ . + -" >&2; exit 2
fi
if printf '%s' "$address" | grep -q '["\\[:space:]]'; then
  echo "package.sh: address must be host:port" >&2; exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/code" "$tmp/pkg"
printf '{"address":"%s","dial_timeout":"10s","tls_required":false}\n' "$address" >"$tmp/code/connection.json"
printf '{"type":"ccaas","label":"%s"}\n' "$label" >"$tmp/pkg/metadata.json"

# Fixed order, times, owners and modes; no gzip name or time stamp.
det_tar() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=0644 --format=gnu -cf - "$@"
}
(cd "$tmp/code" && det_tar connection.json) | gzip -n -9 >"$tmp/pkg/code.tar.gz"
mkdir -p "$out"
(cd "$tmp/pkg" && det_tar code.tar.gz metadata.json) | gzip -n -9 >"$out/$label.tar.gz"

sum=$(sha256sum "$out/$label.tar.gz" | cut -d' ' -f1)
echo "$label:$sum"
