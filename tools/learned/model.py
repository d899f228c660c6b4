"""The learned detector's model in PyTorch, and its weights file (safetensors).

Model (the C side, src/safety/learned.c, computes the same):
  per word j:   u_j = sum of E[i] over its n-gram and word features,   g_j = E[bigram_j] (j >= 1)
  window a:     words a .. e-1, e = min(a + WINDOW, n), a = 0 .. max(n - WINDOW, 0)
                x_a = sum_{j=a}^{e-1} u_j + sum_{j=a+1}^{e-1} g_j        (n = 0: one window, x = 0)
  logits:       z_a = W2 relu(W1 x_a + b1) + b2                          (one per category)
  prompt:       z_c = max over windows a of z_a[c];   p_c = sigmoid(z_c)
E is stored in float16; W1, b1, W2, b2 in float32.
"""
import json
import struct

import numpy as np
import torch
import torch.nn as nn

import features

FORMAT = "safesd-learned-detector"
VERSION = "2"           # written; "1" (no sense table) is still read
VERSIONS = ("1", "2")


class Net(nn.Module):
    """glove: the frozen word vectors [n, 100] (glove.py) or None. Their rows are feature
    indices 2^buckets_log2 + i, computed as W_g glove[i] (W_g learned) or, once set_frozen()
    is called (export, a loaded file), read from the frozen projected table."""

    def __init__(self, buckets_log2, dim, hidden, n_cat, window, glove=None):
        super().__init__()
        self.window = window
        self.nb = 1 << buckets_log2
        self.embed = nn.Embedding(self.nb, dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, n_cat)
        self.glove = None if glove is None else torch.from_numpy(np.asarray(glove, np.float32))
        self.gproj = nn.Linear(self.glove.shape[1], dim, bias=False) if self.glove is not None else None
        if self.gproj is not None:
            nn.init.normal_(self.gproj.weight, std=0.02)
        self.frozen = None

    def set_frozen(self, rows):
        """Use these projected word-vector rows [n, dim] (float32) from now on."""
        self.frozen = torch.from_numpy(np.asarray(rows, np.float32))

    def projected(self):
        """The projected word-vector rows [n, dim]."""
        if self.frozen is not None:
            return self.frozen
        return self.gproj(self.glove) if self.glove is not None else torch.zeros(0, self.embed.embedding_dim)

    def rows(self, idx):
        """Embedding rows of feature indices (word-vector rows past 2^buckets_log2)."""
        if self.glove is None and self.frozen is None:
            return self.embed(idx)
        base = idx < self.nb
        pb, pg = torch.nonzero(base).squeeze(1), torch.nonzero(~base).squeeze(1)
        out = torch.zeros(len(idx), self.embed.embedding_dim)
        out = out.index_copy(0, pb, self.embed(idx[pb]))
        if len(pg):
            gi = idx[pg] - self.nb
            g = self.frozen[gi] if self.frozen is not None else self.gproj(self.glove[gi])
            out = out.index_copy(0, pg, g)
        return out

    def forward(self, u, g, lengths, word_mask=None):
        """u, g: [B, L, D] padded per prompt (zeros past each length); lengths [B].
        word_mask [B, L] (1 keep, 0 drop) drops words as in attribution: u_j, g_j, g_{j+1}."""
        if word_mask is not None:
            m = word_mask.unsqueeze(-1)
            u = u * m
            g = g * m * torch.cat([torch.ones_like(m[:, :1]), m[:, :-1]], 1)  # g_j needs j and j-1 kept
        B, L, D = u.shape
        W = self.window
        zero = torch.zeros(B, 1, D)
        U = torch.cat([zero, u.cumsum(1)], 1)    # U[k] = sum_{j<k} u_j
        G = torch.cat([zero, g.cumsum(1)], 1)
        nwin = max(L - W + 1, 1)
        a = torch.arange(nwin)
        e = torch.clamp(a.unsqueeze(0) + W, max=lengths.unsqueeze(1))           # [B, nwin]
        a2 = a.unsqueeze(0).expand(B, nwin)
        ebig = e.clamp(min=0)
        x = (torch.gather(U, 1, ebig.unsqueeze(-1).expand(B, nwin, D)) - torch.gather(U, 1, torch.minimum(a2, ebig).unsqueeze(-1).expand(B, nwin, D))
             + torch.gather(G, 1, ebig.unsqueeze(-1).expand(B, nwin, D))
             - torch.gather(G, 1, torch.minimum(a2 + 1, ebig).unsqueeze(-1).expand(B, nwin, D)))
        valid = a.unsqueeze(0) <= torch.clamp(lengths - W, min=0).unsqueeze(1)    # [B, nwin]
        z = self.out(torch.relu(self.hidden(x)))                                 # [B, nwin, C]
        z = z.masked_fill(~valid.unsqueeze(-1), float("-inf"))
        return z.max(1).values


