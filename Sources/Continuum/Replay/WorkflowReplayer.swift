import CoreMetrics
public import Logging

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Replays recorded histories against the workflow code of this build, as a dry run: no step
/// body runs, nothing is appended, no timer is armed for real.
///
/// Use it in tests, against histories exported with `continuum export` and kept beside them, so
/// that a change that would break workflows already running fails a test instead of a deploy:
///
/// ```swift
/// @Test func ordersStillReplay() async throws {
///     let replayer = WorkflowReplayer(workflows: [Checkout(payments: .unused)])
///     for file in try historyFiles(in: "Histories") {
///         let result = try await replayer.replay(contentsOf: file)
///         #expect(result.isCompatible, "\(result)")
///     }
/// }
/// ```
///
/// The replay follows the code until it asks for something history does not hold (a new step,
/// a wait that history has not seen end): everything before that point matched, and what comes
/// after it is new behaviour, which is allowed. It reports a divergence when the code asks for
/// a step other than the one recorded at that position (renamed, reordered, inserted, removed),
/// or finishes while history still holds steps it did not ask for.
public struct WorkflowReplayer: Sendable {
    private let workflows: [String: AnyWorkflow]
    private let logger: Logger

    /// A replayer over workflow types already erased (the runtime's own).
    init(workflows: [String: AnyWorkflow], codeChange: WorkflowRuntime.CodeChangePolicy, logger: Logger) {
        self.workflows = workflows
        self.codeChange = codeChange
        self.logger = logger
    }
    private let codeChange: WorkflowRuntime.CodeChangePolicy

    /// A replayer for the given workflow types (their dependencies are never called).
    ///
    /// - Parameters:
    ///   - workflows: The workflow types of this build, as the runtime registers them.
    ///   - codeChange: The policy the runtime would apply to a step whose code changed
    ///     (its fingerprint differs): what the report says would happen.
    ///   - logger: Where replays log; `nil` uses `Logger.current`.
    public init(workflows: [any Workflow], codeChange: WorkflowRuntime.CodeChangePolicy = .suspend, logger: Logger? = nil) {
        self.codeChange = codeChange
        var registry: [String: AnyWorkflow] = [:]
        for workflow in workflows {
            let erased = AnyWorkflow(workflow)
            registry[erased.name] = erased
        }
        // The runtime's own workflows, as the runtime registers them.
        for builtIn in WorkflowRuntime.builtIns { registry[builtIn.name] = builtIn }
        self.workflows = registry
        self.logger = logger ?? Logger.current
    }

    /// Replays the history in a file written by `continuum export`.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when the file cannot be read as a history.
    public func replay(contentsOf url: URL) async throws -> ReplayResult {
        await replay(try WorkflowHistory(contentsOf: url))
    }

    /// Replays one recorded history.
    public func replay(_ history: WorkflowHistory) async -> ReplayResult {
        await replay(id: history.id, type: history.type, events: history.events)
    }

    /// Replays every workflow of `store` with one of `statuses` (by default the unfinished ones),
    /// one page at a time, reporting each. A workflow whose history cannot be read is reported
    /// as ``ReplayResult/Outcome/unreadable(_:)``, not thrown.
    ///
    /// - Throws: A storage error when the store cannot be listed.
    public func replay(
        store: any EventStore, statuses: [WorkflowStatus] = [.running, .suspended], pageSize: Int = 500,
        progress: @Sendable (Int) -> Void = { _ in }
    ) async throws(ContinuumError) -> [ReplayResult] {
        var results: [ReplayResult] = []
        for status in statuses {
            var after: StreamID?
            while true {
                let page = try await store.list(status: status, after: after, limit: pageSize)
                for row in page {
                    do {
                        guard let stored = try await store.load(id: row.summary.id) else { continue }
                        results.append(await replay(id: stored.summary.id, type: stored.summary.type, events: stored.events))
                    } catch {
                        results.append(ReplayResult(id: row.summary.id, type: row.summary.type, events: 0, outcome: .unreadable(error)))
                    }
                }
                progress(results.count)
                guard page.count == pageSize, let last = page.last else { break }
                after = last.stream
            }
        }
        return results
    }

    /// Replays `events` of workflow `id` of type `type`.
    func replay(id: String, type: String, events: [HistoryEvent]) async -> ReplayResult {
        var state = WorkflowState()
        do {
            for event in events { try state.apply(event) }
        } catch {
            return ReplayResult(id: id, type: type, events: events.count, outcome: .unreadable(error))
        }
        return await replay(id: id, type: type, folded: state, events: events.count, at: events.last?.timestamp ?? 0)
    }

