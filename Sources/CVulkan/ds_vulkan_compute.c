// ds_vulkan_compute.c — the Vulkan compute context (ds_vulkan_compute.h): device, queue, buffers, pipelines,
// one command buffer that records dispatches until ds_vk_submit. Descriptor sets come from a pool reset at
// each submit; when it runs out mid-recording, what was recorded is submitted first (still correct: the
// queue runs in order and the wait makes every write visible).

#include "ds_vulkan_internal.h"
#include "ds_vulkan_compute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DS_HAVE_VULKAN_HEADERS

static const char no_headers[] = "this build has no Vulkan support (the Vulkan headers were not found when it was built)";
ds_vk_context *ds_vk_create(int index, ds_vulkan_device *info, char *reason, size_t reason_size) {
    (void)index; (void)info;
    snprintf(reason, reason_size, "%s", no_headers);
    return NULL;
}
void ds_vk_destroy(ds_vk_context *ctx) { (void)ctx; }
uint64_t ds_vk_offset_alignment(const ds_vk_context *ctx) { (void)ctx; return 256; }
ds_vk_buffer *ds_vk_buffer_create(ds_vk_context *ctx, uint64_t bytes, int kind, char *reason, size_t reason_size) {
    (void)ctx; (void)bytes; (void)kind;
    snprintf(reason, reason_size, "%s", no_headers);
    return NULL;
}
void ds_vk_buffer_destroy(ds_vk_context *ctx, ds_vk_buffer *buffer) { (void)ctx; (void)buffer; }
uint64_t ds_vk_buffer_size(const ds_vk_buffer *buffer) { (void)buffer; return 0; }
void *ds_vk_buffer_mapped(const ds_vk_buffer *buffer) { (void)buffer; return NULL; }
int ds_vk_buffer_write(ds_vk_context *ctx, ds_vk_buffer *buffer, uint64_t offset, const void *bytes, uint64_t count,
                       char *reason, size_t reason_size) {
    (void)ctx; (void)buffer; (void)offset; (void)bytes; (void)count;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
ds_vk_pipeline *ds_vk_pipeline_create(ds_vk_context *ctx, const uint32_t *code, size_t code_bytes, int bindings,
                                      uint32_t push_bytes, char *reason, size_t reason_size) {
    (void)ctx; (void)code; (void)code_bytes; (void)bindings; (void)push_bytes;
    snprintf(reason, reason_size, "%s", no_headers);
    return NULL;
}
int ds_vk_dispatch(ds_vk_context *ctx, ds_vk_pipeline *pipeline, const ds_vk_binding *bindings, int binding_count,
                   const void *push, uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z,
                   char *reason, size_t reason_size) {
    (void)ctx; (void)pipeline; (void)bindings; (void)binding_count; (void)push; (void)push_bytes;
    (void)groups_x; (void)groups_y; (void)groups_z;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
void ds_vk_barrier(ds_vk_context *ctx) { (void)ctx; }
int ds_vk_submit(ds_vk_context *ctx, char *reason, size_t reason_size) {
    (void)ctx;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
uint64_t ds_vk_submit_count(const ds_vk_context *ctx) { (void)ctx; return 0; }
int ds_vk_integer_dot_enabled(const ds_vk_context *ctx) { (void)ctx; return 0; }
int ds_vk_stage(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_binding *where, char *reason, size_t reason_size) {
    (void)ctx; (void)bytes; (void)count; (void)where;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
int ds_vk_copy(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, ds_vk_buffer *to, uint64_t to_offset, uint64_t count,
               char *reason, size_t reason_size) {
    (void)ctx; (void)from; (void)from_offset; (void)to; (void)to_offset; (void)count;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
int ds_vk_upload(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_buffer *to, uint64_t to_offset,
                 char *reason, size_t reason_size) {
    (void)ctx; (void)bytes; (void)count; (void)to; (void)to_offset;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
int ds_vk_host_copy_after_submit(ds_vk_context *ctx, const ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                                 char *reason, size_t reason_size) {
    (void)ctx; (void)from; (void)from_offset; (void)to; (void)count;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}
int ds_vk_download(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                   char *reason, size_t reason_size) {
    (void)ctx; (void)from; (void)from_offset; (void)to; (void)count;
    snprintf(reason, reason_size, "%s", no_headers);
    return -1;
}

#else

enum { MAX_BINDINGS = 8, SETS_PER_POOL = 4096, STAGING_BYTES = 64u << 20, ARENA_CHUNK_BYTES = 16u << 20 };

// A copy to the host that waits for the submit: `bytes` from the mapped `from` to `to`.
typedef struct {
    const void *from;
    void *to;
    uint64_t bytes;
} pending_copy;

// The device-level entry points this file calls, loaded once per context.
typedef struct {
    PFN_vkDestroyInstance DestroyInstance;
    PFN_vkDestroyDevice DestroyDevice;
    PFN_vkGetDeviceQueue GetDeviceQueue;
    PFN_vkCreateBuffer CreateBuffer;
    PFN_vkDestroyBuffer DestroyBuffer;
    PFN_vkGetBufferMemoryRequirements GetBufferMemoryRequirements;
    PFN_vkAllocateMemory AllocateMemory;
    PFN_vkFreeMemory FreeMemory;
    PFN_vkBindBufferMemory BindBufferMemory;
    PFN_vkMapMemory MapMemory;
    PFN_vkCreateShaderModule CreateShaderModule;
    PFN_vkDestroyShaderModule DestroyShaderModule;
    PFN_vkCreateDescriptorSetLayout CreateDescriptorSetLayout;
    PFN_vkDestroyDescriptorSetLayout DestroyDescriptorSetLayout;
    PFN_vkCreatePipelineLayout CreatePipelineLayout;
    PFN_vkDestroyPipelineLayout DestroyPipelineLayout;
    PFN_vkCreateComputePipelines CreateComputePipelines;
    PFN_vkDestroyPipeline DestroyPipeline;
    PFN_vkCreateDescriptorPool CreateDescriptorPool;
    PFN_vkDestroyDescriptorPool DestroyDescriptorPool;
    PFN_vkResetDescriptorPool ResetDescriptorPool;
    PFN_vkAllocateDescriptorSets AllocateDescriptorSets;
    PFN_vkUpdateDescriptorSets UpdateDescriptorSets;
    PFN_vkCreateCommandPool CreateCommandPool;
    PFN_vkDestroyCommandPool DestroyCommandPool;
    PFN_vkAllocateCommandBuffers AllocateCommandBuffers;
    PFN_vkBeginCommandBuffer BeginCommandBuffer;
    PFN_vkEndCommandBuffer EndCommandBuffer;
    PFN_vkResetCommandBuffer ResetCommandBuffer;
    PFN_vkCmdBindPipeline CmdBindPipeline;
    PFN_vkCmdBindDescriptorSets CmdBindDescriptorSets;
    PFN_vkCmdPushConstants CmdPushConstants;
    PFN_vkCmdDispatch CmdDispatch;
    PFN_vkCmdPipelineBarrier CmdPipelineBarrier;
    PFN_vkCmdCopyBuffer CmdCopyBuffer;
    PFN_vkCreateFence CreateFence;
    PFN_vkDestroyFence DestroyFence;
    PFN_vkResetFences ResetFences;
    PFN_vkWaitForFences WaitForFences;
    PFN_vkQueueSubmit QueueSubmit;
} device_functions;

struct ds_vk_context {
    void *loader;
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    VkPhysicalDeviceMemoryProperties memory;
    uint64_t offset_alignment;
    VkCommandPool command_pool;
    VkCommandBuffer commands;
    VkFence fence;
    VkDescriptorPool descriptors;
    int recording;
    int integer_dot;  // VK_KHR_shader_integer_dot_product enabled on the device
    uint64_t submits;
    ds_vk_buffer *staging;
    // Host-visible chunks that operands and copies pass through during one recording (reset at each submit).
    ds_vk_buffer **arena;
    uint64_t *arena_used;
    int arena_chunks;
    // Copies to the host made after the submit's wait.
    pending_copy *pending;
    int pending_count, pending_capacity;
    device_functions f;
};

struct ds_vk_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped;
    uint64_t bytes;
};

struct ds_vk_pipeline {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    int bindings;
};

static int failed(char *reason, size_t reason_size, const char *what, VkResult result) {
    snprintf(reason, reason_size, "Vulkan: %s failed (VkResult %d)", what, (int)result);
    return -1;
}

static int load_device_functions(PFN_vkGetInstanceProcAddr get, VkInstance instance, device_functions *f) {
#define LOAD(name) if (!(f->name = (PFN_vk##name)get(instance, "vk" #name))) return -1;
    LOAD(DestroyInstance) LOAD(DestroyDevice) LOAD(GetDeviceQueue) LOAD(CreateBuffer) LOAD(DestroyBuffer)
    LOAD(GetBufferMemoryRequirements) LOAD(AllocateMemory) LOAD(FreeMemory) LOAD(BindBufferMemory) LOAD(MapMemory)
    LOAD(CreateShaderModule) LOAD(DestroyShaderModule) LOAD(CreateDescriptorSetLayout) LOAD(DestroyDescriptorSetLayout)
    LOAD(CreatePipelineLayout) LOAD(DestroyPipelineLayout) LOAD(CreateComputePipelines) LOAD(DestroyPipeline)
    LOAD(CreateDescriptorPool) LOAD(DestroyDescriptorPool) LOAD(ResetDescriptorPool) LOAD(AllocateDescriptorSets)
    LOAD(UpdateDescriptorSets) LOAD(CreateCommandPool) LOAD(DestroyCommandPool) LOAD(AllocateCommandBuffers)
    LOAD(BeginCommandBuffer) LOAD(EndCommandBuffer) LOAD(ResetCommandBuffer) LOAD(CmdBindPipeline)
    LOAD(CmdBindDescriptorSets) LOAD(CmdPushConstants) LOAD(CmdDispatch) LOAD(CmdPipelineBarrier) LOAD(CmdCopyBuffer)
    LOAD(CreateFence) LOAD(DestroyFence) LOAD(ResetFences) LOAD(WaitForFences) LOAD(QueueSubmit)
#undef LOAD
    return 0;
}

// The first queue family that can compute (compute-only families preferred: they are the async ones on GPUs).
static int compute_family(PFN_vkGetInstanceProcAddr get, VkInstance instance, VkPhysicalDevice physical) {
    PFN_vkGetPhysicalDeviceQueueFamilyProperties families =
        (PFN_vkGetPhysicalDeviceQueueFamilyProperties)get(instance, "vkGetPhysicalDeviceQueueFamilyProperties");
    uint32_t count = 0;
    families(physical, &count, NULL);
    VkQueueFamilyProperties list[64];
    if (count > 64) count = 64;
    families(physical, &count, list);
    int any = -1;
    for (uint32_t i = 0; i < count; ++i) {
        if (!(list[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        if (!(list[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) return (int)i;
        if (any < 0) any = (int)i;
    }
    return any;
}

static int open_device(ds_vk_context *ctx, PFN_vkGetInstanceProcAddr get, char *reason, size_t reason_size) {
    int family = compute_family(get, ctx->instance, ctx->physical);
    if (family < 0) {
        snprintf(reason, reason_size, "Vulkan: the device has no compute queue");
        return -1;
    }
    float priority = 1;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = (uint32_t)family,
                                     .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &queue};
    // Integer dot products (OpSDot in the int-dot product shaders) where the device lists the extension.
    static const char *dot_extension = "VK_KHR_shader_integer_dot_product";
    VkPhysicalDeviceShaderIntegerDotProductFeatures dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
                                                           .shaderIntegerDotProduct = VK_TRUE};
    PFN_vkEnumerateDeviceExtensionProperties extensions =
        (PFN_vkEnumerateDeviceExtensionProperties)get(ctx->instance, "vkEnumerateDeviceExtensionProperties");
    uint32_t extension_count = 0;
    if (extensions && extensions(ctx->physical, NULL, &extension_count, NULL) == VK_SUCCESS && extension_count > 0) {
        VkExtensionProperties *list = calloc(extension_count, sizeof(*list));
        if (list && extensions(ctx->physical, NULL, &extension_count, list) >= 0) {
            for (uint32_t i = 0; i < extension_count; ++i)
                if (strcmp(list[i].extensionName, dot_extension) == 0) ctx->integer_dot = 1;
        }
        free(list);
    }
    if (ctx->integer_dot) {
        info.enabledExtensionCount = 1;
        info.ppEnabledExtensionNames = &dot_extension;
        info.pNext = &dot;
    }
    PFN_vkCreateDevice create = (PFN_vkCreateDevice)get(ctx->instance, "vkCreateDevice");
    VkResult r = create(ctx->physical, &info, NULL, &ctx->device);
    if (r != VK_SUCCESS) return failed(reason, reason_size, "vkCreateDevice", r);
    ctx->f.GetDeviceQueue(ctx->device, (uint32_t)family, 0, &ctx->queue);

    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = (uint32_t)family};
    if ((r = ctx->f.CreateCommandPool(ctx->device, &pool, NULL, &ctx->command_pool)) != VK_SUCCESS)
        return failed(reason, reason_size, "vkCreateCommandPool", r);
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = ctx->command_pool,
                                         .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    if ((r = ctx->f.AllocateCommandBuffers(ctx->device, &alloc, &ctx->commands)) != VK_SUCCESS)
        return failed(reason, reason_size, "vkAllocateCommandBuffers", r);
    VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = ctx->f.CreateFence(ctx->device, &fence, NULL, &ctx->fence)) != VK_SUCCESS)
        return failed(reason, reason_size, "vkCreateFence", r);
    VkDescriptorPoolSize size = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = SETS_PER_POOL * MAX_BINDINGS};
    VkDescriptorPoolCreateInfo descriptors = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = SETS_PER_POOL,
                                              .poolSizeCount = 1, .pPoolSizes = &size};
    if ((r = ctx->f.CreateDescriptorPool(ctx->device, &descriptors, NULL, &ctx->descriptors)) != VK_SUCCESS)
        return failed(reason, reason_size, "vkCreateDescriptorPool", r);
    return 0;
}

ds_vk_context *ds_vk_create(int index, ds_vulkan_device *info, char *reason, size_t reason_size) {
    ds_vk_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) { snprintf(reason, reason_size, "out of memory"); return NULL; }
    ctx->loader = ds_vulkan_open_loader();
    if (!ctx->loader) {
        snprintf(reason, reason_size, "no Vulkan loader (libvulkan) on this machine");
        free(ctx);
        return NULL;
    }
    PFN_vkGetInstanceProcAddr get = (PFN_vkGetInstanceProcAddr)dlsym(ctx->loader, "vkGetInstanceProcAddr");
    VkResult r = get ? ds_vulkan_create_instance(get, &ctx->instance) : VK_ERROR_INITIALIZATION_FAILED;
    if (r != VK_SUCCESS) {
        failed(reason, reason_size, "vkCreateInstance", r);
        dlclose(ctx->loader);
        free(ctx);
        return NULL;
    }
    if (load_device_functions(get, ctx->instance, &ctx->f) != 0) {
        snprintf(reason, reason_size, "Vulkan: the loader lacks a Vulkan 1.0 entry point");
        ds_vk_destroy(ctx);
        return NULL;
    }
    PFN_vkEnumeratePhysicalDevices enumerate = (PFN_vkEnumeratePhysicalDevices)get(ctx->instance, "vkEnumeratePhysicalDevices");
    VkPhysicalDevice physical[64];
    uint32_t count = 64;
    if (enumerate(ctx->instance, &count, physical) < 0 || index < 0 || (uint32_t)index >= count) {
        snprintf(reason, reason_size, "Vulkan: no device %d (the machine has %u)", index, count);
        ds_vk_destroy(ctx);
        return NULL;
    }
    ctx->physical = physical[index];
    ds_vulkan_device description;
    ds_vulkan_describe(ctx->physical, get, ctx->instance, &description);
    if (info) *info = description;
    PFN_vkGetPhysicalDeviceMemoryProperties memory =
        (PFN_vkGetPhysicalDeviceMemoryProperties)get(ctx->instance, "vkGetPhysicalDeviceMemoryProperties");
    memory(ctx->physical, &ctx->memory);
    PFN_vkGetPhysicalDeviceProperties properties = (PFN_vkGetPhysicalDeviceProperties)get(ctx->instance, "vkGetPhysicalDeviceProperties");
    VkPhysicalDeviceProperties props;
    properties(ctx->physical, &props);
    ctx->offset_alignment = props.limits.minStorageBufferOffsetAlignment > 4 ? props.limits.minStorageBufferOffsetAlignment : 4;
    if (open_device(ctx, get, reason, reason_size) != 0) {
        ds_vk_destroy(ctx);
        return NULL;
    }
    return ctx;
}

void ds_vk_destroy(ds_vk_context *ctx) {
    if (!ctx) return;
    if (ctx->device) {
        if (ctx->staging) ds_vk_buffer_destroy(ctx, ctx->staging);
        for (int i = 0; i < ctx->arena_chunks; ++i) ds_vk_buffer_destroy(ctx, ctx->arena[i]);
        free(ctx->arena);
        free(ctx->arena_used);
        if (ctx->descriptors) ctx->f.DestroyDescriptorPool(ctx->device, ctx->descriptors, NULL);
        if (ctx->fence) ctx->f.DestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->command_pool) ctx->f.DestroyCommandPool(ctx->device, ctx->command_pool, NULL);
        ctx->f.DestroyDevice(ctx->device, NULL);
    }
    if (ctx->instance && ctx->f.DestroyInstance) ctx->f.DestroyInstance(ctx->instance, NULL);
    if (ctx->loader) dlclose(ctx->loader);
    free(ctx->pending);
    free(ctx);
}

uint64_t ds_vk_offset_alignment(const ds_vk_context *ctx) { return ctx->offset_alignment; }
uint64_t ds_vk_submit_count(const ds_vk_context *ctx) { return ctx->submits; }
int ds_vk_integer_dot_enabled(const ds_vk_context *ctx) { return ctx->integer_dot; }

// A memory type allowed by `bits` with every flag of `want`; -1 if none.
static int memory_type(const ds_vk_context *ctx, uint32_t bits, VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < ctx->memory.memoryTypeCount; ++i)
        if ((bits & (1u << i)) && (ctx->memory.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

ds_vk_buffer *ds_vk_buffer_create(ds_vk_context *ctx, uint64_t bytes, int kind, char *reason, size_t reason_size) {
    ds_vk_buffer *b = calloc(1, sizeof(*b));
    if (!b) { snprintf(reason, reason_size, "out of memory"); return NULL; }
    b->bytes = bytes;
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = bytes ? bytes : 4,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = ctx->f.CreateBuffer(ctx->device, &info, NULL, &b->buffer);
    if (r != VK_SUCCESS) { free(b); failed(reason, reason_size, "vkCreateBuffer", r); return NULL; }
    VkMemoryRequirements needs;
    ctx->f.GetBufferMemoryRequirements(ctx->device, b->buffer, &needs);
    const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    const VkMemoryPropertyFlags visible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    // Device-local memory the host can map is taken first either way (unified memory: no staging copy).
    int type = memory_type(ctx, needs.memoryTypeBits, local | visible);
    if (type < 0) type = memory_type(ctx, needs.memoryTypeBits, kind == DS_VK_DEVICE_LOCAL ? local : visible | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (type < 0) type = memory_type(ctx, needs.memoryTypeBits, kind == DS_VK_DEVICE_LOCAL ? local : visible);
    if (type < 0) {
        ctx->f.DestroyBuffer(ctx->device, b->buffer, NULL);
        free(b);
        snprintf(reason, reason_size, "Vulkan: no memory type for a %s buffer", kind == DS_VK_DEVICE_LOCAL ? "device" : "host-visible");
        return NULL;
    }
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = needs.size,
                                  .memoryTypeIndex = (uint32_t)type};
    if ((r = ctx->f.AllocateMemory(ctx->device, &alloc, NULL, &b->memory)) != VK_SUCCESS) {
        ctx->f.DestroyBuffer(ctx->device, b->buffer, NULL);
        free(b);
        snprintf(reason, reason_size, "Vulkan: allocating %llu bytes of device memory failed (VkResult %d)",
                 (unsigned long long)bytes, (int)r);
        return NULL;
    }
    ctx->f.BindBufferMemory(ctx->device, b->buffer, b->memory, 0);
    if (ctx->memory.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        if (ctx->f.MapMemory(ctx->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped) != VK_SUCCESS) b->mapped = NULL;
    return b;
}

void ds_vk_buffer_destroy(ds_vk_context *ctx, ds_vk_buffer *buffer) {
    if (!buffer) return;
    ctx->f.DestroyBuffer(ctx->device, buffer->buffer, NULL);
    ctx->f.FreeMemory(ctx->device, buffer->memory, NULL);
    free(buffer);
}

uint64_t ds_vk_buffer_size(const ds_vk_buffer *buffer) { return buffer->bytes; }
void *ds_vk_buffer_mapped(const ds_vk_buffer *buffer) { return buffer->mapped; }

static int submit(ds_vk_context *ctx, int free_arena, char *reason, size_t reason_size);

static int begin_if_needed(ds_vk_context *ctx, char *reason, size_t reason_size) {
    if (ctx->recording) return 0;
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = ctx->f.BeginCommandBuffer(ctx->commands, &begin);
    if (r != VK_SUCCESS) return failed(reason, reason_size, "vkBeginCommandBuffer", r);
    ctx->recording = 1;
    return 0;
}

int ds_vk_buffer_write(ds_vk_context *ctx, ds_vk_buffer *buffer, uint64_t offset, const void *bytes, uint64_t count,
                       char *reason, size_t reason_size) {
    if (offset + count > buffer->bytes) {
        snprintf(reason, reason_size, "Vulkan: a write of %llu bytes at %llu passes the buffer's end (%llu)",
                 (unsigned long long)count, (unsigned long long)offset, (unsigned long long)buffer->bytes);
        return -1;
    }
    if (buffer->mapped) {
        memcpy((char *)buffer->mapped + offset, bytes, count);
        return 0;
    }
    // Through the staging buffer, a part at a time, each copy waited for (weights load once; speed here is
    // not what a forward pass sees).
    if (submit(ctx, 0, reason, reason_size) != 0) return -1;
    if (!ctx->staging && !(ctx->staging = ds_vk_buffer_create(ctx, STAGING_BYTES, DS_VK_HOST_VISIBLE, reason, reason_size)))
        return -1;
    for (uint64_t done = 0; done < count;) {
        uint64_t n = count - done < STAGING_BYTES ? count - done : STAGING_BYTES;
        memcpy(ctx->staging->mapped, (const char *)bytes + done, n);
        if (begin_if_needed(ctx, reason, reason_size) != 0) return -1;
        VkBufferCopy region = {.srcOffset = 0, .dstOffset = offset + done, .size = n};
        ctx->f.CmdCopyBuffer(ctx->commands, ctx->staging->buffer, buffer->buffer, 1, &region);
        if (submit(ctx, 0, reason, reason_size) != 0) return -1;
        done += n;
    }
    return 0;
}

ds_vk_pipeline *ds_vk_pipeline_create(ds_vk_context *ctx, const uint32_t *code, size_t code_bytes, int bindings,
                                      uint32_t push_bytes, char *reason, size_t reason_size) {
    if (bindings < 1 || bindings > MAX_BINDINGS) {
        snprintf(reason, reason_size, "Vulkan: a pipeline takes 1 to %d buffers, not %d", MAX_BINDINGS, bindings);
        return NULL;
    }
    ds_vk_pipeline *p = calloc(1, sizeof(*p));
    if (!p) { snprintf(reason, reason_size, "out of memory"); return NULL; }
    p->bindings = bindings;
    VkDescriptorSetLayoutBinding slots[MAX_BINDINGS];
    for (int i = 0; i < bindings; ++i)
        slots[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                  .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo set = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = (uint32_t)bindings, .pBindings = slots};
    VkResult r = ctx->f.CreateDescriptorSetLayout(ctx->device, &set, NULL, &p->set_layout);
    VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = push_bytes};
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                         .pSetLayouts = &p->set_layout, .pushConstantRangeCount = push_bytes ? 1 : 0,
                                         .pPushConstantRanges = &range};
    if (r == VK_SUCCESS) r = ctx->f.CreatePipelineLayout(ctx->device, &layout, NULL, &p->layout);
    VkShaderModule module = VK_NULL_HANDLE;
    VkShaderModuleCreateInfo shader = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = code_bytes, .pCode = code};
    if (r == VK_SUCCESS) r = ctx->f.CreateShaderModule(ctx->device, &shader, NULL, &module);
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module, .pName = "main"},
        .layout = p->layout};
    if (r == VK_SUCCESS) r = ctx->f.CreateComputePipelines(ctx->device, VK_NULL_HANDLE, 1, &info, NULL, &p->pipeline);
    if (module) ctx->f.DestroyShaderModule(ctx->device, module, NULL);
    if (r != VK_SUCCESS) {
        if (p->layout) ctx->f.DestroyPipelineLayout(ctx->device, p->layout, NULL);
        if (p->set_layout) ctx->f.DestroyDescriptorSetLayout(ctx->device, p->set_layout, NULL);
        free(p);
        failed(reason, reason_size, "creating a compute pipeline", r);
        return NULL;
    }
    return p;
}

