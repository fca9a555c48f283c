import Foundation
import Testing

/// README.md shows the code of `Examples/Readme` (the `ReadmeSnippets` target, which the build
/// compiles): every ```swift block's lines appear, in order, in one of its files.
@Suite("The README's code compiles")
struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The non-blank lines of `text`, trimmed.
    static func lines(_ text: some StringProtocol) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    /// Whether `needle` appears in `haystack` in order, other lines between allowed.
    static func appears(_ needle: [String], in haystack: [String]) -> Bool {
        var rest = haystack[...]
        for line in needle {
            guard let found = rest.firstIndex(of: line) else { return false }
            rest = rest[(found + 1)...]
        }
        return true
    }

    @Test("every swift block of README.md is in a file of Examples/Readme, line for line in order")
    func snippetsMatch() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map { Self.lines($0.components(separatedBy: "```")[0]) }
        #expect(blocks.count >= 7, "found \(blocks.count) swift blocks")
        let folder = Self.root.appendingPathComponent("Examples/Readme")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        let sources = try files.map { Self.lines(try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)) }
        for block in blocks {
            #expect(sources.contains { Self.appears(block, in: $0) }, "not compiled in Examples/Readme:\n\(block.joined(separator: "\n"))")
        }
    }
}
