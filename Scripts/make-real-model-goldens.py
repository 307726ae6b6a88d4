#!/usr/bin/env python3
"""Reference logits of a real quantized model for the Vulkan backend's tests: transformers loads the GGUF
(dequantizing every weight to float32) and runs the tokens in float32, the arithmetic the device kernels do
(float activations; the CPU backend quantizes activations to 8 bits, as llama.cpp does, and lands further
off). Keeps, per position, the 64 largest logits and their token ids (a few KB instead of the whole vocab).

  make-real-model-goldens.py MODEL.gguf 1,4093,198 OUT.json

Needs torch, transformers, gguf and accelerate (the reference venv: ../shared/tools/ref-venv.sh).
"""
import json
import sys
from pathlib import Path

import torch
import transformers as T


def main():
    path, ids, out = Path(sys.argv[1]), [int(x) for x in sys.argv[2].split(",")], sys.argv[3]
    model = T.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    top = torch.topk(logits, 64, dim=-1)
    json.dump({"model": path.name, "token_ids": ids, "top_ids": top.indices.tolist(),
               "top_logits": [[round(v, 5) for v in row] for row in top.values.tolist()]}, open(out, "w"))
    print(f"{out}: {len(ids)} positions, vocab {logits.shape[-1]}")


if __name__ == "__main__":
    main()
