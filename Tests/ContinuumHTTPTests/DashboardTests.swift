@_spi(Testing) import Continuum
@testable import ContinuumHTTP
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
                #expect(timeline.contains("class=\"event \(kind)\">"), "the timeline lacks \(kind)")
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

    @Test("the schedules page lists each schedule with its cron, workflow and next fire times; the overview links it")
    func schedulesPage() async throws {
        try await withAPI { client, runtime in
            try await runtime.schedule(Schedule(name: "nightly", cron: "0 6 * * *", timeZone: "Europe/Paris", workflow: "approval", input: #"{"amount": 1}"#))
            let overview = String(buffer: try await client.execute(uri: "/", method: .get).body)
            #expect(overview.contains(#"<a id=schedules-link href="/ui/schedules">"#))
            let page = String(buffer: try await client.execute(uri: "/ui/schedules", method: .get).body)
            #expect(page.contains(#"<tr data-name="nightly">"#) && page.contains("<code>0 6 * * *</code> <small>Europe/Paris</small>"), "\(page.prefix(3000))")
            #expect(page.components(separatedBy: ":00:00.000Z<br>").count - 1 == 5, "five next fire times: \(page.prefix(3000))")
            #expect(page.contains(#"href="/ui/workflows/continuum.schedule%3Anightly""#), "\(page.prefix(3000))")
        }
    }

    @Test("a parent's timeline links its children, and a child's its parent")
    func familyLinks() async throws {
        try await withAPI(workflows: [Approval(), Fanout()]) { client, runtime in
            let parent = try await runtime.start(Fanout.self, id: "fam", input: 2)
            try await runtime.waitForHistory(of: "fam/a-1") { $0.contains { $0.kindName == "waitStarted" } }
            let page = String(buffer: try await client.execute(uri: "/ui/workflows/fam", method: .get).body)
            #expect(page.contains(#"<a class=child href="/ui/workflows/fam%2Fa-0">fam/a-0</a>"#), "\(page.prefix(3000))")
            #expect(page.contains(#"<a class=child href="/ui/workflows/fam%2Fa-1">fam/a-1</a>"#))
            let child = String(buffer: try await client.execute(uri: "/ui/workflows/fam%2Fa-0", method: .get).body)
            #expect(child.contains(#"<p id=parent>Child of <a href="/ui/workflows/fam">fam</a></p>"#), "\(child.prefix(3000))")
            for index in 0..<2 { try await runtime.send("approve", to: "fam/a-\(index)", payload: Approval.Decision(by: "ops")) }
            #expect(try await parent.result() == 2)
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

/// A page on the server under test (so of the dashboard's own origin) that opens a dashboard
/// page in a frame, fills in form fields, clicks a button as a person would (the browser posts
/// the form with its own encoding, `Origin` and cookies), follows the redirect, and copies the
/// page it lands on into its own DOM for `--dump-dom`. Its query: `src` (the page), `click` (a
/// CSS selector), and `set:<selector>` = value for each field.
private let driverPage = """
    <!doctype html><html><head><meta charset=utf-8></head><body><iframe id=frame></iframe><div id=out></div><script>
    const params = new URLSearchParams(location.search);
    const frame = document.getElementById('frame');
    const out = document.getElementById('out');
    let clicked = false;
    frame.onload = () => {
      try {
        const page = frame.contentDocument;
        if (!clicked) {
          clicked = true;
          for (const [key, value] of params) {
            if (!key.startsWith('set:')) continue;
            const field = page.querySelector(key.slice(4));
            if (!field) throw new Error('no field ' + key.slice(4));
            field.value = value;
          }
          const button = page.querySelector(params.get('click'));
          if (!button) throw new Error('no button ' + params.get('click'));
          button.click();
        } else {
          out.setAttribute('data-location', frame.contentWindow.location.pathname);
          out.innerHTML = page.body.innerHTML;
        }
      } catch (error) {
        out.setAttribute('data-error', error.message);
      }
    };
    frame.src = params.get('src');
    </script></body></html>
    """

/// Adds the driver page at `/test/driver`.
@Sendable private func driverRoute(_ router: Router<BasicRequestContext>) {
    router.get("/test/driver") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: driverPage)))
    }
}

