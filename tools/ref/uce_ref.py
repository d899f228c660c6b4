#!/usr/bin/env python3
"""PyTorch reference of the UCE closed-form edit (`safesd edit uce`, src/edit/uce.h) and the
checks of tests/conformance/test_uce.sh.

    uce_ref.py make OUT_DIR --safesd BIN [--family sd1|sd2] [--seed N]
        OUT_DIR/model/         a small random diffusers model (tools/ref/pipeline_case.py's
                               build(); for sd2 the UNet is stored as float16)
        OUT_DIR/cases.json     the edit cases: name, safesd arguments, what to check
        OUT_DIR/<case>/ref.npz the edited projections (internal names -> float64 arrays)
    uce_ref.py check OUT_DIR CASE EDITED_FOLDER
        compares the folder `safesd edit uce` wrote with the reference and checks the
        invariants (below); exit 1 on any failure
    uce_ref.py same-tensors A.safetensors B.safetensors
        the two files hold the same tensors, bit for bit (the metadata may differ)

The reference, in float64 from the stored weights (widened) and the text-encoder states of
tools/ref/sdref.py (float32, as the engine): for each attn2.to_v (and attn2.to_k with keys)
    W' = [lam W + se sum_i (W c*_i) c_i^T + sp sum_j (W c_j) c_j^T] [lam I + se sum_i c_i c_i^T + sp sum_j c_j c_j^T]^-1
with torch.linalg.solve on the transposed system. Token states (framed prompt, len = BOS..EOS):
  last: one state per text at index len-2 (the last token; BOS for the empty text);
  tail: erase/guide pairs from each one's index len-2 to the end of the 77-token context,
        aligned from there and cut to 77 - max(le-2, lg-2) pairs; all 77 states of a
        preserve text.
Token ids come from `safesd tokenize` (the tokenizer is checked against Hugging Face's
separately).

Checks (`check`):
  - every edited projection within 1e-4 of the reference, relative to the largest reference
    value (plus half a float16 step where the UNet is float16);
  - every other UNet tensor bit-identical, the file's metadata kept, and every other file of
    the folder byte-identical; uce_edit.json present and naming the edited layers;
  - directions orthogonal to all concept states pass unchanged: W' u = W u (exact for any
    lam, from the closed form) within 1e-4 relative;
  - for cases marked "interpolates" (lam = 1e-5, se = sp = 1, fewer independent states than
    the width): W' c_i = W c*_i and W' c_j = W c_j within 1e-3 relative (the edit meets its
    targets as lam -> 0).
"""
import argparse
import filecmp
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_case  # noqa: E402
import sdref  # noqa: E402
import sdref_sched  # noqa: E402
import sdref_unet  # noqa: E402
import sdref_vae  # noqa: E402

CTX = 77

CASES = [
    {"name": "default", "erase": ["nudity", "blood"], "guide": [], "preserve": ["a red apple", "kitchen knife"],
     "lambda": 0.1, "erase_scale": 1.0, "preserve_scale": 0.1, "keys": False, "tokens": "last"},
    {"name": "keys_tail", "erase": ["violence", "gore and horror"], "guide": ["peace", "a painting"],
     "preserve": ["tomato sauce", ""], "lambda": 0.5, "erase_scale": 0.8, "preserve_scale": 0.3, "keys": True,
     "tokens": "tail"},
    {"name": "interp", "erase": ["nudity", "weapon"], "guide": ["a tree"], "preserve": ["a cat", "a dog", "water gun"],
     "lambda": 1e-5, "erase_scale": 1.0, "preserve_scale": 1.0, "keys": True, "tokens": "last",
     "interpolates": True},
]


