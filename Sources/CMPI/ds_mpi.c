// ds_mpi.c — see ds_mpi.h. The functions are MPI's C entry points resolved from the library with dlsym; the
// handles are Open MPI's globals' addresses. Open MPI's own plugins resolve symbols of libmpi, so the
// library is opened RTLD_GLOBAL.

#include "ds_mpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *handle;  // MPI_Comm, MPI_Datatype, MPI_Errhandler, MPI_Request in Open MPI
// Open MPI's MPI_Status: the three public ints, then its own fields (24 bytes on LP64).
typedef struct { int source, tag, error, cancelled; size_t count; } ompi_status;
enum { THREAD_SERIALIZED = 2, ANY_SOURCE = -1, ANY_TAG = -1, MAX_ERROR_STRING = 256, MAX_LIBRARY_VERSION = 256 };

static struct {
    int opened, initialised;
    void *library;
    handle world, byte, errors_return;
    int (*init_thread)(int *, char ***, int, int *);
    int (*initialized)(int *);
    int (*comm_rank)(handle, int *);
    int (*comm_size)(handle, int *);
    int (*comm_set_errhandler)(handle, handle);
    int (*isend)(const void *, int, handle, int, int, handle, handle *);
    int (*irecv)(void *, int, handle, int, int, handle, handle *);
    int (*ibarrier)(handle, handle *);
    int (*test)(handle *, int *, ompi_status *);
    int (*cancel)(handle *);
    int (*request_free)(handle *);
    int (*get_count)(const ompi_status *, handle, int *);
    double (*wtime)(void);
    int (*error_string)(int, char *, int *);
    int (*abort)(handle, int);
    int (*finalize)(void);
    int (*library_version)(char *, int *);
} mpi;

int ds_mpi_launched(void) {
    static const char *const variables[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof(variables) / sizeof(variables[0]); ++i)
        if (getenv(variables[i])) return 1;
    return 0;
}

#define RESOLVE(field, name)                                                            \
    do {                                                                                \
        *(void **)&mpi.field = dlsym(mpi.library, name);                               \
        if (!mpi.field) {                                                               \
            snprintf(reason, reason_size, "the MPI library lacks %s", name);            \
            return -1;                                                                  \
        }                                                                               \
    } while (0)

static int open_library(char *reason, size_t reason_size) {
    if (mpi.opened) return 0;
    const char *chosen = getenv("DS_MPI_LIBRARY");
    const char *names[] = {chosen ? chosen : "libmpi.so.40", "libmpi.so", "libmpi.40.dylib", "libmpi.dylib"};
    size_t count = chosen ? 1 : sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < count && !mpi.library; ++i) mpi.library = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!mpi.library) {
        snprintf(reason, reason_size, "no MPI library on this machine (Open MPI's libmpi.so.40; Debian: apt-get install "
                 "openmpi-bin libopenmpi-dev; DS_MPI_LIBRARY names another file): %s", dlerror());
        return -1;
    }
    mpi.world = dlsym(mpi.library, "ompi_mpi_comm_world");
    mpi.byte = dlsym(mpi.library, "ompi_mpi_byte");
    mpi.errors_return = dlsym(mpi.library, "ompi_mpi_errors_return");
    if (!mpi.world || !mpi.byte || !mpi.errors_return) {
        snprintf(reason, reason_size, "the MPI library is not Open MPI (no ompi_mpi_comm_world): this build speaks Open MPI's ABI");
        return -1;
    }
    RESOLVE(init_thread, "MPI_Init_thread");
    RESOLVE(initialized, "MPI_Initialized");
    RESOLVE(comm_rank, "MPI_Comm_rank");
    RESOLVE(comm_size, "MPI_Comm_size");
    RESOLVE(comm_set_errhandler, "MPI_Comm_set_errhandler");
    RESOLVE(isend, "MPI_Isend");
    RESOLVE(irecv, "MPI_Irecv");
    RESOLVE(ibarrier, "MPI_Ibarrier");
    RESOLVE(test, "MPI_Test");
    RESOLVE(cancel, "MPI_Cancel");
    RESOLVE(request_free, "MPI_Request_free");
    RESOLVE(get_count, "MPI_Get_count");
    RESOLVE(wtime, "MPI_Wtime");
    RESOLVE(error_string, "MPI_Error_string");
    RESOLVE(abort, "MPI_Abort");
    RESOLVE(finalize, "MPI_Finalize");
    RESOLVE(library_version, "MPI_Get_library_version");
    mpi.opened = 1;
    return 0;
}

