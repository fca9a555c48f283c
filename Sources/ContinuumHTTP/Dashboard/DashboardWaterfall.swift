import Continuum
import Foundation

/// A workflow's history drawn as a waterfall: one row per step, wait, update, child and
/// outside happening, each with bars placed on a shared time axis by the events' timestamps.
///
/// History records when a step ended, not when it began, so a step's bar starts at the
/// workflow's previous recorded moment (the event before it that the body made: the start, a
/// step, a wait), or at the time its backoff let the next attempt run; a step called from a
/// concurrent task starts at the body's last own event. Waits, updates and children have
/// both ends recorded. Something still going (a wait, a backoff, a running child) reaches `now`.
struct Waterfall {
    /// One bar: where it sits (percentages of the track), what it shows and what it says on hover.
    struct Bar {
        /// `bar` and the bar's kind, plus `failed`, `retried`, `open`, `superseded` as they apply.
        let classes: String
        /// What the bar is: `run`, `step`, `attempt`, `backoff`, `sleep`, `wait`, `update`, `child`, `mark`.
        let kind: String
        /// `left` and `width` in percent of the track.
        let style: String
        /// The duration, shown inside the bar when it is wide enough to hold it.
        let inside: String?
        /// The duration as text, always (for the tooltip's first line and for tests).
        let duration: String
        /// The tooltip: what, from when to when, and what happened.
        let title: String
    }

    /// A workflow this waterfall links to.
    struct Link {
        let label: String
        let href: String
    }

    /// One line of the waterfall.
    struct Row {
        /// What the row is for (`step 'charge'`, `wait 'event:approve'`), as `data-row`.
        let name: String
        /// The row's kind, as a class: `run`, `step`, `sleep`, `wait`, `update`, `child`, `mark`.
        let kind: String
        let label: String
        /// What it waits for and until when, how many attempts, an event's detail.
        let note: String?
        /// For a child: its timeline.
        let child: Link?
        let bars: [Bar]
        /// The row's total, beside its last bar: duration, attempts, outcome.
        let summary: String
        /// Where the summary sits: `after` the row's bars, `before` them near the right edge, or
        /// `over` the end of bars that span the axis.
        let summaryStyle: String
        let summarySide: String
        let superseded: Bool
        let failed: Bool
    }

    struct Tick {
        let label: String
        let style: String
    }

    /// When the axis begins (the workflow's start).
    let start: String
    /// How long the axis covers.
    let span: String
    let rows: [Row]
    let ticks: [Tick]

    /// Draws `events` (a workflow's whole history, superseded events too) of a workflow with
    /// `status`: a finished one's axis ends at its last event, an unfinished one's at `now`
    /// (nanoseconds since 1970).
    init(events: [HistoryEvent], status: WorkflowStatus, now: Int64, links: DashboardLinks) {
        var builder = Builder(events: events, status: status, now: now, links: links)
        builder.build()
        let origin = builder.origin
        let span = max(builder.end - origin, 1)
        func percent(_ time: Int64) -> Double { min(max(Double(time - origin) / Double(span) * 100, 0), 100) }
        start = Timestamp.string(nanoseconds: origin)
        self.span = Self.duration(builder.end - origin)
        rows = builder.rows.map { row in
            let bars = row.bars.map { bar -> Bar in
                let left = percent(bar.from)
                let width = max(percent(bar.to) - left, 0)
                let duration = Self.duration(bar.to - bar.from)
                var classes = ["bar", bar.kind] + bar.flags
                if bar.open { classes.append("open") }
                if bar.superseded { classes.append("superseded") }
                let ends = Timestamp.string(nanoseconds: bar.from) + " – " + (bar.open ? "(still going)" : Timestamp.string(nanoseconds: bar.to))
                return Bar(
                    classes: classes.joined(separator: " "), kind: bar.kind, style: "left:\(Self.format(left))%;width:\(Self.format(width))%",
                    inside: Self.inside(bar.text, duration, width: width), duration: duration,
                    title: ([bar.text.map { "\($0) · \(duration)" } ?? duration, ends] + bar.detail).joined(separator: "\n"))
            }
            let first = row.bars.map(\.from).min() ?? origin
            let last = row.bars.map(\.to).max() ?? origin
            // After the bars when there is room on the right, else before them, else over the
            // right end of a bar that spans the axis.
            let side = percent(last) <= 78 ? "after" : percent(first) >= 25 ? "before" : "over"
            // A mark's summary is when it happened; a bar's, its duration and what became of it.
            let summary =
                row.kind == "mark"
                ? "at +" + Self.duration(first - origin) : [Self.duration(last - first), row.summary].compactMap { $0 }.joined(separator: " · ")
            return Row(
                name: row.name, kind: row.kind, label: row.label, note: row.note, child: row.child, bars: bars, summary: summary,
                summaryStyle: side == "after"
                    ? "left:\(Self.format(percent(last)))%" : side == "before" ? "right:\(Self.format(100 - percent(first)))%" : "right:0",
                summarySide: side, superseded: row.bars.allSatisfy(\.superseded) && !row.bars.isEmpty, failed: row.failed)
        }
        ticks = Self.ticks(span: span)
    }