int ds_vk_dispatch(ds_vk_context *ctx, ds_vk_pipeline *pipeline, const ds_vk_binding *bindings, int binding_count,
                   const void *push, uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z,
                   char *reason, size_t reason_size) {
    if (binding_count != pipeline->bindings) {
        snprintf(reason, reason_size, "Vulkan: the pipeline takes %d buffers, given %d", pipeline->bindings, binding_count);
        return -1;
    }
    VkDescriptorSetAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = ctx->descriptors,
                                         .descriptorSetCount = 1, .pSetLayouts = &pipeline->set_layout};
    VkDescriptorSet set;
    VkResult r = ctx->f.AllocateDescriptorSets(ctx->device, &alloc, &set);
    if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) {
        // The pool is spent: run what was recorded (which frees its sets), then go on in a new command buffer.
        // The arena stays as it is: this dispatch and later ones may bind what was staged for them.
        if (submit(ctx, 0, reason, reason_size) != 0) return -1;
        r = ctx->f.AllocateDescriptorSets(ctx->device, &alloc, &set);
    }
    if (r != VK_SUCCESS) return failed(reason, reason_size, "vkAllocateDescriptorSets", r);
    VkDescriptorBufferInfo infos[MAX_BINDINGS];
    VkWriteDescriptorSet writes[MAX_BINDINGS];
    for (int i = 0; i < binding_count; ++i) {
        infos[i] = (VkDescriptorBufferInfo){.buffer = bindings[i].buffer->buffer, .offset = bindings[i].offset,
                                            .range = bindings[i].range};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = (uint32_t)i,
                                           .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[i]};
    }
    ctx->f.UpdateDescriptorSets(ctx->device, (uint32_t)binding_count, writes, 0, NULL);
    if (begin_if_needed(ctx, reason, reason_size) != 0) return -1;
    ctx->f.CmdBindPipeline(ctx->commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
    ctx->f.CmdBindDescriptorSets(ctx->commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->layout, 0, 1, &set, 0, NULL);
    if (push_bytes) ctx->f.CmdPushConstants(ctx->commands, pipeline->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    ctx->f.CmdDispatch(ctx->commands, groups_x, groups_y, groups_z);
    return 0;
}

void ds_vk_barrier(ds_vk_context *ctx) {
    if (!ctx->recording) return;
    // Every earlier shader write or copy before every later shader access or copy (reads after writes and
    // writes after reads alike: a buffer is often read by one op and overwritten by the next).
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                                VK_ACCESS_TRANSFER_WRITE_BIT};
    const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    ctx->f.CmdPipelineBarrier(ctx->commands, stages, stages, 0, 1, &barrier, 0, NULL, 0, NULL);
}

