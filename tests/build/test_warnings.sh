#!/usr/bin/env bash
# `-Wall -Wextra` clean beyond the configured build (GCC -O3): every library and CLI source is
# compiled again (objects thrown away), with the flags of compile_commands.json, by GCC at -O1
# (-Wformat-truncation shows there), GCC at -O2 with ASan + UBSan (the SAFESD_SANITIZE build:
# its instrumentation exposes -Warray-bounds and -Wstringop-overread) and clang at -O2 when
# clang is installed, with -fsyntax-only: clang's -Wall -Wextra warnings come from its front
# end, so it stops there (half the time of a full compile; the full one is in "all" below).
# Any warning fails the test. SAFESD_WARN_CONFIGS=all adds GCC -O2, -O3,
# clang -O3 and clang -O1 without OpenMP (the fuzz build's library: tests/fuzz/CMakeLists.txt)
# (about 3 CPU-minutes in all); or a list such as "gcc:-O2 clang:-O3".
source "$(dirname "$0")/../conformance/lib.sh"
CC_JSON="$BUILD/compile_commands.json"
[ -f "$CC_JSON" ] || { echo "FAIL: $CC_JSON is missing (CMAKE_EXPORT_COMPILE_COMMANDS)"; exit 1; }
configs=${SAFESD_WARN_CONFIGS:-"gcc:-O1 gcc:-O2_-fsanitize=address,undefined clang:-O2_-fsyntax-only"}
[ "$configs" = all ] && configs="gcc:-O1 gcc:-O2 gcc:-O3 gcc:-O2_-fsanitize=address,undefined clang:-O2 clang:-O3 clang:-O1_-fno-openmp"
W="$TMP/warnings"; rm -rf "$W"; mkdir -p "$W"
# one shell command per (config, source): the recorded command with the compiler, the
# optimisation level and the output replaced
"$PYTHON" - "$CC_JSON" "$SRC" "$W" $configs <<'PY'
import json, os, shlex, shutil, sys
cc_json, src, out, configs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
entries = [e for e in json.load(open(cc_json))
           if os.path.relpath(e["file"], src).split(os.sep)[0] in ("src", "cli")]
with open(os.path.join(out, "jobs.sh"), "w") as jobs, open(os.path.join(out, "configs"), "w") as names:
    for cfg in configs:
        comp, flags = cfg.split(":", 1)
        if not shutil.which(comp):
            print(f"note: {comp} is not installed: config {cfg} skipped")
            continue
        names.write(cfg + "\n")
        extra = flags.replace("_", " ").split()
        for e in entries:
            args = shlex.split(e["command"]) if "command" in e else list(e["arguments"])
            keep, skip = [], False
            for a in args[1:]:
                if skip: skip = False; continue
                if a == "-o": skip = True; continue
                if a.startswith("-O") or a.startswith("-fsanitize") or a == "-c": continue
                keep.append(a)
            cmd = [comp] + keep + extra + ["-c", "-o", "/dev/null"]
            log = os.path.join(out, cfg.replace("/", "_") + "__" + os.path.basename(e["file"]) + ".log")
            jobs.write("cd %s && %s > %s 2>&1\n" % (shlex.quote(e["directory"]), shlex.join(cmd), shlex.quote(log)))
PY
n=$(wc -l <"$W/jobs.sh")
echo "compiling $n sources x configs: $(tr '\n' ' ' <"$W/configs")"
tr '\n' '\0' <"$W/jobs.sh" | xargs -0 -P "$(nproc)" -I{} bash -c '{}' || true
fails=0
for log in "$W"/*.log; do
  if grep -qE "warning:|error:" "$log"; then
    echo "FAIL: $(basename "$log" .log):"; grep -E -A3 "warning:|error:" "$log" | head -20
    fails=$((fails + 1))
  fi
done
echo "$n compilations, $fails with warnings or errors"
[ $fails = 0 ]
