#!/usr/bin/env python3
"""Generate PyTorch conformance cases for bnh in the bn-case/1 JSON format.

OPTIONAL: the Rust tests only read the committed JSON files under
harness/tests/fixtures/torch/; nothing in the build runs this script and it is
not needed to build or test the project. It documents how those files were made
and can regenerate them:

    python3 scripts/gen_fixtures.py --out harness/tests/fixtures/torch

and check them (JSON loads back, shapes/lengths, expected vs reference
differences small, torch-float64 references agree with an mpmath recomputation;
for bf16/f16 files also: every value exactly representable in its dtype, the
mpmath reference agrees with PyTorch float64, and PyTorch's own error measured
against the bf16/f16 tolerance floor -- cases where PyTorch exceeds the floor
are listed at the end, they are not hidden):

    python3 scripts/gen_fixtures.py --verify harness/tests/fixtures/torch

Only a subset of the cases (e.g. while iterating on the half-precision set):

    python3 scripts/gen_fixtures.py --out DIR --only bf16_,f16_

Multi-step cases (several calls on one module, `steps`) and safetensors state
dicts (needs the `safetensors` package) are written and checked with:

    python3 scripts/gen_fixtures.py --steps-out harness/tests/fixtures/steps
    python3 scripts/gen_fixtures.py --verify-steps harness/tests/fixtures/steps
    python3 scripts/gen_fixtures.py --state-dicts-out harness/tests/state_dicts

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
    the nearest double at the end;
  * bf16 / f16 cases: the same mpmath computation on the exact bf16/f16 (and
    param_dtype) input values.
bf16 / f16 cases (files named bf16_*.json, f16_*.json) carry a `param_dtype`
field: equal to `dtype` ("pure": the module's weight, bias and running stats
are bf16/f16 too), or "f32" ("mixed": bf16/f16 data with float32 parameters
and running stats, which PyTorch's CPU kernels accept; y and grad_input come
out in the data dtype, running stats / grad_weight / grad_bias in float32).
Every number written is the exact value of its dtype (inputs are rounded to
their dtype before anything is computed; PyTorch's outputs are read back with
float(), which is exact), printed as the shortest decimal that round-trips
through a double. Older f32/f64 files have no `param_dtype` field and are
generated exactly as before (byte-identical).
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
DTYPES = {"f32": torch.float32, "f64": torch.float64,
          "bf16": torch.bfloat16, "f16": torch.float16}
HALF_DTYPES = ("bf16", "f16")
# Tolerance floor per judging dtype: K * EPS * max(1, max|reference|), see
# docs/BN-CASE-FORMAT.md ("Tolerance"). bf16/f16 use 4 eps (their rounding
# step is already coarse), f32/f64 16 eps.
TOL_EPS = {"f64": 2.0 ** -52, "f32": 2.0 ** -23, "bf16": 2.0 ** -7, "f16": 2.0 ** -10}
TOL_K = {"f64": 16.0, "f32": 16.0, "bf16": 4.0, "f16": 4.0}
PER_CHANNEL = ("running_mean", "running_var", "grad_weight", "grad_bias")
MODULES = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
           4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}


# --------------------------------------------------------------------------
# case table
# --------------------------------------------------------------------------

def case(name, note, dtype, shape, *, cl=False, eps=1e-5, momentum=0.1,
         affine=True, track=True, training=True, nbt=0, grad=True,
         offsets=None, spread=1.0, nan_at=None, const=None, rm_near_offset=False,
         param_dtype=None, spreads=None, dist="normal", act=None):
    """offsets: per-channel additive offset (ill-conditioned inputs);
    nan_at: (channel, k) -> the k-th element (logical order) of channel is NaN;
    const: (channel, value) -> that channel is constant;
    param_dtype: dtype of weight/bias/running stats (None: same as dtype and
      no `param_dtype` field in the file -- the f32/f64 cases);
    spreads: per-channel spread instead of the single `spread`;
    dist: "normal" (randn * spread) or "uniform" ((2 rand - 1) * spread);
    act: None, "relu" (relu(bn(x))) or "add_relu" (relu(bn(x) + residual),
      residual ~ randn); only activation cases carry the fields, so the
      files of the other cases stay byte-identical."""
    return dict(name=name, note=note, dtype=dtype, shape=list(shape), cl=cl,
                eps=eps, momentum=momentum, affine=affine, track=track,
                training=training, nbt=nbt, grad=grad, offsets=offsets,
                spread=spread, nan_at=nan_at, const=const,
                rm_near_offset=rm_near_offset, param_dtype=param_dtype,
                spreads=spreads, dist=dist, act=act)


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


def half_cases():
    """bf16 / f16 cases (issue: half-precision data). Names start with the
    dtype ("bf16_", "f16_") so the files group; "-mixed" marks param_dtype f32
    (bf16/f16 data, float32 weight/bias/running stats), every other case is
    pure (param_dtype = dtype). Most cases exist for both dtypes; the big ones
    (60,000 values in one channel, 4096 channels) once per dtype."""
    out = []
    for d in HALF_DTYPES:
        def hc(name, note, shape, mixed=False, **kw):
            out.append(case(f"{d}_{name}", f"{d}{' data, f32 params' if mixed else ''}: {note}",
                            d, shape, param_dtype="f32" if mixed else d, **kw))
        # ---- plain: every rank, both layouts, train / eval / backward ----------
        hc("bn1d-2d-train", "BatchNorm1d (N,C) training, momentum 0.1, backward", (8, 5))
        hc("bn1d-2d-mixed-train", "BatchNorm1d (N,C) training, backward", (8, 5), mixed=True)
        hc("bn1d-3d-eval", "BatchNorm1d (N,C,L) eval with running stats, backward", (4, 3, 7),
           training=False, nbt=5)
        hc("bn1d-3d-mixed-eval", "BatchNorm1d (N,C,L) eval with running stats, backward", (4, 3, 7),
           mixed=True, training=False, nbt=5)
        hc("bn1d-2d-eval-nograd", "BatchNorm1d (N,C) eval, no grad_output", (5, 4),
           training=False, nbt=12, grad=False)
        hc("bn2d-train-momentum0.3", "BatchNorm2d contiguous training, momentum 0.3, backward",
           (2, 3, 4, 5), momentum=0.3)
        hc("bn2d-mixed-train", "BatchNorm2d contiguous training, backward", (2, 3, 4, 5), mixed=True)
        hc("bn2d-cl-train", "BatchNorm2d channels_last training, C=5 H=W=3, backward",
           (2, 5, 3, 3), cl=True)
        hc("bn2d-cl-mixed-train", "BatchNorm2d channels_last training, C=5 H=W=3, backward",
           (3, 5, 3, 3), cl=True, mixed=True)
        hc("bn2d-cl-eval", "BatchNorm2d channels_last eval with running stats, backward",
           (2, 5, 3, 3), cl=True, training=False, nbt=4)
        hc("bn2d-cl-mixed-eval", "BatchNorm2d channels_last eval with running stats, backward",
           (2, 5, 3, 3), cl=True, mixed=True, training=False, nbt=4)
        hc("bn3d-train", "BatchNorm3d contiguous training, backward", (2, 3, 2, 3, 4))
        hc("bn3d-cl-train", "BatchNorm3d channels_last_3d (5-D) training, C=5, backward",
           (2, 5, 3, 3, 2), cl=True)
        hc("bn3d-cl-mixed-train-momentum-none-nbt3",
           "BatchNorm3d channels_last_3d (5-D) training, momentum None with nbt 3 -> factor 1/4, backward",
           (2, 3, 2, 3, 4), cl=True, mixed=True, momentum=None, nbt=3)
        hc("bn3d-cl-eval", "BatchNorm3d channels_last_3d (5-D) eval with running stats, backward",
           (2, 3, 3, 2, 3), cl=True, training=False, nbt=9)
        # ---- config variants ----------------------------------------------------
        hc("bn2d-momentum-none-nbt0", "BatchNorm2d training, momentum None, nbt 0 -> factor 1, backward",
           (3, 4, 3, 3), momentum=None)
        hc("bn2d-cl-affine-false", "BatchNorm2d channels_last training, affine=False, backward",
           (3, 4, 2, 3), cl=True, affine=False)
        hc("bn2d-mixed-affine-false-momentum1", "BatchNorm2d training, affine=False, momentum 1.0, backward",
           (3, 4, 2, 3), mixed=True, affine=False, momentum=1.0)
        hc("bn2d-no-track", "BatchNorm2d training, track_running_stats=False, backward",
           (3, 2, 4, 3), track=False)
        hc("bn1d-3d-mixed-eval-no-track", "BatchNorm1d (N,C,L) eval, track_running_stats=False -> batch stats, backward",
           (4, 3, 5), mixed=True, training=False, track=False)
        hc("bn3d-eval-no-track-affine-false", "BatchNorm3d eval, track_running_stats=False, affine=False, backward",
           (2, 2, 2, 3, 3), training=False, track=False, affine=False)
        # ---- offsets whose squares overflow f16 (300^2 = 90000 > 65504) -----------
        hc("offset300-train", "BatchNorm2d training, channels at +-300 and 250 with unit spread "
           "(x^2 > 65504 = f16 max), backward", (8, 3, 3, 3), offsets=[300.0, -300.0, 250.0])
        hc("offset300-cl-mixed-train", "BatchNorm2d channels_last training, channels at +-300 and 250 "
           "with unit spread (x^2 > f16 max), backward", (8, 3, 3, 3), cl=True, mixed=True,
           offsets=[300.0, -300.0, 250.0])
        hc("offset300-eval-running-near", "BatchNorm2d eval with running_mean near the +-300 offsets, backward",
           (2, 3, 3, 3), training=False, nbt=20, offsets=[300.0, 300.0, -300.0], rm_near_offset=True)
        # ---- tiny values: f16 subnormal range (|x| ~ 1e-5 .. 1e-7) ----------------
        hc("tiny-subnormal-train", "BatchNorm2d training, channels of spread 1e-5, 1e-6, 1e-7 "
           "(below f16's normal range 6.1e-5), eps 1e-5, backward",
           (4, 3, 4, 4), spreads=[1e-5, 1e-6, 1e-7])
        # f16: no backward here -- with invstd ~ 1e7 the true grad_input (~1e7) is
        # beyond f16's range and PyTorch returns inf, which no tolerance can judge.
        hc("tiny-subnormal-mixed-train-eps1e-12", "BatchNorm2d training, channels of spread 1e-5, 1e-6, 1e-7 "
           "with eps 1e-12 so the tiny variance matters" + (", backward" if d == "bf16" else
           ", no grad_output (grad_input ~1e7 would overflow f16)"),
           (4, 3, 4, 4), mixed=True, eps=1e-12, spreads=[1e-5, 1e-6, 1e-7], grad=(d == "bf16"))
        hc("tiny-subnormal-cl-eval-eps1e-12", "BatchNorm2d channels_last eval, tiny inputs (spread 1e-6), eps 1e-12, backward",
           (2, 3, 3, 3), cl=True, training=False, nbt=2, eps=1e-12, spreads=[1e-6, 1e-6, 1e-7])
        # ---- values near f16's maximum (65504) ---------------------------------
        hc("near-max-train", "BatchNorm2d training, channels at +6e4 and -6e4 with spread 50 "
           "and at 3e4 with spread 200 (near f16 max; batch variance fits f16), backward",
           (4, 3, 3, 3), offsets=[6e4, -6e4, 3e4], spreads=[50.0, 50.0, 200.0])
        hc("near-max-wide-no-track", "BatchNorm2d training, track_running_stats=False, values uniform in "
           "+-6e4 (variance ~1.2e9 would overflow f16; held in float inside PyTorch), backward",
           (4, 3, 3, 3), track=False, dist="uniform", spread=6e4)
        hc("near-max-wide-cl-mixed-train", "BatchNorm2d channels_last training, values uniform in +-6e4, "
           "f32 running_var holds ~1.2e8, backward", (4, 3, 3, 3), cl=True, mixed=True,
           dist="uniform", spread=6e4)
        # ---- NaN and constant channels -----------------------------------------
        hc("nan-channel-train", "training, one NaN in channel 1: that channel's outputs NaN, others untouched, backward",
           (4, 3, 3, 3), nan_at=(1, 5))
        hc("nan-channel-cl-mixed-train", "channels_last training, one NaN in channel 2 of 4, backward",
           (2, 4, 3, 3), cl=True, mixed=True, nan_at=(2, 7))
        hc("constant-channel-train", "training, channel 2 constant 3.5 (zero variance -> y = bias), backward",
           (4, 3, 2, 2), const=(2, 3.5))
        # ---- sizes ---------------------------------------------------------------
        hc("min-batch-2d-train", "minimum legal training batch (2,C), backward", (2, 3))
        # ---- errors: N * spatial = 1 in training ----------------------------------
        hc("error-train-1xC", "training with one value per channel, (1,C)", (1, 5))
        hc("error-train-1xCx1x1-mixed", "training with one value per channel, (1,C,1,1)", (1, 3, 1, 1),
           mixed=True)
    # ---- big cases, one per dtype ----------------------------------------------
    out.append(case("f16_long-channel-60000-offset300",
                    "f16: one channel of 60,000 values at 300 +- 1 (x^2 overflows f16), BatchNorm1d (60000,1) training",
                    "f16", (60000, 1), param_dtype="f16", offsets=[300.0], grad=False))
    out.append(case("bf16_long-channel-15x1x40x100-offset30",
                    "bf16: one channel of 60,000 values at 30 +- 1, BatchNorm2d (15,1,40,100) training",
                    "bf16", (15, 1, 40, 100), param_dtype="bf16", offsets=[30.0], grad=False))
    out.append(case("f16_many-channels-8x4096-train",
                    "f16: BatchNorm1d (8,4096) training, thousands of channels, backward",
                    "f16", (8, 4096), param_dtype="f16"))
    out.append(case("bf16_many-channels-8x4096-mixed-train",
                    "bf16 data, f32 params: BatchNorm1d (8,4096) training, thousands of channels, backward",
                    "bf16", (8, 4096), param_dtype="f32"))
    return out


CASES += half_cases()


def parity_cases():
    """Inputs PyTorch accepts beyond the first sets (issue: accept exactly what
    PyTorch accepts), f32 and f64 each; names start with "parity_":
      * momentum outside [0, 1] -- PyTorch has no range check and extrapolates,
        running = (1 - m) * running + m * batch -- and momentum None;
      * empty batch (0, 3, 4) and empty spatial dims (4, 3, 0, 5) in training,
        eval and without tracking, with backward: y and grad_input empty,
        running stats unchanged, num_batches_tracked + 1 in training,
        grad_weight = grad_bias = 0;
      * C = 1 with eps 0.5 and 0.6;
      * what PyTorch rejects among these ("parity_error-..."): eps <= 0 in
        training (also on an empty batch), eps < 0 in eval, one value per
        channel in training whatever the momentum.
    Non-finite momenta (NaN, +-inf), which PyTorch also accepts, cannot be
    written in a bn-case/1 config (numbers only); the Rust tests cover them."""
    out = []
    for d in ("f32", "f64"):
        def pc(name, note, shape, **kw):
            out.append(case(f"parity_{name}-{d}", f"{d}: {note}", d, shape, **kw))
        # ---- momentum outside [0, 1], and None ----------------------------------
        pc("momentum-neg1.2-train", "BatchNorm1d (N,C,L) training, momentum -1.2 (extrapolates), nbt 4, backward",
           (4, 3, 5), momentum=-1.2, nbt=4)
        pc("momentum-neg1-train", "BatchNorm1d (N,C) training, momentum -1.0, backward",
           (6, 4), momentum=-1.0)
        pc("momentum1.5-cl-train", "BatchNorm2d channels_last training, momentum 1.5, backward",
           (2, 3, 3, 3), cl=True, momentum=1.5)
        pc("momentum1e3-train", "BatchNorm2d training, momentum 1000 (large), backward",
           (3, 2, 2, 3), momentum=1000.0)
        pc("momentum-neg1e3-no-affine-train", "BatchNorm1d (N,C,L) training, affine=False, momentum -1000, backward",
           (3, 3, 4), affine=False, momentum=-1000.0)
        pc("momentum-none-nbt5-train", "BatchNorm1d (N,C,L) training, momentum None with nbt 5 -> factor 1/6, backward",
           (4, 3, 5), momentum=None, nbt=5)
        # ---- empty batch (0, 3, 4) ------------------------------------------------
        pc("empty-batch-0x3x4-train", "empty batch (0,3,4) training: y empty, running stats unchanged, "
           "num_batches_tracked + 1, grad_weight = grad_bias = 0", (0, 3, 4), nbt=2)
        pc("empty-batch-0x3x4-train-momentum-none", "empty batch (0,3,4) training, momentum None, nbt 2 -> 3, "
           "running stats unchanged", (0, 3, 4), momentum=None, nbt=2)
        pc("empty-batch-0x3x4-train-momentum-neg1.2", "empty batch (0,3,4) training, momentum -1.2: "
           "running stats unchanged", (0, 3, 4), momentum=-1.2, nbt=1)
        pc("empty-batch-0x3x4-eval", "empty batch (0,3,4) eval with running stats: nothing changes, "
           "grad_weight = grad_bias = 0", (0, 3, 4), training=False, nbt=3)
        pc("empty-batch-0x3-train-no-track", "empty batch (0,3) training without running stats",
           (0, 3), track=False)
        pc("empty-batch-0x3x4-eval-no-track", "empty batch (0,3,4) eval without running stats (batch stats)",
           (0, 3, 4), training=False, track=False)
        # ---- empty spatial dims (4, 3, 0, 5) -----------------------------------
        pc("empty-spatial-4x3x0x5-train", "empty spatial dim (4,3,0,5) training: y empty, running stats "
           "unchanged, num_batches_tracked + 1, grad_weight = grad_bias = 0", (4, 3, 0, 5), nbt=7)
        pc("empty-spatial-4x3x0x5-cl-train", "empty spatial dim (4,3,0,5) channels_last training",
           (4, 3, 0, 5), cl=True)
        pc("empty-spatial-4x3x0x5-eval", "empty spatial dim (4,3,0,5) eval with running stats",
           (4, 3, 0, 5), training=False, nbt=3)
        pc("empty-spatial-2x3x2x0x2-eval-no-track-no-affine", "empty spatial dim (2,3,2,0,2) BatchNorm3d eval, "
           "no running stats, affine=False", (2, 3, 2, 0, 2), training=False, track=False, affine=False)
        # ---- C = 1, eps 0.5 / 0.6 ----------------------------------------------
        pc("c1-eps0.5-train", "C=1 BatchNorm1d (N,C,L) training, eps 0.5, backward", (6, 1, 4), eps=0.5)
        pc("c1-eps0.6-train", "C=1 BatchNorm2d training, eps 0.6, backward", (2, 1, 3, 3), eps=0.6)
        pc("c1-eps0.6-eval", "C=1 BatchNorm1d (N,C) eval with running stats, eps 0.6, backward",
           (5, 1), training=False, eps=0.6, nbt=2)
        pc("c1-min-batch-train", "C=1 (2,1) training: the smallest legal batch", (2, 1), eps=0.5)
        # ---- what PyTorch rejects -------------------------------------------------
        pc("error-train-eps0", "training with eps 0 (PyTorch: eps must be positive during training)",
           (2, 3, 4), eps=0.0)
        pc("error-train-eps-neg", "training with eps -1e-5", (2, 3, 4), eps=-1e-5)
        pc("error-empty-batch-train-eps0", "empty batch (0,3,4) training with eps 0: rejected before "
           "the empty short-cut", (0, 3, 4), eps=0.0)
        pc("error-eval-eps-neg", "eval with running stats, eps -0.5 (PyTorch: eps must be non-negative)",
           (2, 3, 4), training=False, eps=-0.5)
        pc("error-train-1x3-momentum-neg1.2", "training with one value per channel (1,3), momentum -1.2: "
           "rejected for the value count, not the momentum", (1, 3), momentum=-1.2)
        pc("error-train-1x1x1x1-c1", "C=1 training with one value per channel (1,1,1,1)", (1, 1, 1, 1))
    return out


CASES += parity_cases()


def activation_cases():
    """act_* (bf16_act_*, f16_act_* for the half types, named like every
    half file): relu(bn(x)) and relu(bn(x) + residual) (the end of a ResNet
    block), forward in training and eval with backward (grad_input,
    grad_weight, grad_bias, and grad_residual for add_relu), every dtype and
    both memory formats; a NaN input (the ReLU keeps NaN and passes its
    gradient) and an ill-conditioned one."""
    a = case
    return [
        a("act_relu-f32-train-bn2d", "relu(BatchNorm2d(x)) f32 training", "f32", (4, 3, 5, 5), act="relu"),
        a("act_relu-f32-eval-bn2d-cl", "relu(BatchNorm2d(x)) channels_last f32 eval with running stats",
          "f32", (2, 5, 3, 3), cl=True, training=False, nbt=4, act="relu"),
        a("act_relu-f64-train-bn1d", "relu(BatchNorm1d(x)) (N,C) f64 training", "f64", (8, 5), act="relu"),
        a("act_relu-f32-train-nan", "relu(BatchNorm2d(x)) f32 training, one NaN in channel 1 (relu keeps NaN, its gradient passes)",
          "f32", (4, 3, 3, 3), nan_at=(1, 5), act="relu"),
        a("act_relu-f32-train-illcond-offset1e4", "relu(BatchNorm2d(x)) f32 training, offsets 1e4",
          "f32", (4, 3, 3, 3), offsets=[1e4, -1e4, 1e4], act="relu"),
        a("act_add_relu-f32-train-bn2d", "relu(BatchNorm2d(x) + residual) f32 training", "f32", (4, 3, 4, 4), act="add_relu"),
        a("act_add_relu-f32-train-bn2d-cl", "relu(BatchNorm2d(x) + residual) channels_last f32 training",
          "f32", (2, 5, 3, 3), cl=True, act="add_relu"),
        a("act_add_relu-f32-eval-bn2d", "relu(BatchNorm2d(x) + residual) f32 eval with running stats",
          "f32", (3, 4, 3, 3), training=False, nbt=7, act="add_relu"),
        a("act_add_relu-f64-eval-bn1d-3d", "relu(BatchNorm1d(x) + residual) (N,C,L) f64 eval with running stats",
          "f64", (3, 4, 5), training=False, nbt=2, act="add_relu"),
        a("act_add_relu-f64-train-bn3d-cl", "relu(BatchNorm3d(x) + residual) channels_last_3d f64 training, momentum None",
          "f64", (2, 3, 2, 3, 3), cl=True, momentum=None, nbt=1, act="add_relu"),
        a("act_add_relu-f32-eval-no-track", "relu(BatchNorm2d(x) + residual) f32 eval without running stats (batch stats)",
          "f32", (3, 2, 3, 3), training=False, track=False, act="add_relu"),
        a("bf16_act_relu-train-bn2d", "relu(BatchNorm2d(x)) bf16 training, bf16 parameters",
          "bf16", (4, 3, 3, 3), param_dtype="bf16", act="relu"),
        a("bf16_act_add_relu-train-mixed", "relu(BatchNorm2d(x) + residual) bf16 training with f32 parameters",
          "bf16", (4, 3, 3, 3), param_dtype="f32", act="add_relu"),
        a("f16_act_add_relu-eval-cl", "relu(BatchNorm2d(x) + residual) channels_last f16 eval, f16 parameters",
          "f16", (2, 5, 3, 3), cl=True, training=False, nbt=3, param_dtype="f16", act="add_relu"),
        a("f16_act_relu-train-mixed", "relu(BatchNorm1d(x)) (N,C,L) f16 training with f32 parameters",
          "f16", (4, 3, 6), param_dtype="f32", act="relu"),
    ]


CASES += activation_cases()


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
    pdt = DTYPES[c["param_dtype"] or c["dtype"]]
    shape = c["shape"]
    C = shape[1]
    if c["dist"] == "uniform":
        x = 2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1
    else:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
    if c["spreads"] is not None:
        x = x * torch.tensor(c["spreads"], dtype=torch.float64).view([1, C] + [1] * (len(shape) - 2))
    else:
        x = x * c["spread"]
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
    # Drawn last, so cases without a residual draw exactly what they always did.
    res = torch.randn(shape, generator=g, dtype=torch.float64) if c.get("act") == "add_relu" else None
    rnd = lambda t: None if t is None else t.to(dt).to(torch.float64)
    prnd = lambda t: None if t is None else t.to(pdt).to(torch.float64)
    return dict(x=rnd(x), weight=prnd(weight), bias=prnd(bias), running_mean=prnd(rm),
                running_var=prnd(rv), grad_output=rnd(go), residual=rnd(res),
                num_batches_tracked=c["nbt"] if c["track"] else None)


def run_torch(c, inp, dt, pdt=None):
    """Run nn.BatchNormNd with data (x, grad_output) in dtype dt and the module
    (weight, bias, running stats) in pdt (default: dt) on logical float64 inputs.
    Returns dict of logical outputs (torch tensors, float64) or raises.
    Converting a bf16/f16/f32 tensor to float64 is exact, so the outputs are
    the exact values PyTorch produced."""
    pdt = dt if pdt is None else pdt
    shape = c["shape"]
    C = shape[1]
    mod = MODULES[len(shape)](C, eps=c["eps"], momentum=c["momentum"], affine=c["affine"],
                              track_running_stats=c["track"], dtype=pdt)
    with torch.no_grad():
        if c["affine"]:
            mod.weight.copy_(inp["weight"].to(pdt))
            mod.bias.copy_(inp["bias"].to(pdt))
        if c["track"]:
            mod.running_mean.copy_(inp["running_mean"].to(pdt))
            mod.running_var.copy_(inp["running_var"].to(pdt))
            mod.num_batches_tracked.fill_(inp["num_batches_tracked"])
    mod.train(c["training"])
    x = inp["x"].to(dt)
    if c["cl"]:
        x = x.to(memory_format=memfmt(len(shape)))
    x = x.detach().requires_grad_(True)
    y = mod(x)
    res = None
    if c.get("act") == "add_relu":
        res = inp["residual"].to(dt)
        if c["cl"]:
            res = res.to(memory_format=memfmt(len(shape)))
        res = res.detach().requires_grad_(True)
        y = torch.relu(y + res)
    elif c.get("act") == "relu":
        y = torch.relu(y)
    if c["cl"]:
        assert y.is_contiguous(memory_format=memfmt(len(shape))), "output not channels_last"
    assert y.dtype == dt, f"y has dtype {y.dtype}, expected {dt}"
    if c["track"]:
        assert mod.running_mean.dtype == pdt and mod.running_var.dtype == pdt
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
        if res is not None:
            out["grad_residual"] = res.grad.detach().double()
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
    n = int(np.prod(shape)) // C  # values per channel (0 for an empty batch)
    xs = np.moveaxis(x, 1, 0).reshape(C, n)
    gos = None if go is None else np.moveaxis(go, 1, 0).reshape(C, n)
    act = c.get("act")
    res = inp.get("residual")
    res = None if res is None else (res.numpy() if torch.is_tensor(res) else res)
    rs = None if res is None else np.moveaxis(res, 1, 0).reshape(C, n)
    grs = None if (go is None or res is None) else np.empty_like(xs)
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
        if n == 0:
            # PyTorch on an empty batch: no element, running stats unchanged
            # (nbt is still incremented above), grad_weight = grad_bias = 0.
            if go is not None and c["affine"]:
                gw[ch] = gb[ch] = 0.0
            continue
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
        zs = [h * w + b for h in xhat]
        if rs is not None:
            zs = [z + mpf(float(r)) for z, r in zip(zs, rs[ch])]
        if act is not None:
            # torch.relu, and threshold_backward's mask (output <= 0 -> 0) on
            # the exact output.
            zs = [mpf(0) if z < 0 else z for z in zs]  # NaN stays NaN
        ys[ch] = [float(z) for z in zs]
        if update:
            rm0 = mpf(float(inp["running_mean"][ch]))
            rv0 = mpf(float(inp["running_var"][ch]))
            rm_new[ch] = float((1 - factor) * rm0 + factor * mean)
            rv_new[ch] = float((1 - factor) * rv0 + factor * var * n / (n - 1))
        if go is not None:
            g = [mpf(float(v)) for v in gos[ch]]
            if act is not None:
                g = [mpf(0) if z <= 0 else gi for gi, z in zip(g, zs)]  # NaN passes
            if grs is not None:
                grs[ch] = [float(gi) for gi in g]
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
    out = dict(y=unflat(ys), running_mean=rm_new, running_var=rv_new,
               num_batches_tracked=nbt if c["track"] else None,
               grad_input=None if gis is None else unflat(gis),
               grad_weight=gw, grad_bias=gb)
    if res is not None:
        out["grad_residual"] = None if grs is None else unflat(grs)
    return out


OUT_KEYS = ["y", "running_mean", "running_var", "num_batches_tracked",
            "grad_input", "grad_weight", "grad_bias"]


def out_keys(out):
    """OUT_KEYS, plus grad_residual for an add_relu case (only those files
    have the key, so the others stay byte-identical)."""
    return OUT_KEYS + (["grad_residual"] if "grad_residual" in out else [])


def enc_outputs(out, cl):
    res = {}
    for k in out_keys(out):
        v = out[k]
        if v is None or k == "num_batches_tracked":
            res[k] = v
        else:
            t = torch.as_tensor(v, dtype=torch.float64)
            res[k] = enc_list(mem_flat(t, cl) if k in ("y", "grad_input", "grad_residual") else t.reshape(-1))
    return res


def is_error_case(name):
    """Error cases are named error-... (f32/f64) or <dtype>_error-... (bf16/f16)."""
    return name.split("_", 1)[-1].startswith("error-")


def build_case(c):
    dt = DTYPES[c["dtype"]]
    pdt = DTYPES[c["param_dtype"] or c["dtype"]]
    inp = make_inputs(c)
    for k in ("x", "weight", "bias", "running_mean", "running_var", "grad_output"):
        if inp[k] is not None:  # rounding to bf16/f16 must not create infinities
            assert not torch.isinf(inp[k]).any(), f"{c['name']}: input {k} overflows {c['dtype']}"
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
    if inp["residual"] is not None:
        inputs["residual"] = enc_list(mem_flat(inp["residual"], cl))
    d = {
        "format": FORMAT, "name": c["name"], "note": c["note"],
        "source": "torch " + torch.__version__, "dtype": c["dtype"]}
    if c["param_dtype"] is not None:  # bf16/f16 cases only: old files stay byte-identical
        d["param_dtype"] = c["param_dtype"]
    d.update({
        "shape": c["shape"],
        "memory_format": "channels_last" if cl else "contiguous",
        "config": {"eps": c["eps"], "momentum": c["momentum"], "affine": c["affine"],
                   "track_running_stats": c["track"]},
        "training": c["training"],
    })
    if c.get("act") is not None:  # activation cases only (bn-case/1 extension)
        d["activation"] = c["act"]
    d["inputs"] = inputs
    try:
        out = run_torch(c, inp, dt, pdt)
    except Exception as e:  # PyTorch rejects the input
        msg = str(e).strip().splitlines()[0]
        d["expected_error"] = msg
        d["note"] = c["note"] + f" (torch raises {type(e).__name__})"
        return d
    if is_error_case(c["name"]):
        raise RuntimeError(f"{c['name']}: expected PyTorch to raise, it did not")
    d["expected"] = enc_outputs(out, cl)
    if c["dtype"] == "f32":
        ref = run_torch(c, inp, torch.float64)
        d["note"] = c["note"] + "; reference: torch float64"
    else:
        ref = mp_reference(c, inp)
        d["note"] = c["note"] + "; reference: mpmath 60 digits" + (
            " on the exact %s inputs" % c["dtype"] if c["dtype"] in HALF_DTYPES else "")
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
    x = np.moveaxis(from_mem_flat(d["inputs"]["x"], shape, cl), 1, 0).reshape(C, int(np.prod(shape)) // C)
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


def exactly_representable(values, dtype_name):
    """True when every (non-NaN) value is exactly a value of dtype_name."""
    if dtype_name == "f64":
        return True
    a = torch.tensor([dec(t) for t in values], dtype=torch.float64)
    back = a.to(DTYPES[dtype_name]).to(torch.float64)
    return bool(torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(back, nan=0.0)))


def judging_dtype(d, k):
    """Dtype an output is judged in: per-channel outputs in param_dtype, y and
    grad_input (and the data inputs) in dtype."""
    return d.get("param_dtype", d["dtype"]) if k in PER_CHANNEL else d["dtype"]


def logical_inputs(d):
    """The file's inputs as logical float64 tensors (the make_inputs layout)."""
    shape = d["shape"]
    cl = d["memory_format"] == "channels_last"
    inp = d["inputs"]
    vec = lambda v: None if v is None else torch.tensor([dec(t) for t in v], dtype=torch.float64)
    return dict(
        x=torch.from_numpy(from_mem_flat(inp["x"], shape, cl)),
        grad_output=None if inp["grad_output"] is None else torch.from_numpy(from_mem_flat(inp["grad_output"], shape, cl)),
        weight=vec(inp["weight"]), bias=vec(inp["bias"]), running_mean=vec(inp["running_mean"]),
        running_var=vec(inp["running_var"]), num_batches_tracked=inp["num_batches_tracked"],
        residual=None if inp.get("residual") is None else torch.from_numpy(from_mem_flat(inp["residual"], shape, cl)))