    // MARK: Reading the history

    /// A bar before it is placed: its times in nanoseconds since 1970.
    private struct Span {
        var kind: String
        var from: Int64
        var to: Int64
        /// Still going: drawn to `now`.
        var open = false
        /// Opened by an event that a later one closes (a wait's end, a reply, a child's outcome).
        var awaiting = false
        var superseded = false
        var flags: [String] = []
        /// Shown inside the bar (instead of the bare duration) when it fits.
        var text: String?
        var detail: [String] = []
    }

    private struct Line {
        var name: String
        var kind: String
        var label: String
        var note: String?
        var child: Link?
        var bars: [Span] = []
        var summary: String?
        var failed = false
    }

    /// Walks the history once, opening and closing bars.
    private struct Builder {
        let events: [HistoryEvent]
        let status: WorkflowStatus
        let finished: Bool
        let links: DashboardLinks
        /// The events a reset superseded, by sequence, with the reset.
        let resets: [UInt32: Supersession.Reset]
        let origin: Int64
        let end: Int64
        var rows: [Line] = []
        /// Rows by key (`step:…`, `wait:…`, `update:…`, `child:…`), the latest of each.
        var index: [String: Int] = [:]
        /// The last moment the body did something recorded, for the next step's start.
        var progress: Int64
        /// The same for the body itself, leaving out steps of concurrent tasks.
        var bodyProgress: Int64
        /// When a step's next attempt may run, after a backoff.
        var nextAttempt: [StepKey: Int64] = [:]
        /// A step's failed attempts so far.
        var attempts: [StepKey: UInt32] = [:]

        init(events: [HistoryEvent], status: WorkflowStatus, now: Int64, links: DashboardLinks) {
            self.events = events
            self.status = status
            finished = status.isFinished
            self.links = links
            resets = (try? Supersession.resets(in: events)) ?? [:]
            origin = events.first?.timestamp ?? now
            let last = events.map(\.timestamp).max() ?? origin
            end = finished ? last : max(now, last)
            progress = origin
            bodyProgress = origin
        }

        func superseded(_ event: HistoryEvent) -> Bool { resets[event.sequence] != nil }

        /// When something opened by `event` and never closed stops: the reset that superseded
        /// it, else the end of the axis (still going when the workflow is unfinished).
        func openEnd(of event: HistoryEvent) -> (time: Int64, open: Bool) {
            if let reset = resets[event.sequence], Int(reset.sequence) < events.count { return (events[Int(reset.sequence)].timestamp, false) }
            return (end, !finished)
        }

        mutating func row(_ key: String, kind: String, label: String, note: String? = nil, child: Link? = nil) -> Int {
            if let existing = index[key] { return existing }
            rows.append(Line(name: key, kind: kind, label: label, note: note, child: child))
            index[key] = rows.count - 1
            return rows.count - 1
        }

