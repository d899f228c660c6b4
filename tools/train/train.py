#!/usr/bin/env python3
"""Train the bundled model (safesd-emoji) from the emoji data set, on the CPU or a GPU.

    train.py WORK_DIR [--data DIR] [--stages tokenizer,clip,vae,cache,unet,export]
                      [--out models/safesd-emoji] [--threads N] [--budget-scale F]
                      [--device cpu|cuda] [--steps STAGE=N] [--batch STAGE=N]
                      [--lr STAGE=X] [--time-budget STAGE=SECONDS] [--rebudget N]
                      [--from-model DIR] [--offset-noise X[:T]] [--high-t T:P]
                      [--snr-weight MAX]

Stages (each resumable: a checkpoint WORK_DIR/<stage>/ckpt.pt is written every few
minutes and at the end, and a finished stage is skipped on the next run):
  tokenizer  byte-level BPE in CLIP's format on the captions (clip_bpe.py)
  clip       a small CLIP (text + vision towers), contrastive, on the training split
  vae        a small AutoencoderKL, 64x64x3 <-> 16x16x4, L1 + KL
  cache      VAE posterior moments of every image and the frozen text tower's hidden
             states of every caption (and of the empty prompt)
  unet       a small UNet2DConditionModel on the latents, epsilon prediction, SD's
             scaled-linear 1000-step schedule, 10% caption dropout (for guidance), EMA
  export     the diffusers folder: model_index.json, text_encoder/, tokenizer/, unet/,
             vae/, scheduler/, plus clip/ (the two-tower model, for evaluation)

Every architecture is the PyTorch reference of the conformance tests (tools/ref/), so
the engine runs exactly the model that was trained. Seeded; on the CPU with the same
thread count the run is repeatable (on a GPU, up to its kernels' own nondeterminism).
Needs Debian's python3-torch, python3-numpy and python3-pil (or any PyTorch >= 1.13;
--device cuda needs PyTorch >= 2.1).

--device cuda trains on a GPU with the GPU batch sizes (BATCH_GPU; --batch overrides).
--time-budget STAGE=S fixes that stage's step count from its measured speed: after 40
warm-up steps the total becomes what fits in S seconds (the cosine schedule then runs
over that total, and the stage's done file records it, so --steps STAGE=N repeats it).
The total is stored in the checkpoint: a resumed stage keeps it instead of measuring again.
--rebudget N (with --time-budget; for a shared machine whose load changes) re-estimates the
total every N steps from the recent speed, so the stage ends near its budget however the
speed moves; the checkpoint records the time used, and a resumed stage fits what is left.
Any stage resumes from its checkpoint on the CPU or a GPU (torch.load maps it to --device).
The data folder may hold images.npy or images.npz (np.savez_compressed, key "images").

For fine-tuning an exported model (--from-model; runs 3 to 5 of the model card): its tokenizer
(copied into WORK_DIR/tokenizer) and CLIP stay as they are; the vae stage fine-tunes its VAE's
decoder only (vae_decoder_params: the encoder, and so every latent the UNet knows, stays),
and the unet stage goes on training its UNet. --offset-noise X adds a per-sample, per-channel constant (X times a normal draw) to
the training noise, so the noise's channel means stop carrying the image's colours (X:T:
only on the samples at t >= T, the high-noise steps);
--high-t T:P draws a share P of each batch's timesteps from [T, 999]; --snr-weight MAX
weights each sample's loss by the inverse SNR (1 - abar) / abar clipped to [1, MAX], which
gives the high-noise steps, where colours and layout are decided, the weight of their x0
error. Two or more processes with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set train the
unet stage data-parallel (gloo): --stages unet only (the cache before, the export after, in
one process), with --steps, not --time-budget (each would measure its own total).
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
sys.path.insert(0, HERE)
import clip_bpe  # noqa: E402
import sdref  # noqa: E402
import sdref_clip  # noqa: E402
import sdref_unet  # noqa: E402
import sdref_vae  # noqa: E402

SEED = 20261128
CTX_LEN = 77

# ---- architecture (the model card lists these) ----------------------------------------
N_MERGES = 3000
TEXT = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            max_position_embeddings=CTX_LEN, hidden_act="quick_gelu")
VISION = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
              image_size=64, patch_size=8)
PROJ = 128
VAE = dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16, sample_size=64)
UNET = dict(block_out_channels=(32, 64, 128), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=4, cross_attention_dim=128, sample_size=16)
SCHED = dict(beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000)
# the exported scheduler: DDIM, in SD 2's layout (skip_prk_steps kept, so `--sampler pndm`
# is the usual PLMS). PLMS speckles this UNet's images at 20 steps, DDIM does not (the
# model card's sampler section measures it).
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.25.1", "beta_schedule": "scaled_linear",
    "clip_sample": False, "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None, **SCHED}

# ---- schedule (steps per stage at budget-scale 1) -------------------------------------
STEPS = {"clip": 700, "vae": 900, "unet": 2550}  # what the shipped model ran (its card)
BATCH = {"clip": 128, "vae": 16, "unet": 32}
LR = {"clip": 1e-3, "vae": 1e-3, "unet": 4e-4}
BATCH_GPU = {"clip": 512, "vae": 64, "unet": 256}
LR_GPU = {"clip": 1e-3, "vae": 1e-3, "unet": 5e-4}
DEV = torch.device("cpu")
TIME_BUDGET = {}  # stage -> seconds (--time-budget)
REBUDGET_EVERY = 0  # --rebudget: re-estimate a budget stage's total every this many steps
OVERRUN_SLACK_S = 30  # a budget stage stops at 1.1 x its budget + this (slower than measured)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Data:
    def __init__(self, folder):
        npy = os.path.join(folder, "images.npy")
        if os.path.exists(npy):
            self.images = np.load(npy)
        else:
            with np.load(os.path.join(folder, "images.npz")) as z:
                self.images = z["images"]
        with open(os.path.join(folder, "captions.json"), encoding="utf-8") as f:
            self.records = json.load(f)
        self.train = np.array([i for i, r in enumerate(self.records) if r["split"] == "train"])
        self.heldout = np.array([i for i, r in enumerate(self.records) if r["split"] == "heldout"])


def text_config(vocab_size, eos):
    return sdref.CLIPTextConfig(vocab_size=vocab_size, bos_token_id=eos - 1, eos_token_id=eos,
                                pad_token_id=eos, **TEXT)


def make_clip(vocab_size, eos):
    return sdref_clip.CLIPModel(text_config(vocab_size, eos), sdref_clip.CLIPVisionConfig(**VISION), PROJ)


def init_weights_(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("logit_scale"):
                continue
            if "norm" in name or "layrnorm" in name or name.endswith("layer_norm1.weight") \
                    or name.endswith("layer_norm2.weight"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif name.endswith("class_embedding"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            else:
                p.zero_()


class Stage:
    """Checkpointed training loop state."""

    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.ckpt = os.path.join(self.dir, "ckpt.pt")
        self.done = os.path.join(self.dir, "done")

    def finished(self):
        return os.path.exists(self.done)

    def load(self, map_location=None):
        if not os.path.exists(self.ckpt):
            return None
        return torch.load(self.ckpt, map_location=map_location or DEV, weights_only=False)

    def save(self, state):
        tmp = self.ckpt + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.ckpt)

    def finish(self, info):
        with open(self.done, "w") as f:
            json.dump(info, f, indent=1)


def lr_at(step, total, base, warm=100):
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def ddp():
    """(rank, world) of a data-parallel run: two or more processes started with RANK,
    WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (gloo on the CPU); (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world


def loop(stage, model, total, batch_fn, loss_fn, lr, extra_state=None, ema=None, every_s=180):
    rank, world = ddp()
    name = os.path.basename(stage.dir)
    extra = {"fused": True} if DEV.type == "cuda" else {}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.0 if ema else 0.01, **extra)
    gen = torch.Generator(device=DEV).manual_seed(SEED)
    budget = TIME_BUDGET.get(name)
    if budget:
        total = 10 ** 9  # fixed after the warm-up steps, from the measured speed
    step = 0
    used = 0.0  # seconds a --rebudget stage ran before this process resumed it
    st = stage.load()
    if st:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        if st.get("device", DEV.type) == DEV.type:
            gen.set_state(st["gen"])
        else:  # a CPU generator's state means nothing to a GPU's, and back: a new draw order
            gen.manual_seed(SEED + 104729 * step)
            log(f"{name}: checkpoint of the {st['device']}, resumed on the {DEV.type} with a reseeded generator")
        if budget and st.get("total", 10 ** 9) < 10 ** 9:
            if REBUDGET_EVERY and "used_s" in st:
                total, used = st["total"], st["used_s"]  # goes on fitting what is left of it
            else:
                total, budget = st["total"], None  # fixed when the stage first ran
        if ema is not None:
            ema.load_state_dict(st["ema"])
        if rank == 0:
            log(f"{os.path.basename(stage.dir)}: resumed at step {step}")
    if rank:
        # other ranks draw other batches; the model, optimiser and EMA stay identical
        gen = torch.Generator(device=DEV).manual_seed(SEED + 7919 * rank + step)
    last, t0, run = time.time(), time.time(), 0.0
    step0 = step
    tprobe = None
    per_avg, mark = None, None  # --rebudget: smoothed s/step, (step, time) of the last estimate
    mparams = [p for p in model.parameters()]
    eparams = [p for p in ema.parameters()] if ema is not None else []
    while step < total:
        if budget and step == step0 + 10:
            if DEV.type == "cuda":
                torch.cuda.synchronize()
            tprobe = time.time()
        if budget and step == step0 + 40:
            if DEV.type == "cuda":
                torch.cuda.synchronize()
            per = (time.time() - tprobe) / 30
            total = step + max(1, int((budget - used - (time.time() - t0)) / per))
            per_avg, mark = per, (step, time.time())
            if rank == 0:
                log(f"{name}: {per * 1000:.1f} ms/step -> {total} steps in {budget} s")
        elif budget and REBUDGET_EVERY and mark and step == mark[0] + REBUDGET_EVERY and step < total:
            # a shared machine's load changes: fit the total to the time left at the recent speed
            per_avg = 0.5 * per_avg + 0.5 * (time.time() - mark[1]) / REBUDGET_EVERY
            total = step + max(1, int((budget - used - (time.time() - t0)) / per_avg))
            mark = (step, time.time())
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, lr)
        loss = loss_fn(batch_fn(gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            import torch.distributed as dist
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        if ema is not None:
            # a longer run (a GPU's) averages over more steps
            d = min(0.999 if total >= 10000 else 0.995, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_mul_(eparams, d)
                torch._foreach_add_(eparams, [p.detach() for p in mparams], alpha=1 - d)
        step += 1
        if budget and step > step0 + 40 and step < total and \
                used + time.time() - t0 > 1.1 * budget + OVERRUN_SLACK_S:
            log(f"{name}: over its time budget at step {step} of {total}: stopped there")
            total = step  # ends the loop after this step's log and checkpoint
        if step == step0 + 1 or step % 10 == 0 or step == total:
            # (a GPU syncs here: every tenth step only)
            run = 0.8 * run + 0.2 * loss.item() if step > step0 + 1 else loss.item()
        if rank == 0 and (step % (500 if DEV.type == "cuda" else 50) == 0 or step == total):
            el = time.time() - t0
            log(f"{name}: step {step}/{total} loss {run:.4f} "
                f"({el / max(1, step - step0):.4f} s/step)")
        if rank == 0 and (time.time() - last > every_s or step == total):
            stage.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                        "step": step, "total": total, "ema": ema.state_dict() if ema is not None else None,
                        "used_s": used + time.time() - t0, "device": DEV.type})
            last = time.time()
    return run, total


# ---- stages ---------------------------------------------------------------------------
def stage_tokenizer(a, data):
    out = os.path.join(a.work, "tokenizer")
    if os.path.exists(os.path.join(out, "merges.txt")):
        return
    vocab, merges = clip_bpe.train([r["caption"] for r in data.records], N_MERGES)
    clip_bpe.save(out, vocab, merges)
    log(f"tokenizer: {len(merges)} merges, {len(vocab)} tokens")


def tokenize_all(a, data):
    tok = clip_bpe.Tokenizer(os.path.join(a.work, "tokenizer"))
    ids = torch.tensor([tok.encode(r["caption"]) for r in data.records])
    return tok, ids


def augment(img_u8, gen):
    """Random shift by up to 3 pixels (white fill): uint8 [B,64,64,3] -> same."""
    b = img_u8.shape[0]
    dev = img_u8.device
    sh = torch.randint(-3, 4, (b, 2), generator=gen, device=gen.device)
    pad = torch.full((b, 70, 70, 3), 255, dtype=img_u8.dtype, device=dev)
    pad[:, 3:67, 3:67] = img_u8
    # out[y, x] = img[y - dy, x - dx] = pad[y - dy + 3, x - dx + 3]
    r = torch.arange(64, device=dev)
    rows = (r[None, :] + 3 - sh[:, 0:1].to(dev))[:, :, None]
    cols = (r[None, :] + 3 - sh[:, 1:2].to(dev))[:, None, :]
    return pad[torch.arange(b, device=dev)[:, None, None], rows, cols]


def stage_clip(a, data):
    stage = Stage(a.work, "clip")
    if stage.finished():
        return
    tok, ids = tokenize_all(a, data)
    L = int((ids != tok.eos).sum(1).max()) + 1  # causal: later pad positions change nothing
    torch.manual_seed(SEED)
    model = make_clip(len(tok.vocab), tok.eos)
    init_weights_(model, SEED)
    model.to(DEV)
    ids = ids.to(DEV)
    imgs = torch.from_numpy(data.images).to(DEV)
    tr = torch.from_numpy(data.train).to(DEV)
    labels = {}
    lab_id = torch.tensor([labels.setdefault(r["label"], len(labels)) for r in data.records], device=DEV)
    total = int(STEPS["clip"] * a.budget_scale)
    bs = a.batch["clip"]

    def batch(gen):
        sel = tr[torch.randperm(len(tr), generator=gen, device=DEV)[:bs]]
        return ids[sel, :L], sdref_clip.pixels_from_uint8(augment(imgs[sel], gen)), sel

    def loss(b):
        i, px, sel = b
        logits = model(i, px)
        # captions of the same concept in the other style are not negatives of each other
        # (same base emoji => same target row); soft targets over equal labels
        lab = lab_id[sel]
        same = (lab[:, None] == lab[None, :]).float()
        tgt = same / same.sum(1, keepdim=True)
        li = -(tgt * logits.log_softmax(1)).sum(1).mean()
        lt = -(tgt * logits.t().log_softmax(1)).sum(1).mean()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return 0.5 * (li + lt)

    model.train()
    final, total = loop(stage, model, total, batch, loss, a.lr["clip"])
    stage.finish({"steps": total, "batch": bs, "device": DEV.type, "loss": final, "train_len": L})


def load_clip(a):
    tok = clip_bpe.Tokenizer(os.path.join(a.work, "tokenizer"))
    model = make_clip(len(tok.vocab), tok.eos)
    if a.from_model:
        sdref.load_weights_as_f32(model, sdref.load_safetensors(
            os.path.join(a.from_model, "clip", "model.safetensors")))
    else:
        model.load_state_dict(Stage(a.work, "clip").load("cpu")["model"])
    return tok, model.eval()


def vae_decoder_params(model):
    """The parameters a fine-tune of an exported model's VAE trains: the decoder side
    (post_quant_conv, decoder). The encoder stays as it was, so every latent the UNet was
    trained on stays the same, and the UNet's fine-tune starts from what it knows."""
    return [p for n, p in model.named_parameters() if not n.startswith(("encoder.", "quant_conv."))]


def stage_vae(a, data):
    stage = Stage(a.work, "vae")
    if stage.finished():
        return
    torch.manual_seed(SEED + 1)
    model = sdref_vae.AutoencoderKL(sdref_vae.VAEConfig(scaling_factor=1.0, **VAE)).to(DEV)
    if a.from_model:
        if not os.path.exists(stage.ckpt):
            sdref.load_weights_as_f32(model, sdref.load_safetensors(
                os.path.join(a.from_model, "vae", "diffusion_pytorch_model.safetensors")))
            log(f"vae: fine-tunes the decoder of {a.from_model} (encoder frozen)")
        keep = {id(p) for p in vae_decoder_params(model)}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
    imgs = torch.from_numpy(data.images).to(DEV)
    tr = torch.from_numpy(data.train).to(DEV)
    total = int(STEPS["vae"] * a.budget_scale)
    bs = a.batch["vae"]

    def batch(gen):
        sel = tr[torch.randperm(len(tr), generator=gen, device=DEV)[:bs]]
        x = imgs[sel].float().permute(0, 3, 1, 2) / 127.5 - 1.0
        return x, torch.randn((x.shape[0], 4, 16, 16), generator=gen, device=DEV)

    def loss(b):
        x, n = b
        mom = model.moments(x)
        mean, logvar = torch.chunk(mom, 2, dim=1)
        logvar = logvar.clamp(-30, 20)
        z = mean + torch.exp(0.5 * logvar) * n
        rec = model.decoder(model.post_quant_conv(z))
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum((1, 2, 3)).mean()
        return (rec - x).abs().mean() + 0.5 * F.mse_loss(rec, x) + 1e-6 * kl

    model.train()
    final, total = loop(stage, model, total, batch, loss, a.lr["vae"])
    stage.finish({"steps": total, "batch": bs, "device": DEV.type, "loss": final})


def load_vae(a, scaling=1.0):
    model = sdref_vae.AutoencoderKL(sdref_vae.VAEConfig(scaling_factor=scaling, **VAE))
    if a.from_model and not Stage(a.work, "vae").finished():
        sdref.load_weights_as_f32(model, sdref.load_safetensors(
            os.path.join(a.from_model, "vae", "diffusion_pytorch_model.safetensors")))
    else:
        model.load_state_dict(Stage(a.work, "vae").load("cpu")["model"])
    return model.eval()


def stage_cache(a, data):
    out = os.path.join(a.work, "cache.pt")
    if os.path.exists(out):
        return
    tok, clip = load_clip(a)
    vae = load_vae(a)
    tm = sdref.CLIPTextModel(clip.text_config)
    tm.text_model.load_state_dict(clip.text_model.state_dict())
    tm.eval().to(DEV)
    vae.to(DEV)
    _, ids = tokenize_all(a, data)
    moms, ctx = [], []
    with torch.no_grad():
        for s in range(0, len(data.records), 256):
            x = torch.from_numpy(data.images[s:s + 256]).to(DEV).float().permute(0, 3, 1, 2) / 127.5 - 1.0
            moms.append(vae.moments(x).cpu())
            ctx.append(tm.encode(ids[s:s + 256].to(DEV)).half().cpu())
        empty = tm.encode(torch.tensor([tok.encode("")], device=DEV)).cpu()
    moms = torch.cat(moms)
    mean = moms[:, :4]
    sf = float(1.0 / mean[torch.from_numpy(data.train)].std())
    if a.from_model:  # the UNet goes on training: keep the latent scale it was trained with
        with open(os.path.join(a.from_model, "vae", "config.json")) as f:
            sf = float(json.load(f)["scaling_factor"])
    torch.save({"moments": moms, "ctx": torch.cat(ctx), "empty": empty, "scaling_factor": sf}, out)
    log(f"cache: {len(moms)} latents, scaling_factor {sf:.5f}")


def make_unet():
    return sdref_unet.UNet2DConditionModel(sdref_unet.UNetConfig(**UNET))


def alphas_cumprod():
    b = torch.linspace(SCHED["beta_start"] ** 0.5, SCHED["beta_end"] ** 0.5, SCHED["num_train_timesteps"],
                       dtype=torch.float64) ** 2
    return torch.cumprod(1 - b, 0).float()


def draw_timesteps(n, gen, high=None):
    """n training timesteps, uniform over the schedule; with high = (T, P) a share P of them
    (the first round(P * n)) is drawn from [T, 999] instead: the steps where a sample's
    layout and colours are decided, whose errors the epsilon loss weighs least."""
    nt = SCHED["num_train_timesteps"]
    t = torch.randint(0, nt, (n,), generator=gen, device=gen.device)
    if high:
        k = int(round(high[1] * n))
        t[:k] = torch.randint(high[0], nt, (k,), generator=gen, device=gen.device)
    return t.to(DEV)


def loss_weights(acs, wmax):
    """Per-sample weights of the epsilon loss: (1 - abar) / abar (the inverse SNR, which turns
    the epsilon error into the x0 error) clipped to [1, wmax]. Below t of about 400 that is 1
    (plain epsilon loss); at high t it gives the image-level errors (colours, layout) the
    weight the epsilon loss denies them (1/213 of the x0 error at t = 999)."""
    return ((1 - acs) / acs).clamp(1.0, wmax)


def training_noise(shape, t, gen, offset=(0.0, 0)):
    """The noise of a UNet training batch: a normal draw of shape [N, 4, H, W]; with offset
    (X, T), X > 0, plus X times a per-sample, per-channel normal constant (offset noise) on
    the samples at t >= T. A constant per sample and channel: the noise's channel means then
    vary as much as the image's own, so the model stops reading the image's colours off the
    initial noise (at t = 999 SD's schedule keeps 6.8% of the signal, and a 16x16 latent's
    channel means are as large as that leak). With T > 0 only the high-noise steps get it,
    so a large X can hide that leak without blurring the low-noise steps' colours."""
    eps = torch.randn(shape, generator=gen, device=gen.device)
    if offset[0]:
        off = offset[0] * torch.randn((shape[0], shape[1], 1, 1), generator=gen, device=gen.device)
        eps = eps + off * (t >= offset[1]).view(-1, 1, 1, 1).to(eps.device)
    return eps


def stage_unet(a, data):
    stage = Stage(a.work, "unet")
    if stage.finished():
        return
    c = torch.load(os.path.join(a.work, "cache.pt"), map_location=DEV, weights_only=False)
    moms, ctx, empty, sf = c["moments"], c["ctx"], c["empty"], c["scaling_factor"]
    torch.manual_seed(SEED + 2)
    model = make_unet().to(DEV)
    if a.from_model and not os.path.exists(stage.ckpt):
        sdref.load_weights_as_f32(model, sdref.load_safetensors(
            os.path.join(a.from_model, "unet", "diffusion_pytorch_model.safetensors")))
        log(f"unet: starts from {a.from_model}")
    ema = make_unet().to(DEV)
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    ac = alphas_cumprod().to(DEV)
    tr = torch.from_numpy(data.train).to(DEV)
    total = int(STEPS["unet"] * a.budget_scale)
    bs = a.batch["unet"]

    def batch(gen):
        sel = tr[torch.randperm(len(tr), generator=gen, device=DEV)[:bs]]
        m = moms[sel]
        mean, logvar = m[:, :4], m[:, 4:].clamp(-30, 20)
        x0 = (mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen, device=DEV)) * sf
        t = draw_timesteps(len(sel), gen, a.high_t)
        eps = training_noise(x0.shape, t, gen, a.offset_noise)
        acs = ac[t].view(-1, 1, 1, 1)
        xt = acs.sqrt() * x0 + (1 - acs).sqrt() * eps
        e = ctx[sel].float()
        drop = torch.rand(len(sel), generator=gen, device=DEV) < 0.1
        e[drop] = empty
        return xt, t, e, eps

    def loss(b):
        xt, t, e, eps = b
        if a.snr_weight:
            err = (model(xt, t, e) - eps).pow(2).mean((1, 2, 3))
            return (err * loss_weights(ac[t], a.snr_weight)).mean()
        return F.mse_loss(model(xt, t, e), eps)

    model.train()
    final, total = loop(stage, model, total, batch, loss, a.lr["unet"], ema=ema)
    if ddp()[0] == 0:
        stage.finish({"steps": total, "batch": bs, "device": DEV.type, "loss": final, "world": ddp()[1]})


