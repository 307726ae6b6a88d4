// K/V stores and attention on the device, over the device copy of the session's KV pages (DeviceKV):
//   storeKV   copies each row of k and v into its page's row of the layer's device arenas (the page taken
//             from the host first where the host wrote it since), and the rows reach the host's arenas at
//             the next host access;
//   attend    Shaders/attend.comp over the pages the span shows (each taken from the host where stale).
// KV rows of F32, F16 or Q8_0 (converted or quantized on the device as they are stored). What the device
// cannot do here (latent attention's values inside the keys, a layout without pages, heads too wide for the
// shader) runs on the CPU after a host access.

import CVulkan
import Kernels
import KVCache

/// kv_store_f16.comp's and kv_store_q8.comp's push constants.
struct HalfStoreParameters {
    var rows: UInt32 = 0, width: UInt32 = 0, srcSkew: UInt32 = 0, srcStride: UInt32 = 0, destSkew: UInt32 = 0
}

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
    var rowsPerSplit: UInt32 = 0, splits: UInt32 = 0
}

/// attend_merge.comp's push constants.
struct AttendMergeParameters {
    var heads: UInt32 = 0, valueDim: UInt32 = 0, splits: UInt32 = 0
    var outSkew: UInt32 = 0, outTokenStride: UInt32 = 0, outHeadStride: UInt32 = 0
}

/// Which attention kernel a call takes: split-K for a few tokens over many visible rows (the rows cut in
/// `splits` parts, each its own workgroup, merged after), tiled for prompt blocks of narrow heads, else one
/// workgroup per (head, token).
enum AttentionKernel: Equatable {
    case perToken, split(splits: Int, rowsPerSplit: Int), tiled

    /// Tokens at or above which a prompt block of heads no wider than 128 takes the tiled kernel.
    static let tiledFromTokens = 8
    /// Most splits of one (head, token).
    static let maxSplits = 64

    static func choose(_ l: Attention.Layout, tokens: Int, start: Int, span: AttentionSpan, splitRows: Int) -> AttentionKernel {
        if tokens >= tiledFromTokens && l.keyDim <= 128 && l.valueDim <= 128 { return .tiled }
        guard tokens < tiledFromTokens, splitRows > 0 else { return .perToken }
        let visible = (start..<start + tokens).map { $0 + 1 - span.firstVisible(from: $0) }.max() ?? 0
        guard visible > splitRows else { return .perToken }
        let splits = min(maxSplits, (visible + splitRows - 1) / splitRows)
        return .split(splits: splits, rowsPerSplit: (visible + splits - 1) / splits)
    }
}

extension VulkanBackend {
    /// The device arenas' slot of the pool `kv` copies that a layout's K and V rows live in (nil: not there).
    private func deviceSlot(_ layout: Attention.Layout) -> Int? {
        guard let pool = kv?.pool, layout.kvType == pool.shape.type, layout.pages != nil else { return nil }
        return (0..<pool.groups.layersPerGroup).first { pool.kArena(slot: $0) == layout.k && pool.vArena(slot: $0) == layout.v }
    }

    // MARK: K/V stores

    public func storeKV(layer: Int, k: RowBlock, v: RowBlock, positions: UnsafePointer<Int>, segmentOfRow: UnsafePointer<Int32>,
                        caches: [KVSequence]) {
        if let kv, let pool = kv.pool, !failed, k.rows > 0, caches.allSatisfy({ $0.pool === pool }),
           k.width == pool.shape.kRowFloats, v.width == pool.shape.vRowFloats, pool.shape.type != .q8_0 || (k.width % 32 == 0 && v.width % 32 == 0),
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
        var kOffsets: [Int] = [], vOffsets: [Int] = []
        for t in 0..<k.rows {
            let cache = caches[Int(segmentOfRow[t])], position = positions[t]
            kOffsets.append(cache.kRow(layer, position) - kArena)
            vOffsets.append(cache.vRow(layer, position) - vArena)
            noteStoredRow(kBuffer, kOffsets[t], kArena + kOffsets[t], kBytes)
            noteStoredRow(vBuffer, vOffsets[t], vArena + vOffsets[t], vBytes)
        }
        if pool.shape.type != .f32 {
            try recordConvertedStores(kRows, k, into: kBuffer, kOffsets, type: pool.shape.type)
            try recordConvertedStores(vRows, v, into: vBuffer, vOffsets, type: pool.shape.type)
        } else {
            var reason = [CChar](repeating: 0, count: 512)
            for t in 0..<k.rows {
                guard ds_vk_copy(context.handle, kRows.range.buffer, UInt64(kRows.range.offset + t * k.stride * 4), kBuffer,
                                 UInt64(kOffsets[t]), UInt64(kBytes), &reason, reason.count) == 0,
                      ds_vk_copy(context.handle, vRows.range.buffer, UInt64(vRows.range.offset + t * v.stride * 4), vBuffer,
                                 UInt64(vOffsets[t]), UInt64(vBytes), &reason, reason.count) == 0 else { throw VulkanError(reason: reason) }
            }
        }
        kvRowsStoredOnDevice += k.rows
    }

    /// Notes a stored row for the write-through at the next host access; a row that continues the bytes of
    /// one noted before it in the same arena (the next position of the same page) extends that copy.
    private func noteStoredRow(_ buffer: OpaquePointer, _ offset: Int, _ host: UnsafeMutableRawPointer, _ bytes: Int) {
        for i in storedKVRows.indices.suffix(2).reversed() where storedKVRows[i].buffer == buffer
            && storedKVRows[i].offset + storedKVRows[i].bytes == offset {
            storedKVRows[i].bytes += bytes
            return
        }
        storedKVRows.append((buffer, offset, host, bytes))
    }

