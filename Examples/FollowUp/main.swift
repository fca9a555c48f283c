// FollowUp: the seed's three-day follow-up. After a sign-up the workflow sends a welcome mail,
// then waits up to three days for the user's feedback: a thank-you as soon as it comes, a
// reminder once three days pass without it. Two users: ada answers on day 1, bob never does.
//
//   FollowUp [--state DIR]            the manual clock: three days pass in well under a second
//   FollowUp --real --day-ms MS       the system clock, with a "day" of MS milliseconds
//
// It prints each mail with the (workflow) day it went out, and a verdict line; it exits 1 when
// the story did not go as told.
import Continuum
import ContinuumLMDB
import ContinuumTesting
import Foundation
import Synchronization

/// What a user says about the product.
struct Feedback: Codable, Sendable { var stars: Int; var text: String }

/// The mail service: records what it sent, with when.
final class Outbox: Sendable {
    private let sent = Mutex<[String]>([])
    func send(_ line: String) { sent.withLock { $0.append(line) } }
    var lines: [String] { sent.withLock { $0 } }
}

struct FollowUp: Workflow {
    static let name = "follow-up"
    let outbox: Outbox
    let day: Duration

    func run(_ ctx: WorkflowContext, input email: String) async throws -> String {
        let start = try await ctx.now(name: "signed-up")
        // The day it is (whole days since sign-up, rounded down): on the system clock a wait ends
        // a little after its deadline, never before it.
        func dayOf(_ date: Date) -> String { "day \(Int((date.timeIntervalSince(start) / day.seconds).rounded(.down)))" }
        try await ctx.step("welcome") { outbox.send("\(dayOf(start)): welcome → \(email)") }
        // Durable: no process needs to run while it waits; a restart resumes the wait.
        let feedback = try await ctx.waitForEvent("feedback", as: Feedback.self, timeout: day * 3)
        let now = try await ctx.now(name: "decided")
        if let feedback {
            try await ctx.step("thank-you") { outbox.send("\(dayOf(now)): thank-you (\(feedback.stars)★ \"\(feedback.text)\") → \(email)") }
            return "thanked"
        }
        try await ctx.step("reminder") { outbox.send("\(dayOf(now)): reminder → \(email)") }
        return "reminded"
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
let real = arguments.contains("--real")
let day: Duration = real ? .milliseconds(Int(option("--day-ms") ?? "1000") ?? 1000) : .seconds(86_400)
let state = option("--state") ?? NSTemporaryDirectory() + "continuum-follow-up-\(UUID().uuidString)"
try? FileManager.default.removeItem(atPath: state)

let outbox = Outbox()
let manual = ManualClock()
var configuration = WorkflowRuntime.Configuration()
if !real { configuration.clock = manual }
let store = try LMDBStore(path: state)
let runtime = WorkflowRuntime(store: store, workflows: [FollowUp(outbox: outbox, day: day)], configuration: configuration)
print(real ? "FollowUp on the system clock, a day lasting \(day)" : "FollowUp on the manual clock: three days pass at once")

let results = try await runtime.withRunning { runtime -> [String] in
    let ada = try await runtime.start(FollowUp.self, id: "ada", input: "ada@example.com")
    let bob = try await runtime.start(FollowUp.self, id: "bob", input: "bob@example.com")
    // Both wait (a timer each) before time moves.
    try await runtime.waitForTimers(2)
    if real { try await Task.sleep(for: day) } else { manual.advance(by: day) }
    try await runtime.send("feedback", to: "ada", payload: Feedback(stars: 5, text: "smooth"), dedupKey: "ada-feedback-1")
    _ = try await ada.result()
    if !real { manual.advance(by: day * 2) }
    return [try await ada.result(), try await bob.result()]
}
await store.close()
try? FileManager.default.removeItem(atPath: state)

for line in outbox.lines.sorted() { print("  ✉︎ \(line)") }
let expected = [
    "day 0: welcome → ada@example.com", "day 0: welcome → bob@example.com",
    "day 1: thank-you (5★ \"smooth\") → ada@example.com", "day 3: reminder → bob@example.com",
]
if results == ["thanked", "reminded"], outbox.lines.sorted() == expected.sorted() {
    print("✓ ada was thanked on day 1, bob reminded on day 3; each mail went out once")
} else {
    print("✗ expected \(expected), got \(outbox.lines) and results \(results)")
    exit(1)
}
