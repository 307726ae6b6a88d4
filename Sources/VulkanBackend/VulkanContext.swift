// One Vulkan device opened for compute (CVulkan's ds_vk_context): a pipeline per weight type made once, the
// weight matrices resident in device memory (uploaded on first use while they fit the GPU budget), and
// the recording of dispatches and copies into one command buffer, submitted when the host needs results.
//
// Weights are bound in parts where a matrix is larger than one storage-buffer binding may span (lavapipe:
// 128 MiB), and activations likewise, so any shape runs on any device.

import CKernels
import CVulkan
import Foundation
import GGUF
import Kernels

public struct VulkanError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
    init(reason: [CChar]) { description = String(cString: reason) }
}

public final class VulkanContext: @unchecked Sendable {
    public let device: VulkanDevice
    /// Bytes of weights this context may keep on the device.
    public let budgetBytes: Int
    let handle: OpaquePointer
    let alignment: Int
    /// One caller at a time records and submits (sessions of a model share the context and its weights); a
    /// backend holds it through a pass whose ops it records into one command buffer (so it is recursive).
    let lock = NSRecursiveLock()
    private var pipelines: [GGMLType: OpaquePointer] = [:]
    /// The pipelines of the shaders besides the products, by name (made on first use).
    var shaderPipelines: [String: OpaquePointer] = [:]
    /// Device copies of the KV page pools of the sessions using this context (DeviceKV.swift).
    var kvCopies: [DeviceKV] = []
    /// Device copies by the matrix's address and shape: the matrices a context sees must not change while it
    /// lives (a loaded model's mapped weights; streamed expert slots are not given to a device backend).
    private var resident: [MatrixKey: OpaquePointer] = [:]
    /// Matrices that did not fit the budget (their products run on the CPU).
    private var refused: Set<MatrixKey> = []
    public private(set) var residentBytes = 0
    /// The plan of what lives here (nil: matrices are uploaded as they come while they fit the budget).
    private var residency: DeviceResidency?
    /// Per region of the plan: products that used it since the last rebalance (halved at each), and the
    /// matrix uploaded for it.
    private var uses: [Int] = []
    private var regionMatrix: [MatrixKey?] = []
    /// Most bytes rebalance moves to the device per step.
    public var migrationBytesPerStep: Int
    /// The i-quants' codebooks (ds_iq_gpu_codebook), bound to every product as binding 3.
    let codebook: OpaquePointer

    /// The weight types with a product kernel (the others' products run on the CPU).
    public static let productTypes: [GGMLType: String] = [
        .f32: "f32", .f16: "f16", .bf16: "bf16", .q4_0: "q4_0", .q4_1: "q4_1", .q5_0: "q5_0", .q5_1: "q5_1", .q8_0: "q8_0",
        .q2_K: "q2_k", .q3_K: "q3_k", .q4_K: "q4_k", .q5_K: "q5_k", .q6_K: "q6_k",
        .iq2_xxs: "iq2_xxs", .iq2_xs: "iq2_xs", .iq2_s: "iq2_s", .iq3_xxs: "iq3_xxs", .iq3_s: "iq3_s", .iq1_s: "iq1_s", .iq1_m: "iq1_m",
        .iq4_nl: "iq4_nl", .iq4_xs: "iq4_xs", .mxfp4: "mxfp4",
    ]

    /// Whether the device was opened with integer dot products (the int-dot product kernels can run).
    public let integerDotAvailable: Bool
    /// Products of the 32-element block types by integer dot products over 8-bit activations (on by default
    /// where the device does them in hardware; a test may turn them on anywhere they run).
    public var integerDotProducts: Bool {
        didSet { if !integerDotAvailable { integerDotProducts = false } }
    }
    /// Input rows quantized for int-dot products in the current run of products (VulkanIntegerDot.swift).
    var quantizedInputs: [QuantizedRows] = []
    var quantizedBuffer: OpaquePointer?
    var quantizedWordsUsed = 0
    /// Quantizing dispatches recorded (tests).
    public internal(set) var inputsQuantized = 0
    /// Buffers the recording may still read, freed after the next submit.
    var retiredBuffers: [OpaquePointer] = []

    /// Most bytes one binding spans: the device's limit, or less where a test asks (to exercise the parts).
    public let bindingLimit: Int