    /// Replays workflow `id` of type `type` from its folded history (`events` events, the last
    /// at `timestamp`): a fold of the whole history, or a snapshot and the events after it.
    func replay(id: String, type: String, folded state: WorkflowState, events: Int, at timestamp: Int64) async -> ReplayResult {
        func result(_ outcome: ReplayResult.Outcome) -> ReplayResult {
            ReplayResult(id: id, type: type, events: events, outcome: outcome)
        }
        guard let workflow = workflows[type] else { return result(.unknownType) }
        // Time stands still at the last recorded event: a replay never waits.
        let clock = FrozenClock(instant: timestamp)
        var logger = self.logger
        logger[metadataKey: WorkflowRuntime.LogKey.workflowID] = .string(id)
        let environment = WorkflowInstance.Environment(
            timers: TimerService(clock: clock), metrics: RuntimeMetrics(factory: NOOPMetricsHandler.instance), tracer: nil,
            maxPayloadSize: .max, parking: nil, codeChange: codeChange)
        let instance = WorkflowInstance(id: id, stream: StreamID(rawValue: 0), mode: .replay, environment: environment, logger: logger, state: state)
        let outcome: WorkflowState.Outcome
        do {
            outcome = .completed(try await workflow.execute(WorkflowContext(instance: instance), state.input))
        } catch let next as ContinueAsNew {
            // The body asked for a new run where history ends: what came before matched.
            _ = await instance.continueAsNew(input: next.input)
            outcome = .completed([])
        } catch {
            outcome = .failed(FailureRecord(error))
        }
        var replayed: ReplayResult
        if let suspension = await instance.suspension {
            replayed = result(Self.outcome(of: suspension))
        } else if await instance.departure == nil, case .failure(let error) = await instance.finish(outcome) {
            // The body ended: finishing checks that it asked for every step history holds.
            replayed = result(Self.outcome(of: error))
        } else {
            switch await instance.replayEnd {
            case .reachedEnd(let what)?: replayed = result(.compatible(stoppedAt: what))
            case .codeChanged(let key)?: replayed = result(.codeChanged(step: key, policy: codeChange))
            case .finished?, nil: replayed = result(.compatible(stoppedAt: nil))
            }
        }
        replayed.changedSteps = await instance.changedSteps
        replayed.patches = await instance.patchesTaken
        replayed.published = await instance.published
        return replayed
    }

    private static func outcome(of error: ContinuumError) -> ReplayResult.Outcome {
        error.code == .nondeterminism ? .diverged(error) : .failed(error)
    }
}

/// What replaying one workflow's history found.
public struct ReplayResult: Sendable, CustomStringConvertible {
    /// How the replay went.
    public enum Outcome: Sendable {
        /// The code asked for what history recorded, in order, up to the end of history. It
        /// stopped at `stoppedAt` (the first call history does not hold), or ran to the end of
        /// the body when `nil`.
        case compatible(stoppedAt: String?)
        /// The code asked for something other than what history recorded; the error names the
        /// position, what history recorded and what the code asked for.
        case diverged(ContinuumError)
        /// The code failed on recorded data (a result that no longer decodes as the type the
        /// code asks for, say).
        case failed(ContinuumError)
        /// No workflow type with the recorded name is registered.
        case unknownType
        /// The history cannot be read (damaged or inconsistent).
        case unreadable(ContinuumError)
        /// The code of recorded step `step` changed since it ran (its fingerprint differs), and
        /// `policy` says what the runtime would do: suspend it, or rerun from the step.
        case codeChanged(step: StepKey, policy: WorkflowRuntime.CodeChangePolicy)
    }

    /// The workflow's id.
    public var id: String
    /// Its recorded type name.
    public var type: String
    /// How many events its history holds.
    public var events: Int
    /// How the replay went.
    public var outcome: Outcome
    /// The recorded steps whose code changed, in the order the replay met them (accepted ones
    /// included, when the policy accepts).
    public var changedSteps: [StepKey] = []
    /// The version markers the replay met, with the branch each took (`false`: the old branch,
    /// still needed for this workflow).
    public var patches: [String: Bool] = [:]
    /// The values the body published (``WorkflowContext/publish(_:_:)``) by where the replay
    /// stopped, latest per name, as JSON.
    public var published: [String: [UInt8]] = [:]

    /// Whether the code still matches the history.
    public var isCompatible: Bool {
        if case .compatible = outcome { true } else { false }
    }

    public var description: String {
        switch outcome {
        case .compatible(let stoppedAt?): "\(id) (\(type)): compatible; new code runs from \(stoppedAt)"
        case .compatible(nil): "\(id) (\(type)): compatible"
        case .diverged(let error): "\(id) (\(type)): would suspend: \(error.message)"
        case .failed(let error): "\(id) (\(type)): fails on replay (\(error.code)): \(error.message)"
        case .unknownType: "\(id) (\(type)): unknown type '\(type)': no workflow of that name is registered"
        case .unreadable(let error): "\(id) (\(type)): history unreadable (\(error.code)): \(error.message)"
        case .codeChanged(let step, let policy):
            "\(id) (\(type)): the code of step \(step) changed since it ran; the runtime would "
                + (policy == .rerun ? "rerun from it" : "suspend it (codeChanged)")
        }
    }
}

/// A clock that never moves: replays read it, and never wait on it.
struct FrozenClock: WorkflowClock {
    let instant: Int64

    func now() -> Int64 { instant }

    func sleep(until deadline: Int64) async throws {
        // Nothing in a replay sleeps; waiting for a time that will not come ends with cancellation.
        try await Task.sleep(for: .seconds(86_400 * 365))
    }
}
