#!/usr/bin/env python3
"""Generate PyTorch conformance cases for bnh in the bn-case/1 JSON format.

OPTIONAL: the Rust tests only read the committed JSON files under
harness/tests/fixtures/torch/; nothing in the build runs this script and it is
not needed to build or test the project. It documents how those files were made
and can regenerate them:

    python3 scripts/gen_fixtures.py --out harness/tests/fixtures/torch

and check them (JSON loads back, shapes/lengths, expected vs reference
differences small, torch-float64 references agree with an mpmath recomputation):

    python3 scripts/gen_fixtures.py --verify harness/tests/fixtures/torch

Requirements: python3 with torch (CPU is enough), numpy and mpmath.
Format: see docs/BN-CASE-FORMAT.md (bn-case/1). Each case is one forward (+ backward
when grad_output is given) of nn.BatchNorm{1,2,3}d, i.e. F.batch_norm with the
module's buffer rules:
  * bn_training = training or not track_running_stats
  * training and tracking: num_batches_tracked += 1, and momentum=None means
    factor = 1 / num_batches_tracked (after the increment)
`expected` is what PyTorch computes in the case dtype. `reference` is the same
computation done more precisely:
  * f32 cases: PyTorch in float64 on the float64-converted inputs;
  * f64 cases: mpmath at 60 significant digits (exact sums, sqrt), rounded to
    the nearest double at the end.
Everything is deterministic: fixed per-case seeds and torch.set_num_threads(1)
(CPU batch-norm reductions may otherwise depend on the thread count).
The five hand-picked sample cases (from the shared fixtures-sample folder) are
not generated here; they are copied verbatim next to the generated ones.
"""

import argparse
import json
import math
import os
import sys
import zlib

import numpy as np
import torch
import mpmath
from mpmath import mp, mpf

mp.dps = 60

FORMAT = "bn-case/1"
DTYPES = {"f32": torch.float32, "f64": torch.float64}
MODULES = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
           4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}


# --------------------------------------------------------------------------
# case table
# --------------------------------------------------------------------------

def case(name, note, dtype, shape, *, cl=False, eps=1e-5, momentum=0.1,
         affine=True, track=True, training=True, nbt=0, grad=True,
         offsets=None, spread=1.0, nan_at=None, const=None, rm_near_offset=False):
    """offsets: per-channel additive offset (ill-conditioned inputs);
    nan_at: (channel, k) -> the k-th element (logical order) of channel is NaN;
    const: (channel, value) -> that channel is constant."""
    return dict(name=name, note=note, dtype=dtype, shape=list(shape), cl=cl,
                eps=eps, momentum=momentum, affine=affine, track=track,
                training=training, nbt=nbt, grad=grad, offsets=offsets,
                spread=spread, nan_at=nan_at, const=const,
                rm_near_offset=rm_near_offset)