def safesd_args(case):
    a = []
    for e in case["erase"]:
        a += ["--erase", e]
    for g in case["guide"]:
        a += ["--guide", g]
    for p in case["preserve"]:
        a += ["--preserve", p]
    a += ["--lambda", repr(case["lambda"]), "--erase-scale", repr(case["erase_scale"]),
          "--preserve-scale", repr(case["preserve_scale"]), "--tokens", case["tokens"]]
    if case["keys"]:
        a.append("--edit-keys")
    return a


def tokenize(safesd, model, texts):
    out = subprocess.run([safesd, "tokenize", "--json", "-m", model] + list(texts), check=True,
                         capture_output=True, text=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == len(texts)
    return [r["ids"] for r in rows], [r["length"] for r in rows]


def concept_states(text_model, ids_of, case):
    """(C_e, C_g, C_p) as float64 arrays [n, d] under the case's token mode."""
    erase, preserve = case["erase"], case["preserve"]
    guides = case["guide"] or [""]
    if len(guides) == 1:
        guides = guides * len(erase)

    def enc(t):
        ids, n = ids_of[t]
        with torch.no_grad():
            s = text_model.encode(torch.tensor([ids]))[0].double().numpy()
        return s, n

    ce, cg, cp = [], [], []
    for e, g in zip(erase, guides):
        se_, le = enc(e)
        sg, lg = enc(g)
        fe, fg = le - 2, lg - 2
        k = 1 if case["tokens"] == "last" else CTX - max(fe, fg)
        ce.append(se_[fe:fe + k])
        cg.append(sg[fg:fg + k])
    for p in preserve:
        sp_, lp = enc(p)
        cp.append(sp_[lp - 2:lp - 1] if case["tokens"] == "last" else sp_)
    d = ce[0].shape[1]
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0, d))  # noqa: E731
    return cat(ce), cat(cg), cat(cp)


def uce_edit(W, ce, cg, cp, lam, se, sp):
    W = torch.from_numpy(W).double()
    Ce, Cg, Cp = (torch.from_numpy(x).double() for x in (ce, cg, cp))
    d = W.shape[1]
    A = lam * torch.eye(d, dtype=torch.float64) + se * Ce.T @ Ce + sp * Cp.T @ Cp
    B = lam * W + se * (W @ Cg.T) @ Ce + sp * (W @ Cp.T) @ Cp
    return torch.linalg.solve(A, B.T).T.numpy()  # W' A = B  <=>  A W'^T = B^T


def edited_names(unet_sd, keys):
    return sorted(n for n in unet_sd if n.endswith(".attn2.to_v.weight") or (keys and n.endswith(".attn2.to_k.weight")))


def write_model(root, family, seed):
    text, unet, vae, pred = pipeline_case.build(family, seed)
    sdref.write_text_encoder_folder(root, text)
    # sd2: the UNet stored as float16, so that the edit is checked to keep the stored dtype
    sdref_unet.write_unet_folder(root, unet, torch.float16 if family == "sd2" else torch.float32)
    sdref_vae.write_vae_folder(root, vae)
    os.makedirs(os.path.join(root, "scheduler"), exist_ok=True)
    sched = dict(sdref_sched.SD15)
    sched.update({"_class_name": "PNDMScheduler", "_diffusers_version": "0.25.1", "prediction_type": pred})
    sdref.write_json(os.path.join(root, "scheduler", "scheduler_config.json"), sched)
    sdref.write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "text_encoder": ["transformers", "CLIPTextModel"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "PNDMScheduler"]})
    return text


def load_text(model):
    cfg = json.load(open(os.path.join(model, "text_encoder", "config.json")))
    keys = sdref.CLIPTextConfig().__dict__.keys()
    text = sdref.CLIPTextModel(sdref.CLIPTextConfig(**{k: v for k, v in cfg.items() if k in keys})).eval()
    sdref.load_weights_as_f32(text, sdref.load_safetensors(os.path.join(model, "text_encoder", "model.safetensors")))
    return text


def all_texts(case):
    return sorted(set(case["erase"]) | set(case["guide"] or [""]) | set(case["preserve"]))


