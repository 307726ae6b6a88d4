// A device copy of a KV page pool's arenas (F32 or F16 rows), shared by the sessions of a context that use the pool:
// the same pages, page tables and offsets as the host's, so prefix sharing, budgets, the disk tier and
// session files stay the host pool's business.
//
// Which side is current, per page of each group slot:
//   rows the device stores   are copied to the host's arena at the storing backend's next host access
//                            (write-through), so the host's pages are whole whenever the host looks;
//   rows the host writes     (CPU stores, copy-on-write copies, disk reads, session loads) bump the page's
//                            host write generation (KVPagePool); a page is uploaded again before the device
//                            reads it when the generation it was taken at is older.
// The context's lock is held by every caller.

import CVulkan
import KVCache

final class DeviceKV {
    weak var pool: KVPagePool?
    private let slots: Int
    private var kBuffers: [OpaquePointer?], vBuffers: [OpaquePointer?]
    /// Per slot and page: 1 + the host write generation the device's copy was taken at (0: never taken).
    private var takenAt: [[UInt64]]
    let kBytes: Int, vBytes: Int
    /// Bytes of one page of one slot's K (V) arena.
    let kPageBytes: Int, vPageBytes: Int

    init(pool: KVPagePool) {
        self.pool = pool
        slots = pool.groups.layersPerGroup
        kBuffers = Array(repeating: nil, count: slots)
        vBuffers = Array(repeating: nil, count: slots)
        takenAt = Array(repeating: Array(repeating: 0, count: pool.capacity), count: slots)
        kBytes = pool.kArenaBytes; vBytes = pool.vArenaBytes
        kPageBytes = pool.kPageStride * pool.shape.type.unitBytes
        vPageBytes = pool.vPageStride * pool.shape.type.unitBytes
    }

    /// Whether a pool's rows can live on this context's device: F32 rows, F16 rows of an even number of
    /// elements (whole words) or Q8_0 rows of whole blocks, with separate V arenas, each arena within one
    /// binding.
    static func suits(_ pool: KVPagePool, bindingLimit: Int) -> Bool {
        let shape = pool.shape
        let type: Bool
        switch shape.type {
        case .f32: type = true
        case .f16: type = shape.kRowFloats % 2 == 0 && shape.vRowFloats % 2 == 0
        case .q8_0: type = shape.kRowFloats % 32 == 0 && shape.vRowFloats % 32 == 0
        }
        return type && shape.vRowFloats > 0 && pool.kArenaBytes <= bindingLimit && pool.vArenaBytes <= bindingLimit
    }

    func destroy(_ handle: OpaquePointer) {
        for b in kBuffers + vBuffers { if let b { ds_vk_buffer_destroy(handle, b) } }
        kBuffers = Array(repeating: nil, count: slots)
        vBuffers = Array(repeating: nil, count: slots)
    }

    /// The device's K and V arenas of `slot` (made on first use).
    func buffers(_ slot: Int, _ context: VulkanContext) throws -> (k: OpaquePointer, v: OpaquePointer) {
        if let k = kBuffers[slot], let v = vBuffers[slot] { return (k, v) }
        var reason = [CChar](repeating: 0, count: 512)
        guard let k = ds_vk_buffer_create(context.handle, UInt64(kBytes), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
            throw VulkanError(reason: reason)
        }
        guard let v = ds_vk_buffer_create(context.handle, UInt64(vBytes), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
            ds_vk_buffer_destroy(context.handle, k)
            throw VulkanError(reason: reason)
        }
        kBuffers[slot] = k; vBuffers[slot] = v
        return (k, v)
    }

    /// Uploads page `page` of `slot` (K and V rows) if the host wrote it since the device's copy was taken.
    func take(_ slot: Int, page: Int32, _ context: VulkanContext) throws {
        guard let pool, page >= 0 else { return }
        let current = UInt64(pool.hostWriteGeneration(page)) + 1
        guard takenAt[slot][Int(page)] != current else { return }
        let (k, v) = try buffers(slot, context)
        var reason = [CChar](repeating: 0, count: 512)
        let kOffset = Int(page) * kPageBytes, vOffset = Int(page) * vPageBytes
        guard ds_vk_upload(context.handle, pool.kArena(slot: slot) + kOffset, UInt64(kPageBytes), k, UInt64(kOffset), &reason, reason.count) == 0,
              ds_vk_upload(context.handle, pool.vArena(slot: slot) + vOffset, UInt64(vPageBytes), v, UInt64(vOffset), &reason, reason.count) == 0
        else { throw VulkanError(reason: reason) }
        takenAt[slot][Int(page)] = current
    }
}

extension VulkanContext {
    /// The device copy of `pool` (made on first use; copies of pools that are gone are freed), or nil where
    /// its rows cannot live here (DeviceKV.suits). Lock held.
    func deviceKV(for pool: KVPagePool) -> DeviceKV? {
        for copy in kvCopies where copy.pool == nil { copy.destroy(handle) }
        kvCopies.removeAll { $0.pool == nil }
        if let copy = kvCopies.first(where: { $0.pool === pool }) { return copy }
        guard DeviceKV.suits(pool, bindingLimit: bindingLimit) else { return nil }
        let copy = DeviceKV(pool: pool)
        kvCopies.append(copy)
        return copy
    }
}
