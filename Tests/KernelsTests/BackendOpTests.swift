// The op interface (Backend) against scalar references, once per backend present: every backend a
// layer stack can run on must pass the same suite. Today: the CPU backend with one and two threads
// (serial and pooled row ops); GPU backends add themselves to `BackendUnderTest.all`.

import Foundation
import Testing
import GGUF
import Kernels
import KVCache
import VulkanBackend

/// A backend by name, made fresh for each test.
struct BackendUnderTest: CustomTestStringConvertible, Sendable {
    let name: String
    let make: @Sendable () -> any Backend
    var testDescription: String { name }

    static func cpu(threads: Int) -> CPUBackend {
        let pool = WorkerPool(threads: threads)
        return CPUBackend(pool: pool, attention: AttentionWorkspace(pool: pool, contextLength: 64, groupSize: 4, widestKey: 64,
                                                                    widestValue: 64, heads: 8))
    }

    /// The CPU with one and two threads, and every Vulkan device present (VulkanOpTests checks that CI has one).
    static let all: [BackendUnderTest] = [1, 2].map { threads in
        BackendUnderTest(name: "cpu, \(threads) thread\(threads == 1 ? "" : "s")") { cpu(threads: threads) }
    } + ((try? VulkanDevices.probe().get()) ?? []).map { device in
        BackendUnderTest(name: "vulkan:\(device.index) \(device.name)") {
            // A device that was probed opens; a failure here is the test's failure.
            let context = try! VulkanContext(deviceIndex: device.index)
            return VulkanBackend(context: context, cpu: cpu(threads: 2))
        }
    }
}

/// Deterministic values in [−2, 2].
func opTestFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 500
    }
}

func maxRelativeError(_ got: [Float], _ want: [Double]) -> Double {
    let scale = max(1, want.map(abs).max() ?? 1)
    return zip(got, want).map { abs(Double($0) - $1) }.max().map { $0 / scale } ?? 0
}

