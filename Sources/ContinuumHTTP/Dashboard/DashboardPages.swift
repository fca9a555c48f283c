import Continuum
import Foundation

// The dashboard's view models: plain values the templates read (stored properties only, which
// is what swift-mustache's reflection sees). Each page has `title` and `home` for the layout.

/// Where the dashboard's pages are, under whatever path it was mounted at.
struct DashboardLinks: Sendable {
    /// The mount path: `""` at the root, else like `/ops`.
    let base: String

    /// The links of a request to a route of `routeDepth` path segments (`ui/workflows/:id` has 3):
    /// the segments before those are where the collection was mounted.
    init(request path: String, routeDepth: Int) {
        base = path.split(separator: "/").dropLast(routeDepth).map { "/" + $0 }.joined()
    }

    var home: String { base + "/" }
    var login: String { base + "/login" }
    /// The login cookie's path: the whole dashboard. A mount path with characters that could
    /// end the attribute (`;` is allowed in a URL path) falls back to `/`.
    var cookiePath: String {
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~/%"))
        guard !base.isEmpty, base.unicodeScalars.allSatisfy({ $0.isASCII && safe.contains($0) }) else { return "/" }
        return base
    }

    func overview(status: WorkflowStatus?, after: String? = nil) -> String {
        var query: [String] = []
        if let status { query.append("status=\(status.rawValue)") }
        if let after { query.append("after=\(Self.percentEncoded(after))") }
        return home + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    func workflow(_ id: String) -> String { base + "/ui/workflows/" + Self.percentEncoded(id) }
    var schedules: String { base + "/ui/schedules" }

    /// A path segment or query value, percent-encoded: nothing but unreserved characters stays.
    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }
}

/// `GET /ui/schedules`: every schedule with its next fire times.
struct SchedulesPage {
    struct Row {
        let name: String
        let cron: String
        let timeZone: String
        let workflow: String
        let next: [String]
        let lastSlot: String
        let started: Int
        let skipped: Int
        let link: String
    }

    let title = "Schedules"
    let home: String
    let rows: [Row]

    init(_ schedules: [ScheduleInfo], links: DashboardLinks) {
        home = links.home
        rows = schedules.map { info in
            Row(
                name: info.schedule.name, cron: info.schedule.cron, timeZone: info.schedule.timeZone, workflow: info.schedule.workflow,
                next: info.next.map { Timestamp.string(nanoseconds: Int64($0.timeIntervalSince1970 * 1e9)) },
                lastSlot: info.lastSlot.map { Timestamp.string(nanoseconds: Int64($0.timeIntervalSince1970 * 1e9)) } ?? "—",
                started: info.started, skipped: info.skipped, link: links.workflow(info.workflowID))
        }
    }
}

struct OverviewPage {
    struct StatusCount {
        let status: String
        let count: Int
        let selected: Bool
        let link: String
    }

    struct Row {
        let id: String
        let link: String
        let type: String
        let status: String
        /// For a suspended workflow, the suspension's code.
        let suspension: String?
        let createdAt: String
        let updatedAt: String
    }

    let title = "Workflows"
    let home: String
    /// The schedules page.
    let schedules: String
    let total: Int
    let allSelected: Bool
    let counts: [StatusCount]
    let rows: [Row]
    /// The next page's link, when there is one.
    let next: String?

    init(counts: StatusCounts, filter: WorkflowStatus?, page: WorkflowPage, suspensions: [String: String] = [:], links: DashboardLinks) {
        home = links.home
        schedules = links.schedules
        total = counts.total
        allSelected = filter == nil
        self.counts = WorkflowStatus.allCases.map { status in
            StatusCount(status: status.rawValue, count: counts[status], selected: filter == status, link: links.overview(status: status))
        }
        rows = page.workflows.map { workflow in
            Row(
                id: workflow.id, link: links.workflow(workflow.id), type: workflow.type, status: workflow.status.rawValue,
                suspension: suspensions[workflow.id],
                createdAt: Timestamp.string(nanoseconds: workflow.createdAt), updatedAt: Timestamp.string(nanoseconds: workflow.updatedAt))
        }
        next = page.next.map { links.overview(status: filter, after: $0) }
    }
}