CASES = [
    # ---- plain cases, every rank, both dtypes -------------------------------
    case("bn1d-2d-f32-train", "BatchNorm1d (N,C) f32 training, momentum 0.1",
         "f32", (8, 5)),
    case("bn1d-2d-f64-train-eps1e-3", "BatchNorm1d (N,C) f64 training, eps 1e-3, nbt 7",
         "f64", (6, 4), eps=1e-3, nbt=7),
    case("bn1d-2d-f32-eval-nograd", "BatchNorm1d (N,C) f32 eval with running stats, no grad_output",
         "f32", (5, 4), training=False, nbt=12, grad=False),
    case("bn1d-3d-f32-train-momentum0.3", "BatchNorm1d (N,C,L) f32 training, momentum 0.3",
         "f32", (4, 3, 7), momentum=0.3),
    case("bn1d-3d-f64-train-momentum-none-nbt3", "BatchNorm1d (N,C,L) f64 training, momentum None with nbt 3 -> factor 1/4",
         "f64", (3, 4, 5), momentum=None, nbt=3),
    case("bn1d-3d-f32-eval-no-track", "BatchNorm1d (N,C,L) f32 eval, track_running_stats=False -> batch stats, no buffers",
         "f32", (4, 3, 5), training=False, track=False),
    case("bn1d-3d-f64-eval-eps0.5", "BatchNorm1d (N,C,L) f64 eval with running stats, eps 0.5",
         "f64", (3, 2, 6), training=False, eps=0.5, nbt=5),
    case("bn2d-f32-train-momentum0", "BatchNorm2d f32 training, momentum 0.0: stats unchanged, nbt still +1",
         "f32", (2, 3, 3, 3), momentum=0.0),
    case("bn2d-f64-train-eps0.5", "BatchNorm2d f64 training, eps 0.5",
         "f64", (2, 3, 3, 4), eps=0.5),
    case("bn2d-f32-train-no-track-eps1e-3", "BatchNorm2d f32 training, track_running_stats=False, eps 1e-3",
         "f32", (3, 2, 4, 3), track=False, eps=1e-3),
    case("bn2d-cl-f32-train-odd", "BatchNorm2d channels_last f32 training, odd sizes C=5 H=W=3",
         "f32", (2, 5, 3, 3), cl=True),
    case("bn2d-cl-f64-train-momentum-none-nbt0", "BatchNorm2d channels_last f64 training, momentum None, nbt 0 -> factor 1",
         "f64", (3, 5, 3, 3), cl=True, momentum=None, nbt=0),
    case("bn2d-cl-f32-eval", "BatchNorm2d channels_last f32 eval with running stats, C=5 H=W=3",
         "f32", (2, 5, 3, 3), cl=True, training=False, nbt=4),
    case("bn2d-cl-f64-eval-no-track", "BatchNorm2d channels_last f64 eval, track_running_stats=False -> batch stats",
         "f64", (2, 3, 3, 5), cl=True, training=False, track=False),
    case("bn2d-cl-f32-train-affine-false-momentum1", "BatchNorm2d channels_last f32 training, affine=False, momentum 1.0",
         "f32", (3, 4, 2, 3), cl=True, affine=False, momentum=1.0),
    case("bn3d-f32-train", "BatchNorm3d contiguous f32 training",
         "f32", (2, 3, 2, 3, 4)),
    case("bn3d-cl-f64-train-momentum0.3", "BatchNorm3d channels_last_3d f64 training, C=5, momentum 0.3",
         "f64", (2, 5, 3, 3, 2), cl=True, momentum=0.3),
    case("bn3d-cl-f32-eval", "BatchNorm3d channels_last_3d f32 eval with running stats",
         "f32", (2, 3, 3, 2, 3), cl=True, training=False, nbt=9),
    case("bn3d-f64-eval-no-track-affine-false-nograd", "BatchNorm3d f64 eval, track_running_stats=False, affine=False, no grad_output",
         "f64", (2, 2, 2, 3, 3), training=False, track=False, affine=False, grad=False),

    # ---- ill-conditioned: large per-channel offset, unit spread ------------
    case("illcond-f32-bn1d-offset1e4", "ill-conditioned f32 (N,C): offsets +-1e4, unit spread, training",
         "f32", (32, 3), offsets=[1e4, -1e4, 1e4]),
    case("illcond-f32-bn2d-mixed-offsets", "ill-conditioned f32 BatchNorm2d contiguous: offsets 1e3, 1e4, 1e5, -1e5, training",
         "f32", (4, 4, 3, 3), offsets=[1e3, 1e4, 1e5, -1e5]),
    case("illcond-f32-bn2d-cl-offset1e4", "ill-conditioned f32 BatchNorm2d channels_last: offsets 1e4 (and 1e3, 1e5), training",
         "f32", (4, 5, 3, 3), cl=True, offsets=[1e4, 1e4, 1e3, 1e5, -1e4]),
    case("illcond-f32-bn3d-cl-offset1e5", "ill-conditioned f32 BatchNorm3d channels_last_3d: offsets 1e5, 1e4, -1e3, training",
         "f32", (2, 3, 2, 3, 3), cl=True, offsets=[1e5, 1e4, -1e3]),
    case("illcond-f32-bn2d-eval-running-offset1e4", "ill-conditioned f32 eval with running stats near the 1e4 offsets",
         "f32", (2, 3, 3, 3), training=False, nbt=20, offsets=[1e4, 1e4, -1e4], rm_near_offset=True),
    case("illcond-f64-bn1d-offset1e6", "ill-conditioned f64 (N,C): offsets 1e6, unit spread, training",
         "f64", (32, 3), offsets=[1e6, -1e6, 1e6]),
    case("illcond-f64-bn2d-offset1e8", "ill-conditioned f64 BatchNorm2d contiguous: offsets 1e8, unit spread, training",
         "f64", (4, 3, 3, 3), offsets=[1e8, -1e8, 1e8]),
    case("illcond-f64-bn2d-cl-offset1e6-1e8", "ill-conditioned f64 BatchNorm2d channels_last: offsets 1e6 and 1e8, training",
         "f64", (4, 5, 3, 3), cl=True, offsets=[1e6, 1e8, -1e8, 1e6, 1e8]),
    case("illcond-f64-bn3d-cl-offset1e8", "ill-conditioned f64 BatchNorm3d channels_last_3d: offsets 1e8/1e6, momentum None nbt 2, training",
         "f64", (2, 3, 2, 2, 3), cl=True, offsets=[1e8, 1e6, -1e8], momentum=None, nbt=2),

    # ---- NaN and constant channels -----------------------------------------
    case("nan-channel-f32-train", "f32 training, one NaN in channel 1: that channel's y/grad_input/stats/grad_weight NaN, others untouched",
         "f32", (4, 3, 3, 3), nan_at=(1, 5)),
    case("nan-channel-f64-cl-train", "f64 channels_last training, one NaN in channel 2 of 4",
         "f64", (2, 4, 3, 3), cl=True, nan_at=(2, 7)),
    case("nan-element-f32-eval", "f32 eval with running stats, one NaN element: only that y element and that channel's grad_weight NaN",
         "f32", (3, 3, 2, 2), training=False, nbt=6, nan_at=(0, 4)),
    case("constant-channel-f32-train", "f32 training, channel 2 constant 3.7 (zero variance -> y = bias)",
         "f32", (4, 3, 2, 2), const=(2, 3.7)),
    case("constant-channel-f64-cl-train", "f64 channels_last training, channel 0 constant 1e4+0.1 (zero variance)",
         "f64", (2, 3, 3, 3), cl=True, const=(0, 10000.1)),

    # ---- sizes ---------------------------------------------------------------
    case("min-batch-2d-f32-train", "minimum legal training batch: (2,C), N*spatial=2",
         "f32", (2, 3)),
    case("min-batch-4d-f64-train", "minimum legal training batch: (1,C,1,2), N=1 but 2 values per channel",
         "f64", (1, 4, 1, 2)),
    case("single-channel-f32-train", "C=1 BatchNorm2d f32 training",
         "f32", (6, 1, 3, 3)),
    case("many-channels-c64-f64-cl-train", "C=64, N=2, 2x2 BatchNorm2d channels_last f64 training",
         "f64", (2, 64, 2, 2), cl=True),
    case("eval-single-sample-f32", "eval with running stats on a (1,C) batch is legal (no batch stats needed)",
         "f32", (1, 4), training=False, nbt=3),

    # ---- errors ---------------------------------------------------------------
    case("error-train-1xC-f64", "training with one value per channel, (1,C), f64",
         "f64", (1, 5)),
    case("error-train-1xCx1x1-f32", "training with one value per channel, (1,C,1,1), f32",
         "f32", (1, 3, 1, 1)),
    case("error-train-1xCx1x1-f64", "training with one value per channel, (1,C,1,1), f64",
         "f64", (1, 3, 1, 1)),
    case("error-eval-no-track-1xC-f32", "eval with track_running_stats=False uses batch stats, so (1,C) is rejected too",
         "f32", (1, 4), training=False, track=False),
]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def enc_list(t):
    """Flat tensor/array -> JSON list, NaN/inf as strings, exact doubles."""
    out = []
    for v in t.tolist() if hasattr(t, "tolist") else t:
        v = float(v)
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def dec(v):
    return float(v) if not isinstance(v, str) else float(v)  # "nan","inf","-inf" parse too


