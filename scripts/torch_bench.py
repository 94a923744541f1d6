#!/usr/bin/env python3
"""Time PyTorch's CPU batch norm on the bnh grids; write bnh's bench CSV schema.

Rows are labelled:
  impl=torch          as users call it: every call allocates a fresh output.
  impl=torch-noalloc  the same calls with glibc told never to return memory to
                      the OS (GLIBC_TUNABLES=glibc.malloc.mmap_max=0:
                      glibc.malloc.trim_threshold=...), so outputs reuse already
                      mapped pages instead of paying page faults on every call
                      (a 51 MB output costs about 12,500 faults, ~20 ms, more than
                      the kernel). Our implementations write into preallocated
                      buffers, so torch-noalloc is the like-for-like column.

Operations (same as `bnh bench`):
  train     F.batch_norm(x, running_mean, running_var, w, b, training=True)
  eval      F.batch_norm(x, running_mean, running_var, w, b, training=False)
  backward  torch.ops.aten.native_batch_norm_backward (the kernel autograd calls)
The memcpy roofline is dst.copy_(x) into a preallocated tensor, timed
interleaved with the operation, under the same torch.set_num_threads(t).

The timing method mirrors harness/src/bench/runner.rs: warm-up for a tenth of
--min-time, calls grouped into samples of >= 100 us, samples until the
operation's time reaches --min-time (at least 5), median/p10/p90.

Dtypes (--dtypes, comma-separated; default: the grid's): f32, f64, bf16, f16.
bf16/f16 time PyTorch's half-precision CPU kernels: x, grad_output and the
output in bf16/f16, and by default weight/bias/running stats in the same dtype
(a model converted with .to(torch.bfloat16)). --param-dtype f32 instead keeps
weight/bias/running stats in float32 (the mixed-dtype kernels PyTorch's CPU
batch norm also accepts). The CSV columns are the same for every dtype; `bytes`
counts x's elements at the data dtype's size (2 for bf16/f16). The CSV has no
param-dtype column, so write mixed runs to their own CSV (the .machine.json
sidecar records the command).

Usage:
  python3 scripts/torch_bench.py --grid quick --csv reports/torch.csv
  python3 scripts/torch_bench.py --grid standard --threads 1,2 --csv torch.csv
  python3 scripts/torch_bench.py --grid quick --dtypes bf16,f16 --csv torch-half.csv
  python3 scripts/torch_bench.py --grid quick --dtypes bf16,f16 --param-dtype f32 --csv torch-half-mixed.csv
If PyTorch is not importable the script says so and exits 0 without writing.
Grid shapes are copied from harness/src/bench/grid.rs: keep them in sync.
"""

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

# The columns after samples (roofline: which copy; read_ns: not measured here;
# source, run_id: provenance) come last, as in bnh's CSVs, so
# readers of the first 17 columns keep working.
COLUMNS = ("impl,op,dtype,layout,shape,n,c,spatial,threads,bytes,median_ns,p10_ns,p90_ns,"
           "memcpy_ns,ratio_to_memcpy,gb_per_s,samples,roofline,read_ns,source,run_id").split(",")
NOALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
PASSES = {"train": 3, "eval": 2, "backward": 3}
EPS = 1e-5
MIN_SAMPLES, MAX_SAMPLES, TARGET_SAMPLE_S = 5, 2000, 100e-6
DTYPE_NAMES = ("f32", "f64", "bf16", "f16")
HALF = ("bf16", "f16")


def torch_dtype(torch, name):
    """bnh dtype name -> torch dtype (torch is passed in: it is imported lazily)."""
    return {"f32": torch.float32, "f64": torch.float64,
            "bf16": torch.bfloat16, "f16": torch.float16}[name]


def pow2(lo, hi):
    return [1 << k for k in range(lo, hi + 1)]


GRIDS = {
    "standard": ([(32, 64), (256, 1024), (4096, 4096), (32, 64, 28, 28), (64, 64, 56, 56),
                  (64, 512, 7, 7), (256, 3, 64, 64), (8, 32, 16, 32, 32)],
                 ["contiguous", "channels_last"], ["f32", "f64"], 0.25),
    "batch-sweep": ([(n, 64, 8, 8) for n in pow2(0, 12)], ["contiguous"], ["f32"], 0.25),
    "feature-sweep": ([(64, c, 8, 8) for c in pow2(0, 12)], ["contiguous"], ["f32"], 0.25),
    "quick": ([(256, 1024), (32, 64, 28, 28), (64, 64, 56, 56)],
              ["contiguous", "channels_last"], ["f32"], 0.05),
}


def usage_error(msg):
    """Bad input: one message and exit status 2, as bnh's usage errors."""
    print(msg, file=sys.stderr)
    sys.exit(2)


