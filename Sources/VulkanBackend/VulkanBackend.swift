// The Vulkan backend: the op interface with the products (dense, grouped, gated) on a Vulkan device and
// every other op on the CPU backend it wraps, for now. Products whose matrix has no kernel or does not fit
// the GPU budget run on the CPU too, so any model runs; `placementSummary` says what went where.
//
// A device error (lost device, exhausted memory) is reported once on stderr and the products go back to
// the CPU for the rest of the session: a run never dies for the GPU's sake.

import Foundation
import Kernels
import KVCache

public final class VulkanBackend: Backend, @unchecked Sendable {
    public let name = "vulkan"
    public let context: VulkanContext
    /// Runs what the device does not.
    public let cpu: CPUBackend
    private var failed = false

    public init(context: VulkanContext, cpu: CPUBackend) {
        self.context = context; self.cpu = cpu
    }

    /// Runs `body` under the context's lock; a Vulkan error turns the device off for this backend.
    private func onDevice(_ body: () throws -> Void) -> Bool {
        guard !failed else { return false }
        context.lock.lock()
        defer { context.lock.unlock() }
        do {
            try body()
            return true
        } catch {
            failed = true
            FileHandle.standardError.write(Data("vulkan: \(error); running on the CPU from here on\n".utf8))
            return false
        }
    }

    public func multiply(_ jobs: [MatmulJob], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        var here = [Bool](repeating: false, count: jobs.count)
        let ran = onDevice {
            here = try context.deviceJobs(jobs)
            try context.multiply(jobs, onDevice: here, x, inputRows: inputRows, cols: cols)
        }
        let rest = ran ? jobs.indices.filter { !here[$0] }.map { jobs[$0] } : jobs
        if !rest.isEmpty { cpu.multiply(rest, x, inputRows: inputRows, cols: cols, mode: mode) }
    }

    /// Pairs whose gate and up are both held here run on the device (the activation on the host after); the
    /// others on the CPU.
    public func multiplyGated(_ products: [GatedProduct], _ x: UnsafePointer<Float>, inputRows: Int, cols: Int, mode: ProductMode) {
        var jobs: [MatmulJob] = []
        jobs.reserveCapacity(2 * products.count)
        for p in products { jobs.append(p.gate); jobs.append(p.up) }
        var here = [Bool](repeating: false, count: jobs.count)
        let ran = onDevice {
            let held = try context.deviceJobs(jobs)
            for i in products.indices where held[2 * i] && held[2 * i + 1] { here[2 * i] = true; here[2 * i + 1] = true }
            try context.multiply(jobs, onDevice: here, x, inputRows: inputRows, cols: cols)
        }
        var rest: [GatedProduct] = []
        for (i, p) in products.enumerated() {
            guard ran && here[2 * i] else { rest.append(p); continue }
            let count = p.up.tokens * p.up.weights.rows
            switch p.activation {
            case .swiglu: Kernels.swiglu(p.gate.output, p.up.output, count: count)
            case .geglu: Kernels.geglu(p.gate.output, p.up.output, count: count)
            case .swigluClamped(let limit): Kernels.swigluClamped(p.gate.output, p.up.output, count: count, limit: limit)
            }
        }
        if !rest.isEmpty { cpu.multiplyGated(rest, x, inputRows: inputRows, cols: cols, mode: mode) }
    }

    /// Weights resident on the device against the budget, for the load message.
    public var placementSummary: String {
        context.lock.lock()
        defer { context.lock.unlock() }
        return "\(context.residentBytes >> 20) MiB of weights on \(context.device.name) (budget \(context.budgetBytes >> 20) MiB); "
            + "products of other matrices and every other op on the CPU"
    }

    /// Between steps: experts whose use changed move between the device and the host (a planned context).
    public func passEnded() {
        guard !failed else { return }
        context.rebalance()
    }

    // MARK: Ops without a device kernel yet: the CPU backend's.

