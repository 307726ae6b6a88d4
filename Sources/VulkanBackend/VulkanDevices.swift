// The Vulkan devices of this machine, as a compute backend sees them (the loader is opened at run time,
// so a machine without Vulkan runs the CPU path and says why in one line). The first piece of the
// Vulkan backend (issue 21): device selection and capability checks.

import CVulkan

public struct VulkanDevice: Sendable, Equatable {
    public enum Kind: String, Sendable { case other, integratedGPU = "integrated GPU", discreteGPU = "discrete GPU", virtualGPU = "virtual GPU", cpu = "CPU" }

    public var index: Int
    public var name: String
    public var driver: String
    /// Vulkan version the device supports, e.g. "1.3.230".
    public var apiVersion: String
    public var kind: Kind
    public var subgroupSize: Int
    /// Subgroup sums in compute shaders (the product kernels need them).
    public var subgroupArithmetic: Bool
    public var maxWorkgroupInvocations: Int
    public var maxSharedMemory: Int
    /// Bytes one storage-buffer binding may span (weights larger than this are bound in parts).
    public var maxStorageBufferRange: Int
    public var maxAllocation: Int
    public var deviceLocalBytes: Int
    /// Device-local memory the host can map: weights need no staging copy (integrated GPUs, Apple, CPUs).
    public var unifiedMemory: Bool
    public var float16: Bool
    public var int8: Bool
    public var storage8Bit: Bool
    public var storage16Bit: Bool
    public var integerDotProduct: Bool
    public var integerDotProductAccelerated: Bool

    /// One line for `dwarfstar devices` and the load message.
    public var summary: String {
        var features: [String] = []
        if float16 { features.append("fp16") }
        if int8 && storage8Bit { features.append("int8") }
        if integerDotProduct { features.append(integerDotProductAccelerated ? "int8 dot (hardware)" : "int8 dot") }
        if unifiedMemory { features.append("unified memory") }
        return "vulkan:\(index) \(name) (\(kind.rawValue), driver \(driver.isEmpty ? "?" : driver), Vulkan \(apiVersion)): "
            + "\(deviceLocalBytes >> 20) MiB device-local, subgroup \(subgroupSize), \(features.joined(separator: ", "))"
    }
}

public enum VulkanDevices {
    /// The devices, or why there are none to use (one line).
    public static func probe() -> Result<[VulkanDevice], VulkanUnavailable> {
        var reason = [CChar](repeating: 0, count: 512)
        var raw = [ds_vulkan_device](repeating: ds_vulkan_device(), count: 16)
        let count = Int(ds_vulkan_devices(&raw, Int32(raw.count), &reason, reason.count))
        guard count > 0 else { return .failure(VulkanUnavailable(reason: String(cString: reason))) }
        return .success((0..<min(count, raw.count)).map { VulkanDevices.device(raw[$0], index: $0) })
    }

    static func device(_ d: ds_vulkan_device, index: Int) -> VulkanDevice {
        func text<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let kinds: [VulkanDevice.Kind] = [.other, .integratedGPU, .discreteGPU, .virtualGPU, .cpu]
        let v = d.api_version
        return VulkanDevice(index: index, name: text(d.name), driver: text(d.driver),
                            apiVersion: "\(v >> 22 & 0x7F).\(v >> 12 & 0x3FF).\(v & 0xFFF)",
                            kind: kinds[Int(max(0, min(4, d.device_type)))], subgroupSize: Int(d.subgroup_size),
                            subgroupArithmetic: d.subgroup_arithmetic != 0,
                            maxWorkgroupInvocations: Int(d.max_workgroup_invocations), maxSharedMemory: Int(d.max_shared_memory),
                            maxStorageBufferRange: Int(d.max_storage_buffer_range), maxAllocation: Int(d.max_allocation),
                            deviceLocalBytes: Int(d.device_local_bytes), unifiedMemory: d.unified_memory != 0,
                            float16: d.shader_float16 != 0, int8: d.shader_int8 != 0, storage8Bit: d.storage_8bit != 0,
                            storage16Bit: d.storage_16bit != 0, integerDotProduct: d.integer_dot_product != 0,
                            integerDotProductAccelerated: d.integer_dot_product_accelerated != 0)
    }
}

public struct VulkanUnavailable: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}