        /// A row of its own for something that happened at one moment.
        mutating func mark(_ event: HistoryEvent, _ label: String, note: String? = nil, flag: String? = nil) {
            rows.append(Line(name: "mark:\(event.sequence)", kind: "mark", label: label, note: note))
            rows[rows.count - 1].bars.append(
                Span(
                    kind: "mark", from: event.timestamp, to: event.timestamp, superseded: superseded(event), flags: flag.map { [$0] } ?? [],
                    detail: [label] + (note.map { [$0] } ?? [])))
            if flag == "failed" { rows[rows.count - 1].failed = true }
        }

        /// Where a step's current attempt began.
        func attemptStart(_ record: StepRecord) -> Int64 {
            nextAttempt[record.key] ?? (record.concurrent ? bodyProgress : progress)
        }

        mutating func advance(_ event: HistoryEvent, concurrent: Bool = false) {
            progress = event.timestamp
            if !concurrent { bodyProgress = event.timestamp }
        }

        static func stepLabel(_ key: StepKey) -> String { key.occurrence == 0 ? key.name : "\(key.name) #\(key.occurrence)" }

        mutating func build() {
            // The workflow's own bar, first: from its start to its end (or now).
            let run = row("run", kind: "run", label: "workflow")
            var runEnded = false
            for event in events {
                let stale = superseded(event)
                switch event.kind {
                case .workflowStarted(let type, _, _):
                    rows[run].note = type
                case .stepCompleted(let record, let result) where record.name.hasPrefix(ChildRecord.stepPrefix):
                    // A child's start: the child's bar runs until its outcome comes back.
                    let child = try? JSONDecoder().decode(ChildRecord.self, from: Data(result))
                    let name = String(record.name.dropFirst(ChildRecord.stepPrefix.count))
                    let key = child?.key ?? name
                    let line = row(
                        "child:\(key)", kind: "child", label: "child \(child?.id ?? name)", note: child.map { "\($0.type), started as '\(name)'" },
                        child: child.map { Link(label: "child \($0.id)", href: links.workflow($0.id)) })
                    let (until, open) = openEnd(of: event)
                    rows[line].bars.append(
                        Span(
                            kind: "child", from: event.timestamp, to: until, open: open, awaiting: true, superseded: stale,
                            detail: ["started at event #\(event.sequence)"]))
                    nextAttempt[record.key] = nil
                    advance(event, concurrent: record.concurrent)
                case .stepCompleted(let record, let result) where record.name.hasPrefix(UpdateReply.prefix):
                    // An update's reply closes the update's bar.
                    let id = String(record.name.dropFirst(UpdateReply.prefix.count))
                    let reply = try? JSONDecoder().decode(UpdateReply.self, from: Data(result))
                    if let line = index["update:\(id)"], let last = rows[line].bars.indices.last, rows[line].bars[last].awaiting {
                        close(&rows[line].bars[last], at: event)
                        if let error = reply?.error {
                            rows[line].bars[last].flags.append("failed")
                            rows[line].bars[last].detail.append("rejected: \(error)")
                            rows[line].summary = "rejected"
                            rows[line].failed = true
                        } else {
                            rows[line].bars[last].detail.append("replied: \(reply?.reply ?? "")")
                            rows[line].summary = "replied"
                        }
                    }
                    advance(event, concurrent: record.concurrent)
                case .stepCompleted(let record, _):
                    let line = row("step:\(record.name)#\(record.occurrence)", kind: "step", label: Self.stepLabel(record.key))
                    let retries = attempts[record.key] ?? 0
                    rows[line].bars.append(
                        Span(
                            kind: "step", from: attemptStart(record), to: event.timestamp, superseded: stale,
                            flags: retries > 0 ? ["retried"] : [], text: retries > 0 ? "attempt \(retries + 1)" : nil,
                            detail: ["completed at event #\(event.sequence)" + (retries > 0 ? " after \(retries) failed attempts" : "")]))
                    rows[line].summary = retries > 0 ? "\(retries + 1) attempts" : nil
                    nextAttempt[record.key] = nil
                    advance(event, concurrent: record.concurrent)
                case .stepFailed(let record, let failure):
                    let line = row("step:\(record.name)#\(record.occurrence)", kind: "step", label: Self.stepLabel(record.key))
                    let retries = attempts[record.key] ?? 0
                    rows[line].bars.append(
                        Span(
                            kind: "step", from: attemptStart(record), to: event.timestamp, superseded: stale, flags: ["failed"],
                            text: "failed", detail: ["failed at event #\(event.sequence): \(failure.type): \(failure.message)"]))
                    rows[line].summary = "failed" + (retries > 0 ? " after \(retries + 1) attempts" : "")
                    rows[line].failed = true
                    nextAttempt[record.key] = nil
                    advance(event, concurrent: record.concurrent)
                case .stepRetrying(let record, let attempt, let failure, let next):
                    let line = row("step:\(record.name)#\(record.occurrence)", kind: "step", label: Self.stepLabel(record.key))
                    rows[line].bars.append(
                        Span(
                            kind: "attempt", from: attemptStart(record), to: event.timestamp, superseded: stale, flags: ["failed", "retried"],
                            text: "attempt \(attempt) failed", detail: ["\(failure.type): \(failure.message)"]))
                    // The backoff, until the next attempt may run (now, if that is still ahead).
                    let (until, open) = next > end ? (end, !finished) : (next, false)
                    rows[line].bars.append(
                        Span(
                            kind: "backoff", from: event.timestamp, to: until, open: open, superseded: stale, text: "backoff",
                            detail: ["attempt \(attempt + 1) at \(Timestamp.string(nanoseconds: next))"]))
                    attempts[record.key] = attempt
                    rows[line].summary = "\(attempt) failed, retrying"
                    nextAttempt[record.key] = next
                    advance(event, concurrent: record.concurrent)
                case .waitStarted(let record, let wait, let due):
                    let (kind, what) = Self.describe(wait)
                    let deadline = due.map { "until \(Timestamp.string(nanoseconds: $0))" } ?? "no timeout"
                    let line = row(
                        "wait:\(record.name)#\(record.occurrence)", kind: kind, label: Self.stepLabel(record.key), note: "\(what), \(deadline)")
                    let (until, open) = openEnd(of: event)
                    rows[line].bars.append(
                        Span(
                            kind: kind, from: event.timestamp, to: until, open: open, awaiting: true, superseded: stale,
                            text: kind == "sleep" ? "sleep" : "waiting",
                            detail: ["\(what), \(deadline)"]))
                    rows[line].summary = open ? "waiting" : nil
                    advance(event, concurrent: record.concurrent)
                case .waitEnded(let key, let outcome):
                    if let line = index["wait:\(key.name)#\(key.occurrence)"], let last = rows[line].bars.indices.last,
                        rows[line].bars[last].awaiting
                    {
                        close(&rows[line].bars[last], at: event)
                        let said = Self.describe(outcome)
                        rows[line].bars[last].detail.append(said)
                        rows[line].summary = said
                        if case .timedOut = outcome { rows[line].bars[last].flags.append("timedOut") }
                    }
                    advance(event)
                case .eventReceived(let name, let payload, _) where name.hasPrefix(UpdateEnvelope.prefix):
                    let update = String(name.dropFirst(UpdateEnvelope.prefix.count))
                    let envelope = try? JSONDecoder().decode(UpdateEnvelope.self, from: Data(payload))
                    let id = envelope?.id ?? "\(event.sequence)"
                    let line = row("update:\(id)", kind: "update", label: "update '\(update)'", note: "id \(id)")
                    let (until, open) = openEnd(of: event)
                    rows[line].bars.append(
                        Span(
                            kind: "update", from: event.timestamp, to: until, open: open, awaiting: true, superseded: stale, text: "update",
                            detail: ["received at event #\(event.sequence)"]))
                    rows[line].summary = open ? "awaiting reply" : nil
                case .eventReceived(let name, let payload, _) where name.hasPrefix(ChildRecord.stepPrefix):
                    // A child's outcome, back at its parent: closes the child's bar.
                    let key = String(name.dropFirst(ChildRecord.stepPrefix.count))
                    let outcome = (try? JSONDecoder().decode(ChildOutcome.self, from: Data(payload)))?.status.rawValue ?? "ended"
                    if let line = index["child:\(key)"], let last = rows[line].bars.indices.last, rows[line].bars[last].awaiting {
                        close(&rows[line].bars[last], at: event)
                        rows[line].bars[last].detail.append("\(outcome) (event #\(event.sequence))")
                        if outcome != "completed" {
                            rows[line].bars[last].flags.append("failed")
                            rows[line].failed = true
                        }
                        rows[line].summary = outcome
                    }
                case .eventReceived(let name, _, _):
                    mark(event, "event '\(name)' received", note: "event #\(event.sequence)")
                case .cancelRequested(let reason, let by):
                    mark(event, "cancel requested", note: (by.map { "by \($0): " } ?? "") + reason)
                case .workflowSuspended(let record):
                    mark(event, "suspended: \(record.code)", note: record.message, flag: "failed")
                case .workflowResumed(let action):
                    mark(event, "resumed", note: "by \(action.by): \(action.reason)")
                    advance(event)
                case .workflowReset(let target, let generation, let action):
                    mark(event, "reset #\(generation) to event #\(target)", note: "by \(action.by): \(action.reason)")
                    nextAttempt = [:]
                    attempts = [:]
                    // A finished workflow runs again: its run bar waits for the new ending.
                    rows[run].bars = []
                    rows[run].summary = nil
                    rows[run].failed = false
                    runEnded = false
                    advance(event)
                case .workflowForked(let from, let sequence, let action):
                    mark(event, "forked from \(from) at event #\(sequence)", note: "by \(action.by): \(action.reason)")
                    advance(event)
                case .markerRecorded(let marker):
                    mark(event, "marker \(marker)")
                case .startedAsChild(let parent, let key):
                    rows[run].note = [rows[run].note, "child '\(key)' of \(parent)"].compactMap { $0 }.joined(separator: ", ")
                case .deadlineSet(let due):
                    rows[run].note = [rows[run].note, "deadline \(Timestamp.string(nanoseconds: due))"].compactMap { $0 }.joined(separator: ", ")
                case .deadlinePassed:
                    mark(event, "deadline passed", flag: "failed")
                case .continuedAsNew:
                    mark(event, "continued as new")
                    advance(event)
                case .enqueued(let entry):
                    rows[run].note = [rows[run].note, "on queue \(entry.name)"].compactMap { $0 }.joined(separator: ", ")
                case .workflowCompleted:
                    endRun(run, event, "completed")
                    runEnded = true
                case .workflowFailed(let failure):
                    endRun(run, event, "failed", flag: "failed", detail: "\(failure.type): \(failure.message)")
                    runEnded = true
                case .workflowCancelled(let reason):
                    endRun(run, event, "cancelled", flag: "cancelled", detail: reason)
                    runEnded = true
                }
            }
            if !runEnded {
                rows[run].bars.append(Span(kind: "run", from: origin, to: end, open: !finished, flags: [status.rawValue], text: status.rawValue))
                rows[run].summary = status.rawValue
            }
        }

