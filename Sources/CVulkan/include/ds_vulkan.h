// ds_vulkan.h — the Vulkan loader, opened at run time (dlopen of libvulkan), and the devices it offers.
// Nothing here links against Vulkan: a build without the Vulkan headers, or a machine without a loader
// or a device, gets a one-line reason instead of devices.
#ifndef DS_VULKAN_H
#define DS_VULKAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// What a compute backend needs to know of one physical device.
typedef struct {
    char name[256];
    char driver[64];          // driver name (e.g. "llvmpipe"), empty where the device does not say
    uint32_t api_version;     // VK_MAKE_API_VERSION packing: major << 22 | minor << 12 | patch
    uint32_t vendor_id, device_id;
    int device_type;          // 0 other, 1 integrated GPU, 2 discrete GPU, 3 virtual GPU, 4 CPU
    uint32_t subgroup_size;
    int subgroup_arithmetic;  // subgroup sums in compute shaders (the product kernels need them)
    uint32_t max_workgroup_invocations;
    uint32_t max_shared_memory;        // bytes of workgroup shared memory
    uint64_t max_storage_buffer_range; // bytes one storage buffer binding may span
    uint64_t max_allocation;           // bytes of one allocation
    uint64_t device_local_bytes;       // the largest device-local heap
    int unified_memory;                // a heap that is both device-local and host-visible (iGPU, CPU, Apple)
    int shader_float16, shader_int8, storage_8bit, storage_16bit;
    int integer_dot_product;           // VK_KHR_shader_integer_dot_product (or Vulkan 1.3's feature)
    int integer_dot_product_accelerated; // 4x8-bit packed signed dot products in hardware
} ds_vulkan_device;

// Fills up to `capacity` devices; returns how many there are (may exceed capacity), or -1 with `reason`
// (a line) saying why there are none to use: no Vulkan headers at build time, no loader library, no
// instance, or no device.
int ds_vulkan_devices(ds_vulkan_device *devices, int capacity, char *reason, size_t reason_size);

#ifdef __cplusplus
}
#endif
#endif
