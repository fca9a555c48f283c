@_spi(Testing) import Continuum
@_spi(Testing) import ContinuumPostgres
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The test server's configuration in a new schema, changed by `change`.
private func configuration(_ change: (inout PostgresStore.Configuration) -> Void = { _ in }) throws -> PostgresStore.Configuration {
    var configuration = try PostgresStore.Configuration(url: TestPostgres.url())
    configuration.schema = TestPostgres.uniqueSchema("fault")
    change(&configuration)
    return configuration
}

private func connectError(_ configuration: PostgresStore.Configuration) async -> ContinuumError? {
    do {
        let store = try await PostgresStore.connect(configuration: configuration, logger: testLogger)
        await store.close()
        return nil
    } catch {
        return error
    }
}

/// A loopback port nothing listens on.
private func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &address) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            guard bind(fd, raw, length) == 0, getsockname(fd, raw, &length) == 0 else { throw TestPostgresError(message: "bind failed") }
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("PostgreSQL faults get named errors")
struct PostgresFaultTests {
    @Test("bad URLs are refused with invalidArgument naming what is wrong, and the password never shows")
    func badURLs() throws {
        let cases: [(String, String)] = [
            ("mysql://u:p@h/db", "not a PostgreSQL URL"),
            ("postgres://u:secret@/db", "names no host"),
            ("postgres://h:5432/db", "names no user"),
            ("postgres://u:secret@h:5432/", "names no database"),
            ("postgres://u:secret@h:5432/db?pool=9", "not supported"),
            ("postgres://u:secret@h:5432/db?schema=Bad-Name", "schema name"),
        ]
        for (url, expected) in cases {
            let error = #expect(throws: ContinuumError.self) { try PostgresStore.Configuration(url: url) }
            #expect(error?.code == .invalidArgument, "\(url)")
            #expect(error?.message.contains(expected) == true, "\(url): \(error?.message ?? "")")
            #expect(error?.message.contains("secret") == false, "\(url): the password is in the message")
        }
        let good = try PostgresStore.Configuration(url: "postgresql://app:pw@db.internal:6543/orders?sslmode=require&schema=flows")
        #expect(good.host == "db.internal" && good.port == 6543 && good.username == "app" && good.password == "pw")
        #expect(good.database == "orders" && good.requireTLS && good.schema == "flows")
    }

    @Test("a wrong password and a missing database fail at once with storageFailure saying which")
    func refusedLogins() async throws {
        let start = ContinuousClock.now
        let password = await connectError(try configuration { $0.password = "wrong-password" })
        #expect(password?.code == .storageFailure)
        #expect(password?.message.contains("refused the credentials") == true, "\(password?.message ?? "connected")")
        #expect(password?.message.contains("wrong-password") == false)
        let database = await connectError(try configuration { $0.database = "no_such_database" })
        #expect(database?.code == .storageFailure)
        #expect(database?.message.contains("does not exist") == true, "\(database?.message ?? "connected")")
        // Neither waited for the connect timeout (30 s each): refusals are not retried. (Alone
        // they take milliseconds; a loaded machine running the suite took them past 10 s.)
        #expect(ContinuousClock.now - start < .seconds(25))
    }

    @Test("a server that is down at start is retried with backoff, then named with storageFailure")
    func serverDown() async throws {
        let port = try closedPort()
        let start = ContinuousClock.now
        let error = await connectError(try configuration {
            $0.port = port
            $0.connectTimeout = .seconds(1.5)
        })
        let waited = ContinuousClock.now - start
        #expect(error?.code == .storageFailure)
        #expect(error?.message.contains("could not be reached in") == true, "\(error?.message ?? "connected")")
        #expect(error?.message.contains("attempts") == true)
        // Within the 1.5 s connect timeout, not the default 30 s, with room for a loaded machine.
        #expect(waited >= .seconds(0.5) && waited < .seconds(20), "waited \(waited)")
    }

    @Test("a schema newer than this build is refused, naming both versions")
    func newerSchema() async throws {
        let configuration = try configuration()
        let store = try await PostgresStore.connect(configuration: configuration, logger: testLogger)
        try await store.execute("INSERT INTO {schema}.migrations (version, description) VALUES (99, 'from the future')")
        let error = await connectError(configuration)
        #expect(error?.code == .storageFailure)
        #expect(error?.message.contains("version 99, newer than this build knows (5)") == true, "\(error?.message ?? "connected")")
        try await store.dropSchema()
        await store.close()
    }

