import DequeModule
#if canImport(FoundationInternationalization)
public import FoundationEssentials
import FoundationInternationalization
#else
public import Foundation
#endif

/// A durable schedule: which workflow to start, with what input, at the times a cron
/// expression names (``WorkflowRuntime/schedule(_:)``).
public struct Schedule: Sendable, Hashable, Codable {
    /// The schedule's name, unique in the store; each slot's workflow id is `<name>@<slot time>`.
    public var name: String
    /// When it fires (``CronExpression``).
    public var cron: String
    /// The time zone the cron expression's wall-clock times are in (an IANA identifier, such as
    /// `Europe/Paris`; default `UTC`).
    public var timeZone: String
    /// The registered type name of the workflow each slot starts.
    public var workflow: String
    /// Its input, as JSON text.
    public var input: String
    /// Which missed slots run after downtime.
    public var catchUp: CatchUpPolicy
    /// What a slot does while the previous slot's workflow still runs.
    public var overlap: OverlapPolicy

    /// Creates a schedule.
    public init(
        name: String, cron: String, timeZone: String = "UTC", workflow: String, input: String = "null",
        catchUp: CatchUpPolicy = .latest, overlap: OverlapPolicy = .skip
    ) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        self.workflow = workflow
        self.input = input
        self.catchUp = catchUp
        self.overlap = overlap
    }
}

/// Which slots missed while no process ran (or while the schedule's workflow was behind) run
/// when it catches up. A slot counts as missed once it is more than ``CatchUpPolicy/grace`` late.
public enum CatchUpPolicy: Sendable, Hashable, Codable {
    /// None: only slots that come on time run.
    case skip
    /// The most recent missed slot runs, once (the default).
    case latest
    /// Every missed slot runs, oldest first, but at most the `max` most recent.
    case all(max: Int)

    /// How late a slot may fire and still count as on time.
    public static let grace: Duration = .seconds(60)
}

/// What a slot does while the workflow the schedule started for an earlier slot still runs.
public enum OverlapPolicy: String, Sendable, Hashable, Codable {
    /// The slot is skipped (the default).
    case skip
    /// The slot's workflow starts anyway.
    case allow
}

/// A schedule as it stands: its definition, when it fires next and what it did.
public struct ScheduleInfo: Sendable, Hashable, Codable {
    /// The schedule.
    public var schedule: Schedule
    /// The next times it fires (up to five).
    public var next: [Date]
    /// The latest slot it handled, if any.
    public var lastSlot: Date?
    /// How many slots it started a workflow for.
    public var started: Int
    /// How many slots it skipped (overlap, or missed past the catch-up policy).
    public var skipped: Int
    /// The id of the workflow that runs the schedule.
    public var workflowID: String
}

/// What a schedule's workflow keeps from one run to the next.
struct ScheduleState: Codable, Sendable {
    var schedule: Schedule
    /// The latest slot handled, in seconds since 1970.
    var lastSlot: Int64?
    /// The workflow started for the latest slot that started one.
    var lastStarted: String?
    var started = 0
    var skipped = 0
}

/// A change to a running schedule, sent as its `configure` update.
enum ScheduleChange: Codable, Sendable {
    case replace(Schedule)
    case delete
}

/// The workflow behind every schedule: it waits durably for the next slot (or for a change),
/// starts the slot's workflow through a recorded step under the slot's id, and continues as new
/// every so often to keep its history short.
struct ScheduleWorkflow: Workflow {
    static let name = "continuum.schedule"
    /// Slots handled per run before it continues as new.
    static let slotsPerRun = 50