int ds_vk_stage(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_binding *where, char *reason, size_t reason_size) {
    uint64_t need = (count + 255) & ~(uint64_t)255;
    if (need == 0) need = 256;
    int chunk = -1;
    for (int i = 0; i < ctx->arena_chunks && chunk < 0; ++i)
        if (ds_vk_buffer_size(ctx->arena[i]) - ctx->arena_used[i] >= need) chunk = i;
    if (chunk < 0) {
        // A new chunk (never a submit here: what was staged for the dispatches not yet recorded must stay).
        ds_vk_buffer **chunks = realloc(ctx->arena, (size_t)(ctx->arena_chunks + 1) * sizeof(*chunks));
        if (chunks) ctx->arena = chunks;
        uint64_t *used = realloc(ctx->arena_used, (size_t)(ctx->arena_chunks + 1) * sizeof(*used));
        if (used) ctx->arena_used = used;
        if (!chunks || !used) { snprintf(reason, reason_size, "out of memory"); return -1; }
        uint64_t size = need > ARENA_CHUNK_BYTES ? need : ARENA_CHUNK_BYTES;
        ds_vk_buffer *b = ds_vk_buffer_create(ctx, size, DS_VK_HOST_VISIBLE, reason, reason_size);
        if (!b) return -1;
        if (!b->mapped) {
            ds_vk_buffer_destroy(ctx, b);
            snprintf(reason, reason_size, "Vulkan: a host-visible buffer could not be mapped");
            return -1;
        }
        chunk = ctx->arena_chunks++;
        ctx->arena[chunk] = b;
        ctx->arena_used[chunk] = 0;
    }
    where->buffer = ctx->arena[chunk];
    where->offset = ctx->arena_used[chunk];
    where->range = need;
    if (bytes) memcpy((char *)ctx->arena[chunk]->mapped + where->offset, bytes, count);
    ctx->arena_used[chunk] += need;
    return 0;
}

