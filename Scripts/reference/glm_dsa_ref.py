#!/usr/bin/env python3
"""
Self-contained NumPy reference for the GLM-5 DSA model (GGUF general.architecture = "glm-dsa").

    python glm_dsa_ref.py <model.gguf> <golden.json> [--f32] [--latent-eps X] [--idx-ln-eps X]

Runs
  (a) the whole prompt as one batch (logits at every position), and
  (b) the same model incrementally: prompt in chunks of 16, then the greedy tokens one at a
      time, with an explicit per-layer cache:
        - MLA: normalized kv latent c_kv (kv_lora floats) + roped k_pe (n_rot floats) per token
        - indexer: roped, LayerNormed indexer key (index_head_dim floats) per token, only for
          layers whose indexer type is "full"
        - "shared" layers recompute nothing for the indexer; they reuse the top-k selection
          (query x key boolean mask) of the most recent "full" layer of the same forward call
and compares with the transformers float32 golden logits.

Only numpy + gguf (gguf-py) are needed.  Everything runs in float64 by default (the golden
is float32; transformers f32 vs f64 differ by ~3e-6); --f32 runs every op in float32.

Layout conventions (gguf-py): a tensor with ggml ne = [ne0, ne1, ne2] comes back as a numpy
array of shape (ne2, ne1, ne0), ne0 contiguous.  A ggml matmul weight with ne = [n_in, n_out]
is therefore numpy (n_out, n_in) and y = x @ W.T, exactly like torch.nn.Linear.
"""
import json
import sys

import numpy as np
import gguf

DT = np.float64  # compute dtype (switched to float32 by --f32)


# ----------------------------------------------------------------------------------------------
# GGUF loading
# ----------------------------------------------------------------------------------------------
def load_gguf(path):
    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("tokenizer.ggml.") and k not in ("tokenizer.ggml.bos_token_id",):
            continue
        if k.startswith("GGUF."):
            continue
        meta[k] = f.contents()
    W = {}
    for t in r.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32, (t.name, t.tensor_type)
        # numpy shape == reversed(ggml ne)
        W[t.name] = np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    return meta, W


class HP:
    """Hyper-parameters, all read from GGUF metadata (key names in comments)."""

    def __init__(self, meta, latent_eps, idx_ln_eps):
        a = meta["general.architecture"]
        assert a == "glm-dsa", a
        g = lambda k: meta[f"{a}.{k}"]
        self.n_layer = int(g("block_count"))                      # 4
        self.n_embd = int(g("embedding_length"))                  # 64
        self.n_head = int(g("attention.head_count"))              # 4
        self.n_vocab = int(g("vocab_size"))                       # 512
        self.rms_eps = float(g("attention.layer_norm_rms_epsilon"))  # 1e-5 (as f32)
        self.theta = float(g("rope.freq_base"))                   # 1e6
        self.n_rot = int(g("rope.dimension_count"))               # 8  (= qk_rope_head_dim)
        self.q_lora = int(g("attention.q_lora_rank"))             # 32
        self.kv_lora = int(g("attention.kv_lora_rank"))           # 32
        self.head_k = int(g("attention.key_length_mla"))          # 24 = nope 16 + rope 8
        self.head_v = int(g("attention.value_length_mla"))        # 16
        self.nope = self.head_k - self.n_rot                      # 16
        self.n_dense = int(g("leading_dense_block_count"))        # 1
        self.n_expert = int(g("expert_count"))                    # 8
        self.n_expert_used = int(g("expert_used_count"))          # 2
        self.n_group = int(g("expert_group_count"))               # 2
        self.n_group_used = int(g("expert_group_used_count"))     # 1
        self.w_scale = float(g("expert_weights_scale"))           # 2.5
        self.w_norm = bool(g("expert_weights_norm"))              # True
        self.idx_n_head = int(g("attention.indexer.head_count"))  # 8
        self.idx_head = int(g("attention.indexer.key_length"))    # 64
        self.idx_topk = int(g("attention.indexer.top_k"))         # 8
        self.idx_full = [bool(x) for x in g("attention.indexer.types")]  # [T, F, T, F]
        assert self.idx_full[0], "layer 0 must be a full indexer layer"
        # Not in the GGUF (transformers constants):
        #  - q_a_layernorm / kv_a_layernorm are RMSNorm(dim) with the *default* eps 1e-6
        #    (config.rms_norm_eps = 1e-5 is only used for the block / final norms).
        #  - indexer.k_norm is nn.LayerNorm(index_head_dim, eps=1e-6).
        self.latent_eps = latent_eps
        self.idx_ln_eps = idx_ln_eps