def mem_flat(t, cl):
    """Logical (N,C,*sp) tensor -> flat tensor in the case's memory order."""
    if cl and t.dim() >= 3:
        perm = [0] + list(range(2, t.dim())) + [1]
        t = t.permute(*perm)
    return t.contiguous().reshape(-1)


def from_mem_flat(flat, shape, cl):
    """Inverse of mem_flat: flat list in memory order -> logical numpy array."""
    a = np.array([dec(v) for v in flat], dtype=np.float64)
    if cl and len(shape) >= 3:
        a = a.reshape([shape[0]] + list(shape[2:]) + [shape[1]])
        a = np.moveaxis(a, -1, 1)
    return np.ascontiguousarray(a.reshape(shape))


def memfmt(dim):
    return torch.channels_last if dim == 4 else torch.channels_last_3d


def make_inputs(c):
    """Deterministic inputs as logical float64 tensors already rounded to dtype."""
    g = torch.Generator().manual_seed(zlib.crc32(c["name"].encode()))
    dt = DTYPES[c["dtype"]]
    shape = c["shape"]
    C = shape[1]
    x = torch.randn(shape, generator=g, dtype=torch.float64) * c["spread"]
    if c["offsets"] is not None:
        off = torch.tensor(c["offsets"], dtype=torch.float64)
        x = x + off.view([1, C] + [1] * (len(shape) - 2))
    if c["const"] is not None:
        ch, val = c["const"]
        x[:, ch] = val
    if c["nan_at"] is not None:
        ch, k = c["nan_at"]
        xc = x[:, ch].reshape(-1).clone()
        xc[k] = float("nan")
        x[:, ch] = xc.reshape(x[:, ch].shape)
    weight = bias = None
    if c["affine"]:
        sign = torch.where(torch.rand(C, generator=g) < 0.2, -1.0, 1.0).double()
        weight = sign * (0.5 + 1.5 * torch.rand(C, generator=g, dtype=torch.float64))
        bias = torch.randn(C, generator=g, dtype=torch.float64)
    rm = rv = None
    if c["track"]:
        if c["rm_near_offset"]:
            rm = torch.tensor(c["offsets"], dtype=torch.float64) + 0.2 * torch.randn(C, generator=g, dtype=torch.float64)
        else:
            rm = 0.5 * torch.randn(C, generator=g, dtype=torch.float64)
        rv = 0.5 + torch.rand(C, generator=g, dtype=torch.float64)
    go = torch.randn(shape, generator=g, dtype=torch.float64) if c["grad"] else None
    rnd = lambda t: None if t is None else t.to(dt).to(torch.float64)
    return dict(x=rnd(x), weight=rnd(weight), bias=rnd(bias), running_mean=rnd(rm),
                running_var=rnd(rv), grad_output=rnd(go),
                num_batches_tracked=c["nbt"] if c["track"] else None)