    @Test("a statement past statement_timeout is storeUnavailable, naming the timeout")
    func statementTimeout() async throws {
        let store = try await PostgresStore.connect(configuration: try configuration { $0.statementTimeout = .milliseconds(100) }, logger: testLogger)
        let error = await errorOf { try await store.execute("SELECT pg_sleep(2)") }
        #expect((error as? ContinuumError)?.code == .storeUnavailable)
        #expect((error as? ContinuumError)?.message.contains("statement_timeout") == true, "\(String(describing: error))")
        try await store.dropSchema()
        await store.close()
    }

    @Test("after close, reads and writes fail with storeClosed")
    func closed() async throws {
        let store = try await PostgresStore.connect(configuration: try configuration(), logger: testLogger)
        try await store.dropSchema()
        await store.close()
        let error = await errorOf { _ = try await store.summary(id: "x") }
        #expect((error as? ContinuumError)?.code == .storeClosed)
    }
}

/// Runs `tools/postgres.sh command` against the cluster in `folder`; returns what it printed.
func postgresScript(_ command: String, folder: String) throws -> String {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/postgres.sh").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [script, command]
    process.environment = ProcessInfo.processInfo.environment.merging(["CONTINUUM_PG_DIR": folder]) { $1 }
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw TestPostgresError(message: "tools/postgres.sh \(command) exited \(process.terminationStatus)") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Runs `tools/postgres.sh command` for the cluster in `folder` on a thread of its own (it waits
/// for the server for seconds), not on the tests' cooperative pool: two of its threads on this
/// machine, and a script blocking one stalled every test running beside it (leases lapsed, and
/// tests that bound a time failed).
func postgresScriptOffThePool(_ command: String, folder: String) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try postgresScript(command, folder: folder) }) }
    }
}

/// Runs `body` with a PostgreSQL cluster of its own (its URL and folder), stopped afterwards
/// however `body` ends: for a test that restarts the server, which would fail the other suites'
/// queries on the shared one.
func withOwnPostgres<R>(_ name: String, _ body: (_ url: String, _ folder: String) async throws -> R) async throws -> R {
    let folder = NSTemporaryDirectory() + "continuum-pg-\(name)-\(UUID().uuidString.prefix(8))"
    do {
        let result = try await body(try await postgresScriptOffThePool("start", folder: folder), folder)
        _ = try? await postgresScriptOffThePool("stop", folder: folder)
        return result
    } catch {
        _ = try? await postgresScriptOffThePool("stop", folder: folder)
        throw error
    }
}

/// Steps with real sleeps between them, so that a restart falls in the middle of many runs.
struct Paced: Workflow {
    static let name = "paced"
    let ledger: Ledger

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        var total = input
        for index in 0..<4 {
            total = try await ctx.step("s\(index)") {
                ledger.record("w\(input)-s\(index)")
                return total + 1
            }
            try await ctx.sleep(for: .milliseconds(300), name: "pause\(index)")
        }
        return total
    }
}

@Suite("PostgreSQL restarted under load")
struct PostgresRestartTests {
    @Test("the database restarts while 200 workflows run: the runtime reconnects, every workflow completes, no step runs twice after its commit")
    func restartMidRun() async throws {
        try await withOwnPostgres("restart") { url, folder in try await restartMidRun(url: url, folder: folder) }
    }

    private func restartMidRun(url: String, folder: String) async throws {
        var configuration = try PostgresStore.Configuration(url: url)
        configuration.schema = "restart"
        configuration.connectTimeout = .seconds(60)
        configuration.commitTimeout = .seconds(3)
        let store = try await PostgresStore.connect(configuration: configuration, logger: testLogger)
        let ledger = Ledger()
        var runtimeConfiguration = WorkflowRuntime.Configuration()
        runtimeConfiguration.storageRetryInterval = .milliseconds(200)
        try await WorkflowRuntime.withRuntime(store: store, workflows: [Paced(ledger: ledger)], configuration: runtimeConfiguration) { runtime in
            var handles: [WorkflowHandle<Paced>] = []
            for index in 0..<200 { handles.append(try await runtime.start(Paced.self, id: "p\(index)", input: index * 100)) }
            try await Task.sleep(for: .milliseconds(500))
            _ = try await postgresScriptOffThePool("restart", folder: folder)
            for (index, handle) in handles.enumerated() {
                let result = try await withTimeout(.seconds(60)) { try await handle.result() }
                #expect(result == index * 100 + 4)
            }
            let counts = try await store.counts()
            #expect(counts[.completed] == 200, "\(counts)")
        }
        await store.close()
        // A step may run again only when the restart cut off its commit's acknowledgement; the
        // history holds each step once (the workflows completed with the right totals above).
        #expect(ledger.total >= 800)
    }
}
