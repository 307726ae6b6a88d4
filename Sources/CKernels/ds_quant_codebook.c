// ds_quant_codebook.c — the quantization grids of the codebook i-quants and what their quantizers
// share: the neighbour lists of off-grid points, snapping, the scale search and the sign folding.
//
// The grids are the dequantization codebooks of ds_iq_tables.c read back as levels: each coordinate's
// value is replaced by its rank l among the type's values, and the quantizer works with 2l + 1.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "ds_quant_iq.h"
#include <float.h>
#include <pthread.h>
#include <stdlib.h>

enum { CODEBOOK_IQ2_XXS, CODEBOOK_IQ2_XS, CODEBOOK_IQ2_S, CODEBOOK_IQ1, CODEBOOK_IQ3_XXS, CODEBOOK_IQ3_S, CODEBOOK_COUNT };

typedef struct {
    const uint8_t *values;       // [size][dims] dequantization codebook (IQ1: int8 −1, 0, 1 as bytes)
    int dims, bits, size;
    uint8_t levels[8];           // the coordinate values in level order
    int nlevels;
    int nwant;                   // distinct distances kept per off-grid point
} codebook_source;

static codebook_source source_of(int which) {
    switch (which) {
    case CODEBOOK_IQ2_XXS: return (codebook_source){&ds_iq2xxs_grid[0][0], 8, 2, 256, {0x08, 0x19, 0x2b}, 3, 2};
    case CODEBOOK_IQ2_XS:  return (codebook_source){&ds_iq2xs_grid[0][0], 8, 2, 512, {0x08, 0x19, 0x2b}, 3, 2};
    case CODEBOOK_IQ2_S:   return (codebook_source){&ds_iq2s_grid[0][0], 8, 2, 1024, {0x08, 0x19, 0x2b}, 3, 1};
    case CODEBOOK_IQ1:     return (codebook_source){(const uint8_t *)&ds_iq1s_grid[0][0], 8, 2, 2048, {0xff, 0x00, 0x01}, 3, 3};
    case CODEBOOK_IQ3_XXS: return (codebook_source){&ds_iq3xxs_grid[0][0], 4, 3, 256, {4, 12, 20, 28, 36, 44, 52, 62}, 8, 2};
    default:               return (codebook_source){&ds_iq3s_grid[0][0], 4, 3, 512, {1, 3, 5, 7, 9, 11, 13, 15}, 8, 3};
    }
}

// The map index of a level vector, or −1 when a coordinate is not a level.
static int level_of(const codebook_source *s, uint8_t v) {
    for (int l = 0; l < s->nlevels; ++l) if (s->levels[l] == v) return l;
    return -1;
}

// Writes the grid points nearest to `pos` (squared distance, all points at the nwant smallest distinct
// distances, ordered by distance then index) to out; returns their count.
static int nearest_points(const int8_t *points, int size, int dims, const int8_t *pos, int nwant, int *dist, uint16_t *out) {
    for (int j = 0; j < size; ++j) {
        int d2 = 0;
        for (int k = 0; k < dims; ++k) d2 += (points[dims * j + k] - pos[k]) * (points[dims * j + k] - pos[k]);
        dist[j] = d2;
    }
    int count = 0, floor = -1;
    for (int have = 0; have < nwant; ++have) {
        int next = -1;
        for (int j = 0; j < size; ++j) if (dist[j] > floor && (next < 0 || dist[j] < next)) next = dist[j];
        if (next < 0) break;
        for (int j = 0; j < size; ++j) if (dist[j] == next) out[count++] = (uint16_t)j;
        floor = next;
    }
    return count;
}

