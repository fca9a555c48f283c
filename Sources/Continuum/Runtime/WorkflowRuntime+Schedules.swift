#if canImport(FoundationInternationalization)
public import FoundationEssentials
import FoundationInternationalization
#else
public import Foundation
#endif

/// Durable schedules: each is a workflow of the runtime's own (`continuum.schedule`) that sleeps
/// until its next slot, starts the slot's workflow under the id `<name>@<slot time>` through a
/// recorded step, and continues as new every 50 slots. A slot therefore starts its workflow
/// exactly once however often the process restarts, and a slot missed during downtime is handled
/// by the schedule's ``CatchUpPolicy`` when a process runs again.
extension WorkflowRuntime {
    /// Creates schedule `name`, or replaces the one of that name: workflow `W` starts with
    /// `input` at the times `cron` names in `timeZone`.
    ///
    /// ```swift
    /// try await runtime.schedule("nightly-report", cron: "0 6 * * *", timeZone: TimeZone(identifier: "Europe/Paris")!,
    ///                            workflow: Report.self, input: .init(recipients: ["ops@example.com"]))
    /// ```
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` for a cron expression that does not
    ///   parse; ``ContinuumError/Code/unknownWorkflowType``; ``ContinuumError/Code/payloadCoding``.
    public func schedule<W: Workflow>(
        _ name: String, cron: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!, workflow: W.Type, input: W.Input,
        catchUp: CatchUpPolicy = .latest, overlap: OverlapPolicy = .skip
    ) async throws {
        let json = try PayloadCoder.encode(input, what: "the input of schedule '\(name)'", sortedKeys: true)
        try await schedule(
            Schedule(
                name: name, cron: cron, timeZone: timeZone.identifier, workflow: W.name, input: String(decoding: json, as: UTF8.self),
                catchUp: catchUp, overlap: overlap))
    }

    /// Creates or replaces a schedule given as data (as `PUT /v1/schedules/{name}` receives it).
    ///
    /// Everything is checked before anything is stored: the cron expression, the time zone, the
    /// workflow type and that the input decodes as its input.
    public func schedule(_ schedule: Schedule) async throws {
        try validate(name: schedule.name, what: "A schedule name")
        _ = try CronExpression(schedule.cron)
        guard TimeZone(identifier: schedule.timeZone) != nil else {
            throw ContinuumError(.invalidArgument, "Schedule '\(schedule.name)': '\(schedule.timeZone)' is not a time zone identifier (such as Europe/Paris).")
        }
        guard let workflow = workflows[schedule.workflow], !Self.isBuiltIn(schedule.workflow) else {
            throw Self.unregistered(schedule.workflow, id: schedule.name)
        }
        try workflow.checkInput(Array(schedule.input.utf8))
        if case .all(let max) = schedule.catchUp, max < 1 {
            throw ContinuumError(.invalidArgument, "Schedule '\(schedule.name)': catch-up all(max:) needs a max of at least 1.")
        }
        try validate(id: ScheduleWorkflow.workflowID(schedule.name, slot: Date(timeIntervalSince1970: 0)))
        for id in Self.scheduleIDs(schedule.name) {
            switch try await status(of: id)?.status {
            case nil:
                try await start(ScheduleWorkflow.self, id: id, input: ScheduleState(schedule: schedule))
                logger.info("Schedule created", metadata: ["continuum.schedule": "\(schedule.name)"])
                return
            case .running?:
                let _: String = try await update(id, "configure", payload: ScheduleChange.replace(schedule), as: String.self)
                logger.info("Schedule replaced", metadata: ["continuum.schedule": "\(schedule.name)"])
                return
            default:
                continue  // deleted (or ended) before: the next id holds the schedule
            }
        }
    }

    /// Deletes schedule `name`: no slot starts a workflow any more (those started go on).
    ///
    /// - Throws: ``ContinuumError/Code/unknownWorkflow`` when no schedule has that name.
    public func unschedule(_ name: String) async throws {
        guard let id = try await currentScheduleID(name) else {
            throw ContinuumError(.unknownWorkflow, "No schedule is named '\(name)'.")
        }
        let _: String = try await update(id, "configure", payload: ScheduleChange.delete, as: String.self)
        // Returns once the schedule's workflow ended, so that it is no longer listed.
        _ = try await handle(ScheduleWorkflow.self, id: id).result()
        logger.info("Schedule deleted", metadata: ["continuum.schedule": "\(name)"])
    }

    /// Every schedule, with its next fire times, in order of name.
    public func schedules() async throws -> [ScheduleInfo] {
        var infos: [ScheduleInfo] = []
        var cursor: String?
        repeat {
            let page = try await list(status: .running, after: cursor, limit: 500)
            for summary in page.workflows where summary.type == ScheduleWorkflow.name {
                if let info = try? await scheduleInfo(summary.id) { infos.append(info) }
            }
            cursor = page.next
        } while cursor != nil
        return infos.sorted { $0.schedule.name < $1.schedule.name }
    }

    /// The schedule named `name`, if there is one.
    public func schedule(named name: String) async throws -> ScheduleInfo? {
        guard let id = try await currentScheduleID(name) else { return nil }
        return try await scheduleInfo(id)
    }

    /// What schedule workflow `id` published; for one that has not yet, what its input says.
    private func scheduleInfo(_ id: String) async throws -> ScheduleInfo {
        do {
            return try await query(id, "schedule", as: ScheduleInfo.self)
        } catch let error as ContinuumError where error.code == .unknownQuery {
            let state = try WorkflowState(replaying: try await history(of: id))
            let input = try PayloadCoder.decode(ScheduleState.self, from: state.input, what: "schedule '\(id)'")
            let last = input.lastSlot.map { Date(timeIntervalSince1970: Double($0)) }
            let now = Date(timeIntervalSince1970: Double(configuration.clock.now()) / 1e9)
            let next = (try? CronExpression(input.schedule.cron)).flatMap { cron in
                TimeZone(identifier: input.schedule.timeZone).map { cron.next(5, after: max(now, last ?? now), in: $0) }
            }
            return ScheduleInfo(
                schedule: input.schedule, next: next ?? [], lastSlot: last, started: input.started, skipped: input.skipped, workflowID: id)
        }
    }

    private func currentScheduleID(_ name: String) async throws -> String? {
        for id in Self.scheduleIDs(name) {
            switch try await status(of: id)?.status {
            case nil: return nil
            case .running?: return id
            default: continue
            }
        }
        return nil
    }

    /// The ids a schedule's workflow takes: one per life of the schedule (deleted, then created again).
    private static func scheduleIDs(_ name: String) -> some Sequence<String> {
        (1...).lazy.map { $0 == 1 ? "continuum.schedule:\(name)" : "continuum.schedule:\(name)~\($0)" }
    }
}
