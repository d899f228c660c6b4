#!/usr/bin/env bash
# The safesd program sets a short OpenMP spin before its first parallel region
# (safesd_process_init: GOMP_SPINCOUNT, by one re-execution, since libgomp reads it when it
# is loaded), and leaves a user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT alone. Read from
# /proc/PID/environ of a running `safesd generate` on the bundled model.
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/omp_setup"; rm -rf "$O"; mkdir -p "$O"
[ -r /proc/self/environ ] || { echo "SKIP: no /proc"; exit 77; }
unset OMP_WAIT_POLICY GOMP_SPINCOUNT SAFESD_THREADS_SETUP
env_of_run() { # env_of_run: the environment of a running generate, one variable a line
  "$@" "$B" generate -q -p "red apple, noto emoji" --steps 200 -s 1 -o "$O/a.png" 2>/dev/null &
  local pid=$! e=
  for _ in $(seq 200); do
    e=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -E '^(GOMP_SPINCOUNT|OMP_WAIT_POLICY|SAFESD_THREADS_SETUP)=' || true)
    [ -n "$e" ] && break
    sleep 0.05
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "$e"
}
e=$(env_of_run env)
grep -qx "GOMP_SPINCOUNT=2000" <<<"$e" && ok || bad "safesd did not set GOMP_SPINCOUNT=2000: '$e'"
e=$(env_of_run env GOMP_SPINCOUNT=77)
grep -qx "GOMP_SPINCOUNT=77" <<<"$e" && ! grep -q SAFESD_THREADS_SETUP <<<"$e" && ok || bad "a user's GOMP_SPINCOUNT was changed: '$e'"
e=$(env_of_run env OMP_WAIT_POLICY=passive)
grep -qx "OMP_WAIT_POLICY=passive" <<<"$e" && ! grep -q GOMP_SPINCOUNT <<<"$e" && ok || bad "a user's OMP_WAIT_POLICY got a spin count: '$e'"
summary
