#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A small, fast, seedable generator (SplitMix64), so every system sees the same messages.
struct SeededRNG: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

/// Zipf over ranks 0..<n: P(rank k) ∝ 1 / (k + 1)^s. Sampled by binary search in the CDF.
struct Zipf: Sendable {
    let exponent: Double
    private let cdf: [Double]

    init(count n: Int, exponent s: Double) {
        precondition(n > 0)
        exponent = s
        var acc = 0.0
        var c = [Double](repeating: 0, count: n)
        for k in 0..<n {
            acc += 1.0 / pow(Double(k + 1), s)
            c[k] = acc
        }
        cdf = c.map { $0 / acc }
    }

    var count: Int { cdf.count }

    /// Probability of rank k (0 = hottest).
    func probability(_ k: Int) -> Double { k == 0 ? cdf[0] : cdf[k] - cdf[k - 1] }

    func sample(_ rng: inout SeededRNG) -> Int {
        let u = rng.nextDouble()
        var lo = 0
        var hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
