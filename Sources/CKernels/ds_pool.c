#define _GNU_SOURCE
#include "ds_pool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DS_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define DS_PAUSE() __asm__ __volatile__("yield")
#else
#define DS_PAUSE() ((void)0)
#endif

// A dispatch: the main thread publishes (fn, ctx), bumps `generation`; each worker runs its share and
// increments `done`. Workers spin on `generation` up to SPIN_ITERS, then sleep on the condvar.
enum { SPIN_ITERS = 200000 };

struct ds_pool {
    int n;
    pthread_t *threads;
    // Separate cache lines: workers poll `generation`, the caller polls `done`.
    _Alignas(64) _Atomic uint64_t generation;
    _Alignas(64) _Atomic int done;
    _Alignas(64) _Atomic int stop;
    _Atomic int parked_hint;   // set by ds_pool_park: workers go to sleep immediately
    _Atomic int sleepers;
    ds_pool_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct { ds_pool *pool; int ith; } worker_arg;

static void *worker_main(void *p) {
    worker_arg *arg = (worker_arg *)p;
    ds_pool *pool = arg->pool;
    int ith = arg->ith;
    free(arg);
    uint64_t seen = 0;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_ITERS && !atomic_load_explicit(&pool->parked_hint, memory_order_relaxed)) {
                if ((spins & 1023) == 0) sched_yield(); else DS_PAUSE();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&pool->stop)) return NULL;
        pool->fn(pool->ctx, ith, pool->n);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_acq_rel);
    }
}

ds_pool *ds_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    ds_pool *pool = aligned_alloc(64, (sizeof(ds_pool) + 63) / 64 * 64);
    memset(pool, 0, sizeof(ds_pool));
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof(worker_arg));
        a->pool = pool; a->ith = i;
        pthread_create(&pool->threads[i], NULL, worker_main, a);
    }
    return pool;
}

void ds_pool_destroy(ds_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    pthread_mutex_lock(&pool->mu);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int ds_pool_threads(const ds_pool *pool) { return pool ? pool->n : 1; }

void ds_pool_run(ds_pool *pool, ds_pool_fn fn, void *ctx) {
    if (!pool || pool->n == 1) { fn(ctx, 0, 1); return; }
    atomic_store_explicit(&pool->parked_hint, 0, memory_order_relaxed);
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_acq_rel);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    fn(ctx, 0, pool->n);
    // Spin briefly; if a worker was descheduled (another process holds its core), yield the CPU
    // instead of burning the timeslice it needs.
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n - 1; spins++) {
        if (spins < 4096) DS_PAUSE(); else sched_yield();
    }
}

void ds_pool_park(ds_pool *pool) {
    if (pool) atomic_store(&pool->parked_hint, 1);
}
