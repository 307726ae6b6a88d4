// Which layers each pipeline stage runs: contiguous ranges, by bytes read per token (the last stage also
// reads the output head), or as each rank's --layers A:B says (they must tile every layer, in rank order).

public enum PipelineSplit {
    /// `ranks` contiguous, non-empty ranges over the layers, each stage's bytes (its layers', the head's for
    /// the last) as close to an equal share as whole layers allow.
    public static func byBytes(layerBytes: [Int], headBytes: Int, ranks: Int) throws -> [Range<Int>] {
        let n = layerBytes.count
        guard ranks >= 1, ranks <= n else {
            throw DistributedError("\(ranks) pipeline stages for \(n) layers: each stage needs a layer at least")
        }
        let total = Double(layerBytes.reduce(0, +) + headBytes), share = total / Double(ranks)
        var ranges: [Range<Int>] = [], start = 0, done = 0.0
        for stage in 0..<(ranks - 1) {
            // End this stage where the running total comes closest to (stage + 1) shares, leaving a layer at
            // least for every later stage.
            var end = start + 1, sum = done + Double(layerBytes[start])
            let target = Double(stage + 1) * share, lastEnd = n - (ranks - 1 - stage)
            while end < lastEnd && abs(sum + Double(layerBytes[end]) - target) < abs(sum - target) {
                sum += Double(layerBytes[end]); end += 1
            }
            ranges.append(start..<end)
            start = end; done = sum
        }
        ranges.append(start..<n)
        return ranges
    }

    /// Ranges the ranks gave (--layers A:B each, in rank order): they must tile 0..<layers.
    public static func given(_ ranges: [Range<Int>], layers: Int) throws -> [Range<Int>] {
        var next = 0
        for (rank, r) in ranges.enumerated() {
            guard r.lowerBound == next, !r.isEmpty else {
                let shown = ranges.map { "\($0.lowerBound):\($0.upperBound)" }.joined(separator: " ")
                throw DistributedError("--layers by rank (\(shown)) must be non-empty ranges that follow each other from 0 to \(layers); "
                                       + "rank \(rank) starts at \(r.lowerBound)")
            }
            next = r.upperBound
        }
        guard next == layers else { throw DistributedError("--layers by rank end at \(next); the model has \(layers) layers") }
        return ranges
    }

    /// Parses "A:B".
    public static func parse(_ text: String) throws -> Range<Int> {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, b > a else {
            throw DistributedError("--layers takes A:B with 0 ≤ A < B (layers A ..< B), not \(text)")
        }
        return a..<b
    }
}
