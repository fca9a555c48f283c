@_spi(Testing) import Continuum
import ContinuumHTTP
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Where the screenshots go: `CONTINUUM_ARTIFACTS`, or `.build/artifacts` under the working directory.
private var artifacts: String {
    let directory = ProcessInfo.processInfo.environment["CONTINUUM_ARTIFACTS"] ?? FileManager.default.currentDirectoryPath + "/.build/artifacts"
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
}

/// Runs headless Chromium (Debian's `chromium`) with `arguments` and returns what it printed.
private func chromium(_ arguments: [String]) async throws -> String {
    let browser = try #require(
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
        "headless Chromium is required: apt-get install chromium (make test installs it)")
    // A fresh profile per run, removed after it (each one is a few megabytes).
    let profile = NSTemporaryDirectory() + "/continuum-chromium-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: profile) }
    let process = try ChildProcess(
        executable: browser,
        arguments: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--log-level=3", "--user-data-dir=\(profile)"]
            + arguments)
    let exit = await process.exit()
    #expect(exit == .exited(0), "chromium \(exit)")
    return process.output
}

private func form(_ fields: [String: String]) -> ByteBuffer {
    ByteBuffer(string: fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&"))
}

@Suite("Dashboard", .serialized)
struct DashboardTests {
    @Test("in headless Chromium: counts by status, the list, a timeline with its forms; the forms send and cancel")
    func inBrowser() async throws {
        try await withAPI { client, runtime in
            let port = try #require(client.port)
            let base = "http://127.0.0.1:\(port)"
            for (id, amount) in [("po-1", 1200), ("po-2", 300)] {
                _ = try await client.execute(uri: "/v1/workflows/approval?id=\(id)", method: .post, body: ByteBuffer(string: #"{"amount": \#(amount)}"#))
                try await runtime.waitForHistory(of: id) { $0.count == 2 }
            }
            // The event form: a real form post, answered with a redirect to the timeline.
            let sent = try await client.execute(
                uri: "/ui/workflows/po-1/events", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: form(["name": "approve", "payload": #"{"by": "the dashboard"}"#]))
            #expect(sent.status == .seeOther && sent.headers[.location] == "/ui/workflows/po-1")
            #expect(try await runtime.handle(Approval.self, id: "po-1").result() == "1200 approved by the dashboard")
            let cancelled = try await client.execute(uri: "/ui/workflows/po-2/cancel", method: .post)
            #expect(cancelled.status == .seeOther)
            await #expect(throws: ContinuumError.self) { try await runtime.handle(Approval.self, id: "po-2").result() }

            let overview = try await chromium(["--dump-dom", base + "/"])
            #expect(overview.contains(#"data-status="completed"><b>1</b> completed"#), "\(overview.prefix(2000))")
            #expect(overview.contains(#"data-status="cancelled"><b>1</b> cancelled"#))
            #expect(overview.contains(#"<a href="/ui/workflows/po-1">po-1</a>"#))
            let timeline = try await chromium(["--dump-dom", base + "/ui/workflows/po-1"])
            #expect(timeline.contains(#"<span id="status" class="status completed">completed</span>"#))
            for kind in ["workflowStarted", "waitStarted", "eventReceived", "waitEnded", "workflowCompleted"] {
                #expect(timeline.contains("<tr class=\"event \(kind)\">"), "the timeline lacks \(kind)")
            }
            #expect(timeline.contains("the dashboard"))
            // A running workflow shows the forms.
            _ = try await client.execute(uri: "/v1/workflows/approval?id=po-3", method: .post, body: ByteBuffer(string: #"{"amount": 5}"#))
            try await runtime.waitForHistory(of: "po-3") { $0.count == 2 }
            let running = try await chromium(["--dump-dom", base + "/ui/workflows/po-3"])
            #expect(running.contains(#"<form id="send" method="post" action="/ui/workflows/po-3/events">"#))
            #expect(running.contains(#"<form id="cancel" method="post" action="/ui/workflows/po-3/cancel">"#))
            let screenshot = artifacts + "/dashboard-timeline.png"
            _ = try await chromium(["--screenshot=\(screenshot)", "--window-size=1200,800", base + "/ui/workflows/po-1"])
            let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(size > 10_000, "no screenshot at \(screenshot)")
            _ = try await chromium(["--screenshot=\(artifacts)/dashboard-overview.png", "--window-size=1200,800", base + "/"])
        }
    }

    @Test("the counts come from the store, not from the page of the list; the list pages on")
    func countsAndPages() async throws {
        try await withAPI { client, runtime in
            for index in 0..<130 { try await runtime.start(Approval.self, id: String(format: "w%03d", index), input: .init(amount: index)) }
            for index in 0..<5 { try await runtime.cancel(String(format: "w%03d", index), reason: "enough") }
            try await eventually { try await runtime.counts()[.cancelled] == 5 }
            let first = String(buffer: try await client.execute(uri: "/", method: .get).body)
            #expect(first.contains(#"<b>130</b> all"#), "\(first.prefix(3000))")
            #expect(first.contains(#"data-status="running"><b>125</b> running"#))
            #expect(first.contains(#"data-status="cancelled"><b>5</b> cancelled"#))
            #expect(first.components(separatedBy: "<tr data-id=").count - 1 == 100)
            let next = try #require(first.firstMatch(of: #/<a id=next href="(?<link>[^"]+)">/#)?.output.link)
            let second = String(buffer: try await client.execute(uri: String(next).replacingOccurrences(of: "&amp;", with: "&"), method: .get).body)
            #expect(second.components(separatedBy: "<tr data-id=").count - 1 == 30)
            #expect(second.contains(#"<tr data-id="w129">"#) && !second.contains(#"<tr data-id="w000">"#))
            #expect(!second.contains("id=next"))
            // A status filter counts and lists that status only.
            let cancelled = String(buffer: try await client.execute(uri: "/?status=cancelled", method: .get).body)
            #expect(cancelled.components(separatedBy: "<tr data-id=").count - 1 == 5)
            #expect(cancelled.contains(#"class="count cancelled selected""#))
            let bad = try await client.execute(uri: "/?status=sleepy", method: .get)
            #expect(bad.status == .badRequest && String(buffer: bad.body).contains("status must be one of"))
        }
    }

    @Test("ids and payloads are escaped, also a quote or bracket joined to a combining mark")
    func escaping() async throws {
        try await withAPI { client, runtime in
            let hostile = "\u{600}<img src=x onerror=alert(1)>\u{600}\"\u{301} onmouseover=alert(2)"
            try await runtime.start(Approval.self, id: hostile, input: .init(amount: 1))
            try await runtime.waitForHistory(of: hostile) { $0.count == 2 }
            try await runtime.send("approve", to: hostile, payload: Approval.Decision(by: "<script>alert(3)</script>"))
            _ = try await runtime.handle(Approval.self, id: hostile).result()
            let overview = String(buffer: try await client.execute(uri: "/", method: .get).body)
            let timeline = String(buffer: try await client.execute(uri: "/ui/workflows/" + hostile.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!, method: .get).body)
            for page in [overview, timeline] {
                #expect(!page.contains("<img") && !page.contains("<script>"), "unescaped markup")
                #expect(!page.unicodeScalars.contains { $0 == "\u{301}" } || !page.contains("\"\u{301} onmouseover"), "a quote escaped its attribute")
            }
            #expect(overview.contains("&lt;img") && timeline.contains("&lt;script&gt;"))
        }
    }

    @Test("with tokens the pages need one: a login form sets an HttpOnly cookie (Secure behind TLS); a wrong token is refused")
    func login() async throws {
        try await withAPI(.init(tokens: ["let-me-in"])) { client, _ in
            let anonymous = try await client.execute(uri: "/", method: .get)
            #expect(anonymous.status == .unauthorized)
            #expect(String(buffer: anonymous.body).contains(#"<form id=login method=post action="/login">"#))
            let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let wrong = try await client.execute(uri: "/login", method: .post, headers: formHeaders, body: form(["token": "guess"]))
            #expect(wrong.status == .unauthorized)
            let right = try await client.execute(uri: "/login", method: .post, headers: formHeaders, body: form(["token": "let-me-in"]))
            #expect(right.status == .seeOther)
            let cookie = try #require(right.headers[.setCookie])
            #expect(try cookieAttributes(right) == ["Path=/", "HttpOnly", "SameSite=Strict"], "\(cookie)")
            // Behind a TLS-terminating proxy the cookie is kept off plain HTTP.
            var proxied = formHeaders
            proxied[.init("X-Forwarded-Proto")!] = "https, http"
            let overTLS = try await client.execute(uri: "/login", method: .post, headers: proxied, body: form(["token": "let-me-in"]))
            #expect(try cookieAttributes(overTLS) == ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"])
            let pair = String(cookie.split(separator: ";")[0])
            #expect(try await client.execute(uri: "/", method: .get, headers: [.cookie: pair]).status == .ok)
            #expect(try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer let-me-in"]).status == .ok)
            // A form post without the cookie changes nothing.
            #expect(try await client.execute(uri: "/ui/workflows/x/cancel", method: .post).status == .unauthorized)
        }
    }

    @Test("with secureCookies the login cookie is Secure on every request")
    func secureCookies() async throws {
        var configuration = ContinuumAPI.Configuration(tokens: ["let-me-in"])
        configuration.secureCookies = true
        try await withAPI(configuration) { client, _ in
            let response = try await client.execute(
                uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: form(["token": "let-me-in"]))
            #expect(try cookieAttributes(response) == ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"])
        }
    }
}
