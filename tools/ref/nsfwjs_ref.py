#!/usr/bin/env python3
"""PyTorch reference for nsfwjs's MobileNetV2 (src/judge/nsfwjs.c), for the conformance test.

An independent implementation: it reads the TF.js layers model (model.json + weight shards)
with json + numpy, dequantises each weight (w = min + scale * q, computed in float64 and
rounded to float32, as TF.js does), and runs the Keras layer graph with torch ops in NCHW:
F.pad for ZeroPadding2D and for TF's "same" padding (low = total // 2, high = the rest),
F.conv2d (groups = C for DepthwiseConv2D), F.batch_norm with the moving statistics (not
folded), clamp for ReLU(max_value), F.avg_pool2d, F.linear, softmax.

Preprocessing as nsfwjs's NSFWJS.infer: uint8 RGB / 255 in float32, then (if the image is
not already the input size) bilinear resize with align_corners=True (tf.image.resizeBilinear
with alignCorners = true is the same mapping: source = dst * (in - 1) / (out - 1)), done in
float64 and rounded to float32 as TF.js's CPU kernel does.

    nsfwjs_ref.py MODEL_DIR OUT_DIR [--float64] [--synthetic]

--synthetic first writes a small random model in the same format to MODEL_DIR (37x45 input,
weights float32, uint8, uint16 and float16) that uses the options the nsfwjs model does not:
"same" padding with stride 2 and an even kernel (asymmetric padding), conv bias, a relu
activation inside Conv2D (so the BatchNormalization after it stays a separate op), a
BatchNormalization without center, depth_multiplier 2, ZeroPadding2D given as an int, a
ReLU without max_value after it (a separate op), an Add of three inputs, pooling with
strides null, and a BatchNormalization after a Dense layer.

writes to OUT_DIR, for each synthetic image NAME (listed in OUT_DIR/cases.txt):
    img_NAME.npy     int32 [H, W, 3] the RGB pixels
    input_NAME.npy   float32 [224, 224, 3] the preprocessed network input (NHWC)
    probs_NAME.npy   float32 [5] the softmax output (Drawing, Hentai, Neutral, Porn, Sexy)
    logits_NAME.npy  float32 [5] the last Dense layer before its softmax
and, for the first image, layer_LAYER.npy (float32, NHWC or [C]) for the layers in DUMP.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

# Layer outputs dumped for the first image (names of nsfwjs MobileNetV2 layers; ones absent
# from another model are skipped).
DUMP = ["c1", "r1", "bn2", "r2", "c2", "c3", "r3", "pool", "r4",  # --synthetic
        "Conv1_relu", "expanded_conv_project_BN", "block_1_pad", "block_1_depthwise_relu", "block_2_add",
        "block_6_depthwise_relu", "block_13_pad", "block_16_project_BN", "out_relu", "average_pooling2d_1",
        "dense_1", "dense_2"]

QBYTES = {"uint8": (np.uint8, 1), "uint16": (np.dtype("<u2"), 2), "float16": (np.dtype("<f2"), 2)}


def load_model(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        mj = json.load(f)
    weights = {}
    for group in mj["weightsManifest"]:
        blob = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            shape = tuple(w["shape"])
            n = int(np.prod(shape)) if shape else 1
            qz = w.get("quantization")
            assert w["dtype"] == "float32", w
            if qz:
                dt, size = QBYTES[qz["dtype"]]
                raw = np.frombuffer(blob, dtype=dt, count=n, offset=pos)
                if qz["dtype"] == "float16":
                    val = raw.astype(np.float32)
                else:
                    val = (raw.astype(np.float64) * qz["scale"] + qz["min"]).astype(np.float32)
            else:
                size = 4
                val = np.frombuffer(blob, dtype="<f4", count=n, offset=pos).astype(np.float32)
            pos += n * size
            weights[w["name"]] = val.reshape(shape)
        assert pos == len(blob), (pos, len(blob))
    topo = mj["modelTopology"]
    topo = topo.get("model_config", topo)
    return topo["config"], weights


def tf_same_pad(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Net:
    def __init__(self, cfg, weights, dtype):
        self.cfg, self.dtype = cfg, dtype
        self.W = {k: torch.from_numpy(np.array(v)).to(dtype) for k, v in weights.items()}
        self.used = set()
        self.input_hw = None
        for layer in cfg["layers"]:
            if layer["class_name"] == "InputLayer":
                self.input_hw = tuple(layer["config"]["batch_input_shape"][1:3])

    def w(self, layer, param):
        key = f"{layer}/{param}"
        self.used.add(key)
        return self.W[key]

    def run(self, x, dumps=None):
        """x: [1, 3, H, W] (NCHW) in the net's dtype. Returns (probs, logits) and fills dumps."""
        vals, logits = {}, None
        for layer in self.cfg["layers"]:
            name, kind, c = layer["name"], layer["class_name"], layer["config"]
            ins = [vals[ref[0]] for node in layer["inbound_nodes"] for ref in node]
            if kind == "InputLayer":
                y = x
            elif kind == "ZeroPadding2D":
                p = c["padding"]
                if isinstance(p, int):
                    p = [[p, p], [p, p]]
                elif isinstance(p[0], int):
                    p = [[p[0], p[0]], [p[1], p[1]]]
                (t, b), (l, r) = p
                y = F.pad(ins[0], (l, r, t, b))
            elif kind in ("Conv2D", "DepthwiseConv2D"):
                h = ins[0]
                kh, kw = pair(c["kernel_size"])
                sh, sw = pair(c["strides"])
                assert tuple(pair(c.get("dilation_rate", 1))) == (1, 1)
                if c["padding"] == "same":
                    pt, pb = tf_same_pad(h.shape[2], kh, sh)
                    pl, pr = tf_same_pad(h.shape[3], kw, sw)
                    h = F.pad(h, (pl, pr, pt, pb))
                if kind == "Conv2D":
                    k = self.w(name, "kernel").permute(3, 2, 0, 1)  # [kh,kw,in,out] -> [out,in,kh,kw]
                    groups = 1
                else:
                    dk = self.w(name, "depthwise_kernel")  # [kh, kw, C, dm]
                    C, dm = dk.shape[2], dk.shape[3]
                    k = dk.permute(2, 3, 0, 1).reshape(C * dm, 1, kh, kw)
                    groups = C
                bias = self.w(name, "bias") if c.get("use_bias", True) else None
                y = F.conv2d(h, k, bias, stride=(sh, sw), groups=groups)
                y, logits = self.activation(y, c.get("activation", "linear"), logits)
            elif kind == "BatchNormalization":
                C = ins[0].shape[1]
                gamma = self.w(name, "gamma") if c.get("scale", True) else torch.ones(C, dtype=self.dtype)
                beta = self.w(name, "beta") if c.get("center", True) else torch.zeros(C, dtype=self.dtype)
                y = F.batch_norm(ins[0], self.w(name, "moving_mean"), self.w(name, "moving_variance"), gamma, beta,
                                 training=False, eps=c["epsilon"])
            elif kind == "ReLU":
                assert not c.get("negative_slope") and not c.get("threshold")
                y = torch.relu(ins[0])
                if c.get("max_value") is not None:
                    y = torch.clamp(y, max=float(c["max_value"]))
            elif kind == "Add":
                y = ins[0]
                for other in ins[1:]:
                    y = y + other
            elif kind == "AveragePooling2D":
                assert c["padding"] == "valid"
                ps = pair(c["pool_size"])
                st = pair(c["strides"]) if c.get("strides") is not None else ps
                y = F.avg_pool2d(ins[0], ps, st)
            elif kind == "Flatten":
                y = ins[0].permute(0, 2, 3, 1).reshape(1, -1)  # channels_last order
            elif kind == "Dropout":
                y = ins[0]
            elif kind == "Dense":
                y = F.linear(ins[0], self.w(name, "kernel").t(), self.w(name, "bias") if c.get("use_bias", True) else None)
                y, logits = self.activation(y, c.get("activation", "linear"), logits)
            else:
                raise SystemExit(f"layer {name}: {kind} not handled by the reference")
            vals[name] = y
            if dumps is not None and name in DUMP:
                dumps[name] = nhwc(y)
        out = vals[self.cfg["output_layers"][0][0]]
        unused = set(self.W) - self.used
        assert not unused, unused
        return out.reshape(-1), logits.reshape(-1)

    @staticmethod
    def activation(y, act, logits):
        if act == "linear":
            return y, logits
        if act == "relu":
            return torch.relu(y), logits
        if act == "softmax":
            return torch.softmax(y, dim=1), y
        raise SystemExit(f"activation {act} not handled by the reference")