# ----------------------------------------------------------------------------------------------
# primitives
# ----------------------------------------------------------------------------------------------
def rms_norm(x, w, eps):
    # x: (..., n), w: (n,)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + DT(eps)) * w


def layer_norm(x, w, b, eps):
    # x: (..., n); biased variance, like torch.nn.LayerNorm / ggml_norm
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    return xc / np.sqrt(var + DT(eps)) * w + b


def silu(x):
    return x / (DT(1) + np.exp(-x))


def sigmoid(x):
    return DT(1) / (DT(1) + np.exp(-x))


def rope_interleaved(x, pos, n_rot, theta):
    """ggml LLAMA_ROPE_TYPE_NORM (= GPT-J / DeepSeek "interleaved"): rotate adjacent pairs
    (x[2i], x[2i+1]) by angle pos * theta^(-2i/n_rot), i = 0 .. n_rot/2-1, on the FIRST n_rot
    dims of the last axis; dims n_rot.. pass through.
    x: (T, ..., D) with T matching pos (T,).  Output keeps the interleaved layout.
    (transformers' apply_rotary_pos_emb_interleave outputs [evens..., odds...] instead: a fixed
    permutation of the rotated dims applied to q and k alike, so all dot products are equal.)"""
    half = n_rot // 2
    inv_freq = DT(theta) ** (-(np.arange(0, n_rot, 2, dtype=DT) / DT(n_rot)))  # (half,)
    ang = pos.astype(DT)[:, None] * inv_freq[None, :]                          # (T, half)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (half,)
    c = np.cos(ang).reshape(shape)
    s = np.sin(ang).reshape(shape)
    x0 = x[..., 0:n_rot:2]
    x1 = x[..., 1:n_rot:2]
    out = x.copy()
    out[..., 0:n_rot:2] = x0 * c - x1 * s
    out[..., 1:n_rot:2] = x0 * s + x1 * c
    return out


def topk_mask(score, k):
    """score: (T, S) with -inf at non-causal keys.  Returns bool (T, S): True at the
    min(k, S) largest entries of each row (ties: lowest index first).  -inf entries may be
    'selected' when a row has fewer than k causal keys; they stay masked by causality."""
    T, S = score.shape
    kk = min(k, S)
    idx = np.argsort(-score, axis=-1, kind="stable")[:, :kk]   # (T, kk)
    m = np.zeros((T, S), dtype=bool)
    np.put_along_axis(m, idx, True, axis=-1)
    return m


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
class Cache:
    """Per-layer caches, grown along the token axis.
       ckv[il]  : (S, kv_lora)   RMS-normed kv latent (shared by all heads; also the 'V')
       kpe[il]  : (S, n_rot)     roped shared rope key
       idxk[il] : (S, idx_head)  roped indexer key (full-indexer layers only, else None)"""

    def __init__(self, hp):
        self.n = 0
        self.ckv = [np.zeros((0, hp.kv_lora), DT) for _ in range(hp.n_layer)]
        self.kpe = [np.zeros((0, hp.n_rot), DT) for _ in range(hp.n_layer)]
        self.idxk = [np.zeros((0, hp.idx_head), DT) if hp.idx_full[il] else None
                     for il in range(hp.n_layer)]