class Featurised:
    """Features of many prompts in flat arrays: prompt i has words wstart[i] .. wstart[i+1]-1;
    global word t has features feat[fstart[t]:fstart[t+1]] and bigram big[t] (-1: none)."""

    def __init__(self, prompts, hasher, tables):
        from array import array
        wstart, fstart, feat, big = array("q", [0]), array("q", [0]), array("i"), array("i")
        nsense = array("i")          # per word: how many of its features (the last ones) are semantic
        for p in prompts:
            ws, u, g = hasher.prompt(p, tables)
            for (w, _, _), fs, b in zip(ws, u, g):
                feat.extend(fs)
                fstart.append(len(feat))
                big.append(-1 if b is None else b)
                ns = len(hasher.senses.synsets(w)) if hasher.senses is not None else 0
                ns += 1 if hasher.glove is not None and hasher.glove.index(w) >= 0 else 0
                nsense.append(ns)      # the semantic features: the word vector's row and the senses
            wstart.append(len(big))
        self.nsense = np.frombuffer(nsense, np.int32).astype(np.int64) if len(nsense) else np.zeros(0, np.int64)
        self.wstart = np.frombuffer(wstart, np.int64).copy()
        self.fstart = np.frombuffer(fstart, np.int64).copy()
        self.feat = np.frombuffer(feat, np.int32).astype(np.int64) if len(feat) else np.zeros(0, np.int64)
        self.big = np.frombuffer(big, np.int32).astype(np.int64) if len(big) else np.zeros(0, np.int64)

    def __len__(self):
        return len(self.wstart) - 1


