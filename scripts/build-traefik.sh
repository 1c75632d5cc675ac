#!/usr/bin/env bash
# Builds the pinned Traefik release from the Go module proxy into .cache/ and
# prints the binary's path. The binary is reused until the pinned version in
# tools/traefik/go.mod changes. Exits non-zero when the build fails: the
# end-to-end suite and the benchmarks never skip for want of Traefik.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/tools/traefik"
version=$(awk '$1 == "github.com/traefik/traefik/v3" { print $2; exit }' "$mod/go.mod")
if [ -z "$version" ]; then
  version=$(grep -Eo 'github.com/traefik/traefik/v3 v[0-9.]+' "$mod/go.mod" | head -n1 | awk '{print $2}')
fi
out="$root/.cache/traefik-$version/traefik"
if [ ! -x "$out" ]; then
  echo "building Traefik $version into $out (first build: about 5 minutes)" >&2
  mkdir -p "$(dirname "$out")"
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
    github.com/traefik/traefik/v3/cmd/traefik) >&2
  mv "$out.tmp" "$out"
fi
echo "$out"