/// In headless Chromium: opens `page`, fills in `fields` (CSS selector → value), clicks
/// `click`, and returns the path it was redirected to and that page's body as the browser has it.
private func submit(_ base: String, page: String, click: String, fields: [(String, String)] = []) async throws -> (location: String, html: String) {
    var components = URLComponents(string: base + "/test/driver")!
    components.queryItems = [URLQueryItem(name: "src", value: page), URLQueryItem(name: "click", value: click)]
        + fields.map { URLQueryItem(name: "set:" + $0.0, value: $0.1) }
    // `+` is a space in a query for URLSearchParams; URLComponents leaves it as it is.
    let url = components.url!.absoluteString.replacingOccurrences(of: "+", with: "%2B")
    let dump = try await chromium(["--virtual-time-budget=20000", "--dump-dom", url])
    let error = dump.firstMatch(of: #/data-error="(?<message>[^"]*)"/#)?.output.message
    #expect(error == nil, "the driver failed: \(error ?? "")")
    let location = try #require(dump.firstMatch(of: #/<div id="out" data-location="(?<path>[^"]*)">/#)?.output.path, "no page after \(click) on \(page)")
    let start = try #require(dump.range(of: #"<div id="out" data-location="\#(location)">"#)?.upperBound)
    let end = try #require(dump.range(of: "</div><script>", options: .backwards)?.lowerBound)
    return (String(location), String(dump[start..<end]))
}

extension DashboardTests {
    @Test("in headless Chromium: a suspended workflow shows why; its Reset, Fork, Cancel and Resume buttons work and are recorded; step names are escaped")
    func waysOutInBrowser() async throws {
        // A step name with markup, a quote joined to a combining mark, an ampersand and apostrophes.
        let hostile = "<b>bold</b>\"\u{301} onmouseover=alert(1) & 'q'"
        let original = Evolving(steps: ["a", hostile])
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1", "p2", "p3"], path: path, original: original, routes: driverRoute) { client, runtime in
                let base = "http://127.0.0.1:\(try #require(client.port))"
                // The suspension, prominently: its code, message, what history recorded and what the code asked for.
                let raw = String(buffer: try await client.execute(uri: "/ui/workflows/p1", method: .get).body)
                #expect(raw.contains("<span id=suspension-code>nondeterminism</span>"), "\(raw.prefix(3000))")
                let escaped = "&lt;b&gt;bold&lt;/b&gt;&quot;\u{301} onmouseover=alert(1) &amp; &#39;q&#39;"
                #expect(raw.contains("<dd id=suspension-recorded>&#39;\(escaped)&#39;</dd>"))
                #expect(raw.contains("<dd id=suspension-requested>&#39;x&#39;</dd>"))
                // The reset and fork selects offer the history's steps, the recorded one chosen, escaped.
                #expect(raw.contains(#"<option value="0:\#(escaped)" selected>step &#39;\#(escaped)&#39; at event 2</option>"#))
                #expect(raw.contains(#"<option value="0:a">step &#39;a&#39; at event 1</option>"#))
                #expect(!raw.contains("<b>bold") && !raw.contains("\"\u{301} onmouseover"), "unescaped markup")
                let shown = try await chromium(["--dump-dom", base + "/ui/workflows/p1"])
                for form in ["resume", "reset", "fork", "send", "cancel"] {
                    #expect(shown.contains("<form id=\"\(form)\" method=\"post\" action=\"/ui/workflows/p1/\(form == "send" ? "events" : form)\">"), "no \(form) form")
                }
                #expect(!shown.contains("<b>bold"), "the browser parsed markup from a step name")
                _ = try await chromium(["--screenshot=\(artifacts)/dashboard-suspended.png", "--window-size=1200,1400", base + "/ui/workflows/p1"])
                let overview = try await chromium(["--dump-dom", base + "/?status=suspended"])
                #expect(overview.contains(#"data-status="suspended"><b>3</b> suspended"#), "\(overview.prefix(2000))")
                #expect(overview.contains(#"class="count suspended selected""#))
                #expect(overview.contains(#"suspended <small class="code">(nondeterminism)</small>"#))

                // Reset: the browser posts the chosen (escaped, then decoded) step name back.
                let reset = try await submit(
                    base, page: "/ui/workflows/p2", click: "#reset button",
                    fields: [("#reset [name=by]", "dave"), ("#reset [name=reason]", "the step is x now")])
                #expect(reset.location == "/ui/workflows/p2")
                #expect(reset.html.contains(#"<span id="status" class="status running">running</span>"#), "\(reset.html.prefix(3000))")
                #expect(reset.html.contains(#"<tr id="event-2" class="event stepCompleted superseded">"#))
                #expect(reset.html.contains(##"<a class="supersededBy" href="#event-5">superseded by reset #1</a>"##))
                #expect(!reset.html.contains(#"<tr id="event-1" class="event stepCompleted superseded">"#), "a step before the reset is marked")
                #expect(actions(try await runtime.history(of: "p2")) == ["reset to 2 (1) by dave: the step is x now"])
                _ = try await chromium(["--screenshot=\(artifacts)/dashboard-reset.png", "--window-size=1200,800", base + "/ui/workflows/p2"])
                try await runtime.send("finish", to: "p2", json: Array(#""now""#.utf8))
                #expect(try await runtime.handle(Evolving.self, id: "p2").result() == ["a-done", "x-done"])

                // Fork: to the new workflow's timeline.
                let fork = try await submit(base, page: "/ui/workflows/p3", click: "#fork button", fields: [("#fork [name=as]", "p3 copy")])
                #expect(fork.location == "/ui/workflows/p3%20copy")
                #expect(fork.html.contains(#"<tr id="event-2" class="event workflowForked">"#), "\(fork.html.prefix(3000))")
                #expect(actions(try await runtime.history(of: "p3 copy")) == ["forked from p3 at 2 by dashboard: forked from the dashboard"])
                #expect(try await runtime.status(of: "p3")?.status == .suspended)

                // Cancel: a suspended workflow ends cancelled at once.
                let cancel = try await submit(base, page: "/ui/workflows/p3", click: "#cancel button")
                #expect(cancel.location == "/ui/workflows/p3")
                #expect(cancel.html.contains(#"<span id="status" class="status cancelled">cancelled</span>"#))
            }
            // The original code deployed again: Resume lets p1 go on where it was.
            try await withSuspended([], path: path, original: original, deployed: original, routes: driverRoute) { client, runtime in
                let base = "http://127.0.0.1:\(try #require(client.port))"
                let resume = try await submit(
                    base, page: "/ui/workflows/p1", click: "#resume button",
                    fields: [("#resume [name=by]", "carol"), ("#resume [name=reason]", "the old code is back")])
                #expect(resume.location == "/ui/workflows/p1")
                #expect(!resume.html.contains("id=\"suspension\""), "\(resume.html.prefix(3000))")
                #expect(actions(try await runtime.history(of: "p1")) == ["resumed by carol: the old code is back"])
                try await runtime.send("finish", to: "p1", json: Array(#""now""#.utf8))
                #expect(try await runtime.handle(Evolving.self, id: "p1").result() == ["a-done", "\(hostile)-done"])
                // Finished: Reset and Fork remain; nothing to resume, send or cancel.
                let done = try await chromium(["--dump-dom", base + "/ui/workflows/p1"])
                #expect(done.contains(#"<span id="status" class="status completed">completed</span>"#))
                #expect(done.contains(#"<form id="reset""#) && done.contains(#"<form id="fork""#))
                #expect(!done.contains(#"<form id="resume""#) && !done.contains(#"<form id="send""#) && !done.contains(#"<form id="cancel""#))
            }
        }
    }

    @Test("the way-out forms refuse a bad step, a missing id, no login and another site, and append nothing")
    func waysOutFormRefusals() async throws {
        try await withTemporaryDirectory { path in
            try await withSuspended(["p1"], path: path, .init(tokens: ["ops"])) { client, runtime in
                let before = try await runtime.history(of: "p1")
                let login = try await client.execute(
                    uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: form(["token": "ops"]))
                let cookie = String(try #require(login.headers[.setCookie]).split(separator: ";")[0])
                let signedIn: HTTPFields = [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"]
                var crossSite = signedIn
                crossSite[.origin] = "http://evil.example"
                let cases: [(String, HTTPFields, [String: String], HTTPResponse.Status)] = [
                    ("/ui/workflows/p1/resume", [.contentType: "application/x-www-form-urlencoded"], [:], .unauthorized),
                    ("/ui/workflows/p1/reset", crossSite, ["step": "0:b"], .forbidden),
                    ("/ui/workflows/p1/fork", crossSite, ["step": "0:b", "as": "copy"], .forbidden),
                    ("/ui/workflows/p1/reset", signedIn, [:], .badRequest),
                    ("/ui/workflows/p1/reset", signedIn, ["step": "b"], .badRequest),
                    ("/ui/workflows/p1/reset", signedIn, ["step": "0:nope"], .badRequest),
                    ("/ui/workflows/p1/reset", signedIn, ["step": "1:b"], .badRequest),
                    ("/ui/workflows/p1/fork", signedIn, ["step": "0:b"], .badRequest),
                    ("/ui/workflows/p1/fork", signedIn, ["step": "0:b", "as": "p1"], .conflict),
                    ("/ui/workflows/nobody/resume", signedIn, [:], .notFound),
                ]
                for (uri, headers, fields, status) in cases {
                    let response = try await client.execute(uri: uri, method: .post, headers: headers, body: form(fields))
                    #expect(response.status == status, "\(uri) \(fields)")
                    #expect(response.headers[.contentType]?.hasPrefix("text/html") == true, "\(uri): an error page")
                }
                #expect(try await runtime.history(of: "p1") == before, "a refused form appended")
                #expect(try await runtime.list(limit: 10).map(\.id) == ["p1"], "a refused fork created a workflow")
                // Signed in and same-site, the form works and says who: the dashboard.
                let resumed = try await client.execute(uri: "/ui/workflows/p1/resume", method: .post, headers: signedIn, body: form(["by": "", "reason": ""]))
                #expect(resumed.status == .seeOther && resumed.headers[.location] == "/ui/workflows/p1")
                #expect(actions(try await runtime.history(of: "p1")) == ["resumed by dashboard: resumed from the dashboard"])
            }
        }
    }
}

/// Starts `input` approvals as children and waits for all of them.
struct Fanout: Workflow {
    static let name = "fanout"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        var children: [ChildWorkflow<Approval>] = []
        for index in 0..<input {
            children.append(try await ctx.startChild(Approval.self, name: "a-\(index)", input: .init(amount: index)))
        }
        for child in children { _ = try await child.result() }
        return children.count
    }
}

/// Every kind of bar in one workflow: a step that fails twice before it succeeds, a sleep, a
/// wait for "go" and a child.
struct Tour: Workflow {
    static let name = "tour"
    struct Flaky: Error, CustomStringConvertible { var description: String { "the card reader hiccuped" } }

    func run(_ ctx: WorkflowContext, input: Int) async throws -> String {
        let retry = RetryPolicy(maxAttempts: 5, initialInterval: .milliseconds(150), backoffFactor: 1, jitter: 0)
        let charged = try await ctx.step("charge", retry: retry) { (step: StepContext) -> String in
            if step.attempt < 3 { throw Flaky() }
            return "charged"
        }
        try await ctx.sleep(for: .milliseconds(300), name: "cool-down")
        let go = try await ctx.waitForEvent("go", as: String.self, timeout: .seconds(600))
        let signed = try await ctx.child(Approval.self, name: "sign-off", input: .init(amount: input))
        return [charged, go ?? "", signed].joined(separator: ", ")
    }
}

/// The `href` of the link with id `id` in a page as the server sends it, unescaped as a browser reads it.
private func link(_ html: String, id: String) -> String? {
    guard let start = html.range(of: "<a id=\(id) href=\"")?.upperBound, let end = html[start...].firstIndex(of: "\"") else { return nil }
    return String(html[start..<end]).replacingOccurrences(of: "&amp;", with: "&")
}

/// Whether `events` hold the start of a wait for event `name`.
private func waits(_ events: [HistoryEvent], for name: String) -> Bool {
    events.contains { event in
        if case .waitStarted(_, .event(name), _) = event.kind { true } else { false }
    }
}

/// The ids of the rows an overview page lists, in order.
private func listed(_ html: String) -> [String] {
    html.matches(of: #/<tr data-id="(?<id>[^"]+)">/#).map { String($0.output.id) }
}

extension DashboardTests {
    @Test("the waterfall draws a retried step's attempts and backoffs, a sleep, an event wait (open, then received) and a child linked to its timeline")
    func waterfall() async throws {
        try await withAPI(workflows: [Tour(), Approval()]) { client, runtime in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            let tour = try await runtime.start(Tour.self, id: "tour-1", input: 7)
            try await runtime.waitForHistory(of: "tour-1") { waits($0, for: "go") }
            // Waiting for "go": the wait's bar is open and says what it waits for, until when.
            let waiting = String(buffer: try await client.execute(uri: "/ui/workflows/tour-1", method: .get).body)
            #expect(waiting.contains(#"<div class="bar wait open" data-kind="wait""#), "\(waiting.prefix(6000))")
            #expect(waiting.contains("event &#39;go&#39;, until "), "the wait's note")
            try await runtime.send("go", to: "tour-1", payload: "now")
            try await runtime.waitForHistory(of: "tour-1/sign-off") { $0.contains { $0.kindName == "waitStarted" } }
            // The child may wait before its parent has recorded starting it: wait for that too.
            try await runtime.waitForHistory(of: "tour-1") { events in
                events.contains { event in
                    if case .stepCompleted(let step, _) = event.kind { step.name.hasPrefix("continuum.child:") } else { false }
                }
            }
            // The child runs: its bar is open, and links to its timeline.
            let parent = String(buffer: try await client.execute(uri: "/ui/workflows/tour-1", method: .get).body)
            #expect(parent.contains(#"<div class="bar child open" data-kind="child""#), "\(parent.prefix(6000))")
            try await runtime.send("approve", to: "tour-1/sign-off", payload: Approval.Decision(by: "ops"))
            #expect(try await tour.result() == "charged, now, 7 approved by ops")

            let page = try await chromium(["--dump-dom", base + "/ui/workflows/tour-1"])
            let row = { (name: String) -> String in
                guard let start = page.range(of: "data-row=\"\(name)\"") else { return "" }
                let rest = page[start.upperBound...]
                return String(rest[..<(rest.range(of: "data-row=")?.lowerBound ?? rest.endIndex)])
            }
            let charge = row("step:charge#0")
            #expect(charge.components(separatedBy: #"class="bar attempt failed retried""#).count - 1 == 2, "two failed attempts: \(charge)")
            #expect(charge.components(separatedBy: #"class="bar backoff""#).count - 1 == 2, "two backoffs: \(charge)")
            #expect(charge.contains(#"class="bar step retried""#) && charge.contains("3 attempts"), "the attempt that succeeded: \(charge)")
            #expect(charge.contains("the card reader hiccuped"), "a failed attempt's error, on hover")
            let backoff = try #require(charge.firstMatch(of: #/class="bar backoff" data-kind="backoff" data-duration="(?<ms>\d+) ms"/#)?.output.ms)
            #expect((140...1000).contains(Int(backoff) ?? 0), "a backoff of about 150 ms: \(backoff) ms")
            let sleep = row("wait:cool-down#0")
            #expect(sleep.contains(#"class="bar sleep""#) && sleep.contains("timer, until "), "\(sleep)")
            #expect(sleep.contains("fired, "), "how the sleep ended")
            let go = row("wait:event:go#0")
            #expect(go.contains(#"class="bar wait""#) && go.contains("event 'go', until ") && go.contains("received event #"), "\(go)")
            #expect(!go.contains("open"), "the wait ended")
            let child = row("child:sign-off")
            #expect(child.contains(#"<a class="child-link" href="/ui/workflows/tour-1%2Fsign-off">child tour-1/sign-off</a>"#), "\(child)")
            #expect(child.contains(#"class="bar child""#) && child.contains("completed"))
            #expect(row("mark:\(try await runtime.history(of: "tour-1").first { $0.kindName == "eventReceived" }?.sequence ?? 0)").contains("event 'go' received"))
            #expect(row("run").contains(#"class="bar run""#) && row("run").contains("completed"))
            // The table of events is still there, under the waterfall.
            #expect(page.contains(#"<table id="timeline">"#) && page.contains(#"class="event stepRetrying">"#))
            let child1 = try await chromium(["--dump-dom", base + "/ui/workflows/tour-1%2Fsign-off"])
            #expect(child1.contains(#"child &#39;sign-off&#39; of tour-1"#) || child1.contains("child 'sign-off' of tour-1"), "the child's run row says whose child it is")
            _ = try await chromium(["--screenshot=\(artifacts)/dashboard-waterfall.png", "--window-size=1200,800", base + "/ui/workflows/tour-1"])
        }
    }

    @Test("the waterfall draws an update from its arrival to its reply, and the waits for it as waits for an update")
    func updatesInTheWaterfall() async throws {
        try await withAPI(workflows: [Doubler()]) { client, runtime in
            try await runtime.start(Doubler.self, id: "d-1", input: 1)
            let doubled: Int = try await runtime.update("d-1", "double", payload: 21, dedupKey: "u-1")
            #expect(doubled == 42)
            // The reply is back before the body waits for the next update: wait for that wait.
            try await runtime.waitForHistory(of: "d-1") { $0.filter { $0.kindName == "waitStarted" }.count == 2 }
            let page = String(buffer: try await client.execute(uri: "/ui/workflows/d-1", method: .get).body)
            let row = try #require(page.range(of: #"data-row="update:u-1""#).map { String(page[$0.lowerBound...].prefix(1500)) }, "\(page.prefix(6000))")
            #expect(row.contains("update &#39;double&#39;<small>id u-1</small>") && row.contains(#"<div class="bar update" data-kind="update""#), "\(row)")
            #expect(row.contains("replied: 42") && row.contains(" · replied</span>"), "\(row)")
            // The next update is not there yet: the body waits for one, and says so.
            #expect(page.contains("<small>update &#39;double&#39;, no timeout</small>"), "\(page.prefix(6000))")
            #expect(page.contains(#"<div class="bar wait open" data-kind="wait""#))
            let _: Int = try await runtime.update("d-1", "double", payload: 0)
            #expect(try await runtime.handle(Doubler.self, id: "d-1").result() == 1)
        }
    }

    @Test("a search that reads its limit of workflows without filling the page ends there, and the next page goes on from there")
    func searchReadLimit() async throws {
        try await withAPI(workflows: [Approval(), Publisher()]) { _, runtime in
            for index in 0..<6 { try await runtime.start(Publisher.self, id: "pub-\(index)", input: index) }
            try await runtime.start(Approval.self, id: "po-0", input: .init(amount: 1))
            let api = ContinuumAPI(runtime: runtime)
            var filter = ListFilter()
            filter.type = "approval"
            let first = try await api.filteredPage(filter, scanLimit: 4)
            #expect(first.workflows.isEmpty && first.searched == 4 && first.next != nil, "\(first)")
            filter.after = first.next
            let second = try await api.filteredPage(filter, scanLimit: 4)
            #expect(second.workflows.map(\.id) == ["po-0"] && second.searched == nil && second.next == nil, "\(second)")
        }
    }

    @Test("the list filters by status and type, searches by id prefix, pages through a filtered list, and reloads itself on request")
    func listFilters() async throws {
        try await withAPI(workflows: [Approval(), Publisher()], routes: driverRoute) { client, runtime in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            // Interleaved: 10 approvals (7 po-, 3 x-) and 5 publishers.
            for index in 0..<5 {
                try await runtime.start(Approval.self, id: "po-\(index)", input: .init(amount: index))
                try await runtime.start(Publisher.self, id: "pub-\(index)", input: index)
            }
            for index in 5..<7 { try await runtime.start(Approval.self, id: "po-\(index)", input: .init(amount: index)) }
            for index in 0..<3 { try await runtime.start(Approval.self, id: "x-\(index)", input: .init(amount: index)) }
            try await runtime.cancel("po-1", reason: "enough")
            try await runtime.cancel("pub-2", reason: "enough")
            try await eventually { try await runtime.counts()[.cancelled] == 2 }
            func page(_ uri: String) async throws -> String { String(buffer: try await client.execute(uri: uri, method: .get).body) }

            #expect(listed(try await page("/?type=publisher")) == (0..<5).map { "pub-\($0)" })
            #expect(listed(try await page("/?id=po-")) == (0..<7).map { "po-\($0)" })
            #expect(listed(try await page("/?type=approval&id=x-")) == ["x-0", "x-1", "x-2"])
            #expect(listed(try await page("/?type=approval&id=pub")) == [])
            #expect(try await page("/?type=approval&id=pub").contains("No workflows match."))
            #expect(listed(try await page("/?status=cancelled&type=approval")) == ["po-1"])
            #expect(listed(try await page("/?status=running&id=pub-")) == ["pub-0", "pub-1", "pub-3", "pub-4"])
            // Empty fields, as the form sends them, count as not given.
            #expect(listed(try await page("/?status=&type=&id=&refresh=")).count == 15)
            // Pages of 4 approvals: each page starts after the last one, and the last has no next link.
            var seen: [String] = []
            var uri: String? = "/?type=approval&limit=4"
            var pages = 0
            while let next = uri, pages < 10 {
                let html = try await page(next)
                let rows = listed(html)
                #expect(!rows.isEmpty && rows.count <= 4, "\(next): \(rows)")
                seen += rows
                uri = link(html, id: "next")
                pages += 1
            }
            #expect(seen == (0..<7).map { "po-\($0)" } + ["x-0", "x-1", "x-2"], "\(seen)")
            #expect(pages == 3)
            // The counts stay those of every type; a count's link keeps the type.
            let filtered = try await page("/?type=publisher")
            #expect(filtered.contains(#"<b>15</b> all"#) && filtered.contains(#"href="/?status=cancelled&amp;type=publisher""#), "\(filtered.prefix(3000))")
            #expect(filtered.contains(#"<p id=narrowed class=note>Only type publisher. <a href="/">Clear</a></p>"#))
            // Refused: a bad limit or refresh.
            #expect(try await client.execute(uri: "/?limit=0", method: .get).status == .badRequest)
            #expect(try await client.execute(uri: "/?refresh=0", method: .get).status == .badRequest)
            // What a search reflects is escaped.
            let hostile = try await page("/?id=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
            #expect(!hostile.contains("<script>alert") && hostile.contains("value=\"&quot;&gt;&lt;script&gt;"), "\(hostile.prefix(3000))")

            // In the browser: the form's search, typed in and submitted.
            let searched = try await submit(base, page: "/", click: "#filters button", fields: [("#filters [name=id]", "pub-"), ("#filters [name=status]", "running")])
            #expect(searched.location == "/")
            #expect(listed(searched.html) == ["pub-0", "pub-1", "pub-3", "pub-4"], "\(searched.html.prefix(3000))")
            let typed = try await submit(base, page: "/", click: "#filters button", fields: [("#filters [name=type]", "approval"), ("#filters [name=id]", "x")])
            #expect(listed(typed.html) == ["x-0", "x-1", "x-2"])
            // Auto-refresh: the page reloads itself (a script, or a meta refresh without scripts), the box ticked.
            let refreshing = try await page("/?type=approval&refresh=5")
            #expect(refreshing.contains(#"<noscript><meta http-equiv=refresh content="5"></noscript>"#) && refreshing.contains("}, 5000);"))
            #expect(refreshing.contains(#"<input type=checkbox name=refresh value="5" checked"#))
            #expect(try await page("/?refresh=5").contains(#"href="/?status=running&amp;refresh=5""#), "the filters keep refreshing")
            #expect(!(try await page("/")).contains("location.reload"))
            _ = try await chromium(["--screenshot=\(artifacts)/dashboard-overview.png", "--window-size=1200,800", base + "/?type=approval"])
        }
    }

    @Test("the queues page lists each configured queue's limits with how many run and wait on it; the navigation links it")
    func queuesPage() async throws {
        var configuration = WorkflowRuntime.Configuration()
        configuration.queues = ["review": QueueLimits(concurrency: 2, rate: .init(30, per: .seconds(60))), "idle": QueueLimits(perPartition: 3)]
        // The approvals stay in memory however long Chromium takes: a parked one gives its slot up.
        configuration.parkAfter = nil
        try await withAPI(runtime: configuration) { client, runtime in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            // Each approval holds its slot while it waits: two run, the third waits.
            for (index, partition) in ["acme", "globex", "acme"].enumerated() {
                try await runtime.start(Approval.self, id: "q-\(index)", input: .init(amount: index), queue: QueueEntry("review", partition: partition))
                try await runtime.waitForHistory(of: "q-\(index)") { !$0.isEmpty }
            }
            try await eventually { try await runtime.queueSnapshot().first { $0.name == "review" }.map { [$0.running, $0.waiting] } == [2, 1] }
            let overview = String(buffer: try await client.execute(uri: "/", method: .get).body)
            #expect(overview.contains(#"<a id=nav-queues href="/ui/queues">Queues</a>"#), "\(overview.prefix(2000))")
            let page = try await chromium(["--dump-dom", base + "/ui/queues"])
            #expect(
                page.contains(
                    #"<tr data-queue="review"><td>review</td><td class="running">2<div class="meter"><div style="width:100.000%"></div></div></td><td class="waiting">1</td><td>2</td><td>no limit</td><td>30 per 1 min</td>"#),
                "\(page.prefix(4000))")
            #expect(page.contains("acme: 1<br>globex: 1<br>"), "running per partition")
            #expect(page.contains(#"<tr data-queue="idle"><td>idle</td><td class="running">0</td><td class="waiting">0</td><td>no limit</td><td>3</td><td>no limit</td>"#))
            #expect(page.contains(#"<a id="nav-queues" href="/ui/queues" class="selected">Queues</a>"#))
            _ = try await chromium(["--screenshot=\(artifacts)/dashboard-queues.png", "--window-size=1200,800", base + "/ui/queues"])
            // One approved: the waiting one goes.
            try await runtime.send("approve", to: "q-0", payload: Approval.Decision(by: "ops"))
            try await eventually { try await runtime.queueSnapshot().first { $0.name == "review" }.map { [$0.running, $0.waiting] } == [2, 0] }
            let after = String(buffer: try await client.execute(uri: "/ui/queues?refresh=3", method: .get).body)
            #expect(after.contains(#"<td class=waiting>0</td>"#) && after.contains("}, 3000);"), "\(after.prefix(4000))")
        }
        // No queues configured: the page says how to configure them.
        try await withAPI { client, _ in
            let empty = String(buffer: try await client.execute(uri: "/ui/queues", method: .get).body)
            #expect(empty.contains("No queues configured"))
        }
    }

    @Test("in headless Chromium: Reset to an event reruns from it and is recorded; a refused reset answers with an error page that links back")
    func resetToEvent() async throws {
        try await withAPI(routes: driverRoute) { client, runtime in
            let base = "http://127.0.0.1:\(try #require(client.port))"
            try await runtime.start(Approval.self, id: "po-1", input: .init(amount: 5))
            try await runtime.waitForHistory(of: "po-1") { $0.count == 2 }
            try await runtime.send("approve", to: "po-1", payload: Approval.Decision(by: "ops"))
            _ = try await runtime.handle(Approval.self, id: "po-1").result()
            let history = try await runtime.history(of: "po-1")
            let wait = try #require(history.first { $0.kindName == "waitStarted" }?.sequence)
            let end = try #require(history.last?.sequence)
            let page = String(buffer: try await client.execute(uri: "/ui/workflows/po-1", method: .get).body)
            #expect(page.contains(#"<form id=reset-event method=post action="/ui/workflows/po-1/reset">"#), "\(page.prefix(3000))")
            #expect(page.contains(#"<option value="\#(wait)">#\#(wait) waitStarted event:approve</option>"#))

            // Refused, by the runtime (the start, past the end) or by the form (not a number, or a step too):
            // an error page with the status, the message, the code and the way back; nothing appended.
            let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            for (fields, message) in [
                (["event": "0"], "A reset goes to an event after the start and before the end; got 0 of \(end + 1)."),
                (["event": "\(end + 1)"], "A reset goes to an event after the start and before the end; got \(end + 1) of \(end + 1)."),
                (["event": "x"], "Choose one event of the workflow&#39;s history by its number (or a step, not both); got &#39;x&#39;."),
                (["event": "1", "step": "0:event:approve"], "Choose one event"),
            ] {
                let refused = try await client.execute(uri: "/ui/workflows/po-1/reset", method: .post, headers: formHeaders, body: form(fields))
                let html = String(buffer: refused.body)
                #expect(refused.status == .badRequest, "\(fields)")
                #expect(html.contains(#"<h2 class=error>Refused <small id=error-status>400 Bad Request</small></h2>"#), "\(html.prefix(3000))")
                #expect(html.contains("<p id=error-message class=error>\(message)"), "\(fields): \(html.prefix(3000))")
                #expect(html.contains("<code id=error-code>invalidArgument</code>") && html.contains(#"<a id=back href="/ui/workflows/po-1">"#))
            }
            #expect(try await runtime.history(of: "po-1") == history, "a refused reset appended")
            // A page, not a form: no way back to a workflow.
            let missing = String(buffer: try await client.execute(uri: "/ui/workflows/nobody", method: .get).body)
            #expect(missing.contains("<small id=error-status>404 Not Found</small>") && !missing.contains("id=back"), "\(missing.prefix(3000))")

            // Reset to the wait: the approval, an external event, is delivered again and it completes again.
            let reset = try await submit(
                base, page: "/ui/workflows/po-1", click: "#reset-event button",
                fields: [("#reset-event [name=event]", "\(wait)"), ("#reset-event [name=by]", "erin"), ("#reset-event [name=reason]", "again")])
            #expect(reset.location == "/ui/workflows/po-1")
            #expect(actions(try await runtime.history(of: "po-1")) == ["reset to \(wait) (1) by erin: again"])
            try await eventually { try await runtime.status(of: "po-1")?.status == .completed }
            let done = String(buffer: try await client.execute(uri: "/ui/workflows/po-1", method: .get).body)
            #expect(done.contains("reset #1 to event #\(wait)"), "the reset in the waterfall")
            #expect(done.contains(#"class="bar wait superseded""#), "the superseded wait, dimmed")
        }
    }
}
