#!/usr/bin/env bash
# gpu_bundle.sh [DEST]: packs the Debian packages a GPU build of qtrain needs and a bare CUDA
# machine (no apt, no network) lacks, for scripts/gpu_check.sh to use there. Run it HERE, on a
# Debian/Ubuntu amd64 machine with apt, as root, before the device run; then carry DEST.
#
#   OpenBLAS, OpenMP build   libopenblas0-openmp, libopenblas-openmp-dev (cblas.h)
#   its Fortran runtime      libgfortran5, libquadmath0 (absent where no gfortran is installed)
#   Check                    check (static libcheck_pic.a, check.h), libsubunit0 and
#                            libsubunit-dev (check.pc requires libsubunit)
# Not bundled: libgomp (comes with gcc, which nvcc needs anyway; a second copy could clash with
# the compiler's own) and pkg-config (cmake/deps.cmake finds Check without it).
#
# DEST (default .gpu_bundle in the repository, git-ignored) then holds:
#   deps.tar.xz    a flat prefix: lib/ (libopenblas.so.0, libsubunit.so.0, libcheck_pic.a, and
#                  lib/compat/ with libgfortran.so.5 and libquadmath.so.0), include/ (cblas.h,
#                  check.h, ...), lib/pkgconfig/ (.pc files relative to ${pcfiledir}); xz
#                  because libopenblas.so alone is 36 MB (it has kernels for every x86 CPU)
#                  and the working tree that travels is limited to 64 MiB
#   env.sh         `source` it: unpacks deps.tar.xz once into QT_DEPS_PREFIX (default
#                  ${TMPDIR:-/tmp}/qtrain-deps-<hash>, outside the repository so the carried
#                  folder stays small) and exports QT_DEPS_PREFIX, CMAKE_PREFIX_PATH,
#                  PKG_CONFIG_PATH, LD_LIBRARY_PATH (lib/compat only where the system has no
#                  libgfortran.so.5), QT_OPENBLAS_LIB and QT_CBLAS_H
#   packages.txt   the packages, versions and sha256 of the .deb files
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-.gpu_bundle}"