        /// Ends a bar opened by an earlier event at `event`.
        func close(_ bar: inout Span, at event: HistoryEvent) {
            bar.to = event.timestamp
            bar.open = false
            bar.awaiting = false
        }

        mutating func endRun(_ run: Int, _ event: HistoryEvent, _ outcome: String, flag: String? = nil, detail: String? = nil) {
            // A reset may reopen a finished workflow: only the last ending counts.
            rows[run].bars = [
                Span(
                    kind: "run", from: origin, to: event.timestamp, flags: flag.map { [$0] } ?? [], text: outcome,
                    detail: [outcome + " at event #\(event.sequence)"] + (detail.map { [$0] } ?? []))
            ]
            rows[run].summary = outcome
            rows[run].failed = flag == "failed"
        }

        static func describe(_ wait: WaitKind) -> (kind: String, what: String) {
            switch wait {
            case .timer: ("sleep", "timer")
            case .event(let name) where name.hasPrefix(UpdateEnvelope.prefix): ("wait", "update '\(name.dropFirst(UpdateEnvelope.prefix.count))'")
            case .event(let name) where name.hasPrefix(ChildRecord.stepPrefix): ("wait", "child '\(name.dropFirst(ChildRecord.stepPrefix.count))'")
            case .event(let name): ("wait", "event '\(name)'")
            }
        }