def stage_export(a, data):
    out = a.out
    tok, clip = load_clip(a)
    c = torch.load(os.path.join(a.work, "cache.pt"), map_location="cpu", weights_only=False)
    vae = load_vae(a, scaling=c["scaling_factor"])
    vae.config.scaling_factor = round(c["scaling_factor"], 5)
    unet = make_unet()
    unet.load_state_dict(Stage(a.work, "unet").load("cpu")["ema"])
    tm = sdref.CLIPTextModel(clip.text_config)
    tm.text_model.load_state_dict(clip.text_model.state_dict())
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    half = torch.float16
    sdref.write_text_encoder_folder(tmp, tm, half)
    sdref_unet.write_unet_folder(os.path.join(tmp, "_u"), unet, half)
    sdref_vae.write_vae_folder(os.path.join(tmp, "_v"), vae, half)
    for sub, comp in (("_u", "unet"), ("_v", "vae")):
        shutil.move(os.path.join(tmp, sub, comp), os.path.join(tmp, comp))
        shutil.rmtree(os.path.join(tmp, sub))
    os.makedirs(os.path.join(tmp, "tokenizer"))
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(a.work, "tokenizer", f), os.path.join(tmp, "tokenizer", f))
    sdref.write_json(os.path.join(tmp, "tokenizer", "tokenizer_config.json"), {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": CTX_LEN, "bos_token": clip_bpe.BOS,
        "eos_token": clip_bpe.EOS, "pad_token": clip_bpe.EOS, "unk_token": clip_bpe.EOS,
        "do_lower_case": True})
    os.makedirs(os.path.join(tmp, "scheduler"))
    sdref.write_json(os.path.join(tmp, "scheduler", "scheduler_config.json"), SCHEDULER_CONFIG)
    os.makedirs(os.path.join(tmp, "clip"))
    sdref.write_json(os.path.join(tmp, "clip", "config.json"), clip.config_json())
    sdref.save_safetensors(os.path.join(tmp, "clip", "model.safetensors"), sdref.state_dict_as(clip, half),
                           {"format": "pt"})
    sdref.write_json(os.path.join(tmp, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", SCHEDULER_CONFIG["_class_name"]], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    if os.path.exists(out):
        # keep files that are not produced here (model card, concept bank)
        for f in os.listdir(out):
            if not os.path.exists(os.path.join(tmp, f)):
                shutil.move(os.path.join(out, f), os.path.join(tmp, f))
        shutil.rmtree(out)
    os.replace(tmp, out)
    log(f"export: {out}")


STAGES = {"tokenizer": stage_tokenizer, "clip": stage_clip, "vae": stage_vae, "cache": stage_cache,
          "unet": stage_unet, "export": stage_export}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("--data", help="data set folder (default WORK/data, built by emoji_data.py if absent)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "models", "safesd-emoji"))
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads per stage (default 1: on a 2-core machine two were slower "
                         "than one for these small layers)")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="scale every stage's step count")
    ap.add_argument("--steps", action="append", default=[], metavar="STAGE=N",
                    help="set one stage's step count (before --budget-scale), e.g. vae=900")
    ap.add_argument("--batch", action="append", default=[], metavar="STAGE=N",
                    help="set one stage's batch size (default BATCH, or BATCH_GPU on a GPU)")
    ap.add_argument("--time-budget", action="append", default=[], metavar="STAGE=SECONDS",
                    help="fit that stage's step count to SECONDS from its measured speed")
    ap.add_argument("--rebudget", type=int, default=0, metavar="N",
                    help="with --time-budget: re-estimate the stage's step total every N steps from the "
                         "recent speed, and on resume from the time it has left (a shared machine)")
    ap.add_argument("--lr", action="append", default=[], metavar="STAGE=X",
                    help="set one stage's peak learning rate")
    ap.add_argument("--offset-noise", default="0", metavar="X[:T]",
                    help="unet stage: add X times a per-channel constant to the training noise "
                         "(with :T only to the samples at timesteps >= T)")
    ap.add_argument("--high-t", metavar="T:P",
                    help="unet stage: draw a share P of each batch's timesteps from [T, 999] "
                         "(e.g. 600:0.5, for a fine-tune of the high-noise steps)")
    ap.add_argument("--snr-weight", type=float, default=0.0, metavar="MAX",
                    help="unet stage: weight each sample's loss by (1-abar)/abar clipped to [1, MAX] "
                         "(more weight on the high-noise steps)")
    ap.add_argument("--from-model", metavar="DIR",
                    help="go on training an exported model folder: its CLIP is used as it is, the vae "
                         "stage fine-tunes its VAE's decoder (encoder frozen), the unet stage its UNet "
                         "(stages vae, cache, unet, export)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="where to train (default cpu); cuda uses BATCH_GPU and LR_GPU")
    a = ap.parse_args()

    def stage_kv(opt, items, conv):
        out = {}
        for kv in items:
            k, _, v = kv.partition("=")
            try:
                out[k] = conv(v)
                if out[k] <= 0:
                    raise ValueError
            except ValueError:
                k = None
            if k not in STEPS:
                sys.exit(f"train.py: --{opt} takes STAGE=VALUE (a positive number) with STAGE in "
                         f"{', '.join(STEPS)}")
        return out
    STEPS.update(stage_kv("steps", a.steps, int))
    try:
        ox, _, ot = a.offset_noise.partition(":")
        a.offset_noise = (float(ox), int(ot or 0))
        if not (a.offset_noise[0] >= 0 and 0 <= a.offset_noise[1] < SCHED["num_train_timesteps"]):
            raise ValueError
    except ValueError:
        sys.exit(f"train.py: --offset-noise takes X or X:T with X >= 0 and 0 <= T < "
                 f"{SCHED['num_train_timesteps']}, e.g. 0.1 or 0.4:700")
    if a.snr_weight and not a.snr_weight >= 1:
        sys.exit("train.py: --snr-weight takes MAX >= 1")
    if a.high_t is not None:
        try:
            ht, _, hp = a.high_t.partition(":")
            a.high_t = (int(ht), float(hp or 0.5))
            if not (0 <= a.high_t[0] < SCHED["num_train_timesteps"] and 0 < a.high_t[1] <= 1):
                raise ValueError
        except ValueError:
            sys.exit(f"train.py: --high-t takes T:P with 0 <= T < {SCHED['num_train_timesteps']} "
                     f"and 0 < P <= 1, e.g. 600:0.5")
    TIME_BUDGET.update(stage_kv("time-budget", a.time_budget, float))
    if a.rebudget < 0:
        sys.exit("train.py: --rebudget takes N >= 0 steps")
    global REBUDGET_EVERY
    REBUDGET_EVERY = a.rebudget
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if TIME_BUDGET:
            sys.exit("train.py: --time-budget with several processes (WORLD_SIZE > 1): each would "
                     "measure its own step total; give --steps")
        if a.stages != "unet":
            sys.exit("train.py: several processes (WORLD_SIZE > 1) run --stages unet only; run the "
                     "other stages in one process (they would all write the same files)")
    global DEV
    DEV = torch.device(a.device)
    if DEV.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("train.py: --device cuda, but PyTorch sees no GPU")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    a.batch = dict(BATCH_GPU if DEV.type == "cuda" else BATCH, **stage_kv("batch", a.batch, int))
    a.lr = dict(LR_GPU if DEV.type == "cuda" else LR, **stage_kv("lr", a.lr, float))
    if a.from_model and any(s in a.stages.split(",") for s in ("tokenizer", "clip")):
        sys.exit("train.py: --from-model takes the stages vae (its decoder), cache, unet and export")
    torch.set_num_threads(a.threads)
    data_dir = a.data or os.path.join(a.work, "data")
    if not any(os.path.exists(os.path.join(data_dir, f)) for f in ("images.npy", "images.npz")):
        import subprocess
        subprocess.run([sys.executable, os.path.join(HERE, "emoji_data.py"), data_dir], check=True)
    data = Data(data_dir)
    stages = a.stages.split(",")
    for s in stages:
        if s not in STAGES:
            sys.exit(f"train.py: unknown stage '{s}' (stages: {', '.join(STAGES)})")
    if DEV.type == "cpu" and (os.cpu_count() or 1) >= 2 and "clip" in stages and "vae" in stages:
        # the two are independent: train them side by side, one thread each (as the shipped
        # model was), then go on with the rest
        import subprocess
        t0 = time.time()
        base = [sys.executable, os.path.abspath(__file__), a.work, "--data", data_dir, "--threads", "1",
                "--budget-scale", str(a.budget_scale), "--out", a.out] + [f"--steps={kv}" for kv in a.steps] \
            + [f"--batch={k}={v}" for k, v in a.batch.items()] + [f"--lr={k}={v}" for k, v in a.lr.items()] \
            + [f"--time-budget={kv}" for kv in a.time_budget]
        if "tokenizer" in stages:
            stage_tokenizer(a, data)
        procs = [subprocess.Popen(base + ["--stages", "clip"]), subprocess.Popen(base + ["--stages", "vae"])]
        if any(p.wait() for p in procs):
            sys.exit("train.py: the clip or vae stage failed")
        log(f"stages clip + vae: {time.time() - t0:.0f} s")
        stages = [s for s in stages if s not in ("tokenizer", "clip", "vae")]
    for s in stages:
        t0 = time.time()
        STAGES[s](a, data)
        log(f"stage {s}: {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
