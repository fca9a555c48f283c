/// A workflow's state: a pure fold of its event stream, and the rules that match the calls a
/// workflow makes on replay against what its history recorded.
///
/// It does no I/O. The instance actor feeds it stored events with ``apply(_:)``, asks it what
/// to do with each step call (``beginStep(named:)``) and turns the answers into appends.
///
/// ```swift
/// var state = WorkflowState()
/// for event in stored.events { try state.apply(event) }
/// switch state.beginStep(named: "create-customer") {
/// case .replay(let recorded): …   // return the recorded result, run nothing
/// case .execute(let call): …      // run the body, then append `state.completeStep(call, …)`
/// case .diverged(let divergence): … // suspend: the code no longer matches history
/// case .ambiguous: …              // two steps of one name running at once
/// }
/// ```
package struct WorkflowState: Sendable {
    /// A step whose outcome is in history.
    package struct RecordedStep: Sendable, Equatable {
        /// How the step was called.
        package var record: StepRecord
        /// Its JSON result, or the failure its body threw.
        package var outcome: Result<[UInt8], StepFailure>
    }

    /// A failure recorded for a step, as an `Error` so it fits in a `Result`.
    package struct StepFailure: Error, Sendable, Equatable {
        /// The recorded failure.
        package var failure: FailureRecord
    }

    /// A wait recorded in history.
    package struct RecordedWait: Sendable, Equatable {
        /// How the wait was called.
        package var record: StepRecord
        /// What it waits for.
        package var wait: WaitKind
        /// When it times out (a timer: when it fires), in nanoseconds since 1970.
        package var due: Int64?
        /// How it ended, or `nil` while it waits.
        package var outcome: WaitOutcome?
    }

    /// An external event in the workflow's inbox.
    package struct ReceivedEvent: Sendable, Equatable {
        /// The event's name.
        package var name: String
        /// Its JSON payload.
        package var payload: [UInt8]
    }

    /// What a wait call does.
    package enum WaitDecision: Sendable, Equatable {
        /// History has the wait: resume it (it may have ended already).
        case replay(RecordedWait)
        /// The wait is new: append ``startWait(_:wait:due:timestamp:)``'s event.
        case execute(StepCall)
        /// The call does not match history.
        case diverged(Divergence)
        /// Another wait of the same name is still waiting.
        case ambiguous(StepKey)
    }

    /// How a workflow ended.
    package enum Outcome: Sendable, Equatable {
        /// It returned this JSON output.
        case completed([UInt8])
        /// Its body threw. (Indirect, as is a cancellation: the rarer outcomes' payloads would
        /// widen every state by 24 bytes.)
        indirect case failed(FailureRecord)
        /// It ended after a cancellation request.
        indirect case cancelled(reason: String)
    }

    /// A step call that must run live; hand it back to ``completeStep(_:outcome:timestamp:)``.
    package struct StepCall: Sendable, Hashable {
        /// The step's identity.
        package var key: StepKey
        /// Its position among the body's own step calls, or among all calls when `concurrent`.
        package var index: UInt32
        /// Whether it was called from a child task.
        package var concurrent: Bool
        /// The attempt to run (1 for the first); more when history recorded failed attempts.
        package var attempt: UInt32 = 1
        /// When the next attempt may start (a backoff recorded in history), in nanoseconds since 1970.
        package var notBefore: Int64?
        /// The fingerprint of the code running it, recorded with its outcome.
        package var fingerprint: String?
    }

    /// What the workflow should do with a step call.
    package enum StepDecision: Sendable, Equatable {
        /// History has the step's outcome: return it without running the body.
        case replay(RecordedStep)
        /// The step is new: run its body and record the outcome.
        case execute(StepCall)
        /// The call does not match history: suspend the workflow.
        case diverged(Divergence)
        /// Another step with the same name is still running in this workflow.
        case ambiguous(StepKey)
        /// History has the step's outcome, but it was recorded by code with another fingerprint.
        case changed(RecordedStep)
    }

    /// Where and how the workflow's code stopped matching its history.
    package struct Divergence: Error, Sendable, Equatable, CustomStringConvertible {
        /// The position among the body's step calls where the mismatch was found.
        package var index: UInt32
        /// What history recorded at that position, if anything.
        package var recorded: StepKey?
        /// What the code asked for, or `nil` when the code finished without calling a recorded step.
        package var requested: StepKey?

        /// Creates a divergence.
        package init(index: UInt32, recorded: StepKey?, requested: StepKey?) {
            self.index = index
            self.recorded = recorded
            self.requested = requested
        }

        package var description: String {
            let recordedText = recorded.map { "step \($0)" } ?? "no step there"
            if let requested {
                return "at step #\(index) history recorded \(recordedText) but the code asked for step \(requested)"
            }
            return "history recorded \(recordedText) at step #\(index) but the code finished without calling it"
        }
    }

    // The fold's fields are set by the fold and by a snapshot's decoding
    // (WorkflowState+Snapshot.swift), hence `internal(set)`.

    /// Why cancellation was requested, once it was.
    package internal(set) var cancellation: String? {
        get { rare.cancellation }
        set { rare.cancellation = newValue }
    }
    /// Why the workflow is suspended, while it is.
    package internal(set) var suspension: SuspensionRecord? {
        get { rare.suspension }
        set { rare.suspension = newValue }
    }
    /// How many times the workflow was reset: steps that run after a reset get new idempotency keys.
    package internal(set) var resetGeneration: UInt32 = 0
    /// The version markers the workflow recorded (``WorkflowContext/patched(_:)``).
    package internal(set) var markers: Set<String> = []
    /// The workflow and event this one was forked from, if it was.
    package internal(set) var forkedFrom: (id: String, sequence: UInt32)? {
        get { rare.forkedFrom }
        set { rare.forkedFrom = newValue }
    }
    /// How many stored events a reset superseded (kept in the stream, no longer folded).
    package internal(set) var supersededEvents: Int {
        get { rare.supersededEvents }
        set { rare.supersededEvents = newValue }
    }
    /// The workflow that started this one as its child, if one did.
    package internal(set) var parent: ParentLink? {
        get { rare.parent }
        set { rare.parent = newValue }
    }
    /// The queue the workflow runs on, if any.
    package internal(set) var queue: QueueEntry? {
        get { rare.queue }
        set { rare.queue = newValue }
    }
    /// When it was put on that queue (its start's time), which orders it among the waiting.
    package internal(set) var queuedAt: Int64 {
        get { rare.queuedAt }
        set { rare.queuedAt = newValue }
    }
    /// When the workflow must have ended (``HistoryEvent/Kind/deadlineSet(due:)``), if ever.
    package internal(set) var deadline: Int64? {
        get { rare.deadline }
        set { rare.deadline = newValue }
    }
    /// Whether the deadline passed first: the cancellation it started ends the workflow failed
    /// with ``ContinuumError/Code/timedOut`` rather than cancelled.
    package internal(set) var timedOut: Bool {
        get { rare.timedOut }
        set { rare.timedOut = newValue }
    }

    /// What most workflows never set (a cancellation, a suspension, a fork, a parent, a queue, a
    /// deadline), kept apart: a state that has none of it holds one reference for all of it.
    private var rare = Rare()

    /// The deadline while it can still pass: set, not passed, the workflow unfinished.
    package var pendingDeadline: Int64? {
        guard let deadline, !timedOut, cancellation == nil, outcome == nil else { return nil }
        return deadline
    }

    /// What a deadline that passed says, in the error the workflow's waits throw and in its failure.
    package static let deadlineReason = "its deadline passed"

    /// The workflow's registered type name (`nil` until `workflowStarted` is applied).
    package internal(set) var type: String?
    /// The workflow's JSON input.
    package internal(set) var input: [UInt8] = []
    /// The tracing context its starter left (see ``HistoryEvent/Kind/workflowStarted(type:input:traceContext:)``).
    package internal(set) var traceContext: [String: String] = [:]
    /// The sequence number the next appended event gets.
    package internal(set) var nextSequence: UInt32 = 0
    /// How the workflow ended, once it has.
    package internal(set) var outcome: Outcome?
    /// Every step whose outcome is in history, by identity.
    package internal(set) var recordedSteps: SmallMap<StepKey, RecordedStep> = [:]
    /// Steps with failed attempts and a scheduled retry, by identity.
    package internal(set) var retryingSteps: SmallMap<StepKey, Retry> = [:]

    /// A step between attempts.
    package struct Retry: Sendable, Equatable {
        /// How the step was called.
        package var record: StepRecord
        /// The attempt that failed last.
        package var attempt: UInt32
        /// When the next attempt may start.
        package var nextAttemptAt: Int64
    }

    /// Every wait (sleep, event wait) recorded in history, ended or not, by identity.
    package internal(set) var recordedWaits: SmallMap<StepKey, RecordedWait> = [:]
    /// The recorded steps and waits the body called itself, by their position among the body's calls.
    var recordedBodyCalls: SmallMap<UInt32, StepKey> = [:]
    /// External events received, by sequence number, and which of them a wait consumed.
    package internal(set) var inbox: [UInt32: ReceivedEvent] = [:]
    var consumed: Set<UInt32> = []
    /// The sequence number of the event received with each dedup key.
    package internal(set) var dedupKeys: [String: UInt32] = [:]

    // Bookkeeping of the current run (not part of history).
    private var claimed = SmallSet<StepKey>()
    private var occurrences: SmallMap<String, UInt32> = [:]
    private var bodyCallCount: UInt32 = 0
    private var callCount: UInt32 = 0
    private var inFlight = SmallSet<StepKey>()

    /// Creates the state of a workflow with no history.
    package init() {}

    /// The state a stored history folds to, resets applied: from each `workflowReset` on, the
    /// events it supersedes are left out (external events excepted, which are delivered again).
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when the history is inconsistent.
    package init(replaying events: [HistoryEvent]) throws(ContinuumError) {
        self.init()
        for (position, event) in events.enumerated() where Int(event.sequence) != position {
            throw inconsistent("event \(event.sequence) is at position \(position)")
        }
        let effective = try Self.effective(events)
        supersededEvents = events.count - effective.count
        for event in effective { try fold(event) }
        nextSequence = UInt32(events.count)
    }

    /// The events a history holds once its resets are applied, in order.
    package static func effective(_ events: [HistoryEvent]) throws(ContinuumError) -> [HistoryEvent] {
        guard events.contains(where: { if case .workflowReset = $0.kind { true } else { false } }) else { return events }
        var effective: [HistoryEvent] = []
        effective.reserveCapacity(events.count)
        for event in events {
            if case .workflowReset(let target, _, _) = event.kind {
                guard target >= 1, target < event.sequence else {
                    throw ContinuumError(
                        .corruptedData, "The workflow's history is inconsistent: event \(event.sequence) resets to event \(target).")
                }
                effective.removeAll { $0.sequence >= target && !$0.isRedelivered }
            }
            effective.append(event)
        }
        return effective
    }

    /// Whether history still holds steps or waits this run has not asked for yet.
    package var isReplaying: Bool { claimed.count < recordedSteps.count + recordedWaits.count + retryingSteps.count }

    /// How many recorded steps and waits this run has asked for so far.
    package var claimedCount: Int { claimed.count }

    /// The recorded step or wait not yet asked for that comes first in history, if any.
    package var firstUnclaimed: (index: UInt32, key: StepKey)? {
        firstUnclaimedRecord.map { ($0.index, $0.key) }
    }

    /// The first record the run did not claim, found without gathering the records in arrays
    /// (every workflow's end asks).
    private var firstUnclaimedRecord: StepRecord? {
        var first: StepRecord?
        func consider(_ record: StepRecord) {
            guard !claimed.contains(record.key) else { return }
            if let found = first, !StepRecord.precedes(record, found) { return }
            first = record
        }
        for step in recordedSteps.values { consider(step.record) }
        for wait in recordedWaits.values { consider(wait.record) }
        for retry in retryingSteps.values { consider(retry.record) }
        return first
    }

    /// The first event that recorded step or wait `key` (its first attempt), to reset to. Only
    /// a fold of the whole history (``init(replaying:)``) fills it in: history edits fold one.
    package internal(set) var firstSequence: SmallMap<StepKey, UInt32> = [:]

    /// The deadlines of the waits still waiting, each once: what the store's due-time index holds.
    package var pendingDues: Set<Int64> {
        var dues = Set(recordedWaits.values.filter { $0.outcome == nil }.compactMap(\.due))
        if let pendingDeadline { dues.insert(pendingDeadline) }
        return dues
    }

    /// What a version-marker call (`ctx.patched(id)`) does.
    package enum PatchDecision: Sendable, Equatable {
        /// History recorded the marker: the new branch, as before.
        case recorded
        /// History recorded the run going past this point without the marker: the old branch.
        case oldBranch
        /// New code at the end of history: the new branch, with this event to append.
        case newBranch(HistoryEvent)
    }

    /// Records that the workflow is suspended and returns the event to append.
    package mutating func recordSuspension(_ record: SuspensionRecord, timestamp: Int64) -> HistoryEvent {
        suspension = record
        return next(timestamp, .workflowSuspended(record))
    }

    /// Decides a version marker: recorded markers keep their branch; a run that is still
    /// replaying what it did before the marker existed takes the old branch; new work takes the
    /// new one and records it.
    package mutating func patch(_ id: String, timestamp: Int64) -> PatchDecision {
        if markers.contains(id) { return .recorded }
        if isReplaying { return .oldBranch }
        markers.insert(id)
        return .newBranch(next(timestamp, .markerRecorded(id)))
    }

    // MARK: The fold

    /// Folds one stored event into the state.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when the event cannot follow the
    ///   events before it (a gap in sequence numbers, a second start, an event after the end,
    ///   the same step recorded twice).
    package mutating func apply(_ event: HistoryEvent) throws(ContinuumError) {
        guard event.sequence == nextSequence else {
            throw inconsistent("event \(event.sequence) follows event \(Int(nextSequence) - 1)")
        }
        if case .workflowReset = event.kind {
            throw inconsistent("a reset (event \(event.sequence)) can only be folded with the whole history")
        }
        try fold(event)
        nextSequence = event.sequence + 1
    }

    /// Folds one event of the effective history (sequence numbers may skip superseded events).
    private mutating func fold(_ event: HistoryEvent) throws(ContinuumError) {
        guard outcome == nil else { throw inconsistent("event \(event.sequence) comes after the workflow ended") }
        switch event.kind {
        case .workflowStarted(let type, let input, let traceContext):
            guard self.type == nil else { throw inconsistent("a second workflowStarted at \(event.sequence)") }
            self.type = type
            self.input = input
            self.traceContext = traceContext
        case .stepCompleted(let step, let result):
            try record(step, .success(result), at: event.sequence)
        case .stepFailed(let step, let failure):
            try record(step, .failure(StepFailure(failure: failure)), at: event.sequence)
        case .waitStarted(let step, let wait, let due):
            try requireStarted(event.sequence)
            try claimIndex(step, at: event.sequence)
            recordedWaits[step.key] = RecordedWait(record: step, wait: wait, due: due, outcome: nil)
            firstSequence[step.key] = event.sequence
        case .waitEnded(let key, let waitOutcome):
            guard var wait = recordedWaits[key], wait.outcome == nil else {
                throw inconsistent("event \(event.sequence) ends wait \(key), which is not waiting")
            }
            if case .received(let sequence) = waitOutcome {
                guard inbox[sequence] != nil, !consumed.contains(sequence) else {
                    throw inconsistent("event \(event.sequence) delivers event \(sequence), which is not in the inbox")
                }
                consumed.insert(sequence)
            }
            wait.outcome = waitOutcome
            recordedWaits[key] = wait
        case .stepRetrying(let step, let attempt, _, let next):
            try requireStarted(event.sequence)
            if let previous = retryingSteps[step.key] {
                guard attempt == previous.attempt + 1 else { throw inconsistent("attempt \(attempt) of step \(step.key) follows attempt \(previous.attempt)") }
            } else {
                try claimIndex(step, at: event.sequence)
                firstSequence[step.key] = event.sequence
            }
            retryingSteps[step.key] = Retry(record: step, attempt: attempt, nextAttemptAt: next)
        case .eventReceived(let name, let payload, let dedupKey):
            try requireStarted(event.sequence)
            inbox[event.sequence] = ReceivedEvent(name: name, payload: payload)
            if let dedupKey { dedupKeys[dedupKey] = event.sequence }
        case .cancelRequested(let reason, _):
            try requireStarted(event.sequence)
            if cancellation == nil { cancellation = reason }
        case .workflowCancelled(let reason):
            try requireStarted(event.sequence)
            outcome = .cancelled(reason: reason)
        case .workflowCompleted(let output):
            try requireStarted(event.sequence)
            outcome = .completed(output)
        case .workflowFailed(let failure):
            try requireStarted(event.sequence)
            outcome = .failed(failure)
        case .workflowSuspended(let record):
            try requireStarted(event.sequence)
            suspension = record
        case .workflowResumed:
            try requireStarted(event.sequence)
            suspension = nil
        case .workflowReset(_, let generation, _):
            try requireStarted(event.sequence)
            resetGeneration = generation
            suspension = nil
        case .workflowForked(let from, let sequence, _):
            try requireStarted(event.sequence)
            forkedFrom = (from, sequence)
        case .markerRecorded(let id):
            try requireStarted(event.sequence)
            markers.insert(id)
        case .startedAsChild(let parent, let key):
            try requireStarted(event.sequence)
            self.parent = ParentLink(id: parent, key: key)
        case .deadlineSet(let due):
            try requireStarted(event.sequence)
            deadline = due
        case .deadlinePassed:
            try requireStarted(event.sequence)
            if cancellation == nil {
                cancellation = Self.deadlineReason
                timedOut = true
            }
        case .continuedAsNew(let input):
            try requireStarted(event.sequence)
            startNewRun(input: input)
        case .enqueued(let entry):
            try requireStarted(event.sequence)
            queue = entry
            queuedAt = event.timestamp
        }
    }

    private mutating func record(_ step: StepRecord, _ outcome: Result<[UInt8], StepFailure>, at sequence: UInt32) throws(ContinuumError) {
        try requireStarted(sequence)
        if retryingSteps.removeValue(forKey: step.key) == nil { try claimIndex(step, at: sequence) }
        recordedSteps[step.key] = RecordedStep(record: step, outcome: outcome)
        if firstSequence[step.key] == nil { firstSequence[step.key] = sequence }
    }

    private mutating func claimIndex(_ step: StepRecord, at sequence: UInt32) throws(ContinuumError) {
        guard recordedSteps[step.key] == nil, recordedWaits[step.key] == nil else {
            throw inconsistent("step \(step.key) recorded twice (again at \(sequence))")
        }
        if !step.concurrent {
            guard recordedBodyCalls[step.index] == nil else { throw inconsistent("two steps recorded at step #\(step.index)") }
            recordedBodyCalls[step.index] = step.key
        }
    }

    private func requireStarted(_ sequence: UInt32) throws(ContinuumError) {
        guard type != nil else { throw inconsistent("event \(sequence) comes before workflowStarted") }
    }

    private func inconsistent(_ what: String) -> ContinuumError {
        ContinuumError(.corruptedData, "The workflow's history is inconsistent: \(what). The workflow is suspended; restore its data from a backup.")
    }

    // MARK: Matching calls against history

    /// Decides what a step call does: replay a recorded outcome, run live, or stop.
    ///
    /// A step is identified by its name and occurrence. Steps the workflow body calls itself
    /// come in the body's program order, so each must also be at the same position among the
    /// body's calls as when it was recorded; otherwise the code changed and the call is
    /// ``StepDecision/diverged(_:)``. Steps called from child tasks (`async let`, task groups)
    /// are matched by name and occurrence alone, because concurrent tasks may reach them in
    /// another order on replay.
    ///
    /// - Parameters:
    ///   - name: The step's name.
    ///   - concurrent: Whether the call comes from a child task rather than the body itself.
    package mutating func beginStep(named name: String, concurrent: Bool = false, fingerprint: String? = nil) -> StepDecision {
        // The fingerprint goes into the call where it is made: set on a copy taken out of the
        // match, the call's strings were retained again on every step.
        switch match(name: name, concurrent: concurrent, wait: nil, fingerprint: fingerprint) {
        case .recordedWait: preconditionFailure("a step call matches only a recorded step")
        case .recordedStep(let recorded):
            if let fingerprint, let before = recorded.record.fingerprint, before != fingerprint { return .changed(recorded) }
            return .replay(recorded)
        case .new(let call):
            return .execute(call)
        case .diverged(let divergence): return .diverged(divergence)
        case .ambiguous(let key): return .ambiguous(key)
        }
    }

    /// Decides what a wait call (`sleep`, `waitForEvent`) does, by the same rules as steps.
    package mutating func beginWait(named name: String, concurrent: Bool = false, wait: WaitKind) -> WaitDecision {
        switch match(name: name, concurrent: concurrent, wait: wait) {
        case .recordedStep: preconditionFailure("a wait call matches only a recorded wait")
        case .recordedWait(let recorded): return .replay(recorded)
        case .new(let call): return .execute(call)
        case .diverged(let divergence): return .diverged(divergence)
        case .ambiguous(let key): return .ambiguous(key)
        }
    }

    private enum Match {
        /// History has it, as a step or as a wait (handed over so as not to look it up again).
        case recordedStep(RecordedStep)
        case recordedWait(RecordedWait)
        case new(StepCall)
        case diverged(Divergence)
        case ambiguous(StepKey)
    }

    /// The matching rules shared by steps (`wait == nil`) and waits.
    ///
    /// Replay runs this for every recorded step, so it looks the name up as few times as it can:
    /// the occurrence is read and counted in one search, and taken back on the rare paths that
    /// do not advance.
    private mutating func match(name: String, concurrent: Bool, wait: WaitKind?, fingerprint: String? = nil) -> Match {
        // The run's bookkeeping grows with every call and is dropped when the run ends or rests:
        // room for four at once, not one and then four.
        if claimed.isEmpty { claimed.reserveCapacity(4) }
        if occurrences.isEmpty { occurrences.reserveCapacity(4) }
        let occurrence = occurrences.modify(name, default: 0) { Self.postIncrement(&$0) }
        let key = StepKey(name: name, occurrence: occurrence)
        let index = concurrent ? callCount : bodyCallCount
        let recorded: StepRecord
        let found: Match
        if let step = recordedSteps[key] {
            guard wait == nil else { return notAdvancing(name, .diverged(Divergence(index: index, recorded: key, requested: key))) }
            (recorded, found) = (step.record, .recordedStep(step))
        } else if let waiting = recordedWaits[key] {
            guard waiting.wait == wait else { return notAdvancing(name, .diverged(Divergence(index: index, recorded: key, requested: key))) }
            (recorded, found) = (waiting.record, .recordedWait(waiting))
        } else if let retry = retryingSteps[key] {
            // Between attempts: the position must match, then the step runs its next attempt.
            let moved = !concurrent && (retry.record.concurrent || retry.record.index != index)
            if moved || wait != nil || (concurrent && !retry.record.concurrent) {
                return notAdvancing(name, .diverged(Divergence(index: index, recorded: concurrent ? key : recordedBodyCalls[index], requested: key)))
            }
            advance(concurrent: concurrent)
            claimed.insert(key)
            inFlight.insert(key)
            return .new(
                StepCall(key: key, index: index, concurrent: concurrent, attempt: retry.attempt + 1, notBefore: retry.nextAttemptAt, fingerprint: fingerprint))
        } else {
            if !concurrent, let other = recordedBodyCalls[index], !claimed.contains(other) {
                return notAdvancing(name, .diverged(Divergence(index: index, recorded: other, requested: key)))
            }
            if inFlight.contains(where: { $0.name == name }) {
                return notAdvancing(name, .ambiguous(key))
            }
            advance(concurrent: concurrent)
            inFlight.insert(key)
            return .new(StepCall(key: key, index: index, concurrent: concurrent, fingerprint: fingerprint))
        }
        let moved = !concurrent && (recorded.concurrent || recorded.index != index)
        let nowConcurrent = concurrent && !recorded.concurrent
        if moved || nowConcurrent {
            return notAdvancing(name, .diverged(Divergence(index: index, recorded: concurrent ? key : recordedBodyCalls[index], requested: key)))
        }
        advance(concurrent: concurrent)
        claimed.insert(key)
        return found
    }

    /// Returns `value` and adds one to it.
    private static func postIncrement(_ value: inout UInt32) -> UInt32 {
        defer { value += 1 }
        return value
    }

    /// A call that does not advance: its occurrence is not counted after all.
    private mutating func notAdvancing(_ name: String, _ match: Match) -> Match {
        occurrences[name, default: 1] -= 1
        return match
    }

    private mutating func advance(concurrent: Bool) {
        callCount += 1
        if !concurrent { bodyCallCount += 1 }
    }

    /// Records the outcome of a live step and returns the event to append.
    package mutating func completeStep(_ call: StepCall, outcome: Result<[UInt8], FailureRecord>, timestamp: Int64) -> HistoryEvent {
        inFlight.remove(call.key)
        retryingSteps[call.key] = nil
        let step = StepRecord(
            name: call.key.name, occurrence: call.key.occurrence, index: call.index, concurrent: call.concurrent, fingerprint: call.fingerprint)
        let kind: HistoryEvent.Kind =
            switch outcome {
            case .success(let result): .stepCompleted(step, result: result)
            case .failure(let failure): .stepFailed(step, failure: failure)
            }
        let event = HistoryEvent(sequence: nextSequence, timestamp: timestamp, kind: kind)
        recordedSteps[call.key] = RecordedStep(record: step, outcome: outcome.mapError { StepFailure(failure: $0) })
        if !call.concurrent { recordedBodyCalls[call.index] = call.key }
        claimed.insert(call.key)
        nextSequence += 1
        return event
    }

    /// Records a failed attempt with its backoff and returns the event to append; `call` then
    /// describes the next attempt.
    package mutating func retryStep(_ call: inout StepCall, failure: FailureRecord, nextAttemptAt: Int64, timestamp: Int64) -> HistoryEvent {
        let step = StepRecord(
            name: call.key.name, occurrence: call.key.occurrence, index: call.index, concurrent: call.concurrent, fingerprint: call.fingerprint)
        retryingSteps[call.key] = Retry(record: step, attempt: call.attempt, nextAttemptAt: nextAttemptAt)
        if !call.concurrent { recordedBodyCalls[call.index] = call.key }
        claimed.insert(call.key)
        let event = next(timestamp, .stepRetrying(step, attempt: call.attempt, failure: failure, nextAttemptAt: nextAttemptAt))
        call.attempt += 1
        call.notBefore = nextAttemptAt
        return event
    }

    /// Forgets a live step that will not be recorded (the runtime is shutting down).
    package mutating func abandonStep(_ call: StepCall) {
        inFlight.remove(call.key)
    }

    /// Records that a new wait began and returns the event to append.
    package mutating func startWait(_ call: StepCall, wait: WaitKind, due: Int64?, timestamp: Int64) -> HistoryEvent {
        // The wait stays in flight until it ends, so a same-named concurrent wait is ambiguous.
        let step = StepRecord(name: call.key.name, occurrence: call.key.occurrence, index: call.index, concurrent: call.concurrent)
        recordedWaits[call.key] = RecordedWait(record: step, wait: wait, due: due, outcome: nil)
        if !call.concurrent { recordedBodyCalls[call.index] = call.key }
        claimed.insert(call.key)
        return next(timestamp, .waitStarted(step, wait: wait, due: due))
    }

    /// Records how a waiting wait ended and returns the event to append, or `nil` when it is
    /// not waiting (it ended already).
    package mutating func endWait(_ key: StepKey, outcome: WaitOutcome, timestamp: Int64) -> HistoryEvent? {
        guard var wait = recordedWaits[key], wait.outcome == nil else { return nil }
        inFlight.remove(key)
        if case .received(let sequence) = outcome { consumed.insert(sequence) }
        wait.outcome = outcome
        recordedWaits[key] = wait
        return next(timestamp, .waitEnded(key, outcome: outcome))
    }

    /// Ends this run and begins a new one with `input`, and returns the event to append, or the
    /// divergence when history holds steps this run did not ask for.
    package mutating func continueAsNew(input: [UInt8], timestamp: Int64) -> Result<HistoryEvent, Divergence> {
        if let missing = firstUnclaimedRecord {
            return .failure(Divergence(index: missing.index, recorded: missing.key, requested: nil))
        }
        let event = next(timestamp, .continuedAsNew(input: input))
        startNewRun(input: input)
        return .success(event)
    }

    /// Forgets the run that ended: its steps, waits and markers. What outlives a run stays: the
    /// inbox and what was consumed from it, the dedup keys, a cancellation, the deadline, the
    /// parent. Steps of the new run get new idempotency keys (the generation grows).
    private mutating func startNewRun(input: [UInt8]) {
        self.input = input
        recordedSteps = [:]
        retryingSteps = [:]
        recordedWaits = [:]
        recordedBodyCalls = [:]
        firstSequence = [:]
        markers = []
        resetGeneration += 1
        claimed = []
        occurrences = [:]
        bodyCallCount = 0
        callCount = 0
        inFlight = []
    }

    /// Forgets the current run's bookkeeping, as if the history had just been folded: the body
    /// runs again from its start and replays everything recorded. A dormant workflow does this
    /// when it gives up its task, and replays on waking from the state it kept.
    package mutating func rewind() {
        claimed = []
        occurrences = [:]
        bodyCallCount = 0
        callCount = 0
        inFlight = []
    }

    /// Records a cancellation request and returns what to append: the request, and the end of
    /// every wait still waiting. Empty when cancellation was requested already.
    package mutating func requestCancellation(reason: String, by: String? = nil, timestamp: Int64) -> [HistoryEvent] {
        guard cancellation == nil else { return [] }
        cancellation = reason
        var events = [next(timestamp, .cancelRequested(reason: reason, by: by))]
        for (key, wait) in recordedWaits.sorted(by: { StepRecord.precedes($0.value.record, $1.value.record) }) where wait.outcome == nil {
            if let ended = endWait(key, outcome: .cancelled, timestamp: timestamp) { events.append(ended) }
        }
        return events
    }

    /// Records that the deadline passed and returns what to append: the record, and the end of
    /// every wait still waiting. Empty when the workflow was cancelled, or the deadline passed, already.
    package mutating func passDeadline(timestamp: Int64) -> [HistoryEvent] {
        guard pendingDeadline != nil else { return [] }
        cancellation = Self.deadlineReason
        timedOut = true
        var events = [next(timestamp, .deadlinePassed)]
        for (key, wait) in recordedWaits.sorted(by: { StepRecord.precedes($0.value.record, $1.value.record) }) where wait.outcome == nil {
            if let ended = endWait(key, outcome: .cancelled, timestamp: timestamp) { events.append(ended) }
        }
        return events
    }

    /// How a request to stop ends the workflow whatever its body does: cancelled, or failed
    /// with `timedOut` when the deadline passed first.
    private var stopOutcome: Outcome? {
        guard let cancellation else { return nil }
        guard timedOut else { return .cancelled(reason: cancellation) }
        return .failed(FailureRecord(type: "ContinuumError.\(ContinuumError.Code.timedOut)", message: "The workflow's deadline passed."))
    }

    /// Ends the workflow cancelled at once, without running its body (a suspended workflow, whose
    /// code cannot replay), and returns the event to append.
    package mutating func endCancelled(reason: String, timestamp: Int64) -> HistoryEvent {
        outcome = .cancelled(reason: reason)
        return next(timestamp, .workflowCancelled(reason: reason))
    }

    /// Records that someone resumed the workflow and returns the event to append.
    package mutating func resume(_ action: ActionRecord, timestamp: Int64) -> HistoryEvent {
        suspension = nil
        return next(timestamp, .workflowResumed(action))
    }

    /// Records an external event and returns what to append, or the sequence number of the
    /// event already received with the same dedup key.
    package mutating func receive(name: String, payload: [UInt8], dedupKey: String?, timestamp: Int64) -> Result<HistoryEvent, Duplicate> {
        if let dedupKey, let sequence = dedupKeys[dedupKey] { return .failure(Duplicate(sequence: sequence)) }
        let event = next(timestamp, .eventReceived(name: name, payload: payload, dedupKey: dedupKey))
        inbox[event.sequence] = ReceivedEvent(name: name, payload: payload)
        if let dedupKey { dedupKeys[dedupKey] = event.sequence }
        return .success(event)
    }

    /// An event with this dedup key was received already, at `sequence`.
    package struct Duplicate: Error, Sendable, Equatable {
        /// Where the first event with the key is in the stream.
        package var sequence: UInt32
    }

    /// The oldest received event with this name that no wait consumed yet.
    package func oldestUnconsumed(named name: String) -> (sequence: UInt32, event: ReceivedEvent)? {
        inbox.filter { $0.value.name == name && !consumed.contains($0.key) }.min { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The payload of the event named `name` that a wait this run already asked for received,
    /// if one did: a second look at a delivered event (a child's result read twice).
    package func receivedByClaimedWait(eventName name: String) -> [UInt8]? {
        for wait in recordedWaits.values where wait.wait == .event(name) && claimed.contains(wait.record.key) {
            if case .received(let sequence)? = wait.outcome { return inbox[sequence]?.payload }
        }
        return nil
    }

    /// The children this workflow started whose outcome it has not received yet.
    package var openChildren: [ChildRecord] {
        let starts = recordedSteps.values.filter { $0.record.name.hasPrefix(ChildRecord.stepPrefix) }
        if starts.isEmpty { return [] }
        let received = Set(inbox.values.map(\.name))
        return starts.sorted { $0.record.index < $1.record.index }.compactMap { step in
            guard case .success(let bytes) = step.outcome,
                let child = try? PayloadCoder.decode(ChildRecord.self, from: bytes, what: "child record")
            else { return nil }
            return received.contains(child.noticeName) ? nil : child
        }
    }

    /// How the workflow would end if its body ended with `outcome` now, without recording it:
    /// `nil` when history holds steps the body did not ask for (``finish(_:timestamp:)`` then
    /// finds a divergence).
    package func finalOutcome(_ outcome: Outcome) -> Outcome? {
        let records = recordedSteps.values.map(\.record) + recordedWaits.values.map(\.record) + retryingSteps.values.map(\.record)
        guard records.allSatisfy({ claimed.contains($0.key) }) else { return nil }
        return stopOutcome ?? outcome
    }

    private mutating func next(_ timestamp: Int64, _ kind: HistoryEvent.Kind) -> HistoryEvent {
        defer { nextSequence += 1 }
        return HistoryEvent(sequence: nextSequence, timestamp: timestamp, kind: kind)
    }

    /// Records how the workflow ended and returns the event to append, or the divergence
    /// when the code finished without calling a step that history recorded.
    ///
    /// - Parameter exactly: Record `outcome` as it is, even if a cancellation came meanwhile: the
    ///   parent was told it already (``finalOutcome(_:)``), and the two must agree.
    package mutating func finish(_ outcome: Outcome, timestamp: Int64, exactly: Bool = false) -> Result<HistoryEvent, Divergence> {
        if let missing = firstUnclaimedRecord {
            return .failure(Divergence(index: missing.index, recorded: missing.key, requested: nil))
        }
        // Once cancellation was requested, the workflow ends cancelled however its body ends.
        let outcome = exactly ? outcome : stopOutcome ?? outcome
        let kind: HistoryEvent.Kind =
            switch outcome {
            case .completed(let output): .workflowCompleted(output: output)
            case .failed(let failure): .workflowFailed(failure)
            case .cancelled(let reason): .workflowCancelled(reason: reason)
            }
        let event = HistoryEvent(sequence: nextSequence, timestamp: timestamp, kind: kind)
        self.outcome = outcome
        nextSequence += 1
        return .success(event)
    }
}

extension HistoryEvent {
    /// Whether a reset leaves the event in effect although it comes after the reset point: an
    /// external event is delivered again rather than lost.
    package var isRedelivered: Bool {
        if case .eventReceived = kind { true } else { false }
    }
}

extension WorkflowState {
    /// The fields of ``WorkflowState`` that most workflows never set, in a shared box that is
    /// allocated on the first change and copied on write.
    struct Rare: Sendable {
        private struct Fields: Sendable {
            var cancellation: String?
            var suspension: SuspensionRecord?
            var forkedFrom: (id: String, sequence: UInt32)?
            var supersededEvents = 0
            var parent: ParentLink?
            var queue: QueueEntry?
            var queuedAt: Int64 = 0
            var deadline: Int64?
            var timedOut = false
        }

        private final class Box: Sendable {
            let fields: Fields
            init(_ fields: Fields) { self.fields = fields }
        }

        /// `nil` while every field has its default.
        private var box: Box?

        private var fields: Fields { box?.fields ?? Fields() }

        /// Sets a field; setting one to what it holds (a fold or a snapshot setting a default) allocates nothing.
        private mutating func set<T: Equatable>(_ field: WritableKeyPath<Fields, T>, _ value: T) {
            guard fields[keyPath: field] != value else { return }
            change { $0[keyPath: field] = value }
        }

        private mutating func change(_ edit: (inout Fields) -> Void) {
            var fields = self.fields
            edit(&fields)
            box = Box(fields)
        }

        // Each getter reads its one field out of the box: read through `fields`, every read
        // copied all of them (retaining each string) and destroyed the copy, about sixteen
        // releases per workflow for fields it never set.
        var cancellation: String? {
            get { box?.fields.cancellation }
            set { set(\.cancellation, newValue) }
        }
        var suspension: SuspensionRecord? {
            get { box?.fields.suspension }
            set { set(\.suspension, newValue) }
        }
        var forkedFrom: (id: String, sequence: UInt32)? {
            get { box?.fields.forkedFrom }
            set {
                guard newValue != nil || box?.fields.forkedFrom != nil else { return }
                change { $0.forkedFrom = newValue }
            }
        }
        var supersededEvents: Int {
            get { box?.fields.supersededEvents ?? 0 }
            set { set(\.supersededEvents, newValue) }
        }
        var parent: ParentLink? {
            get { box?.fields.parent }
            set { set(\.parent, newValue) }
        }
        var queue: QueueEntry? {
            get { box?.fields.queue }
            set { set(\.queue, newValue) }
        }
        var queuedAt: Int64 {
            get { box?.fields.queuedAt ?? 0 }
            set { set(\.queuedAt, newValue) }
        }
        var deadline: Int64? {
            get { box?.fields.deadline }
            set { set(\.deadline, newValue) }
        }
        var timedOut: Bool {
            get { box?.fields.timedOut ?? false }
            set { set(\.timedOut, newValue) }
        }
    }
}

extension StepRecord {
    /// History order: by position, then (a concurrent call and a body call can share a number)
    /// body calls first, then by name and occurrence. The order never depends on how a map
    /// holds the records, so a state folded from events and one decoded from a snapshot pick the
    /// same record and end waits in the same order.
    static func precedes(_ a: StepRecord, _ b: StepRecord) -> Bool {
        (a.index, a.concurrent ? 1 : 0, a.name, a.occurrence) < (b.index, b.concurrent ? 1 : 0, b.name, b.occurrence)
    }
}
