#!/usr/bin/env bash
# Interrupted runs leave nothing behind. Real signals (SIGINT, SIGTERM, SIGHUP, chosen at
# random) go to a real `safesd generate -b 16` run at a random moment of its write phase
# (after its first temporary file appears); afterwards the folder holds either nothing or the
# complete set of outputs (16 PNGs ending in IEND, the latents, the report), never a
# temporary file, and the exit status is 0 (done before the signal) or 128 + the signal.
# Then SIGKILL, which no handler sees: its temporary files stay until the next run writing
# into that folder removes those of dead processes (and only those).
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/interrupt"; rm -rf "$O"; mkdir -p "$O"
NB=16

start_run() { # start_run DIR: a generate run writing into DIR, its pid in $pid
  # (env --default-signal: a non-interactive shell starts background jobs with SIGINT ignored,
  # and safesd keeps ignoring what it was told to ignore, as under nohup)
  env --default-signal=INT,TERM,HUP $B generate -q -p "red apple, noto emoji" --steps 1 -b $NB -o "$1/b.png" --latents "$1/l.npy" \
    --safety-report "$1/r.json" >/dev/null 2>"$1.err" &
  pid=$!
}
wait_for_temp() { # wait_for_temp DIR: until a temporary file exists in DIR or the run ended
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 60 ] && kill -0 $pid 2>/dev/null; do
    compgen -G "$1/*.tmp.*" >/dev/null && return 0
  done
  return 1
}
check_set() { # check_set DIR: nothing, or every output complete; no temporary file
  "$PYTHON" - "$1" $NB <<'PY'
import json, os, sys
d, nb = sys.argv[1], int(sys.argv[2])
files = sorted(os.listdir(d))
want = sorted(["b.png"] + ["b_%d.png" % i for i in range(2, nb + 1)] + ["l.npy", "r.json"])
if not files:
    sys.exit(0)
if files != want:
    print("FAIL: %s holds %d files, neither none nor the %d outputs: %s" % (d, len(files), len(want), files[:6]))
    sys.exit(1)
for f in files:
    b = open(os.path.join(d, f), "rb").read()
    ok = (b[-12:-4] == b"\0\0\0\0IEND") if f.endswith(".png") else b.startswith(b"\x93NUMPY") if f.endswith(".npy") \
        else bool(json.loads(b))
    if not ok:
        print("FAIL: %s/%s is not complete" % (d, f))
        sys.exit(1)
PY
}

sigs=(INT TERM HUP)
caught=0 finished=0 t_start=$SECONDS maxd=200
for try in $(seq 1 20); do
  [ $((SECONDS - t_start)) -lt 60 ] || break # a bound on a slow machine
  D="$O/t$try"; mkdir -p "$D"
  sig=${sigs[RANDOM % 3]}
  start_run "$D"
  seen=0; wait_for_temp "$D" && seen=1
  # a random moment into the write phase: 0..maxd ms, where maxd halves after each run that
  # finished before its signal (how long the write phase lasts depends on the machine's load)
  sleep "0.$(printf '%03d' $((RANDOM % maxd)))"
  kill -$sig $pid 2>/dev/null || true
  set +e; wait $pid; rc=$?; set -e
  signo=$(kill -l $sig)
  if [ $rc = 0 ]; then finished=$((finished + 1)); [ $maxd -le 4 ] || maxd=$((maxd / 2))
  elif [ $rc = $((128 + signo)) ]; then [ $seen = 1 ] && caught=$((caught + 1))
  else bad "try $try: SIG$sig: exit $rc, expected 0 or $((128 + signo)) ($(cat "$D.err"))"; fi
  left=$(ls "$D" | grep '\.tmp\.' | head -3 || true)
  [ -z "$left" ] && ok || bad "try $try: SIG$sig at exit $rc left temporary files: $left"
  check_set "$D" && ok || bad "try $try: SIG$sig (exit $rc): an incomplete set of outputs"
  rm -rf "$D" "$D.err"
done
echo "interrupts: $caught runs killed during their write phase, $finished finished first"
[ $caught -ge 3 ] && ok || bad "only $caught tries hit the write phase: the test did not test it"

# SIGKILL: temporary files stay; the next run into the folder removes the dead writer's,
# and not those of a live process (by pid) or of a live lock holder (a writer in another pid
# namespace or on another host looks dead by pid; its lock says otherwise)
D="$O/kill"; mkdir -p "$D"
for attempt in 1 2 3 4 5; do
  start_run "$D"
  wait_for_temp "$D" || true
  kill -KILL $pid 2>/dev/null || true
  set +e; wait $pid; set -e
  compgen -G "$D/*.tmp.*" >/dev/null && break
  rm -f "$D"/*
done
stale=$(ls "$D" | grep -c '\.tmp\.' || true)
[ "$stale" -gt 0 ] && ok || bad "SIGKILL left no temporary file in 5 tries: the sweep is not tested"
sleep 30 & live=$!
touch "$D/x.png.tmp.$live.AbC123"                 # a live process's
dead=$(sh -c 'echo $$')                            # a pid that has exited
touch "$D/y.png.tmp.$dead.AbC123" "$D/z.png.tmp.$dead.XyZ789"
exec 8>"$D/z.png.tmp.$dead.XyZ789"; flock -x 8     # dead by pid, but locked by this shell
touch "$D/notes.tmp.txt" "$D/w.png.tmp.AbC123"     # not our names (no pid): never touched
expect_rc 0 "a run into the folder" $B generate -q -p "red apple, noto emoji" --steps 1 -o "$D/next.png"
left=$(ls "$D" | grep '\.tmp\.' | sort | tr '\n' ' ')
want=$(printf '%s\n' "notes.tmp.txt" "w.png.tmp.AbC123" "x.png.tmp.$live.AbC123" "z.png.tmp.$dead.XyZ789" | sort | tr '\n' ' ')
[ "$left" = "$want" ] && ok || bad "after the sweep: '$left', expected '$want'"
exec 8>&-
kill $live 2>/dev/null || true
rm -rf "$O"
summary