die() { echo "gpu_bundle: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (apt-get update and download need it)"
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  die "needs a Debian/Ubuntu machine with apt-get and dpkg"
fi
arch="$(dpkg --print-architecture)"
[ "$arch" = amd64 ] || die "this machine is $arch; the GPU machine is x86-64: run this on an amd64 machine"
multi=x86_64-linux-gnu

pkgs=(libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0 check libsubunit0
      libsubunit-dev)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/x" "$work/p/lib/compat" "$work/p/lib/pkgconfig" "$work/p/include"

# apt-get download runs as the _apt user where it can; a folder it may write to avoids its
# "unsandboxed" warning.
chmod 0777 "$work/debs"
download() { (cd "$work/debs" && apt-get download -q "${pkgs[@]}" >/dev/null 2>"$work/apt.err"); }
if ! download; then
  echo "gpu_bundle: apt-get download failed; running apt-get update first" >&2
  apt-get update -qq || die "apt-get update failed"
  download || die "apt-get download ${pkgs[*]} failed: $(tail -n 3 "$work/apt.err" | tr '\n' ' ')"
fi

: >"$work/packages.txt"
for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$work/x"
  printf '%s %s %s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" \
    "$(sha256sum "$deb" | cut -d' ' -f1)" >>"$work/packages.txt"
done

# The flat prefix: only the shared objects, static libraries and headers a build needs (no
# docs, man pages, LAPACK, BLAS alternatives or static OpenBLAS).
x="$work/x/usr"
p="$work/p"
cp -L "$x/lib/$multi/openblas-openmp/libopenblas.so.0" "$p/lib/"
ln -s libopenblas.so.0 "$p/lib/libopenblas.so"
cp "$x/include/$multi/openblas-openmp/"{cblas.h,f77blas.h,openblas_config.h} "$p/include/"
cp -L "$x/lib/$multi/libgfortran.so.5" "$x/lib/$multi/libquadmath.so.0" "$p/lib/compat/"
cp -L "$x/lib/$multi/libsubunit.so.0" "$p/lib/"
ln -s libsubunit.so.0 "$p/lib/libsubunit.so"
cp "$x/lib/$multi/libcheck_pic.a" "$p/lib/"
cp "$x/include/check.h" "$x/include/check_stdint.h" "$p/include/"
# .pc files: prefix relative to the file (pkg-config and pkgconf both define pcfiledir), lib
# and include folders flattened. The ${...} are pkg-config's, not the shell's.
# shellcheck disable=SC2016
fix_pc() {
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' \
      -e 's|^exec_prefix=.*|exec_prefix=${prefix}|' \
      -e 's|^libdir=.*|libdir=${prefix}/lib|' \
      -e 's|^includedir=.*|includedir=${prefix}/include|' "$1" >"$p/lib/pkgconfig/$2"
}
fix_pc "$x/lib/$multi/pkgconfig/check.pc" check.pc
fix_pc "$x/lib/$multi/pkgconfig/libsubunit.pc" libsubunit.pc
fix_pc "$x/lib/$multi/openblas-openmp/pkgconfig/openblas.pc" openblas.pc
cp "$work/packages.txt" "$p/packages.txt"

rm -rf "$dest"
mkdir -p "$dest"
tar -C "$p" --owner=0 --group=0 --numeric-owner -cf - . | xz -T0 -6 >"$dest/deps.tar.xz"
cp "$work/packages.txt" "$dest/packages.txt"

cat >"$dest/env.sh" <<'ENV'
# .gpu_bundle/env.sh (written by scripts/gpu_bundle.sh): `source` it. Unpacks deps.tar.xz
# beside it once into QT_DEPS_PREFIX and exports the paths a build and its programs need.
_qt_bundle="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
_qt_hash="$(sha256sum "$_qt_bundle/deps.tar.xz" | cut -c1-12)"
QT_DEPS_PREFIX="${QT_DEPS_PREFIX:-${TMPDIR:-/tmp}/qtrain-deps-$_qt_hash}"
if [ "$(cat "$QT_DEPS_PREFIX/.bundle-hash" 2>/dev/null)" != "$_qt_hash" ]; then
  rm -rf "$QT_DEPS_PREFIX" && mkdir -p "$QT_DEPS_PREFIX" || return 1
  # xz where the binary exists, else Python's lzma (python3 is on every machine this targets).
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$_qt_bundle/deps.tar.xz" | tar -C "$QT_DEPS_PREFIX" -xf - || return 1
  else
    python3 -c 'import sys, tarfile
kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], **kw)' \
      "$_qt_bundle/deps.tar.xz" "$QT_DEPS_PREFIX" || return 1
  fi
  echo "$_qt_hash" >"$QT_DEPS_PREFIX/.bundle-hash"
fi
export QT_DEPS_PREFIX
export CMAKE_PREFIX_PATH="$QT_DEPS_PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_PATH="$QT_DEPS_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
_qt_libs="$QT_DEPS_PREFIX/lib"
# The bundled Fortran runtime only where the system has none: LD_LIBRARY_PATH comes before the
# system's own folders, and a newer system copy should win.
if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libgfortran\.so\.5 '; then
  _qt_libs="$_qt_libs:$QT_DEPS_PREFIX/lib/compat"
fi
export LD_LIBRARY_PATH="$_qt_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export QT_OPENBLAS_LIB="$QT_DEPS_PREFIX/lib/libopenblas.so"
export QT_CBLAS_H="$QT_DEPS_PREFIX/include/cblas.h"
unset _qt_bundle _qt_hash _qt_libs
ENV

unpacked=$(du -sk "$p" | cut -f1)
echo "gpu_bundle: $(wc -l <"$dest/packages.txt") packages into $dest:" \
  "$(du -sh "$dest" | cut -f1) ($((unpacked / 1024)) MiB unpacked); carry \"$dest\"" \
  "and source $dest/env.sh there"
cut -d' ' -f1,2 "$dest/packages.txt" | sed 's/^/  /'
