// The research agent, in one process and a few seconds: three sources, each a child workflow
// that waits for its scrape (here, sent by this program as a webhook would); the model allows
// 4 calls at once and 60 a minute (a queue); the agent's progress is read as a query while it
// runs; one scrape never comes, and its source times out after two seconds.
//
//   make research-agent            (or: swift run ResearchAgent [--state DIR])
//
// The same workflows run in `continuum serve`, driven over HTTP (see the README).
import Continuum
import ContinuumExamples
import ContinuumLMDB
import Foundation
import Logging

var arguments = CommandLine.arguments.dropFirst()
var state = FileManager.default.temporaryDirectory.appendingPathComponent("continuum-research-\(UUID().uuidString)").path
while let argument = arguments.popFirst() {
    if argument == "--state", let value = arguments.popFirst() { state = value }
}

var logger = Logger(label: "research")
logger.logLevel = .warning
var configuration = WorkflowRuntime.Configuration(logger: logger)
configuration.queues = exampleQueues
let store = try LMDBStore(path: state)
let runtime = WorkflowRuntime(store: store, workflows: exampleWorkflows, configuration: configuration)

func progress(_ id: String) async -> String {
    guard let value = try? await runtime.query(id, "progress", as: ResearchAgent.Progress.self) else { return "no progress yet" }
    return "\(value.stage), \(value.done) of \(value.of) sources"
}

let sources = ["https://a.example/durable-execution", "https://b.example/event-sourcing", "https://c.example/never-answers"]
try await runtime.withRunning { runtime in
    let id = "research-\(UInt32.random(in: 0 ... .max))"
    let handle = try await runtime.start(
        ResearchAgent.self, id: id, input: .init(topic: "durable execution", sources: sources, scrapeTimeoutSeconds: 2), timeout: .seconds(600))
    print("started \(id): one child per source, each waiting for its scrape")
    // Every source waits for its scrape.
    for index in sources.indices {
        while (try? await runtime.history(of: "\(id)/source-\(index)"))?.contains(where: { $0.kindName == "waitStarted" }) != true {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    print("progress: \(await progress(id))")
    for index in 0..<2 {
        let receipt = try await runtime.send(
            "scraped", to: "\(id)/source-\(index)", payload: ResearchSource.Scrape(text: "What \(sources[index]) says about durable execution."),
            dedupKey: "scrape-\(index)")
        print("webhook: scrape of \(sources[index]) delivered to \(id)/source-\(index) (event #\(receipt.sequence))")
        try await Task.sleep(for: .milliseconds(200))
        print("progress: \(await progress(id))")
    }
    print("(no scrape comes for \(sources[2]); its source gives up after 2 s)")
    let report = try await handle.result()
    print("progress: \(await progress(id))")
    print("report on \(report.topic):")
    for summary in report.summaries { print("  - \(summary)") }
    print("  missing: \(report.missing.joined(separator: ", "))")
    print("  conclusion: \(report.conclusion)")
    print(report.summaries.count == 2 && report.missing == [sources[2]] ? "✓ two sources summarized, one timed out" : "✗ unexpected report")
}
await store.close()