static int build(int which, ds_iq_codebook *cb) {
    const codebook_source s = source_of(which);
    const int map_size = 1 << (s.dims * s.bits);
    int8_t *points = malloc((size_t)s.size * s.dims);
    int32_t *map = malloc(sizeof(int32_t) * map_size);
    int *dist = malloc(sizeof(int) * s.size);
    uint16_t *scratch = malloc(sizeof(uint16_t) * s.size);
    // Off-grid points whose coordinates are all levels: at most levels^dims, each with ≤ size neighbours.
    int64_t off_grid = 1;
    for (int k = 0; k < s.dims; ++k) off_grid *= s.nlevels;
    off_grid -= s.size;
    size_t capacity = (size_t)off_grid * 8, used = 0;
    uint16_t *neighbours = malloc(sizeof(uint16_t) * capacity);
    if (!points || !map || !dist || !scratch || !neighbours) goto fail;

    for (int i = 0; i < map_size; ++i) map[i] = -1;
    for (int j = 0; j < s.size; ++j) {
        int u = 0;
        for (int k = 0; k < s.dims; ++k) {
            const int l = level_of(&s, s.values[s.dims * j + k]);
            if (l < 0) goto fail;
            points[s.dims * j + k] = (int8_t)(2 * l + 1);
            u |= l << (s.bits * k);
        }
        map[u] = j;
    }
    int8_t pos[8];
    for (int u = 0; u < map_size; ++u) {
        if (map[u] >= 0) continue;
        int valid = 1;
        for (int k = 0; k < s.dims; ++k) {
            const int l = (u >> (s.bits * k)) & ((1 << s.bits) - 1);
            if (l >= s.nlevels) valid = 0;
            pos[k] = (int8_t)(2 * l + 1);
        }
        if (!valid) continue;      // never looked up: the quantizers clamp levels to 0 … nlevels−1
        const int n = nearest_points(points, s.size, s.dims, pos, s.nwant, dist, scratch);
        if (used + 1 + (size_t)n > capacity) {
            capacity = (used + 1 + n) * 2;
            uint16_t *grown = realloc(neighbours, sizeof(uint16_t) * capacity);
            if (!grown) goto fail;
            neighbours = grown;
        }
        map[u] = -(int32_t)(used + 1);
        neighbours[used++] = (uint16_t)n;
        for (int j = 0; j < n; ++j) neighbours[used++] = scratch[j];
    }
    free(dist);
    free(scratch);
    *cb = (ds_iq_codebook){s.dims, s.bits, s.size, points, map, neighbours};
    return 1;
fail:
    free(points); free(map); free(dist); free(scratch); free(neighbours);
    return 0;
}

static pthread_mutex_t codebook_lock = PTHREAD_MUTEX_INITIALIZER;
static ds_iq_codebook codebooks[CODEBOOK_COUNT];
static int codebook_built[CODEBOOK_COUNT];

const ds_iq_codebook *ds_iq_codebook_for(int type) {
    int which;
    switch (type) {
    case DS_TYPE_IQ2_XXS: which = CODEBOOK_IQ2_XXS; break;
    case DS_TYPE_IQ2_XS:  which = CODEBOOK_IQ2_XS; break;
    case DS_TYPE_IQ2_S:   which = CODEBOOK_IQ2_S; break;
    case DS_TYPE_IQ1_S: case DS_TYPE_IQ1_M: which = CODEBOOK_IQ1; break;
    case DS_TYPE_IQ3_XXS: which = CODEBOOK_IQ3_XXS; break;
    case DS_TYPE_IQ3_S:   which = CODEBOOK_IQ3_S; break;
    default: return NULL;
    }
    pthread_mutex_lock(&codebook_lock);
    if (!codebook_built[which]) codebook_built[which] = build(which, &codebooks[which]);
    const int ok = codebook_built[which];
    pthread_mutex_unlock(&codebook_lock);
    return ok ? &codebooks[which] : NULL;
}

// ---- Shared steps of the quantizers ----------------------------------------------------------------

static int map_index(const ds_iq_codebook *cb, const int8_t *L) {
    int u = 0;
    for (int i = 0; i < cb->dims; ++i) u |= L[i] << (cb->bits * i);
    return u;
}

int ds_iq_grid_index(const ds_iq_codebook *cb, const int8_t *L) {
    const int32_t m = cb->map[map_index(cb, L)];
    return m >= 0 ? m : -1;
}

const uint16_t *ds_iq_neighbours(const ds_iq_codebook *cb, const int8_t *L, int *index) {
    const int32_t m = cb->map[map_index(cb, L)];
    *index = m;
    return m >= 0 ? NULL : cb->neighbours + (-m - 1);
}

int ds_iq_snap(const ds_iq_codebook *cb, const float *xval, const float *w, float scale, const float *xg, int8_t *L,
               bool *on_grid) {
    int index;
    const uint16_t *list = ds_iq_neighbours(cb, L, &index);
    *on_grid = list == NULL;
    if (!list) return index;
    float best_d2 = FLT_MAX;
    int best = list[1];
    for (int j = 1; j <= list[0]; ++j) {
        const int8_t *pg = cb->points + cb->dims * list[j];
        float d2 = 0;
        for (int i = 0; i < cb->dims; ++i) {
            const float q = xg ? xg[(pg[i] - 1) / 2] : pg[i];
            const float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best_d2) { best_d2 = d2; best = list[j]; }
    }
    const int8_t *pg = cb->points + cb->dims * best;
    for (int i = 0; i < cb->dims; ++i) L[i] = (int8_t)((pg[i] - 1) / 2);
    return best;
}

