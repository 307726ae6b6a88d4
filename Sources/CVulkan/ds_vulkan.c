// ds_vulkan.c — opens the Vulkan loader at run time and describes its devices (ds_vulkan.h).

#include "ds_vulkan_internal.h"

#include <stdio.h>
#include <string.h>

#ifndef DS_HAVE_VULKAN_HEADERS

int ds_vulkan_devices(ds_vulkan_device *devices, int capacity, char *reason, size_t reason_size) {
    (void)devices; (void)capacity;
    snprintf(reason, reason_size, "this build has no Vulkan support (the Vulkan headers, e.g. Debian's libvulkan-dev, were not found when it was built)");
    return -1;
}

#else

void *ds_vulkan_open_loader(void) {
    static const char *const names[] = {
#if defined(__APPLE__)
        "libvulkan.1.dylib", "libvulkan.dylib", "libMoltenVK.dylib",
#else
        "libvulkan.so.1", "libvulkan.so",
#endif
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        void *handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (handle) return handle;
    }
    return NULL;
}

VkResult ds_vulkan_create_instance(PFN_vkGetInstanceProcAddr get, VkInstance *instance) {
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)get(NULL, "vkCreateInstance");
    if (!create) return VK_ERROR_INITIALIZATION_FAILED;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "dwarfstar",
                             .apiVersion = VK_MAKE_API_VERSION(0, 1, 2, 0)};
    // Portability enumeration lists MoltenVK's devices (Apple) where the loader knows the extension.
    const char *portability[] = {"VK_KHR_portability_enumeration"};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                 .flags = VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR,
                                 .enabledExtensionCount = 1, .ppEnabledExtensionNames = portability};
    VkResult result = create(&info, NULL, instance);
    if (result == VK_ERROR_EXTENSION_NOT_PRESENT) {
        info.flags = 0;
        info.enabledExtensionCount = 0;
        result = create(&info, NULL, instance);
    }
    return result;
}

void ds_vulkan_describe(VkPhysicalDevice physical, PFN_vkGetInstanceProcAddr get, VkInstance instance, ds_vulkan_device *d) {
    PFN_vkGetPhysicalDeviceProperties2 properties2 = (PFN_vkGetPhysicalDeviceProperties2)get(instance, "vkGetPhysicalDeviceProperties2");
    PFN_vkGetPhysicalDeviceFeatures2 features2 = (PFN_vkGetPhysicalDeviceFeatures2)get(instance, "vkGetPhysicalDeviceFeatures2");
    PFN_vkGetPhysicalDeviceMemoryProperties memory = (PFN_vkGetPhysicalDeviceMemoryProperties)get(instance, "vkGetPhysicalDeviceMemoryProperties");
    PFN_vkEnumerateDeviceExtensionProperties extensions = (PFN_vkEnumerateDeviceExtensionProperties)get(instance, "vkEnumerateDeviceExtensionProperties");
    memset(d, 0, sizeof(*d));

    VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties subgroup = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &driver};
    VkPhysicalDeviceShaderIntegerDotProductProperties dot = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES, .pNext = &subgroup};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &dot};
    properties2(physical, &props);
    snprintf(d->name, sizeof(d->name), "%s", props.properties.deviceName);
    snprintf(d->driver, sizeof(d->driver), "%s", driver.driverName);
    d->api_version = props.properties.apiVersion;
    d->vendor_id = props.properties.vendorID;
    d->device_id = props.properties.deviceID;
    switch (props.properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d->device_type = 1; break;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d->device_type = 2; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: d->device_type = 3; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: d->device_type = 4; break;
    default: d->device_type = 0; break;
    }
    d->subgroup_size = subgroup.subgroupSize;
    d->subgroup_arithmetic = (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) &&
                             (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT);
    d->max_workgroup_invocations = props.properties.limits.maxComputeWorkGroupInvocations;
    d->max_shared_memory = props.properties.limits.maxComputeSharedMemorySize;
    d->max_storage_buffer_range = props.properties.limits.maxStorageBufferRange;
    d->integer_dot_product_accelerated = dot.integerDotProduct4x8BitPackedSignedAccelerated == VK_TRUE;

    VkPhysicalDeviceMaintenance3Properties maintenance = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 props3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &maintenance};
    properties2(physical, &props3);
    d->max_allocation = maintenance.maxMemoryAllocationSize;

    VkPhysicalDeviceShaderIntegerDotProductFeatures dot_features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceVulkan12Features v12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &dot_features};
    VkPhysicalDeviceVulkan11Features v11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &v12};
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &v11};
    features2(physical, &features);
    d->shader_float16 = v12.shaderFloat16 == VK_TRUE;
    d->shader_int8 = v12.shaderInt8 == VK_TRUE;
    d->storage_8bit = v12.storageBuffer8BitAccess == VK_TRUE;
    d->storage_16bit = v11.storageBuffer16BitAccess == VK_TRUE;
    d->integer_dot_product = dot_features.shaderIntegerDotProduct == VK_TRUE;
    if (!d->integer_dot_product && extensions) {
        uint32_t count = 0;
        extensions(physical, NULL, &count, NULL);
        VkExtensionProperties list[512];
        if (count > 512) count = 512;
        extensions(physical, NULL, &count, list);
        for (uint32_t i = 0; i < count; ++i)
            if (strcmp(list[i].extensionName, "VK_KHR_shader_integer_dot_product") == 0) d->integer_dot_product = 1;
    }

    VkPhysicalDeviceMemoryProperties heaps;
    memory(physical, &heaps);
    for (uint32_t i = 0; i < heaps.memoryHeapCount; ++i)
        if ((heaps.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && heaps.memoryHeaps[i].size > d->device_local_bytes)
            d->device_local_bytes = heaps.memoryHeaps[i].size;
    for (uint32_t i = 0; i < heaps.memoryTypeCount; ++i) {
        VkMemoryPropertyFlags f = heaps.memoryTypes[i].propertyFlags;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) {
            uint32_t heap = heaps.memoryTypes[i].heapIndex;
            // A small host-visible window of a discrete GPU (resizable-BAR-less 256 MiB) is not unified memory.
            if (heaps.memoryHeaps[heap].size >= d->device_local_bytes / 2) d->unified_memory = 1;
        }
    }
}