        static func describe(_ outcome: WaitOutcome) -> String {
            switch outcome {
            case .fired(let lateness): "fired, \(Waterfall.duration(lateness)) late"
            case .received(let sequence): "received event #\(sequence)"
            case .timedOut: "timed out"
            case .cancelled: "cancelled"
            }
        }
    }

    // MARK: Formatting

    /// What a bar `width` percent wide shows inside: its text and duration, its duration alone,
    /// or nothing (its row's summary and its tooltip still say).
    static func inside(_ text: String?, _ duration: String, width: Double) -> String? {
        if let text, width >= 20 { return "\(text) · \(duration)" }
        return width >= 8 ? duration : nil
    }

    /// A percentage with three decimals, as CSS reads it.
    static func format(_ percent: Double) -> String { String(format: "%.3f", percent) }

    /// A duration as a person reads it: `850 ms`, `2.4 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
    static func duration(_ nanoseconds: Int64) -> String {
        let nanoseconds = max(nanoseconds, 0)
        let milliseconds = nanoseconds / 1_000_000
        let seconds = nanoseconds / 1_000_000_000
        switch nanoseconds {
        case ..<1_000_000: return "<1 ms"
        case ..<1_000_000_000: return "\(milliseconds) ms"
        case ..<10_000_000_000: return String(format: "%.2f s", Double(nanoseconds) / 1e9)
        case ..<60_000_000_000: return String(format: "%.1f s", Double(nanoseconds) / 1e9)
        case ..<3_600_000_000_000: return Self.twoUnits(seconds / 60, "min", seconds % 60, "s")
        case ..<86_400_000_000_000: return Self.twoUnits(seconds / 3600, "h", seconds % 3600 / 60, "min")
        default: return Self.twoUnits(seconds / 86_400, "d", seconds % 86_400 / 3600, "h")
        }
    }