void ds_iq_grid_sums(int n, const float *weight, const float *xval, const int8_t *L, float *sumqx, float *sumq2) {
    float sx = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
        const float w = weight[i];
        const float q = 2 * L[i] + 1;
        sx += w * xval[i] * q;
        s2 += w * q * q;
    }
    *sumqx = sx;
    *sumq2 = s2;
}

// L[dims] ← clamp(round((id·x − 1) / 2), 0, kmax − 1).
static void round_group(int dims, int kmax, float id, const float *xval, int8_t *L) {
    for (int i = 0; i < dims; ++i) {
        const int l = ds_nearest_int(0.5f * (id * xval[i] - 1));
        L[i] = (int8_t)DS_MAX(0, DS_MIN(kmax - 1, l));
    }
}

float ds_iq_search_scale(const ds_iq_codebook *cb, int n, int kmax, float max, int range, float step, float scale,
                         const float *xval, const float *weight, const float *waux, int8_t *L, bool *on_grid) {
    const int dims = cb->dims, groups = n / dims;
    int8_t Laux[32];
    bool aux_on_grid[8];
    float best = 0;
    for (int is = -range; is <= range; ++is) {
        const float id = (2 * kmax - 1 + is * step) / max;
        const float this_scale = 1 / id;
        for (int g = 0; g < groups; ++g) {
            round_group(dims, kmax, id, xval + dims * g, Laux + dims * g);
            ds_iq_snap(cb, xval + dims * g, waux + dims * g, this_scale, NULL, Laux + dims * g, &aux_on_grid[g]);
        }
        float sumqx, sumq2;
        ds_iq_grid_sums(n, weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            for (int i = 0; i < n; ++i) L[i] = Laux[i];
            for (int g = 0; g < groups; ++g) on_grid[g] = aux_on_grid[g];
        }
    }
    return scale;
}

float ds_iq_refit(const ds_iq_codebook *cb, int n, int kmax, float scale, const float *xval, const float *weight,
                  const float *waux, int8_t *L, const bool *on_grid) {
    const int dims = cb->dims, groups = n / dims;
    const float id = 1 / scale;
    for (int g = 0; g < groups; ++g) {
        if (on_grid && on_grid[g]) continue;
        bool unused;
        round_group(dims, kmax, id, xval + dims * g, L + dims * g);
        ds_iq_snap(cb, xval + dims * g, waux + dims * g, scale, NULL, L + dims * g, &unused);
    }
    float sumqx, sumq2;
    ds_iq_grid_sums(n, weight, xval, L, &sumqx, &sumq2);
    return sumq2 > 0 ? sumqx / sumq2 : scale;
}

uint8_t ds_iq_fold_signs(const float *x, const float *weight, float *xval, int even_parity) {
    int negatives = 0;
    uint8_t signs = 0;
    for (int i = 0; i < 8; ++i) {
        if (x[i] >= 0) {
            xval[i] = x[i];
        } else {
            xval[i] = -x[i];
            ++negatives;
            signs |= (uint8_t)(1u << i);
        }
    }
    if (even_parity && negatives % 2) {
        int imin = 0;
        float min = weight[0] * x[0] * x[0];
        for (int i = 1; i < 8; ++i) {
            const float ax = weight[i] * x[i] * x[i];
            if (ax < min) { min = ax; imin = i; }
        }
        xval[imin] = -xval[imin];
        signs ^= (uint8_t)(1u << imin);
    }
    return even_parity ? signs & 127 : signs;
}

float ds_iq_sum_squares(const float *x, int n) {
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += x[i] * x[i];
    return sum;
}

int ds_quantize_iq_row(int type, const float *x, void *y, int64_t n, const float *qw) {
    const ds_iq_codebook *cb = ds_iq_codebook_for(type);
    if (!cb) return 0;
    switch (type) {
    case DS_TYPE_IQ2_XXS: if (!qw) return 0; ds_quantize_iq2_xxs(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ2_XS:  if (!qw) return 0; ds_quantize_iq2_xs(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ1_S:   if (!qw) return 0; ds_quantize_iq1_s(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ2_S:   ds_quantize_iq2_s(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ3_XXS: ds_quantize_iq3_xxs(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ3_S:   ds_quantize_iq3_s(cb, x, y, n, qw); return 1;
    case DS_TYPE_IQ1_M:   ds_quantize_iq1_m(cb, x, y, n, qw); return 1;
    default: return 0;
    }
}
