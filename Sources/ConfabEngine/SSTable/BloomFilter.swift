/// A bloom filter over the partition prefixes of an SSTable, so a read for a partition the table
/// does not hold usually costs no I/O. About 1% false positives at 10 bits per key; never a false
/// negative.
///
/// Hashing: h1, h2 = MurmurHash3 x64-128 (seed 0) of the prefix bytes; probe i (0 ..< k) sets bit
/// (h1 + i·h2) mod m — Kirsch–Mitzenmacher double hashing, as good as k independent hashes.
///
/// Encoded contents:
///
///     bits     m / 8 bytes; bit b is byte b / 8, mask 1 << (b % 8)
///     k        u8 number of probes (1...30; other values are read as "may contain anything", room
///              for a future hashing scheme, as in LevelDB)
struct BloomFilter: Sendable {
    let bits: [UInt8]
    let probes: Int

    static func hash(_ key: [UInt8]) -> (UInt64, UInt64) {
        key.withUnsafeBytes { Murmur3.hash128($0) }
    }

    /// Probes for `bitsPerKey`: bitsPerKey · ln 2 minimises false positives.
    static func probeCount(bitsPerKey: Int) -> Int {
        min(30, max(1, Int((Double(bitsPerKey) * 0.69).rounded(.down))))
    }

    /// Builds the encoded filter for keys given by their hashes.
    static func build(hashes: [(UInt64, UInt64)], bitsPerKey: Int) -> [UInt8] {
        let perKey = max(1, bitsPerKey)
        let k = probeCount(bitsPerKey: perKey)
        let bitCount = max(64, (hashes.count * perKey + 7) / 8 * 8)
        var out = [UInt8](repeating: 0, count: bitCount / 8)
        let m = UInt64(bitCount)
        for (h1, h2) in hashes {
            var h = h1
            for _ in 0..<k {
                let b = Int(h % m)
                out[b >> 3] |= 1 << UInt8(b & 7)
                h = h &+ h2
            }
        }
        out.append(UInt8(k))
        return out
    }

    /// Decodes an encoded filter; throws `.corruption` if it is too short to hold one.
    init(encoded: [UInt8], path: String, offset: Int) throws {
        guard encoded.count >= 2 else {
            throw StorageError.corruption(
                "bloom filter of \(encoded.count) bytes is too short", path: path, offset: offset)
        }
        bits = Array(encoded.dropLast())
        probes = Int(encoded[encoded.count - 1])
    }

    func mayContain(_ key: [UInt8]) -> Bool { mayContain(hash: Self.hash(key)) }

    func mayContain(hash: (UInt64, UInt64)) -> Bool {
        guard probes >= 1, probes <= 30, !bits.isEmpty else { return true }
        let m = UInt64(bits.count * 8)
        var h = hash.0
        for _ in 0..<probes {
            let b = Int(h % m)
            if bits[b >> 3] & (1 << UInt8(b & 7)) == 0 { return false }
            h = h &+ hash.1
        }
        return true
    }
}
