#!/bin/sh
# Linker launcher for node-shim (CXX_LINKER_LAUNCHER): runs the link command CMake gives it,
# with each Abseil shared library swapped for its static archive (Debian's libabsl-dev ships
# both) and libstdc++/libgcc linked statically.
#
# Why: node-shim starts for every container and stays resident for each. Loading ~30 Abseil
# shared objects plus libstdc++ took ~2.9 ms from exec to main (1.0 ms static, measured on
# Debian 12), and each mapped library adds private relocated pages to every idle shim.
# Swapping every Abseil library at once matters: a binary must not mix a static and a shared
# copy of Abseil.
set -eu
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
      if [ -z "$grouped" ]; then
        # Archives are searched once, in order; a group lets them refer to each other freely.
        set -- "$@" -Wl,--start-group
        grouped=1
      fi
      arg=$archive
      ;;
  esac
  set -- "$@" "$arg"
done
[ -n "$grouped" ] && set -- "$@" -Wl,--end-group
exec "$@" -static-libstdc++ -static-libgcc