struct TimelinePage {
    /// Why the workflow is suspended, shown above its timeline.
    struct Suspension {
        let code: String
        let message: String
        /// The position among the body's calls where the code stopped matching.
        let index: String?
        /// What history recorded there.
        let recorded: String?
        /// What the code asked for there.
        let requested: String?
        let build: String?
    }

    /// A step (or wait) of the history in effect, as the reset and fork forms offer it.
    struct StepOption {
        /// `occurrence:name`, what the forms post.
        let value: String
        let label: String
        /// The step where the code stopped matching, when suspended for that.
        let selected: Bool
    }

    /// Where the forms post; a form whose link is `nil` is not offered.
    struct Actions {
        /// Running or suspended: an event (a suspended workflow keeps it until it runs again).
        let send: String?
        /// Running or suspended.
        let cancel: String?
        /// Suspended only.
        let resume: String?
        /// Any workflow with a step to go back to.
        let reset: String?
        let fork: String?
        let steps: [StepOption]
    }

    /// A workflow this one links to.
    struct Link {
        let id: String
        let href: String
    }

    /// The children the workflow started, in order.
    struct Children {
        let items: [Link]
    }

    let title: String
    let home: String
    let id: String
    let type: String
    let status: String
    /// The workflow that started this one, when one did.
    let parent: Link?
    /// The workflows this one started as children, when it started any.
    let children: Children?
    let suspension: Suspension?
    let entries: [TimelineEntry]
    /// How many events a reset superseded (shown dimmed), when any.
    let supersededCount: Int?
    let actions: Actions?

    init(summary: WorkflowSummary, suspension: SuspensionRecord?, events: [HistoryEvent], links: DashboardLinks) {
        title = summary.id
        home = links.home
        id = summary.id
        type = summary.type
        status = summary.status.rawValue
        var parent: Link?
        var children: [Link] = []
        for event in events {
            switch event.kind {
            case .startedAsChild(let id, _):
                parent = Link(id: id, href: links.workflow(id))
            case .stepCompleted(let step, let result) where step.name.hasPrefix(ChildRecord.stepPrefix):
                if let child = try? JSONDecoder().decode(ChildRecord.self, from: Data(result)) {
                    children.append(Link(id: child.id, href: links.workflow(child.id)))
                }
            default:
                continue
            }
        }
        self.parent = parent
        self.children = children.isEmpty ? nil : Children(items: children)
        self.suspension = suspension.map { record in
            Suspension(
                code: record.code, message: record.message, index: record.index.map(String.init),
                recorded: record.recorded.map(\.description),
                requested: record.requested.map(\.description)
                    ?? (record.recorded == nil ? nil : "nothing: the code finished without asking for it"),
                build: record.build)
        }
        let resets = (try? Supersession.resets(in: events)) ?? [:]
        entries = events.map { TimelineEntry($0, supersededBy: resets[$0.sequence]) }
        supersededCount = resets.isEmpty ? nil : resets.count
        let page = links.workflow(summary.id)
        let steps = Supersession.steps(in: events).map { step in
            StepOption(
                value: "\(step.key.occurrence):\(step.key.name)",
                label: "\(step.isWait ? "wait" : "step") \(step.key) at event \(step.sequence)",
                selected: step.key == suspension?.recorded)
        }
        let unfinished = !summary.status.isFinished
        let actions = Actions(
            send: unfinished ? page + "/events" : nil, cancel: unfinished ? page + "/cancel" : nil,
            resume: summary.status == .suspended ? page + "/resume" : nil,
            reset: steps.isEmpty ? nil : page + "/reset", fork: steps.isEmpty ? nil : page + "/fork", steps: steps)
        self.actions = unfinished || !steps.isEmpty ? actions : nil
    }
}

/// The form a reset or fork posts: the step as `occurrence:name`, and who and why.
struct StepChoice: Sendable, Equatable {
    var name: String
    var occurrence: UInt32

    /// Reads `occurrence:name` (the name may hold any character, `:` too).
    init?(_ value: String) {
        guard let colon = value.firstIndex(of: ":"), let occurrence = UInt32(value[..<colon]) else { return nil }
        self.occurrence = occurrence
        self.name = String(value[value.index(after: colon)...])
    }
}

/// One event of a workflow's history as the timeline shows it: its time, kind, step and
/// attempt, and what it carried, read from the event's own fields.
struct TimelineEntry {
    struct Detail {
        let label: String
        let value: String
    }

