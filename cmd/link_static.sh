#!/bin/sh
# Linker launcher (CXX_LINKER_LAUNCHER) for binaries that start often: runs the link command
# CMake gives it with Debian's shared libraries swapped for their static archives and
# libstdc++/libgcc linked statically. glibc stays shared.
#
#   link_static.sh COMMAND...              Abseil only (node-shim)
#   link_static.sh --with-grpc COMMAND...  Abseil, gRPC, protobuf and their dependencies
#                                          (nodectl)
#
# Why: node-shim starts for every container and stays resident for each; loading ~30 Abseil
# shared objects plus libstdc++ took ~2.9 ms from exec to main (1.0 ms static), and each mapped
# library adds private relocated pages to every idle shim. nodectl runs once per command:
# relocating its 57 shared libraries took ~10 ms before main, 2.5 ms static (measured on
# Debian 12). Every Abseil library is swapped at once: a binary must not mix a static and a
# shared copy of Abseil; with gRPC, every Abseil archive goes in, as libgrpc.a needs Abseil
# libraries the link line does not name (the shared libgrpc brought them itself).
set -eu
libdir=/usr/lib/x86_64-linux-gnu
with_grpc=
if [ "${1:-}" = --with-grpc ]; then
  with_grpc=1
  shift
fi
grouped=
for arg do
  shift
  case $arg in
    */libabsl_*.so | */libabsl_*.so.*)
      archive=${arg%%.so*}.a
      if [ ! -f "$archive" ]; then
        echo "link_static.sh: no static archive $archive for $arg" >&2
        exit 1
      fi
      [ -n "$with_grpc" ] && continue  # All of them go in the group below.
      if [ -z "$grouped" ]; then
        # Archives are searched once, in order; a group lets them refer to each other freely.
        set -- "$@" -Wl,--start-group
        grouped=1
      fi
      arg=$archive
      ;;
    */libgrpc++.so* | */libgrpc.so* | */libgpr.so* | */libupb.so* | */libaddress_sorting.so* | \
    */libcares.so* | */libprotobuf.so* | */libssl.so* | */libcrypto.so* | */libz.so* | -lre2)
      [ -n "$with_grpc" ] && continue
      ;;
  esac
  set -- "$@" "$arg"
done
if [ -n "$with_grpc" ]; then
  set -- "$@" -Wl,--start-group
  for lib in grpc++ grpc gpr upb address_sorting cares re2 protobuf ssl crypto z; do
    set -- "$@" "$libdir/lib$lib.a"
  done
  for archive in "$libdir"/libabsl_*.a; do set -- "$@" "$archive"; done
  set -- "$@" -Wl,--end-group -ldl -lpthread
elif [ -n "$grouped" ]; then
  set -- "$@" -Wl,--end-group
fi
exec "$@" -static-libstdc++ -static-libgcc
