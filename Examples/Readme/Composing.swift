import Continuum

/// One source to read.
struct Source: Codable, Sendable {
    var url: String
}

/// Reads one source: a child workflow of ``Research``.
struct Scrape: Workflow {
    func run(_ ctx: WorkflowContext, input source: Source) async throws -> String {
        try await ctx.step("fetch") { "contents of \(source.url)" }
    }
}

struct Research: Workflow {
    func run(_ ctx: WorkflowContext, input sources: [Source]) async throws -> [String] {
        // One child per source, side by side; each child's id is "<parent id>/scrape-<i>".
        try await withThrowingTaskGroup(of: String.self) { group in
            for (i, source) in sources.enumerated() {
                group.addTask { try await ctx.child(Scrape.self, name: "scrape-\(i)", input: source) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }
}
