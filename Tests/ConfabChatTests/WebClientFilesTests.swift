import Foundation
import Testing
@testable import ConfabChat

@Suite struct WebClientFilesTests {
    @Test func webClientIsBundled() throws {
        let dir = try #require(WebClientFiles.directory)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.html").path))
    }
}
