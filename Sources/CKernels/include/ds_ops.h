// Float kernels of the forward pass (activations are F32). Each has SIMD variants chosen at run time.
#pragma once
#include <stdint.h>
#include <stddef.h>

// sum_i a[i]*b[i]
float ds_dot_f32(const float *a, const float *b, int64_t n);
// y[i] += alpha * x[i]
void ds_axpy_f32(float *y, const float *x, float alpha, int64_t n);
// out[i] = x[i] / rms(x) * (w[i] + weight_offset)   (Gemma stores w-1: weight_offset = 1)
void ds_rmsnorm_f32(const float *x, const float *w, float *out, int64_t n, float eps, float weight_offset);
// gate[i] = silu(gate[i]) * up[i]
void ds_swiglu_f32(float *gate, const float *up, int64_t n);
void ds_swiglu_clamped_f32(float *gate, const float *up, int64_t n, float limit);
// Gated DeltaNet (Qwen3.5): one token of the delta rule for one head (state rows contiguous in the value
// dim; delta: dv floats of scratch), and the causal depthwise conv + SiLU over T rows.
void ds_gated_delta_step_f32(float *S, const float *k, const float *v, const float *q, float beta, float decay,
                             int64_t dk, int64_t dv, float *delta, float *out);
void ds_causal_conv_silu_f32(const float *window, const float *taps, int64_t T, int64_t C, int64_t K, float *out);
// Rows of IEEE half <-> float (F16C when available; F32 -> F16 rounds to nearest even).
void ds_convert_f16_to_f32(const uint16_t *src, float *dst, int64_t n);
void ds_convert_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
// gate[i] = gelu_tanh(gate[i]) * up[i]
void ds_geglu_f32(float *gate, const float *up, int64_t n);

// One query head over a KV range: out[d] = sum_j softmax_j(scale * q·k_j [softcapped]) v_j[d]
// over positions j in [j_begin, j_end). k_j = k + j*k_stride (floats), v likewise.
// scratch holds at least (j_end - j_begin) floats.
void ds_attend_head_f32(const float *q, const float *k, int64_t k_stride, const float *v, int64_t v_stride,
                        int64_t j_begin, int64_t j_end, int64_t head_dim, float scale, float softcap,
                        float *out, float *scratch);

// log softmax(logits)[index] = logits[index] - max - log Σ exp(logits - max)   (sum in double)
double ds_log_softmax_at(const float *logits, int64_t n, int64_t index);

// Grouped-query attention for one query token: g query heads (q + i*q_stride) share one KV head.
// Scores use head_dim floats of q and k; out + i*out_stride receives v_dim floats for head i (MLA:
// k = [latent, rope key], head_dim = latent + rope, and v = the latent itself, v_dim = latent).
// Each K and V row is read once for all g heads. scratch holds at least g * (j_end - j_begin) floats.
// Rows: with pages == NULL row j is k + j*k_stride; with a page table (paged KV cache) it is
// k + pages[j >> page_shift] * k_page_stride + (j & (2^page_shift - 1)) * k_stride (V likewise).
// Split-K: with part_max/part_sum (g floats each) non-NULL, out receives the unnormalised Σ_j e^(s_j - max) v_j
// and part_max/part_sum the max and Σ e^(s_j - max) of this key range, to be merged across ranges.
// _f32: K/V rows of float; _f16: rows of IEEE half (the KV cache's f16 type).
void ds_attend_group_f32(const float *q, int64_t g, int64_t q_stride,
                         const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                         const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                         int64_t j_begin, int64_t j_end, int64_t head_dim, int64_t v_dim, float scale,
                         float softcap, float *out, int64_t out_stride, float *scratch,
                         float *part_max, float *part_sum);
void ds_attend_group_f16(const float *q, int64_t g, int64_t q_stride,
                         const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                         const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                         int64_t j_begin, int64_t j_end, int64_t head_dim, int64_t v_dim, float scale,
                         float softcap, float *out, int64_t out_stride, float *scratch,
                         float *part_max, float *part_sum);

// ds_attend_group for ntok query tokens of one sequence at once (drafted tokens being verified): token t
// (q + t*q_token_stride) sees keys [j_begin[t], j_end[t]) and writes out + t*out_token_stride (partials
// at part_max/part_sum + t*part_stride); each token's results are bitwise ds_attend_group's for that
// token alone, while each K/V row is read once per tile for all tokens. scratch: ntok * g *
// max(j_end - j_begin) floats.
void ds_attend_group_rows_f32(const float *q, int64_t ntok, int64_t q_token_stride, int64_t g, int64_t q_stride,
                              const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                              const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                              const int64_t *j_begin, const int64_t *j_end, int64_t head_dim, int64_t v_dim, float scale,
                              float softcap, float *out, int64_t out_token_stride, int64_t out_stride, float *scratch,
                              float *part_max, float *part_sum, int64_t part_stride);
void ds_attend_group_rows_f16(const float *q, int64_t ntok, int64_t q_token_stride, int64_t g, int64_t q_stride,
                              const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                              const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                              const int64_t *j_begin, const int64_t *j_end, int64_t head_dim, int64_t v_dim, float scale,
                              float softcap, float *out, int64_t out_token_stride, int64_t out_stride, float *scratch,
                              float *part_max, float *part_sum, int64_t part_stride);

// Flash-style attention for up to 16 queries of one head against one KV head (prompt batches): query
// r is q + r*q_stride and sees keys [j_begin[r], j_end[r]); keys are taken 16 at a time with an online
// softmax (no score buffer over the whole context). Rows are addressed as in ds_attend_group_f32.
// out + r*out_stride receives v_dim floats. scratch: 32*(head_dim + v_dim) + max(head_dim, v_dim) floats.
void ds_attend_block_f32(const float *q, int64_t nq, int64_t q_stride,
                         const int64_t *j_begin, const int64_t *j_end,
                         const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                         const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                         int64_t head_dim, int64_t v_dim, float scale, float softcap,
                         float *out, int64_t out_stride, float *scratch);
void ds_attend_block_f16(const float *q, int64_t nq, int64_t q_stride,
                         const int64_t *j_begin, const int64_t *j_end,
                         const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                         const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                         int64_t head_dim, int64_t v_dim, float scale, float softcap,
                         float *out, int64_t out_stride, float *scratch);

// Q8_0 rows (the KV cache's q8_0 type; strides and page strides in bytes). The decode kernel widens
// chunks of 256 rows; scratch: 256*(head_dim + v_dim) + g*(2*v_dim + 4 + 256) floats.
void ds_attend_group_q8_0(const float *q, int64_t g, int64_t q_stride,
                          const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                          const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                          int64_t j_begin, int64_t j_end, int64_t head_dim, int64_t v_dim, float scale,
                          float softcap, float *out, int64_t out_stride, float *scratch,
                          float *part_max, float *part_sum);
void ds_attend_block_q8_0(const float *q, int64_t nq, int64_t q_stride,
                          const int64_t *j_begin, const int64_t *j_end,
                          const void *k, int64_t k_stride, const void *v, int64_t v_stride,
                          const int32_t *pages, int64_t page_shift, int64_t k_page_stride, int64_t v_page_stride,
                          int64_t head_dim, int64_t v_dim, float scale, float softcap,
                          float *out, int64_t out_stride, float *scratch);

// F32 rows <-> F16 rows (KV cache writes and reads), round to nearest even.
void ds_f32_to_f16_row(const float *x, void *y, int64_t n);
void ds_f16_to_f32_row(const void *x, float *y, int64_t n);
