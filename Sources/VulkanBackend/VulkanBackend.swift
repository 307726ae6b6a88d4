// The Vulkan backend: the op interface with products (dense, grouped, gated), the row ops (norms, adds,
// biases, scales, activations, softcapping, RoPE), K/V stores and attention over the paged cache
// (VulkanAttention.swift) on a Vulkan device, and every other op on the CPU backend it wraps, for now. Products whose matrix has no kernel or does not fit the GPU budget run on the CPU too,
// so any model runs; `placementSummary` says what went where.
//
// A session's activation buffers have device copies (ActivationMirrors). In a pass whose stack declares its
// host accesses, ops are recorded into one command buffer that runs when the host needs results (a CPU op,
// a K/V store, the pass's end): one submit per host access instead of one per op. Otherwise every op's
// results reach the host as it returns. Operands outside the mirrored buffers go through the recording's
// arena (outputs among them stay there for the recording's later ops and reach the host at its submit).
//
// A device error (lost device, exhausted memory) is reported once on stderr and the ops go back to the CPU
// for the rest of the session: a run never dies for the GPU's sake (a pass it spoiled runs again).

import CVulkan
import Foundation
import Kernels
import KVCache

public final class VulkanBackend: Backend, @unchecked Sendable {
    public let name = "vulkan"
    public let context: VulkanContext
    /// Runs what the device does not.
    public let cpu: CPUBackend
    public private(set) var failed = false
    private let mirrors: ActivationMirrors
    /// Ops are recorded and run at the next host access (a pass whose stack declares them).
    private var deferred = false
    /// The pass holds the context's lock from passBegins to passEnded (its recording is the context's).
    private var holdsPassLock = false
    /// A device failure spoiled results of the current pass.
    private var lostPass = false
    /// Outputs outside the mirrors written through the arena since the last submit (they reach the host at the
    /// next one): a later op of the recording reads and writes them there.
    private var stagedOutputs: [(host: UnsafeRawPointer, bytes: Int, range: DeviceRange)] = []
    /// The device copy of the session's KV pages (nil: attention and K/V stores on the CPU).
    var kv: DeviceKV?
    /// Tests: the device fails at the op after this many more (nil: never).
    public var failAfterDeviceOps: Int?
    /// Attention calls and K/V rows the device ran (tests, logs).
    public internal(set) var attentionCallsOnDevice = 0
    public internal(set) var kvRowsStoredOnDevice = 0
    /// Split-K attention cuts the visible rows of a decode step in parts of at least this many (0: never).
    public var attentionSplitRows = 256
    /// Attention calls that took the split-K and the tiled kernels (tests).
    public internal(set) var attentionSplitCalls = 0
    public internal(set) var attentionTiledCalls = 0
    /// Device memory for intermediate results inside a recording (split-K's partials), grown as needed; a
    /// grown-out buffer is freed after the context's next submit (the recording may still use it until then).
    private var scratchBuffer: OpaquePointer?
    /// K/V rows the device stored since the last submit, copied to the host's arenas at the next one.
    var storedKVRows: [(buffer: OpaquePointer, offset: Int, host: UnsafeMutableRawPointer, bytes: Int)] = []

    public init(context: VulkanContext, cpu: CPUBackend) {
        self.context = context; self.cpu = cpu
        mirrors = ActivationMirrors(context: context)
    }

    deinit {
        context.lock.lock()
        if let scratchBuffer { ds_vk_buffer_destroy(context.handle, scratchBuffer) }
        mirrors.destroy()
        context.lock.unlock()
    }

    /// Submits made by this backend's context (tests: one per host access in a declared pass).
    public var submitCount: Int { context.submitCount }

    /// Runs `body` under the context's lock; a Vulkan error turns the device off for this backend (false: the
    /// caller runs the op on the CPU).
    func onDevice(_ body: () throws -> Void) -> Bool {
        guard !failed else { return false }
        context.lock.lock()
        defer { context.lock.unlock() }
        do {
            if let n = failAfterDeviceOps {
                failAfterDeviceOps = n - 1
                if n <= 0 { throw VulkanError("Vulkan: a device failure asked for by a test") }
            }
            try body()
            if !deferred { try bringResultsHome() }
            return true
        } catch {
            fail(error)
            return false
        }
    }

