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
    @Test("the README's two curl lines start a workflow and complete it; SIGTERM shuts down cleanly")
    func readmeFlow() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let port = Int.random(in: 20_000..<60_000)
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

    @Test("continuum send, cancel and export talk to a running server, with its token")
    func remoteCommands() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        try await withTemporaryDirectory { path in
            let port = Int.random(in: 20_000..<60_000)
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
