#!/usr/bin/env python3
"""
Gemma 4 text model (GGUF general.architecture = "gemma4") -- plain NumPy reference forward pass.

Usage:
    python gemma4_ref.py <model.gguf> <golden.json> [--f64]

What it does
  (a) full-sequence forward of golden["token_ids"] in ONE batch, logits at every position,
      compared with golden["logits"];
  (b) incremental forward with an explicit KV cache: the prompt in chunks of 16 tokens, then
      greedy decoding one token per call (8 greedy steps), compared with golden["greedy"].
      KV-shared layers (the last `shared_kv_layers` layers) do not own a cache; they read
      the cache of the layer they share with.

Conventions (important for a port)
  * GGUF stores a tensor with ggml dims ne = [ne0, ne1, ...], ne0 contiguous.  gguf.GGUFReader
    hands out numpy arrays with the dims REVERSED: shape = (..., ne1, ne0).  So a linear
    weight with ne = [n_in, n_out] arrives as W[n_out, n_in] (row-major, one output per row),
    which is exactly the PyTorch nn.Linear layout:  y = x @ W.T.
  * Activations are row-major [n_tokens, features].  All shapes are written in comments
    with T = number of tokens in the current call.
  * Everything is computed in float32 by default (what an engine will do);  --f64 runs the
    same code in float64 (diagnostic only).

Only numpy and the `gguf` package are needed.
"""

import json
import math
import sys

import numpy as np
import gguf

DTYPE = np.float32  # switched to float64 by --f64


# ----------------------------------------------------------------------------------------------
# GGUF loading
# ----------------------------------------------------------------------------------------------

def load_gguf(path):
    """Return (metadata: dict name -> python value, tensors: dict name -> np.ndarray).

    Tensor arrays have the numpy shape = reversed ggml ne (see module docstring)."""
    reader = gguf.GGUFReader(path)
    meta = {}
    for name, field in reader.fields.items():
        if name.startswith("tokenizer.ggml.") and name in (
            "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
            "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
        ):
            continue  # tokenizer arrays are not needed for the forward pass
        meta[name] = field.contents()
    tensors = {}
    for t in reader.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ValueError(f"{t.name}: only F32 tensors are supported by this reference")
        # t.shape is ggml ne (ne0 first); t.data is numpy with reversed shape
        arr = np.array(t.data, dtype=np.float32)
        assert tuple(arr.shape) == tuple(int(d) for d in reversed(list(t.shape))), t.name
        tensors[t.name] = arr
    return meta, tensors