    private func fail(_ error: Error) {
        failed = true
        if deferred { lostPass = true }
        stagedOutputs.removeAll()
        storedKVRows.removeAll()
        // What the device held is lost; the host's bytes are all there is (a spoiled pass runs again).
        var reason = [CChar](repeating: 0, count: 512)
        context.forgetQuantizedInputs()
        _ = ds_vk_submit(context.handle, &reason, reason.count)
        mirrors.dropDeviceCopies()
        FileHandle.standardError.write(Data("vulkan: \(error); running on the CPU from here on\n".utf8))
    }

    /// Runs what was recorded and brings every result to the host; the device's copies are dropped (the host
    /// may write next). Lock held.
    private func bringResultsHome() throws {
        ds_vk_barrier(context.handle)
        try mirrors.downloadAll()
        for row in storedKVRows {
            var reason = [CChar](repeating: 0, count: 512)
            guard ds_vk_download(context.handle, row.buffer, UInt64(row.offset), row.host, UInt64(row.bytes), &reason, reason.count) == 0 else {
                throw VulkanError(reason: reason)
            }
        }
        try context.submit()
        storedKVRows.removeAll()
        stagedOutputs.removeAll()
        mirrors.dropDeviceCopies()
    }

    /// A device buffer of at least `bytes` for results that stay on the device within one recording. Lock held.
    func scratch(bytes: Int) throws -> OpaquePointer {
        if let b = scratchBuffer, Int(ds_vk_buffer_size(b)) >= bytes { return b }
        let size = max(bytes, Int(scratchBuffer.map { ds_vk_buffer_size($0) } ?? 0) * 2, 1 << 20)
        if let b = scratchBuffer { context.retiredBuffers.append(b) }
        scratchBuffer = nil
        var reason = [CChar](repeating: 0, count: 512)
        guard let b = ds_vk_buffer_create(context.handle, UInt64(size), Int32(DS_VK_DEVICE_LOCAL), &reason, reason.count) else {
            throw VulkanError(reason: reason)
        }
        scratchBuffer = b
        return b
    }

    // MARK: Passes and host access

    public func keepKVOnDevice(_ pool: KVPagePool) {
        guard !failed else { return }
        context.lock.lock()
        defer { context.lock.unlock() }
        kv = context.deviceKV(for: pool)
    }

    public func keepOnDevice(_ buffers: [UnsafeMutableRawBufferPointer]) {
        guard !failed else { return }
        context.lock.lock()
        defer { context.lock.unlock() }
        do { try mirrors.add(buffers) } catch { fail(error) }
    }

    public func passBegins(hostAccessDeclared: Bool) {
        guard !failed, hostAccessDeclared else { return }
        context.lock.lock()
        holdsPassLock = true
        deferred = true
    }

    public func hostAccess() {
        guard !failed, mirrors.deviceHoldsAny || !stagedOutputs.isEmpty || !storedKVRows.isEmpty else { return }
        context.lock.lock()
        defer { context.lock.unlock() }
        do { try bringResultsHome() } catch { fail(error) }
    }

    /// Every result to the host; then experts whose use changed move between the device and the host.
    public func passEnded() -> Bool {
        hostAccess()
        deferred = false
        if holdsPassLock {
            holdsPassLock = false
            context.lock.unlock()
        }
        if !failed { context.rebalance() }
        let whole = !lostPass
        lostPass = false
        return whole
    }

    // MARK: Operands

    enum Access { case read, write(dense: Bool), update }