def nhwc(t):
    t = t.detach().to(torch.float32)
    return (t[0].permute(1, 2, 0) if t.dim() == 4 else t[0]).contiguous().numpy()


def preprocess(rgb, hw, dtype):
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None] / 255.0  # float32, as TF.js
    if tuple(rgb.shape[:2]) != tuple(hw):
        # TF.js's CPU kernel does the interpolation in JS numbers (float64) on the float32
        # values and stores float32; torch's float32 path computes the source coordinates in
        # float32 (errors up to ~1e-5), so interpolate in float64 and round once.
        x = F.interpolate(x.double(), size=hw, mode="bilinear", align_corners=True).float()
    return x.to(dtype)


def write_synthetic(model_dir):
    """A small random TF.js layers model (see the module docstring)."""
    rng = np.random.default_rng(7)
    layers, weights, blob = [], [], []

    def layer(name, kind, config, inputs):
        layers.append({"name": name, "class_name": kind, "config": dict(config, name=name),
                       "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else []})

    def weight(name, value, quant=None):
        value = np.asarray(value, np.float32)
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32"}
        if quant in ("uint8", "uint16"):
            levels = 255 if quant == "uint8" else 65535
            lo, hi = float(value.min()), float(value.max())
            scale = (hi - lo) / levels if hi > lo else 1.0
            qv = np.round((value - lo) / scale).astype(np.uint8 if quant == "uint8" else "<u2")
            spec["quantization"] = {"dtype": quant, "min": lo, "scale": scale}
            blob.append(qv.tobytes())
        elif quant == "float16":
            spec["quantization"] = {"dtype": "float16"}
            blob.append(value.astype("<f2").tobytes())
        else:
            blob.append(value.astype("<f4").tobytes())
        weights.append(spec)

    def he(*shape, fan_in):
        return rng.normal(0, np.sqrt(2.0 / fan_in), shape)

    def bn(name, C, inp, quant=None, center=True):
        layer(name, "BatchNormalization", {"axis": -1, "epsilon": 1e-3, "center": center, "scale": True}, [inp])
        weight(f"{name}/gamma", rng.uniform(0.5, 1.5, C), quant)
        if center:
            weight(f"{name}/beta", rng.normal(0, 0.2, C), quant)
        weight(f"{name}/moving_mean", rng.normal(0, 0.3, C), quant)
        weight(f"{name}/moving_variance", rng.uniform(0.5, 2.0, C), quant)

    conv = {"strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "linear", "use_bias": False}
    layer("in", "InputLayer", {"batch_input_shape": [None, 37, 45, 3], "dtype": "float32", "sparse": False}, [])
    layer("c1", "Conv2D", dict(conv, filters=8, kernel_size=[4, 3], strides=[2, 2], padding="same", use_bias=True,
                               activation="relu"), ["in"])
    weight("c1/kernel", he(4, 3, 3, 8, fan_in=36), "uint8")
    weight("c1/bias", rng.normal(0, 0.1, 8))
    bn("bn1", 8, "c1", center=False)
    layer("r1", "ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}, ["bn1"])
    layer("dw", "DepthwiseConv2D", dict(conv, kernel_size=[3, 3], strides=[2, 2], padding="same", depth_multiplier=2,
                                        use_bias=True), ["r1"])
    weight("dw/depthwise_kernel", he(3, 3, 8, 2, fan_in=9), "uint16")
    weight("dw/bias", rng.normal(0, 0.1, 16))
    bn("bn2", 16, "dw", "float16")
    layer("pad", "ZeroPadding2D", {"padding": 1, "data_format": "channels_last"}, ["bn2"])
    layer("r2", "ReLU", {"max_value": None}, ["pad"])
    layer("c2", "Conv2D", dict(conv, filters=16, kernel_size=[3, 3]), ["r2"])
    weight("c2/kernel", he(3, 3, 16, 16, fan_in=144))
    layer("c3", "Conv2D", dict(conv, filters=16, kernel_size=[1, 1], use_bias=True), ["bn2"])
    weight("c3/kernel", he(1, 1, 16, 16, fan_in=16), "uint8")
    weight("c3/bias", rng.normal(0, 0.1, 16), "uint8")
    layer("add", "Add", {}, ["bn2", "c2", "c3"])
    layer("r3", "ReLU", {"max_value": 6}, ["add"])
    layer("pool", "AveragePooling2D", {"pool_size": [2, 2], "strides": None, "padding": "valid",
                                       "data_format": "channels_last"}, ["r3"])
    layer("flat", "Flatten", {"data_format": "channels_last"}, ["pool"])
    layer("d1", "Dense", {"units": 32, "activation": "linear", "use_bias": True}, ["flat"])
    weight("d1/kernel", he(480, 32, fan_in=480), "uint8")
    weight("d1/bias", rng.normal(0, 0.1, 32))
    bn("bn4", 32, "d1")
    layer("r4", "ReLU", {"max_value": None}, ["bn4"])
    layer("drop", "Dropout", {"rate": 0.25}, ["r4"])
    layer("d2", "Dense", {"units": 5, "activation": "softmax", "use_bias": True}, ["drop"])
    weight("d2/kernel", he(32, 5, fan_in=32))
    weight("d2/bias", rng.normal(0, 0.1, 5))
    order = rng.permutation(len(weights))  # manifest order is not layer order (as in nsfwjs's file)
    model = {"modelTopology": {"keras_version": "2.2.4", "backend": "tensorflow", "model_config": {
                 "class_name": "Model", "config": {"name": "synthetic", "layers": layers,
                                                   "input_layers": [["in", 0, 0]], "output_layers": [["d2", 0, 0]]}}},
             "weightsManifest": [{"paths": ["group1-shard1of2", "group1-shard2of2"],
                                  "weights": [weights[i] for i in order]}]}
    data = b"".join(blob[i] for i in order)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "model.json"), "w") as f:
        json.dump(model, f)
    cut = len(data) // 3  # two shards, split inside a weight
    for name, part in (("group1-shard1of2", data[:cut]), ("group1-shard2of2", data[cut:])):
        with open(os.path.join(model_dir, name), "wb") as f:
            f.write(part)


def images():
    """Deterministic synthetic RGB images: name -> uint8 [H, W, 3]."""
    rng = np.random.default_rng(20240601)
    out = {}
    yy, xx = np.mgrid[0:224, 0:224].astype(np.float64)
    out["gradient"] = np.stack([xx / 223 * 255, yy / 223 * 255, np.full_like(xx, 128)], -1).round().astype(np.uint8)
    out["noise"] = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    out["skin"] = np.broadcast_to(np.array([224, 172, 140], np.uint8), (224, 224, 3)).copy()
    # non-square, resized by the preprocessing: 200 x 320 (width down, height up) and a small
    # 61 x 97 noise image (both up), a tall 400 x 150 pattern
    yy, xx = np.mgrid[0:200, 0:320].astype(np.float64)
    wave = np.stack([np.sin(xx / 9) * 100 + 128, np.cos(yy / 13) * 100 + 128, ((xx // 16 + yy // 16) % 2) * 200 + 20], -1)
    out["wide_200x320"] = wave.round().clip(0, 255).astype(np.uint8)
    out["noise_61x97"] = rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:400, 0:150].astype(np.float64)
    tall = np.stack([yy / 399 * 255, (xx % 30) * 8, 255 - yy / 399 * 200], -1)
    out["tall_400x150"] = tall.round().clip(0, 255).astype(np.uint8)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--float64", action="store_true", help="also run in float64 and report the float32 reference's error")
    ap.add_argument("--synthetic", action="store_true", help="first write a small random model to MODEL_DIR")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    if a.synthetic:
        write_synthetic(a.model_dir)
    cfg, weights = load_model(a.model_dir)
    net = Net(cfg, weights, torch.float32)
    net64 = Net(cfg, weights, torch.float64) if a.float64 else None
    names = []
    with torch.no_grad():
        for i, (name, rgb) in enumerate(images().items()):
            x = preprocess(rgb, net.input_hw, torch.float32)
            dumps = {} if i == 0 else None
            probs, logits = net.run(x, dumps)
            np.save(os.path.join(a.out_dir, f"img_{name}.npy"), rgb.astype(np.int32))
            np.save(os.path.join(a.out_dir, f"input_{name}.npy"), nhwc(x))
            np.save(os.path.join(a.out_dir, f"probs_{name}.npy"), probs.numpy().astype(np.float32))
            np.save(os.path.join(a.out_dir, f"logits_{name}.npy"), logits.numpy().astype(np.float32))
            for k, v in (dumps or {}).items():
                np.save(os.path.join(a.out_dir, f"layer_{k}.npy"), v)
            line = f"{name:14s} {rgb.shape[0]}x{rgb.shape[1]}: " + " ".join(
                f"{c} {p:.4f}" for c, p in zip(["Drawing", "Hentai", "Neutral", "Porn", "Sexy"], probs.tolist()))
            if net64:
                p64, _ = net64.run(preprocess(rgb, net.input_hw, torch.float64))
                line += f"  (float32 vs float64: {float((probs.double() - p64).abs().max()):.2g})"
            print(line)
            names.append(name)
    with open(os.path.join(a.out_dir, "cases.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


if __name__ == "__main__":
    sys.exit(main())
