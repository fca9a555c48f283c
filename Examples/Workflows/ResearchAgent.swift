public import Continuum

/// The research agent of the seed's story: it fans out a child workflow per source, each of
/// which asks a scraper for the page and waits (durably, up to a timeout) for the scrape to come
/// back as a webhook, then has a model summarize it; the agent answers "how far along are you?"
/// while it runs, and writes a report from what came back.
///
/// The model allows 4 requests at once and 60 a minute: every call to it is a step on the queue
/// ``ResearchAgent/modelQueue``, whose limits ``exampleQueues`` sets.
///
/// ```sh
/// curl -X POST 'http://127.0.0.1:8080/v1/workflows/research-agent?id=r-1&timeout=600' \
///      -d '{"topic": "durable execution", "sources": ["https://a.example", "https://b.example"]}'
/// curl 'http://127.0.0.1:8080/v1/workflows/r-1/queries/progress'
/// curl -X POST 'http://127.0.0.1:8080/v1/workflows/r-1%2Fsource-0/events/scraped' -d '{"text": "…"}'
/// ```
public struct ResearchAgent: Workflow {
    public static let name = "research-agent"
    /// The queue every model call runs on.
    public static let modelQueue = "model"

    /// What to research, from where.
    public struct Input: Codable, Sendable {
        public var topic: String
        public var sources: [String]
        /// How long each source's scrape may take to arrive (default ten minutes).
        public var scrapeTimeoutSeconds: Int?

        public init(topic: String, sources: [String], scrapeTimeoutSeconds: Int? = nil) {
            self.topic = topic
            self.sources = sources
            self.scrapeTimeoutSeconds = scrapeTimeoutSeconds
        }
    }

    /// How far along the agent is, published as `progress`.
    public struct Progress: Codable, Sendable, Equatable {
        public var stage: String
        public var done: Int
        public var of: Int
    }

    /// The report it writes.
    public struct Report: Codable, Sendable, Equatable {
        public var topic: String
        /// One summary per source that came back, in the order of the sources.
        public var summaries: [String]
        /// The sources whose scrape did not arrive in time.
        public var missing: [String]
        /// The model's conclusion over the summaries.
        public var conclusion: String
    }

    let model: FakeModel

    public init(model: FakeModel = FakeModel()) {
        self.model = model
    }

    public func run(_ ctx: WorkflowContext, input: Input) async throws -> Report {
        let total = input.sources.count
        try await ctx.publish("progress", Progress(stage: "scraping", done: 0, of: total))
        let results = try await withThrowingTaskGroup(of: (Int, ResearchSource.Summary).self) { group in
            for (index, url) in input.sources.enumerated() {
                group.addTask {
                    let source = ResearchSource.Input(url: url, timeoutSeconds: input.scrapeTimeoutSeconds ?? 600)
                    return (index, try await ctx.child(ResearchSource.self, name: "source-\(index)", input: source))
                }
            }
            var results = [ResearchSource.Summary?](repeating: nil, count: total)
            var done = 0
            for try await (index, summary) in group {
                results[index] = summary
                done += 1
                try await ctx.publish("progress", Progress(stage: "scraping", done: done, of: total))
            }
            return results.compactMap { $0 }
        }
        try await ctx.publish("progress", Progress(stage: "writing", done: total, of: total))
        let summaries = results.compactMap(\.summary)
        let model = self.model
        let conclusion = try await ctx.step("conclude", retry: .exponential(maxAttempts: 3), queue: QueueEntry(Self.modelQueue)) {
            try await model.complete("Conclude on \(input.topic) from: " + summaries.joined(separator: " | "))
        }
        try await ctx.publish("progress", Progress(stage: "done", done: total, of: total))
        return Report(topic: input.topic, summaries: summaries, missing: results.filter { $0.summary == nil }.map(\.url), conclusion: conclusion)
    }
}

/// One source of the research agent: asks for a scrape, waits for it to arrive as the
/// `scraped` event, and has the model summarize it.
public struct ResearchSource: Workflow {
    public static let name = "research-source"

    /// Which page, and how long its scrape may take.
    public struct Input: Codable, Sendable {
        public var url: String
        public var timeoutSeconds: Int
    }

    /// What the scraper delivers (the `scraped` event's payload).
    public struct Scrape: Codable, Sendable {
        public var text: String

        public init(text: String) {
            self.text = text
        }
    }

    /// The source's summary, or `nil` when its scrape did not arrive in time.
    public struct Summary: Codable, Sendable, Equatable {
        public var url: String
        public var summary: String?
    }

    let model: FakeModel

    public init(model: FakeModel = FakeModel()) {
        self.model = model
    }

    public func run(_ ctx: WorkflowContext, input: Input) async throws -> Summary {
        // A real agent would call the scraping service here, with the step's idempotency key.
        _ = try await ctx.step("request-scrape") { step in "scrape of \(input.url) requested as \(step.idempotencyKey)" }
        guard let page = try await ctx.waitForEvent("scraped", as: Scrape.self, timeout: .seconds(input.timeoutSeconds)) else {
            return Summary(url: input.url, summary: nil)
        }
        let model = self.model
        let summary = try await ctx.step("summarize", retry: .exponential(maxAttempts: 3), queue: QueueEntry(ResearchAgent.modelQueue)) {
            try await model.complete("Summarize \(input.url): \(page.text)")
        }
        return Summary(url: input.url, summary: summary)
    }
}

/// A stand-in for a language model's API: answers after a short delay with a deterministic text.
public struct FakeModel: Sendable {
    /// How long a completion takes.
    public var latency: Duration

    public init(latency: Duration = .milliseconds(50)) {
        self.latency = latency
    }

    /// A completion of `prompt`.
    public func complete(_ prompt: String) async throws -> String {
        try await Task.sleep(for: latency)
        let words = prompt.split(separator: " ")
        return "[\(words.count) words] " + words.prefix(8).joined(separator: " ")
    }
}