int ds_vulkan_devices(ds_vulkan_device *devices, int capacity, char *reason, size_t reason_size) {
    void *loader = ds_vulkan_open_loader();
    if (!loader) {
        snprintf(reason, reason_size, "no Vulkan loader (libvulkan) on this machine: %s", dlerror());
        return -1;
    }
    PFN_vkGetInstanceProcAddr get = (PFN_vkGetInstanceProcAddr)dlsym(loader, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance create = get ? (PFN_vkCreateInstance)get(NULL, "vkCreateInstance") : NULL;
    if (!create) {
        snprintf(reason, reason_size, "the Vulkan loader has no vkGetInstanceProcAddr / vkCreateInstance");
        dlclose(loader);
        return -1;
    }
    VkInstance instance = VK_NULL_HANDLE;
    VkResult result = ds_vulkan_create_instance(get, &instance);
    if (result != VK_SUCCESS) {
        snprintf(reason, reason_size, "vkCreateInstance failed (VkResult %d): no Vulkan driver is installed (Debian: mesa-vulkan-drivers)", (int)result);
        dlclose(loader);
        return -1;
    }
    PFN_vkEnumeratePhysicalDevices enumerate = (PFN_vkEnumeratePhysicalDevices)get(instance, "vkEnumeratePhysicalDevices");
    PFN_vkDestroyInstance destroy = (PFN_vkDestroyInstance)get(instance, "vkDestroyInstance");
    uint32_t count = 0;
    if (!enumerate || enumerate(instance, &count, NULL) != VK_SUCCESS || count == 0) {
        snprintf(reason, reason_size, "the Vulkan loader found no device (no GPU driver; Debian's mesa-vulkan-drivers adds lavapipe, a CPU device)");
        if (destroy) destroy(instance, NULL);
        dlclose(loader);
        return -1;
    }
    VkPhysicalDevice physical[64];
    if (count > 64) count = 64;
    enumerate(instance, &count, physical);
    for (uint32_t i = 0; i < count && (int)i < capacity; ++i) ds_vulkan_describe(physical[i], get, instance, &devices[i]);
    destroy(instance, NULL);
    dlclose(loader);
    return (int)count;
}

#endif
