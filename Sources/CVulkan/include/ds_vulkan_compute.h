// ds_vulkan_compute.h — a Vulkan compute context: one device, one compute queue, buffers, pipelines made
// once from SPIR-V, and a command buffer that records many dispatches (with barriers between dependent
// ones) and is submitted once. The loader is opened at run time (ds_vulkan.c); nothing links Vulkan.
#ifndef DS_VULKAN_COMPUTE_H
#define DS_VULKAN_COMPUTE_H

#include <stddef.h>
#include <stdint.h>
#include "ds_vulkan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ds_vk_context ds_vk_context;
typedef struct ds_vk_buffer ds_vk_buffer;
typedef struct ds_vk_pipeline ds_vk_pipeline;

// Device `index` of ds_vulkan_devices' list, its description in `info`; NULL with `reason` (one line).
ds_vk_context *ds_vk_create(int index, ds_vulkan_device *info, char *reason, size_t reason_size);
void ds_vk_destroy(ds_vk_context *ctx);
// Bytes a storage-buffer binding offset must be a multiple of.
uint64_t ds_vk_offset_alignment(const ds_vk_context *ctx);

// Memory kinds: device-local (weights; filled through a staging copy unless also host-visible) or host-visible
// (activations in and out; device-local too where the device has such memory, e.g. unified memory).
enum { DS_VK_DEVICE_LOCAL = 0, DS_VK_HOST_VISIBLE = 1 };
ds_vk_buffer *ds_vk_buffer_create(ds_vk_context *ctx, uint64_t bytes, int kind, char *reason, size_t reason_size);
void ds_vk_buffer_destroy(ds_vk_context *ctx, ds_vk_buffer *buffer);
uint64_t ds_vk_buffer_size(const ds_vk_buffer *buffer);
// The host mapping, or NULL for device memory the host cannot see.
void *ds_vk_buffer_mapped(const ds_vk_buffer *buffer);
// Copies bytes into the buffer at offset (mapped: memcpy; else through the staging buffer, waiting for the copy).
// Returns 0, or -1 with reason.
int ds_vk_buffer_write(ds_vk_context *ctx, ds_vk_buffer *buffer, uint64_t offset, const void *bytes, uint64_t count,
                       char *reason, size_t reason_size);

// A compute pipeline from SPIR-V words: `bindings` storage buffers at bindings 0..<bindings of set 0 and
// `push_bytes` of push constants. NULL with reason.
ds_vk_pipeline *ds_vk_pipeline_create(ds_vk_context *ctx, const uint32_t *code, size_t code_bytes, int bindings,
                                      uint32_t push_bytes, char *reason, size_t reason_size);

// One storage-buffer binding: `range` bytes of `buffer` from `offset` (a multiple of ds_vk_offset_alignment).
typedef struct {
    ds_vk_buffer *buffer;
    uint64_t offset;
    uint64_t range;
} ds_vk_binding;

// Records a dispatch of groups_x · groups_y · groups_z workgroups into the open command buffer (opening one
// if none is). Returns 0, or -1 with reason.
int ds_vk_dispatch(ds_vk_context *ctx, ds_vk_pipeline *pipeline, const ds_vk_binding *bindings, int binding_count,
                   const void *push, uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z,
                   char *reason, size_t reason_size);
// Makes the writes of the dispatches recorded so far visible to those recorded after.
void ds_vk_barrier(ds_vk_context *ctx);
// Submits what was recorded and waits for it (nothing recorded: returns at once). Returns 0, or -1 with reason.
int ds_vk_submit(ds_vk_context *ctx, char *reason, size_t reason_size);
// Copies `count` bytes (NULL: none, space only) into the recording's host-visible arena and says where, for a
// binding: what an op reads from the host, or space for what it writes there. The arena is reused after the
// next submit. Returns 0, or -1 with reason.
int ds_vk_stage(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_binding *where, char *reason, size_t reason_size);
// Records a copy of `count` bytes between buffers (after a ds_vk_barrier where it depends on earlier work).
int ds_vk_copy(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, ds_vk_buffer *to, uint64_t to_offset, uint64_t count,
               char *reason, size_t reason_size);
// Records a copy of host bytes (taken now, through the arena) into `to` at to_offset.
int ds_vk_upload(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_buffer *to, uint64_t to_offset,
                 char *reason, size_t reason_size);
// After the next submit's wait, copies `count` bytes of the host-visible `from` at from_offset to the host at `to`.
int ds_vk_host_copy_after_submit(ds_vk_context *ctx, const ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                                 char *reason, size_t reason_size);
// Records a copy of `count` bytes of `from` at from_offset that lands at the host's `to` after the next submit.
int ds_vk_download(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                   char *reason, size_t reason_size);
// Dispatches submitted since the context was made (for tests: one submit per forward, not per op).
uint64_t ds_vk_submit_count(const ds_vk_context *ctx);
/// Whether the device was opened with integer dot products (VK_KHR_shader_integer_dot_product): the
/// int-dot product shaders may run.
int ds_vk_integer_dot_enabled(const ds_vk_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