def run_torch(c, inp, dt):
    """Run nn.BatchNormNd in dtype dt on logical float64 inputs.
    Returns dict of logical outputs (torch tensors, float64) or raises."""
    shape = c["shape"]
    C = shape[1]
    mod = MODULES[len(shape)](C, eps=c["eps"], momentum=c["momentum"], affine=c["affine"],
                              track_running_stats=c["track"], dtype=dt)
    with torch.no_grad():
        if c["affine"]:
            mod.weight.copy_(inp["weight"].to(dt))
            mod.bias.copy_(inp["bias"].to(dt))
        if c["track"]:
            mod.running_mean.copy_(inp["running_mean"].to(dt))
            mod.running_var.copy_(inp["running_var"].to(dt))
            mod.num_batches_tracked.fill_(inp["num_batches_tracked"])
    mod.train(c["training"])
    x = inp["x"].to(dt)
    if c["cl"]:
        x = x.to(memory_format=memfmt(len(shape)))
    x = x.detach().requires_grad_(True)
    y = mod(x)
    if c["cl"]:
        assert y.is_contiguous(memory_format=memfmt(len(shape))), "output not channels_last"
    out = dict(y=y.detach().double(), grad_input=None, grad_weight=None, grad_bias=None,
               running_mean=None, running_var=None, num_batches_tracked=None)
    if c["track"]:
        out["running_mean"] = mod.running_mean.detach().double()
        out["running_var"] = mod.running_var.detach().double()
        out["num_batches_tracked"] = int(mod.num_batches_tracked.item())
    if inp["grad_output"] is not None:
        go = inp["grad_output"].to(dt)
        if c["cl"]:
            go = go.to(memory_format=memfmt(len(shape)))
        y.backward(go)
        out["grad_input"] = x.grad.detach().double()
        if c["affine"]:
            out["grad_weight"] = mod.weight.grad.detach().double()
            out["grad_bias"] = mod.bias.grad.detach().double()
    return out


