import Testing

@testable import ConfabEngine

/// Known answers for the hashes and codecs every on-disk format depends on.
@Suite struct ChecksumTests {
    @Test func crc32cKnownAnswers() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.portable(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func crc32cHardwareMatchesPortable() {
        var rng = SplitMix64(seed: 99)
        for length in [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096, 65_537] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(CRC32C.checksum(bytes) == CRC32C.portable(bytes), "length \(length)")
            // Extending in two pieces equals one pass.
            let cut = length / 3
            let split = bytes.withUnsafeBytes { raw in
                CRC32C.extend(
                    CRC32C.extend(0, UnsafeRawBufferPointer(rebasing: raw[0..<cut])),
                    UnsafeRawBufferPointer(rebasing: raw[cut...]))
            }
            #expect(split == CRC32C.checksum(bytes))
        }
        #expect(CRC32C.unmask(CRC32C.mask(0xE306_9283)) == 0xE306_9283)
        #expect(CRC32C.mask(0xE306_9283) != 0xE306_9283)
    }

    @Test func murmur3KnownAnswers() {
        var bigint42: [UInt8] = []
        bigint42.appendBE64(42)
        #expect(Murmur3.token(bigint42) == 8_623_491_988_607_824_794)
        #expect(Murmur3.token(Array("hello".utf8)) == -3_758_069_500_696_749_310)
    }

    @Test func lz4DecodesAHandWrittenBlock() throws {
        // Sequence 1: 2 literals "ab", then a match at offset 2 of length 4 + 4 = 8.
        // Sequence 2: 5 literals "ccccc" (a block ends with literals).
        let block: [UInt8] = [0x24, 0x61, 0x62, 0x02, 0x00, 0x50, 0x63, 0x63, 0x63, 0x63, 0x63]
        let out = try LZ4.decompress(block, originalSize: 15)
        #expect(String(decoding: out, as: UTF8.self) == "abababababccccc")
        #expect(throws: StorageError.self) { try LZ4.decompress(block, originalSize: 16) }
        #expect(throws: StorageError.self) { try LZ4.decompress([0xF0, 0xFF], originalSize: 100) }
    }

    @Test func lz4RoundTripsAndDeclinesIncompressibleInput() throws {
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 200).utf8)
        let compressed = try #require(LZ4.compress(text))
        #expect(compressed.count < text.count / 4)
        #expect(try LZ4.decompress(compressed, originalSize: text.count) == text)
        // 64 identical bytes: literal 'a', one long match, 5 trailing literals.
        let a = [UInt8](repeating: 0x61, count: 64)
        let ca = try #require(LZ4.compress(a))
        #expect(try LZ4.decompress(ca, originalSize: 64) == a)
        var rng = SplitMix64(seed: 5)
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(LZ4.compress(noise) == nil)
    }
}
