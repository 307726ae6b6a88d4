#!/usr/bin/env python3
"""Golden dequantization fixtures for the i-quants (IQ1_S … IQ4_XS).

Writes into Tests/KernelsTests/Fixtures/quant/iq/:
  <TYPE>.bin      blocks of TYPE: seeded random bytes, with valid fp16 scales, and grid indices that
                  count through every codebook entry (so every row of ds_iq_tables.c is exercised)
  <TYPE>.f32      <TYPE>.bin dequantized by the gguf package (gguf.quants.dequantize)
  manifest.json   block counts and sha256 of every file

The C tests (Scripts/ckernels-test, [9]) dequantize each .bin with CKernels and compare bit for bit.

Run:  python3 Scripts/make-iquant-fixtures.py     (needs numpy and the gguf package)
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "KernelsTests" / "Fixtures" / "quant" / "iq"

# type: (bytes per block, number of blocks: enough for the counter to cover the whole grid)
TYPES = {
    "IQ2_XXS": (66, 8), "IQ2_XS": (74, 16), "IQ2_S": (82, 32), "IQ3_XXS": (98, 4), "IQ3_S": (110, 8),
    "IQ1_S": (50, 64), "IQ1_M": (56, 64), "IQ4_NL": (18, 40), "IQ4_XS": (136, 5),
}


def fp16_bits(rng, n):
    """Scales: |N(0,1)| * 2^-7 with random sign, as fp16 bit patterns (finite, a few subnormals)."""
    v = (rng.standard_normal(n) * 2.0 ** -7).astype(np.float16)
    v[::13] = np.float16(3e-7)      # fp16 subnormal
    return v.view(np.uint16)


def put_u16(block, offset, value):
    block[offset:offset + 2] = np.array([value], dtype=np.uint16).view(np.uint8)


def make_blocks(name, rng):
    size, count = TYPES[name]
    blocks = rng.integers(0, 256, size=(count, size), dtype=np.uint8)
    d = fp16_bits(rng, count)
    counter = 0
    for b in range(count):
        blk = blocks[b]
        if name != "IQ1_M":
            put_u16(blk, 0, int(d[b]))
        if name == "IQ2_XXS":            # per group of 32: 4 index bytes, then 4 bytes of signs/scale
            for g in range(8):
                for l in range(4):
                    blk[2 + 8 * g + l] = counter % 256; counter += 1
        elif name == "IQ2_XS":           # 32 uint16: low 9 bits index
            for k in range(32):
                old = int(blk[2 + 2 * k]) | (int(blk[3 + 2 * k]) << 8)
                put_u16(blk, 2 + 2 * k, (old & ~511) | (counter % 512)); counter += 1
        elif name == "IQ2_S":            # qs[0..31] low 8 bits, qh[ib] 2 bits per index
            for k in range(32):
                idx = counter % 1024; counter += 1
                blk[2 + k] = idx & 255
                ib, l = divmod(k, 4)
                q = 2 + 64 + ib
                blk[q] = (int(blk[q]) & ~(3 << (2 * l))) | ((idx >> 8) << (2 * l))
        elif name == "IQ3_XXS":          # 64 index bytes
            for k in range(64):
                blk[2 + k] = counter % 256; counter += 1
        elif name == "IQ3_S":            # qs[k] low 8 bits, bit k%8 of qh[k//8]
            for k in range(64):
                idx = counter % 512; counter += 1
                blk[2 + k] = idx & 255
                q = 2 + 64 + k // 8
                blk[q] = (int(blk[q]) & ~(1 << (k % 8))) | ((idx >> 8) << (k % 8))
        elif name in ("IQ1_S", "IQ1_M"):  # 11-bit indices: qs byte + 3 bits
            qs0 = 0 if name == "IQ1_M" else 2
            for k in range(32):
                idx = counter % 2048; counter += 1
                blk[qs0 + k] = idx & 255
                ib, l = divmod(k, 4)
                if name == "IQ1_S":
                    off = 2 + 32 + 2 * ib
                    qh = int(blk[off]) | (int(blk[off + 1]) << 8)
                    qh = (qh & ~(7 << (3 * l))) | ((idx >> 8) << (3 * l))
                    put_u16(blk, off, qh)
                else:
                    off = 32 + 2 * ib + l // 2
                    shift = 4 * (l % 2)
                    blk[off] = (int(blk[off]) & ~(7 << shift)) | ((idx >> 8) << shift)
            if name == "IQ1_M":          # fp16 d in the top nibbles of the 4 scale words
                sc = blk[48:56].view(np.uint16).copy()
                bits = int(d[b])
                for w in range(4):
                    sc[w] = (int(sc[w]) & 0x0FFF) | (((bits >> (4 * w)) & 0xF) << 12)
                blk[48:56] = sc.view(np.uint8)
    return blocks


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261206)
    manifest = {"types": {}}
    for name in TYPES:
        blocks = make_blocks(name, rng)
        values = quants.dequantize(blocks.reshape(-1), T[name]).astype(np.float32).reshape(-1)
        assert np.all(np.isfinite(values)), name
        (OUT / f"{name}.bin").write_bytes(blocks.tobytes())
        (OUT / f"{name}.f32").write_bytes(values.astype("<f4").tobytes())
        manifest["types"][name] = {
            "type_id": int(T[name]), "blocks": int(blocks.shape[0]), "elements": int(values.size),
            "bin_sha256": hashlib.sha256(blocks.tobytes()).hexdigest(),
            "f32_sha256": hashlib.sha256(values.astype("<f4").tobytes()).hexdigest(),
        }
        print(f"{name}: {blocks.shape[0]} blocks, {values.size} values")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
