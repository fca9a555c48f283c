import Mustache

/// The dashboard's Mustache templates, rendered from the view models in `DashboardPages.swift`.
///
/// Every `{{value}}` is escaped; `{{{…}}}` (unescaped) is never used. The escaping is this
/// module's own, by Unicode scalar (``DashboardTemplates/ScalarHTMLEscaping``): swift-mustache's
/// HTML escaping works on `Character`s, and a `"` or `<` followed by a combining mark is one
/// `Character` equal to neither, which would end an attribute or open a tag in the browser.
enum DashboardTemplates {
    /// Escapes HTML's five special characters wherever they stand, also joined to a combining mark.
    struct ScalarHTMLEscaping: MustacheContentType {
        func escapeText(_ text: String) -> String {
            var escaped = String.UnicodeScalarView()
            for scalar in text.unicodeScalars {
                switch scalar {
                case "&": escaped.append(contentsOf: "&amp;".unicodeScalars)
                case "<": escaped.append(contentsOf: "&lt;".unicodeScalars)
                case ">": escaped.append(contentsOf: "&gt;".unicodeScalars)
                case "\"": escaped.append(contentsOf: "&quot;".unicodeScalars)
                case "'": escaped.append(contentsOf: "&#39;".unicodeScalars)
                default: escaped.append(scalar)
                }
            }
            return String(escaped)
        }
    }

    /// The name the escaping is registered under with swift-mustache (its registry is global,
    /// so the name is ours alone and the `HTML` type other code may use is left alone).
    static let contentType = "CONTINUUM_HTML"

    /// The templates, parsed once. Each starts with the pragma that selects the escaping: a
    /// template rendered as a partial or a parent starts again with swift-mustache's own, so it
    /// goes in front of every one, not only of the pages.
    static let library: MustacheLibrary = {
        MustacheContentTypes.register(ScalarHTMLEscaping(), named: contentType)
        var library = MustacheLibrary()
        for (name, text) in [("layout", layout), ("overview", overview), ("timeline", timeline), ("schedules", schedules), ("login", login), ("error", error)] {
            do {
                try library.register("{{% CONTENT_TYPE: \(contentType)}}" + text, named: name)
            } catch {
                preconditionFailure("The dashboard template '\(name)' does not parse: \(error)")
            }
        }
        return library
    }()

    /// Renders `model` with the template `name`.
    static func render(_ model: Any, _ name: String) -> String {
        guard let page = library.render(model, withTemplate: name) else { preconditionFailure("No dashboard template '\(name)'") }
        return page
    }

    // MARK: Templates

    /// The page around every other: reads `title` and `home` from the page's model.
    static let layout = """
        <!doctype html>
        <html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1">
        <title>{{title}} · Continuum</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1d1d1f}
        h1{font-size:1.2rem}h1 a{color:inherit;text-decoration:none}h2 small{color:#666;font-weight:normal}
        table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e5e5e5;vertical-align:top}
        th{font-weight:600;color:#555}.k{color:#777;font-size:.85em;margin-right:.25rem}
        .counts{display:flex;gap:.5rem;flex-wrap:wrap}.count{border:1px solid #ddd;border-radius:6px;padding:.4rem .7rem;text-decoration:none;color:inherit}
        .count.selected{border-color:#0a66c2}.status{font-weight:600}.running{color:#0a66c2}.completed{color:#1a7f37}
        .failed,.error{color:#c62828}.cancelled{color:#8a6d00}.suspended{color:#b85c00}
        .actions{display:flex;gap:2rem;flex-wrap:wrap}form label{display:block;margin:.4rem 0}textarea,input{width:22rem;font:inherit}
        button{font:inherit;padding:.3rem .8rem}.danger{color:#c62828}.empty{color:#777}
        .suspension{border:2px solid #b85c00;border-radius:6px;padding:.2rem 1rem;background:#fff7ef}.suspension h3{color:#b85c00}
        .suspension dt{font-weight:600;color:#555}.suspension dd{margin:0 0 .4rem 0}.note{color:#666}
        tr.superseded td{opacity:.45}tr.superseded td:last-child{opacity:.6}.supersededBy{color:#8a6d00;font-size:.85em}
        select{font:inherit;max-width:22rem}
        </style></head><body>
        <h1><a href="{{home}}">Continuum</a></h1>
        {{$body}}{{/body}}
        </body></html>

        """

