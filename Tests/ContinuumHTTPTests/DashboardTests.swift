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
                _ = try await chromium(["--screenshot=\(artifacts)/dashboard-reset.png", "--window-size=1200,1000", base + "/ui/workflows/p2"])
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
