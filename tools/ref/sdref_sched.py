#!/usr/bin/env python3
"""PyTorch reference of the samplers (noise schedulers) and of torch's CPU random stream, for
safesd's sampler tests.

The scheduler classes below restate the behaviour of diffusers v0.25.1's DDIMScheduler,
PNDMScheduler (skip_prk_steps), EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
DPMSolverMultistepScheduler (dpmsolver++) in plain torch/numpy, with the same numeric types
(float32 torch tables and step arithmetic, float64 numpy timesteps/sigmas), written from a
reading of the diffusers source, since diffusers itself is not installed. They were checked
against the tiny golden set (DDIM and PLMS, step by step) and against the real v0.25.1 classes.

One extension: euler_a with Karras sigmas (v0.25.1's EulerAncestralDiscreteScheduler has no
such option); its sigmas are built exactly as EulerDiscreteScheduler(use_karras_sigmas=True)
builds them.

Commands:
    sdref_sched.py rng OUT_DIR
        torch.randn reference data for tests/data/rng (see the README written there).
    sdref_sched.py run OUT_DIR --sampler S [--sigmas discrete|karras] [--pred eps|v]
                       [--steps 10] [--seed 1234] [--shape 1,4,8,8] [--eta 0] [--spacing ...]
        one sampling run with the synthetic model eps(x, t) = tanh(0.5 x) + 0.1 sin(t / 100)
        (x = the scaled model input): writes timesteps.npy, sigmas.npy (if any),
        init_noise_sigma.npy, init_latents.npy, step_latents.npy [evals, ...], final.npy.
    sdref_sched.py cases OUT_DIR
        the conformance matrix (every sampler x schedule x prediction), one folder each,
        listed in OUT_DIR/cases.txt.
    sdref_sched.py rng-exhaustive SAMPLERS_CHECK
        proves the C generator bit-exact on every input of torch's >= 16-element normal path:
        crafted generator states (torch.Generator.set_state) make torch.randn see every one of
        the 2^24 possible uniforms as Box-Muller radius input and as angle input; the C side
        (SAMPLERS_CHECK --rng-sweep, the tests/conformance helper) does the same through
        sd_rng_randn. About a minute. PyTorch 1.13's CPU generator state layout is assumed.
    sdref_sched.py check-golden GOLDEN_DIR
        checks this reference against diffusers' own outputs in GOLDEN_DIR (shared/data/golden):
        tiny/ DDIM and PLMS fed the stored guided noise predictions must reproduce every step's
        latents bit for bit; clip-small/ cases must give the manifest's timesteps and
        init_noise_sigma, and torch.randn the stored initial noise. Exit 1 on a mismatch.

Needs only python3-torch and python3-numpy.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

# ---------------------------------------------------------------------------------------
# configuration (what diffusers' from_config resolves to)

SD15 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            prediction_type="epsilon", timestep_spacing="leading", steps_offset=1,
            set_alpha_to_one=False, clip_sample=False, skip_prk_steps=True)

CLASS_DEFAULTS = {
    "ddim": dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", clip_sample=True,
                 set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading", clip_sample_range=1.0),
    "pndm": dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", skip_prk_steps=False,
                 set_alpha_to_one=False, timestep_spacing="leading", steps_offset=0),
    "euler": dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", use_karras_sigmas=False,
                  sigma_min=None, sigma_max=None, timestep_spacing="linspace", steps_offset=0),
    "euler_a": dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", timestep_spacing="linspace",
                    steps_offset=0, use_karras_sigmas=False),
    "dpm++2m": dict(beta_start=0.0001, beta_end=0.02, beta_schedule="linear", solver_order=2,
                    solver_type="midpoint", lower_order_final=True, euler_at_final=False,
                    use_karras_sigmas=False, sigma_min=None, sigma_max=None, timestep_spacing="linspace",
                    steps_offset=0),
}


def resolve(sampler, overrides):
    cfg = dict(num_train_timesteps=1000, prediction_type="epsilon")
    cfg.update(CLASS_DEFAULTS[sampler])
    for k, v in overrides.items():
        if k in cfg or k in ("clip_sample", "set_alpha_to_one", "skip_prk_steps"):
            cfg[k] = v
    return cfg


def train_tables(cfg):
    T = cfg["num_train_timesteps"]
    bs, be = cfg["beta_start"], cfg["beta_end"]
    if cfg["beta_schedule"] == "linear":
        betas = torch.linspace(bs, be, T, dtype=torch.float32)
    elif cfg["beta_schedule"] == "scaled_linear":
        betas = torch.linspace(bs ** 0.5, be ** 0.5, T, dtype=torch.float32) ** 2
    elif cfg["beta_schedule"] == "squaredcos_cap_v2":
        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)],
                             dtype=torch.float32)
    else:
        raise ValueError(cfg["beta_schedule"])
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return alphas_cumprod


def spaced_int(cfg, n, ascending=False):
    """Integer timesteps of DDIM (descending) / PNDM's _timesteps (ascending)."""
    T = cfg["num_train_timesteps"]
    sp = cfg["timestep_spacing"]
    if sp == "linspace":
        t = np.linspace(0, T - 1, n).round().astype(np.int64)
        return t if ascending else t[::-1].copy()
    if sp == "leading":
        ratio = T // n
        t = (np.arange(0, n) * ratio).round().astype(np.int64) + cfg["steps_offset"]
        return t if ascending else t[::-1].copy()
    if sp == "trailing":
        ratio = T / n
        t = np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
        return t[::-1].copy() if ascending else t
    raise ValueError(sp)


