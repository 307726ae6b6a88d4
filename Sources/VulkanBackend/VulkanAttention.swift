// K/V stores and attention on the device, over the device copy of the session's KV pages (DeviceKV):
//   storeKV   copies each row of k and v into its page's row of the layer's device arenas (the page taken
//             from the host first where the host wrote it since), and the rows reach the host's arenas at
//             the next host access;
//   attend    Shaders/attend.comp over the pages the span shows (each taken from the host where stale).
// What the device cannot do here (another KV type, latent attention's values inside the keys, a layout
// without pages, heads too wide for the shader) runs on the CPU after a host access.

import CVulkan
import Kernels
import KVCache

/// attend.comp's push constants.
struct AttendParameters {
    var tokens: UInt32 = 0, start: UInt32 = 0, heads: UInt32 = 0, kvHeads: UInt32 = 0, keyDim: UInt32 = 0, valueDim: UInt32 = 0
    var qSkew: UInt32 = 0, qTokenStride: UInt32 = 0, qHeadStride: UInt32 = 0
    var outSkew: UInt32 = 0, outTokenStride: UInt32 = 0, outHeadStride: UInt32 = 0
    var kSkew: UInt32 = 0, kRowStride: UInt32 = 0, kHeadStride: UInt32 = 0, kPageStride: UInt32 = 0
    var vSkew: UInt32 = 0, vRowStride: UInt32 = 0, vHeadStride: UInt32 = 0, vPageStride: UInt32 = 0
    var pagesSkew: UInt32 = 0, pageShift: UInt32 = 0
    var spanKind: UInt32 = 0, spanSize: UInt32 = 0
    var scale: Float = 0, softcap: Float = 0
}

extension VulkanBackend {
    /// The device arenas' slot of the pool `kv` copies that a layout's K and V rows live in (nil: not there).
    private func deviceSlot(_ layout: Attention.Layout) -> Int? {
        guard let pool = kv?.pool, layout.kvType == .f32, layout.pages != nil else { return nil }
        return (0..<pool.groups.layersPerGroup).first { pool.kArena(slot: $0) == layout.k && pool.vArena(slot: $0) == layout.v }
    }

    // MARK: K/V stores

    public func storeKV(layer: Int, k: RowBlock, v: RowBlock, positions: UnsafePointer<Int>, segmentOfRow: UnsafePointer<Int32>,
                        caches: [KVSequence]) {
        if let kv, let pool = kv.pool, !failed, k.rows > 0, caches.allSatisfy({ $0.pool === pool }),
           k.width == pool.shape.kRowFloats, v.width == pool.shape.vRowFloats,
           onDevice({ try recordStores(kv, pool, layer: layer, k: k, v: v, positions: positions, segmentOfRow: segmentOfRow, caches: caches) }) {
            return
        }
        // On the host: the device's stored rows reach the host first (the store bumps its pages' generations).
        hostAccess()
        cpu.storeKV(layer: layer, k: k, v: v, positions: positions, segmentOfRow: segmentOfRow, caches: caches)
    }

    /// Lock held.
    private func recordStores(_ kv: DeviceKV, _ pool: KVPagePool, layer: Int, k: RowBlock, v: RowBlock, positions: UnsafePointer<Int>,
                              segmentOfRow: UnsafePointer<Int32>, caches: [KVSequence]) throws {
        let slot = pool.slot(ofLayer: layer)
        let (kBuffer, vBuffer) = try kv.buffers(slot, context)
        let kRows = try operand(k, .read), vRows = try operand(v, .read)
        // Pages taken first (a row copy writes into a page whose other rows may be the host's).
        for t in 0..<k.rows { try kv.take(slot, page: caches[Int(segmentOfRow[t])].page(layer, positions[t]), context) }
        ds_vk_barrier(context.handle)
        let kArena = pool.kArena(slot: slot), vArena = pool.vArena(slot: slot)
        let kBytes = pool.shape.kRowBytes, vBytes = pool.shape.vRowBytes
        var reason = [CChar](repeating: 0, count: 512)
        for t in 0..<k.rows {
            let cache = caches[Int(segmentOfRow[t])], position = positions[t]
            let kOffset = cache.kRow(layer, position) - kArena, vOffset = cache.vRow(layer, position) - vArena
            guard ds_vk_copy(context.handle, kRows.range.buffer, UInt64(kRows.range.offset + t * k.stride * 4), kBuffer, UInt64(kOffset),
                             UInt64(kBytes), &reason, reason.count) == 0,
                  ds_vk_copy(context.handle, vRows.range.buffer, UInt64(vRows.range.offset + t * v.stride * 4), vBuffer, UInt64(vOffset),
                             UInt64(vBytes), &reason, reason.count) == 0 else { throw VulkanError(reason: reason) }
            storedKVRows.append((kBuffer, kOffset, kArena + kOffset, kBytes))
            storedKVRows.append((vBuffer, vOffset, vArena + vOffset, vBytes))
        }
        kvRowsStoredOnDevice += k.rows
    }

