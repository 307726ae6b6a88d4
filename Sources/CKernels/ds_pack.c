// ds_pack.c — packed ("row-interleaved") weights: the portable layout, packing and unpacking.
//
// A packed matrix holds groups of DS_PACK_ROWS (16) consecutive rows. Inside a group, block b of the
// 16 rows is stored as one "block group" of 16 * sizeof(block) bytes, the block groups in block order.
// A block group keeps the block's fields in their order; each field is stored lane-interleaved:
//   fp16 fields (d, m, dmin):    half[16]            (lane = row within the group)
//   byte fields (qs, qh, ...):   uint32[units][16]   (unit k = bytes 4k..4k+3 of the row's field)
// so field f starts at 16 * offsetof(block, f) in its block group, and one 32-byte load gives the same
// 4 bytes (or the same scale) of 8 rows, which is what the lane-per-row GEMM panel wants (one weight
// row per vector lane) without the per-call transpose. Rows past the matrix's end are zero blocks.
// Packing is a pure byte permutation: ds_unpack_weights gives the original rows back.
#include "ds_internal.h"
#include <stdlib.h>

typedef struct {
    unsigned char offset;   // byte offset in the block (255 ends the list)
    unsigned char units;    // fp16 count (half) or 4-byte units
    unsigned char half;     // 1: fp16 field
} ds_pack_field;

#define DS_END {255, 0, 0}
#define DS_HALF(T, F) {(unsigned char)offsetof(T, F), 1, 1}
#define DS_BYTES(T, F) {(unsigned char)offsetof(T, F), (unsigned char)(sizeof(((T *)0)->F) / 4), 0}

// The fields of each packable type, in block order (all byte fields are multiples of 4 bytes).
static const ds_pack_field *pack_fields(int type) {
    static const ds_pack_field q4_0[] = {DS_HALF(ds_block_q4_0, d), DS_BYTES(ds_block_q4_0, qs), DS_END};
    static const ds_pack_field q4_1[] = {DS_HALF(ds_block_q4_1, d), DS_HALF(ds_block_q4_1, m),
                                         DS_BYTES(ds_block_q4_1, qs), DS_END};
    static const ds_pack_field q5_0[] = {DS_HALF(ds_block_q5_0, d), DS_BYTES(ds_block_q5_0, qh),
                                         DS_BYTES(ds_block_q5_0, qs), DS_END};
    static const ds_pack_field q5_1[] = {DS_HALF(ds_block_q5_1, d), DS_HALF(ds_block_q5_1, m),
                                         DS_BYTES(ds_block_q5_1, qh), DS_BYTES(ds_block_q5_1, qs), DS_END};
    static const ds_pack_field q8_0[] = {DS_HALF(ds_block_q8_0, d), DS_BYTES(ds_block_q8_0, qs), DS_END};
    static const ds_pack_field q2_K[] = {DS_BYTES(ds_block_q2_K, scales), DS_BYTES(ds_block_q2_K, qs),
                                         DS_HALF(ds_block_q2_K, d), DS_HALF(ds_block_q2_K, dmin), DS_END};
    static const ds_pack_field q3_K[] = {DS_BYTES(ds_block_q3_K, hmask), DS_BYTES(ds_block_q3_K, qs),
                                         DS_BYTES(ds_block_q3_K, scales), DS_HALF(ds_block_q3_K, d), DS_END};
    static const ds_pack_field q4_K[] = {DS_HALF(ds_block_q4_K, d), DS_HALF(ds_block_q4_K, dmin),
                                         DS_BYTES(ds_block_q4_K, scales), DS_BYTES(ds_block_q4_K, qs), DS_END};
    static const ds_pack_field q5_K[] = {DS_HALF(ds_block_q5_K, d), DS_HALF(ds_block_q5_K, dmin),
                                         DS_BYTES(ds_block_q5_K, scales), DS_BYTES(ds_block_q5_K, qh),
                                         DS_BYTES(ds_block_q5_K, qs), DS_END};
    static const ds_pack_field q6_K[] = {DS_BYTES(ds_block_q6_K, ql), DS_BYTES(ds_block_q6_K, qh),
                                         DS_BYTES(ds_block_q6_K, scales), DS_HALF(ds_block_q6_K, d), DS_END};
    switch (type) {
    case DS_TYPE_Q4_0: return q4_0;
    case DS_TYPE_Q4_1: return q4_1;
    case DS_TYPE_Q5_0: return q5_0;
    case DS_TYPE_Q5_1: return q5_1;
    case DS_TYPE_Q8_0: return q8_0;
    case DS_TYPE_Q2_K: return q2_K;
    case DS_TYPE_Q3_K: return q3_K;
    case DS_TYPE_Q4_K: return q4_K;
    case DS_TYPE_Q5_K: return q5_K;
    case DS_TYPE_Q6_K: return q6_K;
    default: return NULL;
    }
}