    static let overview = """
        {{<layout}}{{$body}}
        <section class=counts>
        <a class="count{{#allSelected}} selected{{/allSelected}}" href="{{home}}"><b>{{total}}</b> all</a>
        {{#counts}}
        <a class="count {{status}}{{#selected}} selected{{/selected}}" href="{{link}}" data-status="{{status}}"><b>{{count}}</b> {{status}}</a>
        {{/counts}}
        </section>
        <table id=workflows><thead><tr><th>Workflow</th><th>Type</th><th>Status</th><th>Started</th><th>Updated</th></tr></thead><tbody>
        {{#rows}}
        <tr data-id="{{id}}"><td><a href="{{link}}">{{id}}</a></td><td>{{type}}</td><td class="status {{status}}">{{status}}{{#suspension}} <small class=code>({{.}})</small>{{/suspension}}</td><td>{{createdAt}}</td><td>{{updatedAt}}</td></tr>
        {{/rows}}
        {{^rows}}
        <tr><td colspan=5 class=empty>No workflows yet.</td></tr>
        {{/rows}}
        </tbody></table>
        {{#next}}<p><a id=next href="{{.}}">Next page →</a></p>{{/next}}
        <p><a id=schedules-link href="{{schedules}}">Schedules →</a></p>
        {{/body}}{{/layout}}
        """

    static let schedules = """
        {{<layout}}{{$body}}
        <p><a href="{{home}}">← all workflows</a></p>
        <h2>Schedules</h2>
        <table id=schedules><thead><tr><th>Schedule</th><th>Cron</th><th>Workflow</th><th>Next fire times</th><th>Last slot</th><th>Started</th><th>Skipped</th></tr></thead><tbody>
        {{#rows}}
        <tr data-name="{{name}}"><td><a href="{{link}}">{{name}}</a></td><td><code>{{cron}}</code> <small>{{timeZone}}</small></td><td>{{workflow}}</td><td class=next>{{#next}}{{.}}<br>{{/next}}</td><td>{{lastSlot}}</td><td>{{started}}</td><td>{{skipped}}</td></tr>
        {{/rows}}
        {{^rows}}
        <tr><td colspan=7 class=empty>No schedules. Create one with PUT /v1/schedules/{name} or continuum schedule.</td></tr>
        {{/rows}}
        </tbody></table>
        {{/body}}{{/layout}}
        """

