// Persistent worker pool: workers spin on a generation counter between dispatches (cheap
// back-to-back dispatch inside a forward pass), then park on a futex/condvar after a spin budget.
#pragma once
#include <stdint.h>

typedef struct ds_pool ds_pool;
// fn(ctx, ith, nth) is called once per thread, ith in [0, nth); the caller's thread runs ith = 0.
typedef void (*ds_pool_fn)(void *ctx, int ith, int nth);

ds_pool *ds_pool_create(int n_threads);
void ds_pool_destroy(ds_pool *pool);
int ds_pool_threads(const ds_pool *pool);
// Runs fn on all threads and returns when every thread has finished.
void ds_pool_run(ds_pool *pool, ds_pool_fn fn, void *ctx);
// Workers stop spinning and park until the next dispatch (call between tokens / when idle).
void ds_pool_park(ds_pool *pool);