def _ranges(a, b):
    """Concatenation of arange(a[i], b[i]) for all i, vectorised."""
    n = b - a
    tot = int(n.sum())
    if tot == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(a - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return starts + np.arange(tot)


def batch_tensors(fz, idx, net, surface_drop=0.0):
    """u, g [B, L, D] (zero padded) and lengths [B] of the prompts idx of Featurised fz.
    surface_drop (training only): each word that has semantic features (a word vector, senses)
    loses, with this probability, its surface features (n-grams, word, its bigram), so that the
    model learns to read the semantic ones too."""
    idx = np.asarray(idx, np.int64)
    w0, w1 = fz.wstart[idx], fz.wstart[idx + 1]
    lengths = w1 - w0
    B, L = len(idx), int(max(lengths.max() if len(lengths) else 0, 1))
    D = net.embed.embedding_dim
    # slot of each word in the [B, L] grid
    words = _ranges(w0, w1)
    slot = np.repeat(np.arange(B) * L - w0, lengths) + words
    nf = fz.fstart[words + 1] - fz.fstart[words]
    fpos = _ranges(fz.fstart[w0], fz.fstart[w1])
    fslot = np.repeat(slot, nf)
    bw = fz.big[words]
    has = bw >= 0
    if surface_drop > 0:
        ns = fz.nsense[words]
        drop = (ns > 0) & (np.random.random(len(words)) < surface_drop)
        fi = np.arange(len(fpos)) - np.repeat(np.concatenate([[0], np.cumsum(nf)[:-1]]), nf)   # index within the word
        keep = ~np.repeat(drop, nf) | (fi >= np.repeat(nf - ns, nf))
        fpos, fslot = fpos[keep], fslot[keep]
        has = has & ~drop
    E = net.rows
    u = torch.zeros(B * L, D).index_add_(0, torch.from_numpy(fslot), E(torch.from_numpy(fz.feat[fpos])))
    g = torch.zeros(B * L, D).index_add_(0, torch.from_numpy(slot[has]), E(torch.from_numpy(bw[has])))
    return u.view(B, L, D), g.view(B, L, D), torch.from_numpy(lengths)


# ---------------------------------------------------------------------------------------
# the weights file

def write_safetensors(path, tensors, meta):
    """tensors: name -> numpy array (float16, float32 or int32)."""
    dt = {np.dtype("float16"): "F16", np.dtype("float32"): "F32", np.dtype("int32"): "I32"}
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    import os
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dt = {"F16": np.float16, "F32": np.float32, "I32": np.int32}
    out = {}
    for name, e in header.items():
        s, t = e["data_offsets"]
        out[name] = np.frombuffer(data[base + s:base + t], dtype=np.dtype(dt[e["dtype"]]).newbyteorder("<")).reshape(e["shape"])
    return out, meta


def export(path, net, tables, hp, meta, senses=None, glove=None, cjk=False):
    """glove: the glove.Glove table whose rows net projects (or None); cjk: the file declares
    extension "cjk" (features.words splits CJK text into characters)."""
    t = tables.arrays
    embed = net.embed.weight.detach().numpy()
    if glove is not None:
        with torch.no_grad():
            embed = np.concatenate([embed, net.projected().numpy()], 0)
    tensors = {
        "embed": embed.astype(np.float16),
        "hidden.weight": net.hidden.weight.detach().numpy().astype(np.float32),
        "hidden.bias": net.hidden.bias.detach().numpy().astype(np.float32),
        "out.weight": net.out.weight.detach().numpy().astype(np.float32),
        "out.bias": net.out.bias.detach().numpy().astype(np.float32),
        "norm.from": np.array(t["norm_from"], dtype=np.int32),
        "norm.offset": np.array(t["norm_off"], dtype=np.int32),
        "norm.to": np.array(t["norm_to"], dtype=np.int32),
        "class.start": np.array(t["class_start"], dtype=np.int32),
        "class.kind": np.array(t["class_kind"], dtype=np.int32),
        "confusable.from": np.array(t["conf_from"], dtype=np.int32),
        "confusable.to": np.array(t["conf_to"], dtype=np.int32),
    }
    version, ext = "1", []
    if glove is not None:
        version = "2"
        ext.append("glove")
        tensors["glove.word_hash"] = np.asarray(glove.word_hash, np.uint32).view(np.int32)
        meta = dict(meta, glove_words=str(len(glove)))
    if senses is not None:
        version = "2"
        ext.append("senses")
        sa = senses.arrays
        for k in ("word_hash", "word_off", "word_syn", "syn_code", "par_off", "parents"):
            a = np.array(sa[k], dtype=np.int64)
            if k == "word_hash":
                a = a.astype(np.uint32).view(np.int32)
            tensors["sense." + k] = a.astype(np.int32)
    if cjk:
        version = "2"
        ext.append("cjk")
    if version == "2":
        meta = dict(meta, extensions=",".join(ext))
    m = {"format": FORMAT, "version": version, "hash": "fnv1a32", **hp, **meta}
    write_safetensors(path, tensors, m)


def net_from_file(path):
    """A Net holding the weights of a weights file (embeddings widened from float16)."""
    ld = Loaded(path)
    net = Net(int(ld.meta["buckets_log2"]), ld.E.shape[1], ld.W1.shape[0], ld.W2.shape[0], ld.window)
    nb = 1 << int(ld.meta["buckets_log2"])
    if ld.E.shape[0] > nb:
        net.set_frozen(ld.E[nb:])
    with torch.no_grad():
        net.embed.weight.copy_(torch.from_numpy(ld.E[:nb]))
        net.hidden.weight.copy_(torch.from_numpy(np.array(ld.W1)))
        net.hidden.bias.copy_(torch.from_numpy(np.array(ld.b1)))
        net.out.weight.copy_(torch.from_numpy(np.array(ld.W2)))
        net.out.bias.copy_(torch.from_numpy(np.array(ld.b2)))
    return net


class Loaded:
    """A weights file as the C side reads it: scores in float32 numpy (the reference for the
    conformance test)."""

    def __init__(self, path):
        t, meta = read_safetensors(path)
        if meta.get("format") != FORMAT or meta.get("version") not in VERSIONS:
            raise SystemExit(f"{path}: not a {FORMAT} file of version {' or '.join(VERSIONS)}")
        self.meta = meta
        self.tables = features.Tables(t["norm.from"], t["norm.offset"], t["norm.to"], t["class.start"],
                                      t["class.kind"], t["confusable.from"], t["confusable.to"])
        self.senses = None
        ext = []
        if meta["version"] == "2":   # as the C loader: the extensions are named, and only known ones
            if "extensions" not in meta:
                raise SystemExit(f"{path}: a version 2 file needs 'extensions' in its metadata")
            ext = [e for e in meta["extensions"].split(",") if e]
            bad = [e for e in ext if e not in ("glove", "senses", "cjk")]
            if bad:
                raise SystemExit(f"{path}: extension '{bad[0]}' is not supported (glove, senses, cjk)")
        self.glove = None
        if "glove" in ext:
            import glove
            self.glove = glove.Glove(t["glove.word_hash"].view(np.uint32), np.zeros((0, 0), np.float32))
        if "senses" in ext:
            import senses
            self.senses = senses.SenseTable(t["sense.word_hash"].view(np.uint32), t["sense.word_off"], t["sense.word_syn"],
                                            t["sense.syn_code"], t["sense.par_off"], t["sense.parents"],
                                            int(meta["sense_depth"]), int(meta["sense_max"]))
        self.hasher = features.Hasher(int(meta["buckets_log2"]), int(meta["ngram_min"]), int(meta["ngram_max"]),
                                      self.senses, self.glove, "cjk" in ext)
        self.window = int(meta["window"])
        self.categories = meta["categories"].split(",")
        self.E = t["embed"].astype(np.float32)
        self.W1, self.b1 = t["hidden.weight"], t["hidden.bias"]
        self.W2, self.b2 = t["out.weight"], t["out.bias"]
        self.threshold = float(meta.get("threshold", "0.5"))

    def window_logits(self, u, g, drop=()):
        n = len(u)
        D = self.E.shape[1]
        uu = [np.zeros(D, np.float32) if j in drop else u[j] for j in range(n)]
        gg = [np.zeros(D, np.float32) if (j in drop or (j - 1) in drop or j == 0) else g[j] for j in range(n)]
        zs = []
        for a in range(max(n - self.window, 0) + 1):
            e = min(a + self.window, n)
            x = np.zeros(D, np.float32)
            for j in range(a, e):
                x = x + uu[j]
            for j in range(a + 1, e):
                x = x + gg[j]
            h = np.maximum(self.W1 @ x + self.b1, 0)
            zs.append(self.W2 @ h + self.b2)
        return np.array(zs, np.float32)

    def word_vectors(self, text):
        ws, uf, gf = self.hasher.prompt(text, self.tables)
        D = self.E.shape[1]
        u = [self.E[f].sum(0, dtype=np.float32) if f else np.zeros(D, np.float32) for f in uf]
        g = [self.E[x] if x is not None else np.zeros(D, np.float32) for x in gf]
        return ws, u, g

    def scores(self, text):
        _, u, g = self.word_vectors(text)
        z = self.window_logits(u, g).max(0)
        return 1 / (1 + np.exp(-z.astype(np.float64)))