def case_config(d):
    """The case() fields that run_torch / mp_reference read, from a file."""
    return dict(shape=d["shape"], eps=d["config"]["eps"], momentum=d["config"]["momentum"],
                affine=d["config"]["affine"], track=d["config"]["track_running_stats"],
                training=d["training"], cl=d["memory_format"] == "channels_last",
                act=d.get("activation"))


def verify(folder):
    """Check every bn-case/1 file in folder; print one line per file and, at
    the end, every bf16/f16 output where PyTorch's own error exceeds the
    tolerance floor of the format. Returns False when a file has a problem
    (exceeding the floor is reported, not counted as a problem: the harness's
    bar is then 4 * e_torch)."""
    ok = True
    total = 0
    rows = []
    exceed = []  # (file, output, judging dtype, e_torch, floor)
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
        if d["dtype"] not in DTYPES:
            problems.append("unknown dtype " + str(d["dtype"]))
        pdt_name = d.get("param_dtype", d["dtype"])
        if pdt_name not in DTYPES:
            problems.append("unknown param_dtype " + str(pdt_name))
        half = d["dtype"] in HALF_DTYPES
        if half and "param_dtype" not in d:
            problems.append("bf16/f16 file without param_dtype")
        if half and pdt_name not in (d["dtype"], "f32"):
            problems.append(f"param_dtype {pdt_name} with dtype {d['dtype']}: PyTorch only mixes with f32")
        if problems:
            ok = False
            rows.append((fn, "PROBLEM: " + "; ".join(problems), ""))
            continue
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
        for k, v in inp.items():
            if isinstance(v, list):
                vdt = pdt_name if k in PER_CHANNEL + ("weight", "bias") else d["dtype"]
                if not exactly_representable(v, vdt):
                    problems.append(f"input {k} not {vdt}-exact")
        if "expected_error" in d:
            rows.append((fn, "error: " + d["expected_error"][:60], ""))
        else:
            exp, ref = d["expected"], d["reference"]
            kappa = condition(d)
            worst = []
            for k in out_keys(exp):
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
                want = numel if k in ("y", "grad_input", "grad_residual") else C
                if len(e) != want or len(r) != want:
                    problems.append("len " + k)
                    continue
                jd = judging_dtype(d, k)
                if d["dtype"] != "f64" and not exactly_representable(e, jd):
                    problems.append(f"expected {k} not {jd}-exact")
                ea = np.array([dec(t) for t in e])
                ra = np.array([dec(t) for t in r])
                if not np.array_equal(np.isnan(ea), np.isnan(ra)):
                    problems.append(f"{k}: NaN pattern differs")
                fin = ~np.isnan(ra)
                if fin.any():
                    err = float(np.max(np.abs(ea[fin] - ra[fin])))
                    scale = max(1.0, float(np.max(np.abs(ra[fin]))))
                    rel = err / (TOL_EPS[jd] * scale)  # in units of eps_dtype*max(1,|ref|)
                    worst.append((rel, k))
                    # PyTorch's own error should be a modest number of ulps of the
                    # output's scale, times the conditioning of the input (a mean
                    # that is large against the spread costs ulp(mean)/std even
                    # in an exactly-rounded implementation).
                    if rel > 1e3 * kappa:
                        problems.append(f"{k}: |expected-reference| = {rel:.3g} eps*scale")
                    floor = TOL_K[jd] * TOL_EPS[jd] * scale
                    if half and err > floor:
                        exceed.append((fn, k, jd, err, floor))
            # cross-check the references with an independent computation:
            # f32 files (torch float64 references) against mpmath, bf16/f16 files
            # (mpmath references) against PyTorch in float64.
            if d["dtype"] == "f32" or half:
                logical = logical_inputs(d)
                cc = case_config(d)
                if d["dtype"] == "f32":
                    for key in ("x", "grad_output", "residual"):
                        if logical[key] is not None:
                            logical[key] = logical[key].numpy()
                    other, what = enc_outputs(mp_reference(cc, logical), cl), "torch-f64 ref vs mpmath"
                else:
                    other, what = enc_outputs(run_torch(cc, logical, torch.float64), cl), "mpmath ref vs torch-f64"
                for k in out_keys(ref):
                    if ref[k] is None or k == "num_batches_tracked":
                        continue
                    ra = np.array([dec(t) for t in ref[k]])
                    ma = np.array([dec(t) for t in other[k]])
                    fin = ~np.isnan(ma)
                    if not np.array_equal(np.isnan(ra), np.isnan(ma)):
                        problems.append(f"{k}: {what}: NaN pattern differs")
                    elif fin.any():
                        scale = max(1.0, float(np.max(np.abs(ma[fin]))))
                        if np.max(np.abs(ra[fin] - ma[fin])) > 1e-9 * scale:
                            problems.append(f"{k}: {what}: far apart")
            worst.sort(reverse=True)
            rows.append((fn, "ok", ("max |exp-ref| = %.3g eps*max(1,|ref|) (%s)" % worst[0] if worst else "")
                         + "; kappa %.2g" % kappa))
        if problems:
            ok = False
            rows[-1] = (fn, "PROBLEM: " + "; ".join(problems), rows[-1][2])
    for r in rows:
        print("%-55s %s %s" % r)
    print(f"{len(rows)} files, {total} bytes total")
    if exceed:
        print(f"\nbf16/f16 outputs where PyTorch's own error e_torch = max|expected - reference| exceeds "
              f"the floor K*eps*max(1, max|reference|) (K = 4 for bf16/f16, 16 for f32) -- the "
              f"harness's bar there is 4*e_torch:")
        for fn, k, jd, err, floor in exceed:
            print(f"  {fn:55} {k:13} judged in {jd:4}: e_torch {err:.4g} > floor {floor:.4g} (x{err / floor:.2f})")
    else:
        print("bf16/f16: PyTorch's own error is within the tolerance floor on every output")
    return ok