    public func rmsNorm(_ x: RowBlock, weight: UnsafePointer<Float>?, into out: RowBlock, epsilon: Float) {
        cpu.rmsNorm(x, weight: weight, into: out, epsilon: epsilon)
    }
    public func layerNorm(_ x: RowBlock, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, into out: RowBlock, epsilon: Float) {
        cpu.layerNorm(x, weight: weight, bias: bias, into: out, epsilon: epsilon)
    }
    public func add(_ x: RowBlock, into y: RowBlock) { cpu.add(x, into: y) }
    public func addToRows(_ v: UnsafePointer<Float>, _ y: RowBlock) { cpu.addToRows(v, y) }
    public func scaleRows(_ y: RowBlock, by factors: UnsafePointer<Float>) { cpu.scaleRows(y, by: factors) }
    public func scale(_ y: RowBlock, by factor: Float) { cpu.scale(y, by: factor) }
    public func addScaled(_ x: RowBlock, times xScale: Float, into y: RowBlock, thenScale scale: Float) {
        cpu.addScaled(x, times: xScale, into: y, thenScale: scale)
    }
    public func gatedActivation(_ activation: GateActivation, gate: RowBlock, up: RowBlock) {
        cpu.gatedActivation(activation, gate: gate, up: up)
    }
    public func multiplyBySigmoid(_ y: RowBlock, gate: RowBlock) { cpu.multiplyBySigmoid(y, gate: gate) }
    public func l2Normalize(_ x: RowBlock, chunk: Int, epsilon: Float, scale: Float) {
        cpu.l2Normalize(x, chunk: chunk, epsilon: epsilon, scale: scale)
    }
    public func causalConvSilu(_ x: RowBlock, segments: [RecurrentSegment], taps: UnsafePointer<Float>, kernel: Int,
                               window: UnsafeMutablePointer<Float>) {
        cpu.causalConvSilu(x, segments: segments, taps: taps, kernel: kernel, window: window)
    }
    public func gatedDeltaRule(_ p: DeltaRuleInput, segments: [RecurrentSegment]) { cpu.gatedDeltaRule(p, segments: segments) }
    public func softcap(_ y: RowBlock, cap: Float) { cpu.softcap(y, cap: cap) }
    public func gatherRows(_ w: WeightMatrix, indices: UnsafePointer<Int32>, into out: RowBlock, scale: Float?) {
        cpu.gatherRows(w, indices: indices, into: out, scale: scale)
    }
    public func rotate(_ x: RowBlock, heads: Int, headDim: Int, rope: Rope, tables: UnsafePointer<Float>, tableStride: Int) {
        cpu.rotate(x, heads: heads, headDim: headDim, rope: rope, tables: tables, tableStride: tableStride)
    }
    public func attend(_ layout: Attention.Layout, tokens: Int, startPosition: Int, span: AttentionSpan, scale: Float, softcap: Float,
                       prompt: Bool?) {
        cpu.attend(layout, tokens: tokens, startPosition: startPosition, span: span, scale: scale, softcap: softcap, prompt: prompt)
    }
    public func attendDecodeSteps(_ steps: UnsafeBufferPointer<DecodeStep>, span: AttentionSpan, scale: Float, softcap: Float) {
        cpu.attendDecodeSteps(steps, span: span, scale: scale, softcap: softcap)
    }
    public func attendSelected(_ layout: Attention.Layout, tokens: Int, rows: UnsafePointer<Int32>, rowStride: Int,
                               counts: UnsafePointer<Int32>, scale: Float, softcap: Float) {
        cpu.attendSelected(layout, tokens: tokens, rows: rows, rowStride: rowStride, counts: counts, scale: scale, softcap: softcap)
    }
    public func attendCompressed(_ p: CompressedAttentionInput) { cpu.attendCompressed(p) }
    public func selectByIndexer(_ p: IndexerSelection) { cpu.selectByIndexer(p) }
    public func compress(_ p: CompressorInput, c: UnsafePointer<Float>, z: UnsafePointer<Float>, tokens: Int, startPosition: Int,
                         into entries: UnsafeMutablePointer<Float>) -> Int {
        cpu.compress(p, c: c, z: z, tokens: tokens, startPosition: startPosition, into: entries)
    }
    public func weightedSum(_ x: RowBlock, weights: UnsafePointer<Float>, groupSize n: Int, into out: RowBlock) {
        cpu.weightedSum(x, weights: weights, groupSize: n, into: out)
    }
    public func mixStreams(_ y: RowBlock, streams: RowBlock, post: UnsafePointer<Float>, comb: UnsafePointer<Float>, streamCount n: Int,
                           into next: RowBlock) {
        cpu.mixStreams(y, streams: streams, post: post, comb: comb, streamCount: n, into: next)
    }
    public func scatterAdd(_ x: RowBlock, weights: UnsafePointer<Float>, destinations: UnsafePointer<Int32>, into out: RowBlock) {
        cpu.scatterAdd(x, weights: weights, destinations: destinations, into: out)
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
