import CLZ4

/// LZ4 block compression through the system liblz4.
package enum LZ4 {
    /// Compresses `input`; returns nil when the result would not be smaller (store raw instead).
    package static func compress(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        guard input.count > 0, input.count <= Int(LZ4_MAX_INPUT_SIZE) else { return nil }
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            LZ4_compress_default(
                input.baseAddress!.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(bound))
        }
        guard written > 0, Int(written) < input.count else { return nil }
        output.removeLast(bound - Int(written))
        return output
    }

    package static func compress(_ input: [UInt8]) -> [UInt8]? {
        input.withUnsafeBytes { compress($0) }
    }

    /// Decompresses into exactly `originalSize` bytes; throws `.corruption` on malformed input.
    package static func decompress(_ input: UnsafeRawBufferPointer, originalSize: Int) throws -> [UInt8] {
        guard originalSize >= 0 else {
            throw StorageError(.corruption, "negative LZ4 block size")
        }
        if originalSize == 0 { return [] }
        var output = [UInt8](repeating: 0, count: originalSize)
        let n = output.withUnsafeMutableBytes { out in
            LZ4_decompress_safe(
                input.baseAddress?.assumingMemoryBound(to: CChar.self),
                out.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(originalSize))
        }
        guard n == Int32(originalSize) else {
            throw StorageError(.corruption, "LZ4 block does not decompress to \(originalSize) bytes (got \(n))")
        }
        return output
    }

    package static func decompress(_ input: [UInt8], originalSize: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, originalSize: originalSize) }
    }
}
