@_spi(Testing) import Continuum
@_spi(Testing) import ContinuumPostgres
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The test server's URL, naming `schema` when one is given.
private func postgresURL(schema: String?) throws -> String {
    var components = try #require(URLComponents(string: TestPostgres.url()))
    if let schema {
        components.queryItems = (components.queryItems ?? []).filter { $0.name != "schema" } + [URLQueryItem(name: "schema", value: schema)]
    }
    return try #require(components.string)
}

/// Runs the built `continuum` with `arguments`, with `environment` added to this process's;
/// returns its exit and what it printed on standard output (and on standard error with `errors`).
private func continuum(
    _ arguments: [String], environment: [String: String] = [:], errors: Bool = false
) async throws -> (exit: ChildProcess.Exit, output: String) {
    let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
    let command = errors ? ["/bin/sh", "-c", #"exec "$0" "$@" 2>&1"#, executable] : [executable]
    let child = try ChildProcess(
        executable: "/usr/bin/env", arguments: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + command + arguments)
    return (await child.exit(), child.output)
}

/// One HTTP request; returns the status and the body.
private func request(_ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil) async throws -> (Int, String) {
    var request = URLRequest(url: try #require(URL(string: url)))
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    request.httpBody = body.map { Data($0.utf8) }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}


/// Connects to `schema` of the test server, runs `body`, and closes the store (the schema stays).
private func withStore<R>(schema: String, _ body: (PostgresStore) async throws -> R) async throws -> R {
    var configuration = try PostgresStore.Configuration(url: TestPostgres.url())
    configuration.schema = schema
    return try await PostgresStore.connect(configuration: configuration, logger: testLogger).closing(body)
}

/// Drops `schema` of the test server and everything in it.
private func dropSchema(_ schema: String) async throws {
    try await withStore(schema: schema) { store in try await store.dropSchema() }
}

@Suite("The continuum commands on PostgreSQL", .serialized)
struct PostgresCLITests {
    @Test("serve runs a workflow started over HTTP; list and show print it; check names the workflow this build would break")
    func serveListShowCheck() async throws {
        let executable = try #require(builtExecutable(named: "continuum"), "build the continuum executable first (swift build)")
        let schema = TestPostgres.uniqueSchema("cli")
        let url = try postgresURL(schema: schema)
        let display = try PostgresStore.Configuration(url: url).displayURL
        do {
            // An older build started po-old; the example's code no longer matches it (serve may suspend it).
            try await withStore(schema: schema) { store in
                try await WorkflowRuntime.withRuntime(store: store, workflows: [OldPurchaseApproval()]) { runtime throws in
                    try await runtime.start(OldPurchaseApproval.self, id: "po-old", input: .init(item: "desk", amount: 300))
                    try await runtime.waitForHistory(of: "po-old") { $0.contains { $0.kindName == "waitStarted" } }
                }
            }

            // serve: po-1 completes, po-2 waits for its approval.
            let port = randomServerPort()
            let base = "http://127.0.0.1:\(port)"
            let server = try ChildProcess(executable: executable, arguments: ["serve", "--postgres", url, "--port", "\(port)"])
            defer { if !server.hasExited { server.kill() } }
            try await server.waitForLine("Continuum is serving \(display) at \(base)")
            let password = try #require(URLComponents(string: url)?.password)
            #expect(!server.output.contains(":\(password)@"), "the banner shows the password: \(server.output)")
            for id in ["po-1", "po-2"] {
                let (started, body) = try await request("POST", "\(base)/v1/workflows/purchase-approval?id=\(id)", body: #"{"item": "laptop", "amount": 1200}"#)
                #expect(started == 201, "\(body)")
            }
            let (sent, sendBody) = try await request(
                "POST", "\(base)/v1/workflows/po-1/events/approve", headers: ["Idempotency-Key": "approval-1"], body: #"{"approved": true, "by": "ops"}"#)
            #expect(sent == 202, "\(sendBody)")
            var completed = false
            for _ in 0..<500 where !completed {
                let (_, status) = try await request("GET", "\(base)/v1/workflows/po-1")
                completed = status.contains(#""status":"completed""#) && status.contains("approved by ops")
                if !completed { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(completed, "po-1 did not complete")
            var waiting = false
            for _ in 0..<500 where !waiting {
                waiting = try await request("GET", "\(base)/v1/workflows/po-2/history").1.contains(#""kind":"waitStarted""#)
                if !waiting { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(waiting, "po-2 did not start waiting for its approval")
            server.terminate()
            #expect(await server.exit() == .exited(0))

            // list and show read the database.
            let listed = try await continuum(["list", "--postgres", url])
            #expect(listed.exit == .exited(0), "\(listed.output)")
            let rows = listed.output.split(separator: "\n").map(String.init)
            #expect(rows.count == 3, "\(listed.output)")
            #expect(rows.contains { $0.hasPrefix("po-1\tpurchase-approval\tcompleted\t") }, "\(listed.output)")
            #expect(rows.contains { $0.hasPrefix("po-2\tpurchase-approval\trunning\t") }, "\(listed.output)")
            let finished = try await continuum(["list", "--postgres", url, "--status", "completed"])
            #expect(finished.output.hasPrefix("po-1\t") && finished.output.split(separator: "\n").count == 1, "\(finished.output)")
            let shown = try await continuum(["show", "po-1", "--postgres", url])
            #expect(shown.exit == .exited(0), "\(shown.output)")
            #expect(shown.output.hasPrefix("po-1  type purchase-approval  completed"), "\(shown.output)")
            #expect(shown.output.contains("step #0 'file-request' completed") && shown.output.contains("approved by ops"), "\(shown.output)")
            let missing = try await continuum(["show", "nobody", "--postgres", url], errors: true)
            #expect(missing.exit != .exited(0) && missing.output.contains("No workflow has id 'nobody' in \(display)"), "\(missing.output)")

            // check: po-2 replays with this build's code; po-old would be suspended.
            let checked = try await continuum(["check", "--postgres", url])
            #expect(checked.exit == .exited(1), "\(checked.output)")
            #expect(checked.output.contains("po-old") && checked.output.contains("'file-ticket'"), "\(checked.output)")
            #expect(checked.output.contains("Checked 2 workflow(s)") && checked.output.contains("1 would break"), "\(checked.output)")
            #expect(!checked.output.contains("po-2"), "a compatible workflow is listed without --all: \(checked.output)")
            let json = try await continuum(["check", "--postgres", url, "--json"])
            #expect(json.exit == .exited(1))
            let report = try JSONDecoder().decode(CheckReport.self, from: Data(json.output.utf8))
            #expect(report.checked == 2 && report.breaking == 1)
            #expect(report.entries.first { $0.id == "po-old" }?.verdict == .wouldSuspend)
            #expect(report.entries.first { $0.id == "po-2" }?.verdict == .compatible)
        } catch {
            try? await dropSchema(schema)
            throw error
        }
        try await dropSchema(schema)
    }

    @Test("gc deletes a workflow that finished before the cutoff with its events and timers, keeps the others and the counts right; verify is clean, then names a damaged event")
    func gcAndVerify() async throws {
        let schema = TestPostgres.uniqueSchema("cli")
        let url = try postgresURL(schema: schema)
        do {
            try await withStore(schema: schema) { store in
                // On a clock in January: old-done finishes, old-waiting starts a three-day sleep.
                let january = ManualClock()
                try await WorkflowRuntime.withRuntime(
                    store: store, workflows: [ThreeSteps(), Approval(ledger: Ledger())], configuration: .init(clock: january)
                ) { runtime throws in
                    #expect(try await runtime.start(ThreeSteps.self, id: "old-done", input: 1).result() == 3)
                    try await runtime.start(Approval.self, id: "old-waiting", input: "old")
                    try await runtime.waitForTimers(1)
                }
                // new-done finishes now.
                try await WorkflowRuntime.withRuntime(store: store, workflows: [ThreeSteps()]) { runtime throws in
                    #expect(try await runtime.start(ThreeSteps.self, id: "new-done", input: 2).result() == 5)
                }
                // A timer left behind by old-done, which gc takes with it.
                try await store.execute("INSERT INTO {schema}.timers (due, stream, id) SELECT 1, stream, id FROM {schema}.workflows WHERE id = convert_to('old-done', 'UTF8')")
                let counts = try await store.counts()
                #expect(counts[.completed] == 2 && counts[.running] == 1, "\(counts)")
            }
            let collected = try await continuum(["gc", "--finished-before", "1d", "--postgres", url])
            #expect(collected.exit == .exited(0), "\(collected.output)")
            #expect(collected.output.contains("Deleted 1 workflow(s)"), "\(collected.output)")
            try await withStore(schema: schema) { store in
                #expect(try await store.load(id: "old-done") == nil)
                let left = try await store.list(status: nil, after: nil, limit: 10).map(\.summary.id)
                #expect(left == ["old-waiting", "new-done"], "\(left)")
                let counts = try await store.counts()
                #expect(counts[.completed] == 1 && counts[.running] == 1, "\(counts)")
                #expect(!(try await store.timers(after: nil, limit: 10).contains { $0.id == "old-done" }))
            }
            let again = try await continuum(["gc", "--finished-before", "1d", "--postgres", url])
            #expect(again.exit == .exited(0) && again.output.contains("Deleted 0 workflow(s)"), "\(again.output)")

            // verify: clean (the counts match, gc left no event behind), then a damaged event is named.
            let clean = try await continuum(["verify", "--postgres", url])
            #expect(clean.exit == .exited(0), "\(clean.output)")
            #expect(clean.output.contains("2 workflows") && clean.output.contains("Every value is intact."), "\(clean.output)")
            try await withStore(schema: schema) { store in try await store.damage(id: "new-done", sequence: 1) }
            let damaged = try await continuum(["verify", "--postgres", url])
            #expect(damaged.exit == .exited(1), "\(damaged.output)")
            #expect(damaged.output.contains("1 damaged value(s); workflows affected: new-done:"), "\(damaged.output)")
            #expect(damaged.output.contains("events workflow 'new-done' (stream ") && damaged.output.contains("event 1: corruptedData"), "\(damaged.output)")
        } catch {
            try? await dropSchema(schema)
            throw error
        }
        try await dropSchema(schema)
    }

    @Test("verify reports an event count or a status count that does not match the rows")
    func verifyCounts() async throws {
        let schema = TestPostgres.uniqueSchema("cli")
        let url = try postgresURL(schema: schema)
        do {
            try await withStore(schema: schema) { store in
                try await WorkflowRuntime.withRuntime(store: store, workflows: [ThreeSteps()]) { runtime throws in
                    for index in 0..<3 { _ = try await runtime.start(ThreeSteps.self, id: "w\(index)", input: index).result() }
                }
                let report = try await store.verify()
                #expect(report.isClean && report.checked["workflows"] == 3 && report.checked["counts"] == 1, "\(report.problems)")
                try await store.execute("UPDATE {schema}.workflows SET event_count = event_count + 1 WHERE id = convert_to('w1', 'UTF8')")
                try await store.execute("UPDATE {schema}.counts SET count = count + 5 WHERE status = 'completed'")
                let broken = try await store.verify()
                #expect(broken.damagedWorkflows == ["w1"], "\(broken.problems)")
                #expect(broken.problems.map(\.database).sorted() == ["counts", "workflows"], "\(broken.problems)")
            }
            let command = try await continuum(["verify", "--postgres", url])
            #expect(command.exit == .exited(1), "\(command.output)")
            #expect(command.output.contains("workflow 'w1'") && command.output.contains("kept counts"), "\(command.output)")
        } catch {
            try? await dropSchema(schema)
            throw error
        }
        try await dropSchema(schema)
    }

    @Test("CONTINUUM_POSTGRES_URL names the database when no flag does; --path wins over it; --path with --postgres is refused")
    func environmentAndRefusal() async throws {
        let schema = TestPostgres.uniqueSchema("cli")
        let url = try postgresURL(schema: schema)
        do {
            try await withStore(schema: schema) { store in
                try await WorkflowRuntime.withRuntime(store: store, workflows: [ThreeSteps()]) { runtime throws in
                    _ = try await runtime.start(ThreeSteps.self, id: "from-env", input: 1).result()
                }
            }
            let listed = try await continuum(["list"], environment: ["CONTINUUM_POSTGRES_URL": url])
            #expect(listed.exit == .exited(0) && listed.output.hasPrefix("from-env\tthree-steps\tcompleted\t"), "\(listed.output)")
            let verified = try await continuum(["verify"], environment: ["CONTINUUM_POSTGRES_URL": url])
            #expect(verified.exit == .exited(0) && verified.output.contains("1 workflows"), "\(verified.output)")
            try await withTemporaryDirectory { path in
                let local = try await continuum(["list", "--path", path], environment: ["CONTINUUM_POSTGRES_URL": url])
                #expect(local.exit == .exited(0) && local.output.isEmpty, "--path did not win over the variable: \(local.output)")

                let refused = path + "/refused"
                let both = try await continuum(["list", "--path", refused, "--postgres", url], errors: true)
                #expect(both.exit == .exited(64), "\(both.output)")
                #expect(both.output.contains("Give either --path (an LMDB directory) or --postgres (a PostgreSQL URL), not both."), "\(both.output)")
                #expect(!FileManager.default.fileExists(atPath: refused), "it opened the store before refusing")
            }
            // bench never writes into the schema the variable names: it makes its own beside it.
            let bench = try await continuum(["bench", "--workflows", "20", "--json"], environment: ["CONTINUUM_POSTGRES_URL": url])
            #expect(bench.exit == .exited(0), "\(bench.output)")
            #expect(bench.output.contains("schema=bench_") && !bench.output.contains(schema), "\(bench.output)")
            let untouched = try await continuum(["list"], environment: ["CONTINUUM_POSTGRES_URL": url])
            #expect(untouched.output.split(separator: "\n").count == 1, "the bench wrote into the variable's schema: \(untouched.output)")

            let bad = try await continuum(["verify", "--postgres", "mysql://db/app"], errors: true)
            #expect(bad.exit == .exited(64) && bad.output.contains("--postgres: 'mysql://db/app' is not a PostgreSQL URL"), "\(bad.output)")
            let badVariable = try await continuum(["gc", "--finished-before", "1d"], environment: ["CONTINUUM_POSTGRES_URL": "postgres://nobody"], errors: true)
            #expect(badVariable.exit == .exited(64) && badVariable.output.contains("CONTINUUM_POSTGRES_URL: "), "\(badVariable.output)")
        } catch {
            try? await dropSchema(schema)
            throw error
        }
        try await dropSchema(schema)
    }

    @Test("bench --postgres measures in a new schema and drops it; --keep keeps it", arguments: ["steps", "events", "timers", "check", "restart", "raw", "recovery"])
    func bench(_ scenario: String) async throws {
        let url = try postgresURL(schema: nil)
        let keep = scenario == "events"
        let run = try await continuum(
            ["bench", "--postgres", url, "--scenario", scenario, "--workflows", scenario == "steps" ? "200" : "50", "--json"] + (keep ? ["--keep"] : []))
        #expect(run.exit == .exited(0), "\(run.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
        #expect(report["scenario"] as? String == scenario)
        for field in ["cpu_us_per_workflow", "p50_ms", "p99_ms"] {
            #expect(report[field] is Double, "\(field) missing: \(run.output)")
        }
        if scenario == "steps" {
            #expect(report["workflows"] as? Int == 200 && (report["workflows_per_second"] as? Double ?? 0) > 0, "\(run.output)")
        }
        if scenario == "raw" {
            #expect((report["events_per_second"] as? Double ?? 0) > 0, "\(run.output)")
        }
        if scenario == "recovery" {
            // All 50 were asleep in the killed process, and all completed in the recovering one.
            #expect(report["unfinished_at_kill"] as? Int == 50 && report["completed"] as? Int == 50, "\(run.output)")
            #expect((report["seconds_to_complete"] as? Double ?? 0) > 0 && (report["peak_rss_mb"] as? Double ?? 0) > 0, "\(run.output)")
        }
        let store = try #require(report["store"] as? String, "\(run.output)")
        let schema = String(try #require(store.split(separator: "schema=").last))
        #expect(schema.hasPrefix("bench_") && !store.contains(":continuum@"), "\(store)")
        // Whether the schema is still there, asked through a store on a schema of its own.
        let probe = TestPostgres.uniqueSchema("probe")
        try await withStore(schema: probe) { store in
            let exists = "SELECT 1 FROM pg_namespace WHERE nspname = '\(schema)'"
            try await store.execute(
                keep
                    ? "DO $$ BEGIN IF NOT EXISTS (\(exists)) THEN RAISE EXCEPTION 'the kept schema is gone'; END IF; END $$"
                    : "DO $$ BEGIN IF EXISTS (\(exists)) THEN RAISE EXCEPTION 'the schema was not dropped'; END IF; END $$")
            try await store.dropSchema()
        }
        if keep {
            let kept = try await continuum(["list", "--postgres", try postgresURL(schema: schema), "--status", "completed", "--limit", "1000"])
            #expect(kept.output.split(separator: "\n").count == 50, "\(kept.output)")
            try await dropSchema(schema)
        }
    }

    @Test("bench --postgres with a URL that names a schema measures in that schema and keeps it")
    func benchInNamedSchema() async throws {
        let schema = TestPostgres.uniqueSchema("named")
        let url = try postgresURL(schema: schema)
        do {
            let run = try await continuum(["bench", "--postgres", url, "--workflows", "30", "--json"])
            #expect(run.exit == .exited(0), "\(run.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run.output)")
            #expect(report["store"] as? String == (try PostgresStore.Configuration(url: url).displayURL), "\(run.output)")
            let listed = try await continuum(["list", "--postgres", url, "--status", "completed"])
            #expect(listed.output.split(separator: "\n").count == 30, "\(listed.output)")
        } catch {
            try? await dropSchema(schema)
            throw error
        }
        try await dropSchema(schema)
    }
}