# --------------------------------------------------------------------------
# multi-step cases (bn-case/1 extension "Multi-step cases")
# --------------------------------------------------------------------------
# One module, several calls in order: the running statistics and
# num_batches_tracked carry over from step to step; weight and bias do not
# change (no optimizer); each step's gradients are that step's alone
# (zero_grad before every backward). Written with --steps-out DIR, one file
# per sequence, named steps_*.json. Each step's `expected` is what one
# persistent nn.BatchNormNd module computed; its `reference` is that call
# computed more precisely (f32: PyTorch float64; f64 and bf16: mpmath) from
# the exact values the step started from: the buffers PyTorch held after the
# step before (so every step, read with those buffers as its inputs, is an
# ordinary single case -- see verify_steps).

def step(training=True, grad=False, shape=None, offset=0.0, spread=1.0):
    """One call: module mode, whether a backward follows, the batch shape
    (None: the sequence's shape) and how the batch is drawn."""
    return dict(training=training, grad=grad, shape=shape, offset=offset, spread=spread)


def seq(name, note, dtype, shape, steps, *, cl=False, eps=1e-5, momentum=0.1,
        affine=True, track=True, nbt=0, param_dtype=None):
    return dict(name=name, note=note, dtype=dtype, shape=list(shape), steps=steps, cl=cl,
                eps=eps, momentum=momentum, affine=affine, track=track, nbt=nbt,
                param_dtype=param_dtype)