    /// Where `bytes` of host memory at p are for a device op: its mirror (made current on the device as the
    /// access needs), or the arena (a copy, brought back after the submit when written). Lock held.
    func operand(_ p: UnsafeRawPointer, bytes: Int, _ access: Access) throws -> DeviceRange {
        if let (i, offset) = mirrors.locate(p, bytes: bytes) {
            let range = offset ..< offset + bytes
            switch access {
            case .read: try mirrors.prepareRead(i, range)
            case .write(let dense): try mirrors.prepareWrite(i, range, dense: dense)
            case .update: try mirrors.prepareRead(i, range); try mirrors.prepareWrite(i, range, dense: true)
            }
            return DeviceRange(buffer: mirrors.mirrors[i].buffer, offset: offset)
        }
        var writes = true
        if case .read = access { writes = false }
        // An output of this recording: its bytes are in the arena, not yet on the host.
        if let s = stagedOutputs.first(where: { $0.host <= p && p + bytes <= $0.host + $0.bytes }) {
            let range = DeviceRange(buffer: s.range.buffer, offset: s.range.offset + (p - s.host))
            // (Again: a submit the context made on its own may have copied the earlier bytes already.)
            if writes { try context.copyToHostAfterSubmit(range, UnsafeMutableRawPointer(mutating: p), bytes: bytes) }
            return range
        }
        if stagedOutputs.contains(where: { $0.host < p + bytes && p < $0.host + $0.bytes }) {
            // Overlapping one in part: run the recording so the host holds it, then stage afresh.
            try context.submit()
            stagedOutputs.removeAll()
        }
        var initial: UnsafeRawPointer? = p
        if case .write(dense: true) = access { initial = nil }
        let staged = try context.stage(initial, bytes: bytes)
        guard writes else { return staged }
        try context.copyToHostAfterSubmit(staged, UnsafeMutableRawPointer(mutating: p), bytes: bytes)
        stagedOutputs.append((p, bytes, staged))
        return staged
    }

    /// A row block as an operand (the bytes from its first row's start to its last row's end).
    func operand(_ block: RowBlock, _ access: Access) throws -> RowOperand {
        let bytes = ((block.rows - 1) * block.stride + block.width) * 4
        var a = access
        if case .write = access { a = .write(dense: block.stride == block.width || block.rows == 1) }
        return RowOperand(range: try operand(block.base, bytes: bytes, a), bytes: bytes, stride: block.stride)
    }

    /// `count` floats read from the host (a weight vector, a bias, factors).
    private func vectorOperand(_ p: UnsafePointer<Float>, count: Int) throws -> RowOperand {
        RowOperand(range: try operand(p, bytes: count * 4, .read), bytes: count * 4, stride: 0)
    }

    /// Whether row ops over `blocks` fit one binding each (else they run on the CPU).
    private func fits(_ blocks: RowBlock...) -> Bool {
        blocks.allSatisfy { ($0.rows - 1) * $0.stride + $0.width <= context.bindingLimit / 4 - 64 && $0.rows > 0 && $0.width > 0 }
    }

    // MARK: Products

    public func multiply(_ jobs: [MatmulJob], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        var here = [Bool](repeating: false, count: jobs.count)
        if !failed {
            context.lock.lock()
            do { here = try context.deviceJobs(jobs) } catch { fail(error) }
            context.lock.unlock()
        }
        let rest = jobs.indices.filter { !here[$0] }.map { jobs[$0] }
        if !rest.isEmpty {
            hostAccess()
            cpu.multiply(rest, x, inputRows: inputRows, cols: cols, mode: mode)
        }
        guard here.contains(true) else { return }
        let ran = onDevice { try recordProducts(jobs, here, x, inputRows: inputRows, cols: cols) }
        if !ran {
            let spoiled = jobs.indices.filter { here[$0] }.map { jobs[$0] }
            cpu.multiply(spoiled, x, inputRows: inputRows, cols: cols, mode: mode)
        }
    }