def mp_reference(c, inp):
    """High-precision (mpmath, 60 digits) batch norm with module rules, on the
    exact input values. Returns logical float64 numpy arrays / ints."""
    shape = c["shape"]
    C = shape[1]
    x = inp["x"].numpy() if torch.is_tensor(inp["x"]) else inp["x"]
    go = inp["grad_output"]
    go = None if go is None else (go.numpy() if torch.is_tensor(go) else go)
    xs = np.moveaxis(x, 1, 0).reshape(C, -1)
    gos = None if go is None else np.moveaxis(go, 1, 0).reshape(C, -1)
    n = xs.shape[1]
    eps = mpf(c["eps"])
    bn_training = c["training"] or not c["track"]
    update = c["training"] and c["track"]
    nbt = inp["num_batches_tracked"]
    if update:
        nbt = nbt + 1
        factor = mpf(1.0 / float(nbt)) if c["momentum"] is None else mpf(c["momentum"])
    ys = np.empty_like(xs)
    gis = None if go is None else np.empty_like(xs)
    rm_new = rv_new = gw = gb = None
    if c["track"]:
        rm_new = np.array([float(v) for v in inp["running_mean"]])
        rv_new = np.array([float(v) for v in inp["running_var"]])
    if go is not None and c["affine"]:
        gw = np.empty(C)
        gb = np.empty(C)
    for ch in range(C):
        vals = [mpf(float(v)) for v in xs[ch]]
        if bn_training:
            mean = mpmath.fsum(vals) / n
            var = mpmath.fsum([(v - mean) ** 2 for v in vals]) / n
        else:
            mean = mpf(float(inp["running_mean"][ch]))
            var = mpf(float(inp["running_var"][ch]))
        invstd = 1 / mpmath.sqrt(var + eps)
        w = mpf(float(inp["weight"][ch])) if c["affine"] else mpf(1)
        b = mpf(float(inp["bias"][ch])) if c["affine"] else mpf(0)
        xhat = [(v - mean) * invstd for v in vals]
        ys[ch] = [float(h * w + b) for h in xhat]
        if update:
            rm0 = mpf(float(inp["running_mean"][ch]))
            rv0 = mpf(float(inp["running_var"][ch]))
            rm_new[ch] = float((1 - factor) * rm0 + factor * mean)
            rv_new[ch] = float((1 - factor) * rv0 + factor * var * n / (n - 1))
        if go is not None:
            g = [mpf(float(v)) for v in gos[ch]]
            sg = mpmath.fsum(g)
            sgx = mpmath.fsum([gi * h for gi, h in zip(g, xhat)])
            if bn_training:
                gis[ch] = [float(w * invstd * (gi - sg / n - h * sgx / n)) for gi, h in zip(g, xhat)]
            else:
                gis[ch] = [float(gi * w * invstd) for gi in g]
            if c["affine"]:
                gw[ch] = float(sgx)
                gb[ch] = float(sg)
    unflat = lambda a: np.moveaxis(a.reshape([C, shape[0]] + list(shape[2:])), 0, 1)
    return dict(y=unflat(ys), running_mean=rm_new, running_var=rv_new,
                num_batches_tracked=nbt if c["track"] else None,
                grad_input=None if gis is None else unflat(gis),
                grad_weight=gw, grad_bias=gb)


OUT_KEYS = ["y", "running_mean", "running_var", "num_batches_tracked",
            "grad_input", "grad_weight", "grad_bias"]


def enc_outputs(out, cl):
    res = {}
    for k in OUT_KEYS:
        v = out[k]
        if v is None or k == "num_batches_tracked":
            res[k] = v
        else:
            t = torch.as_tensor(v, dtype=torch.float64)
            res[k] = enc_list(mem_flat(t, cl) if k in ("y", "grad_input") else t.reshape(-1))
    return res