def step_sequences():
    out = []
    for d in ("f32", "f64"):
        out += [
            seq(f"steps_train3-momentum0.1-{d}", f"{d}: BatchNorm1d (N,C,L), 3 training steps, momentum 0.1",
                d, (4, 3, 5), [step(offset=0.0), step(offset=0.5, spread=2.0), step(offset=-1.0)]),
            seq(f"steps_train4-momentum-none-then-eval-{d}",
                f"{d}: BatchNorm1d (N,C), momentum None (cumulative average over num_batches_tracked), "
                "4 training steps from nbt 0, then eval with the averaged statistics",
                d, (6, 4), [step(offset=0.3 * k, spread=1.0 + 0.5 * k) for k in range(4)]
                + [step(training=False, offset=0.2)], momentum=None),
            seq(f"steps_train-eval-train-eval-{d}",
                f"{d}: BatchNorm2d mode switches train -> eval -> train -> eval, momentum 0.3, nbt 5",
                d, (3, 3, 2, 4), [step(), step(training=False), step(offset=1.0), step(training=False, offset=0.5)],
                momentum=0.3, nbt=5),
            seq(f"steps_empty-batch-middle-momentum-none-{d}",
                f"{d}: BatchNorm1d (N,C,L), momentum None: train, train on an empty batch (0,3,5) "
                "(num_batches_tracked still counts it, so the next factor is 1/3), train, eval",
                d, (4, 3, 5), [step(), step(shape=(0, 3, 5)), step(offset=2.0), step(training=False)],
                momentum=None),
        ]
    out += [
        seq("steps_affine-false-f64", "f64: BatchNorm1d (N,C,L), affine=False, 3 training steps then eval, backward",
            "f64", (5, 3, 4), [step(grad=True), step(offset=1.0, grad=True), step(offset=-0.5, grad=True),
                               step(training=False, grad=True)], affine=False),
        seq("steps_no-track-f32", "f32: BatchNorm1d (N,C,L), track_running_stats=False: train, eval (batch "
            "statistics, no buffers), train with a different batch size",
            "f32", (4, 3, 5), [step(grad=True), step(training=False, offset=1.0), step(shape=(2, 3, 5), grad=True)],
            track=False),
        seq("steps_cl-2d-f32", "f32: BatchNorm2d channels_last (C=5, 3x3), 3 training steps (momentum 0.1) then eval",
            "f32", (2, 5, 3, 3), [step(), step(offset=0.5), step(offset=-0.5, spread=3.0), step(training=False)],
            cl=True),
        seq("steps_cl-2d-f64-momentum-none", "f64: BatchNorm2d channels_last (C=4, 2x3), momentum None, 3 training "
            "steps from nbt 2, then eval, backward",
            "f64", (3, 4, 2, 3), [step(grad=True), step(offset=0.5, grad=True), step(offset=1.5, grad=True),
                                  step(training=False, grad=True)], cl=True, momentum=None, nbt=2),
        seq("steps_backward-each-step-f32", "f32: BatchNorm1d (N,C,L), backward on every step: 3 training steps "
            "(momentum 0.2) then eval with backward", "f32", (4, 3, 6),
            [step(grad=True), step(offset=1.0, grad=True), step(offset=-2.0, spread=0.5, grad=True),
             step(training=False, grad=True)], momentum=0.2),
        seq("steps_bf16-mixed-train2-eval", "bf16 data, f32 params: BatchNorm2d, 2 training steps then eval, backward",
            "bf16", (3, 3, 2, 3), [step(grad=True), step(offset=0.5, grad=True), step(training=False, grad=True)],
            param_dtype="f32"),
        seq("steps_bf16-mixed-momentum-none-3", "bf16 data, f32 params: BatchNorm1d (N,C), momentum None, "
            "3 training steps", "bf16", (8, 4), [step(), step(offset=1.0), step(offset=-1.0)],
            param_dtype="f32", momentum=None),
        seq("steps_error-last-step-f32", "f32: 2 training steps, then a training step with one value per "
            "channel (1,3): PyTorch rejects it, which ends the sequence", "f32", (4, 3),
            [step(), step(offset=1.0), step(shape=(1, 3))]),
    ]
    return out