    // MARK: Attention

    public func attend(_ layout: Attention.Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                       prompt: Bool?) {
        if tokens > 0, let slot = deviceSlot(layout), attendable(layout),
           onDevice({ try recordAttention(layout, slot: slot, tokens: tokens, start: startPosition, span: span, scale: scale, softcap: softcap) }) {
            return
        }
        hostAccess()
        cpu.attend(layout, tokens: tokens, startPosition: startPosition, span: span, scale: scale, softcap: softcap, prompt: prompt)
    }

    public func attendDecodeSteps(_ steps: UnsafeBufferPointer<DecodeStep>, span: AttentionSpan, scale: Float, softcap: Float) {
        let slots = steps.map { attendable($0.layout) ? deviceSlot($0.layout) : nil }
        if slots.allSatisfy({ $0 != nil }), onDevice({
            for (step, slot) in zip(steps, slots) {
                try recordAttention(step.layout, slot: slot!, tokens: 1, start: step.position, span: span, scale: scale, softcap: softcap)
            }
        }) { return }
        hostAccess()
        cpu.attendDecodeSteps(steps, span: span, scale: scale, softcap: softcap)
    }

    /// Shapes attend.comp takes: key rows of at most 1024 floats, value rows of at most 512, whole query groups.
    private func attendable(_ l: Attention.Layout) -> Bool {
        l.keyDim <= 1024 && l.valueDim <= 512 && l.kvHeads > 0 && l.heads % l.kvHeads == 0 && l.heads <= VulkanContext.maxGroups
    }

    /// Lock held.
    private func recordAttention(_ l: Attention.Layout, slot: Int, tokens: Int, start: Int, span: AttentionSpan, scale: Float,
                                 softcap: Float) throws {
        guard let kv, let pages = l.pages else { return }
        let first = span.firstVisible(from: start), last = start + tokens - 1
        for i in (first >> l.pageShift)...(last >> l.pageShift) { try kv.take(slot, page: pages[i], context) }
        let (kBuffer, vBuffer) = try kv.buffers(slot, context)
        let pageCount = (last >> l.pageShift) + 1
        let table = try operand(pages, bytes: pageCount * 4, .read)
        let qBytes = ((tokens - 1) * l.qTokenStride + (l.heads - 1) * l.qHeadStride + l.keyDim) * 4
        let outBytes = ((tokens - 1) * l.outTokenStride + (l.heads - 1) * l.outHeadStride + l.valueDim) * 4
        let dense = l.outHeadStride == l.valueDim && l.outTokenStride == l.heads * l.valueDim
        let q = try operand(l.q, bytes: qBytes, .read), out = try operand(l.out, bytes: outBytes, .write(dense: dense))
        var p = AttendParameters(tokens: UInt32(tokens), start: UInt32(start), heads: UInt32(l.heads), kvHeads: UInt32(l.kvHeads),
                                 keyDim: UInt32(l.keyDim), valueDim: UInt32(l.valueDim))
        let (qBinding, qSkew) = context.binding(q.buffer, start: q.offset, length: qBytes)
        let (outBinding, outSkew) = context.binding(out.buffer, start: out.offset, length: outBytes)
        let (pagesBinding, pagesSkew) = context.binding(table.buffer, start: table.offset, length: pageCount * 4)
        let kBinding = context.binding(kBuffer, start: 0, length: kv.kBytes).0, vBinding = context.binding(vBuffer, start: 0, length: kv.vBytes).0
        p.qSkew = UInt32(qSkew / 4); p.qTokenStride = UInt32(l.qTokenStride); p.qHeadStride = UInt32(l.qHeadStride)
        p.outSkew = UInt32(outSkew / 4); p.outTokenStride = UInt32(l.outTokenStride); p.outHeadStride = UInt32(l.outHeadStride)
        p.kRowStride = UInt32(l.kStride); p.kHeadStride = UInt32(l.kHeadStride); p.kPageStride = UInt32(l.kPageStride)
        p.vRowStride = UInt32(l.vStride); p.vHeadStride = UInt32(l.vHeadStride); p.vPageStride = UInt32(l.vPageStride)
        p.pagesSkew = UInt32(pagesSkew / 4); p.pageShift = UInt32(l.pageShift)
        switch span {
        case .full: p.spanKind = 0
        case .sliding(let w): p.spanKind = 1; p.spanSize = UInt32(w)
        case .chunked(let c): p.spanKind = 2; p.spanSize = UInt32(c)
        }
        p.scale = scale; p.softcap = softcap
        let pipeline = try context.shaderPipeline("attend_f32", bindings: 5, pushBytes: MemoryLayout<AttendParameters>.size)
        ds_vk_barrier(context.handle)
        try withUnsafeBytes(of: &p) { push in
            try context.dispatch(pipeline, [qBinding, outBinding, kBinding, vBinding, pagesBinding], push: push, groups: (l.heads, tokens, 1))
        }
        attentionCallsOnDevice += 1
    }
}

