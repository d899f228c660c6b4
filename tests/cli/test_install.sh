#!/usr/bin/env bash
# The installed library as a user links it: `cmake --install` to a fresh prefix, the prefix
# moved elsewhere, then examples/generate.c built against the moved copy with pkg-config and
# with CMake's find_package(safesd), and run on the bundled model (few steps). Also: only
# safesd_* symbols are exported, and every function safesd.h declares is; the SONAME; the
# installed program finds its data after the move, and without the installed data both fail
# naming the moved prefix (no silent fallback to the source tree or the old prefix).
source "$(dirname "$0")/../conformance/lib.sh"
unset SAFESD_DATA_DIR SAFESD_MODELS_DIR
for t in cc pkg-config cmake nm objdump; do
  command -v $t >/dev/null || { echo "FAIL: $t is not installed (tools/install-deps.sh)"; exit 1; }
done
# outside the build tree: a binary under the build folder reads the source tree's data
T=$(mktemp -d "${TMPDIR:-/tmp}/safesd-install.XXXXXX")
trap 'rm -rf "$T"' EXIT

expect_rc 0 "cmake --install" cmake --install "$BUILD" --prefix "$T/first"
mv "$T/first" "$T/moved"
P="$T/moved"
LIB=$(ls -d "$P"/lib*/libsafesd.so.0 2>/dev/null | head -1)
[ -n "$LIB" ] && ok || { bad "no libsafesd.so.0 under $P: $(find "$P" -maxdepth 3 | head)"; summary; exit 1; }
LIBDIR=$(dirname "$LIB")

# exports: every dynamic symbol the library defines is a safesd_* function
others=$(nm -D --defined-only "$LIB" | awk '{print $3}' | grep -v '^safesd_' || true)
[ -z "$others" ] && ok || bad "libsafesd.so exports non-safesd symbols: $(echo $others | head -c 300)"
n=$(nm -D --defined-only "$LIB" | grep -c ' safesd_')
[ "$n" -ge 30 ] && ok || bad "only $n safesd_* symbols exported"
# every function the public header declares is exported (one without SAFESD_API is hidden)
hidden=$(grep -E '^[A-Za-z_]' "$P/include/safesd.h" | grep -oE '\bsafesd_[a-z0-9_]+\(' | tr -d '(' | sort -u |
  comm -23 - <(nm -D --defined-only "$LIB" | awk '{print $3}' | sort -u))
[ -z "$hidden" ] && ok || bad "declared in safesd.h but not exported (SAFESD_API missing?): $hidden"
# (outputs captured first: `cmd | grep -q` fails under pipefail when grep exits before cmd
# has written everything, and cmd dies of SIGPIPE)
dyn=$(objdump -p "$LIB")
grep -q 'SONAME *libsafesd.so.0$' <<<"$dyn" && ok || bad "SONAME: $(grep SONAME <<<"$dyn")"
[ -f "$P/include/safesd.h" ] && [ -f "$LIBDIR/pkgconfig/safesd.pc" ] && [ -f "$LIBDIR/cmake/safesd/safesdConfig.cmake" ] && ok ||
  bad "installed files missing: $(find "$P" -maxdepth 4 -name 'safesd*' | head)"

# pkg-config, from the moved prefix (the .pc file's paths are relative to itself)
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
flags=$(pkg-config --cflags --libs safesd)
grep -q -- "-I$P/include\|-I$LIBDIR/pkgconfig/../../include" <<<"$flags" && ok || bad "pkg-config flags do not point into the moved prefix: $flags"
expect_rc 0 "cc with pkg-config" cc -std=c11 -Wall -Wextra -Werror "$SRC/examples/generate.c" $flags -Wl,-rpath,"$LIBDIR" -o "$T/ex_pc"
expect_rc 0 "run (pkg-config build)" "$T/ex_pc" "cat face, noto emoji" "$T/pc.png" 4
[ -s "$T/pc.png" ] && ok || bad "pkg-config example wrote no image: $ERR"
grep -q '"nsfw_content_detected":\[' <<<"$OUT" && grep -q '"flagged":false' <<<"$OUT" && ok || bad "example report: $OUT"
grep -q "\"classifiers\":\"clip-zeroshot:$P/share/safesd/models/safesd-emoji/clip\"" <<<"$OUT" && ok ||
  bad "the example's judge is not the moved install's bundled model: $OUT"
libs=$(ldd "$T/ex_pc")
grep -qF "$LIBDIR/libsafesd.so.0" <<<"$libs" && ok || bad "the example does not load the moved libsafesd: $(grep safesd <<<"$libs")"

# CMake package
expect_rc 0 "cmake configure (find_package)" cmake -S "$SRC/examples" -B "$T/ex_cmake" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release
expect_rc 0 "cmake build" cmake --build "$T/ex_cmake"
expect_rc 0 "run (CMake build)" "$T/ex_cmake/generate" "dagger, noto emoji" "$T/cm.png" 4
[ -s "$T/cm.png" ] && ok || bad "CMake example wrote no image: $ERR"
grep -q '"flagged":true' <<<"$OUT" && ok || bad "a flagged prompt is not flagged through the library: $OUT"
cmp -s "$T/pc.png" "$T/cm.png" && bad "different prompts gave the same image" || ok

# the installed program, moved: data and the bundled model relative to bin/
expect_rc 0 "moved program" "$P/bin/safesd" generate -q -p "cat face, noto emoji" --steps 4 -s 42 -o "$T/cli.png"
grep -q "$P/share/safesd/models/safesd-emoji\|^wrote" <<<"$OUT$ERR" && ok || bad "moved program output: $OUT $ERR"

# without the installed data: a clear error naming the moved prefix, never another copy
mv "$P/share/safesd" "$P/share/safesd.away"
expect_rc 1 "program without its data" "$P/bin/safesd" generate -q -p "cat face" --steps 2 -o "$T/no.png"
grep -q "$P/share/safesd" <<<"$ERR" && ok || bad "error does not name the moved prefix: $ERR"
expect_rc 1 "library without its data" "$T/ex_pc" "cat face" "$T/no2.png" 2
grep -q "share/safesd" <<<"$ERR" && ok || bad "library error does not name the install's data: $ERR"
[ ! -e "$T/no.png" ] && [ ! -e "$T/no2.png" ] && ok || bad "an image was written without the data"
mv "$P/share/safesd.away" "$P/share/safesd"

summary
