// PROVISIONAL header (replaced by the full quant library).
#pragma once
#include <stdint.h>
#include <stddef.h>
int     ds_type_supported(int type);
int64_t ds_type_block_size(int type);
int64_t ds_type_block_bytes(int type);
void    ds_dequantize_row(int type, const void *src, float *dst, int64_t n);
int     ds_vec_dot_type(int weight_type);
void    ds_quantize_activation(int act_type, const float *x, void *dst, int64_t n);
float   ds_vec_dot(int weight_type, int64_t n, const void *weight_row, const void *act_row);
void    ds_vec_dot_rows(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows,
                        const void *act, float *out);
void    ds_quantize_row_ref(int type, const float *x, void *dst, int64_t n);
float   ds_fp16_to_fp32(uint16_t h); uint16_t ds_fp32_to_fp16(float f);
float   ds_bf16_to_fp32(uint16_t h); uint16_t ds_fp32_to_bf16(float f);
void    ds_cpu_features(char *buf, int len);