int ds_vk_copy(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, ds_vk_buffer *to, uint64_t to_offset, uint64_t count,
               char *reason, size_t reason_size) {
    if (count == 0) return 0;
    if (begin_if_needed(ctx, reason, reason_size) != 0) return -1;
    VkBufferCopy region = {.srcOffset = from_offset, .dstOffset = to_offset, .size = count};
    ctx->f.CmdCopyBuffer(ctx->commands, from->buffer, to->buffer, 1, &region);
    return 0;
}

int ds_vk_upload(ds_vk_context *ctx, const void *bytes, uint64_t count, ds_vk_buffer *to, uint64_t to_offset,
                 char *reason, size_t reason_size) {
    ds_vk_binding staged;
    if (ds_vk_stage(ctx, bytes, count, &staged, reason, reason_size) != 0) return -1;
    return ds_vk_copy(ctx, staged.buffer, staged.offset, to, to_offset, count, reason, reason_size);
}

int ds_vk_host_copy_after_submit(ds_vk_context *ctx, const ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                                 char *reason, size_t reason_size) {
    if (!from->mapped) {
        snprintf(reason, reason_size, "Vulkan: a copy to the host from memory the host cannot see");
        return -1;
    }
    if (ctx->pending_count == ctx->pending_capacity) {
        int capacity = ctx->pending_capacity ? 2 * ctx->pending_capacity : 64;
        pending_copy *grown = realloc(ctx->pending, (size_t)capacity * sizeof(pending_copy));
        if (!grown) { snprintf(reason, reason_size, "out of memory"); return -1; }
        ctx->pending = grown;
        ctx->pending_capacity = capacity;
    }
    ctx->pending[ctx->pending_count++] = (pending_copy){.from = (const char *)from->mapped + from_offset, .to = to, .bytes = count};
    return 0;
}