STEP_SEQUENCES = step_sequences()


def make_step_inputs(s):
    """Initial module state and every step's batch (logical float64, rounded to dtype)."""
    g = torch.Generator().manual_seed(zlib.crc32(s["name"].encode()))
    dt = DTYPES[s["dtype"]]
    pdt = DTYPES[s["param_dtype"] or s["dtype"]]
    C = s["shape"][1]
    rnd = lambda t: None if t is None else t.to(dt).to(torch.float64)
    prnd = lambda t: None if t is None else t.to(pdt).to(torch.float64)
    state = dict(weight=None, bias=None, running_mean=None, running_var=None,
                 num_batches_tracked=s["nbt"] if s["track"] else None)
    if s["affine"]:
        sign = torch.where(torch.rand(C, generator=g) < 0.2, -1.0, 1.0).double()
        state["weight"] = prnd(sign * (0.5 + 1.5 * torch.rand(C, generator=g, dtype=torch.float64)))
        state["bias"] = prnd(torch.randn(C, generator=g, dtype=torch.float64))
    if s["track"]:
        state["running_mean"] = prnd(0.5 * torch.randn(C, generator=g, dtype=torch.float64))
        state["running_var"] = prnd(0.5 + torch.rand(C, generator=g, dtype=torch.float64))
    calls = []
    for st in s["steps"]:
        shape = list(st["shape"] or s["shape"])
        x = torch.randn(shape, generator=g, dtype=torch.float64) * st["spread"] + st["offset"]
        go = torch.randn(shape, generator=g, dtype=torch.float64) if st["grad"] else None
        calls.append(dict(training=st["training"], shape=shape, x=rnd(x), grad_output=rnd(go)))
    return state, calls