    /// Opens device `index` (VulkanDevices.probe's numbering); `budgetBytes` nil: 90% of its device-local memory.
    /// `bindingLimit`: bind weights and activations in parts of at most this many bytes (nil: the device's limit).
    public init(deviceIndex index: Int, budgetBytes: Int? = nil, bindingLimit: Int? = nil) throws {
        var reason = [CChar](repeating: 0, count: 512)
        var info = ds_vulkan_device()
        guard let h = ds_vk_create(Int32(index), &info, &reason, reason.count) else { throw VulkanError(reason: reason) }
        handle = h
        device = VulkanDevices.device(info, index: index)
        guard device.subgroupArithmetic else {
            ds_vk_destroy(h)
            throw VulkanError("Vulkan: \(device.name) has no subgroup arithmetic in compute shaders, which the product kernels need")
        }
        alignment = Int(ds_vk_offset_alignment(h))
        self.budgetBytes = budgetBytes ?? device.deviceLocalBytes / 10 * 9
        self.bindingLimit = min(device.maxStorageBufferRange, bindingLimit ?? Int.max)
        migrationBytesPerStep = max(16 << 20, min(256 << 20, self.budgetBytes / 16))
        integerDotAvailable = ds_vk_integer_dot_enabled(h) != 0
        integerDotProducts = integerDotAvailable && device.integerDotProductAccelerated
        var table = [UInt8](repeating: 0, count: Int(DS_IQ_CODEBOOK_BYTES))
        ds_iq_gpu_codebook(&table)
        guard let cb = ds_vk_buffer_create(h, UInt64(table.count), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count),
              ds_vk_buffer_write(h, cb, 0, table, UInt64(table.count), &reason, reason.count) == 0 else {
            ds_vk_destroy(h)
            throw VulkanError(reason: reason)
        }
        codebook = cb
    }

    deinit {
        for copy in kvCopies { copy.destroy(handle) }
        for buffer in resident.values { ds_vk_buffer_destroy(handle, buffer) }
        for buffer in retiredBuffers + (quantizedBuffer.map { [$0] } ?? []) { ds_vk_buffer_destroy(handle, buffer) }
        ds_vk_buffer_destroy(handle, codebook)
        // Pipelines live as long as the device; destroying the device frees them with it.
        ds_vk_destroy(handle)
    }

    /// Submits since the context was opened.
    public var submitCount: Int { Int(ds_vk_submit_count(handle)) }

    // MARK: Weights

    /// Whether `w`'s products can run here: its type has a kernel and it is resident, or is uploaded now
    /// within the budget (`tokens`: rows the product takes, counted for migration). Call with the lock held.
    func holds(_ w: WeightMatrix, tokens: Int = 1) throws -> Bool {
        guard VulkanContext.productTypes[w.type] != nil, w.rows > 0, w.rowBytes > 0 else { return false }
        let key = MatrixKey(w)
        let bytes = w.rows * w.rowBytes
        var region: Int? = nil
        if let plan = residency {
            // Planned: only matrices inside a region planned on the device (counted, for migration).
            guard let i = plan.index(of: w.data, bytes: bytes) else { return false }
            uses[i] += max(1, tokens) * VulkanContext.useUnit
            guard plan.regions[i].onDevice else { return false }
            region = i
        }
        if resident[key] != nil { return true }
        if refused.contains(key) { return false }
        let allocation = DeviceResidency.allocatedBytes(bytes)
        guard residentBytes + allocation <= budgetBytes, allocation <= device.maxAllocation || device.maxAllocation == 0 else {
            refused.insert(key)
            return false
        }
        var reason = [CChar](repeating: 0, count: 512)
        guard let buffer = ds_vk_buffer_create(handle, UInt64(allocation), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
            // Out of device memory is a placement outcome, not an error: this matrix stays on the CPU.
            refused.insert(key)
            return false
        }
        guard ds_vk_buffer_write(handle, buffer, 0, w.data, UInt64(bytes), &reason, reason.count) == 0 else {
            ds_vk_buffer_destroy(handle, buffer)
            throw VulkanError(reason: reason)
        }
        resident[key] = buffer
        residentBytes += allocation
        if let region { regionMatrix[region] = key }
        return true
    }

    /// Frees `w`'s device copy (a probe's). Lock held.
    func drop(_ w: WeightMatrix) { release(MatrixKey(w)) }

    /// Frees the device copy of `key`, if there is one. Lock held.
    private func release(_ key: MatrixKey) {
        guard let buffer = resident.removeValue(forKey: key) else { return }
        ds_vk_buffer_destroy(handle, buffer)
        residentBytes -= DeviceResidency.allocatedBytes(key.bytes)
    }

    // MARK: Placement

    /// Follows `plan` from now on: matrices outside its device regions are dropped from the device.
    public func place(_ plan: DeviceResidency) {
        lock.lock()
        defer { lock.unlock() }
        for key in resident.keys where plan.index(of: key.address, bytes: key.bytes).map({ !plan.regions[$0].onDevice }) ?? true {
            release(key)
        }
        refused.removeAll()
        residency = plan
        uses = [Int](repeating: 0, count: plan.regions.count)
        regionMatrix = [MatrixKey?](repeating: nil, count: plan.regions.count)
        for key in resident.keys { if let i = plan.index(of: key.address, bytes: key.bytes) { regionMatrix[i] = key } }
    }

    /// The plan as it stands (nil: none).
    public var placement: DeviceResidency? {
        lock.lock()
        defer { lock.unlock() }
        return residency
    }

    /// A use of a region: one token through it (fixed point, so halving keeps some history).
    static let useUnit = 16

