#!/usr/bin/env bash
# Builds the pinned Ory Hydra release from the Go module proxy into .cache/
# and prints the binary's path. The binary is reused until the pinned version
# in tools/hydra/go.mod changes. Hydra's in-memory store is SQLite, so the
# build needs cgo and a C compiler (apt-get install gcc). Exits non-zero when
# the build fails: the end-to-end suite never skips for want of Hydra.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/tools/hydra"
version=$(awk '$1 == "github.com/ory/hydra/v2" { print $2; exit }' "$mod/go.mod")
if [ -z "$version" ]; then
  version=$(grep -Eo 'github.com/ory/hydra/v2 v[0-9.]+' "$mod/go.mod" | head -n1 | awk '{print $2}')
fi
if [ -z "$version" ]; then
  echo "build-hydra: no github.com/ory/hydra/v2 version in $mod/go.mod" >&2
  exit 1
fi
out="$root/.cache/hydra-$version/hydra"
if [ ! -x "$out" ]; then
  cc=$(cd "$mod" && go env CC)
  if ! command -v "${cc%% *}" >/dev/null; then
    echo "build-hydra: Hydra needs cgo and a C compiler ($cc): apt-get install gcc" >&2
    exit 1
  fi
  echo "building Hydra $version into $out (first build: about 10 minutes)" >&2
  mkdir -p "$(dirname "$out")"
  pkg=github.com/ory/hydra/v2/driver/config
  (cd "$mod" && CGO_ENABLED=1 go build -trimpath -o "$out.tmp" \
    -tags sqlite,sqlite_omit_load_extension \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$version -X $pkg.Date=undefined" \
    github.com/ory/hydra/v2) >&2
  mv "$out.tmp" "$out"
fi
echo "$out"