int ds_mpi_init(int *rank, int *size, char *reason, size_t reason_size) {
    if (open_library(reason, reason_size) != 0) return -1;
    if (!mpi.initialised) {
        int provided = 0, already = 0;
        mpi.initialized(&already);
        int status = already ? 0 : mpi.init_thread(NULL, NULL, THREAD_SERIALIZED, &provided);
        if (status != 0) {
            char text[MAX_ERROR_STRING];
            ds_mpi_error_string(status, text, sizeof(text));
            snprintf(reason, reason_size, "MPI_Init_thread failed: %s", text);
            return -1;
        }
        if (!already && provided < THREAD_SERIALIZED) {
            snprintf(reason, reason_size, "the MPI library gives thread level %d; serialized calls from several threads (2) are needed",
                     provided);
            return -1;
        }
        mpi.comm_set_errhandler(mpi.world, mpi.errors_return);
        mpi.initialised = 1;
    }
    mpi.comm_rank(mpi.world, rank);
    mpi.comm_size(mpi.world, size);
    return 0;
}

void ds_mpi_library_version(char *out, size_t out_size) {
    char text[MAX_LIBRARY_VERSION * 32];
    int length = 0;
    if (!mpi.opened || mpi.library_version(text, &length) != 0) { snprintf(out, out_size, "unknown"); return; }
    text[length < (int)sizeof(text) ? length : (int)sizeof(text) - 1] = 0;
    char *newline = strchr(text, '\n');
    if (newline) *newline = 0;
    snprintf(out, out_size, "%s", text);
}

int ds_mpi_isend(const void *bytes, size_t count, int peer, int tag, ds_mpi_request *request) {
    if (count > 0x7fffffff) return -1;
    return mpi.isend(bytes, (int)count, mpi.byte, peer, tag, mpi.world, (handle *)request);
}

int ds_mpi_irecv(void *bytes, size_t count, int peer, int tag, ds_mpi_request *request) {
    if (count > 0x7fffffff) return -1;
    return mpi.irecv(bytes, (int)count, mpi.byte, peer < 0 ? ANY_SOURCE : peer, tag < 0 ? ANY_TAG : tag, mpi.world, (handle *)request);
}

int ds_mpi_ibarrier(ds_mpi_request *request) { return mpi.ibarrier(mpi.world, (handle *)request); }

int ds_mpi_test(ds_mpi_request *request, int *done, int *source, int *tag, size_t *received) {
    ompi_status status;
    memset(&status, 0, sizeof(status));
    int result = mpi.test((handle *)request, done, &status);
    if (result != 0 || !*done) return result;
    if (source) *source = status.source;
    if (tag) *tag = status.tag;
    if (received) {
        int count = 0;
        mpi.get_count(&status, mpi.byte, &count);
        *received = count < 0 ? 0 : (size_t)count;
    }
    return 0;
}

void ds_mpi_cancel(ds_mpi_request *request) {
    mpi.cancel((handle *)request);
    mpi.request_free((handle *)request);
}

double ds_mpi_wtime(void) { return mpi.opened ? mpi.wtime() : 0; }

void ds_mpi_error_string(int code, char *out, size_t out_size) {
    char text[MAX_ERROR_STRING];
    int length = 0;
    if (code == -1) { snprintf(out, out_size, "a message over 2 GiB"); return; }
    if (!mpi.opened || mpi.error_string(code, text, &length) != 0) { snprintf(out, out_size, "MPI error %d", code); return; }
    text[length < (int)sizeof(text) ? length : (int)sizeof(text) - 1] = 0;
    snprintf(out, out_size, "%s", text);
}

void ds_mpi_abort(int code) {
    if (mpi.initialised) mpi.abort(mpi.world, code);
    exit(code);
}

int ds_mpi_finalize(void) {
    if (!mpi.initialised) return 0;
    mpi.initialised = 0;
    return mpi.finalize();
}