def torch_steps(s, state, calls, dt, pdt=None):
    """Run the calls on one persistent nn.BatchNormNd (data dt, module pdt).
    Returns one dict of logical float64 outputs per call; a call PyTorch
    rejects gives {"error": message} and ends the list."""
    pdt = dt if pdt is None else pdt
    C = s["shape"][1]
    mod = MODULES[len(s["shape"])](C, eps=s["eps"], momentum=s["momentum"], affine=s["affine"],
                                   track_running_stats=s["track"], dtype=pdt)
    with torch.no_grad():
        if s["affine"]:
            mod.weight.copy_(state["weight"].to(pdt))
            mod.bias.copy_(state["bias"].to(pdt))
        if s["track"]:
            mod.running_mean.copy_(state["running_mean"].to(pdt))
            mod.running_var.copy_(state["running_var"].to(pdt))
            mod.num_batches_tracked.fill_(state["num_batches_tracked"])
    outs = []
    for call in calls:
        mod.train(call["training"])
        mod.zero_grad(set_to_none=True)
        x = call["x"].to(dt)
        if s["cl"]:
            x = x.to(memory_format=memfmt(len(call["shape"])))
        x = x.detach().requires_grad_(True)
        try:
            y = mod(x)
        except Exception as e:
            outs.append(dict(error=str(e).strip().splitlines()[0]))
            break
        assert y.dtype == dt
        out = dict(y=y.detach().double(), grad_input=None, grad_weight=None, grad_bias=None,
                   running_mean=None, running_var=None, num_batches_tracked=None)
        if s["track"]:
            assert mod.running_mean.dtype == pdt
            out["running_mean"] = mod.running_mean.detach().double().clone()
            out["running_var"] = mod.running_var.detach().double().clone()
            out["num_batches_tracked"] = int(mod.num_batches_tracked.item())
        if call["grad_output"] is not None:
            go = call["grad_output"].to(dt)
            if s["cl"]:
                go = go.to(memory_format=memfmt(len(call["shape"])))
            y.backward(go)
            out["grad_input"] = x.grad.detach().double()
            if s["affine"]:
                out["grad_weight"] = mod.weight.grad.detach().double().clone()
                out["grad_bias"] = mod.bias.grad.detach().double().clone()
        outs.append(out)
    return outs


