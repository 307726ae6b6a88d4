#include "ds_quant.h"
#include "ds_ops.h"
#include <string.h>
#include <stdio.h>
float ds_fp16_to_fp32(uint16_t h) { _Float16 f; memcpy(&f, &h, 2); return (float)f; }
uint16_t ds_fp32_to_fp16(float x) { _Float16 f = (_Float16)x; uint16_t h; memcpy(&h, &f, 2); return h; }
float ds_bf16_to_fp32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
uint16_t ds_fp32_to_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return (uint16_t)(u >> 16); }
int ds_type_supported(int t) { return t == 0 || t == 1 || t == 30; }
int64_t ds_type_block_size(int t) { (void)t; return 1; }
int64_t ds_type_block_bytes(int t) { return t == 0 ? 4 : 2; }
void ds_dequantize_row(int t, const void *src, float *dst, int64_t n) {
  if (t == 0) { memcpy(dst, src, 4 * n); return; }
  const uint16_t *s = src;
  for (int64_t i = 0; i < n; i++) dst[i] = t == 1 ? ds_fp16_to_fp32(s[i]) : ds_bf16_to_fp32(s[i]);
}
int ds_vec_dot_type(int t) { (void)t; return 0; }
void ds_quantize_activation(int a, const float *x, void *dst, int64_t n) { (void)a; memcpy(dst, x, 4 * n); }
float ds_vec_dot(int t, int64_t n, const void *w, const void *a) {
  if (t == 0) return ds_dot_f32(w, a, n);
  float buf[n]; ds_dequantize_row(t, w, buf, n); return ds_dot_f32(buf, a, n);
}
void ds_vec_dot_rows(int t, int64_t n, const void *w, size_t stride, int64_t nrows, const void *a, float *out) {
  for (int64_t r = 0; r < nrows; r++) out[r] = ds_vec_dot(t, n, (const char *)w + r * stride, a);
}
void ds_quantize_row_ref(int t, const float *x, void *dst, int64_t n) { (void)t; memcpy(dst, x, 4 * n); }
void ds_cpu_features(char *buf, int len) { snprintf(buf, len, "provisional"); }