    func run(_ ctx: WorkflowContext, input: ScheduleState) async throws -> String {
        var state = input
        let cron = try CronExpression(state.schedule.cron)
        guard let zone = TimeZone(identifier: state.schedule.timeZone) else {
            throw ContinuumError(.invalidArgument, "Unknown time zone '\(state.schedule.timeZone)'.")
        }
        if state.lastSlot == nil { state.lastSlot = Int64(try await ctx.now(name: "created").timeIntervalSince1970.rounded(.down)) }
        for _ in 0..<Self.slotsPerRun {
            let now = try await ctx.now()
            let last = Date(timeIntervalSince1970: Double(state.lastSlot ?? 0))
            try await ctx.publish(
                "schedule",
                ScheduleInfo(
                    schedule: state.schedule, next: cron.next(5, after: max(now, last), in: zone), lastSlot: state.lastSlot.map { Date(timeIntervalSince1970: Double($0)) },
                    started: state.started, skipped: state.skipped, workflowID: ctx.workflowID))
            guard let slot = cron.next(after: last, in: zone) else {
                // It never fires again: wait for a change.
                return try await configure(ctx, state, wait: nil) ?? "ended"
            }
            if slot > now {
                let wait = Duration.nanoseconds(Int64((slot.timeIntervalSince(now) * 1e9).rounded(.up)))
                if let ended = try await configure(ctx, state, wait: wait) { return ended }
                continue
            }
            try await fire(ctx, cron: cron, zone: zone, now: now, state: &state)
        }
        try await ctx.continueAsNew(with: state)
    }

    /// Waits up to `wait` for a change: returns how the schedule ended when it was deleted,
    /// continues as new with a replaced one, and returns `nil` when the wait ran out.
    private func configure(_ ctx: WorkflowContext, _ state: ScheduleState, wait: Duration?) async throws -> String? {
        guard let request = try await ctx.nextUpdate("configure", as: ScheduleChange.self, timeout: wait) else { return nil }
        switch request.payload {
        case .delete:
            try await request.reply("deleted")
            return "deleted"
        case .replace(let schedule):
            try await request.reply("replaced")
            var next = state
            next.schedule = schedule
            try await ctx.continueAsNew(with: next)
        }
    }

    /// Starts the workflows of the slots due by `now`, as the catch-up and overlap policies say.
    private func fire(_ ctx: WorkflowContext, cron: CronExpression, zone: TimeZone, now: Date, state: inout ScheduleState) async throws {
        var due = Deque<Date>()
        var passed = 0
        var cursor = Date(timeIntervalSince1970: Double(state.lastSlot ?? 0))
        // Bounded: a long downtime of a frequent schedule keeps the most recent slots only.
        while let slot = cron.next(after: cursor, in: zone), slot <= now {
            due.append(slot)
            if due.count > 10_000 {
                due.removeFirst()
                passed += 1
            }
            cursor = slot
        }
        guard let latest = due.last else { return }
        state.skipped += passed
        let grace = Double(CatchUpPolicy.grace.components.seconds)
        let onTime = Array(due.filter { now.timeIntervalSince($0) <= grace })
        let missed = Array(due.filter { now.timeIntervalSince($0) > grace })
        let chosen: [Date]
        switch state.schedule.catchUp {
        case .skip: chosen = onTime
        case .latest: chosen = onTime.isEmpty ? Array(missed.suffix(1)) : onTime
        case .all(let max): chosen = Array(due.suffix(Swift.max(1, max)))
        }
        state.skipped += due.count - chosen.count
        for slot in chosen {
            let id = Self.workflowID(state.schedule.name, slot: slot)
            let schedule = state.schedule
            let previous = state.lastStarted
            let instance = ctx.instance
            let started: Bool
            do {
                started = try await ctx.step("start:\(Self.stamp(slot))", retry: ChildRecord.startRetry) { () async throws -> Bool in
                guard let runtime = instance.runtime else {
                    throw ContinuumError(.notRunning, "A schedule starts workflows only while the runtime runs.")
                }
                if schedule.overlap == .skip, let previous, try await runtime.status(of: previous)?.status == .running { return false }
                _ = try await runtime.start(type: schedule.workflow, id: id, json: Array(schedule.input.utf8))
                return true
                }
            } catch let error as ContinuumError where error.code == .stepFailed {
                // A slot whose workflow could not start (its type gone, its input no longer
                // decoding, the store failing past the retries) is skipped, recorded as failed
                // in the schedule's history; the schedule goes on with the next slot.
                started = false
            }
            if started {
                state.started += 1
                state.lastStarted = id
            } else {
                state.skipped += 1
            }
        }
        state.lastSlot = Int64(latest.timeIntervalSince1970)
    }

    /// A slot's time as its workflow id carries it: `2026-11-30T06:00:00Z`.
    static func stamp(_ slot: Date) -> String {
        Date.ISO8601FormatStyle().format(slot)
    }

    /// The id of the workflow a schedule starts for `slot`.
    static func workflowID(_ name: String, slot: Date) -> String {
        "\(name)@\(stamp(slot))"
    }
}
