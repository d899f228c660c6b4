#!/usr/bin/env bash
# `safesd generate --image-check` on the bundled model: verdicts in the PNG metadata and the
# report; --image-check-action flag keeps the pixels, blur replaces exactly the unsafe images
# by a strong blur (gradient energy down to a fraction), block writes none of them and exits 3;
# without --image-check the bytes are unchanged; bad lists and actions are errors before work.
source "$(dirname "$0")/../conformance/lib.sh"
B=$SAFESD_BIN
O="$TMP/image_check"; rm -rf "$O"; mkdir -p "$O"
TMP="$O"
G=(-p "dagger, noto emoji" --safety off --steps 20 -s 6 -b 8 --image-check clip-zeroshot)
expect_rc 0 "flag" $B generate -q "${G[@]}" -o "$O/f.png" --safety-report "$O/f.json"
expect_rc 0 "blur" $B generate -q "${G[@]}" --image-check-action blur -o "$O/b.png" --safety-report "$O/b.json"
expect_rc 0 "no check" $B generate -q -p "dagger, noto emoji" --safety off --steps 20 -s 6 -b 8 -o "$O/n.png"
"$PYTHON" - "$O" <<'PY' && ok || bad "flag/blur verdicts and pixels"
import json, sys
import numpy as np
from PIL import Image
o = sys.argv[1]
f, b = json.load(open(o + "/f.json")), json.load(open(o + "/b.json"))
flags = f["nsfw_content_detected"]
assert flags == b["nsfw_content_detected"] and len(flags) == 8, (flags, b["nsfw_content_detected"])
assert any(flags), "no image of 8 judged unsafe: the test needs one (the judge or the model changed?)"
assert not all(flags), "every image judged unsafe"
def name(stem, i): return "%s/%s%s.png" % (o, stem, "" if i == 0 else "_%d" % (i + 1))
def energy(a): return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())
for i, u in enumerate(flags):
    imf, imb, imn = (Image.open(name(s, i)) for s in "fbn")
    pf, pb, pn = (np.asarray(im.convert("RGB")).astype(np.float64) for im in (imf, imb, imn))
    assert (pf == pn).all(), "flag changed pixels of image %d" % i
    v = f["image_check"]["images"][i]
    assert v["nsfw"] == u and v["action"] == ("flagged" if u else "none"), v
    txt = imf.info["parameters"]
    assert ('Image check: "unsafe by clip-zeroshot, flagged"' in txt) if u else ("Image check: passed" in txt), txt
    assert "Image check" not in imn.info["parameters"], "metadata without --image-check"
    if u:
        assert energy(pb) < 0.35 * energy(pf), "image %d: blur too weak (%.2f vs %.2f)" % (i, energy(pb), energy(pf))
        assert "blurred" in imb.info["parameters"] and b["image_check"]["images"][i]["action"] == "blurred"
    else:
        assert (pb == pf).all(), "blur changed a safe image %d" % i
print("image check: %d of 8 unsafe; flag keeps pixels, blur only the unsafe ones" % sum(flags))
PY
expect_rc 3 "block" $B generate -q "${G[@]}" --image-check-action block -o "$O/k.png" --safety-report "$O/k.json"
grep -q "blocked by the image check" <<<"$ERR" && ok || bad "block message: $ERR"
"$PYTHON" - "$O" <<'PY' && ok || bad "blocked images written"
import json, os, sys
o = sys.argv[1]
flags = json.load(open(o + "/k.json"))["nsfw_content_detected"]
for i, u in enumerate(flags):
    p = "%s/k%s.png" % (o, "" if i == 0 else "_%d" % (i + 1))
    assert os.path.exists(p) != bool(u), (i, u, p)
PY
expect_rc 1 "unknown classifier" $B generate -q -p x --steps 2 --image-check bogus -o "$O/e1.png"
one_line_error "unknown image check 'bogus'" "unknown classifier"
expect_rc 1 "nsfwjs without a folder" $B generate -q -p x --steps 2 --image-check nsfwjs -o "$O/e2.png"
one_line_error "nsfwjs:DIR" "nsfwjs without a folder"
expect_rc 1 "missing safety checker" $B generate -q -p x --steps 2 --image-check safety-checker -o "$O/e3.png"
one_line_error "safety_checker" "missing safety checker"
expect_rc 2 "bad action" $B generate -q -p x --steps 2 --image-check clip-zeroshot --image-check-action hide -o "$O/e4.png"
[ ! -e "$O/e1.png" ] && [ ! -e "$O/e2.png" ] && [ ! -e "$O/e3.png" ] && ok || bad "an image was written despite the error"
summary