class HParams:
    """Hyper-parameters, all read from GGUF metadata (prefix 'gemma4.')."""

    def __init__(self, meta):
        a = meta["general.architecture"]
        assert a == "gemma4", a
        p = a + "."

        def per_layer(key, n):
            """Scalar or per-layer array key -> list of n ints."""
            v = meta[key]
            if isinstance(v, (list, tuple)):
                assert len(v) == n, key
                return [int(x) for x in v]
            return [int(v)] * n

        self.n_layer = int(meta[p + "block_count"])                                   # 6
        self.n_embd = int(meta[p + "embedding_length"])                               # 64
        self.n_ff = per_layer(p + "feed_forward_length", self.n_layer)                # [64,64,64,64,128,128]
        self.n_head = per_layer(p + "attention.head_count", self.n_layer)             # [4]*6
        self.n_head_kv = per_layer(p + "attention.head_count_kv", self.n_layer)       # [2,2,2,1,2,1]
        self.head_dim_full = int(meta[p + "attention.key_length"])                    # 32
        self.head_dim_swa = int(meta[p + "attention.key_length_swa"])                 # 16
        assert int(meta[p + "attention.value_length"]) == self.head_dim_full
        assert int(meta[p + "attention.value_length_swa"]) == self.head_dim_swa
        self.is_swa = [bool(x) for x in meta[p + "attention.sliding_window_pattern"]]  # [T,T,T,F,T,F]
        assert len(self.is_swa) == self.n_layer
        self.n_swa = int(meta[p + "attention.sliding_window"])                        # 8
        self.rope_base_full = float(meta[p + "rope.freq_base"])                       # 1e6
        self.rope_base_swa = float(meta[p + "rope.freq_base_swa"])                    # 1e4
        self.n_rot_full = int(meta[p + "rope.dimension_count"])                       # 32
        self.n_rot_swa = int(meta[p + "rope.dimension_count_swa"])                    # 16
        self.eps = float(meta[p + "attention.layer_norm_rms_epsilon"])                # 1e-6 (as f32)
        self.n_expert = int(meta.get(p + "expert_count", 0))                          # 4
        self.n_expert_used = int(meta.get(p + "expert_used_count", 0))                # 2
        self.n_ff_exp = int(meta.get(p + "expert_feed_forward_length", 0))            # 16
        self.n_embd_per_layer = int(meta.get(p + "embedding_length_per_layer_input", 0))  # 16
        self.n_kv_shared = int(meta.get(p + "attention.shared_kv_layers", 0))         # 2
        # llama.cpp uses 30.0 when the key is absent (see spec); this fixture has the key.
        self.softcap = float(meta.get(p + "final_logit_softcapping", 30.0))           # 30
        self.attn_scale = 1.0  # Gemma 4: no 1/sqrt(head_dim); q/k are RMS-normed instead

        # KV sharing: layers [n_layer_kv, n_layer) reuse the KV of the LAST earlier non-shared
        # layer of the same attention type (transformers' rule).
        self.n_layer_kv = self.n_layer - self.n_kv_shared                             # 4
        self.kv_source = []                                                           # [0,1,2,3,2,3]
        for il in range(self.n_layer):
            if il < self.n_layer_kv:
                self.kv_source.append(il)
            else:
                src = max(j for j in range(self.n_layer_kv) if self.is_swa[j] == self.is_swa[il])
                self.kv_source.append(src)

    def head_dim(self, il):
        return self.head_dim_swa if self.is_swa[il] else self.head_dim_full

    def n_rot(self, il):
        return self.n_rot_swa if self.is_swa[il] else self.n_rot_full

    def rope_base(self, il):
        return self.rope_base_swa if self.is_swa[il] else self.rope_base_full


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

def linear(x, w):
    """x [T, n_in], w [n_out, n_in] (numpy view of ggml ne=[n_in, n_out]) -> [T, n_out]."""
    return x @ w.T