def parse_shape(s):
    try:
        dims = tuple(int(p) for p in s.lower().split("x"))
    except ValueError:
        usage_error(f"torch_bench: malformed shape '{s}'; write NxC[xD][xH][xW]")
    if not 2 <= len(dims) <= 5 or min(dims) < 1:
        usage_error(f"torch_bench: shape '{s}' needs 2 to 5 sizes, all >= 1")
    return dims


def percentile(sorted_v, q):
    pos = q * (len(sorted_v) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (sorted_v[hi] - sorted_v[lo]) * (pos - lo)


def measure(call, copy, min_time):
    t_op = t_cp = 0.0
    n = 0
    start = time.perf_counter()
    while n == 0 or time.perf_counter() - start < min_time / 10:
        t = time.perf_counter(); call(); t_op += time.perf_counter() - t
        t = time.perf_counter(); copy(); t_cp += time.perf_counter() - t
        n += 1
    k_op = max(1, int(TARGET_SAMPLE_S / max(t_op / n, 1e-9)))
    k_cp = max(1, int(TARGET_SAMPLE_S / max(t_cp / n, 1e-9)))
    ops, cps, spent = [], [], 0.0
    while len(ops) < MAX_SAMPLES and (spent < min_time or len(ops) < MIN_SAMPLES):
        t = time.perf_counter()
        for _ in range(k_op):
            call()
        dt = time.perf_counter() - t
        spent += dt
        ops.append(dt / k_op * 1e9)
        t = time.perf_counter()
        for _ in range(k_cp):
            copy()
        cps.append((time.perf_counter() - t) / k_cp * 1e9)
    ops.sort(); cps.sort()
    return percentile(ops, 0.5), percentile(ops, 0.1), percentile(ops, 0.9), percentile(cps, 0.5), len(ops)


def run_variant(args, label):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    grid_shapes, grid_layouts, grid_dtypes, grid_min = GRIDS[args.grid]
    shapes = [parse_shape(s) for s in args.shapes.split(",")] if args.shapes else grid_shapes
    layouts = args.layouts.split(",") if args.layouts else grid_layouts
    dtypes = args.dtypes.split(",") if args.dtypes else grid_dtypes
    ops = args.ops.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    min_time = args.min_time if args.min_time is not None else grid_min
    rows = []
    for dims in shapes:
        for layout in dict.fromkeys(l if len(dims) > 2 else "contiguous" for l in layouts):
            for dt in dtypes:
                tdt = torch_dtype(torch, dt)
                # parameters: same dtype as the data, or float32 for bf16/f16 with --param-dtype f32
                pdt = torch.float32 if (dt in HALF and args.param_dtype == "f32") else tdt
                c = dims[1]
                if dt in HALF:  # draw in float32, round once to the half dtype
                    x = (torch.rand(dims) * 4 - 1).to(tdt)
                    dy = (torch.rand(dims) * 2 - 1).to(tdt)
                else:
                    x = torch.rand(dims, dtype=tdt) * 4 - 1
                    dy = torch.rand(dims, dtype=tdt) * 2 - 1
                if layout == "channels_last":
                    fmt = torch.channels_last if len(dims) == 4 else torch.channels_last_3d
                    if len(dims) == 3:
                        continue  # torch has no channels-last format for (N, C, L)
                    x = x.contiguous(memory_format=fmt)
                    dy = dy.contiguous(memory_format=fmt)
                dst = torch.empty_like(x)
                w = (torch.rand(c, dtype=torch.float32 if dt in HALF else tdt) + 0.5).to(pdt)
                b = (torch.rand(c, dtype=torch.float32 if dt in HALF else tdt) - 0.5).to(pdt)
                rm = torch.ones(c, dtype=pdt)
                rv = torch.full((c,), 4.0 / 3.0, dtype=pdt)
                _, save_mean, save_invstd = torch.native_batch_norm(x, w, b, rm.clone(), rv.clone(), True, 0.1, EPS)
                calls = {
                    "train": lambda: F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=EPS),
                    "eval": lambda: F.batch_norm(x, rm, rv, w, b, training=False, eps=EPS),
                    "backward": lambda: torch.ops.aten.native_batch_norm_backward(
                        dy, x, w, rm, rv, save_mean, save_invstd, True, EPS, [True, True, True]),
                }
                nbytes = x.numel() * x.element_size()
                for t in threads:
                    torch.set_num_threads(t)
                    for op in ops:
                        with torch.no_grad():
                            med, p10, p90, cp, n = measure(calls[op], lambda: dst.copy_(x), min_time)
                        spatial = 1
                        for d in dims[2:]:
                            spatial *= d
                        rows.append({
                            "impl": label, "op": op, "dtype": dt, "layout": layout,
                            "shape": "x".join(map(str, dims)), "n": dims[0], "c": c, "spatial": spatial,
                            "threads": t, "bytes": nbytes, "median_ns": round(med, 1),
                            "p10_ns": round(p10, 1), "p90_ns": round(p90, 1), "memcpy_ns": round(cp, 1),
                            "ratio_to_memcpy": round(med / cp, 4),
                            "gb_per_s": round(PASSES[op] * nbytes / med, 3), "samples": n,
                            "roofline": "copy_", "read_ns": 0,
                            "source": "torch", "run_id": args.run_id,
                        })
                        print(f"{label:13} {op:8} {dt} {layout:13} {rows[-1]['shape']:14} t{t} "
                              f"{med / 1e6:9.3f} ms  x{med / cp:6.2f} memcpy", file=sys.stderr)
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", choices=sorted(GRIDS), default="standard")
    p.add_argument("--shapes", help="comma-separated NxC[xH][xW] shapes instead of the grid's")
    p.add_argument("--ops", default="train,eval,backward")
    p.add_argument("--dtypes", help="comma-separated, from f32,f64,bf16,f16 (default: the grid's)")
    p.add_argument("--param-dtype", choices=["same", "f32"], default="same",
                   help="bf16/f16 only: weight/bias/running stats in the data dtype (same, "
                        "default) or in float32 (PyTorch's mixed-dtype CPU path)")
    p.add_argument("--layouts")
    p.add_argument("--threads", default="1")
    p.add_argument("--min-time", type=float)
    p.add_argument("--csv", required=True)
    p.add_argument("--variant", choices=["both", "torch", "torch-noalloc"], default="both",
                   help="both (default) runs torch, then torch-noalloc in a child process")
    p.add_argument("--run-id", help="the run_id column (default: UTC time and process id, "
                                    "one per invocation, like bnh's); invocations given one "
                                    "id are rounds of one run, of which bnh report keeps "
                                    "each cell's fastest")
    args = p.parse_args()
    if args.run_id is None:
        args.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-p{os.getpid()}"
    elif not re.fullmatch(r"[A-Za-z0-9._:+-]{1,64}", args.run_id):
        usage_error(f"torch_bench: --run-id {args.run_id!r}: use 1 to 64 letters, digits or "
                 ". _ - : + (as bnh bench --run-id)")
    for op in args.ops.split(","):
        if op not in PASSES:
            usage_error(f"torch_bench: unknown op '{op}'; use train, eval or backward")
    for dt in (args.dtypes.split(",") if args.dtypes else []):
        if dt not in DTYPE_NAMES:
            usage_error(f"torch_bench: unknown dtype '{dt}'; use {', '.join(DTYPE_NAMES)}")
    if not all(t.strip().isdigit() and int(t) >= 1 for t in args.threads.split(",")):
        usage_error("torch_bench: --threads needs counts >= 1")
    try:
        import torch
    except ImportError:
        print("torch_bench: PyTorch is not installed; skipping the torch comparison", file=sys.stderr)
        return 0

    if args.variant == "both":
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for variant in ("torch", "torch-noalloc"):
                part = os.path.join(tmp, f"{variant}.csv")
                env = dict(os.environ)
                env.pop("GLIBC_TUNABLES", None)
                if variant == "torch-noalloc":
                    env["GLIBC_TUNABLES"] = NOALLOC_TUNABLES
                argv = [a for a in sys.argv[1:]]
                cmd = ([sys.executable, os.path.abspath(__file__)] + argv
                       + ["--variant", variant, "--csv", part, "--run-id", args.run_id])
                subprocess.run(cmd, env=env, check=True)
                with open(part, newline="") as f:
                    rows.extend(csv.DictReader(f))
    else:
        if variant_needs_tunables(args.variant):
            sys.exit("torch_bench: torch-noalloc must run with GLIBC_TUNABLES="
                     f"{NOALLOC_TUNABLES} (use --variant both)")
        rows = run_variant(args, args.variant)
    write_csv(args.csv, rows)
    side = os.path.splitext(args.csv)[0] + ".machine.json"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(side, "w") as f:
        json.dump({
            "cpu": cpu_model(), "cores": os.cpu_count(),
            "rustc": f"n/a (torch {torch.__version__}, python {platform.python_version()})",
            "git_commit": commit or "unknown",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"] * ("OMP_WAIT_POLICY" in os.environ)
                                + ["python3"] + sys.argv),
        }, f, indent=2)
    print(f"torch_bench: wrote {len(rows)} rows to {args.csv}", file=sys.stderr)
    return 0


def variant_needs_tunables(variant):
    return variant == "torch-noalloc" and os.environ.get("GLIBC_TUNABLES") != NOALLOC_TUNABLES


if __name__ == "__main__":
    sys.exit(main())