    /// The jobs marked `here` recorded over X; where each one's output is on the device (until the submit, an
    /// output outside the mirrors is only there). Lock held.
    @discardableResult
    private func recordProducts(_ jobs: [MatmulJob], _ here: [Bool], _ x: UnsafePointer<Float>, inputRows: Int,
                                cols: Int) throws -> [DeviceRange?] {
        let input = try operand(x, bytes: inputRows * cols * 4, .read)
        var outputs = [DeviceRange?](repeating: nil, count: jobs.count)
        for (i, job) in jobs.enumerated() where here[i] && job.tokens > 0 {
            let output = try operand(job.output, bytes: job.tokens * job.weights.rows * 4, .write(dense: true))
            try context.recordProduct(job, input: input, output: output, cols: cols)
            outputs[i] = output
        }
        return outputs
    }

    /// Pairs whose gate and up are both held here run on the device, the activation after them; the others on
    /// the CPU.
    public func multiplyGated(_ products: [GatedProduct], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        var jobs: [MatmulJob] = []
        jobs.reserveCapacity(2 * products.count)
        for p in products { jobs.append(p.gate); jobs.append(p.up) }
        var here = [Bool](repeating: false, count: jobs.count)
        if !failed {
            context.lock.lock()
            do {
                let held = try context.deviceJobs(jobs)
                for i in products.indices where held[2 * i] && held[2 * i + 1] { here[2 * i] = true; here[2 * i + 1] = true }
            } catch { fail(error) }
            context.lock.unlock()
        }
        var rest = products.indices.filter { !here[2 * $0] }.map { products[$0] }
        if !rest.isEmpty {
            hostAccess()
            cpu.multiplyGated(rest, x, inputRows: inputRows, cols: cols, mode: mode)
        }
        guard here.contains(true) else { return }
        let ran = onDevice {
            let outputs = try recordProducts(jobs, here, x, inputRows: inputRows, cols: cols)
            for (i, p) in products.enumerated() where here[2 * i] && p.up.tokens > 0 {
                guard let gate = outputs[2 * i], let up = outputs[2 * i + 1] else { continue }
                let bytes = p.up.tokens * p.up.weights.rows * 4
                try recordActivation(p.activation, gate: RowOperand(range: gate, bytes: bytes, stride: bytes / 4),
                                     up: RowOperand(range: up, bytes: bytes, stride: bytes / 4), rows: 1, width: bytes / 4)
            }
        }
        if !ran {
            rest = products.indices.filter { here[2 * $0] }.map { products[$0] }
            cpu.multiplyGated(rest, x, inputRows: inputRows, cols: cols, mode: mode)
        }
    }

    private func recordActivation(_ activation: GateActivation, gate: RowOperand, up: RowOperand, rows: Int, width: Int) throws {
        var p = RowParameters(rows: UInt32(rows), width: UInt32(width))
        let op: RowOp
        switch activation {
        case .swiglu: op = .swiglu
        case .geglu: op = .geglu
        case .swigluClamped(let limit): op = .swigluClamped; p.f = limit
        }
        try context.recordRows(op, a: up, b: gate, c: nil, p)
    }

    /// Weights resident on the device against the budget, for the load message.
    public var placementSummary: String {
        context.lock.lock()
        defer { context.lock.unlock() }
        return "\(context.residentBytes >> 20) MiB of weights on \(context.device.name) (budget \(context.budgetBytes >> 20) MiB); "
            + "products of other matrices and the remaining ops on the CPU"
    }

    // MARK: Row ops on the device

    /// Runs a row op on the device, or `onCPU` when the device is off, the blocks do not fit a binding, or it
    /// failed.
    private func rowOp(_ blocks: RowBlock..., record: () throws -> Void, onCPU: () -> Void) {
        if blocks.allSatisfy({ fits($0) }), onDevice(record) { return }
        hostAccess()
        onCPU()
    }

    public func rmsNorm(_ x: RowBlock, weight: UnsafePointer<Float>?, into out: RowBlock, epsilon: Float) {
        rowOp(x, out, record: {
            let a = try operand(x, .read), b = try operand(out, .write(dense: true))
            let c = try weight.map { try vectorOperand($0, count: x.width) }
            try context.recordRows(.rmsnorm, a: a, b: b, c: c,
                                   RowParameters(rows: UInt32(x.rows), width: UInt32(x.width), flags: weight == nil ? 1 : 0, f: epsilon))
        }, onCPU: { cpu.rmsNorm(x, weight: weight, into: out, epsilon: epsilon) })
    }

