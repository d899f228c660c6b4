#!/usr/bin/env bash
# Generation time and peak memory of the bundled model in the C engine: one 64x64 image,
# 20 steps (the model's sampler, DDIM; CFG 7.5), text to PNG, the whole process (model
# loading included), median of N runs, for 1 and 2 threads; and the same with a flagged
# prompt at --safety medium (the dual path).
#   tools/bench/bundled.sh [BUILD_DIR] [RUNS]
set -euo pipefail
B=${1:-build}/safesd
N=${2:-5}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # label threads prompt safety
  local times=() rss=0
  for i in $(seq "$N"); do
    /usr/bin/time -f "%e %M" -o "$T/t" "$B" generate -q -p "$3" --steps 20 -s "$i" -t "$2" --safety "$4" -o "$T/x.png" >/dev/null
    read -r s kb < "$T/t"
    times+=("$s"); [ "$kb" -gt "$rss" ] && rss=$kb
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  printf '| %s | %s | %s s | %d MiB |\n' "$1" "$2" "$med" $((rss / 1024))
}
echo "| image | threads | median wall time (process, load included) | peak RSS |"
echo "|---|---|---|---|"
for t in 1 2; do
  run "benign prompt" "$t" "red apple, noto emoji" medium
  run "flagged prompt, dual path" "$t" "dagger, twemoji emoji" medium
done
