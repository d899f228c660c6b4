#!/usr/bin/env bash
# tools/train/train.py's training loop and data helpers, on toy inputs (no data set):
#  - augment(): the vectorised shift equals the per-image loop it replaced (same draws);
#  - loop() with --time-budget: the total comes from the measured speed, is stored in the
#    checkpoint, and a resumed stage keeps it (no second measurement, same schedule);
#  - a stage that overruns its budget stops and still writes its final checkpoint;
#  - --rebudget: the total follows a change of speed, a resumed stage fits the time left;
#  - a checkpoint written on a GPU resumes on the CPU (the generator reseeded);
#  - draw_timesteps(): uniform over the schedule by default (the same draws as before
#    --high-t existed), and with --high-t T:P the first round(P*n) from [T, 999];
#  - loss_weights() (--snr-weight): the inverse SNR clipped to [1, MAX];
#  - training_noise() (--offset-noise X[:T]): the plain draw without it, the per-channel
#    constant on exactly the samples at t >= T with it;
#  - the scheduler config the export writes is the shipped model's;
#  - evaluate.py: eta_squared(), fg_colour(), among_prompts(), and its image cache, which a change of the
#    model's files (UNet, VAE, scheduler), the steps, the CFG or the sampler empties;
#  - --steps/--batch/--lr/--time-budget/--high-t/--snr-weight/--offset-noise reject bad values with a
#    message and exit 1, as do --time-budget and stages other than unet in a data-parallel
#    run (WORLD_SIZE > 1).
source "$(dirname "$0")/../conformance/lib.sh"
need_torch
W="$TMP/train_loop"; rm -rf "$W"; mkdir -p "$W"
"$PYTHON" - "$SRC/tools/train" "$W" <<'PY'
import os, sys, time
import torch
sys.argv = [sys.argv[0]] + sys.argv[1:]
sys.path.insert(0, sys.argv[1])
import train  # noqa: E402

work = sys.argv[2]
fails = []

# augment: against the loop it replaced
def augment_loop(img, gen):
    b = img.shape[0]
    out = torch.full_like(img, 255)
    sh = torch.randint(-3, 4, (b, 2), generator=gen)
    for i in range(b):
        dy, dx = int(sh[i, 0]), int(sh[i, 1])
        ys, yd = (slice(0, 64 - dy), slice(dy, 64)) if dy >= 0 else (slice(-dy, 64), slice(0, 64 + dy))
        xs, xd = (slice(0, 64 - dx), slice(dx, 64)) if dx >= 0 else (slice(-dx, 64), slice(0, 64 + dx))
        out[i, yd, xd] = img[i, ys, xs]
    return out
