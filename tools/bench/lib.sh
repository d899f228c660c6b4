# Shared by the benchmark scripts (sourced). The caller defines run_c and run_torch ROUND,
# each printing one key=value line with median_s=; bench_rounds runs them alternately
# (C first) ROUNDS times and prints every line and the ratio of the medians.
py=${SAFESD_PYTHON:-/usr/bin/python3}

machine_line() { # machine_line EXTRA: the '# machine: ...' header (CPU, family/model, vector ISA)
  local isa=avx2
  grep -qw avx512f /proc/cpuinfo && isa=avx512
  grep -qw avx512_bf16 /proc/cpuinfo && isa="$isa+bf16"
  echo "# machine: $(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p')," \
    "model $(lscpu | sed -n 's/^Model: *//p'), $isa), $(nproc) CPUs; $1; $(date -u +%F)"
}

bench_rounds() {
  local rounds=$1 r line c=() t=()
  for r in $(seq "$rounds"); do
    line=$(run_c); echo "$line"
    c+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
    line=$(run_torch "$r"); echo "$line"
    t+=("$(sed -n 's/.*median_s=\([0-9.]*\).*/\1/p' <<<"$line")")
  done
  "$py" - "${c[*]}" "${t[*]}" <<'PY'
import sys, statistics as st
c = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
mc, mt = st.median(c), st.median(t)
print(f"safesd median {mc:.4g} s, pytorch median {mt:.4g} s, safesd/pytorch time ratio {mc/mt:.2f} "
      f"(< 1 means safesd is faster)")
PY
}
