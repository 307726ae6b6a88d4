// ds_quant_iq.h — what the codebook quantizers share (IQ1_S/IQ1_M, IQ2_XXS/XS/S, IQ3_XXS/S): the
// quantization grids with their neighbour lists, snapping a rounded group onto the grid, and the scale
// search. The arithmetic keeps ggml's order (the including files turn FP contraction off) so that the
// bytes equal llama-quantize's.
#ifndef DS_QUANT_IQ_H
#define DS_QUANT_IQ_H

#include "ds_quant_fit.h"
#include <stdbool.h>

// A quantization grid: `size` points of `dims` coordinates, each an odd level 2l + 1 (l = 0 … levels−1).
// A group of rounded levels l[dims] has the map index u = Σ l_i << (bits · i); map[u] is the grid point
// with those levels, or, for a point off the grid, −(offset + 1) with neighbours[offset] = n followed
// by the n grid points nearest to it (all points at the `nwant` smallest squared distances, by distance
// then index).
typedef struct {
    int dims;                    // 8 (IQ1, IQ2) or 4 (IQ3)
    int bits;                    // bits per coordinate in a map index: 2 or 3
    int size;                    // grid points
    const int8_t *points;        // [size][dims], values 2l + 1
    const int32_t *map;          // [1 << (dims · bits)]
    const uint16_t *neighbours;
} ds_iq_codebook;

// The codebook a type quantizes with (IQ1_S and IQ1_M share one), built on first use (thread-safe).
// NULL for other types or when memory runs out.
const ds_iq_codebook *ds_iq_codebook_for(int type);

// Grid point of the levels L[dims], or −1 when they are off the grid.
int ds_iq_grid_index(const ds_iq_codebook *cb, const int8_t *L);

// The neighbour list of the levels L[dims] (count, then grid indices) when they are off the grid;
// NULL, with the grid point in *index, when they are on it.
const uint16_t *ds_iq_neighbours(const ds_iq_codebook *cb, const int8_t *L, int *index);

// Snaps L[dims] (levels already rounded and clamped) onto the grid: the point itself when on it, else
// the neighbour with the smallest Σ w_i (scale·q_i − x_i)², q_i = 2l + 1 (or xg[l] when xg is given:
// IQ1's shifted levels), whose levels replace L. Returns the grid index; *on_grid tells which case.
int ds_iq_snap(const ds_iq_codebook *cb, const float *xval, const float *w, float scale, const float *xg, int8_t *L,
               bool *on_grid);

// Σ w·x·q and Σ w·q² over n values with q = 2L + 1.
void ds_iq_grid_sums(int n, const float *weight, const float *xval, const int8_t *L, float *sumqx, float *sumq2);

// Scale search of the IQ2/IQ3 quantizers over a sub-block of n = groups · dims values xval ≥ 0: for
// is = −range … range, id = (2·kmax − 1 + is·step) / max, each group rounded to l = round((id·x − 1)/2)
// clamped to 0 … kmax−1 and snapped (distance weights waux); keeps the L whose least-squares scale
// gives the largest (Σ w·x·q)² / Σ w·q². `scale` is the value returned when no try improves; L and
// on_grid[groups] hold the winner (callers initialise them).
float ds_iq_search_scale(const ds_iq_codebook *cb, int n, int kmax, float max, int range, float step, float scale,
                         const float *xval, const float *weight, const float *waux, int8_t *L, bool *on_grid);

// Re-rounds the groups at `scale` (all of them, or with on_grid only those off the grid), snaps them
// and returns the least-squares scale of the result (unchanged when Σ w·q² = 0).
float ds_iq_refit(const ds_iq_codebook *cb, int n, int kmax, float scale, const float *xval, const float *weight,
                  const float *waux, int8_t *L, const bool *on_grid);

// Makes 8 values non-negative: xval = |x|, returning bit i set where x_i < 0. With even_parity (the
// types that store 7 sign bits), an odd count of negatives flips the element with the smallest
// weight·x² back, so the count is even.
uint8_t ds_iq_fold_signs(const float *x, const float *weight, float *xval, int even_parity);

// Σ x² over n values, in order.
float ds_iq_sum_squares(const float *x, int n);

// The codebook quantizers (ds_quant_iq23.c, ds_quant_iq1.c): n values of one row into blocks of `type`.
// qw (n values) weighs each column; NULL is accepted except for IQ2_XXS, IQ2_XS and IQ1_S (return 0).
int ds_quantize_iq_row(int type, const float *x, void *y, int64_t n, const float *qw);
void ds_quantize_iq2_xxs(const ds_iq_codebook *cb, const float *x, ds_block_iq2_xxs *y, int64_t n, const float *qw);
void ds_quantize_iq2_xs(const ds_iq_codebook *cb, const float *x, ds_block_iq2_xs *y, int64_t n, const float *qw);
void ds_quantize_iq2_s(const ds_iq_codebook *cb, const float *x, ds_block_iq2_s *y, int64_t n, const float *qw);
void ds_quantize_iq3_xxs(const ds_iq_codebook *cb, const float *x, ds_block_iq3_xxs *y, int64_t n, const float *qw);
void ds_quantize_iq3_s(const ds_iq_codebook *cb, const float *x, ds_block_iq3_s *y, int64_t n, const float *qw);
void ds_quantize_iq1_s(const ds_iq_codebook *cb, const float *x, ds_block_iq1_s *y, int64_t n, const float *qw);
void ds_quantize_iq1_m(const ds_iq_codebook *cb, const float *x, ds_block_iq1_m *y, int64_t n, const float *qw);

#endif
