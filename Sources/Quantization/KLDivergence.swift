// KL divergence of a model's next-token distributions against a reference's, as llama-perplexity
// --kl-divergence computes it: the text in chunks of n_ctx tokens, the second half of each chunk
// scored; per position KL(P_ref ‖ P) = Σ_i p_ref,i (log p_ref,i − log p_i) over the tokens whose
// reference log-probability is above −16; with the perplexities of both, their ratio, the change Δp
// of the probability of the actual next token, and how often both rank the same token first.
//
// The reference log-probabilities are kept as llama-perplexity's --kl-divergence-base file stores
// them (so either tool reads the other's file): per scored position nv = 2·⌈V/2⌉ + 4 uint16, the
// first four holding the floats scale = (max − min)/65535 and min_log_prob = min − max − log Σ e^(l − max)
// with min = max(min logit, max − 16), then round((l_i − min)/scale) per token (0 below min).

import Foundation

public enum ReferenceLogProbs {
    /// uint16 per scored position of a vocabulary of `vocab`.
    public static func rowLength(vocab: Int) -> Int { 2 * ((vocab + 1) / 2) + 4 }

    /// Compresses one row of logits into `out` (rowLength values); returns the NLL of `token`.
    @discardableResult
    public static func compress(_ logits: UnsafePointer<Float>, vocab: Int, token: Int, into out: UnsafeMutablePointer<UInt16>) -> Double {
        var maxLogit = logits[0], minLogit = logits[0]
        for i in 1..<vocab { maxLogit = max(maxLogit, logits[i]); minLogit = min(minLogit, logits[i]) }
        minLogit = max(minLogit, maxLogit - 16)
        var sumExp = 0.0
        for i in 0..<vocab { sumExp += Double(expf(logits[i] - maxLogit)) }
        let logSumExp = Float(log(sumExp))
        let minLogProb = minLogit - maxLogit - logSumExp
        let scale = (maxLogit - minLogit) / 65535
        UnsafeMutableRawPointer(out).storeBytes(of: scale, as: Float.self)
        UnsafeMutableRawPointer(out).storeBytes(of: minLogProb, toByteOffset: 4, as: Float.self)
        let codes = out + 4
        if scale != 0 {
            let inverse = 1 / scale
            for i in 0..<vocab {
                codes[i] = logits[i] > minLogit ? UInt16(truncatingIfNeeded: nearestInt(inverse * (logits[i] - minLogit))) : 0
            }
        } else {
            for i in 0..<vocab { codes[i] = 0 }
        }
        if vocab % 2 == 1 { codes[vocab] = 0 }
        return Double(maxLogit + logSumExp - logits[token])
    }

    /// ggml's nearest_int: round half to even through the float mantissa.
    @inline(__always) static func nearestInt(_ v: Float) -> Int {
        let bits = (v + 12582912).bitPattern
        return Int(bits & 0x007F_FFFF) - 0x0040_0000
    }
}

/// Running statistics of the KL divergence and token probabilities (llama-perplexity's).
public struct KLDStatistics: Sendable {
    var sumNLL = 0.0, sumNLL2 = 0.0, sumNLLBase = 0.0, sumNLLBase2 = 0.0, sumNLLNLLBase = 0.0
    var sumKLD = 0.0, sumKLD2 = 0.0, sumPDiff = 0.0, sumPDiff2 = 0.0, sumPDiff4 = 0.0
    var maxPDiff: Float = 0
    var sameTop = 0
    public private(set) var count = 0
    public private(set) var kldValues: [Float] = []
    var pDiffValues: [Float] = []

    public init() {}

    /// Adds one position: the model's logits, the reference's compressed row, the actual next token.
    public mutating func add(_ logits: UnsafePointer<Float>, vocab: Int, reference: UnsafePointer<UInt16>, token: Int) {
        var maxLogit = logits[0]
        var top = 0
        for i in 1..<vocab where logits[i] > maxLogit { maxLogit = logits[i]; top = i }
        var sumExp = 0.0
        for i in 0..<vocab { sumExp += Double(expf(logits[i] - maxLogit)) }
        let logSumExp = Float(log(sumExp))
        let scale = UnsafeRawPointer(reference).load(as: Float.self)
        let minLogProb = UnsafeRawPointer(reference).load(fromByteOffset: 4, as: Float.self)
        let codes = reference + 4
        let nll = maxLogit + logSumExp - logits[token]
        let nllBase = -(scale * Float(codes[token]) + minLogProb)
        sumNLL += Double(nll); sumNLL2 += Double(nll * nll)
        sumNLLBase += Double(nllBase); sumNLLBase2 += Double(nllBase * nllBase)
        sumNLLNLLBase += Double(nll * nllBase)
        let logNorm = maxLogit + logSumExp
        var kld = 0.0
        var topBase = -1
        var topBaseLogProb: Float = 0
        for i in 0..<vocab {
            let logBase = scale * Float(codes[i]) + minLogProb
            if i == 0 || logBase > topBaseLogProb { topBaseLogProb = logBase; topBase = i }
            if logBase > -16 {
                kld += Double(expf(logBase) * (logBase - logits[i] + logNorm))
            }
        }
        sumKLD += kld; sumKLD2 += kld * kld
        count += 1
        if top == topBase { sameTop += 1 }
        let pDiff = expf(-nll) - expf(-nllBase)
        sumPDiff += Double(pDiff)
        let p2 = Double(pDiff * pDiff)
        sumPDiff2 += p2; sumPDiff4 += p2 * p2
        maxPDiff = max(maxPDiff, abs(pDiff))
        kldValues.append(Float(kld))
        pDiffValues.append(pDiff)
    }