def sigma_to_t(sigma, log_sigmas):
    """Fractional timestep of sigma on the float32 log-sigma table (float64 math)."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    d = log_sigma - log_sigmas[:, None]
    lo = np.cumsum(d >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    hi = lo + 1
    w = np.clip((log_sigmas[lo] - log_sigma) / (log_sigmas[lo] - log_sigmas[hi]), 0, 1)
    return ((1 - w) * lo + w * hi).reshape(np.shape(sigma))


def karras(smin, smax, n):
    rho = 7.0
    ramp = np.linspace(0, 1, n)
    lo, hi = smin ** (1 / rho), smax ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


class Sampler:
    """One scheduler after set_timesteps(steps); step() mutates the multistep state."""

    def __init__(self, kind, cfg, steps, eta=0.0):
        self.kind, self.cfg, self.n_steps, self.eta = kind, cfg, steps, eta
        T = cfg["num_train_timesteps"]
        self.T = T
        self.ac = train_tables(cfg)
        self.final_ac = torch.tensor(1.0) if cfg.get("set_alpha_to_one") else self.ac[0]
        self.init_noise_sigma = 1.0
        self.sigmas = None
        self.i = 0
        self.begin = 0  # image to image: the first evaluation (PNDM's counter starts there)
        karras_on = cfg.get("use_karras_sigmas", False)
        if kind == "ddim":
            self.timesteps = torch.from_numpy(spaced_int(cfg, steps))
        elif kind == "pndm":
            assert cfg["skip_prk_steps"]
            t = spaced_int(cfg, steps, ascending=True)
            self.timesteps = torch.from_numpy(np.concatenate([t[:-1], t[-2:-1], t[-1:]])[::-1].astype(np.int64).copy())
            self.ets, self.cur_sample = [], None
        elif kind in ("euler", "euler_a"):
            sp = cfg["timestep_spacing"]
            if sp == "linspace":
                ts = np.linspace(0, T - 1, steps, dtype=np.float32)[::-1].copy()
            elif sp == "leading":
                ratio = T // steps
                ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.float32)
                ts += cfg["steps_offset"]
            else:
                ratio = T / steps
                ts = np.arange(T, 0, -ratio).round().copy().astype(np.float32)
                ts -= 1
            base = np.array(((1 - self.ac) / self.ac) ** 0.5)
            log_sigmas = np.log(base)
            sig = np.interp(ts, np.arange(0, len(base)), base)
            if karras_on:
                smin = cfg.get("sigma_min") or sig[-1].item()
                smax = cfg.get("sigma_max") or sig[0].item()
                sig = karras(smin, smax, steps)
                ts = np.array([sigma_to_t(s, log_sigmas) for s in sig])
            sig = torch.from_numpy(np.asarray(sig)).to(torch.float32)
            self.timesteps = torch.from_numpy(ts.astype(np.float32))
            self.sigmas = torch.cat([sig, torch.zeros(1)])
            mx = self.sigmas.max()
            self.init_noise_sigma = mx if sp in ("linspace", "trailing") else (mx ** 2 + 1) ** 0.5
        elif kind == "dpm++2m":
            sp = cfg["timestep_spacing"]
            last = T
            if sp == "linspace":
                ts = np.linspace(0, last - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
            elif sp == "leading":
                ratio = last // (steps + 1)
                ts = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
                ts += cfg["steps_offset"]
            else:
                ratio = T / steps
                ts = np.arange(last, 0, -ratio).round().copy().astype(np.int64) - 1
            base = np.array(((1 - self.ac) / self.ac) ** 0.5)
            log_sigmas = np.log(base)
            if karras_on:
                fl = np.flip(base).copy()
                smin = cfg.get("sigma_min") or fl[-1].item()
                smax = cfg.get("sigma_max") or fl[0].item()
                sig = karras(smin, smax, steps)
                ts = np.array([sigma_to_t(s, log_sigmas) for s in sig]).round()
                sig = np.concatenate([sig, sig[-1:]]).astype(np.float32)
            else:
                sig = np.interp(ts, np.arange(0, len(base)), base)
                last_sigma = ((1 - self.ac[0]) / self.ac[0]) ** 0.5
                sig = np.concatenate([sig, [last_sigma]]).astype(np.float32)
            self.sigmas = torch.from_numpy(sig)
            self.timesteps = torch.from_numpy(ts).to(torch.int64)
            self.outputs = [None, None]
            self.lower_order_nums = 0
        else:
            raise ValueError(kind)

    def __len__(self):
        return len(self.timesteps)

    # -- image to image: diffusers' get_timesteps slices timesteps[t_start * order:] of a freshly
    # set scheduler (order 1 here); the step index of the sigma samplers is the position in the
    # full list (diffusers looks it up from the timestep), PNDM's counter starts at 0
    def begin_at(self, index):
        self.i = self.begin = index

    # -- add_noise(original, noise, timesteps[index]) of each class (v0.25.1)
    def add_noise(self, x0, noise, index):
        if self.kind in ("ddim", "pndm"):
            a = self.ac[int(self.timesteps[index])]
            return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise
        if self.kind in ("euler", "euler_a"):
            return x0 + noise * self.sigmas[index]
        a, s = self._as(self.sigmas[index])
        return a * x0 + s * noise

    # -- scale_model_input
    def scale(self, x):
        if self.kind in ("euler", "euler_a"):
            s = self.sigmas[self.i]
            return x / ((s ** 2 + 1) ** 0.5)
        return x

    # -- step
    def step(self, e, t, x, gen):
        f = getattr(self, "_step_" + self.kind.replace("++", "pp"))
        out = f(e, t, x, gen)
        self.i += 1
        return out

    def _alpha(self, t):
        return self.ac[t] if t >= 0 else self.final_ac

    def _step_ddim(self, e, t, x, gen):
        t = int(t)
        prev = t - self.T // self.n_steps
        a_t, a_prev = self.ac[t], self._alpha(prev)
        b_t = 1 - a_t
        if self.cfg["prediction_type"] == "epsilon":
            x0 = (x - b_t ** 0.5 * e) / a_t ** 0.5
            pe = e
        else:
            x0 = (a_t ** 0.5) * x - (b_t ** 0.5) * e
            pe = (a_t ** 0.5) * e + (b_t ** 0.5) * x
        if self.cfg.get("clip_sample"):
            r = self.cfg.get("clip_sample_range", 1.0)
            x0 = x0.clamp(-r, r)
        var = ((1 - a_prev) / b_t) * (1 - a_t / a_prev)
        std = self.eta * var ** 0.5
        out = a_prev ** 0.5 * x0 + (1 - a_prev - std ** 2) ** 0.5 * pe
        if self.eta > 0:
            out = out + std * torch.randn(e.shape, generator=gen, dtype=e.dtype)
        return out

    def _prev_pndm(self, x, t, prev, mo):
        a_t, a_prev = self.ac[t], self._alpha(prev)
        b_t, b_prev = 1 - a_t, 1 - a_prev
        if self.cfg["prediction_type"] == "v_prediction":
            mo = (a_t ** 0.5) * mo + (b_t ** 0.5) * x
        coeff = (a_prev / a_t) ** 0.5
        denom = a_t * b_prev ** 0.5 + (a_t * b_t * a_prev) ** 0.5
        return coeff * x - (a_prev - a_t) * mo / denom

    def _step_pndm(self, e, t, x, gen):
        t = int(t)
        k = self.i - self.begin  # diffusers' counter
        prev = t - self.T // self.n_steps
        if k != 1:
            self.ets = self.ets[-3:] + [e]
        else:
            prev, t = t, t + self.T // self.n_steps
        ets = self.ets
        if len(ets) == 1 and k == 0:
            mo = e
            self.cur_sample = x
        elif len(ets) == 1 and k == 1:
            mo = (e + ets[-1]) / 2
            x, self.cur_sample = self.cur_sample, None
        elif len(ets) == 2:
            mo = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            mo = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            mo = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        return self._prev_pndm(x, t, prev, mo)

    def _x0_sigma(self, e, x, s):
        if self.cfg["prediction_type"] == "epsilon":
            return x - s * e
        return e * (-s / (s ** 2 + 1) ** 0.5) + (x / (s ** 2 + 1))

    def _step_euler(self, e, t, x, gen, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
        s = self.sigmas[self.i]
        gamma = min(s_churn / (len(self.sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= s <= s_tmax else 0.0
        noise = torch.randn(e.shape, generator=gen, dtype=e.dtype)
        s_hat = s * (gamma + 1)
        if gamma > 0:
            x = x + noise * s_noise * (s_hat ** 2 - s ** 2) ** 0.5
        if self.cfg["prediction_type"] == "epsilon":
            x0 = x - s_hat * e
        else:
            x0 = self._x0_sigma(e, x, s)
        d = (x - x0) / s_hat
        return x + d * (self.sigmas[self.i + 1] - s_hat)

    def _step_euler_a(self, e, t, x, gen):
        s, s_to = self.sigmas[self.i], self.sigmas[self.i + 1]
        x0 = self._x0_sigma(e, x, s)
        up = (s_to ** 2 * (s ** 2 - s_to ** 2) / s ** 2) ** 0.5
        down = (s_to ** 2 - up ** 2) ** 0.5
        out = x + (x - x0) / s * (down - s)
        return out + torch.randn(e.shape, generator=gen, dtype=e.dtype) * up

    @staticmethod
    def _as(s):
        a = 1 / ((s ** 2 + 1) ** 0.5)
        return a, s * a

    def _step_dpmpp2m(self, e, t, x, gen):
        n = len(self.timesteps)
        i = self.i
        final = i == n - 1 and (self.cfg["euler_at_final"] or (self.cfg["lower_order_final"] and n < 15))
        a, sg = self._as(self.sigmas[i])
        x0 = (x - sg * e) / a if self.cfg["prediction_type"] == "epsilon" else a * x - sg * e
        self.outputs = [self.outputs[1], x0]
        a_t, s_t = self._as(self.sigmas[i + 1])
        a_s0, s_s0 = self._as(self.sigmas[i])
        lam_t = torch.log(a_t) - torch.log(s_t)
        lam_s0 = torch.log(a_s0) - torch.log(s_s0)
        h = lam_t - lam_s0
        if self.cfg["solver_order"] == 1 or self.lower_order_nums < 1 or final:
            out = (s_t / s_s0) * x - (a_t * (torch.exp(-h) - 1.0)) * x0
        else:
            a_s1, s_s1 = self._as(self.sigmas[i - 1])
            lam_s1 = torch.log(a_s1) - torch.log(s_s1)
            m0, m1 = self.outputs[1], self.outputs[0]
            r0 = (lam_s0 - lam_s1) / h
            d1 = (1.0 / r0) * (m0 - m1)
            if self.cfg["solver_type"] == "midpoint":
                out = ((s_t / s_s0) * x - (a_t * (torch.exp(-h) - 1.0)) * m0
                       - 0.5 * (a_t * (torch.exp(-h) - 1.0)) * d1)
            else:
                out = ((s_t / s_s0) * x - (a_t * (torch.exp(-h) - 1.0)) * m0
                       + (a_t * ((torch.exp(-h) - 1.0) / h + 1.0)) * d1)
        if self.lower_order_nums < self.cfg["solver_order"]:
            self.lower_order_nums += 1
        return out


def synthetic_model(x, t):
    """The deterministic stand-in for a UNet shared with tests/conformance/samplers_check.c."""
    tt = torch.tensor(float(t), dtype=torch.float32)
    return torch.tanh(0.5 * x) + 0.1 * torch.sin(tt / 100)


def run(kind, cfg, steps, seed, shape, eta=0.0):
    smp = Sampler(kind, cfg, steps, eta=eta)
    gen = torch.Generator("cpu").manual_seed(seed)
    lat = torch.randn(shape, generator=gen, dtype=torch.float32) * smp.init_noise_sigma
    init = lat.clone()
    per_step = []
    for t in smp.timesteps:
        x_in = smp.scale(lat)
        e = synthetic_model(x_in, t.item())
        lat = smp.step(e, t, lat, gen)
        per_step.append(lat.clone())
    return smp, init, torch.stack(per_step), lat


def save(path, a):
    np.save(path, np.ascontiguousarray(np.asarray(a)))


def cmd_run(a):
    kind = a.sampler
    ov = dict(SD15)
    if a.sigmas == "karras":
        ov["use_karras_sigmas"] = True
    ov["prediction_type"] = "v_prediction" if a.pred == "v" else "epsilon"
    if a.spacing:
        ov["timestep_spacing"] = a.spacing
    cfg = resolve(kind, ov)
    shape = [int(v) for v in a.shape.split(",")]
    smp, init, per, final = run(kind, cfg, a.steps, a.seed, shape, eta=a.eta)
    os.makedirs(a.out, exist_ok=True)
    save(os.path.join(a.out, "timesteps.npy"), smp.timesteps.numpy().astype(np.float32))
    if smp.sigmas is not None:
        save(os.path.join(a.out, "sigmas.npy"), smp.sigmas.numpy().astype(np.float32))
    save(os.path.join(a.out, "init_noise_sigma.npy"), np.array([float(smp.init_noise_sigma)], dtype=np.float32))
    save(os.path.join(a.out, "init_latents.npy"), init.numpy())
    save(os.path.join(a.out, "step_latents.npy"), per.numpy())
    save(os.path.join(a.out, "final.npy"), final.numpy())


CASE_SAMPLERS = [("ddim", "discrete"), ("pndm", "discrete"), ("euler", "discrete"), ("euler", "karras"),
                 ("euler_a", "discrete"), ("euler_a", "karras"), ("dpm++2m", "discrete"), ("dpm++2m", "karras")]


def cmd_cases(a):
    os.makedirs(a.out, exist_ok=True)
    lines = []
    specs = []
    for kind, sig in CASE_SAMPLERS:
        for pred in ("eps", "v"):
            specs.append((kind, sig, pred, None, 0.0))
    # the other spacings, DDIM with eta, a long DPM++ run (second-order final step)
    specs += [("ddim", "discrete", "eps", None, 0.7), ("ddim", "discrete", "eps", "trailing", 0.0),
              ("pndm", "discrete", "v", "linspace", 0.0), ("euler", "discrete", "eps", "trailing", 0.0),
              ("euler_a", "discrete", "v", "linspace", 0.0), ("dpm++2m", "discrete", "eps", "trailing", 0.0),
              ("dpm++2m", "discrete", "v", "linspace", 0.0)]
    for kind, sig, pred, spacing, eta in specs:
        name = f"{kind}_{sig}_{pred}" + (f"_{spacing}" if spacing else "") + (f"_eta{eta}" if eta else "")
        name = name.replace("+", "p")
        ns = argparse.Namespace(out=os.path.join(a.out, name), sampler=kind, sigmas=sig, pred=pred,
                                steps=10, seed=1234, shape="1,4,8,8", eta=eta, spacing=spacing)
        cmd_run(ns)
        lines.append(f"{name} {kind} {sig} {pred} {spacing or 'leading'} {eta} 10 1234")
    # DPM++ 2M with 20 steps: the last step is second order (no lower_order_final below 15)
    for sig in ("discrete", "karras"):
        name = f"dpmpp2m_{sig}_eps_20steps"
        ns = argparse.Namespace(out=os.path.join(a.out, name), sampler="dpm++2m", sigmas=sig, pred="eps",
                                steps=20, seed=77, shape="1,4,8,8", eta=0.0, spacing=None)
        cmd_run(ns)
        lines.append(f"{name} dpm++2m {sig} eps leading 0 20 77")
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------
# RNG reference data

RNG_SEEDS = [0, 1, 42, 2 ** 31, 4290749014, 2 ** 63 + 5]
RNG_FRESH_SIZES = [1, 7, 16, 17, 31, 100]
RNG_CONT_SIZES = [1, 1, 3, 16, 17, 2, 100, 5, 33]
RNG_BIG_SEEDS = [2 ** 31, 2 ** 63 + 5]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def cmd_rng(a):
    os.makedirs(a.out, exist_ok=True)
    for s in RNG_SEEDS:
        fresh = [torch.randn(n, generator=torch.Generator("cpu").manual_seed(s)) for n in RNG_FRESH_SIZES]
        save(os.path.join(a.out, f"fresh_seed{s}.npy"), torch.cat(fresh).numpy())
        g = torch.Generator("cpu").manual_seed(s)
        cont = [torch.randn(n, generator=g) for n in RNG_CONT_SIZES]
        save(os.path.join(a.out, f"cont_seed{s}.npy"), torch.cat(cont).numpy())
    for s in RNG_BIG_SEEDS:
        x = torch.randn([1, 4, 64, 64], generator=torch.Generator("cpu").manual_seed(s))
        save(os.path.join(a.out, f"randn_seed{s}_1x4x64x64.npy"), x.numpy())
    with open(os.path.join(a.out, "randn_1x4x64x64_fnv1a64.txt"), "w") as f:
        for s in RNG_SEEDS:
            x = torch.randn([1, 4, 64, 64], generator=torch.Generator("cpu").manual_seed(s)).numpy()
            f.write(f"{s} {fnv1a64(x.tobytes()):016x}\n")
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write(
            "# torch.randn reference data (PyTorch 1.13.1, CPU, AVX2)\n\n"
            "Made by `tools/ref/sdref_sched.py rng tests/data/rng`; checked by tests/unit/test_rng.c "
            "(bit for bit).\n\n"
            f"- `fresh_seed<S>.npy`: for S in {RNG_SEEDS}, the concatenation of "
            f"`torch.randn(n, generator=torch.Generator('cpu').manual_seed(S))` for n in {RNG_FRESH_SIZES} "
            "(a fresh generator for each n).\n"
            f"- `cont_seed<S>.npy`: one generator seeded with S, then `torch.randn(n, generator=g)` for n in "
            f"{RNG_CONT_SIZES}, concatenated (state continuation, including the cached normal of the "
            "< 16-element path).\n"
            f"- `randn_seed<S>_1x4x64x64.npy`: `torch.randn([1, 4, 64, 64], ...)` for S in {RNG_BIG_SEEDS}.\n"
            "- `randn_1x4x64x64_fnv1a64.txt`: `SEED HASH` lines, the 64-bit FNV-1a hash of the float32 bytes "
            "of `torch.randn([1, 4, 64, 64], ...)` for every seed above (the whole tensors would not fit "
            "the size budget).\n\n"
            "Beyond these samples, `tools/ref/sdref_sched.py rng-exhaustive BUILD/tests/samplers_check` checks "
            "the >= 16-element path on every possible input (all 2^24 radius and all 2^24 angle uniforms) "
            "against torch through crafted generator states.\n")


def _untemper(y):
    y = y.astype(np.uint64) & 0xffffffff
    y ^= y >> 18
    y ^= (y << 15) & 0xefc60000
    t = y.copy()
    for _ in range(5):
        t = y ^ ((t << 7) & 0x9d2c5680)
    y = t & 0xffffffff
    t = y.copy()
    for _ in range(3):
        t = y ^ (t >> 11)
    return t & 0xffffffff


def cmd_rng_exhaustive(a):
    import subprocess
    blocks, lanes, u1_one = 38, 38 * 8, 6601320  # as in samplers_check.c
    g = torch.Generator("cpu")
    base = g.get_state().numpy().copy()
    assert base.size == 5056, "unexpected torch generator state layout"
    hdr = np.frombuffer(np.array([624, 1], dtype=np.int32).tobytes() + np.uint64(0).tobytes(), dtype=np.uint8)
    bad_total = 0
    for mode in ("radius", "sincos"):
        proc = subprocess.Popen([a.check, "--rng-sweep", mode], stdout=subprocess.PIPE)
        per = 1 if mode == "radius" else 2
        bad = 0
        for start in range(0, 1 << 24, lanes):
            k = np.arange(start, start + lanes, dtype=np.uint64)
            k[k >= (1 << 24)] = 0
            w = np.zeros((blocks, 16), dtype=np.uint64)
            w[:, :8] = k.reshape(blocks, 8) if mode == "radius" else u1_one
            w[:, 8:] = 0 if mode == "radius" else k.reshape(blocks, 8)
            st = base.copy()
            st[8:24] = hdr  # left = 624, seeded = 1, next = 0: the next 623 outputs are state[0..]
            words = np.zeros(624, dtype=np.uint64)
            words[:blocks * 16] = _untemper(w.reshape(-1))
            st[24:24 + 624 * 8] = np.frombuffer(words.tobytes(), dtype=np.uint8)
            g.set_state(torch.from_numpy(st))
            o = torch.randn(blocks * 16, generator=g).numpy().reshape(blocks, 16)
            m = min(lanes, (1 << 24) - start)
            ref = o[:, :8].reshape(-1)[:m] if per == 1 else np.stack([o[:, :8].reshape(-1), o[:, 8:].reshape(-1)], 1)[:m].reshape(-1)
            got = np.frombuffer(proc.stdout.read(4 * m * per), dtype=np.float32)
            if got.size != ref.size:
                print(f"FAIL {mode}: the C helper stopped early")
                bad += 1
                break
            bad += int(np.sum(got.view(np.uint32) != ref.view(np.uint32)))
        proc.wait()
        n = (1 << 24) * per
        print(f"{'ok  ' if bad == 0 and proc.returncode == 0 else 'FAIL'} {mode}: {n - bad} of {n} values bit-identical"
              + (" (cos and sin at radius 1.0 for every angle input)" if per == 2 else " (every radius input)"))
        bad_total += bad + (proc.returncode != 0)
    return 1 if bad_total else 0


def cmd_check_golden(a):
    import json
    bad = 0
    tiny = os.path.join(a.golden, "tiny")
    man = json.load(open(os.path.join(tiny, "manifest.json")))
    for kind, n_eval in (("ddim", 4), ("pndm", 5)):
        sc = dict(man["schedulers"][kind])
        cfg = resolve(kind, {k: v for k, v in sc.items() if not k.startswith("_")})
        smp = Sampler(kind, cfg, man["settings"]["steps"])
        tdir = os.path.join(tiny, "tensors")
        want_t = np.load(os.path.join(tdir, f"sample.{kind}.timesteps.npy"))
        ok = len(smp) == n_eval and np.array_equal(smp.timesteps.numpy(), want_t)
        lat = torch.from_numpy(np.load(os.path.join(tdir, "sample.init_noise.npy")))
        for i, t in enumerate(smp.timesteps):
            e = torch.from_numpy(np.load(os.path.join(tdir, f"sample.{kind}.step{i}.noise_pred_guided.npy")))
            lat = smp.step(e, t, lat, None)
            ok = ok and np.array_equal(lat.numpy(), np.load(os.path.join(tdir, f"sample.{kind}.step{i}.latents.npy")))
        print(f"{'ok  ' if ok else 'FAIL'} tiny {kind}: timesteps and every step's latents bit-identical")
        bad += not ok
    cs = os.path.join(a.golden, "clip-small")
    man = json.load(open(os.path.join(cs, "manifest.json")))
    names = {"DDIMScheduler": "ddim", "PNDMScheduler": "pndm", "EulerDiscreteScheduler": "euler"}
    for case in man["cases"]:
        sc = case["sampler_config"]
        kind = names[sc["_class_name"]]
        cfg = resolve(kind, {k: v for k, v in sc.items() if not k.startswith("_")})
        smp = Sampler(kind, cfg, case["steps"])
        noise = torch.randn([1, 4, 32, 32], generator=torch.Generator("cpu").manual_seed(case["seed"]))
        ok = (smp.timesteps.tolist() == case["timesteps"] and float(smp.init_noise_sigma) == case["init_noise_sigma"]
              and np.array_equal(noise.numpy(), np.load(os.path.join(cs, "cases", case["name"], "init_noise.npy"))))
        print(f"{'ok  ' if ok else 'FAIL'} clip-small {case['name']}: timesteps, init_noise_sigma, init_noise")
        bad += not ok
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rng")
    r.add_argument("out")
    c = sub.add_parser("cases")
    c.add_argument("out")
    x = sub.add_parser("rng-exhaustive")
    x.add_argument("check")
    g = sub.add_parser("check-golden")
    g.add_argument("golden")
    p = sub.add_parser("run")
    p.add_argument("out")
    p.add_argument("--sampler", required=True, choices=sorted(CLASS_DEFAULTS))
    p.add_argument("--sigmas", default="discrete", choices=["discrete", "karras"])
    p.add_argument("--pred", default="eps", choices=["eps", "v"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--shape", default="1,4,8,8")
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--spacing", default=None, choices=["leading", "trailing", "linspace"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    return {"rng": cmd_rng, "cases": cmd_cases, "run": cmd_run, "check-golden": cmd_check_golden,
            "rng-exhaustive": cmd_rng_exhaustive}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
