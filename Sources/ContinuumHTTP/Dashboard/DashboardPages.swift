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

    func overview(_ filter: ListFilter) -> String { home + filter.query }

    func workflow(_ id: String) -> String { base + "/ui/workflows/" + Self.percentEncoded(id) }
    var schedules: String { base + "/ui/schedules" }
    var queues: String { base + "/ui/queues" }

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
    let nav: Navigation
    let rows: [Row]

    init(_ schedules: [ScheduleInfo], links: DashboardLinks) {
        home = links.home
        nav = Navigation(links, selected: "schedules")
        rows = schedules.map { info in
            Row(
                name: info.schedule.name, cron: info.schedule.cron, timeZone: info.schedule.timeZone, workflow: info.schedule.workflow,
                next: info.next.map { Timestamp.string(nanoseconds: Int64($0.timeIntervalSince1970 * 1e9)) },
                lastSlot: info.lastSlot.map { Timestamp.string(nanoseconds: Int64($0.timeIntervalSince1970 * 1e9)) } ?? "—",
                started: info.started, skipped: info.skipped, link: links.workflow(info.workflowID))
        }
    }
}

/// What the overview lists: the query of `GET /` (`status`, `type`, `id` as a prefix, `limit`,
/// `after`, `refresh`). The store lists by status; type and id prefix are filtered here.
struct ListFilter: Sendable, Equatable {
    var status: WorkflowStatus?
    var type: String?
    var idPrefix: String?
    var limit = ListFilter.defaultLimit
    var after: String?
    /// Seconds between reloads, when the page reloads itself.
    var refresh: Int?

    static let defaultLimit = 100

    /// Whether the list reads more than it shows: the store filters by status only.
    var scans: Bool { type != nil || idPrefix != nil }

    /// The query for this filter, empty parts left out.
    var query: String {
        var items: [String] = []
        func add(_ name: String, _ value: String?) {
            if let value { items.append("\(name)=\(DashboardLinks.percentEncoded(value))") }
        }
        add("status", status?.rawValue)
        add("type", type)
        add("id", idPrefix)
        add("limit", limit == Self.defaultLimit ? nil : String(limit))
        add("refresh", refresh.map(String.init))
        add("after", after)
        return items.isEmpty ? "" : "?" + items.joined(separator: "&")
    }
}

/// What every page but the login form has at its top: the dashboard's sections.
struct Navigation {
    let workflows: String
    let schedules: String
    let queues: String
    /// The section shown, to mark its link.
    let workflowsSelected: Bool
    let schedulesSelected: Bool
    let queuesSelected: Bool

    init(_ links: DashboardLinks, selected: String) {
        workflows = links.home
        schedules = links.schedules
        queues = links.queues
        workflowsSelected = selected == "workflows"
        schedulesSelected = selected == "schedules"
        queuesSelected = selected == "queues"
    }
}

/// A page that reloads itself every `seconds` (`?refresh=5`), unless someone is typing in a form.
struct Refresh {
    let seconds: Int
    let milliseconds: Int

    init?(_ seconds: Int?) {
        guard let seconds else { return nil }
        self.seconds = seconds
        milliseconds = seconds * 1000
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
        /// The list filtered by this row's type.
        let typeLink: String
        let status: String
        /// For a suspended workflow, the suspension's code.
        let suspension: String?
        let createdAt: String
        let updatedAt: String
    }

    /// A choice in a filter's select.
    struct Option {
        let value: String
        let selected: Bool
    }

    let title = "Workflows"
    let home: String
    let nav: Navigation
    let refresh: Refresh?
    /// The schedules page.
    let schedules: String
    let total: Int
    let allSelected: Bool
    let counts: [StatusCount]
    let rows: [Row]
    /// The next page's link, when there is one.
    let next: String?
    /// The filter form's choices and values.
    let statuses: [Option]
    let types: [Option]
    let idPrefix: String
    let refreshing: Bool
    /// The auto-refresh checkbox's period: the one in effect, else 5 s.
    let refreshEvery: Int
    /// What the list is narrowed to beyond the status, in words, when it is.
    let narrowed: String?
    /// When the list stopped reading before it filled a page: how many it read.
    let searched: String?
    /// The list without type, id and page, to clear the filter.
    let clear: String

    init(
        counts: StatusCounts, filter: ListFilter, workflows: [WorkflowSummary], next cursor: String?, searched: Int? = nil, types: [String],
        suspensions: [String: String] = [:], links: DashboardLinks
    ) {
        home = links.home
        nav = Navigation(links, selected: "workflows")
        refresh = Refresh(filter.refresh)
        schedules = links.schedules
        total = counts.total
        allSelected = filter.status == nil
        // The counts are by status across every type; a count's link keeps the other filters.
        var unpaged = filter
        unpaged.after = nil
        self.counts = WorkflowStatus.allCases.map { status in
            var choice = unpaged
            choice.status = status
            return StatusCount(status: status.rawValue, count: counts[status], selected: filter.status == status, link: links.overview(choice))
        }
        rows = workflows.map { workflow in
            var byType = unpaged
            byType.type = workflow.type
            return Row(
                id: workflow.id, link: links.workflow(workflow.id), type: workflow.type, typeLink: links.overview(byType),
                status: workflow.status.rawValue, suspension: suspensions[workflow.id],
                createdAt: Timestamp.string(nanoseconds: workflow.createdAt), updatedAt: Timestamp.string(nanoseconds: workflow.updatedAt))
        }
        next = cursor.map { cursor in
            var following = filter
            following.after = cursor
            return links.overview(following)
        }
        statuses = WorkflowStatus.allCases.map { Option(value: $0.rawValue, selected: filter.status == $0) }
        // A type filtered on that this process does not run (an old one still in the store) stays choosable.
        self.types = (types + [filter.type].compactMap { $0 }.filter { !types.contains($0) }).map { Option(value: $0, selected: filter.type == $0) }
        idPrefix = filter.idPrefix ?? ""
        refreshing = filter.refresh != nil
        refreshEvery = filter.refresh ?? 5
        let parts = [filter.type.map { "type \($0)" }, filter.idPrefix.map { "id starting with '\($0)'" }].compactMap { $0 }
        narrowed = parts.isEmpty ? nil : parts.joined(separator: ", ")
        self.searched = searched.map(String.init)
        var cleared = ListFilter(status: filter.status)
        cleared.refresh = filter.refresh
        clear = links.overview(cleared)
    }
}