    /// Rows of `block` (on the device at `rows`) converted into `arena` at the byte offsets: to F16 (whole
    /// words: rows of an even number of elements; kv_store_f16.comp, a workgroup per row) or quantized to Q8_0
    /// (whole blocks; kv_store_q8.comp, an invocation per block). Lock held.
    private func recordConvertedStores(_ rows: RowOperand, _ block: RowBlock, into arena: OpaquePointer, _ offsets: [Int],
                                       type: KVType) throws {
        let half = type == .f16
        let destinations = half ? offsets.map { UInt32($0 / 4) } : offsets.map { UInt32($0) }
        let table = try destinations.withUnsafeBytes { try context.stage($0.baseAddress!, bytes: $0.count) }
        var p = HalfStoreParameters(rows: UInt32(block.rows), width: UInt32(block.width))
        let (source, sourceSkew) = context.binding(rows.range.buffer, start: rows.range.offset, length: rows.bytes)
        let (dest, destSkew) = context.binding(table.buffer, start: table.offset, length: destinations.count * 4)
        p.srcSkew = UInt32(sourceSkew / 4); p.srcStride = UInt32(block.stride); p.destSkew = UInt32(destSkew / 4)
        let arenaBinding = context.binding(arena, start: 0, length: Int(ds_vk_buffer_size(arena))).0
        let pipeline = try context.shaderPipeline(half ? "kv_store_f16" : "kv_store_q8_0", bindings: 3,
                                                  pushBytes: MemoryLayout<HalfStoreParameters>.size)
        let groupsX = min(block.rows, VulkanContext.maxGroups)
        let groups = half ? (groupsX, (block.rows + groupsX - 1) / groupsX, 1) : ((block.width / 32 + 63) / 64, block.rows, 1)
        try withUnsafeBytes(of: &p) { push in try context.dispatch(pipeline, [source, arenaBinding, dest], push: push, groups: groups) }
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

    /// Shapes attend.comp takes: key rows of at most 1024 floats, value rows of at most 512, whole query groups
    /// (Q8_0: heads of whole blocks).
    private func attendable(_ l: Attention.Layout) -> Bool {
        l.keyDim <= 1024 && l.valueDim <= 512 && l.kvHeads > 0 && l.heads % l.kvHeads == 0 && l.heads <= VulkanContext.maxGroups
            && (l.kvType != .q8_0 || (l.keyDim % 32 == 0 && l.valueDim % 32 == 0 && l.kHeadStride % 32 == 0 && l.vHeadStride % 32 == 0))
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
        // Row and page strides are in the type's units (bytes for Q8_0); head strides in elements.
        p.kRowStride = UInt32(l.kStride); p.kHeadStride = UInt32(l.kvType.units(l.kHeadStride)); p.kPageStride = UInt32(l.kPageStride)
        p.vRowStride = UInt32(l.vStride); p.vHeadStride = UInt32(l.kvType.units(l.vHeadStride)); p.vPageStride = UInt32(l.vPageStride)
        p.pagesSkew = UInt32(pagesSkew / 4); p.pageShift = UInt32(l.pageShift)
        switch span {
        case .full: p.spanKind = 0
        case .sliding(let w): p.spanKind = 1; p.spanSize = UInt32(w)
        case .chunked(let c): p.spanKind = 2; p.spanSize = UInt32(c)
        }
        p.scale = scale; p.softcap = softcap
        let kvSuffix = l.kvType.rawValue
        let bindings = [qBinding, outBinding, kBinding, vBinding, pagesBinding]
        let kernel = AttentionKernel.choose(l, tokens: tokens, start: start, span: span, splitRows: attentionSplitRows)
        ds_vk_barrier(context.handle)
        switch kernel {
        case .perToken:
            let pipeline = try context.shaderPipeline("attend_\(kvSuffix)", bindings: 5, pushBytes: MemoryLayout<AttendParameters>.size)
            try withUnsafeBytes(of: &p) { try context.dispatch(pipeline, bindings, push: $0, groups: (l.heads, tokens, 1)) }
        case .tiled:
            let pipeline = try context.shaderPipeline("attend_tiled_\(kvSuffix)", bindings: 5, pushBytes: MemoryLayout<AttendParameters>.size)
            try withUnsafeBytes(of: &p) { try context.dispatch(pipeline, bindings, push: $0, groups: (l.heads, (tokens + 15) / 16, 1)) }
            attentionTiledCalls += 1
        case .split(let splits, let rowsPerSplit):
            p.splits = UInt32(splits); p.rowsPerSplit = UInt32(rowsPerSplit)
            let partialBytes = tokens * l.heads * splits * (l.valueDim + 2) * 4
            let partials = context.binding(try scratch(bytes: partialBytes), start: 0, length: partialBytes).0
            let pipeline = try context.shaderPipeline("attend_split_\(kvSuffix)", bindings: 6, pushBytes: MemoryLayout<AttendParameters>.size)
            try withUnsafeBytes(of: &p) {
                try context.dispatch(pipeline, bindings + [partials], push: $0, groups: (l.heads, tokens, splits))
            }
            ds_vk_barrier(context.handle)
            var merge = AttendMergeParameters(heads: UInt32(l.heads), valueDim: UInt32(l.valueDim), splits: UInt32(splits),
                                              outSkew: p.outSkew, outTokenStride: p.outTokenStride, outHeadStride: p.outHeadStride)
            let mergePipeline = try context.shaderPipeline("attend_merge", bindings: 2, pushBytes: MemoryLayout<AttendMergeParameters>.size)
            try withUnsafeBytes(of: &merge) { try context.dispatch(mergePipeline, [partials, outBinding], push: $0, groups: (l.heads, tokens, 1)) }
            attentionSplitCalls += 1
        }
        attentionCallsOnDevice += 1
    }
}