def build_sequence(s):
    dt = DTYPES[s["dtype"]]
    pdt = DTYPES[s["param_dtype"] or s["dtype"]]
    state, calls = make_step_inputs(s)
    cl = s["cl"]
    got = torch_steps(s, state, calls, dt, pdt)
    # Reference of each step: that call computed precisely from the exact
    # values it started from (the buffers PyTorch held after the step before).
    ref = []
    before = dict(state)
    for call, out in zip(calls, got):
        if "error" in out:
            break
        c = dict(shape=call["shape"], eps=s["eps"], momentum=s["momentum"], affine=s["affine"],
                 track=s["track"], training=call["training"], cl=cl)
        inp = dict(before, x=call["x"], grad_output=call["grad_output"])
        if s["dtype"] == "f32":
            ref.append(run_torch(c, inp, torch.float64))
        else:
            ref.append(mp_reference(c, inp))
        if s["track"]:
            before = dict(before, running_mean=out["running_mean"], running_var=out["running_var"],
                          num_batches_tracked=out["num_batches_tracked"])
    how = ("torch float64" if s["dtype"] == "f32" else "mpmath 60 digits" + (
        " on the exact %s inputs" % s["dtype"] if s["dtype"] in HALF_DTYPES else "")) + (
        ", each step from the buffers PyTorch held before it")
    vec = lambda t: None if t is None else enc_list(t)
    d = {"format": FORMAT, "name": s["name"], "note": s["note"] + "; reference: " + how,
         "source": "torch " + torch.__version__, "dtype": s["dtype"]}
    if s["param_dtype"] is not None:
        d["param_dtype"] = s["param_dtype"]
    d.update({
        "shape": s["shape"],
        "memory_format": "channels_last" if cl else "contiguous",
        "config": {"eps": s["eps"], "momentum": s["momentum"], "affine": s["affine"],
                   "track_running_stats": s["track"]},
        "inputs": {k: vec(state[k]) for k in ("weight", "bias", "running_mean", "running_var")}
                  | {"num_batches_tracked": state["num_batches_tracked"]},
        "steps": [],
    })
    for k, (call, out) in enumerate(zip(calls, got)):
        st = {"training": call["training"]}
        if call["shape"] != s["shape"]:
            st["shape"] = call["shape"]
        st["inputs"] = {"x": enc_list(mem_flat(call["x"], cl)),
                        "grad_output": None if call["grad_output"] is None
                        else enc_list(mem_flat(call["grad_output"], cl))}
        if "error" in out:
            st["expected_error"] = out["error"]
        else:
            st["expected"] = enc_outputs(out, cl)
            st["reference"] = enc_outputs(ref[k], cl)
        d["steps"].append(st)
    if len(got) < len(calls):
        raise RuntimeError(f"{s['name']}: PyTorch stopped before the last step")
    if s["name"].startswith("steps_error") != ("error" in got[-1]):
        raise RuntimeError(f"{s['name']}: the last step's error/no-error is not what the name says")
    return d


def verify_steps(folder):
    """Check every steps_*.json in folder: each step read as a single case
    passes the single-case checks of verify() (lengths, dtype-exact values,
    |expected - reference| small), and the buffers after step k equal the
    state step k + 1 starts from in PyTorch (re-run here). Returns False on a problem."""
    import tempfile
    ok = True
    for fn in sorted(os.listdir(folder)):
        if not (fn.startswith("steps_") and fn.endswith(".json")):
            continue
        with open(os.path.join(folder, fn)) as f:
            d = json.load(f)
        problems = []
        if fn != d["name"] + ".json":
            problems.append("file name != name")
        # each step as a single case, with the buffers PyTorch had before it
        state = dict(d["inputs"])
        with tempfile.TemporaryDirectory() as tmp:
            for k, st in enumerate(d["steps"]):
                single = {key: d[key] for key in d if key not in ("steps", "inputs", "name")}
                single["name"] = f"step{k}"
                single["shape"] = st.get("shape", d["shape"])
                single["training"] = st["training"]
                single["inputs"] = dict(state, x=st["inputs"]["x"], grad_output=st["inputs"]["grad_output"])
                for key in ("expected", "reference", "expected_error"):
                    if key in st:
                        single[key] = st[key]
                with open(os.path.join(tmp, f"step{k}.json"), "w") as f:
                    json.dump(single, f)
                if "expected" in st and d["config"]["track_running_stats"]:
                    state = dict(state, running_mean=st["expected"]["running_mean"],
                                 running_var=st["expected"]["running_var"],
                                 num_batches_tracked=st["expected"]["num_batches_tracked"])
            # Re-running PyTorch from the previous step's expected buffers must
            # reproduce each step's expected outputs (the state carries over).
            for k, st in enumerate(d["steps"]):
                if "expected" not in st:
                    continue
                with open(os.path.join(tmp, f"step{k}.json")) as f:
                    single = json.load(f)
                inp = logical_inputs(single)
                cc = case_config(single)
                pdt = DTYPES[single.get("param_dtype", single["dtype"])]
                again = enc_outputs(run_torch(cc, inp, DTYPES[single["dtype"]], pdt), cc["cl"])
                if again != st["expected"]:
                    problems.append(f"step {k}: PyTorch from the previous step's buffers differs")
            print(f"-- {fn}: steps read as single cases:")
            if not verify(tmp):
                problems.append("a step fails the single-case checks")
        if problems:
            ok = False
        print("%-55s %s" % (fn, "PROBLEM: " + "; ".join(problems) if problems else "ok"))
    return ok


