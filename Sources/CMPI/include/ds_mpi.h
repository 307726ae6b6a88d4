// ds_mpi.h — MPI opened at run time: the single-machine build neither links nor needs an MPI library. The
// library (Open MPI's libmpi.so.40, or the file named by DS_MPI_LIBRARY) is loaded with dlopen on first use
// and its functions resolved by name. Open MPI's predefined handles (MPI_COMM_WORLD, MPI_BYTE, …) are the
// addresses of its globals (ompi_mpi_comm_world, …), so they are resolved by name too; that ties this
// shim to Open MPI's ABI (Debian's openmpi-bin / libopenmpi-dev), and any other library is refused with a
// line saying so. Every call is non-blocking or bounded by the caller, so a dead rank or a broken link
// ends in an error, never a hang.
#ifndef DS_MPI_H
#define DS_MPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An outstanding send, receive or barrier (Open MPI's MPI_Request, a pointer).
typedef void *ds_mpi_request;

/// Whether this process was started by an MPI launcher (mpirun / mpiexec set the rank's environment).
int ds_mpi_launched(void);

/// Loads the library and initialises MPI once per process (MPI_THREAD_SERIALIZED: one thread calls at a
/// time; errors are returned, not fatal). 0 and this rank and the world's size, or −1 and why.
int ds_mpi_init(int *rank, int *size, char *reason, size_t reason_size);

/// The library's own version line (MPI_Get_library_version), after ds_mpi_init.
void ds_mpi_library_version(char *out, size_t out_size);

/// Starts sending / receiving `bytes` (≤ INT32_MAX) to / from rank `peer` with `tag` (peer −1: any rank).
/// 0, or an MPI error code (ds_mpi_error_string says what).
int ds_mpi_isend(const void *bytes, size_t count, int peer, int tag, ds_mpi_request *request);
int ds_mpi_irecv(void *bytes, size_t count, int peer, int tag, ds_mpi_request *request);
/// Starts a barrier over every rank.
int ds_mpi_ibarrier(ds_mpi_request *request);
/// Whether the request finished (done 1: its sender, tag and received bytes where asked for).
int ds_mpi_test(ds_mpi_request *request, int *done, int *source, int *tag, size_t *received);
/// Gives up on a request that has not finished (cancels it; a send may have gone already).
void ds_mpi_cancel(ds_mpi_request *request);

/// Seconds since some moment (MPI_Wtime).
double ds_mpi_wtime(void);
/// What an MPI error code means.
void ds_mpi_error_string(int code, char *out, size_t out_size);
/// Ends every rank of the job with `code` (MPI_Abort on the world).
void ds_mpi_abort(int code);
/// Finalises MPI (after every request finished).
int ds_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