def build_case(c):
    dt = DTYPES[c["dtype"]]
    inp = make_inputs(c)
    cl = c["cl"]
    inputs = {
        "x": enc_list(mem_flat(inp["x"], cl)),
        "weight": None if inp["weight"] is None else enc_list(inp["weight"]),
        "bias": None if inp["bias"] is None else enc_list(inp["bias"]),
        "running_mean": None if inp["running_mean"] is None else enc_list(inp["running_mean"]),
        "running_var": None if inp["running_var"] is None else enc_list(inp["running_var"]),
        "num_batches_tracked": inp["num_batches_tracked"],
        "grad_output": None if inp["grad_output"] is None else enc_list(mem_flat(inp["grad_output"], cl)),
    }
    d = {
        "format": FORMAT, "name": c["name"], "note": c["note"],
        "source": "torch " + torch.__version__, "dtype": c["dtype"], "shape": c["shape"],
        "memory_format": "channels_last" if cl else "contiguous",
        "config": {"eps": c["eps"], "momentum": c["momentum"], "affine": c["affine"],
                   "track_running_stats": c["track"]},
        "training": c["training"], "inputs": inputs,
    }
    try:
        out = run_torch(c, inp, dt)
    except Exception as e:  # PyTorch rejects the input
        msg = str(e).strip().splitlines()[0]
        d["expected_error"] = msg
        d["note"] = c["note"] + f" (torch raises {type(e).__name__})"
        return d
    if c["name"].startswith("error-"):
        raise RuntimeError(f"{c['name']}: expected PyTorch to raise, it did not")
    d["expected"] = enc_outputs(out, cl)
    if c["dtype"] == "f32":
        ref = run_torch(c, inp, torch.float64)
        d["note"] = c["note"] + "; reference: torch float64"
    else:
        ref = mp_reference(c, inp)
        d["note"] = c["note"] + "; reference: mpmath 60 digits"
    d["reference"] = enc_outputs(ref, cl)
    return d


