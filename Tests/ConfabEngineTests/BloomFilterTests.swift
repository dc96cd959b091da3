import Testing

@testable import ConfabEngine

@Suite struct BloomFilterTests {
    /// Bit positions computed straight from the documented formula, independently of `build`.
    @Test func setsExactlyTheDocumentedBits() throws {
        let key = Array("partition-1".utf8)
        let encoded = BloomFilter.build(hashes: [BloomFilter.hash(key)], bitsPerKey: 10)
        // 1 key × 10 bits is below the 64-bit minimum: 8 bytes of bits, then k.
        #expect(encoded.count == 9)
        #expect(encoded.last == 6)
        var expected = [UInt8](repeating: 0, count: 8)
        let (h1, h2) = key.withUnsafeBytes { Murmur3.hash128($0) }
        for i in 0..<6 {
            let bit = Int((h1 &+ UInt64(i) &* h2) % 64)
            expected[bit / 8] |= 1 << (bit % 8)
        }
        #expect(Array(encoded.dropLast()) == expected)
        let filter = try BloomFilter(encoded: encoded, path: "t", offset: 0)
        #expect(filter.mayContain(key))
    }

    /// A fixed filter, byte for byte: any change to hashing or layout breaks existing files.
    @Test func knownAnswerFilter() throws {
        let keys = ["alpha", "beta", "gamma", "delta", "epsilon"].map { Array($0.utf8) }
        let encoded = BloomFilter.build(hashes: keys.map(BloomFilter.hash), bitsPerKey: 10)
        #expect(encoded.count == 8 + 1)
        #expect(encoded == [41, 176, 59, 44, 50, 155, 232, 17, 6])
    }

    @Test func noFalseNegativesAndAboutOnePercentFalsePositives() throws {
        let n = 20_000
        let keys = (0..<n).map { SSTableFixture.prefix(Int64($0)) }
        let filter = try BloomFilter(
            encoded: BloomFilter.build(hashes: keys.map(BloomFilter.hash), bitsPerKey: 10), path: "t", offset: 0)
        for k in keys { #expect(filter.mayContain(k)) }
        var falsePositives = 0
        let trials = 100_000
        for i in 0..<trials where filter.mayContain(SSTableFixture.prefix(Int64(n + i))) {
            falsePositives += 1
        }
        let rate = Double(falsePositives) / Double(trials)
        print("bloom filter false-positive rate at 10 bits/key: \(rate)")
        #expect(rate < 0.02)
        #expect(rate > 0.002)
    }

    @Test func emptyFilterContainsNothingAndUnknownProbeCountsMatchEverything() throws {
        let empty = try BloomFilter(encoded: BloomFilter.build(hashes: [], bitsPerKey: 10), path: "t", offset: 0)
        #expect(!empty.mayContain([1, 2, 3]))
        let future = try BloomFilter(encoded: [0, 0, 0, 0, 0, 0, 0, 0, 31], path: "t", offset: 0)
        #expect(future.mayContain([1, 2, 3]))
        #expect(throws: StorageError.self) { try BloomFilter(encoded: [6], path: "t", offset: 0) }
    }
}
