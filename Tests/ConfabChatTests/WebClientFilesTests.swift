import Foundation
import Testing

@testable import ConfabChat

@Suite struct WebClientFilesTests {
    @Test func webClientIsBundled() throws {
        let dir = try #require(WebClientFiles.directory)
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("index.html").path))
    }

    /// A screen reader announces a field by its label: every form control in the page needs an
    /// enclosing <label> or an aria-label (issue 9: "inputs have no labels").
    @Test func everyFormControlHasALabel() throws {
        let html = try Self.indexHTML()
        let unlabelled = Self.unlabelledControls(in: html)
        #expect(unlabelled.isEmpty, "form controls without a label: \(unlabelled)")
    }

    /// New messages must be read out without the user moving focus (issue 9: "no live region").
    @Test func messageListIsAPoliteLiveRegion() throws {
        let html = try Self.indexHTML()
        let tag = try #require(Self.openingTag(containing: "id=\"message-list\"", in: html))
        #expect(tag.contains("aria-live=\"polite\""), "message list tag: \(tag)")
    }

    static func indexHTML() throws -> String {
        let dir = try #require(WebClientFiles.directory)
        return try String(contentsOf: dir.appendingPathComponent("index.html"), encoding: .utf8)
    }

    /// The opening tags of <input>, <textarea> and <select> that have neither an aria-label nor an
    /// open <label> around them.
    static func unlabelledControls(in html: String) -> [String] {
        var result: [String] = []
        for name in ["<input", "<textarea", "<select"] {
            var searchStart = html.startIndex
            while let open = html.range(of: name, range: searchStart..<html.endIndex) {
                let end = html.range(of: ">", range: open.upperBound..<html.endIndex)?.upperBound ?? html.endIndex
                let tag = String(html[open.lowerBound..<end])
                searchStart = end
                if tag.contains("aria-label=") || tag.contains("type=\"hidden\"") { continue }
                let before = html[html.startIndex..<open.lowerBound]
                let lastOpenLabel = before.range(of: "<label", options: .backwards)?.lowerBound
                let lastCloseLabel = before.range(of: "</label>", options: .backwards)?.lowerBound
                let insideLabel: Bool
                switch (lastOpenLabel, lastCloseLabel) {
                case (nil, _): insideLabel = false
                case (.some, nil): insideLabel = true
                case (.some(let o), .some(let c)): insideLabel = o > c
                }
                if !insideLabel { result.append(tag) }
            }
        }
        return result
    }

    static func openingTag(containing needle: String, in html: String) -> String? {
        guard let hit = html.range(of: needle),
            let open = html.range(of: "<", options: .backwards, range: html.startIndex..<hit.lowerBound),
            let close = html.range(of: ">", range: hit.upperBound..<html.endIndex)
        else { return nil }
        return String(html[open.lowerBound..<close.upperBound])
    }
}