int ds_vk_download(ds_vk_context *ctx, ds_vk_buffer *from, uint64_t from_offset, void *to, uint64_t count,
                   char *reason, size_t reason_size) {
    ds_vk_binding staged;
    if (ds_vk_stage(ctx, NULL, count, &staged, reason, reason_size) != 0) return -1;
    if (ds_vk_copy(ctx, from, from_offset, staged.buffer, staged.offset, count, reason, reason_size) != 0) return -1;
    return ds_vk_host_copy_after_submit(ctx, staged.buffer, staged.offset, to, count, reason, reason_size);
}

// After a submit's wait (or with nothing recorded): the copies to the host, and the arena is free again.
static void finish_copies(ds_vk_context *ctx, int free_arena) {
    if (free_arena) for (int i = 0; i < ctx->arena_chunks; ++i) ctx->arena_used[i] = 0;
    for (int i = 0; i < ctx->pending_count; ++i) memcpy(ctx->pending[i].to, ctx->pending[i].from, ctx->pending[i].bytes);
    ctx->pending_count = 0;
}

int ds_vk_submit(ds_vk_context *ctx, char *reason, size_t reason_size) { return submit(ctx, 1, reason, reason_size); }

static int submit(ds_vk_context *ctx, int free_arena, char *reason, size_t reason_size) {
    if (!ctx->recording) {
        finish_copies(ctx, free_arena);
        return 0;
    }
    ctx->recording = 0;
    // Shader writes made visible to the host's reads of mapped memory after the wait.
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    ctx->f.CmdPipelineBarrier(ctx->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                              VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
    VkResult r = ctx->f.EndCommandBuffer(ctx->commands);
    if (r != VK_SUCCESS) return failed(reason, reason_size, "vkEndCommandBuffer", r);
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &ctx->commands};
    ctx->f.ResetFences(ctx->device, 1, &ctx->fence);
    if ((r = ctx->f.QueueSubmit(ctx->queue, 1, &submit, ctx->fence)) != VK_SUCCESS) return failed(reason, reason_size, "vkQueueSubmit", r);
    r = ctx->f.WaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    ctx->submits += 1;
    ctx->f.ResetCommandBuffer(ctx->commands, 0);
    ctx->f.ResetDescriptorPool(ctx->device, ctx->descriptors, 0);
    if (r != VK_SUCCESS) {
        // What the device wrote is lost: no copy to the host is made from it.
        ctx->pending_count = 0;
        for (int i = 0; i < ctx->arena_chunks; ++i) ctx->arena_used[i] = 0;
        return failed(reason, reason_size, "waiting for the GPU (vkWaitForFences)", r);
    }
    finish_copies(ctx, free_arena);
    return 0;
}

#endif
