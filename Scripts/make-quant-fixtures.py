#!/usr/bin/env python3
"""Golden fixtures for DwarfStar's C quantization kernels (CKernels).

Writes into Fixtures/quant/ (next to this script's parent directory unless --out is given):
  input.f32        N little-endian float32 inputs (deterministic: seeded normal * 0.02 with outliers,
                   plus special blocks: zeros, a constant run, tiny values, a whole zero super-block)
  <TYPE>.bin       the input quantized to TYPE
  <TYPE>.f32       <TYPE>.bin dequantized by gguf-py (gguf.quants.dequantize)
  manifest.json    N, type ids, block sizes, who made each .bin, sha256 of every file

Who quantizes:
  * Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 F16 BF16 MXFP4: gguf.quants.quantize (gguf-py's numpy reference).
  * Q2_K Q3_K Q4_K Q5_K Q6_K: gguf-py has no quantizer for these. With --ggml-src DIR (a llama.cpp
    "ggml" folder) they are made by ggml's own quantize_row_*_ref compiled from DIR; otherwise by
    DwarfStar's ds_quantize_row_ref (CKernels, compiled here with gcc), which the C tests check
    byte-for-byte against these very files. Both ways give identical bytes (checked when both run).
Dequantized floats always come from gguf-py, so the .f32 files are independent of CKernels.

Run:  /tmp/refvenv/bin/python Scripts/make-quant-fixtures.py [--ggml-src DIR] [--out DIR]
"""

import argparse
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N = 1280  # 5 super-blocks of 256 = 40 blocks of 32

GGUF_QUANTIZED = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "F16", "BF16", "MXFP4"]
K_QUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
BLOCK = {"Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
         "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176),
         "Q6_K": (256, 210), "F16": (1, 2), "BF16": (1, 2), "MXFP4": (32, 17)}


def make_input() -> np.ndarray:
    rng = np.random.default_rng(20240611)
    x = (rng.standard_normal(N) * 0.02).astype(np.float32)
    # A few outliers (like real weight matrices), both signs.
    for i, v in [(5, 0.9), (77, -1.3), (300, 2.5), (301, -0.7), (640, 0.33), (900, -4.0)]:
        x[i] = v
    # Positive-only and negative-only blocks (min > 0 / max < 0 paths of the affine quantizers).
    x[64:96] = np.abs(x[64:96]) + 0.01
    x[96:128] = -np.abs(x[96:128]) - 0.005
    # Super-block 3 (768..1023) gets special 32-value groups:
    x[768:800] = 0.0                                    # all zeros
    x[800:832] = 0.125                                  # constant (max == min)
    x[832:864] = (rng.standard_normal(32) * 1e-6).astype(np.float32)   # fp16-subnormal scales
    x[864:896] = np.linspace(-1.0, 1.0, 32, dtype=np.float32)          # evenly spaced
    # Super-block 4 (1024..1279): all zeros.
    x[1024:1280] = 0.0
    return x.astype(np.float32)


def build_shared(sources, include_dirs, out_path, extra=()):
    cmd = ["gcc", "-O2", "-std=gnu11", "-shared", "-fPIC", "-o", str(out_path)]
    for d in include_dirs:
        cmd += ["-I", str(d)]
    cmd += [str(s) for s in sources] + list(extra) + ["-lm"]
    subprocess.run(cmd, check=True)