    let sequence: UInt32
    let time: String
    let kind: String
    /// The step's or wait's name, with its occurrence when it is not the first of that name.
    let step: String
    let attempt: String
    let details: [Detail]
    let error: FailureRecord?
    /// For an event a reset superseded: which reset, and a link to its row.
    let superseded: Superseded?

    struct Superseded {
        let label: String
        let link: String
    }

    init(_ event: HistoryEvent, supersededBy reset: Supersession.Reset? = nil) {
        sequence = event.sequence
        superseded = reset.map { Superseded(label: "superseded by reset #\($0.generation)", link: "#event-\($0.sequence)") }
        time = Timestamp.string(nanoseconds: event.timestamp)
        kind = event.kindName
        var step: StepKey?
        var attempt: UInt32?
        var details: [Detail] = []
        var error: FailureRecord?
        func add(_ label: String, _ value: String) { details.append(Detail(label: label, value: value)) }
        func json(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
        switch event.kind {
        case .workflowStarted(let type, let input, _):
            add("type", type)
            add("input", json(input))
        case .stepCompleted(let record, let result):
            step = record.key
            add("result", json(result))
        case .stepFailed(let record, let failure):
            step = record.key
            error = failure
        case .workflowCompleted(let output):
            add("output", json(output))
        case .workflowFailed(let failure):
            error = failure
        case .waitStarted(let record, let wait, let due):
            step = record.key
            switch wait {
            case .timer: add("waitsFor", "timer")
            case .event(let name): add("waitsFor", "event '\(name)'")
            }
            if let due { add("until", Timestamp.string(nanoseconds: due)) }
        case .waitEnded(let key, let outcome):
            step = key
            switch outcome {
            case .fired(let lateness): add("outcome", "fired, \(Double(lateness) / 1e6) ms late")
            case .received(let sequence): add("outcome", "received event #\(sequence)")
            case .timedOut: add("outcome", "timed out")
            case .cancelled: add("outcome", "cancelled")
            }
        case .stepRetrying(let record, let number, let failure, let next):
            step = record.key
            attempt = number
            error = failure
            add("nextAttemptAt", Timestamp.string(nanoseconds: next))
        case .cancelRequested(let reason, _), .workflowCancelled(let reason):
            add("reason", reason)
        case .eventReceived(let name, let payload, let dedupKey):
            add("event", name)
            add("payload", json(payload))
            if let dedupKey { add("dedupKey", dedupKey) }
        case .workflowSuspended(let record):
            add("code", record.code)
            add("message", record.message)
            if let recorded = record.recorded { add("recorded", "\(recorded)") }
            if let requested = record.requested { add("requested", "\(requested)") }
        case .workflowResumed(let action):
            add("by", action.by)
            add("reason", action.reason)
        case .workflowReset(let target, let generation, let action):
            add("to event", "#\(target)")
            add("generation", "\(generation)")
            add("by", action.by)
            add("reason", action.reason)
        case .workflowForked(let from, let sequence, let action):
            add("from", "\(from) at event #\(sequence)")
            add("by", action.by)
            add("reason", action.reason)
        case .markerRecorded(let marker):
            add("marker", marker)
        case .startedAsChild(let parent, let key):
            add("parent", parent)
            add("child", key)
        case .deadlineSet(let due):
            add("until", Timestamp.string(nanoseconds: due))
        case .deadlinePassed:
            break
        case .continuedAsNew(let input):
            add("input", json(input))
        case .enqueued(let entry):
            add("queue", entry.name + (entry.partition.map { " (\($0))" } ?? "") + (entry.priority == 0 ? "" : ", priority \(entry.priority)"))
        }
        self.step = step.map { $0.occurrence == 0 ? $0.name : "\($0.name) #\($0.occurrence)" } ?? ""
        self.attempt = attempt.map(String.init) ?? ""
        self.details = details
        self.error = error
    }
}

struct LoginPage {
    let title = "Sign in"
    let home: String
    let action: String
    let message: String?

    init(links: DashboardLinks, message: String? = nil) {
        home = links.home
        action = links.login
        self.message = message
    }
}

struct ErrorPage {
    let title = "Error"
    let home: String
    let message: String
}
