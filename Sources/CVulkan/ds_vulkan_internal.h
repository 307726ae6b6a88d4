// ds_vulkan_internal.h — what ds_vulkan.c and ds_vulkan_compute.c share: whether the Vulkan headers were
// there at build time (DS_HAVE_VULKAN_HEADERS), the loader, the instance, a device's description.
#ifndef DS_VULKAN_INTERNAL_H
#define DS_VULKAN_INTERNAL_H

#include "ds_vulkan.h"

#if defined(__has_include)
#if __has_include(<vulkan/vulkan.h>)
#define DS_HAVE_VULKAN_HEADERS 1
#endif
#endif

#ifdef DS_HAVE_VULKAN_HEADERS
#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>
#include <dlfcn.h>

// dlopen of the platform's Vulkan loader; NULL when there is none.
void *ds_vulkan_open_loader(void);
// A Vulkan 1.2 instance (with portability enumeration where the loader knows it).
VkResult ds_vulkan_create_instance(PFN_vkGetInstanceProcAddr get, VkInstance *instance);
void ds_vulkan_describe(VkPhysicalDevice physical, PFN_vkGetInstanceProcAddr get, VkInstance instance, ds_vulkan_device *d);
#endif

#endif
