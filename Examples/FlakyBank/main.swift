// FlakyBank: a step calls a bank's API that fails its first three requests. The step retries
// (at most 5 attempts, waiting 1 s, then 2 s, then 4 s: `.exponential(maxAttempts: 5, initial:
// .seconds(1), factor: 2)`), and the fourth attempt goes through. The bank is a local HTTP server
// the example starts. It prints each attempt with its time, and shows that no thread waited
// during the backoff: each wait is a durable timer, not a sleeping thread, so 200 other
// workflows run to completion while the payment waits.
//
//   FlakyBank [--state DIR]
import AsyncHTTPClient
import Continuum
import ContinuumLMDB
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Writes a line at once.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// The bank: `POST /transfers` answers 503 to its first three requests, then 200 with a
/// confirmation number.
final class Bank: Sendable {
    let requests = Atomic<Int>(0)

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/transfers") { [requests = self] _, _ -> Response in
            let number = requests.requests.add(1, ordering: .relaxed).newValue
            guard number > 3 else { return Response(status: .serviceUnavailable) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "tx-\(1000 + number)")))
        }
        return router
    }
}

/// The bank answered with something other than 200.
struct BankUnavailable: Error { var status: UInt }

/// When the example started, for the attempts' times.
let started = ContinuousClock.now
func elapsed() -> String {
    let (seconds, attoseconds) = (ContinuousClock.now - started).components
    return String(format: "%.2f s", Double(seconds) + Double(attoseconds) / 1e18)
}

/// Pays an invoice through the bank, retrying while it is unavailable.
struct PayInvoice: Workflow {
    static let name = "pay-invoice"
    let bank: String

    func run(_ ctx: WorkflowContext, input invoice: String) async throws -> String {
        try await ctx.step("transfer", retry: .exponential(maxAttempts: 5, initial: .seconds(1), factor: 2, jitter: 0)) { step in
            let at = elapsed()  // when the attempt began: the waits run from one attempt's end to the next's start
            var request = HTTPClientRequest(url: "\(bank)/transfers")
            request.method = .POST
            request.headers.add(name: "Idempotency-Key", value: step.idempotencyKey)
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 1024)
            say("attempt \(step.attempt) at \(at): \(response.status.code)")
            guard response.status == .ok else { throw BankUnavailable(status: response.status.code) }
            return String(buffer: body)
        }
    }
}

/// Another workflow, to show the runtime keeps working while the payment waits.
struct Chore: Workflow {
    static let name = "chore"
    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        let a = try await ctx.step("a") { input }
        return try await ctx.step("b") { a + 1 }
    }
}

/// Threads in this process, from /proc.
func threads() -> String {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix("Threads:") }.map { String($0.dropFirst(8)).trimmingCharacters(in: .whitespaces) } ?? "?"
}

/// Pays invoice-7 through the bank at `url` while 200 other workflows run; returns the
/// confirmation.
func pay(bank url: String, store: LMDBStore, logger: Logger) async throws -> String {
    let runtime = WorkflowRuntime(store: store, workflows: [PayInvoice(bank: url), Chore()], configuration: .init(logger: logger))
    return try await runtime.withRunning { runtime in
        let payment = try await runtime.start(PayInvoice.self, id: "invoice-7", input: "invoice-7")
        // While the payment waits between attempts, other workflows run to completion.
        var others = 0
        for index in 0..<200 {
            others += try await runtime.start(Chore.self, id: "chore-\(index)", input: index).result() == index + 1 ? 1 : 0
        }
        let during = elapsed()
        let threadsDuring = threads()
        let confirmation = try await payment.result()
        say("while the payment waited: \(others) other workflows completed by \(during), with \(threadsDuring) threads in the process")
        return confirmation
    }
}

/// Starts the bank, pays, stops the bank.
func story(state: String) async throws -> (confirmation: String, requests: Int) {
    var quiet = Logger(label: "flaky-bank")
    quiet.logLevel = .warning
    let bank = Bank()
    let (listening, listen) = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: bank.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in listen.yield(channel.localAddress?.port ?? 0) }, logger: quiet)
    var storeConfiguration = LMDBStore.Configuration()
    storeConfiguration.logger = quiet
    let store = try LMDBStore(path: state, configuration: storeConfiguration)
    let server = ServiceGroup(configuration: .init(services: [app], logger: quiet))
    let confirmation = try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        var port = 0
        for await bound in listening {
            port = bound
            break
        }
        let url = "http://127.0.0.1:\(port)"
        say("bank listening at \(url); it fails the first three transfers")
        let result: Result<String, any Error>
        do {
            result = .success(try await pay(bank: url, store: store, logger: quiet))
        } catch {
            result = .failure(error)
        }
        // The bank finishes its requests and stops.
        await server.triggerGracefulShutdown()
        try await group.waitForAll()
        return try result.get()
    }
    await store.close()
    return (confirmation, bank.requests.load(ordering: .relaxed))
}

let arguments = Array(CommandLine.arguments.dropFirst())
let state = arguments.firstIndex(of: "--state").flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
    ?? NSTemporaryDirectory() + "continuum-flaky-bank-\(UUID().uuidString)"
try? FileManager.default.removeItem(atPath: state)
let (confirmation, requests) = try await story(state: state)
try? FileManager.default.removeItem(atPath: state)
say("paid: \(confirmation) at \(elapsed()) after \(requests) requests")
