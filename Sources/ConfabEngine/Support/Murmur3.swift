/// MurmurHash3 x64 128 with seed 0, as Cassandra's Murmur3Partitioner uses it: the token of a
/// partition key is the first 64-bit half of the hash of its serialized bytes.
///
/// Cassandra's implementation sign-extends tail bytes (Java bytes are signed); this reproduces that
/// so tokens match Cassandra's exactly (known answers in the tests).
package enum Murmur3 {
    package static func token(_ key: some Collection<UInt8>) -> Int64 {
        let bytes = Array(key)
        return bytes.withUnsafeBytes { Int64(bitPattern: hash128($0).0) }
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) private static func fmix(_ k: UInt64) -> UInt64 {
        var k = k
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }

    package static func hash128(_ data: UnsafeRawBufferPointer, seed: UInt64 = 0) -> (UInt64, UInt64) {
        let length = data.count
        let nblocks = length / 16
        var h1 = seed
        var h2 = seed
        let c1: UInt64 = 0x87c3_7b91_1142_53d5
        let c2: UInt64 = 0x4cf5_ad43_2745_937f
        for i in 0..<nblocks {
            var k1 = UInt64.loadLE(data, at: i * 16)
            var k2 = UInt64.loadLE(data, at: i * 16 + 8)
            k1 = k1 &* c1
            k1 = rotl(k1, 31)
            k1 = k1 &* c2
            h1 ^= k1
            h1 = rotl(h1, 27)
            h1 = h1 &+ h2
            h1 = h1 &* 5 &+ 0x52dc_e729
            k2 = k2 &* c2
            k2 = rotl(k2, 33)
            k2 = k2 &* c1
            h2 ^= k2
            h2 = rotl(h2, 31)
            h2 = h2 &+ h1
            h2 = h2 &* 5 &+ 0x3849_5ab5
        }
        // Tail bytes are sign-extended, as in Cassandra's MurmurHash.hash3_x64_128 (Java `byte`).
        @inline(__always) func tailByte(_ i: Int) -> UInt64 {
            UInt64(bitPattern: Int64(Int8(bitPattern: data[nblocks * 16 + i])))
        }
        var k1: UInt64 = 0
        var k2: UInt64 = 0
        let tail = length & 15
        if tail >= 15 { k2 ^= tailByte(14) << 48 }
        if tail >= 14 { k2 ^= tailByte(13) << 40 }
        if tail >= 13 { k2 ^= tailByte(12) << 32 }
        if tail >= 12 { k2 ^= tailByte(11) << 24 }
        if tail >= 11 { k2 ^= tailByte(10) << 16 }
        if tail >= 10 { k2 ^= tailByte(9) << 8 }
        if tail >= 9 {
            k2 ^= tailByte(8)
            k2 = k2 &* c2
            k2 = rotl(k2, 33)
            k2 = k2 &* c1
            h2 ^= k2
        }
        if tail >= 8 { k1 ^= tailByte(7) << 56 }
        if tail >= 7 { k1 ^= tailByte(6) << 48 }
        if tail >= 6 { k1 ^= tailByte(5) << 40 }
        if tail >= 5 { k1 ^= tailByte(4) << 32 }
        if tail >= 4 { k1 ^= tailByte(3) << 24 }
        if tail >= 3 { k1 ^= tailByte(2) << 16 }
        if tail >= 2 { k1 ^= tailByte(1) << 8 }
        if tail >= 1 {
            k1 ^= tailByte(0)
            k1 = k1 &* c1
            k1 = rotl(k1, 31)
            k1 = k1 &* c2
            h1 ^= k1
        }
        h1 ^= UInt64(length)
        h2 ^= UInt64(length)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        h1 = fmix(h1)
        h2 = fmix(h2)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        return (h1, h2)
    }
}