# --------------------------------------------------------------------------
# state dicts (safetensors), for harness/src/state_dict.rs
# --------------------------------------------------------------------------
# Each entry: a module trained a few steps in PyTorch, saved with
# safetensors.torch.save_file(model.state_dict(), NAME.safetensors), and a
# NAME.json beside it with what the file must read back as (the module's
# config, the key prefix, and every tensor's exact values). Written with
# --state-dicts-out DIR (harness/tests/state_dicts: outside the case
# fixtures, whose *.json files are all bn-case/1).

STATE_DICTS = [
    # name, dtype, C, rank, momentum, affine, track, steps, prefix
    ("f32-3steps", "f32", 3, 3, 0.1, True, True, 3, ""),
    ("f64-momentum-none-4steps-prefix-bn1", "f64", 4, 4, None, True, True, 4, "bn1."),
    ("f32-affine-false-2steps", "f32", 3, 2, 0.1, False, True, 2, ""),
    ("f32-no-track", "f32", 5, 3, 0.1, True, False, 1, ""),
    ("f32-no-track-prefix-bn1", "f32", 2, 4, 0.1, True, False, 1, "bn1."),
    ("bf16-2steps", "bf16", 3, 3, 0.1, True, True, 2, ""),
    ("f16-2steps-prefix-bn1", "f16", 3, 2, 0.3, True, True, 2, "bn1."),
]


def build_state_dict(entry, folder):
    from collections import OrderedDict
    from safetensors.torch import save_file
    name, dtype, C, rank, momentum, affine, track, steps, prefix = entry
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    dt = DTYPES[dtype]
    bn = MODULES[rank](C, momentum=momentum, affine=affine, track_running_stats=track, dtype=dt)
    with torch.no_grad():
        if affine:  # not the defaults 1 and 0, so a swapped key would show
            bn.weight.copy_(torch.rand(C, generator=g, dtype=torch.float64).to(dt) + 0.5)
            bn.bias.copy_(torch.randn(C, generator=g, dtype=torch.float64).to(dt))
        bn.train()
        for k in range(steps):
            shape = [4, C] + [3] * (rank - 2)
            bn(((torch.randn(shape, generator=g, dtype=torch.float64) + k) * 2).to(dt))
    if prefix:
        # the module inside a model: other layers' keys sit beside it
        # (seeded: the Linear's initial values come from the global RNG)
        torch.manual_seed(zlib.crc32(name.encode()))
        model = torch.nn.Sequential(OrderedDict(
            conv=torch.nn.Linear(2, 2, dtype=dt), **{prefix.rstrip("."): bn}))
        sd = model.state_dict()
    else:
        sd = bn.state_dict()
    sd = {k: v.contiguous() for k, v in sd.items()}
    save_file(sd, os.path.join(folder, name + ".safetensors"))
    state = {}
    for key, t in bn.state_dict().items():
        state[key] = int(t.item()) if key == "num_batches_tracked" else enc_list(t.double())
    meta = {"name": name, "dtype": dtype, "num_features": C, "affine": affine,
            "track_running_stats": track, "prefix": prefix, "momentum": momentum,
            "training_steps": steps, "source": "torch " + torch.__version__,
            "keys": sorted(sd.keys()), "state": state}
    with open(os.path.join(folder, name + ".json"), "w") as f:
        f.write(json.dumps(meta, indent=1, allow_nan=False) + "\n")
    return name


def check_bnh_states(args):
    """Used by harness/tests/state_dict.rs: args are FILE META pairs; for
    each, load the safetensors FILE bnh wrote into a fresh PyTorch module of
    the config META describes (strict load_state_dict) and print its state
    as one line of JSON (exact values)."""
    assert len(args) % 2 == 0, "give FILE META pairs"
    for path, meta_path in zip(args[::2], args[1::2]):
        check_bnh_state(path, meta_path)


def check_bnh_state(path, meta_path):
    from safetensors.torch import load_file
    with open(meta_path) as f:
        meta = json.load(f)
    dt = DTYPES[meta["dtype"]]
    sd = load_file(path)
    prefix = meta["prefix"]
    own = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    bn = torch.nn.BatchNorm1d(meta["num_features"], affine=meta["affine"],
                              track_running_stats=meta["track_running_stats"], dtype=dt)
    bn.load_state_dict(own, strict=True)
    out = {}
    for key, t in bn.state_dict().items():
        if key == "num_batches_tracked":
            assert t.dtype == torch.int64 and t.dim() == 0, (t.dtype, t.shape)
            out[key] = int(t.item())
        else:
            assert t.dtype == dt, (key, t.dtype)
            out[key] = enc_list(t.double())
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder to write <name>.json cases into")
    ap.add_argument("--verify", metavar="DIR", help="check all bn-case/1 files in DIR")
    ap.add_argument("--steps-out", metavar="DIR",
                    help="folder to write the multi-step cases (steps_*.json) into")
    ap.add_argument("--verify-steps", metavar="DIR",
                    help="check the steps_*.json files in DIR (each step as a single case)")
    ap.add_argument("--state-dicts-out", metavar="DIR",
                    help="folder to write the safetensors state-dict fixtures (+ .json) into")
    ap.add_argument("--check-bnh-state", nargs="+", metavar="FILE META",
                    help="FILE META pairs: load each state dict bnh wrote into PyTorch "
                         "(config from META) and print it, one JSON line per pair")
    ap.add_argument("--only", metavar="PREFIXES",
                    help="with --out: only the cases whose name starts with one of these "
                         "comma-separated prefixes (e.g. bf16_,f16_)")
    args = ap.parse_args()
    if args.check_bnh_state:
        check_bnh_states(args.check_bnh_state)
        return
    if not (args.out or args.verify or args.steps_out or args.verify_steps or args.state_dicts_out):
        ap.error("give --out DIR, --verify DIR, --steps-out DIR, --verify-steps DIR "
                 "and/or --state-dicts-out DIR")
    torch.set_num_threads(1)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        names = set()
        prefixes = tuple(args.only.split(",")) if args.only else ("",)
        for c in CASES:
            assert c["name"] not in names, c["name"]
            names.add(c["name"])
            if not c["name"].startswith(prefixes):
                continue
            d = build_case(c)
            s = dumps(d)
            with open(os.path.join(args.out, c["name"] + ".json"), "w") as f:
                f.write(s)
            print(f"{c['name']}.json  {len(s)} bytes" + ("  [error]" if "expected_error" in d else ""))
    if args.steps_out:
        os.makedirs(args.steps_out, exist_ok=True)
        prefixes = tuple(args.only.split(",")) if args.only else ("",)
        names = set()
        for s in STEP_SEQUENCES:
            assert s["name"] not in names, s["name"]
            names.add(s["name"])
            if not s["name"].startswith(prefixes):
                continue
            text = dumps(build_sequence(s))
            with open(os.path.join(args.steps_out, s["name"] + ".json"), "w") as f:
                f.write(text)
            print(f"{s['name']}.json  {len(text)} bytes")
    if args.state_dicts_out:
        os.makedirs(args.state_dicts_out, exist_ok=True)
        for entry in STATE_DICTS:
            print(build_state_dict(entry, args.state_dicts_out) + ".safetensors")
    if args.verify:
        if not verify(args.verify):
            sys.exit(1)
    if args.verify_steps:
        if not verify_steps(args.verify_steps):
            sys.exit(1)


if __name__ == "__main__":
    main()