    public func add(_ x: RowBlock, into y: RowBlock) {
        rowOp(x, y, record: {
            try context.recordRows(.add, a: try operand(x, .read), b: try operand(y, .update), c: nil,
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width)))
        }, onCPU: { cpu.add(x, into: y) })
    }

    public func addToRows(_ v: UnsafePointer<Float>, _ y: RowBlock) {
        rowOp(y, record: {
            try context.recordRows(.addVector, a: nil, b: try operand(y, .update), c: try vectorOperand(v, count: y.width),
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width)))
        }, onCPU: { cpu.addToRows(v, y) })
    }

    public func scaleRows(_ y: RowBlock, by factors: UnsafePointer<Float>) {
        rowOp(y, record: {
            let c = try vectorOperand(factors, count: y.rows)
            try context.recordRows(.scaleRows, a: nil, b: try operand(y, .update), c: RowOperand(range: c.range, bytes: c.bytes, stride: 1),
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width)))
        }, onCPU: { cpu.scaleRows(y, by: factors) })
    }

    public func scale(_ y: RowBlock, by factor: Float) {
        rowOp(y, record: {
            try context.recordRows(.scale, a: nil, b: try operand(y, .update), c: nil,
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width), f: factor))
        }, onCPU: { cpu.scale(y, by: factor) })
    }

    public func gatedActivation(_ activation: GateActivation, gate: RowBlock, up: RowBlock) {
        rowOp(gate, up, record: {
            try recordActivation(activation, gate: try operand(gate, .update), up: try operand(up, .read), rows: gate.rows, width: gate.width)
        }, onCPU: { cpu.gatedActivation(activation, gate: gate, up: up) })
    }

    public func multiplyBySigmoid(_ y: RowBlock, gate: RowBlock) {
        rowOp(y, gate, record: {
            try context.recordRows(.mulSigmoid, a: try operand(gate, .read), b: try operand(y, .update), c: nil,
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width)))
        }, onCPU: { cpu.multiplyBySigmoid(y, gate: gate) })
    }

    public func softcap(_ y: RowBlock, cap: Float) {
        rowOp(y, record: {
            try context.recordRows(.softcap, a: nil, b: try operand(y, .update), c: nil,
                                   RowParameters(rows: UInt32(y.rows), width: UInt32(y.width), f: cap))
        }, onCPU: { cpu.softcap(y, cap: cap) })
    }

    /// Row r's heads rotated by the table at tables + r · tableStride.
    public func rotate(_ x: RowBlock, heads: Int, headDim: Int, rope: Rope, tables: UnsafePointer<Float>, tableStride: Int) {
        rowOp(x, record: {
            let tableBytes = ((x.rows - 1) * tableStride + rope.dimensions) * 4
            let c = RowOperand(range: try operand(tables, bytes: tableBytes, .read), bytes: tableBytes, stride: tableStride)
            try context.recordRows(.rope, a: nil, b: try operand(x, .update), c: c,
                                   RowParameters(rows: UInt32(x.rows), width: UInt32(x.width), heads: UInt32(heads), headDim: UInt32(headDim),
                                                 dims: UInt32(rope.dimensions), style: rope.style == .interleaved ? 0 : 1))
        }, onCPU: { cpu.rotate(x, heads: heads, headDim: headDim, rope: rope, tables: tables, tableStride: tableStride) })
    }

    /// MoE rows back to their tokens.
    public func scatterAdd(_ x: RowBlock, weights: UnsafePointer<Float>, destinations: UnsafePointer<Int32>, into out: RowBlock) {
        rowOp(x, out, record: {
            let w = try vectorOperand(weights, count: x.rows)
            let d = RowOperand(range: try operand(destinations, bytes: x.rows * 4, .read), bytes: x.rows * 4, stride: 0)
            try context.recordScatter(x: try operand(x, .read), out: try operand(out, .write(dense: true)), weights: w, destinations: d,
                                      rows: x.rows, outRows: out.rows, width: out.width)
        }, onCPU: { cpu.scatterAdd(x, weights: weights, destinations: destinations, into: out) })
    }

    // MARK: Ops without a device kernel yet: the CPU backend's, on the host's bytes.

    public func layerNorm(_ x: RowBlock, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, into out: RowBlock, epsilon: Float) {
        hostAccess()
        cpu.layerNorm(x, weight: weight, bias: bias, into: out, epsilon: epsilon)
    }
    public func addScaled(_ x: RowBlock, times xScale: Float, into y: RowBlock, thenScale scale: Float) {
        hostAccess()
        cpu.addScaled(x, times: xScale, into: y, thenScale: scale)
    }
    public func l2Normalize(_ x: RowBlock, chunk: Int, epsilon: Float, scale: Float) {
        hostAccess()
        cpu.l2Normalize(x, chunk: chunk, epsilon: epsilon, scale: scale)
    }
    public func causalConvSilu(_ x: RowBlock, segments: [RecurrentSegment], taps: UnsafePointer<Float>, kernel: Int,
                               window: UnsafeMutablePointer<Float>) {
        hostAccess()
        cpu.causalConvSilu(x, segments: segments, taps: taps, kernel: kernel, window: window)
    }
    public func gatedDeltaRule(_ p: DeltaRuleInput, segments: [RecurrentSegment]) { hostAccess(); cpu.gatedDeltaRule(p, segments: segments) }
    public func gatherRows(_ w: WeightMatrix, indices: UnsafePointer<Int32>, into out: RowBlock, scale: Float?) {
        hostAccess()
        cpu.gatherRows(w, indices: indices, into: out, scale: scale)
    }
    public func attendSelected(_ layout: Attention.Layout, tokens: Int, rows: UnsafePointer<Int32>, rowStride: Int,
                               counts: UnsafePointer<Int32>, scale: Float, softcap: Float) {
        hostAccess()
        cpu.attendSelected(layout, tokens: tokens, rows: rows, rowStride: rowStride, counts: counts, scale: scale, softcap: softcap)
    }
    public func attendCompressed(_ p: CompressedAttentionInput) { hostAccess(); cpu.attendCompressed(p) }
    public func selectByIndexer(_ p: IndexerSelection) { hostAccess(); cpu.selectByIndexer(p) }
    public func compress(_ p: CompressorInput, c: UnsafePointer<Float>, z: UnsafePointer<Float>, tokens: Int, startPosition: Int,
                         into entries: UnsafeMutablePointer<Float>) -> Int {
        hostAccess()
        return cpu.compress(p, c: c, z: z, tokens: tokens, startPosition: startPosition, into: entries)
    }
    public func weightedSum(_ x: RowBlock, weights: UnsafePointer<Float>, groupSize n: Int, into out: RowBlock) {
        hostAccess()
        cpu.weightedSum(x, weights: weights, groupSize: n, into: out)
    }
    public func mixStreams(_ y: RowBlock, streams: RowBlock, post: UnsafePointer<Float>, comb: UnsafePointer<Float>, streamCount n: Int,
                           into next: RowBlock) {
        hostAccess()
        cpu.mixStreams(y, streams: streams, post: post, comb: comb, streamCount: n, into: next)
    }
}

/// Makes Vulkan backends over one shared context (the model's resident weights), one per session.
public final class VulkanBackendProvider: BackendProvider, @unchecked Sendable {
    public let context: VulkanContext
    public init(context: VulkanContext) { self.context = context }
    public var name: String { "vulkan" }
    public var description: String { context.device.summary }
    public func makeBackend(cpu: CPUBackend) -> any Backend { VulkanBackend(context: context, cpu: cpu) }
}