img = torch.randint(0, 256, (16, 64, 64, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
a = train.augment(img, torch.Generator().manual_seed(5))
b = augment_loop(img, torch.Generator().manual_seed(5))
if not torch.equal(a, b):
    fails.append("augment differs from the per-image loop")

# loop with a time budget, then resumed
model = torch.nn.Linear(4, 1)
def batch(gen):
    return torch.randn((8, 4), generator=gen)
def slow_loss(x):
    time.sleep(0.01)
    return model(x).pow(2).mean()
train.TIME_BUDGET["toy"] = 1.0
stage = train.Stage(work, "toy")
_, total = train.loop(stage, model, 5, batch, slow_loss, 1e-3)
ck = torch.load(stage.ckpt, weights_only=False)
if not (40 < total < 200):
    fails.append(f"budget total {total}: not from the measured speed (about 1 s / 10 ms)")
if ck["step"] != total or ck.get("total") != total:
    fails.append(f"checkpoint step {ck['step']} total {ck.get('total')}, stage total {total}")
_, total2 = train.loop(stage, model, 5, batch, slow_loss, 1e-3)  # resumed: nothing left
if total2 != total:
    fails.append(f"resumed stage changed its total: {total} -> {total2}")

# overrunning the budget: stops early, and the final checkpoint is the last step
train.TIME_BUDGET["late"] = 0.5
train.OVERRUN_SLACK_S = 0
late = train.Stage(work, "late")
calls = [0]
def late_loss(x):
    calls[0] += 1
    time.sleep(0.001 if calls[0] <= 40 else 0.02)  # fast while measured, slow after
    return model(x).pow(2).mean()
_, t_late = train.loop(late, model, 5, batch, late_loss, 1e-3)
ck = torch.load(late.ckpt, weights_only=False)
if not (40 < t_late < 100):
    fails.append(f"overrunning stage ran to step {t_late}: the deadline did not stop it")
if ck["step"] != t_late or ck["total"] != t_late:
    fails.append(f"final checkpoint at step {ck['step']} (total {ck['total']}), stage ended at {t_late}")

# --rebudget N: the total follows a change of speed after the measurement, and a resumed
# stage fits what is left of its budget (the time used is stored in the checkpoint)
train.REBUDGET_EVERY = 20
train.OVERRUN_SLACK_S = 30
train.TIME_BUDGET["adapt"] = 1.5
calls = [0]
def adapt_loss(x):
    calls[0] += 1
    time.sleep(0.004 if calls[0] <= 60 else 0.05)  # fast while measured, much slower after
    return model(x).pow(2).mean()
t0 = time.time()
_, t_ad = train.loop(train.Stage(work, "adapt"), model, 5, batch, adapt_loss, 1e-3)
el = time.time() - t0
ck = torch.load(train.Stage(work, "adapt").ckpt, weights_only=False)
if not (el < 2.4 and t_ad < 200):
    fails.append(f"--rebudget: {t_ad} steps in {el:.1f} s for a 1.5 s budget (the first estimate alone: about 350)")
if abs(ck.get("used_s", -9) - el) > 0.5:
    fails.append(f"--rebudget: checkpoint used_s {ck.get('used_s')}, the stage ran {el:.1f} s")
ck.update(total=100000, used_s=1.3)  # as if interrupted 0.2 s before its budget's end
torch.save(ck, train.Stage(work, "adapt").ckpt)
calls[0] = 0
_, t_res = train.loop(train.Stage(work, "adapt"), model, 5, batch, adapt_loss, 1e-3)
if not (ck["step"] + 40 < t_res <= ck["step"] + 60):
    fails.append(f"--rebudget resume from step {ck['step']} with 0.2 s left ran to step {t_res}")
train.REBUDGET_EVERY = 0

# a checkpoint written on another device resumes here (its generator state is reseeded)
ck = torch.load(stage.ckpt, weights_only=False)
if ck.get("device") != "cpu":
    fails.append(f"checkpoint device {ck.get('device')}, want cpu")
ck.update(device="cuda", gen=torch.zeros(16, dtype=torch.uint8), total=ck["step"] + 3)
torch.save(ck, stage.ckpt)
try:
    _, t_dev = train.loop(stage, model, 5, batch, slow_loss, 1e-3)
    if t_dev != ck["step"] + 3:
        fails.append(f"resumed a GPU checkpoint to step {t_dev}, want {ck['step'] + 3}")
except RuntimeError as e:
    fails.append(f"a GPU checkpoint does not resume on the CPU: {e}")

# timesteps: the default is the plain uniform draw; --high-t moves a share to [T, 999]
t = train.draw_timesteps(4000, torch.Generator().manual_seed(3))
if not torch.equal(t, torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(3))):
    fails.append("draw_timesteps without --high-t is not the plain uniform draw")
t = train.draw_timesteps(4000, torch.Generator().manual_seed(3), (700, 0.25))
hi, rest = t[:1000], t[1000:]
if not (int(hi.min()) >= 700 and int(hi.max()) <= 999 and int(hi.min()) < 720):
    fails.append(f"--high-t 700:0.25: the high share spans [{int(hi.min())}, {int(hi.max())}]")
if not (int(rest.min()) < 50 and abs(float(rest.float().mean()) - 499.5) < 25):
    fails.append(f"--high-t 700:0.25: the rest is not uniform over [0, 999] (mean {float(rest.float().mean()):.1f})")

# --offset-noise X[:T]: without it the plain normal draw; with it a per-sample, per-channel
# constant added to exactly the samples at t >= T (the same draws as before T existed)
t = torch.tensor([0, 699, 700, 999])
e0 = train.training_noise((4, 4, 8, 8), t, torch.Generator().manual_seed(5))
g = torch.Generator().manual_seed(5)
plain, off = torch.randn((4, 4, 8, 8), generator=g), torch.randn((4, 4, 1, 1), generator=g)
if not torch.equal(e0, plain):
    fails.append("training_noise without --offset-noise is not the plain normal draw")
e1 = train.training_noise((4, 4, 8, 8), t, torch.Generator().manual_seed(5), (0.4, 700))
d = e1 - plain
if not (torch.equal(d[:2], torch.zeros_like(d[:2])) and torch.allclose(d[2:], (0.4 * off[2:]).expand(2, 4, 8, 8))):
    fails.append(f"--offset-noise 0.4:700: offset {d.mean((2, 3)).tolist()}, want 0 below t = 700 and 0.4 x the draw from it")
e2 = train.training_noise((4, 4, 8, 8), t, torch.Generator().manual_seed(5), (0.4, 0))
if not torch.allclose(e2 - plain, (0.4 * off).expand(4, 4, 8, 8)):
    fails.append("--offset-noise 0.4: not every sample got its offset")

# --snr-weight: (1 - abar) / abar clipped to [1, MAX]
ac = train.alphas_cumprod()
w = train.loss_weights(ac[torch.tensor([0, 300, 600, 999])], 20.0)
want = [1.0, 1.0, float((1 - ac[600]) / ac[600]), 20.0]
if not (3 < want[2] < 20 and torch.allclose(w, torch.tensor(want))):
    fails.append(f"loss_weights: {w.tolist()}, want {want}")

# the scheduler the export writes is the shipped model's (the training commands reproduce
# the folder)
import json  # noqa: E402
shipped = os.path.join(os.path.dirname(sys.argv[1]), "..", "models", "safesd-emoji")
if json.load(open(os.path.join(shipped, "scheduler", "scheduler_config.json"))) != train.SCHEDULER_CONFIG:
    fails.append("train.SCHEDULER_CONFIG is not models/safesd-emoji/scheduler/scheduler_config.json")
if json.load(open(os.path.join(shipped, "model_index.json")))["scheduler"][1] != train.SCHEDULER_CONFIG["_class_name"]:
    fails.append("models/safesd-emoji/model_index.json names another scheduler class")

# evaluate.py's colour statistics and its image cache
import types  # noqa: E402
import numpy as np  # noqa: E402
import evaluate  # noqa: E402
v = np.array([[0.0], [0.0], [2.0], [2.0]])
if abs(evaluate.eta_squared(v, [0, 0, 1, 1]) - 1.0) > 1e-12 or abs(evaluate.eta_squared(v, [0, 1, 0, 1])) > 1e-12:
    fails.append("eta_squared: groups that explain all / none of the variance")
img = np.full((4, 4, 3), 255, np.uint8)
img[0, 0] = (200, 10, 30)
img[1, 1] = (100, 30, 50)
if not np.allclose(evaluate.fg_colour(img), [150, 20, 40]):
    fails.append(f"fg_colour ignores white: {evaluate.fg_colour(img)}")
eye = torch.eye(6)
am = evaluate.among_prompts(eye, eye[[1, 0, 2, 3, 4, 5]], eye)
if not (am["gen_r1"] == 1.0 and abs(am["real_r1"] - 4 / 6) < 1e-6):
    fails.append(f"among_prompts: {am}, want gen R@1 1 and real R@1 4/6 (images 0 and 1 swapped)")
m = os.path.join(work, "model")
for sub in ("text_encoder", "tokenizer", "unet", "vae", "scheduler"):
    os.makedirs(os.path.join(m, sub), exist_ok=True)
    open(os.path.join(m, sub, "f"), "wb").write(b"x")
unet = os.path.join(m, "unet", "diffusion_pytorch_model.safetensors")
open(unet, "wb").write(b"one")
sched = os.path.join(m, "scheduler", "scheduler_config.json")
args = types.SimpleNamespace(model=m, out=os.path.join(work, "ev"), steps=20, cfg_scale=7.5, sampler=None)
kept = os.path.join(evaluate.Generator(args).dir, "000.png")
open(kept, "wb").write(b"png")
evaluate.Generator(args)
if not os.path.exists(kept):
    fails.append("evaluate.py: same settings, cached image removed")
for change in (lambda: setattr(args, "cfg_scale", 4.0), lambda: setattr(args, "steps", 10),
               lambda: open(unet, "wb").write(b"two"), lambda: setattr(args, "sampler", "ddim"),
               lambda: open(sched, "w").write('{"_class_name": "DDIMScheduler"}'),
               lambda: open(os.path.join(m, "vae", "f"), "wb").write(b"y")):
    open(kept, "wb").write(b"png")
    evaluate.Generator(args)
    change()
    evaluate.Generator(args)
    if os.path.exists(kept):
        fails.append("evaluate.py: settings changed, stale image kept")
print("\n".join("FAIL: " + f for f in fails) or
      "ok: augment, budget total, resume, final checkpoint, timesteps, loss weights, evaluate helpers")
sys.exit(1 if fails else 0)
PY
fail=0
for bad in "--steps unet=-3" "--batch vae=0" "--lr clip=x" "--time-budget nope=5" \
           "--high-t 1000:0.5" "--high-t 600:0" "--high-t x" "--snr-weight 0.5" "--offset-noise -1" \
           "--offset-noise 0.4:1000" "--offset-noise 0.4:x" "--rebudget -1"; do
  set +e; msg=$("$PYTHON" "$SRC/tools/train/train.py" "$W/w" $bad 2>&1); rc=$?; set -e
  if [ $rc = 1 ] && grep -q "takes STAGE=VALUE\|takes T:P\|takes MAX\|takes X\|takes N" <<<"$msg"; then :; else echo "FAIL: train.py $bad: rc $rc: $msg"; fail=1; fi
done
for bad in "--stages unet --time-budget unet=5" "--stages cache,unet"; do
  set +e; msg=$(WORLD_SIZE=2 "$PYTHON" "$SRC/tools/train/train.py" "$W/w" $bad 2>&1); rc=$?; set -e
  if [ $rc = 1 ] && grep -q "several processes" <<<"$msg"; then :; else
    echo "FAIL: WORLD_SIZE=2 train.py $bad: rc $rc: $msg"; fail=1; fi
done
[ ! -e "$W/w/data" ] || { echo "FAIL: a usage error built a data folder"; fail=1; }
exit $fail