@Suite struct BackendOpTests {
    /// Y = X · Wᵀ for F32 and Q8_0 weights, every product mode, one and several tokens.
    @Test(arguments: BackendUnderTest.all)
    func multiplyMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 48, cols = 64
        let w = opTestFloats(rows * cols, seed: 1)
        for type in [GGMLType.f32, .q8_0] {
            let rowBytes = type.byteCount(elements: cols)!
            var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
            w.withUnsafeBufferPointer { src in
                bytes.withUnsafeMutableBytes { dst in
                    for r in 0..<rows { Kernels.quantizeReference(type, src.baseAddress! + r * cols, into: dst.baseAddress! + r * rowBytes, count: cols) }
                }
            }
            bytes.withUnsafeBytes { raw in
                let m = WeightMatrix(type: type, rows: rows, cols: cols, data: raw.baseAddress!)
                let dequantized = m.toFloats()
                for tokens in [1, 3, 9] {
                    let x = opTestFloats(tokens * cols, seed: 2)
                    var want = [Double](repeating: 0, count: tokens * rows)
                    for t in 0..<tokens { for r in 0..<rows {
                        want[t * rows + r] = (0..<cols).reduce(0.0) { $0 + Double(dequantized[r * cols + $1]) * Double(x[t * cols + $1]) }
                    } }
                    for mode in [ProductMode.batched, .invariant(decodeRows: 1), .perTokenBelow(8)] {
                        var y = [Float](repeating: 0, count: tokens * rows)
                        ops.multiply(m, x, tokens: tokens, into: &y, mode: mode)
                        // Q8_0 quantizes the activations too.
                        #expect(maxRelativeError(y, want) < (type == .f32 ? 1e-5 : 2e-2), "\(type) \(tokens) tokens \(mode)")
                    }
                }
            }
        }
    }

    /// gate ← act(W_gate · X) ⊙ W_up · X for the three activations.
    @Test(arguments: BackendUnderTest.all)
    func gatedProductsMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 24, cols = 32, tokens = 5
        let wg = opTestFloats(rows * cols, seed: 3), wu = opTestFloats(rows * cols, seed: 4), x = opTestFloats(tokens * cols, seed: 5)
        func dot(_ w: [Float], _ r: Int, _ t: Int) -> Double { (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * Double(x[t * cols + $1]) } }
        let cases: [(GateActivation, (Double, Double) -> Double)] = [
            (.swiglu, { g, u in g / (1 + exp(-g)) * u }),
            (.geglu, { g, u in 0.5 * g * (1 + tanh(0.7978845608 * (g + 0.044715 * g * g * g))) * u }),
            (.swigluClamped(limit: 1.5), { g, u in let c = min(g, 1.5); return c / (1 + exp(-c)) * min(max(u, -1.5), 1.5) }),
        ]
        wg.withUnsafeBufferPointer { g in wu.withUnsafeBufferPointer { u in
            let gate = WeightMatrix(type: .f32, rows: rows, cols: cols, data: UnsafeRawPointer(g.baseAddress!))
            let up = WeightMatrix(type: .f32, rows: rows, cols: cols, data: UnsafeRawPointer(u.baseAddress!))
            for (activation, reference) in cases {
                var out = [Float](repeating: 0, count: tokens * rows), scratch = out
                ops.multiplyGated(gate: gate, up: up, x, tokens: tokens, activation: activation, into: &out, scratch: &scratch, mode: .batched)
                var want = [Double](repeating: 0, count: tokens * rows)
                for t in 0..<tokens { for r in 0..<rows { want[t * rows + r] = reference(dot(wg, r, t), dot(wu, r, t)) } }
                #expect(maxRelativeError(out, want) < 1e-4, "\(activation)")
            }
        } }
    }

    /// Row ops over strided rows: RMSNorm (with and without weight, in place), add, bias, scale, softcap,
    /// gather.
    @Test(arguments: BackendUnderTest.all)
    func rowOpsMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 6, width = 20, stride = 24
        var x = opTestFloats(rows * stride, seed: 6)
        let w = opTestFloats(width, seed: 7), original = x
        func rowRef(_ r: Int, _ f: (Int) -> Double) -> [Double] { (0..<width).map(f) }
        x.withUnsafeMutableBufferPointer { xb in
            let block = RowBlock(xb.baseAddress!, rows: rows, width: width, stride: stride)
            var weights = w
            ops.rmsNorm(block, weight: &weights, into: block, epsilon: 1e-6)
            for r in 0..<rows {
                let row = (0..<width).map { Double(original[r * stride + $0]) }
                let rms = (row.reduce(0) { $0 + $1 * $1 } / Double(width) + 1e-6).squareRoot()
                let got = (0..<width).map { block.row(r)[$0] }
                #expect(maxRelativeError(got, rowRef(r) { row[$0] / rms * Double(w[$0]) }) < 1e-5)
                // The padding past `width` is untouched.
                #expect((width..<stride).allSatisfy { xb[r * stride + $0] == original[r * stride + $0] })
            }
        }
        // add, bias, scale, softcap on a fresh copy.
        let addend = opTestFloats(rows * stride, seed: 8)
        var y = original, add = addend, factors = opTestFloats(rows, seed: 9)
        y.withUnsafeMutableBufferPointer { yb in add.withUnsafeMutableBufferPointer { ab in
            let yBlock = RowBlock(yb.baseAddress!, rows: rows, width: width, stride: stride)
            ops.add(RowBlock(ab.baseAddress!, rows: rows, width: width, stride: stride), into: yBlock)
            ops.addToRows(ab.baseAddress!, yBlock)
            ops.scaleRows(yBlock, by: &factors)
            ops.softcap(yBlock, cap: 3)
            for r in 0..<rows {
                let want = rowRef(r) { i in
                    let v = (Double(original[r * stride + i]) + Double(addend[r * stride + i]) + Double(addend[i])) * Double(factors[r])
                    return 3 * tanh(v / 3)
                }
                #expect(maxRelativeError((0..<width).map { yBlock.row(r)[$0] }, want) < 1e-5)
            }
        } }
        // gather: rows of a Q8_0 table by index, scaled.
        let vocab = 10, cols = 32
        let table = opTestFloats(vocab * cols, seed: 10)
        table.withUnsafeBufferPointer { tb in
            let m = WeightMatrix(type: .f32, rows: vocab, cols: cols, data: UnsafeRawPointer(tb.baseAddress!))
            var out = [Float](repeating: 0, count: 4 * cols)
            let indices: [Int32] = [3, 0, 9, 3]
            out.withUnsafeMutableBufferPointer { ob in
                ops.gatherRows(m, indices: indices, into: RowBlock(ob.baseAddress!, rows: 4, width: cols), scale: 2)
            }
            for (i, token) in indices.enumerated() {
                #expect((0..<cols).allSatisfy { out[i * cols + $0] == table[Int(token) * cols + $0] * 2 })
            }
        }
    }

    /// Elementwise ops over two strided blocks: constant scale, y = (y + x·a)·b, gated activation.
    @Test(arguments: BackendUnderTest.all)
    func elementwiseOpsMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 5, width = 12, stride = 16
        let x0 = opTestFloats(rows * stride, seed: 15), y0 = opTestFloats(rows * stride, seed: 16)
        var x = x0, y = y0
        x.withUnsafeMutableBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
            let xBlock = RowBlock(xb.baseAddress!, rows: rows, width: width, stride: stride)
            let yBlock = RowBlock(yb.baseAddress!, rows: rows, width: width, stride: stride)
            ops.scale(yBlock, by: 0.5)
            ops.addScaled(xBlock, times: 3, into: yBlock, thenScale: 0.25)
            ops.gatedActivation(.swiglu, gate: yBlock, up: xBlock)
        } }
        for r in 0..<rows {
            let want = (0..<width).map { i -> Double in
                let g = (Double(y0[r * stride + i]) * 0.5 + Double(x0[r * stride + i]) * 3) * 0.25
                return g / (1 + exp(-g)) * Double(x0[r * stride + i])
            }
            #expect(maxRelativeError((0..<width).map { y[r * stride + $0] }, want) < 1e-5)
            #expect((width..<stride).allSatisfy { y[r * stride + $0] == y0[r * stride + $0] })
        }
    }

    /// L2 normalisation by chunks and the sigmoid gate.
    @Test(arguments: BackendUnderTest.all)
    func normaliseAndGateMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 4, width = 12, chunk = 4
        let x0 = opTestFloats(rows * width, seed: 17), g0 = opTestFloats(rows * width, seed: 18)
        var x = x0, y = x0, g = g0
        x.withUnsafeMutableBufferPointer { ops.l2Normalize(RowBlock($0.baseAddress!, rows: rows, width: width), chunk: chunk, epsilon: 1e-6, scale: 0.5) }
        y.withUnsafeMutableBufferPointer { yb in g.withUnsafeMutableBufferPointer { gb in
            ops.multiplyBySigmoid(RowBlock(yb.baseAddress!, rows: rows, width: width), gate: RowBlock(gb.baseAddress!, rows: rows, width: width))
        } }
        var want = [Double](repeating: 0, count: rows * width)
        for c in stride(from: 0, to: rows * width, by: chunk) {
            let n = (c..<(c + chunk)).reduce(0.0) { $0 + Double(x0[$1]) * Double(x0[$1]) }
            for i in c..<(c + chunk) { want[i] = Double(x0[i]) * 0.5 / (n + 1e-6).squareRoot() }
        }
        #expect(maxRelativeError(x, want) < 1e-5)
        #expect(maxRelativeError(y, (0..<(rows * width)).map { Double(x0[$0]) / (1 + exp(-Double(g0[$0]))) }) < 1e-5)
    }

    /// The causal conv + SiLU and the gated delta rule (Gated DeltaNet) over two segments, each with its
    /// own state, against a scalar recurrence.
    @Test(arguments: BackendUnderTest.all)
    func recurrentOpsMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let K = 3, keyHeads = 1, valueHeads = 2, S = 4, C = 2 * keyHeads * S + valueHeads * S, T = 5
        let counts = [2, 3], offsets = [0, 2]
        let taps = opTestFloats(K * C, seed: 19), x0 = opTestFloats(T * C, seed: 20)
        let convState0 = [opTestFloats((K - 1) * C, seed: 21), opTestFloats((K - 1) * C, seed: 22)]
        var x = x0, conv0 = convState0[0], conv1 = convState0[1]
        let deltaState0 = [[Float](repeating: 0, count: valueHeads * S * S), opTestFloats(valueHeads * S * S, seed: 23)]
        var delta0 = deltaState0[0], delta1 = deltaState0[1]
        let alpha = opTestFloats(T * valueHeads, seed: 24), beta = opTestFloats(T * valueHeads, seed: 25)
        let gate = opTestFloats(T * valueHeads * S, seed: 26), dtBias = opTestFloats(valueHeads, seed: 27)
        let decay = opTestFloats(valueHeads, seed: 28).map { -abs($0) }, norm = opTestFloats(S, seed: 29)
        var out = [Float](repeating: 0, count: T * valueHeads * S), window = [Float](repeating: 0, count: (K - 1 + T) * C)
        var scratch = [Float](repeating: 0, count: 2 * valueHeads * S)
        conv0.withUnsafeMutableBufferPointer { c0 in conv1.withUnsafeMutableBufferPointer { c1 in
            delta0.withUnsafeMutableBufferPointer { d0 in delta1.withUnsafeMutableBufferPointer { d1 in
                let segments = [RecurrentSegment(offset: 0, count: 2, conv: c0.baseAddress!, delta: d0.baseAddress!),
                                RecurrentSegment(offset: 2, count: 3, conv: c1.baseAddress!, delta: d1.baseAddress!)]
                x.withUnsafeMutableBufferPointer { xb in
                    ops.causalConvSilu(RowBlock(xb.baseAddress!, rows: T, width: C), segments: segments, taps: taps, kernel: K, window: &window)
                    // q and k heads L2-normalised (q by 1/√S too), as the Qwen3.5 stack does before the rule.
                    ops.l2Normalize(RowBlock(xb.baseAddress!, rows: T, width: keyHeads * S, stride: C), chunk: S, epsilon: 1e-6,
                                    scale: 1 / Float(S).squareRoot())
                    ops.l2Normalize(RowBlock(xb.baseAddress! + keyHeads * S, rows: T, width: keyHeads * S, stride: C), chunk: S,
                                    epsilon: 1e-6, scale: 1)
                    out.withUnsafeMutableBufferPointer { ob in scratch.withUnsafeMutableBufferPointer { sb in
                        ops.gatedDeltaRule(DeltaRuleInput(rows: xb.baseAddress!, channels: C, keyHeads: keyHeads, valueHeads: valueHeads,
                                                          stateSize: S, alpha: alpha, betaLogits: beta, gate: gate, out: ob.baseAddress!,
                                                          dtBias: dtBias, decay: decay, norm: norm, epsilon: 1e-6, scratch: sb.baseAddress!),
                                           segments: segments)
                    } }
                }
            } }
        } }
        // Reference: conv rows, then the recurrence per segment and value head.
        var conv = [Double](repeating: 0, count: T * C)
        var wantOut = [Double](repeating: 0, count: T * valueHeads * S)
        for (i, (offset, count)) in zip(offsets, counts).enumerated() {
            var w = convState0[i].map(Double.init) + (offset..<(offset + count)).flatMap { t in (0..<C).map { Double(x0[t * C + $0]) } }
            for t in 0..<count { for ch in 0..<C {
                let sum = (0..<K).reduce(0.0) { $0 + Double(taps[$1 * C + ch]) * w[(t + $1) * C + ch] }
                conv[(offset + t) * C + ch] = sum / (1 + exp(-sum))
            } }
            w = Array(w.suffix((K - 1) * C))
            #expect(maxRelativeError(i == 0 ? conv0 : conv1, w) < 1e-5, "conv state \(i)")
            for j in 0..<valueHeads {
                var st = (0..<(S * S)).map { Double(deltaState0[i][j * S * S + $0]) }
                for t in offset..<(offset + count) {
                    let row = t * C
                    func l2(_ base: Int, _ scale: Double) -> [Double] {
                        let v = (0..<S).map { conv[row + base + $0] }, n = v.reduce(0) { $0 + $1 * $1 }
                        return v.map { $0 * scale / (n + 1e-6).squareRoot() }
                    }
                    let q = l2((j % keyHeads) * S, 1 / Double(S).squareRoot()), k = l2(keyHeads * S + (j % keyHeads) * S, 1)
                    let v = (0..<S).map { conv[row + 2 * keyHeads * S + j * S + $0] }
                    let a = Double(alpha[t * valueHeads + j] + dtBias[j])
                    let g = Double(decay[j]) * (a > 20 ? a : log1p(exp(a))), b = 1 / (1 + exp(-Double(beta[t * valueHeads + j])))
                    st = st.map { $0 * exp(g) }
                    let delta = (0..<S).map { m in b * (v[m] - (0..<S).reduce(0.0) { $0 + st[$1 * S + m] * k[$1] }) }
                    for r in 0..<S { for m in 0..<S { st[r * S + m] += k[r] * delta[m] } }
                    var o = (0..<S).map { m in (0..<S).reduce(0.0) { $0 + st[$1 * S + m] * q[$1] } }
                    let rms = (o.reduce(0) { $0 + $1 * $1 } / Double(S) + 1e-6).squareRoot()
                    o = (0..<S).map { m in
                        let z = Double(gate[t * valueHeads * S + j * S + m])
                        return o[m] / rms * Double(norm[m]) * z / (1 + exp(-z))
                    }
                    for m in 0..<S { wantOut[t * valueHeads * S + j * S + m] = o[m] }
                }
            }
        }
        #expect(maxRelativeError(out, wantOut) < 1e-4)
    }

    /// RoPE of every head of every row: NeoX and adjacent pairs against the rotation formula.
    @Test(arguments: BackendUnderTest.all)
    func rotateMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 3, headDim = 16, ropeDims = 8, rows = 5
        for style in [RopeStyle.neox, .interleaved] {
            let rope = Rope(dimensions: ropeDims, base: 10_000, style: style)
            var tables = [Float](repeating: 0, count: rows * ropeDims)
            for r in 0..<rows { tables.withUnsafeMutableBufferPointer { rope.fill($0.baseAddress! + r * ropeDims, position: 7 * r + 1) } }
            let original = opTestFloats(rows * heads * headDim, seed: 11)
            var x = original
            x.withUnsafeMutableBufferPointer { xb in
                ops.rotate(RowBlock(xb.baseAddress!, rows: rows, width: heads * headDim), heads: heads, headDim: headDim, rope: rope,
                           tables: tables, tableStride: ropeDims)
            }
            var worst = 0.0
            for r in 0..<rows { for h in 0..<heads { for i in 0..<(ropeDims / 2) {
                let angle = Double(7 * r + 1) / pow(10_000, Double(2 * i) / Double(ropeDims))
                let (a, b) = style == .neox ? (i, i + ropeDims / 2) : (2 * i, 2 * i + 1)
                let base = (r * heads + h) * headDim, x0 = Double(original[base + a]), x1 = Double(original[base + b])
                worst = max(worst, abs(Double(x[base + a]) - (x0 * cos(angle) - x1 * sin(angle))),
                            abs(Double(x[base + b]) - (x0 * sin(angle) + x1 * cos(angle))))
            } } }
            #expect(worst < 1e-5, "\(style)")
            // Dims past ropeDims are not rotated.
            #expect((0..<rows * heads).allSatisfy { hr in (ropeDims..<headDim).allSatisfy { x[hr * headDim + $0] == original[hr * headDim + $0] } })
        }
    }

    /// Causal grouped attention over contiguous rows, full and sliding spans, prompt and decode kernels.
    @Test(arguments: BackendUnderTest.all)
    func attendMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 4, kvHeads = 2, d = 16, tokens = 6, start = 3, positions = start + tokens
        let q = opTestFloats(tokens * heads * d, seed: 12), k = opTestFloats(positions * kvHeads * d, seed: 13)
        let v = opTestFloats(positions * kvHeads * d, seed: 14)
        for span in [AttentionSpan.full, .sliding(3)] {
            for prompt in [true, false] {
                var out = [Float](repeating: 0, count: tokens * heads * d)
                q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                    out.withUnsafeMutableBufferPointer { ob in
                        let layout = Attention.Layout(q: qb.baseAddress!, qTokenStride: heads * d, qHeadStride: d,
                                                      out: ob.baseAddress!, outTokenStride: heads * d, outHeadStride: d,
                                                      k: UnsafeRawPointer(kb.baseAddress!), kStride: kvHeads * d, kHeadStride: d,
                                                      v: UnsafeRawPointer(vb.baseAddress!), vStride: kvHeads * d, vHeadStride: d,
                                                      heads: heads, kvHeads: kvHeads, keyDim: d, valueDim: d)
                        ops.attend(layout, tokens: tokens, startPosition: start, span: span, scale: 0.25, softcap: 0, prompt: prompt)
                    }
                } } }
                var want = [Double](repeating: 0, count: tokens * heads * d)
                for t in 0..<tokens { for h in 0..<heads {
                    let pos = start + t, kvh = h / (heads / kvHeads)
                    let visible = span.firstVisible(from: pos)...pos
                    let scores = visible.map { j in 0.25 * (0..<d).reduce(0.0) { $0 + Double(q[(t * heads + h) * d + $1]) * Double(k[(j * kvHeads + kvh) * d + $1]) } }
                    let m = scores.max()!, z = scores.reduce(0.0) { $0 + exp($1 - m) }
                    for (s, j) in zip(scores, visible) { for c in 0..<d {
                        want[(t * heads + h) * d + c] += exp(s - m) / z * Double(v[(j * kvHeads + kvh) * d + c])
                    } }
                } }
                #expect(maxRelativeError(out, want) < 1e-5, "\(span) prompt \(prompt)")
            }
        }
    }

    /// MoE rows back to their tokens: out ← 0, out[dest[r]] += w[r] · x[r], with a token no row goes to.
    @Test(arguments: BackendUnderTest.all)
    func scatterAddMatchesReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let rows = 9, tokens = 4, width = 70
        let x = opTestFloats(rows * width, seed: 21), w = opTestFloats(rows, seed: 22)
        let dest: [Int32] = [2, 0, 2, 1, 0, 2, 1, 0, 2]   // token 3 gets nothing
        var out = [Float](repeating: 7, count: tokens * width)
        x.withUnsafeBufferPointer { xb in out.withUnsafeMutableBufferPointer { ob in
            ops.scatterAdd(RowBlock(UnsafeMutablePointer(mutating: xb.baseAddress!), rows: rows, width: width), weights: w, destinations: dest,
                           into: RowBlock(ob.baseAddress!, rows: tokens, width: width))
        } }
        var want = [Double](repeating: 0, count: tokens * width)
        for r in 0..<rows { for i in 0..<width { want[Int(dest[r]) * width + i] += Double(w[r]) * Double(x[r * width + i]) } }
        #expect(maxRelativeError(out, want) < 1e-6)
    }

    /// K/V rows stored through the backend into pages of 4 positions, two sequences written in turns (their
    /// pages interleave), then causal grouped attention over the pages, against the scalar reference.
    @Test(arguments: BackendUnderTest.all)
    func pagedStoreAndAttendMatchReference(backend: BackendUnderTest) {
        let ops = backend.make()
        let heads = 4, kvHeads = 2, d = 16, width = kvHeads * d, positions = 11
        let pool = KVPagePool(shape: KVShape(layers: 1, kRowFloats: width, vRowFloats: width), pageTokens: 4, capacity: 8)
        let sequences = [KVSequence(pool: pool, maxPositions: 16), KVSequence(pool: pool, maxPositions: 16)]
        ops.keepKVOnDevice(pool)
        let k = opTestFloats(2 * positions * width, seed: 31), v = opTestFloats(2 * positions * width, seed: 32)
        for start in stride(from: 0, to: positions, by: 4) {
            for (s, seq) in sequences.enumerated() {
                let n = min(4, positions - start)
                try! seq.prepareWrite(start: start, count: n)
                let at = (s * positions + start) * width
                k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
                    ops.storeKV(layer: 0, k: RowBlock(UnsafeMutablePointer(mutating: kb.baseAddress! + at), rows: n, width: width),
                                v: RowBlock(UnsafeMutablePointer(mutating: vb.baseAddress! + at), rows: n, width: width),
                                positions: Array(start..<(start + n)), segmentOfRow: [Int32](repeating: 0, count: n), caches: [seq])
                } }
                [Int32](repeating: 1, count: n).withUnsafeBufferPointer { seq.commit($0, start: start) }
            }
        }
        let tokens = 3, start = positions - tokens, s = 1
        let q = opTestFloats(tokens * heads * d, seed: 33)
        for span in [AttentionSpan.full, .sliding(5)] {
            var out = [Float](repeating: 0, count: tokens * heads * d)
            q.withUnsafeBufferPointer { qb in out.withUnsafeMutableBufferPointer { ob in
                let layout = Attention.paged(sequences[s], layer: 0, q: qb.baseAddress!, qTokenStride: heads * d, qHeadStride: d,
                                             out: ob.baseAddress!, outTokenStride: heads * d, outHeadStride: d, kHeadStride: d, vHeadStride: d,
                                             heads: heads, kvHeads: kvHeads, keyDim: d, valueDim: d)
                ops.attend(layout, tokens: tokens, startPosition: start, span: span, scale: 0.25, softcap: 0, prompt: true)
            } }
            #expect(ops.passEnded())
            var want = [Double](repeating: 0, count: tokens * heads * d)
            for t in 0..<tokens { for h in 0..<heads {
                let pos = start + t, kvh = h / (heads / kvHeads), visible = span.firstVisible(from: pos)...pos
                func row(_ a: [Float], _ j: Int) -> Int { (s * positions + j) * width + kvh * d }
                let scores = visible.map { j in 0.25 * (0..<d).reduce(0.0) { $0 + Double(q[(t * heads + h) * d + $1]) * Double(k[row(k, j) + $1]) } }
                let m = scores.max()!, z = scores.reduce(0.0) { $0 + exp($1 - m) }
                for (sc, j) in zip(scores, visible) { for c in 0..<d { want[(t * heads + h) * d + c] += exp(sc - m) / z * Double(v[row(v, j) + c]) } }
            } }
            #expect(maxRelativeError(out, want) < 1e-5, "\(span)")
        }
    }
}
