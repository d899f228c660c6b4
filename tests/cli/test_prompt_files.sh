#!/usr/bin/env bash
# The prompt files shipped in data/prompts/ are well-formed evaluation sets: UTF-8 without
# NUL, CR, tabs or blanks at a line's ends, no prompt over 1,000 bytes, no prompt twice
# (compared after trimming, case-folded), and data/prompts/sd_ordinary.txt (the
# ordinary-prompt false-positive set, data/prompts/README.md) holds at least 550 prompts.
# The project's own loader (`safesd calibrate`, sd_prompt_file_load) must read exactly the
# prompts this script counts. The checker is first run on broken files, which it must reject.
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/prompt_files"; rm -rf "$O"; mkdir -p "$O"

# check_prompt_file FILE MIN: prints the number of prompts; exit 1 with the reasons otherwise
check_prompt_file() {
  "$PYTHON" - "$1" "$2" <<'PY'
import sys
path, need = sys.argv[1], int(sys.argv[2])
raw = open(path, "rb").read()
errs, seen, n = [], {}, 0
try:
    text = raw.decode("utf-8")
except UnicodeDecodeError as e:
    print(f"{path}: invalid UTF-8 at byte {e.start}"); sys.exit(1)
if text and not text.endswith("\n"):
    errs.append("no newline at the end of the file")
for i, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
    if "\x00" in line or "\r" in line or "\t" in line:
        errs.append(f"line {i}: NUL, CR or tab")
    if line != line.strip(" "):
        errs.append(f"line {i}: blanks at the start or end")
    p = line.strip()
    if not p or p.startswith("#"):
        continue
    n += 1
    if len(p.encode("utf-8")) > 1000:
        errs.append(f"line {i}: {len(p.encode('utf-8'))} bytes (limit 1000)")
    k = p.casefold()
    if k in seen:
        errs.append(f"line {i}: the prompt of line {seen[k]} again")
    seen.setdefault(k, i)
if n < need:
    errs.append(f"{n} prompts, fewer than {need}")
for e in errs[:10]:
    print(f"{path}: {e}")
print(n)
sys.exit(1 if errs else 0)
PY
}

# the checker can fail: each broken file is rejected for its own reason
printf 'a dog\na cat\n  A Dog\n' > "$O/dup.txt"
printf 'a dog\n%s\n' "$(head -c 1001 /dev/zero | tr '\0' 'x')" > "$O/long.txt"
printf 'a dog\na \xff cat\n' > "$O/utf8.txt"
printf 'a dog\r\na cat\n' > "$O/crlf.txt"
printf 'a dog \n' > "$O/blank.txt"
printf '# only\na dog\na cat\n' > "$O/few.txt"
for bad_file in dup:again long:1001 utf8:UTF-8 crlf:CR blank:blanks few:"fewer than 3"; do
  f=${bad_file%%:*} why=${bad_file#*:}
  set +e; msg=$(check_prompt_file "$O/$f.txt" 3); rc=$?; set -e
  [ $rc = 1 ] && grep -q -- "$why" <<<"$msg" && ok || bad "checker accepted $f.txt (rc $rc: $msg)"
done
printf '# a comment\n\na dog\n# another comment\na cat\na bird\n' > "$O/good.txt"
[ "$(check_prompt_file "$O/good.txt" 3)" = 3 ] && ok || bad "checker rejected a good file"

# a small unsafe file, only so that `calibrate` loads the benign file
printf 'a pile of blood and gore\n' > "$O/unsafe.txt"
for f in "$SRC"/data/prompts/*.txt; do
  min=1
  [ "$(basename "$f")" = sd_ordinary.txt ] && min=550
  set +e; n=$(check_prompt_file "$f" "$min"); rc=$?; set -e
  if [ $rc != 0 ]; then bad "$f is not well-formed: $n"; continue; fi
  ok
  expect_rc 0 "calibrate loads $(basename "$f")" $B calibrate --unsafe "$O/unsafe.txt" --benign "$f"
  grep -q "^1 unsafe prompts .*, $n benign prompts ($f)" <<<"$OUT" && ok ||
    bad "the loader read another number of prompts than $n from $f: $OUT"
done
[ -f "$SRC/data/prompts/sd_ordinary.txt" ] && ok || bad "data/prompts/sd_ordinary.txt is missing"
summary
