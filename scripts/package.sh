#!/usr/bin/env bash
# Build aprof and its Debian package (CPack): prints the path of the .deb. Its dependencies are
# derived from the binary by dpkg-shlibdeps (Debian's shared libraries only).
#   scripts/package.sh [BUILD_DIR]      (default build; the .deb lands in BUILD_DIR/package)
#   apt-get install ./BUILD_DIR/package/aprof_*.deb    then: aprof --help, man aprof
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
command -v dpkg-shlibdeps >/dev/null || {
    echo "package: dpkg-shlibdeps is missing (apt-get install dpkg-dev)" >&2
    exit 1
}
scripts/setup.sh "$build_dir" -DAPROF_WERROR=ON >&2
rm -rf "$build_dir/package"
cpack -G DEB -B "$build_dir/package" --config "$build_dir/CPackConfig.cmake" >&2
ls "$build_dir"/package/aprof_*.deb
