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
        for (name, text) in [
            ("layout", layout), ("overview", overview), ("timeline", timeline), ("schedules", schedules), ("queues", queues), ("login", login),
            ("error", error),
        ] {
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

    /// The page around every other: reads `title`, `home`, `nav` (the sections' links, absent on
    /// the login form) and `refresh` (``Refresh``: reload every so many seconds) from the page's
    /// model. The reload is the only script: it waits while someone types in a form's field, and
    /// without scripts a `meta` refresh does it.
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
        select{font:inherit;max-width:22rem}input[type=checkbox]{width:auto}
        header{display:flex;align-items:baseline;gap:2rem}nav a{margin-right:1rem}nav a.selected{font-weight:600;text-decoration:none;color:inherit}
        .filters{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-end}.filters label{margin:0}.filters input[name=id]{width:12rem}
        form.refresh{float:right;margin:.5rem 0}
        .waterfall{margin:1rem 0;border:1px solid #e5e5e5;border-radius:6px;padding:.5rem .75rem}.waterfall h3{margin:.2rem 0 .5rem}
        .wf-row{display:flex;align-items:center;min-height:1.7rem;border-bottom:1px dotted #eee}
        .lane{flex:0 0 16rem;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;padding-right:.6rem;font-size:.9em}
        .lane small{display:block;color:#777;font-size:.8em;overflow:hidden;text-overflow:ellipsis}
        .track{position:relative;flex:1;height:1.5rem}.axis .track{height:1.3rem;border-bottom:1px solid #ccc}
        .tick{position:absolute;top:0;font-size:.7rem;color:#777;border-left:1px solid #ccc;padding-left:2px;height:1.3rem;white-space:nowrap}
        .bar{position:absolute;top:.3rem;height:.95rem;min-width:2px;box-sizing:border-box;border-radius:3px;padding:0 3px;
        font-size:.7rem;line-height:.95rem;white-space:nowrap;overflow:hidden;color:#fff;background:#1a7f37}
        .bar.run{background:#dfe6ee;color:#333}.bar.attempt,.bar.failed{background:#c62828;color:#fff}
        .bar.backoff{background:repeating-linear-gradient(45deg,#f2c94c 0 4px,#fff1bf 4px 8px);color:#5c4500}
        .bar.sleep{background:#8e6ccf}.bar.wait{background:#d9822b}.bar.update{background:#00838f}.bar.child{background:#5a6fd6}
        .bar.timedOut{background:#b85c00}.bar.retried{box-shadow:inset 0 0 0 2px #f2c94c}
        .bar.open{border-right:3px dashed #333;border-radius:3px 0 0 3px}.bar.superseded,.wf-row.superseded .lane{opacity:.4}
        .bar.mark{width:2px!important;min-width:2px;padding:0;border-radius:0;top:.1rem;height:1.3rem;background:#555}.bar.mark.failed{background:#c62828}
        .dur{position:absolute;top:.25rem;font-size:.72rem;color:#444;white-space:nowrap;padding:0 .35rem}.dur.over{top:.3rem;line-height:.95rem;background:#fffc;border-radius:3px}
        .legend{font-size:.8rem;color:#555;display:flex;gap:.9rem;flex-wrap:wrap;margin:.6rem 0 0}.legend i{display:inline-block;width:.9rem;height:.7rem;border-radius:2px;margin-right:.25rem;vertical-align:middle}
        .meter{height:.35rem;background:#eee;border-radius:3px;width:6rem;margin-top:.2rem}.meter div{height:100%;background:#0a66c2;border-radius:3px}
        </style>
        {{#refresh}}<noscript><meta http-equiv=refresh content="{{seconds}}"></noscript>
        <script>
        setTimeout(function reload() {
          var field = document.activeElement;
          if (field && field.form && field.type !== 'checkbox' && field.type !== 'submit') { setTimeout(reload, 1000); return; }
          location.reload();
        }, {{milliseconds}});
        </script>{{/refresh}}
        </head><body>
        <header><h1><a href="{{home}}">Continuum</a></h1>
        {{#nav}}<nav><a id=nav-workflows href="{{workflows}}"{{#workflowsSelected}} class=selected{{/workflowsSelected}}>Workflows</a>
        <a id=nav-schedules href="{{schedules}}"{{#schedulesSelected}} class=selected{{/schedulesSelected}}>Schedules</a>
        <a id=nav-queues href="{{queues}}"{{#queuesSelected}} class=selected{{/queuesSelected}}>Queues</a></nav>{{/nav}}</header>
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
        <form id=filters class=filters method=get action="{{home}}">
        <label>Status <select name=status><option value="">any</option>{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/statuses}}</select></label>
        <label>Type <select name=type><option value="">any</option>{{#types}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/types}}</select></label>
        <label>Id starts with <input name=id value="{{idPrefix}}" placeholder="order-"></label>
        <label><input type=checkbox name=refresh value="{{refreshEvery}}"{{#refreshing}} checked{{/refreshing}} onchange="this.form.submit()"> auto-refresh every {{refreshEvery}} s</label>
        <button type=submit>Filter</button>
        </form>
        {{#narrowed}}<p id=narrowed class=note>Only {{.}}. <a href="{{clear}}">Clear</a></p>{{/narrowed}}
        <table id=workflows><thead><tr><th>Workflow</th><th>Type</th><th>Status</th><th>Started</th><th>Updated</th></tr></thead><tbody>
        {{#rows}}
        <tr data-id="{{id}}"><td><a href="{{link}}">{{id}}</a></td><td><a class=type href="{{typeLink}}">{{type}}</a></td><td class="status {{status}}">{{status}}{{#suspension}} <small class=code>({{.}})</small>{{/suspension}}</td><td>{{createdAt}}</td><td>{{updatedAt}}</td></tr>
        {{/rows}}
        {{^rows}}
        <tr><td colspan=5 class=empty>{{#narrowed}}No workflows match.{{/narrowed}}{{^narrowed}}No workflows yet.{{/narrowed}}</td></tr>
        {{/rows}}
        </tbody></table>
        {{#searched}}<p id=searched class=note>Read {{.}} workflows without filling the page.</p>{{/searched}}
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
        <form class=refresh method=get><label><input type=checkbox name=refresh value="{{refreshEvery}}"{{#refreshing}} checked{{/refreshing}} onchange="this.form.submit()"> auto-refresh every {{refreshEvery}} s</label><noscript> <button type=submit>Apply</button></noscript></form>
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
        {{#waterfall}}
        <section id=waterfall class=waterfall>
        <h3>Timeline <small class=note>from {{start}}, {{span}}</small></h3>
        <div class="wf-row axis"><div class=lane></div><div class=track>{{#ticks}}<span class=tick style="{{style}}">{{label}}</span>{{/ticks}}</div></div>
        {{#rows}}
        <div class="wf-row {{kind}}{{#failed}} failed{{/failed}}{{#superseded}} superseded{{/superseded}}" data-row="{{name}}">
        <div class=lane title="{{label}}">{{#child}}<a class=child-link href="{{href}}">{{label}}</a>{{/child}}{{^child}}{{label}}{{/child}}{{#note}}<small>{{.}}</small>{{/note}}</div>
        <div class=track>{{#bars}}<div class="{{classes}}" data-kind="{{kind}}" data-duration="{{duration}}" style="{{style}}" title="{{title}}">{{#inside}}{{.}}{{/inside}}</div>{{/bars}}<span class="dur {{summarySide}}" style="{{summaryStyle}}">{{summary}}</span></div>
        </div>
        {{/rows}}
        <p class=legend><span><i style="background:#1a7f37"></i>step</span><span><i style="background:#c62828"></i>failed attempt</span>
        <span><i style="background:repeating-linear-gradient(45deg,#f2c94c 0 4px,#fff1bf 4px 8px)"></i>retry backoff</span><span><i style="background:#8e6ccf"></i>sleep</span>
        <span><i style="background:#d9822b"></i>event wait</span><span><i style="background:#00838f"></i>update</span><span><i style="background:#5a6fd6"></i>child</span>
        <span>dashed end: still going</span><span>A step's bar starts at the workflow's previous recorded moment: history records when a step ends. Hover a bar for its times.</span></p>
        </section>
        {{/waterfall}}
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
        {{#resetEvent}}
        <form id=reset-event method=post action="{{.}}">
        <h3>Reset to an event</h3>
        <p>Run again from an event with the code deployed now: it and the events after it are kept but superseded (external events are delivered again).</p>
        <label>Event <select name=event required>
        {{#events}}<option value="{{value}}">{{label}}</option>{{/events}}
        </select></label>
        <label>By <input name=by placeholder=dashboard></label>
        <label>Reason <input name=reason placeholder="rerun from here"></label>
        <button type=submit class=danger>Reset to event</button>
        </form>
        {{/resetEvent}}
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

    static let queues = """
        {{<layout}}{{$body}}
        <form class=refresh method=get><label><input type=checkbox name=refresh value="{{refreshEvery}}"{{#refreshing}} checked{{/refreshing}} onchange="this.form.submit()"> auto-refresh every {{refreshEvery}} s</label><noscript> <button type=submit>Apply</button></noscript></form>
        <h2>Queues</h2>
        {{#shared}}<p class=note>The limits configured for this runtime, and how many hold a slot (running) and wait for one in every process sharing the store, which applies the limits to all of them.</p>{{/shared}}
        {{^shared}}<p class=note>The limits configured for this runtime, and how many hold a slot (running) and wait for one, in this process, which owns the store.</p>{{/shared}}
        <table id=queues><thead><tr><th>Queue</th><th>Running</th><th>Waiting</th><th>At once</th><th>Per partition</th><th>Rate</th><th>Partitions running</th></tr></thead><tbody>
        {{#rows}}
        <tr data-queue="{{name}}"><td>{{name}}</td><td class=running>{{running}}{{#fill}}<div class=meter><div style="{{.}}"></div></div>{{/fill}}</td><td class=waiting>{{waiting}}</td><td>{{concurrency}}</td><td>{{perPartition}}</td><td>{{rate}}</td><td class=partitions>{{#partitions}}{{.}}<br>{{/partitions}}</td></tr>
        {{/rows}}
        {{^rows}}
        <tr><td colspan=7 class=empty>No queues configured: name them in WorkflowRuntime.Configuration.queues.</td></tr>
        {{/rows}}
        </tbody></table>
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
        <h2 class=error>{{title}} <small id=error-status>{{status}}</small></h2>
        <p id=error-message class=error>{{message}}</p>
        <p class=note>Error code <code id=error-code>{{code}}</code>.</p>
        {{#back}}<p><a id=back href="{{.}}">← back to the workflow</a></p>{{/back}}
        {{^back}}<p><a href="{{home}}">← all workflows</a></p>{{/back}}
        {{/body}}{{/layout}}
        """
}