int ds_pack_layout_exists(int weight_type) { return pack_fields(weight_type) != NULL; }

size_t ds_packed_group_bytes(int weight_type, int64_t n) {
    if (!pack_fields(weight_type) || n <= 0) return 0;
    const int64_t elems = ds_type_block_size(weight_type);
    if (n % elems) return 0;
    return (size_t)(n / elems) * DS_PACK_ROWS * ds_type_block_bytes(weight_type);
}

size_t ds_packed_bytes(int weight_type, int64_t n, int64_t nrows) {
    const size_t group = ds_packed_group_bytes(weight_type, n);
    if (!group || nrows <= 0) return 0;
    return group * (size_t)((nrows + DS_PACK_ROWS - 1) / DS_PACK_ROWS);
}

// Copies between one row's block (`row_block`) and lane `lane` of a block group, either way (fixed-size
// copies, so they compile to plain loads and stores).
static void move_lane(const ds_pack_field *f, unsigned char *group_block, unsigned char *row_block, int lane,
                      int to_group) {
    for (; f->offset != 255; ++f) {
        unsigned char *g = group_block + DS_PACK_ROWS * (size_t)f->offset;
        unsigned char *r = row_block + f->offset;
        if (f->half) {
            if (to_group) memcpy(g + 2 * lane, r, 2);
            else memcpy(r, g + 2 * lane, 2);
            continue;
        }
        for (int k = 0; k < f->units; ++k) {
            unsigned char *gk = g + ((size_t)k * DS_PACK_ROWS + lane) * 4;
            if (to_group) memcpy(gk, r + 4 * k, 4);
            else memcpy(r + 4 * k, gk, 4);
        }
    }
}

int ds_pack_weights(int weight_type, int64_t n, const void *w, size_t row_stride, int64_t nrows, void *dst) {
    const ds_pack_field *fields = pack_fields(weight_type);
    const size_t group_bytes = ds_packed_group_bytes(weight_type, n);
    if (!fields || !group_bytes || nrows <= 0) return 0;
    const size_t block_bytes = ds_type_block_bytes(weight_type);
    const int64_t nblocks = n / ds_type_block_size(weight_type);
    const int64_t groups = (nrows + DS_PACK_ROWS - 1) / DS_PACK_ROWS;
    memset(dst, 0, group_bytes * (size_t)groups);
    for (int64_t g = 0; g < groups; ++g) {
        const int lanes = nrows - g * DS_PACK_ROWS < DS_PACK_ROWS ? (int)(nrows - g * DS_PACK_ROWS) : DS_PACK_ROWS;
        for (int64_t b = 0; b < nblocks; ++b) {   // one block group at a time: written in order, 16 rows read
            unsigned char *gb = (unsigned char *)dst + (size_t)g * group_bytes + (size_t)b * DS_PACK_ROWS * block_bytes;
            for (int lane = 0; lane < lanes; ++lane) {
                const unsigned char *row = (const unsigned char *)w + (size_t)(g * DS_PACK_ROWS + lane) * row_stride;
                move_lane(fields, gb, (unsigned char *)(row + (size_t)b * block_bytes), lane, 1);
            }
        }
    }
    return 1;
}

int ds_unpack_weights(int weight_type, int64_t n, const void *packed, int64_t nrows, void *w, size_t row_stride) {
    const ds_pack_field *fields = pack_fields(weight_type);
    const size_t group_bytes = ds_packed_group_bytes(weight_type, n);
    if (!fields || !group_bytes || nrows <= 0) return 0;
    const size_t block_bytes = ds_type_block_bytes(weight_type);
    const int64_t nblocks = n / ds_type_block_size(weight_type);
    for (int64_t r = 0; r < nrows; ++r) {
        unsigned char *row = (unsigned char *)w + (size_t)r * row_stride;
        const int64_t g = r / DS_PACK_ROWS;
        const int lane = (int)(r % DS_PACK_ROWS);
        for (int64_t b = 0; b < nblocks; ++b) {
            unsigned char *gb = (unsigned char *)packed + (size_t)g * group_bytes + (size_t)b * DS_PACK_ROWS * block_bytes;
            move_lane(fields, gb, row + (size_t)b * block_bytes, lane, 0);
        }
    }
    return 1;
}
