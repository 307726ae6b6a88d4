// SHA-256 (FIPS 180-4), streaming; used to verify downloaded models and session files.
#pragma once
#include <stdint.h>
#include <stddef.h>
typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t fill; } ds_sha256_ctx;
void ds_sha256_init(ds_sha256_ctx *c);
void ds_sha256_update(ds_sha256_ctx *c, const void *data, size_t n);
void ds_sha256_final(ds_sha256_ctx *c, uint8_t out[32]);