    static let timeline = """
        {{<layout}}{{$body}}
        <p><a href="{{home}}">← all workflows</a></p>
        <h2>{{id}} <small>{{type}}</small> <span id=status class="status {{status}}">{{status}}</span></h2>
        {{#parent}}<p id=parent>Child of <a href="{{href}}">{{id}}</a></p>{{/parent}}
        {{#children}}<p id=children>Children: {{#items}}<a class=child href="{{href}}">{{id}}</a> {{/items}}</p>{{/children}}
        {{#suspension}}
        <section id=suspension class=suspension>
        <h3>Suspended: <span id=suspension-code>{{code}}</span></h3>
        <p id=suspension-message>{{message}}</p>
        <dl>
        {{#recorded}}<dt>History recorded</dt><dd id=suspension-recorded>{{.}}</dd>{{/recorded}}
        {{#requested}}<dt>The code deployed asked for</dt><dd id=suspension-requested>{{.}}</dd>{{/requested}}
        {{#index}}<dt>At the body's call</dt><dd>#{{.}}</dd>{{/index}}
        {{#build}}<dt>Suspended by build</dt><dd>{{.}}</dd>{{/build}}
        </dl>
        <p>Nothing runs until someone decides: deploy code that matches history and <a href="#resume">resume</a>;
        <a href="#reset">reset</a> to a step to run it again with the code deployed now; <a href="#fork">fork</a> to try the
        new code on a copy; or <a href="#cancel">cancel</a>.</p>
        </section>
        {{/suspension}}
        {{#supersededCount}}<p class=note>{{.}} events were superseded by a reset: kept, dimmed, no longer in effect.</p>{{/supersededCount}}
        <table id=timeline><thead><tr><th>#</th><th>Time</th><th>Event</th><th>Step</th><th>Attempt</th><th>Detail</th></tr></thead><tbody>
        {{#entries}}
        <tr id="event-{{sequence}}" class="event {{kind}}{{#superseded}} superseded{{/superseded}}"><td>{{sequence}}</td><td>{{time}}</td><td>{{kind}}</td><td>{{step}}</td><td>{{attempt}}</td><td>
        {{#superseded}}<a class=supersededBy href="{{link}}">{{label}}</a><br>{{/superseded}}
        {{#details}}<span class=k>{{label}}</span> {{value}}<br>{{/details}}
        {{#error}}<span class="k error">error</span> {{type}}: {{message}}{{/error}}
        </td></tr>
        {{/entries}}
        </tbody></table>
        {{#actions}}
        <section class=actions>
        {{#resume}}
        <form id=resume method=post action="{{.}}">
        <h3>Resume</h3>
        <p>Replay with the code deployed now; it is suspended again if that still does not match.</p>
        <label>By <input name=by placeholder=dashboard></label>
        <label>Reason <input name=reason placeholder="fixed code deployed"></label>
        <button type=submit>Resume workflow</button>
        </form>
        {{/resume}}
        {{#reset}}
        <form id=reset method=post action="{{.}}">
        <h3>Reset to a step</h3>
        <p>Run again from the step with the code deployed now; the events after it are kept but superseded.</p>
        <label>Step <select name=step required>
        {{#steps}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/steps}}
        </select></label>
        <label>By <input name=by placeholder=dashboard></label>
        <label>Reason <input name=reason placeholder="rerun with the fix"></label>
        <button type=submit class=danger>Reset workflow</button>
        </form>
        {{/reset}}
        {{#fork}}
        <form id=fork method=post action="{{.}}">
        <h3>Fork</h3>
        <p>A new workflow with a copy of this history up to the step, run with the code deployed now.</p>
        <label>Step <select name=step required>
        {{#steps}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/steps}}
        </select></label>
        <label>New id <input name=as required></label>
        <label>By <input name=by placeholder=dashboard></label>
        <label>Reason <input name=reason placeholder="try the new code"></label>
        <button type=submit>Fork workflow</button>
        </form>
        {{/fork}}
        {{#send}}
        <form id=send method=post action="{{.}}">
        <h3>Send an event</h3>
        <label>Name <input name=name required placeholder=approve></label>
        <label>Payload (JSON) <textarea name=payload rows=3 placeholder='{"approved": true, "by": "ops"}'></textarea></label>
        <button type=submit>Send</button>
        </form>
        {{/send}}
        {{#cancel}}
        <form id=cancel method=post action="{{.}}">
        <h3>Cancel</h3>
        <button type=submit class=danger>Cancel workflow</button>
        </form>
        {{/cancel}}
        </section>
        {{/actions}}
        {{/body}}{{/layout}}
        """

    static let login = """
        {{<layout}}{{$body}}
        <form id=login method=post action="{{action}}">
        <p>This server requires a token.</p>
        {{#message}}<p class=error>{{.}}</p>{{/message}}
        <label>Token <input name=token type=password required autofocus></label>
        <button type=submit>Sign in</button>
        </form>
        {{/body}}{{/layout}}
        """

    static let error = """
        {{<layout}}{{$body}}
        <p class=error>{{message}}</p>
        {{/body}}{{/layout}}
        """
}