def dumps(d):
    return json.dumps(d, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------

def condition(d):
    """max over channels of max(|x|, |mean|) / sqrt(var + eps): how far the
    values sit from their mean in units of the spread used to normalize."""
    shape = d["shape"]
    C = shape[1]
    cl = d["memory_format"] == "channels_last"
    x = np.moveaxis(from_mem_flat(d["inputs"]["x"], shape, cl), 1, 0).reshape(C, -1)
    eps = d["config"]["eps"]
    bn_training = d["training"] or not d["config"]["track_running_stats"]
    kappa = 1.0
    for ch in range(C):
        xc = x[ch][~np.isnan(x[ch])]
        if xc.size == 0:
            continue
        if bn_training:
            mean, var = xc.mean(), xc.var()
        else:
            mean = dec(d["inputs"]["running_mean"][ch])
            var = dec(d["inputs"]["running_var"][ch])
        kappa = max(kappa, max(np.abs(xc).max(), abs(mean)) / math.sqrt(var + eps))
    return kappa


def verify(folder):
    ok = True
    total = 0
    rows = []
    for fn in sorted(os.listdir(folder)):
        if not fn.endswith(".json"):
            continue
        path = os.path.join(folder, fn)
        total += os.path.getsize(path)
        with open(path) as f:
            d = json.load(f)
        problems = []
        if d.get("format") != FORMAT:
            problems.append("format")
        if fn != d["name"] + ".json":
            problems.append("file name != name")
        shape = d["shape"]
        numel = int(np.prod(shape))
        C = shape[1]
        cl = d["memory_format"] == "channels_last"
        inp = d["inputs"]
        if len(inp["x"]) != numel:
            problems.append("len x")
        if inp["grad_output"] is not None and len(inp["grad_output"]) != numel:
            problems.append("len grad_output")
        for k in ("weight", "bias", "running_mean", "running_var"):
            if inp[k] is not None and len(inp[k]) != C:
                problems.append("len " + k)
        if d["dtype"] == "f32":
            for k, v in inp.items():
                if isinstance(v, list):
                    a = np.array([dec(t) for t in v])
                    if not np.array_equal(a.astype(np.float32).astype(np.float64), a, equal_nan=True):
                        problems.append(f"input {k} not f32-exact")
        if "expected_error" in d:
            rows.append((fn, "error: " + d["expected_error"][:60], ""))
        else:
            exp, ref = d["expected"], d["reference"]
            kappa = condition(d)
            eps_dtype = 2.0 ** -23 if d["dtype"] == "f32" else 2.0 ** -52
            worst = []
            for k in OUT_KEYS:
                e, r = exp[k], ref[k]
                if (e is None) != (r is None):
                    problems.append(f"{k}: null mismatch")
                    continue
                if e is None:
                    continue
                if k == "num_batches_tracked":
                    if e != r or not isinstance(e, int):
                        problems.append("nbt")
                    continue
                want = numel if k in ("y", "grad_input") else C
                if len(e) != want or len(r) != want:
                    problems.append("len " + k)
                    continue
                ea = np.array([dec(t) for t in e])
                ra = np.array([dec(t) for t in r])
                if not np.array_equal(np.isnan(ea), np.isnan(ra)):
                    problems.append(f"{k}: NaN pattern differs")
                fin = ~np.isnan(ra)
                if fin.any():
                    err = float(np.max(np.abs(ea[fin] - ra[fin])))
                    scale = max(1.0, float(np.max(np.abs(ra[fin]))))
                    rel = err / (eps_dtype * scale)  # in units of eps_dtype*max(1,|ref|)
                    worst.append((rel, k))
                    # PyTorch's own error should be a modest number of ulps of the
                    # output's scale, times the conditioning of the input (a mean
                    # that is large against the spread costs ulp(mean)/std even
                    # in an exactly-rounded implementation).
                    if rel > 1e3 * kappa:
                        problems.append(f"{k}: |expected-reference| = {rel:.3g} eps*scale")
            # cross-check the torch-float64 references of f32 cases with mpmath
            if d["dtype"] == "f32":
                logical = dict(
                    x=from_mem_flat(inp["x"], shape, cl),
                    grad_output=None if inp["grad_output"] is None else from_mem_flat(inp["grad_output"], shape, cl),
                    weight=inp["weight"], bias=inp["bias"], running_mean=inp["running_mean"],
                    running_var=inp["running_var"], num_batches_tracked=inp["num_batches_tracked"])
                cc = dict(shape=shape, eps=d["config"]["eps"], momentum=d["config"]["momentum"],
                          affine=d["config"]["affine"], track=d["config"]["track_running_stats"],
                          training=d["training"])
                mref = enc_outputs(mp_reference(cc, logical), cl)
                for k in OUT_KEYS:
                    if ref[k] is None or k == "num_batches_tracked":
                        continue
                    ra = np.array([dec(t) for t in ref[k]])
                    ma = np.array([dec(t) for t in mref[k]])
                    fin = ~np.isnan(ma)
                    if not np.array_equal(np.isnan(ra), np.isnan(ma)):
                        problems.append(f"{k}: torch-f64 ref NaN pattern != mpmath")
                    elif fin.any():
                        scale = max(1.0, float(np.max(np.abs(ma[fin]))))
                        if np.max(np.abs(ra[fin] - ma[fin])) > 1e-9 * scale:
                            problems.append(f"{k}: torch-f64 reference far from mpmath")
            worst.sort(reverse=True)
            rows.append((fn, "ok", ("max |exp-ref| = %.3g eps*max(1,|ref|) (%s)" % worst[0] if worst else "")
                         + "; kappa %.2g" % kappa))
        if problems:
            ok = False
            rows[-1] = (fn, "PROBLEM: " + "; ".join(problems), rows[-1][2])
    for r in rows:
        print("%-55s %s %s" % r)
    print(f"{len(rows)} files, {total} bytes total")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder to write <name>.json cases into")
    ap.add_argument("--verify", metavar="DIR", help="check all bn-case/1 files in DIR")
    args = ap.parse_args()
    if not args.out and not args.verify:
        ap.error("give --out DIR and/or --verify DIR")
    torch.set_num_threads(1)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        names = set()
        for c in CASES:
            assert c["name"] not in names, c["name"]
            names.add(c["name"])
            d = build_case(c)
            s = dumps(d)
            with open(os.path.join(args.out, c["name"] + ".json"), "w") as f:
                f.write(s)
            print(f"{c['name']}.json  {len(s)} bytes" + ("  [error]" if "expected_error" in d else ""))
    if args.verify:
        if not verify(args.verify):
            sys.exit(1)


if __name__ == "__main__":
    main()
