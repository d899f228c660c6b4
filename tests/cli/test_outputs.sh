#!/usr/bin/env bash
# What -o (and --latents, --safety-report) does with each kind of path: a regular file is
# replaced atomically (keeping its mode), a symbolic link's regular target too (the link
# stays), a FIFO and a character device are written through (never replaced), standard
# output through its /proc link gets the PNG and no 'wrote' line, a directory or a dangling
# link is an error before any work; and the outputs of a run appear together or not at all
# (a latents file that cannot be written leaves no PNG behind).
# (Every path is made in the test's own folder: /dev/stdout is reached through a link of
# our own, and the character device is a node of our own, so that an older binary that
# replaced its target could not damage /dev.)
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/outputs"; rm -rf "$O"; mkdir -p "$O"
gen() { $B generate -q -p "red apple, noto emoji" --steps 2 -s 5 "$@"; }
no_temps() { [ -z "$(ls -A "$O" | grep '\.tmp\.')" ] && ok || bad "$1: temporary files left: $(ls "$O")"; }

expect_rc 0 "reference image" gen -o "$O/ref.png"

# a regular file: replaced, its mode kept
echo old >"$O/r.png"; chmod 640 "$O/r.png"
expect_rc 0 "regular file" gen -o "$O/r.png"
cmp -s "$O/r.png" "$O/ref.png" && ok || bad "regular file: not the image"
[ "$(stat -c %a "$O/r.png")" = 640 ] && ok || bad "regular file: mode $(stat -c %a "$O/r.png"), expected 640 kept"

# a symbolic link to a regular file: the target is replaced, the link stays a link
echo old >"$O/target.png"; ln -s target.png "$O/link.png"
expect_rc 0 "symbolic link" gen -o "$O/link.png"
[ -L "$O/link.png" ] && ok || bad "symbolic link replaced by a file"
cmp -s "$O/target.png" "$O/ref.png" && ok || bad "symbolic link: the target is not the image"
# a dangling link: an error, before any work, nothing created
ln -s missing.png "$O/dangling.png"
expect_rc 1 "dangling link" gen -o "$O/dangling.png"
one_line_error "dangling.png" "dangling link"
[ -L "$O/dangling.png" ] && [ ! -e "$O/missing.png" ] && ok || bad "dangling link: something was created"

# a FIFO, read by a background cat: written through, still a FIFO
mkfifo "$O/fifo"
timeout 60 cat "$O/fifo" >"$O/from_fifo.png" &
cat_pid=$!
expect_rc 0 "FIFO" timeout 60 $B generate -q -p "red apple, noto emoji" --steps 2 -s 5 -o "$O/fifo"
wait $cat_pid || true
[ -p "$O/fifo" ] && ok || bad "the FIFO was replaced"
cmp -s "$O/from_fifo.png" "$O/ref.png" && ok || bad "the FIFO's reader did not get the image"
expect_rc 2 "-b 2 with a FIFO" gen -b 2 -o "$O/fifo"
grep -q "regular file" <<<"$ERR" && ok || bad "-b 2 with a FIFO: $ERR"

# standard output (a pipe) through a /proc link: the PNG on the pipe, 'wrote' on stderr
ln -s /proc/self/fd/1 "$O/stdout"
set +e; gen -o "$O/stdout" 2>"$O/stdout.err" | cat >"$O/piped.png"; rc=${PIPESTATUS[0]}; set -e
[ "$rc" = 0 ] && ok || bad "stdout: exit $rc ($(cat "$O/stdout.err"))"
[ -L "$O/stdout" ] && ok || bad "the stdout link was replaced"
cmp -s "$O/piped.png" "$O/ref.png" && ok || bad "stdout: the pipe did not get exactly the image"
grep -q "wrote" "$O/stdout.err" && ok || bad "stdout: no 'wrote' line on stderr"

# '-' is standard output (-o, --latents, --safety-report), never a file named '-'
set +e; (cd "$O" && gen -o dash.png --safety-report - 2>"$O/dash.err" | cat >"$O/dash.json"); rc=$?; set -e
[ "$rc" = 0 ] && ok || bad "--safety-report -: exit $rc ($(cat "$O/dash.err"))"
[ ! -e "$O/-" ] && ok || bad "--safety-report - wrote a file named '-'"
"$PYTHON" -c 'import json,sys; assert json.load(open(sys.argv[1]))["altered"] is False' "$O/dash.json" && ok \
  || bad "--safety-report -: standard output is not the report: $(head -c 200 "$O/dash.json")"
set +e; (cd "$O" && gen -o - 2>/dev/null | cat >"$O/dash.png"); set -e
cmp -s "$O/dash.png" "$O/ref.png" && ok || bad "-o -: standard output did not get exactly the image"
expect_rc 2 "-o - with --safety-report -" gen -o - --safety-report -
grep -q "same file" <<<"$ERR" && ok || bad "-o - with --safety-report -: $ERR"

# a character device (a /dev/null node of our own; needs root)
if mknod "$O/null" c 1 3 2>/dev/null; then
  expect_rc 0 "character device" gen -o "$O/null"
  [ -c "$O/null" ] && ok || bad "the character device was replaced"
else
  echo "note: not root: the character-device case is skipped"
fi

# a directory: an error before any work, the folder untouched
mkdir -p "$O/dir"
expect_rc 1 "directory" gen -o "$O/dir"
one_line_error "directory" "a directory as output"
[ -z "$(ls -A "$O/dir")" ] && ok || bad "files written into the directory"
expect_rc 1 "--latents into a directory" gen -o "$O/x.png" --latents "$O/dir"
[ ! -e "$O/x.png" ] && ok || bad "an image written although --latents is a directory"
expect_rc 2 "two outputs, one file" gen -o "$O/same.png" --safety-report "$O/same.png"
grep -q "same file" <<<"$ERR" && ok || bad "two outputs, one file: $ERR"
no_temps "after the error cases"

# all or nothing: the latents (32 KB for -b 8) are over a 16 KiB file-size limit, the PNGs
# (under 8 KB each) are under it: a failed run leaves no PNG
S="$O/set"; mkdir -p "$S"
expect_rc 1 "latents fail to write" bash -c "trap '' XFSZ; ulimit -f 16; exec \"\$0\" \"\$@\"" $B generate -q \
  -p "red apple, noto emoji" --steps 2 -b 8 -o "$S/a.png" --latents "$S/a.npy" --safety-report "$S/r.json"
one_line_error "a.npy" "latents write failure"
[ -z "$(ls -A "$S")" ] && ok || bad "a failed run left: $(ls "$S")"
expect_rc 0 "the same run without the limit" gen -b 8 -o "$S/a.png" --latents "$S/a.npy" --safety-report "$S/r.json"
[ "$(ls "$S" | wc -l)" = 10 ] && ok || bad "not all outputs: $(ls "$S")"
rm -rf "$O"
summary