    /// Between steps: the migratable regions used most since the last call move to the device in place of
    /// those used least, while the planned bytes stay within the budget and at most migrationBytesPerStep
    /// move; then the counts halve (recent use weighs most). A region displaces another only when it was used
    /// more than twice as much plus one token, so experts do not swap back and forth under even routing.
    /// Returns the bytes planned onto the device.
    @discardableResult
    public func rebalance() -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard var plan = residency else { return 0 }
        defer {
            for i in uses.indices { uses[i] >>= 1 }
            residency = plan
        }
        let candidates = plan.regions.indices.filter {
            plan.regions[$0].migratable && !plan.regions[$0].onDevice && uses[$0] > VulkanContext.useUnit
        }.sorted { uses[$0] > uses[$1] }
        guard !candidates.isEmpty else { return 0 }
        var victims: [Int]? = nil
        var free = budgetBytes - plan.deviceBytes, moved = 0, next = 0
        for c in candidates {
            let size = DeviceResidency.allocatedBytes(plan.regions[c].bytes)
            guard moved + size <= migrationBytesPerStep else { break }
            if free < size && victims == nil {
                victims = plan.regions.indices.filter { plan.regions[$0].migratable && plan.regions[$0].onDevice }.sorted { uses[$0] < uses[$1] }
            }
            while free < size, let list = victims, next < list.count, uses[c] > 2 * uses[list[next]] + VulkanContext.useUnit {
                let v = list[next]
                next += 1
                plan.setOnDevice(v, false)
                free += DeviceResidency.allocatedBytes(plan.regions[v].bytes)
                if let key = regionMatrix[v] {
                    release(key)
                    regionMatrix[v] = nil
                }
            }
            guard free >= size else { break }
            plan.setOnDevice(c, true)
            free -= size
            moved += size
        }
        return moved
    }

    /// The device buffer holding `w`, if resident.
    func residentBuffer(_ w: WeightMatrix) -> OpaquePointer? { resident[MatrixKey(w)] }

    func pipeline(for type: GGMLType) throws -> OpaquePointer {
        if let p = pipelines[type] { return p }
        guard let name = VulkanContext.productTypes[type] else { throw VulkanError("Vulkan: no product kernel for \(type)") }
        var bytes = 0
        guard let words = ds_vulkan_spirv("matmul_\(name)", &bytes) else { throw VulkanError("Vulkan: shader matmul_\(name) is missing") }
        var reason = [CChar](repeating: 0, count: 512)
        guard let p = ds_vk_pipeline_create(handle, words, bytes, 4, UInt32(MemoryLayout<ProductParameters>.size), &reason,
                                            reason.count) else { throw VulkanError(reason: reason) }
        pipelines[type] = p
        return p
    }

    // MARK: Activations

    /// A binding of bytes start ..< start + length of `buffer`: its offset aligned down as the device asks,
    /// the distance from there to `start` (the skew a shader adds), the range rounded up to whole words.
    func binding(_ buffer: OpaquePointer, start: Int, length: Int) -> (ds_vk_binding, skew: Int) {
        let offset = start / alignment * alignment
        let size = Int(ds_vk_buffer_size(buffer))
        let range = min((start - offset + length + 3) & ~3, size - offset)
        return (ds_vk_binding(buffer: buffer, offset: UInt64(offset), range: UInt64(range)), start - offset)
    }

    /// Records one dispatch; anything but a product or the quantizing for one (`keepsQuantizedInputs`) may
    /// write rows that were quantized, so they are forgotten.
    func dispatch(_ pipeline: OpaquePointer, _ bindings: [ds_vk_binding], push: UnsafeRawBufferPointer, groups: (Int, Int, Int),
                  keepsQuantizedInputs: Bool = false) throws {
        if !keepsQuantizedInputs { forgetQuantizedInputs() }
        var reason = [CChar](repeating: 0, count: 512)
        let status = bindings.withUnsafeBufferPointer { b in
            ds_vk_dispatch(handle, pipeline, b.baseAddress, Int32(b.count), push.baseAddress, UInt32(push.count), UInt32(groups.0),
                           UInt32(groups.1), UInt32(groups.2), &reason, reason.count)
        }
        guard status == 0 else { throw VulkanError(reason: reason) }
    }

    func submit() throws {
        var reason = [CChar](repeating: 0, count: 512)
        forgetQuantizedInputs()
        guard ds_vk_submit(handle, &reason, reason.count) == 0 else { throw VulkanError(reason: reason) }
        for buffer in retiredBuffers { ds_vk_buffer_destroy(handle, buffer) }
        retiredBuffers.removeAll()
    }

    /// The most workgroups a dispatch takes along one dimension (Vulkan guarantees at least this many).
    static let maxGroups = 65535
}

struct MatrixKey: Hashable {
    let address: UnsafeRawPointer
    let type: GGMLType
    let rows: Int
    let cols: Int
    let bytes: Int
    init(_ w: WeightMatrix) { address = w.data; type = w.type; rows = w.rows; cols = w.cols; bytes = w.rows * w.rowBytes }
}

extension Int {
    var nextPowerOfTwoOrSelf: Int {
        guard self > 1 else { return 1 }
        return 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