extension QueuesPage {
    /// A duration in whole nanoseconds (a rate's window is far from overflowing).
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// `GET /ui/queues`: each configured queue's limits, and how many run on it and wait for it
/// in this process.
struct QueuesPage {
    struct Row {
        let name: String
        let concurrency: String
        let perPartition: String
        let rate: String
        let running: Int
        let waiting: Int
        /// How full the queue is, as a bar's width (`width:40%`), when it has a concurrency limit.
        let fill: String?
        /// Running per partition, `key: count`, busiest first.
        let partitions: [String]
    }

    let title = "Queues"
    let home: String
    let nav: Navigation
    let refresh: Refresh?
    let refreshing: Bool
    let refreshEvery: Int
    let rows: [Row]
    /// Whether the counts cover every process sharing the store.
    let shared: Bool

    init(_ queues: [QueueSnapshot], refresh: Int?, links: DashboardLinks) {
        home = links.home
        shared = queues.contains { $0.shared }
        nav = Navigation(links, selected: "queues")
        self.refresh = Refresh(refresh)
        refreshing = refresh != nil
        refreshEvery = refresh ?? 5
        rows = queues.map { queue in
            let limits = queue.limits
            return Row(
                name: queue.name, concurrency: limits.concurrency.map(String.init) ?? "no limit",
                perPartition: limits.perPartition.map(String.init) ?? "no limit",
                rate: limits.rate.map { "\($0.count) per \(Waterfall.duration(Self.nanoseconds($0.window)))" } ?? "no limit",
                running: queue.running, waiting: queue.waiting,
                fill: limits.concurrency.map { "width:\(Waterfall.format(min(Double(queue.running) / Double($0) * 100, 100)))%" },
                partitions: queue.partitions.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key): \($0.value)" })
        }
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

    /// An event of the history in effect, as the reset-to-an-event form offers it.
    struct EventOption {
        let value: UInt32
        let label: String
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
        /// Any workflow with an event after its start: the same reset, to an event's number.
        let resetEvent: String?
        let events: [EventOption]
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
    let nav: Navigation
    let refresh: Refresh?
    let refreshing: Bool
    let refreshEvery: Int
    let id: String
    let type: String
    let status: String
    /// The history as bars on a time axis, above the table of events.
    let waterfall: Waterfall
    /// The workflow that started this one, when one did.
    let parent: Link?
    /// The workflows this one started as children, when it started any.
    let children: Children?
    let suspension: Suspension?
    let entries: [TimelineEntry]
    /// How many events a reset superseded (shown dimmed), when any.
    let supersededCount: Int?
    let actions: Actions?

    init(
        summary: WorkflowSummary, suspension: SuspensionRecord?, events: [HistoryEvent], refresh: Int? = nil,
        now: Int64 = Int64(Date().timeIntervalSince1970 * 1e9), links: DashboardLinks
    ) {
        title = summary.id
        home = links.home
        nav = Navigation(links, selected: "workflows")
        self.refresh = Refresh(refresh)
        refreshing = refresh != nil
        refreshEvery = refresh ?? 5
        waterfall = Waterfall(events: events, status: summary.status, now: now, links: links)
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
        // Every event in effect after the start; the runtime refuses one a reset cannot go to
        // (one that would leave the workflow finished), with a page that says so.
        let effective = (try? WorkflowState.effective(events)) ?? events
        let targets = effective.filter { $0.sequence >= 1 }.reversed().map { event in
            let entry = TimelineEntry(event)
            return EventOption(value: event.sequence, label: "#\(event.sequence) \(entry.kind)" + (entry.step.isEmpty ? "" : " \(entry.step)"))
        }
        let unfinished = !summary.status.isFinished
        let actions = Actions(
            send: unfinished ? page + "/events" : nil, cancel: unfinished ? page + "/cancel" : nil,
            resume: summary.status == .suspended ? page + "/resume" : nil,
            reset: steps.isEmpty ? nil : page + "/reset", fork: steps.isEmpty ? nil : page + "/fork", steps: steps,
            resetEvent: targets.isEmpty ? nil : page + "/reset", events: Array(targets))
        self.actions = unfinished || !steps.isEmpty || !targets.isEmpty ? actions : nil
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

/// A refused request: the status, the API error's message, and the way back.
struct ErrorPage {
    let title: String
    let home: String
    let nav: Navigation
    /// The status, `409 Conflict`.
    let status: String
    let code: String
    let message: String
    /// The page the refused form was on (a workflow's timeline), when it was one.
    let back: String?

    init(_ failure: APIError, back: String?, links: DashboardLinks) {
        title = failure.status.code < 500 ? "Refused" : "Error"
        home = links.home
        nav = Navigation(links, selected: "")
        status = "\(failure.status.code) \(failure.status.reasonPhrase)"
        code = failure.code.name
        message = failure.message
        self.back = back
    }
}
