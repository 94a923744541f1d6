#!/usr/bin/env python3
"""PyTorch as a bnh external implementation (docs/EXTERNAL.md).

    python3 scripts/torch_kernel.py CASE OUT

reads one bn-case/1 file (docs/BN-CASE-FORMAT.md), runs it through
torch.nn.BatchNorm{1,2,3}d -- training or eval, momentum (None = cumulative
average), track_running_stats, affine, contiguous or channels_last memory,
data dtype f32/f64/bf16/f16 with the case's param_dtype for the module's
parameters and buffers, then the backward when the case has grad_output --
and writes OUT in the format `bnh run-case` writes:

    {"outputs": {"y": [...], "running_mean": ..., "running_var": ...,
                 "num_batches_tracked": ..., "grad_input": ..., "grad_weight": ...,
                 "grad_bias": ...}}

(y and grad_input flat in the case's memory order, the rest per channel,
null where not applicable, NaN/inf as "nan"/"inf"/"-inf"), or
{"error": "..."} when PyTorch rejects the input. With bnh:

    bnh check --external 'torch=python3 scripts/torch_kernel.py {case} {out}'

Exit status: 0 when OUT was written (outputs or PyTorch's rejection); 2 with a
message on stderr for a file that is not a usable bn-case/1 case (bnh then
reports the run as crashed). Requirements: python3 with torch (CPU is enough).
One thread (torch.set_num_threads(1)), as the fixtures were generated, so the
reductions run in the same order.
"""

import json
import math
import os
import sys
import tempfile

import torch

FORMAT = "bn-case/1"
DTYPES = {"f32": torch.float32, "f64": torch.float64,
          "bf16": torch.bfloat16, "f16": torch.float16}
MODULES = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
           4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}
OUT_KEYS = ["y", "running_mean", "running_var", "num_batches_tracked",
            "grad_input", "grad_weight", "grad_bias"]


class BadCase(Exception):
    """The file is not a case this script can run (exit 2)."""


def num(v):
    """A case number: a JSON number or "nan"/"inf"/"-inf"."""
    if isinstance(v, str):
        if v in ("nan", "inf", "-inf"):
            return float(v)
        raise BadCase(f"value {v!r} is not a number")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadCase(f"value {v!r} is not a number")
    return float(v)


def enc(t):
    """A tensor as a flat JSON list (exact doubles, NaN/inf as strings)."""
    out = []
    for v in t.detach().double().reshape(-1).tolist():
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def memory_format(ndim):
    return torch.channels_last if ndim == 4 else torch.channels_last_3d


def logical(flat, shape, dtype, cl):
    """A flat list in the case's memory order -> an (N, C, *spatial) tensor
    of `dtype` laid out like the case (channels_last for cl, 4-D/5-D)."""
    t = torch.tensor([num(v) for v in flat], dtype=torch.float64)
    if len(t) != math.prod(shape):
        raise BadCase(f"{len(t)} values for shape {shape}")
    if cl and len(shape) >= 3:
        t = t.reshape([shape[0]] + list(shape[2:]) + [shape[1]])
        t = t.movedim(-1, 1)
        return t.to(dtype).contiguous(memory_format=memory_format(len(shape)))
    return t.reshape(shape).to(dtype).contiguous()


def memory_order(t, cl):
    """The inverse of `logical`: a logical tensor flat in the case's memory order."""
    if cl and t.dim() >= 3:
        t = t.movedim(1, -1)
    return t.contiguous().reshape(-1)


def per_channel(values, dtype):
    return None if values is None else torch.tensor([num(v) for v in values], dtype=dtype)


def run(case):
    """The outputs dict of `case`, or raise PyTorch's exception."""
    if case.get("format") != FORMAT:
        raise BadCase(f"format is {case.get('format')!r}, expected {FORMAT!r}")
    try:
        dt = DTYPES[case["dtype"]]
        pdt = DTYPES[case.get("param_dtype") or case["dtype"]]
        shape = [int(s) for s in case["shape"]]
        cl = case["memory_format"] == "channels_last"
        cfg, inputs, training = case["config"], case["inputs"], bool(case["training"])
    except KeyError as e:
        raise BadCase(f"missing or unknown field {e}") from None
    if len(shape) not in MODULES:
        raise BadCase(f"shape {shape}: expected 2 to 5 dimensions")
    mod = MODULES[len(shape)](shape[1], eps=cfg["eps"], momentum=cfg["momentum"],
                              affine=cfg["affine"],
                              track_running_stats=cfg["track_running_stats"], dtype=pdt)
    with torch.no_grad():
        if cfg["affine"]:
            mod.weight.copy_(per_channel(inputs["weight"], pdt))
            mod.bias.copy_(per_channel(inputs["bias"], pdt))
        if cfg["track_running_stats"]:
            mod.running_mean.copy_(per_channel(inputs["running_mean"], pdt))
            mod.running_var.copy_(per_channel(inputs["running_var"], pdt))
            mod.num_batches_tracked.fill_(int(inputs["num_batches_tracked"]))
    mod.train(training)
    x = logical(inputs["x"], shape, dt, cl).requires_grad_(True)
    y = mod(x)
    # The activation extension: relu(bn(x)) or relu(bn(x) + residual).
    act = case.get("activation") or "none"
    residual = None
    if act == "relu":
        y = torch.relu(y)
    elif act == "add_relu":
        residual = logical(inputs["residual"], shape, dt, cl).requires_grad_(True)
        y = torch.relu(y + residual)
    elif act != "none":
        raise BadCase(f"unknown activation {act!r}")
    out = dict.fromkeys(OUT_KEYS)
    out["y"] = enc(memory_order(y, cl))
    if cfg["track_running_stats"]:
        out["running_mean"] = enc(mod.running_mean)
        out["running_var"] = enc(mod.running_var)
        out["num_batches_tracked"] = int(mod.num_batches_tracked.item())
    if inputs.get("grad_output") is not None:
        y.backward(logical(inputs["grad_output"], shape, dt, cl))
        out["grad_input"] = enc(memory_order(x.grad, cl))
        if residual is not None:
            out["grad_residual"] = enc(memory_order(residual.grad, cl))
        if cfg["affine"]:
            out["grad_weight"] = enc(mod.weight.grad)
            out["grad_bias"] = enc(mod.bias.grad)
    return out


def write_atomic(path, text):
    """Write `text` to `path` through a temp file in its folder and a rename,
    so a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".torch_kernel-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv):
    if len(argv) != 3:
        print("usage: torch_kernel.py CASE OUT", file=sys.stderr)
        return 2
    case_path, out_path = argv[1], argv[2]
    torch.set_num_threads(1)
    try:
        with open(case_path, encoding="utf-8") as f:
            case = json.load(f)
        if not isinstance(case, dict):
            raise BadCase("not a JSON object")
        try:
            if "steps" in case:  # several calls on one module: not done here yet
                reply = {"unsupported": "multi-step cases are not implemented in torch_kernel.py"}
            else:
                reply = {"outputs": run(case)}
        except (RuntimeError, ValueError) as e:  # PyTorch rejects the input
            lines = str(e).strip().splitlines()
            reply = {"error": lines[0] if lines else type(e).__name__}
    except (OSError, ValueError, BadCase, TypeError, KeyError) as e:
        print(f"torch_kernel.py: {case_path}: not a usable bn-case/1 file: {e}", file=sys.stderr)
        return 2
    write_atomic(out_path, json.dumps(reply, separators=(",", ":"), allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
