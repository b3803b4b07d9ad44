#!/usr/bin/env bash
# Builds client/go/vendor from the Go sources Debian's golang-*-dev packages install, so that the module
# builds with `-mod=vendor` and no network (no module proxy, no checksum database).
#
#   vendor.sh SOURCE_ROOT MODULE_DIR      e.g. vendor.sh /usr/share/gocode/src client/go
#
# For each module that offline/packages.txt lists, it checks that go.mod requires it and that the
# installed Debian package has the listed version, copies the module's packages (without tests and
# testdata) to vendor/<module path>, and writes vendor/modules.txt with the versions go.mod states, as
# `go mod vendor` would: the go command checks that file against go.mod before every build.
set -euo pipefail

src=${1:?source root, such as /usr/share/gocode/src}
dir=${2:?module directory}
list="$dir/offline/packages.txt"
vendor="$dir/vendor"
tmp="$vendor.tmp"

# go.mod's requirements as "path version" lines (both require blocks and single-line requires).
required=$(awk '
  /^require \($/ { inside = 1; next }
  inside && /^\)/ { inside = 0; next }
  inside && NF >= 2 { print $1, $2 }
  /^require [^(]/ { print $2, $3 }
' "$dir/go.mod")

rm -rf "$tmp"
mkdir -p "$tmp"
: >"$tmp/modules.txt"
listed=""
while read -r module package expected; do
  case "$module" in '' | '#'*) continue ;; esac
  version=$(awk -v m="$module" '$1 == m { print $2 }' <<<"$required")
  if [ -z "$version" ]; then
    echo "vendor.sh: $module is in offline/packages.txt but not required by go.mod" >&2
    exit 1
  fi
  # Debian's version without epoch, packaging revision or repack suffix: 1:0.7.0+dfsg-1 -> 0.7.0.
  installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null | sed -E 's/^[0-9]+://; s/-[^-]*$//; s/\+dfsg[0-9]*$//')
  if [ "$installed" != "$expected" ]; then
    echo "vendor.sh: $package is ${installed:-not installed}, expected $expected (offline/packages.txt);" \
      "check its Go API against go.mod's $module $version, then update both files" >&2
    exit 1
  fi
  if [ ! -d "$src/$module" ]; then
    echo "vendor.sh: $src/$module is missing although $package is installed" >&2
    exit 1
  fi
  mkdir -p "$tmp/$(dirname "$module")"
  if [ "$module" = google.golang.org/genproto ]; then
    # genproto is every Google API (50 MB); grpc and this module use only googleapis/rpc.
    mkdir -p "$tmp/$module/googleapis"
    cp -R "$src/$module/googleapis/rpc" "$tmp/$module/googleapis/rpc"
    cp "$src/$module/go.mod" "$tmp/$module/"
  else
    cp -R "$src/$module" "$tmp/$module"
  fi
  # Tests and their data are not part of a vendored module (go mod vendor leaves them out too).
  find "$tmp/$module" -name testdata -type d -prune -exec rm -rf {} +
  find "$tmp/$module" -name '*_test.go' -delete
  {
    echo "# $module $version"
    # The module's go version decides the language its packages compile with (go1.16 when absent).
    go_version=$(awk '$1 == "go" { print $2; exit }' "$tmp/$module/go.mod" 2>/dev/null || true)
    echo "## explicit${go_version:+; go $go_version}"
    find "$tmp/$module" -name '*.go' -printf '%h\n' | sort -u | sed "s|^$tmp/||"
  } >>"$tmp/modules.txt"
  printf '%s %s %s %s\n' "$module" "$version" "$package" "$installed" >>"$tmp/debian-versions.txt"
  listed="$listed $module"
done <"$list"

# Every requirement must come from somewhere: a module go.mod names but the list lacks would be missing.
while read -r module _; do
  case " $listed " in *" $module "*) ;; *)
    echo "vendor.sh: go.mod requires $module, which offline/packages.txt does not list" >&2
    exit 1
    ;;
  esac
done <<<"$required"

rm -rf "$vendor"
mv "$tmp" "$vendor"