class Model:
    def __init__(self, meta, W, latent_eps=1e-6, idx_ln_eps=1e-6):
        self.hp = HP(meta, latent_eps, idx_ln_eps)
        self.W = {k: v.astype(DT) for k, v in W.items()}

    def w(self, il, name):
        return self.W[f"blk.{il}.{name}"]

    # -- lightning indexer ---------------------------------------------------------------
    def indexer(self, il, h, qr, pos, cache):
        """h: (T, n_embd) attn-normed input, qr: (T, q_lora) normed q latent.
        Returns sel: bool (T, S) = chosen keys (before the causal mask)."""
        hp = self.hp
        T = h.shape[0]
        H, D = hp.idx_n_head, hp.idx_head
        # q from the q latent (same latent the MLA query uses), 8 heads x 64, layout [rope 8 | nope 56]
        iq = (qr @ self.w(il, "indexer.attn_q_b.weight").T).reshape(T, H, D)       # (T, H, D)
        iq = rope_interleaved(iq, pos, hp.n_rot, hp.theta)
        # single shared key head from the normed hidden state, LayerNorm with bias
        ik = h @ self.w(il, "indexer.attn_k.weight").T                              # (T, D)
        ik = layer_norm(ik, self.w(il, "indexer.k_norm.weight"),
                        self.w(il, "indexer.k_norm.bias"), hp.idx_ln_eps)
        ik = rope_interleaved(ik, pos, hp.n_rot, hp.theta)                          # (T, D)
        cache.idxk[il] = np.concatenate([cache.idxk[il], ik], axis=0)
        K = cache.idxk[il]                                                          # (S, D)
        S = K.shape[0]
        # per-head weights from the normed hidden state; both scales folded in
        wts = (h @ self.w(il, "indexer.proj.weight").T) * DT(H ** -0.5) * DT(D ** -0.5)  # (T, H)
        s = np.maximum(np.einsum("thd,sd->ths", iq, K), DT(0))                     # ReLU, (T, H, S)
        score = np.einsum("ths,th->ts", s, wts)                                     # (T, S)
        kpos = np.arange(S)
        causal = kpos[None, :] <= pos[:, None]                                      # (T, S)
        score = np.where(causal, score, DT(-np.inf))
        return topk_mask(score, hp.idx_topk)                                        # (T, S)

    # -- attention (MLA absorbed form + DSA mask) -----------------------------------------
    def attention(self, il, h, pos, cache, prev_sel):
        hp = self.hp
        T = h.shape[0]
        H = hp.n_head
        qr = rms_norm(h @ self.w(il, "attn_q_a.weight").T,
                      self.w(il, "attn_q_a_norm.weight"), hp.latent_eps)            # (T, q_lora)

        if hp.idx_full[il]:
            sel = self.indexer(il, h, qr, pos, cache)                               # (T, S)
        else:
            assert prev_sel is not None
            sel = prev_sel                                                          # reuse

        q = (qr @ self.w(il, "attn_q_b.weight").T).reshape(T, H, hp.head_k)        # (T, H, 24)
        q_nope = q[:, :, :hp.nope]                                                  # (T, H, 16)
        q_pe = rope_interleaved(q[:, :, hp.nope:], pos, hp.n_rot, hp.theta)         # (T, H, 8)

        kv = h @ self.w(il, "attn_kv_a_mqa.weight").T                               # (T, 40)
        ckv = rms_norm(kv[:, :hp.kv_lora], self.w(il, "attn_kv_a_norm.weight"), hp.latent_eps)  # (T, 32)
        kpe = rope_interleaved(kv[:, hp.kv_lora:], pos, hp.n_rot, hp.theta)         # (T, 8)
        cache.ckv[il] = np.concatenate([cache.ckv[il], ckv], axis=0)
        cache.kpe[il] = np.concatenate([cache.kpe[il], kpe], axis=0)
        C = cache.ckv[il]                                                           # (S, 32)
        KPE = cache.kpe[il]                                                         # (S, 8)
        S = C.shape[0]

        k_b = self.w(il, "attn_k_b.weight")     # ggml ne [nope, kv_lora, H] -> numpy (H, kv_lora, nope)
        v_b = self.w(il, "attn_v_b.weight")     # ggml ne [kv_lora, v, H]   -> numpy (H, v, kv_lora)
        q_abs = np.einsum("hcd,thd->thc", k_b, q_nope)                              # (T, H, 32)
        scale = DT(hp.head_k ** -0.5)                                               # 1/sqrt(nope+rope)
        att = (np.einsum("thc,sc->ths", q_abs, C) +
               np.einsum("thr,sr->ths", q_pe, KPE)) * scale                         # (T, H, S)
        kpos = np.arange(S)
        allowed = (kpos[None, :] <= pos[:, None]) & sel                             # (T, S)
        att = np.where(allowed[:, None, :], att, DT(-np.inf))
        att = att - att.max(axis=-1, keepdims=True)
        p = np.exp(att)
        p = p / p.sum(axis=-1, keepdims=True)
        o_lat = np.einsum("ths,sc->thc", p, C)                                      # (T, H, 32)
        o = np.einsum("hjc,thc->thj", v_b, o_lat).reshape(T, H * hp.head_v)         # (T, 64)
        return o @ self.w(il, "attn_output.weight").T, sel                          # (T, n_embd)

    # -- FFN --------------------------------------------------------------------------------
    def dense_ffn(self, il, x):
        g = x @ self.w(il, "ffn_gate.weight").T
        u = x @ self.w(il, "ffn_up.weight").T
        return (silu(g) * u) @ self.w(il, "ffn_down.weight").T

    def moe(self, il, x):
        hp = self.hp
        T = x.shape[0]
        E, G = hp.n_expert, hp.n_group
        logits = x @ self.w(il, "ffn_gate_inp.weight").T                            # (T, E)
        probs = sigmoid(logits)                                                     # (T, E)
        choice = probs + self.w(il, "exp_probs_b.bias")                             # (T, E), bias only for selection
        # group score = sum of the top-2 biased scores in each group
        grp = choice.reshape(T, G, E // G)
        gs = np.sort(grp, axis=-1)[:, :, -2:].sum(-1)                               # (T, G)
        gsel = np.argsort(-gs, axis=-1, kind="stable")[:, :hp.n_group_used]        # (T, n_group_used)
        gmask = np.zeros((T, G), bool)
        np.put_along_axis(gmask, gsel, True, axis=-1)
        emask = np.repeat(gmask, E // G, axis=1)                                    # (T, E)
        choice = np.where(emask, choice, DT(-np.inf))
        sel = np.argsort(-choice, axis=-1, kind="stable")[:, :hp.n_expert_used]    # (T, k)
        wts = np.take_along_axis(probs, sel, axis=-1)                               # unbiased sigmoid
        if hp.w_norm:
            wts = wts / (wts.sum(-1, keepdims=True) + DT(1e-20))
        wts = wts * DT(hp.w_scale)
        Wg = self.w(il, "ffn_gate_exps.weight")    # (E, ff, n_embd)
        Wu = self.w(il, "ffn_up_exps.weight")      # (E, ff, n_embd)
        Wd = self.w(il, "ffn_down_exps.weight")    # (E, n_embd, ff)
        out = np.zeros_like(x)
        for t in range(T):
            for j in range(hp.n_expert_used):
                e = sel[t, j]
                hmid = silu(Wg[e] @ x[t]) * (Wu[e] @ x[t])
                out[t] += wts[t, j] * (Wd[e] @ hmid)
        sh = (silu(x @ self.w(il, "ffn_gate_shexp.weight").T) *
              (x @ self.w(il, "ffn_up_shexp.weight").T)) @ self.w(il, "ffn_down_shexp.weight").T
        return out + sh

    # -- whole model on a chunk of tokens ---------------------------------------------------
    def forward(self, tokens, cache):
        """tokens: list of ids appended at positions cache.n .. cache.n+T-1.
        Returns logits (T, n_vocab); the cache is extended in place."""
        hp = self.hp
        T = len(tokens)
        pos = np.arange(cache.n, cache.n + T)
        x = self.W["token_embd.weight"][np.asarray(tokens)]                          # (T, n_embd)
        sel = None  # top-k mask of the last full-indexer layer in THIS call
        for il in range(hp.n_layer):
            h = rms_norm(x, self.w(il, "attn_norm.weight"), hp.rms_eps)
            a, sel = self.attention(il, h, pos, cache, sel)
            x = x + a
            h = rms_norm(x, self.w(il, "ffn_norm.weight"), hp.rms_eps)
            x = x + (self.dense_ffn(il, h) if il < hp.n_dense else self.moe(il, h))
        cache.n += T
        x = rms_norm(x, self.W["output_norm.weight"], hp.rms_eps)
        return x @ self.W["output.weight"].T                                        # (T, n_vocab)


# ----------------------------------------------------------------------------------------------
def main():
    global DT
    args = sys.argv[1:]
    latent_eps, idx_ln_eps = 1e-6, 1e-6
    if "--f32" in args:
        DT = np.float32
        args.remove("--f32")
    if "--latent-eps" in args:
        i = args.index("--latent-eps"); latent_eps = float(args[i + 1]); del args[i:i + 2]
    if "--idx-ln-eps" in args:
        i = args.index("--idx-ln-eps"); idx_ln_eps = float(args[i + 1]); del args[i:i + 2]
    gguf_path, golden_path = args[0], args[1]

    meta, W = load_gguf(gguf_path)
    gold = json.load(open(golden_path))
    m = Model(meta, W, latent_eps, idx_ln_eps)
    toks = list(gold["token_ids"])
    G = np.array(gold["logits"], dtype=np.float64)                                   # (n_tok, V)
    print(f"dtype={DT.__name__} latent_eps={latent_eps} idx_ln_eps={idx_ln_eps} n_tokens={len(toks)}")

    # (a) whole prompt, one batch
    L = m.forward(toks, Cache(m.hp)).astype(np.float64)
    d = np.abs(L - G)
    am = (L.argmax(-1) == np.array(gold["argmax"])).sum()
    print(f"(a) one batch : max|d| = {d.max():.3e}  argmax {am}/{len(toks)}")
    print("    per position:", " ".join(f"{v:.1e}" for v in d.max(-1)))

    # (b) incremental: chunks of 16, then greedy one token at a time
    cache = Cache(m.hp)
    rows = []
    for i in range(0, len(toks), 16):
        rows.append(m.forward(toks[i:i + 16], cache))
    Lb = np.concatenate(rows).astype(np.float64)
    db = np.abs(Lb - G)
    amb = (Lb.argmax(-1) == np.array(gold["argmax"])).sum()
    print(f"(b) chunks 16 : max|d| = {db.max():.3e}  argmax {amb}/{len(toks)}")
    gs = gold["greedy"]
    SL = np.array(gs["step_logits"], dtype=np.float64)
    last = Lb[-1]
    ids, dsteps = [], []
    for k in range(gs["n"]):
        dsteps.append(np.abs(last - SL[k]).max())
        nid = int(np.argmax(last))
        ids.append(nid)
        if k + 1 < gs["n"]:
            last = m.forward([gs["next_ids"][k]], cache)[0].astype(np.float64)  # teacher-forced like the golden
    print(f"    greedy ids   = {ids}")
    print(f"    golden ids   = {gs['next_ids']}  match={ids == gs['next_ids']}")
    print(f"    step max|d|  = {max(dsteps):.3e}  per step: " + " ".join(f"{v:.1e}" for v in dsteps))
    worst = max(d.max(), db.max(), max(dsteps))
    ok = worst <= 1e-3 and am == len(toks) and amb == len(toks) and ids == gs["next_ids"]
    print(f"OVERALL max|d| = {worst:.3e}  -> {'PASS' if ok else 'FAIL'} (target <= 1e-4, must <= 1e-3)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
