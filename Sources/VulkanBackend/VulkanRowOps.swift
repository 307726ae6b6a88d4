// The row ops on the device (Shaders/rows.comp, one pipeline per op): norms, residual adds, biases, scales,
// gated activations, softcapping and RoPE over activation rows, recorded into the open command buffer.

import CVulkan

/// Bytes on the device: element 0 of an operand at `offset` in `buffer` (a mirror of a session buffer, or
/// the recording's arena).
struct DeviceRange {
    let buffer: OpaquePointer
    let offset: Int
}

/// One operand of a row op: rows `stride` floats apart from `range`, spanning `bytes`.
struct RowOperand {
    let range: DeviceRange
    let bytes: Int
    let stride: Int
}

/// rows.comp's ops, by the DS_OP its variants were compiled with (Scripts/build-shaders.sh).
enum RowOp: String {
    case rmsnorm, add, addVector = "add_vector", scale, scaleRows = "scale_rows", mulSigmoid = "mul_sigmoid", softcap
    case swiglu, geglu, swigluClamped = "swiglu_clamped", rope
}

/// rows.comp's push constants.
struct RowParameters {
    var rows: UInt32 = 0
    var width: UInt32 = 0
    var skewA: UInt32 = 0, strideA: UInt32 = 0
    var skewB: UInt32 = 0, strideB: UInt32 = 0
    var skewC: UInt32 = 0, strideC: UInt32 = 0
    var flags: UInt32 = 0
    var f: Float = 0
    var heads: UInt32 = 0
    var headDim: UInt32 = 0
    var dims: UInt32 = 0
    var style: UInt32 = 0
}

extension VulkanContext {
    /// The pipeline of shader `name` (ds_vulkan_spirv's names) with `bindings` buffers and push constants of
    /// `pushBytes`, made once. Lock held.
    func shaderPipeline(_ name: String, bindings: Int, pushBytes: Int) throws -> OpaquePointer {
        if let p = shaderPipelines[name] { return p }
        var bytes = 0
        guard let words = ds_vulkan_spirv(name, &bytes) else { throw VulkanError("Vulkan: shader \(name) is missing") }
        var reason = [CChar](repeating: 0, count: 512)
        guard let p = ds_vk_pipeline_create(handle, words, bytes, Int32(bindings), UInt32(pushBytes), &reason, reason.count) else {
            throw VulkanError(reason: reason)
        }
        shaderPipelines[name] = p
        return p
    }

    func rowPipeline(_ op: RowOp) throws -> OpaquePointer {
        try shaderPipeline("rows_\(op.rawValue)", bindings: 3, pushBytes: MemoryLayout<RowParameters>.size)
    }

    /// Records `op` over `parameters.rows` rows: B written, A and C read (absent: the codebook is bound in
    /// their place, unread). Skews and strides of the parameters are filled in from the operands. Lock held.
    func recordRows(_ op: RowOp, a: RowOperand?, b: RowOperand, c: RowOperand?, _ parameters: RowParameters) throws {
        guard parameters.rows > 0 else { return }
        var p = parameters
        func bind(_ o: RowOperand?) -> (ds_vk_binding, UInt32, UInt32) {
            guard let o else { return (binding(codebook, start: 0, length: 4).0, 0, 0) }
            let (b, skew) = binding(o.range.buffer, start: o.range.offset, length: o.bytes)
            return (b, UInt32(skew / 4), UInt32(o.stride))
        }
        let (ba, sa, ta) = bind(a), (bb, sb, tb) = bind(b), (bc, sc, tc) = bind(c)
        p.skewA = sa; p.strideA = ta; p.skewB = sb; p.strideB = tb; p.skewC = sc; p.strideC = tc
        let pipeline = try rowPipeline(op)
        let rows = Int(p.rows), groupsX = min(rows, VulkanContext.maxGroups)
        ds_vk_barrier(handle)
        try withUnsafeBytes(of: &p) { push in
            try dispatch(pipeline, [ba, bb, bc], push: push, groups: (groupsX, (rows + groupsX - 1) / groupsX, 1))
        }
    }

    /// Records scatter.comp: out ← 0, then out[dest[r]] += weight[r] · x[r] over the rows of x. Lock held.
    func recordScatter(x: RowOperand, out: RowOperand, weights: RowOperand, destinations: RowOperand, rows: Int, outRows: Int,
                       width: Int) throws {
        var p = ScatterParameters(outRows: UInt32(outRows), rows: UInt32(rows), width: UInt32(width))
        let (bx, sx) = binding(x.range.buffer, start: x.range.offset, length: x.bytes)
        let (bo, so) = binding(out.range.buffer, start: out.range.offset, length: out.bytes)
        let (bw, sw) = binding(weights.range.buffer, start: weights.range.offset, length: weights.bytes)
        let (bd, sd) = binding(destinations.range.buffer, start: destinations.range.offset, length: destinations.bytes)
        p.xSkew = UInt32(sx / 4); p.xStride = UInt32(x.stride); p.outSkew = UInt32(so / 4); p.outStride = UInt32(out.stride)
        p.wSkew = UInt32(sw / 4); p.destSkew = UInt32(sd / 4)
        let pipeline = try shaderPipeline("scatter_add", bindings: 4, pushBytes: MemoryLayout<ScatterParameters>.size)
        let groupsX = min(outRows, VulkanContext.maxGroups)
        ds_vk_barrier(handle)
        try withUnsafeBytes(of: &p) { push in
            try dispatch(pipeline, [bx, bo, bw, bd], push: push, groups: (groupsX, (outRows + groupsX - 1) / groupsX, 1))
        }
    }
}

/// scatter.comp's push constants.
struct ScatterParameters {
    var outRows: UInt32 = 0, rows: UInt32 = 0, width: UInt32 = 0
    var xSkew: UInt32 = 0, xStride: UInt32 = 0, outSkew: UInt32 = 0, outStride: UInt32 = 0, wSkew: UInt32 = 0, destSkew: UInt32 = 0
}