    /// `3 min 5 s`, or `3 min` when the smaller unit is 0.
    private static func twoUnits(_ large: Int64, _ largeUnit: String, _ small: Int64, _ smallUnit: String) -> String {
        small == 0 ? "\(large) \(largeUnit)" : "\(large) \(largeUnit) \(small) \(smallUnit)"
    }

    /// Ticks at a round step, at most seven across the axis.
    static func ticks(span: Int64) -> [Tick] {
        let millisecond: Int64 = 1_000_000
        let second = 1000 * millisecond
        let fractions: [Int64] = [1, 2, 5, 10, 20, 50, 100, 200, 500]
        let wholes: [Int64] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800]
        let steps = fractions.map { $0 * millisecond } + wholes.map { $0 * second }
        let step = steps.first { span / $0 <= 6 } ?? max(span / 6, 1)
        return stride(from: Int64(0), through: span, by: Int(step)).map { offset in
            let percent = Double(offset) / Double(span) * 100
            // A tick near the right edge hangs its label to the left of its line, inside the axis.
            return Tick(
                label: offset == 0 ? "0" : "+" + duration(offset),
                style: percent > 92
                    ? "right:\(format(100 - percent))%;border-left:0;border-right:1px solid #ccc;padding:0 2px 0 0" : "left:\(format(percent))%")
        }
    }
}