    public mutating func merge(_ o: KLDStatistics) {
        sumNLL += o.sumNLL; sumNLL2 += o.sumNLL2; sumNLLBase += o.sumNLLBase; sumNLLBase2 += o.sumNLLBase2
        sumNLLNLLBase += o.sumNLLNLLBase; sumKLD += o.sumKLD; sumKLD2 += o.sumKLD2; sumPDiff += o.sumPDiff
        sumPDiff2 += o.sumPDiff2; sumPDiff4 += o.sumPDiff4; maxPDiff = max(maxPDiff, o.maxPDiff); sameTop += o.sameTop
        count += o.count; kldValues += o.kldValues; pDiffValues += o.pDiffValues
    }

    /// (mean, standard error of the mean) as llama-perplexity computes them.
    static func meanAndError(_ sum: Double, _ sum2: Double, _ n: Int) -> (Double, Double) {
        guard n >= 1 else { return (0, 0) }
        let f = sum / Double(n)
        let v = sum2 / Double(n) - f * f
        return (f, v > 0 && n > 10 ? (v / Double(n - 1)).squareRoot() : 0)
    }

    public var meanKLD: Double { sumKLD / Double(max(count, 1)) }

    public func report() -> KLDReport {
        var r = KLDReport()
        r.positions = count
        let kld = Self.meanAndError(sumKLD, sumKLD2, count)
        r.meanKLD = kld.0; r.meanKLDError = kld.1
        let sorted = kldValues.sorted()
        func percentile(_ values: [Float], _ f: Double) -> Double {
            guard !values.isEmpty else { return .nan }
            let p = f * Double(values.count - 1), i = Int(p), frac = p - Double(i)
            return (1 - frac) * Double(values[i]) + frac * Double(values[min(i + 1, values.count - 1)])
        }
        r.medianKLD = sorted.isEmpty ? .nan : sorted.count % 2 == 0
            ? 0.5 * Double(sorted[sorted.count / 2] + sorted[sorted.count / 2 - 1]) : Double(sorted[sorted.count / 2])
        r.p90KLD = percentile(sorted, 0.9); r.p99KLD = percentile(sorted, 0.99); r.p999KLD = percentile(sorted, 0.999)
        r.maxKLD = Double(sorted.last ?? .nan)
        let logPPL = Self.meanAndError(sumNLL, sumNLL2, count), logBase = Self.meanAndError(sumNLLBase, sumNLLBase2, count)
        r.perplexity = exp(logPPL.0); r.perplexityError = r.perplexity * logPPL.1
        r.basePerplexity = exp(logBase.0); r.basePerplexityError = r.basePerplexity * logBase.1
        let cov = count < 10 ? 0 : (sumNLLNLLBase / Double(count) - (sumNLL / Double(count)) * (sumNLLBase / Double(count))) / Double(count - 1)
        let logRatio = logPPL.0 - logBase.0
        let logRatioError = max(0, logPPL.1 * logPPL.1 + logBase.1 * logBase.1 - 2 * cov).squareRoot()
        r.perplexityRatio = exp(logRatio); r.perplexityRatioError = r.perplexityRatio * logRatioError
        let mse = Self.meanAndError(sumPDiff2, sumPDiff4, count)
        r.rmsDeltaP = mse.0.squareRoot(); r.rmsDeltaPError = r.rmsDeltaP > 0 ? 0.5 / r.rmsDeltaP * mse.1 : 0
        r.sameTop = Double(sameTop) / Double(max(count, 1))
        r.sameTopError = count > 1 ? (r.sameTop * (1 - r.sameTop) / Double(count - 1)).squareRoot() : 0
        return r
    }
}

public struct KLDReport: Sendable, Codable {
    public var positions = 0
    public var meanKLD = 0.0, meanKLDError = 0.0, medianKLD = 0.0, p90KLD = 0.0, p99KLD = 0.0, p999KLD = 0.0, maxKLD = 0.0
    public var perplexity = 0.0, perplexityError = 0.0, basePerplexity = 0.0, basePerplexityError = 0.0
    public var perplexityRatio = 0.0, perplexityRatioError = 0.0
    public var rmsDeltaP = 0.0, rmsDeltaPError = 0.0
    public var sameTop = 0.0, sameTopError = 0.0

    public var text: String {
        String(format: """
            positions scored     : %d
            Mean PPL(Q)          : %10.6f ± %.6f
            Mean PPL(base)       : %10.6f ± %.6f
            PPL(Q)/PPL(base)     : %10.6f ± %.6f
            Mean    KLD          : %10.6f ± %.6f
            Median  KLD          : %10.6f
            90.0%%   KLD          : %10.6f
            99.0%%   KLD          : %10.6f
            99.9%%   KLD          : %10.6f
            Maximum KLD          : %10.6f
            RMS Δp               : %6.3f ± %.3f %%
            Same top token       : %6.3f ± %.3f %%
            """, positions, perplexity, perplexityError, basePerplexity, basePerplexityError, perplexityRatio, perplexityRatioError,
            meanKLD, meanKLDError, medianKLD, p90KLD, p99KLD, p999KLD, maxKLD, 100 * rmsDeltaP, 100 * rmsDeltaPError,
            100 * sameTop, 100 * sameTopError)
    }
}