def cmd_make(a):
    torch.set_num_threads(1)
    model = os.path.join(a.out, "model")
    text = write_model(model, a.family, a.seed)
    unet_sd = sdref.load_safetensors(os.path.join(model, "unet", "diffusion_pytorch_model.safetensors"))
    cases = []
    for case in CASES:
        texts = all_texts(case)
        ids, lens = tokenize(a.safesd, model, texts)
        ids_of = {t: (i, n) for t, i, n in zip(texts, ids, lens)}
        ce, cg, cp = concept_states(text, ids_of, case)
        ref = {}
        for name in edited_names(unet_sd, case["keys"]):
            W = unet_sd[name].double().numpy()
            ref[name] = uce_edit(W, ce, cg, cp, case["lambda"], case["erase_scale"], case["preserve_scale"])
        d = os.path.join(a.out, case["name"])
        os.makedirs(d, exist_ok=True)
        np.savez(os.path.join(d, "ref.npz"), **ref)
        with open(os.path.join(d, "tokens.json"), "w") as f:
            json.dump(ids_of, f)
        cases.append(dict(case, args=safesd_args(case)))
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"wrote {a.out}: {a.family}, {len(cases)} cases")


def raw_tensors(path):
    """name -> (dtype, shape, raw bytes); and the metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    return {k: (e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]]) for k, e in header.items()}, meta


def f16_half_step(x):
    """Half the float16 spacing at |x| (what rounding to float16 may add)."""
    ax = np.maximum(np.abs(x), 2.0 ** -14)
    return 0.5 * 2.0 ** (np.floor(np.log2(ax)) - 10)


def cmd_check(a):
    torch.set_num_threads(1)
    case = next(c for c in json.load(open(os.path.join(a.out, "cases.json"))) if c["name"] == a.case)
    model = os.path.join(a.out, "model")
    fails = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            fails.append(what)

    ufile = os.path.join("unet", "diffusion_pytorch_model.safetensors")
    src, src_meta = raw_tensors(os.path.join(model, ufile))
    got, got_meta = raw_tensors(os.path.join(a.edited, ufile))
    ref = dict(np.load(os.path.join(a.out, case["name"], "ref.npz")))
    check(sorted(src) == sorted(got), "the UNet file holds the same tensor names")
    check(got_meta == src_meta, f"the UNet file's metadata is kept ({got_meta})")
    edited = set(ref)
    same = all(got[n] == src[n] for n in src if n not in edited and n in got)
    check(same, f"{len(src) - len(edited)} unedited UNet tensors bit-identical")
    unet_sd = sdref.load_safetensors(os.path.join(a.edited, ufile))
    src_sd = sdref.load_safetensors(os.path.join(model, ufile))
    worst, bad = 0.0, []
    for n in sorted(edited):
        g = unet_sd[n].double().numpy()
        r = ref[n]
        ok_dtype = got[n][0] == src[n][0] and got[n][1] == src[n][1]
        # float16: what rounding the result to float16 may add is allowed on top
        err = np.abs(g - r) - (f16_half_step(r) if src[n][0] == "F16" else 0.0)
        rel = max(0.0, float(err.max() / np.abs(r).max()))
        worst = max(worst, rel)
        if not (ok_dtype and rel <= 1e-4):
            bad.append(f"{n}: dtype {got[n][0]} (source {src[n][0]}), max error {rel:.3g} relative")
    dt = src[sorted(edited)[0]][0]
    how = " beyond float16 rounding" if dt == "F16" else ""
    check(not bad, f"{len(edited)} edited projections ({dt}) match the float64 reference: worst error{how} {worst:.3g} "
                   f"relative to the largest value{'; ' + '; '.join(bad) if bad else ''}")
    # every other file byte-identical
    def files(root):
        out = set()
        for dp, _, fs in os.walk(root):
            for f in fs:
                out.add(os.path.relpath(os.path.join(dp, f), root))
        return out
    fs, fe = files(model), files(a.edited)
    check(fe == fs | {"uce_edit.json"}, f"the folder holds the source's files plus uce_edit.json ({sorted(fe ^ fs)})")
    others = sorted(f for f in fs & fe if f != ufile)
    check(all(filecmp.cmp(os.path.join(model, f), os.path.join(a.edited, f), shallow=False) for f in others),
          f"{len(others)} other files byte-identical")
    rec = json.load(open(os.path.join(a.edited, "uce_edit.json")))
    check(sorted(rec["layers"]) == sorted(edited) and rec["erase"] == case["erase"] and rec["tokens"] == case["tokens"],
          "uce_edit.json records the edit")
    # invariants, from the engine's own output
    text = load_text(model)
    ids_of = {k: tuple(v) for k, v in json.load(open(os.path.join(a.out, case["name"], "tokens.json"))).items()}
    ce, cg, cp = concept_states(text, ids_of, case)
    allc = np.concatenate([ce, cp])
    q, _ = np.linalg.qr(allc.T)  # orthonormal basis of the span of the concept states
    rng = np.random.default_rng(0)
    worst_orth = 0.0
    d = ce.shape[1]
    if q.shape[1] < d:
        u = rng.standard_normal((d, 4))
        u -= q @ (q.T @ u)
        for n in sorted(edited):
            W, Wn = src_sd[n].double().numpy(), unet_sd[n].double().numpy()
            e = np.abs(Wn @ u - W @ u)
            if src[n][0] == "F16":  # less what rounding W' to float16 may account for
                e = e - f16_half_step(Wn) @ np.abs(u)
            worst_orth = max(worst_orth, float(e.max() / np.abs(W @ u).max()))
        how = " beyond float16 rounding" if src[sorted(edited)[0]][0] == "F16" else ""
        check(worst_orth <= 1e-4, f"W' u = W u for u orthogonal to the concept states (worst error{how} "
                                  f"{worst_orth:.3g} relative)")
    else:
        print(f"skip W' u = W u: the {len(allc)} concept states span all {d} dimensions")
    if case.get("interpolates"):
        we = wp = 0.0
        for n in sorted(edited):
            W, Wn = src_sd[n].double().numpy(), unet_sd[n].double().numpy()
            we = max(we, np.linalg.norm(Wn @ ce.T - W @ cg.T) / np.linalg.norm(W @ cg.T))
            if len(cp):
                wp = max(wp, np.linalg.norm(Wn @ cp.T - W @ cp.T) / np.linalg.norm(W @ cp.T))
        check(we <= 1e-3, f"lambda -> 0: W' c_i = W c*_i for the erase concepts (worst {we:.3g} relative)")
        check(wp <= 1e-3, f"lambda -> 0: W' c_j = W c_j for the preserve concepts (worst {wp:.3g} relative)")
    sys.exit(1 if fails else 0)


def cmd_same(a):
    ta, _ = raw_tensors(a.a)
    tb, _ = raw_tensors(a.b)
    diff = sorted(n for n in set(ta) | set(tb) if ta.get(n) != tb.get(n))
    print(f"{len(ta)} and {len(tb)} tensors; {len(diff)} differ{': ' + ', '.join(diff[:5]) if diff else ''}")
    sys.exit(1 if diff else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--safesd", required=True)
    m.add_argument("--family", default="sd1", choices=["sd1", "sd2"])
    m.add_argument("--seed", type=int, default=4242)
    c = sub.add_parser("check")
    c.add_argument("out")
    c.add_argument("case")
    c.add_argument("edited")
    s = sub.add_parser("same-tensors")
    s.add_argument("a")
    s.add_argument("b")
    a = ap.parse_args()
    {"make": cmd_make, "check": cmd_check, "same-tensors": cmd_same}[a.cmd](a)


if __name__ == "__main__":
    main()
