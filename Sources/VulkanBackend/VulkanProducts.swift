// Products on the device: Y_i[t, r] = Σ_c W_i[r, c] · X[firstInputRow_i + t, c] for every job whose matrix
// the context holds, recorded into the open command buffer (Shaders/matmul.comp, one pipeline per weight
// type). X and Y are device ranges: a session's mirrored buffers, or the recording's arena.

import CKernels
import CVulkan
import GGUF
import Kernels

/// matmul.comp's push constants.
struct ProductParameters {
    var rows: UInt32
    var cols: UInt32
    var tokens: UInt32
    var rowBytes: UInt32
    var weightSkew: UInt32
    var inputSkew: UInt32
    var outputSkew: UInt32
    var outputStride: UInt32
    var rowsPerGroup: UInt32
}

extension VulkanContext {
    /// Tokens one workgroup of matmul.comp multiplies (its TILE).
    static let tokenTile = 8
    /// Invocations of a matmul.comp workgroup (its local_size_x).
    static let workgroupSize = 64

    /// Weight rows one workgroup takes: one per subgroup of the device's size (the shader is right for any).
    var rowsPerGroup: Int { max(1, VulkanContext.workgroupSize / max(1, device.subgroupSize)) }

    /// Which of `jobs` can run here (their matrices resident or uploaded now within the budget). Lock held.
    func deviceJobs(_ jobs: [MatmulJob]) throws -> [Bool] {
        try jobs.map { try holds($0.weights, tokens: $0.tokens) }
    }

    /// Runs the jobs marked in `onDevice` over host X[inputRows, cols] and waits for their outputs (X staged
    /// once, each output brought back); the others are left for the caller. Lock held.
    func multiply(_ jobs: [MatmulJob], onDevice: [Bool], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int) throws {
        guard jobs.indices.contains(where: { onDevice[$0] && jobs[$0].tokens > 0 }) else { return }
        let input = try stage(x, bytes: inputRows * cols * 4)
        for (i, job) in jobs.enumerated() where onDevice[i] && job.tokens > 0 {
            let bytes = job.tokens * job.weights.rows * 4
            let output = try stage(nil, bytes: bytes)
            try recordProduct(job, input: input, output: output, cols: cols)
            try copyToHostAfterSubmit(output, job.output, bytes: bytes)
        }
        try submit()
    }

    /// `bytes` of the recording's arena, holding a copy of `host` (nil: uninitialised). Lock held.
    func stage(_ host: UnsafeRawPointer?, bytes: Int) throws -> DeviceRange {
        var where_ = ds_vk_binding()
        var reason = [CChar](repeating: 0, count: 512)
        guard ds_vk_stage(handle, host, UInt64(bytes), &where_, &reason, reason.count) == 0, let buffer = where_.buffer else {
            throw VulkanError(reason: reason)
        }
        return DeviceRange(buffer: buffer, offset: Int(where_.offset))
    }

    /// After the next submit, `bytes` of a staged range land at `host`. Lock held.
    func copyToHostAfterSubmit(_ range: DeviceRange, _ host: UnsafeMutableRawPointer, bytes: Int) throws {
        var reason = [CChar](repeating: 0, count: 512)
        guard ds_vk_host_copy_after_submit(handle, range.buffer, UInt64(range.offset), host, UInt64(bytes), &reason, reason.count) == 0 else {
            throw VulkanError(reason: reason)
        }
    }

    /// Records Y = W · X[firstInputRow ..< +tokens] of one job whose matrix is resident: X rows `cols` floats
    /// apart from `input`, Y rows `w.rows` apart from `output`. Lock held.
    func recordProduct(_ job: MatmulJob, input: DeviceRange, output: DeviceRange, cols: Int) throws {
        guard job.tokens > 0 else { return }
        ds_vk_barrier(handle)
        try record(job, input: input, output: output, cols: cols)
    }

    /// The dispatches of one job, in parts no binding of which spans more than the device allows.
    private func record(_ job: MatmulJob, input: DeviceRange, output: DeviceRange, cols: Int) throws {
        let w = job.weights
        guard let weights = residentBuffer(w) else { return }
        let integerDot = usesIntegerDotKernel(w.type) && cols % 32 == 0
        let pipeline = integerDot ? try shaderPipeline("matmul_int_\(VulkanContext.integerDotTypes[w.type]!)", bindings: 4,
                                                        pushBytes: MemoryLayout<ProductParameters>.size)
                                  : try pipeline(for: w.type)
        let codebookBinding = binding(codebook, start: 0, length: Int(DS_IQ_CODEBOOK_BYTES)).0
        let span = max(1024, bindingLimit - alignment - 4)
        let rowsPerPart = min(w.rows, max(1, span / w.rowBytes))
        let tokensPerPart = max(1, min(span / (cols * 4), span / (w.rows * 4)))
        var r0 = 0
        while r0 < w.rows {
            let n = min(rowsPerPart, w.rows - r0)
            let (weightBinding, weightSkew) = binding(weights, start: r0 * w.rowBytes, length: n * w.rowBytes)
            var t0 = 0
            while t0 < job.tokens {
                let tokens = min(tokensPerPart, job.tokens - t0)
                let inputStart = input.offset + (job.firstInputRow + t0) * cols * 4
                var (inputBinding, inputSkew) = binding(input.buffer, start: inputStart, length: tokens * cols * 4)
                if integerDot {
                    let (quantized, at) = try quantizedInput(input.buffer, offset: inputStart, rows: tokens, cols: cols)
                    (inputBinding, inputSkew) = binding(quantized, start: at * 4,
                                                        length: tokens * cols / 32 * VulkanContext.quantizedBlockWords * 4)
                }
                let (outputBinding, outputSkew) = binding(output.buffer, start: output.offset + (t0 * w.rows + r0) * 4,
                                                          length: ((tokens - 1) * w.rows + n) * 4)
                var parameters = ProductParameters(
                    rows: UInt32(n), cols: UInt32(cols), tokens: UInt32(tokens), rowBytes: UInt32(w.rowBytes),
                    weightSkew: UInt32(weightSkew), inputSkew: UInt32(inputSkew / 4), outputSkew: UInt32(outputSkew / 4),
                    outputStride: UInt32(w.rows), rowsPerGroup: UInt32(rowsPerGroup))
                let workgroups = (n + rowsPerGroup - 1) / rowsPerGroup
                let groupsX = min(workgroups, VulkanContext.maxGroups)
                let groups = (groupsX, (workgroups + groupsX - 1) / groupsX,
                              (tokens + VulkanContext.tokenTile - 1) / VulkanContext.tokenTile)
                productWrites(output.buffer, start: output.offset + (t0 * w.rows + r0) * 4, count: ((tokens - 1) * w.rows + n) * 4)
                try withUnsafeBytes(of: &parameters) { push in
                    try dispatch(pipeline, [weightBinding, inputBinding, outputBinding, codebookBinding], push: push, groups: groups,
                                 keepsQuantizedInputs: true)
                }
                t0 += tokens
            }
            r0 += n
        }
    }
}
