@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP request with URLSession; returns the status and the body.
func request(_ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil) async throws -> (Int, String) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    request.httpBody = body.map { Data($0.utf8) }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

@Suite("continuum serve", .serialized)
struct ServeTests {
    @Test("a service's own executable (Examples/Billing) serves its workflows with the flags of continuum serve; SIGTERM stops it gracefully and the next start continues")
    func ownWorkflows() async throws {
        let executable = try #require(builtExecutable(named: "Billing"), "build the Billing example first (swift build)")
        try await withTemporaryDirectory { path in
            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            func serve() async throws -> ChildProcess {
                let server = try ChildProcess(executable: executable, arguments: ["--path", path, "--port", "\(port)"])
                try await server.waitForLine("Continuum is serving \(path) at \(base)")
                return server
            }
            var server = try await serve()
            defer { if !server.hasExited { server.kill() } }
            #expect(server.output.contains("workflows: invoice"), "\(server.output)")
            let (started, body) = try await request("POST", "\(base)/v1/workflows/invoice?id=inv-1", body: #"{"customer": "acme", "cents": 4200}"#)
            #expect(started == 201, "\(body)")
            var history = ""
            for _ in 0..<500 where !history.contains(#""kind":"waitStarted""#) {
                history = try await request("GET", "\(base)/v1/workflows/inv-1/history").1
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(history.contains(#""kind":"waitStarted""#), "\(history)")
            // SIGTERM: a graceful stop, exit status 0; the workflow waits in the store.
            server.signal(SIGTERM)
            #expect(await server.exit() == .exited(0))
            server = try await serve()
            let (sent, answer) = try await request(
                "POST", "\(base)/v1/workflows/inv-1/events/paid", headers: ["Idempotency-Key": "pay-1"], body: #"{"reference": "tx-9"}"#)
            #expect(sent == 202, "\(answer)")
            var info = ""
            for _ in 0..<500 where !info.contains(#""status":"completed""#) {
                info = try await request("GET", "\(base)/v1/workflows/inv-1").1
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(info.contains("INV-inv-1 for acme: 4200 cents paid (tx-9)"), "\(info)")
            // Its flags are continuum serve's: a public address without a token is refused.
            let refused = try ChildProcess(executable: executable, arguments: ["--path", path + "-other", "--host", "0.0.0.0", "--port", "\(port + 1)"])
            #expect(await refused.exit() == .exited(64), "a usage error, not a crash")
            // A store another process holds: an error and status 1, not a trap.
            let second = try ChildProcess(executable: executable, arguments: ["--path", path, "--port", "\(port + 2)"])
            #expect(await second.exit() == .exited(1), "a second server on the same directory")
            server.signal(SIGTERM)
            #expect(await server.exit() == .exited(0))
        }
    }

    @Test("the research agent over HTTP: a child per source, scrapes arriving as webhooks, progress as a query, a SIGKILL in the middle")
    func researchAgent() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            func serve() async throws -> ChildProcess {
                let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--port", "\(port)"])
                try await server.waitForLine("Continuum is serving \(path) at \(base)")
                return server
            }
            /// Asks `url` until its answer satisfies `done`.
            func until(_ url: String, _ done: @escaping (Int, String) -> Bool) async throws -> String {
                var last = (0, "")
                for _ in 0..<1_000 {
                    last = try await request("GET", url)
                    if done(last.0, last.1) { return last.1 }
                    try await Task.sleep(for: .milliseconds(10))
                }
                Issue.record("\(url) never answered as expected; last \(last)")
                return last.1
            }
            let sources = ["https://a.example/durable", "https://b.example/replay", "https://c.example/leases"]
            var server = try await serve()
            defer { if !server.hasExited { server.kill() } }
            let (started, body) = try await request(
                "POST", "\(base)/v1/workflows/research-agent?id=r-1&timeout=600",
                body: #"{"topic": "durable execution", "sources": ["\#(sources[0])", "\#(sources[1])", "\#(sources[2])"], "scrapeTimeoutSeconds": 300}"#)
            #expect(started == 201, "\(body)")
            for index in 0..<3 {
                _ = try await until("\(base)/v1/workflows/r-1%2Fsource-\(index)/history") { $1.contains(#""kind":"waitStarted""#) }
            }
            let (sent, sentBody) = try await request(
                "POST", "\(base)/v1/workflows/r-1%2Fsource-0/events/scraped", headers: ["Idempotency-Key": "scrape-0"],
                body: #"{"text": "Durable execution resumes a workflow where it stopped."}"#)
            #expect(sent == 202, "\(sentBody)")
            let progress = try await until("\(base)/v1/workflows/r-1/queries/progress") { $0 == 200 && $1.contains(#""done":1"#) }
            #expect(progress.contains(#""stage":"scraping""#) && progress.contains(#""of":3"#), "\(progress)")

            // Killed in the middle: one source summarized, two waiting for their scrape.
            server.kill()
            _ = await server.exit()
            server = try await serve()
            let afterRestart = try await until("\(base)/v1/workflows/r-1/queries/progress") { status, _ in status == 200 }
            #expect(afterRestart.contains(#""done":1"#), "the progress is what the history says: \(afterRestart)")
            for index in 1..<3 {
                let (status, answer) = try await request(
                    "POST", "\(base)/v1/workflows/r-1%2Fsource-\(index)/events/scraped", headers: ["Idempotency-Key": "scrape-\(index)"],
                    body: #"{"text": "Page \#(index) about replays and leases."}"#)
                #expect(status == 202, "\(answer)")
            }
            let info = try await until("\(base)/v1/workflows/r-1") { $1.contains(#""status":"completed""#) }
            let workflow = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any]
            let result = try #require(workflow?["result"] as? String, "\(info)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any])
            let summaries = report["summaries"] as? [String] ?? []
            #expect(summaries.count == 3 && (report["missing"] as? [String])?.isEmpty == true, "\(report)")
            #expect((report["conclusion"] as? String)?.isEmpty == false, "\(report)")
            #expect(summaries.first?.contains("Durable execution") == true, "\(summaries)")
            let (_, final) = try await request("GET", "\(base)/v1/workflows/r-1/queries/progress")
            #expect(final.contains(#""stage":"done""#), "\(final)")
            server.terminate()
            #expect(await server.exit() == .exited(0))
        }
    }

    @Test("the README's two curl lines start a workflow and complete it; SIGTERM shuts down cleanly")
    func readmeFlow() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let port = randomServerPort()
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--port", "\(port)"])
            defer { if !server.hasExited { server.kill() } }
            let base = "http://127.0.0.1:\(port)"
            try await server.waitForLine("Continuum is serving \(path) at \(base)")
            let (started, startBody) = try await request(
                "POST", "\(base)/v1/workflows/purchase-approval?id=po-1", body: #"{"item": "laptop", "amount": 1200}"#)
            #expect(started == 201, "\(startBody)")
            let (sent, sendBody) = try await request(
                "POST", "\(base)/v1/workflows/po-1/events/approve", headers: ["Idempotency-Key": "approval-1"],
                body: #"{"approved": true, "by": "ops"}"#)
            #expect(sent == 202, "\(sendBody)")
            var completed = false
            for _ in 0..<200 where !completed {
                let (_, status) = try await request("GET", "\(base)/v1/workflows/po-1")
                completed = status.contains(#""status":"completed""#) && status.contains("approved by ops")
                if !completed { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(completed, "the workflow did not complete")
            server.terminate()
            #expect(await server.exit() == .exited(0))
            // The directory was released and the history kept.
            try await LMDBStore.withStore(path: path) { store throws in
                #expect(try await store.summary(id: "po-1")?.status == .completed)
            }
        }
    }

    @Test("continuum query, send, cancel, export and the schedule commands talk to a running server, with its token")
    func remoteCommands() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--port", "\(port)", "--token", "cli-token"])
            defer { if !server.hasExited { server.kill() } }
            try await server.waitForLine("Continuum is serving \(path) at \(base)")
            let auth = ["Authorization": "Bearer cli-token"]
            for id in ["po-1", "po-2"] {
                let (status, _) = try await request("POST", "\(base)/v1/workflows/purchase-approval?id=\(id)", headers: auth, body: #"{"item": "pen", "amount": 2}"#)
                #expect(status == 201)
            }
            func run(_ arguments: [String]) async throws -> (ChildProcess.Exit, String) {
                let command = try ChildProcess(executable: executable, arguments: arguments + ["--url", base, "--token", "cli-token"])
                return (await command.exit(), command.output)
            }
            var queried = try await run(["query", "po-1", "stage"])
            for _ in 0..<200 where queried.0 != .exited(0) {
                try await Task.sleep(for: .milliseconds(10))
                queried = try await run(["query", "po-1", "stage"])
            }
            #expect(queried.0 == .exited(0) && queried.1.contains("waits for approval"), "\(queried)")
            let sent = try await run(["send", "po-1", "approve", "--data", #"{"approved": true, "by": "cli"}"#, "--idempotency-key", "k1"])
            #expect(sent.0 == .exited(0) && sent.1.contains(#""duplicate":false"#), "\(sent)")
            let cancelled = try await run(["cancel", "po-2", "--reason", "not needed"])
            #expect(cancelled.0 == .exited(0), "\(cancelled)")
            var finished = false
            for _ in 0..<200 where !finished {
                let (_, first) = try await request("GET", "\(base)/v1/workflows/po-1", headers: auth)
                let (_, second) = try await request("GET", "\(base)/v1/workflows/po-2", headers: auth)
                finished = first.contains(#""status":"completed""#) && second.contains(#""status":"cancelled""#)
                if !finished { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(finished)
            let exported = try await run(["export", "po-2"])
            #expect(exported.0 == .exited(0))
            #expect(exported.1.contains(#""kind":"cancelRequested""#) && exported.1.contains("not needed"), "\(exported.1.prefix(400))")
            // What export prints is a history file, as the replayer reads it.
            let history = try WorkflowHistory(json: Data(exported.1.utf8))
            #expect(history.id == "po-2" && history.type == "purchase-approval" && history.status == .cancelled)
            let scheduled = try await run(["schedule", "daily", "--cron", "0 6 * * *", "--workflow", "purchase-approval", "--data", #"{"item": "pen", "amount": 1}"#])
            #expect(scheduled.0 == .exited(0) && scheduled.1.contains(#""next":["#), "\(scheduled)")
            let listed = try await run(["schedules"])
            #expect(listed.0 == .exited(0) && listed.1.contains(#""name":"daily""#), "\(listed)")
            let unscheduled = try await run(["unschedule", "daily"])
            #expect(unscheduled.0 == .exited(0), "\(unscheduled)")
            let unknown = try await run(["send", "nobody", "approve"])
            #expect(unknown.0 != .exited(0), "sending to an unknown workflow succeeded")
            server.terminate()
            #expect(await server.exit() == .exited(0))
        }
    }

    @Test("serve refuses a non-loopback address without a token")
    func refusesOpenBind() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--host", "0.0.0.0", "--port", "0"])
            let exit = await server.exit()
            #expect(exit != .exited(0), "it served on 0.0.0.0 without authentication")
            #expect(!FileManager.default.fileExists(atPath: path + "/data.mdb"), "it opened the store before refusing")
        }
    }
}

/// Registered under the name of `continuum serve`'s example, `purchase-approval`, with its
/// input and event: with `firstStep: "file-request"` its history is one the example's code
/// replays; with another name, one the example's code no longer matches.
struct StandInPurchase: Workflow {
    static let name = "purchase-approval"
    struct Input: Codable, Sendable { var item: String; var amount: Int }
    struct Decision: Codable, Sendable { var approved: Bool; var by: String }
    let firstStep: String

    func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
        let request = try await ctx.step(firstStep) { "REQ-stand-in" }
        _ = try await ctx.waitForEvent("approve", as: Decision.self, timeout: .seconds(7 * 86_400))
        return request
    }
}

extension ServeTests {
    @Test("continuum resume, reset and fork talk to a running server; list shows suspensions, show marks superseded events")
    func waysOutFromTheCommandLine() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        /// Runs `continuum` with `arguments`; returns its exit and what it printed, errors included.
        func continuum(_ arguments: [String]) async throws -> (exit: ChildProcess.Exit, output: String) {
            let command = try ChildProcess(executable: "/bin/sh", arguments: ["-c", #"exec "$0" "$@" 2>&1"#, executable] + arguments)
            return (await command.exit(), command.output)
        }
        let input = StandInPurchase.Input(item: "pen", amount: 2)
        try await withTemporaryDirectory { path in
            // po-resume's history matches the example; the stand-in with a renamed step then
            // suspends it and starts po-reset, whose history the example does not match.
            try await WorkflowRuntime.withLMDB(path: path, workflows: [StandInPurchase(firstStep: "file-request")]) { runtime throws in
                try await runtime.start(StandInPurchase.self, id: "po-resume", input: input)
                try await eventually { try await runtime.history(of: "po-resume").count == 3 }
            }
            try await WorkflowRuntime.withLMDB(path: path, workflows: [StandInPurchase(firstStep: "file-request-old")]) { runtime throws in
                try await eventually { try await runtime.status(of: "po-resume")?.status == .suspended }
                try await runtime.start(StandInPurchase.self, id: "po-reset", input: input)
                try await eventually { try await runtime.history(of: "po-reset").count == 3 }
            }
            let listed = try await continuum(["list", "--status", "suspended", "--path", path])
            #expect(listed.exit == .exited(0), "\(listed.output)")
            #expect(listed.output.hasPrefix("po-resume\tpurchase-approval\tsuspended\t") && listed.output.hasSuffix("\tnondeterminism\n"), "\(listed.output)")
            #expect(!listed.output.contains("po-reset"))

            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--path", path, "--port", "\(port)", "--token", "cli-token"])
            defer { if !server.hasExited { server.kill() } }
            try await server.waitForLine("Continuum is serving \(path) at \(base)")
            let auth = ["Authorization": "Bearer cli-token"]
            let remote = ["--url", base, "--token", "cli-token"]
            // The example's code does not match po-reset: it is suspended as the server starts.
            var suspended = false
            for _ in 0..<500 where !suspended {
                suspended = try await request("GET", "\(base)/v1/workflows/po-reset", headers: auth).1.contains(#""status":"suspended""#)
                if !suspended { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(suspended, "po-reset was not suspended")

            let resumed = try await continuum(["resume", "po-resume", "--by", "alice", "--reason", "the example matches"] + remote)
            #expect(resumed.exit == .exited(0), "\(resumed.output)")
            #expect(resumed.output.contains(#""action":"resume""#) && resumed.output.contains(#""by":"alice""#), "\(resumed.output)")
            let reset = try await continuum(["reset", "po-reset", "--to", "file-request-old", "--reason", "the step was renamed"] + remote)
            #expect(reset.exit == .exited(0), "\(reset.output)")
            #expect(reset.output.contains(#""action":"reset""#) && reset.output.contains(#""reason":"the step was renamed""#), "\(reset.output)")
            let forked = try await continuum(["fork", "po-resume", "--to", "file-request", "--as", "po-copy", "--by", "bob"] + remote)
            #expect(forked.exit == .exited(0), "\(forked.output)")
            #expect(forked.output.contains(#""created":true"#) && forked.output.contains(#""id":"po-copy""#), "\(forked.output)")
            for id in ["po-resume", "po-reset", "po-copy"] {
                let sent = try await continuum(["send", id, "approve", "--data", #"{"approved": true, "by": "ops"}"#] + remote)
                #expect(sent.exit == .exited(0), "\(id): \(sent.output)")
            }
            var finished = false
            for _ in 0..<500 where !finished {
                var all = true
                for id in ["po-resume", "po-reset", "po-copy"] {
                    all = try await request("GET", "\(base)/v1/workflows/\(id)", headers: auth).1.contains("approved by ops") && all
                }
                finished = all
                if !finished { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(finished, "the workflows did not complete with the example's code")

            // Refusals print the API's code and message, and exit non-zero.
            let refusals: [([String], String)] = [
                (["resume", "po-resume"] + remote, "notSuspended"),
                (["reset", "po-reset", "--to", "nope"] + remote, "invalidArgument"),
                (["fork", "po-resume", "--to", "file-request", "--as", "po-copy"] + remote, "workflowIDConflict"),
                (["resume", "nobody"] + remote, "unknownWorkflow"),
                (["resume", "po-resume", "--url", base], "unauthorized"),
                (["reset", "po-reset"] + remote, "--to"),
            ]
            for (arguments, code) in refusals {
                let refused = try await continuum(arguments)
                #expect(refused.exit != .exited(0), "\(arguments)")
                #expect(refused.output.contains(code), "\(arguments): \(refused.output)")
            }
            server.terminate()
            #expect(await server.exit() == .exited(0))

            // show prints who did what, and marks what the reset superseded.
            let reshown = try await continuum(["show", "po-reset", "--path", path])
            #expect(reshown.exit == .exited(0), "\(reshown.output)")
            let lines = reshown.output.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.contains("reset to event #1 (generation 1) by ") && $0.contains(": the step was renamed") }, "\(reshown.output)")
            let superseded = lines.filter { $0.hasPrefix("~") }
            #expect(superseded.count == 3, "\(reshown.output)")
            #expect(superseded.allSatisfy { $0.hasSuffix("[superseded by reset #1 at event #4]") }, "\(reshown.output)")
            #expect(superseded.first?.contains("'file-request-old' completed") == true, "\(reshown.output)")
            let shown = try await continuum(["show", "po-resume", "--path", path])
            #expect(shown.output.contains("suspended (nondeterminism)") && shown.output.contains("resumed by alice: the example matches"), "\(shown.output)")
            let copy = try await continuum(["show", "po-copy", "--path", path])
            #expect(copy.output.contains("forked from 'po-resume' at event #1 by bob: forked from the command line"), "\(copy.output)")
            let none = try await continuum(["list", "--status", "suspended", "--path", path])
            #expect(none.exit == .exited(0) && none.output.isEmpty, "\(none.output)")
        }
    }
}

@Suite("Retention")
struct RetentionTests {
    @Test("gc deletes finished workflows older than the cutoff, never running ones; the store verifies clean after")
    func gc() async throws {
        let executable = try #require(builtExecutable(named: "continuum"))
        try await withTemporaryDirectory { path in
            // On a manual clock in January: every timestamp is months before the real now.
            let clock = ManualClock()
            try await WorkflowRuntime.withLMDB(path: path, clock: clock, workflows: [Approval()]) { runtime throws in
                for index in 0..<4 { try await runtime.start(Approval.self, id: "a\(index)", input: .init(amount: index)) }
                for index in 0..<3 {
                    try await runtime.send("approve", to: "a\(index)", payload: Approval.Decision(by: "ops"))
                    _ = try await runtime.handle(Approval.self, id: "a\(index)").result()
                }
                try await runtime.waitForHistory(of: "a3") { $0.count == 2 }
            }
            do {
                try await LMDBStore.withStore(path: path) { store throws in
                    let error = await #expect(throws: ContinuumError.self) { try await store.deleteFinished(id: "a3") }
                    #expect(error?.code == .invalidArgument, "a running workflow was deletable")
                    #expect(try await store.deleteFinished(id: "nobody") == false)
                }
            }
            let command = try ChildProcess(executable: executable, arguments: ["gc", "--finished-before", "1d", "--path", path])
            #expect(await command.exit() == .exited(0))
            #expect(command.output.contains("Deleted 3 workflow(s)"), "\(command.output)")
            try await LMDBStore.withStore(path: path) { store throws in
                #expect(try await store.list(status: nil, after: nil, limit: 10).map(\.summary.id) == ["a3"])
                #expect(try await store.load(id: "a0") == nil)
                let report = try store.verify()
                #expect(report.isClean && report.checked["events"] == 2, "\(report.problems), \(report.checked)")
                // A deleted id can start a new workflow.
                try await WorkflowRuntime.withRuntime(store: store, workflows: [Approval()]) { runtime in
                    let receipt = try await runtime.start(type: "approval", id: "a0", json: Array(#"{"amount": 7}"#.utf8))
                    #expect(receipt.created)
                }
            }
        }
    }
}