GGML_STUBS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) { fprintf(stderr, "abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
"""


def ggml_quantizer(ggml_src: Path, tmp: Path):
    """ctypes handle to ggml's quantize_row_*_ref compiled from a llama.cpp ggml folder."""
    stubs = tmp / "ggml_stubs.c"
    stubs.write_text(GGML_STUBS)
    lib = tmp / "libggmlquants.so"
    src = ggml_src / "src"
    build_shared([src / "ggml-quants.c", stubs], [ggml_src / "include", src], lib, ["-fopenmp"])
    handle = ctypes.CDLL(str(lib))

    def quantize(name: str, x: np.ndarray) -> bytes:
        fn = getattr(handle, f"quantize_row_{name.lower().replace('_k', '_K')}_ref")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        block, size = BLOCK[name]
        out = np.zeros(len(x) // block * size, dtype=np.uint8)
        fn(x.ctypes.data, out.ctypes.data, len(x))
        return out.tobytes()

    return quantize


def dwarfstar_quantizer(tmp: Path):
    """ctypes handle to CKernels' ds_quantize_row_ref."""
    ck = ROOT / "Sources" / "CKernels"
    lib = tmp / "libckernels.so"
    build_shared(sorted(ck.glob("*.c")), [ck / "include"], lib)
    handle = ctypes.CDLL(str(lib))
    handle.ds_quantize_row_ref.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]

    def quantize(name: str, x: np.ndarray) -> bytes:
        block, size = BLOCK[name]
        out = np.zeros(len(x) // block * size, dtype=np.uint8)
        handle.ds_quantize_row_ref(int(T[name]), x.ctypes.data, out.ctypes.data, len(x))
        return out.tobytes()

    return quantize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ggml-src", type=Path, help="llama.cpp ggml folder (has src/ggml-quants.c)")
    parser.add_argument("--out", type=Path, default=ROOT / "Tests" / "KernelsTests" / "Fixtures" / "quant")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    x = make_input()
    files = {"input.f32": x.astype("<f4").tobytes()}
    manifest = {"n": N, "input": "input.f32", "types": {}}

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ours = dwarfstar_quantizer(tmp)
        theirs = ggml_quantizer(args.ggml_src, tmp) if args.ggml_src else None

        for name in GGUF_QUANTIZED + K_QUANTS:
            qtype = T[name]
            if name in GGUF_QUANTIZED:
                q = np.asarray(quants.quantize(x, qtype)).view(np.uint8).tobytes()
                made_by = "gguf.quants.quantize"
                if name == "MXFP4":   # also checked against ggml's and DwarfStar's reference quantizers
                    for who, quantizer in [("ggml", theirs), ("ds_quantize_row_ref", ours)]:
                        if quantizer is not None:
                            print(f"MXFP4: {who} vs gguf-py: {'identical' if quantizer(name, x) == q else 'DIFFERENT'}")
            elif theirs is not None:
                q = theirs(name, x)
                made_by = "ggml quantize_row_%s_ref" % name.lower().replace("_k", "_K")
                mine = ours(name, x)
                status = "identical" if mine == q else "DIFFERENT"
                print(f"{name}: ds_quantize_row_ref vs ggml: {status}")
            else:
                q = ours(name, x)
                made_by = "DwarfStar ds_quantize_row_ref (verified equal to ggml's ref)"
            block, size = BLOCK[name]
            assert len(q) == N // block * size, (name, len(q))
            deq = quants.dequantize(np.frombuffer(q, dtype=np.uint8), qtype).astype(np.float32).reshape(-1)
            assert deq.shape == (N,), (name, deq.shape)
            files[f"{name}.bin"] = q
            files[f"{name}.f32"] = deq.astype("<f4").tobytes()
            manifest["types"][name] = {
                "ggml_type": int(qtype), "block_size": block, "block_bytes": size,
                "bin": f"{name}.bin", "f32": f"{name}.f32", "quantized_by": made_by,
                "dequantized_by": "gguf.quants.dequantize",
            }

    for fname, data in files.items():
        (out / fname).write_bytes(data)
    manifest["sha256"] = {f: hashlib.sha256(d).hexdigest() for f, d in sorted(files.items())}
    import gguf  # noqa: E402  (version only)
    manifest["generator"] = {"script": "Scripts/make-quant-fixtures.py",
                             "gguf": getattr(gguf, "__version__", None) or _gguf_version(),
                             "numpy": np.__version__}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(files)} files + manifest.json to {out}")
    return 0


def _gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover
        return None


if __name__ == "__main__":
    sys.exit(main())