def rms_norm(x, weight, eps):
    """RMSNorm over the last axis:  y = x / sqrt(mean(x^2) + eps) * weight.

    Gemma 4 multiplies by the stored weight AS-IS (no '1 + weight' as in Gemma 1-3).
    weight=None means no scale (used for V and for the router input)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)       # [..., 1]
    y = x * (1.0 / np.sqrt(ms + DTYPE(eps))).astype(x.dtype)
    if weight is not None:
        y = y * weight
    return y


def gelu_tanh(x):
    """Exact tanh-approximation GELU (PyTorch gelu(approximate='tanh'), HF 'gelu_pytorch_tanh').

    0.5 * x * (1 + tanh( sqrt(2/pi) * (x + 0.044715 * x^3) )).  Do NOT use ggml's fp16 lookup."""
    c = DTYPE(math.sqrt(2.0 / math.pi))
    return DTYPE(0.5) * x * (DTYPE(1.0) + np.tanh(c * (x + DTYPE(0.044715) * x * x * x)))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def rope_inv_freq(hp, il, rope_freqs):
    """Inverse frequencies for layer il: [n_rot/2].

    inv_freq[i] = base^(-2i / n_rot) / freq_factor[i]      (llama.cpp formula, i = 0 .. n_rot/2-1)

    sliding layers: base 1e4, n_rot 16 = head_dim, no freq factors -> all 8 pairs rotate.
    full layers   : base 1e6, n_rot 32 = head_dim, freq_factor = rope_freqs.weight
                    = [1,1,1,1, 1e30 x 12]  -> only pairs i = 0..3 rotate, the rest get
                    inv_freq ~ 1e-30 (cos = 1, sin ~ 0): this is 'proportional RoPE' with
                    partial_rotary_factor 0.25 (transformers: inv_freq = 0 for i >= 4).
                    NOTE the exponent denominator is the FULL head_dim (32), not 8."""
    n_rot = hp.n_rot(il)
    base = hp.rope_base(il)
    i = np.arange(n_rot // 2, dtype=np.float64)
    inv = 1.0 / (base ** (2.0 * i / n_rot))                   # [n_rot/2]
    if not hp.is_swa[il]:
        inv = inv / rope_freqs.astype(np.float64)             # proportional RoPE factors
    return inv.astype(DTYPE)


def apply_rope_neox(x, positions, inv_freq):
    """NEOX-style ("rotate_half") RoPE on x [T, n_heads, D] with D == n_rot.

    Pair (i, i + D/2) is rotated by angle positions[t] * inv_freq[i]:
        out[i]       = x[i] * cos - x[i + D/2] * sin
        out[i + D/2] = x[i + D/2] * cos + x[i] * sin"""
    T, H, D = x.shape
    half = D // 2
    assert inv_freq.shape == (half,)
    ang = positions.astype(DTYPE)[:, None] * inv_freq[None, :]   # [T, D/2]
    cos = np.cos(ang)[:, None, :]                                 # [T, 1, D/2]
    sin = np.sin(ang)[:, None, :]
    x1 = x[:, :, :half]                                           # [T, H, D/2]
    x2 = x[:, :, half:]
    out = np.empty_like(x)
    out[:, :, :half] = x1 * cos - x2 * sin
    out[:, :, half:] = x2 * cos + x1 * sin
    return out


# ----------------------------------------------------------------------------------------------
# KV cache
# ----------------------------------------------------------------------------------------------

class KVCache:
    """One K and one V buffer per NON-shared layer (layers 0 .. n_layer_kv-1).

    K[il]: [n_ctx, n_head_kv(il), head_dim(il)]  -- after k_norm and RoPE
    V[il]: [n_ctx, n_head_kv(il), head_dim(il)]  -- after the unweighted v RMSNorm (no RoPE)
    Positions are absolute (slot p holds the token at position p); sliding-window layers keep
    everything here and simply mask (a ring buffer of n_swa slots + current chunk would also work).
    """

    def __init__(self, hp, n_ctx):
        self.n_ctx = n_ctx
        self.n_past = 0  # number of positions already stored
        self.k = {}
        self.v = {}
        for il in range(hp.n_layer_kv):
            shape = (n_ctx, hp.n_head_kv[il], hp.head_dim(il))
            self.k[il] = np.zeros(shape, dtype=DTYPE)
            self.v[il] = np.zeros(shape, dtype=DTYPE)


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------

class Gemma4:
    def __init__(self, meta, tensors):
        self.hp = HParams(meta)
        self.t = {k: v.astype(DTYPE) for k, v in tensors.items()}
        hp = self.hp
        # tied embeddings: no output.weight in this file -> LM head = token_embd.weight
        self.output = self.t.get("output.weight", self.t["token_embd.weight"])   # [n_vocab, n_embd]
        self.inv_freq = [rope_inv_freq(hp, il, self.t.get("rope_freqs.weight"))
                         for il in range(hp.n_layer)]

    def w(self, il, name):
        return self.t[f"blk.{il}.{name}"]

    # --- embeddings ---------------------------------------------------------------------------

    def embed(self, tokens):
        """tokens [T] -> x [T, n_embd] = token_embd[tokens] * sqrt(n_embd)."""
        E = self.t["token_embd.weight"]                          # [n_vocab, n_embd]
        return E[tokens] * DTYPE(math.sqrt(self.hp.n_embd))      # sqrt(64) = 8

    def per_layer_inputs(self, tokens, x_emb):
        """Per-layer embeddings (PLE).

        tokens [T], x_emb [T, n_embd] (the SCALED token embedding)
        returns ple [T, n_layer, n_embd_per_layer]; layer il consumes ple[:, il, :]."""
        hp = self.hp
        L, P = hp.n_layer, hp.n_embd_per_layer
        T = tokens.shape[0]
        # token-identity part: per_layer_token_embd [n_vocab, L*P], row reshaped to [L, P]
        tok = self.t["per_layer_token_embd.weight"][tokens]      # [T, L*P]
        tok = tok.reshape(T, L, P) * DTYPE(math.sqrt(P))         # * sqrt(16) = 4
        # context part: project the scaled embedding, scale, RMSNorm per layer slice
        proj = linear(x_emb, self.t["per_layer_model_proj.weight"])  # [T, L*P]
        proj = proj * DTYPE(1.0 / math.sqrt(hp.n_embd))               # * 1/sqrt(64)
        proj = proj.reshape(T, L, P)
        proj = rms_norm(proj, self.t["per_layer_proj_norm.weight"], hp.eps)  # norm over P
        return (proj + tok) * DTYPE(1.0 / math.sqrt(2.0))             # [T, L, P]

    # --- attention ----------------------------------------------------------------------------

    def attention(self, il, x, positions, cache):
        """x [T, n_embd] (already attn_norm'ed), positions [T] absolute.

        Writes this layer's K/V into cache (non-shared layers) and reads the K/V of
        hp.kv_source[il] for positions 0 .. positions[-1].  Returns [T, n_embd] (after attn_output)."""
        hp = self.hp
        T = x.shape[0]
        H, Hkv, D = hp.n_head[il], hp.n_head_kv[il], hp.head_dim(il)

        # Q: projection -> per-head RMSNorm (weighted) -> RoPE
        q = linear(x, self.w(il, "attn_q.weight")).reshape(T, H, D)           # [T, H, D]
        q = rms_norm(q, self.w(il, "attn_q_norm.weight"), hp.eps)
        q = apply_rope_neox(q, positions, self.inv_freq[il])

        src = hp.kv_source[il]
        if src == il:
            # own K/V
            k = linear(x, self.w(il, "attn_k.weight")).reshape(T, Hkv, D)      # [T, Hkv, D]
            if f"blk.{il}.attn_v.weight" in self.t:
                v = linear(x, self.w(il, "attn_v.weight")).reshape(T, Hkv, D)
            else:
                v = k.copy()  # attention_k_eq_v: V = raw K projection (before k_norm / RoPE)
            k = rms_norm(k, self.w(il, "attn_k_norm.weight"), hp.eps)
            k = apply_rope_neox(k, positions, self.inv_freq[il])
            v = rms_norm(v, None, hp.eps)                                     # unweighted
            cache.k[il][positions] = k
            cache.v[il][positions] = v
        # else: KV-shared layer -- no k/v weights; read the source layer's cache, which was
        # already written for the current positions earlier in this same forward call.

        n_kv = int(positions[-1]) + 1
        K = cache.k[src][:n_kv]                                                # [n_kv, Hkv, D]
        V = cache.v[src][:n_kv]
        assert K.shape[1] == Hkv and K.shape[2] == D

        # mask [T, n_kv]: causal, plus sliding window on SWA layers (keep p - j < n_swa)
        qp = positions[:, None]
        kp = np.arange(n_kv)[None, :]
        allowed = kp <= qp
        if hp.is_swa[il]:
            allowed &= (qp - kp) < hp.n_swa

        n_rep = H // Hkv
        out = np.zeros((T, H, D), dtype=DTYPE)
        for h in range(H):
            g = h // n_rep                      # GQA: q head h uses kv head h // (H/Hkv)
            s = (q[:, h, :] @ K[:, g, :].T) * DTYPE(hp.attn_scale)  # [T, n_kv], scale = 1
            s = np.where(allowed, s, DTYPE(-np.inf))
            p = softmax(s, axis=-1)
            out[:, h, :] = p @ V[:, g, :]       # [T, D]
        out = out.reshape(T, H * D)
        return linear(out, self.w(il, "attn_output.weight"))                   # [T, n_embd]

    # --- feed-forward -------------------------------------------------------------------------

    def dense_mlp(self, il, x):
        """GeGLU MLP: down( gelu(gate(x)) * up(x) ).  x [T, n_embd] -> [T, n_embd]."""
        g = linear(x, self.w(il, "ffn_gate.weight"))                           # [T, n_ff(il)]
        u = linear(x, self.w(il, "ffn_up.weight"))
        return linear(gelu_tanh(g) * u, self.w(il, "ffn_down.weight"))

    def router(self, il, h):
        """h [T, n_embd] = the residual stream after attention (NOT the pre-ffw-normed one).

        returns (idx [T, k] int, weight [T, k])."""
        hp = self.hp
        r = rms_norm(h, None, hp.eps)                                          # unweighted
        r = r * self.w(il, "ffn_gate_inp.scale") * DTYPE(1.0 / math.sqrt(hp.n_embd))
        logits = linear(r, self.w(il, "ffn_gate_inp.weight"))                  # [T, n_expert]
        probs = softmax(logits, axis=-1)
        k = hp.n_expert_used
        # top-k by probability, descending (ties do not occur in this fixture)
        idx = np.argsort(-probs, axis=-1, kind="stable")[:, :k]               # [T, k]
        wt = np.take_along_axis(probs, idx, axis=-1)                           # [T, k]
        wt = wt / np.sum(wt, axis=-1, keepdims=True)                           # renormalise
        wt = wt * self.w(il, "ffn_down_exps.scale")[idx]                       # per-expert scale
        return idx, wt

    def moe(self, il, x, idx, wt):
        """x [T, n_embd] (pre_ffw_norm_2'ed), idx/wt [T, k] -> [T, n_embd]."""
        hp = self.hp
        F = hp.n_ff_exp
        W_gu = self.w(il, "ffn_gate_up_exps.weight")     # [n_expert, 2F, n_embd]: rows 0..F-1 gate, F..2F-1 up
        W_d = self.w(il, "ffn_down_exps.weight")         # [n_expert, n_embd, F]
        out = np.zeros_like(x)
        for t in range(x.shape[0]):
            for j in range(idx.shape[1]):
                e = int(idx[t, j])
                gu = W_gu[e] @ x[t]                       # [2F]
                a = gelu_tanh(gu[:F]) * gu[F:]            # [F]
                out[t] += wt[t, j] * (W_d[e] @ a)         # [n_embd]
        return out

    # --- one decoder layer --------------------------------------------------------------------

    def layer(self, il, h, ple_l, positions, cache):
        """h [T, n_embd] residual stream; ple_l [T, n_embd_per_layer]."""
        hp = self.hp
        eps = hp.eps

        # 1. attention block (pre-norm + post-norm, then residual)
        a = rms_norm(h, self.w(il, "attn_norm.weight"), eps)
        a = self.attention(il, a, positions, cache)
        a = rms_norm(a, self.w(il, "post_attention_norm.weight"), eps)
        h = h + a                                                              # attn_out

        # 2. feed-forward: dense MLP branch + MoE branch, both from the same h
        m = rms_norm(h, self.w(il, "ffn_norm.weight"), eps)
        m = self.dense_mlp(il, m)
        if f"blk.{il}.ffn_gate_inp.weight" in self.t:
            m = rms_norm(m, self.w(il, "post_ffw_norm_1.weight"), eps)
            idx, wt = self.router(il, h)
            e = rms_norm(h, self.w(il, "pre_ffw_norm_2.weight"), eps)
            e = self.moe(il, e, idx, wt)
            e = rms_norm(e, self.w(il, "post_ffw_norm_2.weight"), eps)
            m = m + e
        m = rms_norm(m, self.w(il, "post_ffw_norm.weight"), eps)
        h = h + m

        # 3. per-layer embedding (PLE) block
        if hp.n_embd_per_layer > 0:
            g = linear(h, self.w(il, "inp_gate.weight"))                       # [T, P]
            g = gelu_tanh(g) * ple_l                                           # [T, P]
            g = linear(g, self.w(il, "proj.weight"))                           # [T, n_embd]
            g = rms_norm(g, self.w(il, "post_norm.weight"), eps)
            h = h + g

        # 4. layer scalar (multiplies the WHOLE residual stream, not just the branch)
        if f"blk.{il}.layer_output_scale.weight" in self.t:
            h = h * self.w(il, "layer_output_scale.weight")[0]
        return h

    # --- full forward -------------------------------------------------------------------------

    def forward(self, tokens, cache):
        """tokens [T] at positions cache.n_past .. cache.n_past+T-1 -> logits [T, n_vocab]."""
        hp = self.hp
        tokens = np.asarray(tokens, dtype=np.int64)
        T = tokens.shape[0]
        positions = np.arange(cache.n_past, cache.n_past + T, dtype=np.int64)
        assert positions[-1] < cache.n_ctx

        h = self.embed(tokens)                                                 # [T, n_embd]
        ple = self.per_layer_inputs(tokens, h) if hp.n_embd_per_layer > 0 else None  # [T, L, P]

        for il in range(hp.n_layer):
            h = self.layer(il, h, None if ple is None else ple[:, il, :], positions, cache)

        h = rms_norm(h, self.t["output_norm.weight"], hp.eps)
        logits = linear(h, self.output)                                        # [T, n_vocab]
        if hp.softcap > 0:
            c = DTYPE(hp.softcap)
            logits = np.tanh(logits / c) * c
        cache.n_past += T
        return logits


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------

def main():
    global DTYPE
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--f64" in sys.argv:
        DTYPE = np.float64
    if len(args) != 2:
        print(__doc__)
        sys.exit(2)
    gguf_path, golden_path = args

    meta, tensors = load_gguf(gguf_path)
    golden = json.load(open(golden_path))
    model = Gemma4(meta, tensors)
    hp = model.hp
    print(f"dtype={np.dtype(DTYPE).name}  layers={hp.n_layer} swa={hp.is_swa} "
          f"kv_source={hp.kv_source} head_kv={hp.n_head_kv} n_ff={hp.n_ff}")

    ids = golden["token_ids"]
    ref = np.array(golden["logits"], dtype=np.float64)               # [n_tokens, n_vocab]
    gr = golden["greedy"]
    ref_steps = np.array(gr["step_logits"], dtype=np.float64)        # [8, n_vocab]
    n_steps = len(gr["next_ids"])
    n_ctx = len(ids) + n_steps + 1

    # (a) whole prompt in one batch
    cache = KVCache(hp, n_ctx)
    logits = model.forward(ids, cache).astype(np.float64)
    d = np.abs(logits - ref)
    per_pos = d.max(axis=1)
    am = logits.argmax(axis=1)
    print("(a) full batch:  max|dlogit| = %.3e   argmax %d/%d   (golden argmax list %s)" % (
        d.max(), int((am == np.array(golden["argmax"])).sum()), len(ids),
        "matches" if list(am) == list(golden["argmax"]) else "DIFFERS"))
    print("    per position:", " ".join("%.1e" % v for v in per_pos))

    # (b) incremental: prompt in chunks of 16, then one token per call
    cache = KVCache(hp, n_ctx)
    chunk = 16
    inc = []
    for s in range(0, len(ids), chunk):
        inc.append(model.forward(ids[s:s + chunk], cache).astype(np.float64))
    inc = np.concatenate(inc, axis=0)
    d_inc = np.abs(inc - ref)
    print("(b) chunked prefill (16): max|dlogit| = %.3e   argmax %d/%d   max|chunked - full batch| = %.3e" % (
        d_inc.max(), int((inc.argmax(1) == np.array(golden["argmax"])).sum()), len(ids),
        np.abs(inc - logits).max()))

    step_logits = [inc[-1]]
    next_ids = []
    for k in range(n_steps):
        nid = int(np.argmax(step_logits[-1]))
        next_ids.append(nid)
        if k + 1 < n_steps:
            step_logits.append(model.forward([nid], cache)[0].astype(np.float64))
    step_logits = np.stack(step_logits)
    d_steps = np.abs(step_logits - ref_steps)
    print("    greedy next_ids:", next_ids, "golden:", gr["next_ids"],
          "SAME" if next_ids == gr["next_ids"] else "DIFFERENT")
    print("    greedy step logits: max|dlogit| = %.3e   per step: %s" % (
        d_steps.max(), " ".join("%.1e" % v for v in d_steps.max(axis=1))))

    worst = max(d.max(), d_inc.max(), d_steps.max())
    ok = (worst <= 1e-3 and list(am) == list(golden["argmax"]) and next_ids == gr["next_ids"])
    print("RESULT: %s  (worst max|dlogit| %.3e; target <= 1e-4, must be <= 1e-3)" % (
        "PASS" if ok else "FAIL", worst))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
