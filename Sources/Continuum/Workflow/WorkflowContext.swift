import Logging
import Tracing
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The workflow body's handle on its durable history: steps, and the time, ids and random
/// numbers that must come out the same on replay.
public struct WorkflowContext: Sendable {
    let instance: WorkflowInstance

    /// The id of the running workflow.
    public var workflowID: String { instance.id }

    /// Runs `body` once and records its result, or returns the recorded result when this step
    /// already completed in an earlier run of the workflow.
    ///
    /// ```swift
    /// let customer = try await ctx.step("create-customer") { step in
    ///     try await payments.createCustomer(email: email, idempotencyKey: step.idempotencyKey)
    /// }
    /// ```
    ///
    /// The result is committed to disk before this call returns, so the code after it never
    /// runs on a result that could be lost. A step is identified by its name and by how many
    /// steps of that name the workflow called before it: steps running at the same time must
    /// have different names (`"fetch-\(i)"`).
    ///
    /// - Parameters:
    ///   - name: The step's name, stable across releases of the workflow.
    ///   - version: Bump it when you change what the step does: a recorded result of another
    ///     version is a code change (``WorkflowRuntime/Configuration/codeChange`` decides). The
    ///     `#step` macro of `ContinuumMacros` computes a fingerprint from the body's source instead.
    ///   - fingerprint: The fingerprint of the step's code, as `#step` writes it.
    ///   - policy: How to try again when the body throws (default: ``RetryPolicy/none``).
    ///   - queue: A named queue whose slot each attempt of the body holds (``QueueLimits``: how
    ///     many run at once, per partition, per time window); `nil` for none. In a workflow
    ///     started on the same queue, whose body holds one of its slots, a step naming the
    ///     workflow's partition or none runs *within* that slot: it takes no other, so it
    ///     cannot wait for its own workflow's slot, and several such steps of one workflow run
    ///     side by side in it; each attempt still counts against the queue's rate. A step naming
    ///     another partition of that queue takes a slot of its own; when the queue's concurrency
    ///     is 1, which its workflow holds, the attempt fails at once with
    ///     ``ContinuumError/Code/invalidArgument`` instead of waiting for ever.
    ///   - isolation: The actor the call runs on; leave the default, the caller's (`#isolation`).
    ///   - body: The step's work; it may run more than once if the process dies before its
    ///     result is committed, so make its effects idempotent with ``StepContext/idempotencyKey``.
    /// - Returns: The body's result, from this run or from history.
    /// - Throws: ``ContinuumError/Code/stepFailed`` when the body threw (now or in the run that
    ///   recorded it); ``ContinuumError/Code/nondeterminism`` when the code no longer matches the
    ///   workflow's history (the workflow is then suspended); ``ContinuumError/Code/codeChanged``
    ///   when its code changed since it ran and the policy is to suspend;
    ///   ``ContinuumError/Code/ambiguousStep`` when a step of the same name is still running.
    public func step<T: Codable & Sendable>(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (StepContext) async throws -> T
    ) async throws -> T {
        // The hot path keeps little across its awaits: every rarely taken branch (a replayed
        // result, a failure, a retry) is a function of its own, so that its temporaries are not
        // part of the frame every step allocates.
        var decision = try await instance.beginStep(
            named: name, concurrent: instance.isChildTask(), fingerprint: Self.fingerprint(fingerprint, version: version))
        if case .settle(let call) = decision { decision = try await instance.runAfterSettling(call) }
        // Consumed: bound by `guard case`, the call was copied out of a plan kept for the else
        // branch, its strings retained once more on every step.
        var call: WorkflowState.StepCall
        switch consume decision {
        case .execute(let planned): call = planned
        case let other: return try await replayed(other)
        }
        while true {
            let value: T
            do {
                if let notBefore = call.notBefore {
                    // A durable backoff: its end was committed with the failed attempt.
                    try await instance.backoff(call.key, until: notBefore)
                }
                value = try await run(name, call, queue: queue, isolation: isolation, body)
            } catch {
                call = try await failed(call, error, policy: policy)
                continue
            }
            try await complete(call, with: value, isolation: isolation)
            return value
        }
    }

    /// Runs a step's body once, timed and traced.
    ///
    /// Inlined, with its isolation the step's: each async call between the workflow's code and
    /// the body costs two executor checks (`swift_task_switch`) and a frame. A queue or a tracer
    /// takes a function of its own.
    @inline(__always)
    private func run<T: Sendable>(
        _ name: String, _ call: WorkflowState.StepCall, queue: QueueEntry?, isolation: isolated (any Actor)?, _ body: (StepContext) async throws -> T
    ) async throws -> T {
        if let queue { return try await runQueued(name, call, queue: queue, isolation: isolation, body) }
        if let tracer = instance.tracer { return try await runTraced(name, call, tracer: tracer, isolation: isolation, body) }
        let started = ContinuousClock.now
        defer { instance.metrics.stepDuration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds) }
        return try await body(stepContext(call))
    }

    /// Runs a step's body once, timed, within its span.
    @inline(never)
    private func runTraced<T: Sendable>(
        _ name: String, _ call: WorkflowState.StepCall, tracer: any Tracer, isolation: isolated (any Actor)?, _ body: (StepContext) async throws -> T
    ) async throws -> T {
        let started = ContinuousClock.now
        defer { instance.metrics.stepDuration.recordNanoseconds((ContinuousClock.now - started).wholeNanoseconds) }
        return try await withOptionalSpan(tracer, "step \(name)", isolation: isolation) { span in
            span?.attributes[TraceAttribute.stepName] = name
            span?.attributes[TraceAttribute.stepAttempt] = Int(call.attempt)
            return try await body(stepContext(call))
        }
    }

    /// What the body of attempt `call` is given.
    private func stepContext(_ call: WorkflowState.StepCall) -> StepContext {
        StepContext(workflowID: workflowID, key: call.key, attempt: call.attempt, resetGeneration: instance.resetGeneration)
    }

    /// Runs one attempt while holding a slot of `queue` (``QueueLimits``); waiting for the slot
    /// is not part of the attempt's time.
    ///
    /// A workflow that runs on `queue` holds one of its slots while its body runs, so a step on
    /// the same queue and partition (or naming none) runs within that slot: asking for another
    /// would wait for the one its own workflow holds, for ever when the concurrency is 1. It
    /// still counts against the queue's rate.
    @inline(never)
    private func runQueued<T: Sendable>(
        _ name: String, _ call: WorkflowState.StepCall, queue: QueueEntry, isolation: isolated (any Actor)?, _ body: (StepContext) async throws -> T
    ) async throws -> T {
        guard let gate = instance.runtime?.queueGate else { return try await run(name, call, queue: nil, isolation: isolation, body) }
        var within = false
        if let own = instance.queue, own.name == queue.name {
            if queue.partition == nil || queue.partition == own.partition {
                within = true
            } else if gate.limits[queue.name]?.concurrency == 1 {
                throw ContinuumError(
                    .invalidArgument,
                    "Step '\(name)' asks for a slot of queue '\(queue.name)' (partition '\(queue.partition ?? "")'), whose only slot its own workflow holds "
                        + "(partition '\(own.partition ?? "")') while its body runs: it would wait for ever. Run the step on its workflow's partition, "
                        + "on another queue, or raise the queue's concurrency.",
                    workflowID: instance.id)
            }
        }
        let permit = try await gate.acquire(queue, within: within, claim: instance.claim)
        defer { gate.release(permit) }
        return try await run(name, call, queue: nil, isolation: isolation, body)
    }

    /// Commits a step's result: its JSON, or the failure to encode it (recorded as the step's
    /// failure and thrown as replay throws it; never retried).
    @inline(__always)
    private func complete<T: Encodable>(_ call: WorkflowState.StepCall, with value: T, isolation: isolated (any Actor)?) async throws {
        // Encoded in a synchronous call: its temporaries are not part of this frame.
        let outcome = encoded(value, of: call.key)
        try await instance.completeStep(call, outcome: outcome)
        if case .failure(let failure) = outcome { throw stepFailed(call.key, failure) }
    }

    @inline(never)
    private func encoded<T: Encodable>(_ value: T, of key: StepKey) -> Result<[UInt8], FailureRecord> {
        // Only the key: the messages' closures copied all of a step call they captured.
        do {
            let bytes = try PayloadCoder.encode(value, what: "the result of step \(key)")
            try PayloadCoder.check(bytes, limit: instance.maxPayloadSize, what: "The result of step \(key)")
            return .success(bytes)
        } catch {
            return .failure(FailureRecord(error))
        }
    }

    /// The result history holds for a step (``WorkflowInstance/StepPlan/replay(_:)``).
    @inline(never)
    private func replayed<T: Decodable>(_ decision: WorkflowInstance.StepPlan) async throws -> T {
        guard case .replay(let recorded) = decision else { preconditionFailure("beginStep returns replay or execute") }
        switch recorded.outcome {
        case .success(let bytes):
            do {
                return try PayloadCoder.decode(T.self, from: bytes, what: "the recorded result of step \(recorded.record.key)")
            } catch {
                throw await instance.suspend(ContinuumError.wrap(error))
            }
        case .failure(let failure):
            throw stepFailed(recorded.record.key, failure.failure)
        }
    }

    /// What follows an attempt that threw: the call for the next attempt (its backoff committed),
    /// or the error the step throws (its failure committed, or nothing when shutting down).
    @inline(never)
    private func failed(_ call: WorkflowState.StepCall, _ error: any Error, policy: RetryPolicy) async throws -> WorkflowState.StepCall {
        if Task.isCancelled {
            // The runtime is shutting down: leave the step unrecorded so it runs again on recovery.
            await instance.abandonStep(call)
            throw error
        }
        let failure = FailureRecord(error)
        let name = call.key.name
        if Int(call.attempt) < policy.maxAttempts, policy.isRetryable(error), await !instance.isCancellationRequested {
            let next = instance.clock.now().adding(policy.delay(afterAttempt: call.attempt))
            instance.metrics.retries.increment()
            instance.logger.notice(
                "Step attempt failed; it runs again at the recorded time: \(failure.message)",
                metadata: [WorkflowRuntime.LogKey.stepName: "\(name)", WorkflowRuntime.LogKey.attempt: "\(call.attempt)"])
            return try await instance.retryStep(call, failure: failure, nextAttemptAt: next)
        }
        instance.logger.info(
            "Step failed: \(failure.message)",
            metadata: [WorkflowRuntime.LogKey.stepName: "\(name)", WorkflowRuntime.LogKey.attempt: "\(call.attempt)"])
        try await instance.completeStep(call, outcome: Result<[UInt8], FailureRecord>.failure(failure))
        throw stepFailed(call.key, failure)
    }

    /// Runs a step whose body does not need its ``StepContext``.
    @inlinable
    public func step<T: Codable & Sendable>(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> T
    ) async throws -> T {
        try await step(name, version: version, fingerprint: fingerprint, retry: policy, queue: queue, isolation: isolation) { (_: StepContext) in try await body() }
    }

    /// Runs a step that returns nothing.
    @inlinable
    public func step(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (StepContext) async throws -> Void
    ) async throws {
        _ = try await step(name, version: version, fingerprint: fingerprint, retry: policy, queue: queue, isolation: isolation) { (context: StepContext) -> Nothing in
            try await body(context)
            return Nothing()
        }
    }

    /// Runs a step that returns nothing and does not need its ``StepContext``.
    @inlinable
    public func step(
        _ name: String,
        version: Int? = nil,
        fingerprint: String? = nil,
        retry policy: RetryPolicy = .none,
        queue: QueueEntry? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Void
    ) async throws {
        _ = try await step(name, version: version, fingerprint: fingerprint, retry: policy, queue: queue, isolation: isolation) { (_: StepContext) -> Nothing in
            try await body()
            return Nothing()
        }
    }

    /// The fingerprint a step records: the macro's, the version's, or both.
    static func fingerprint(_ fingerprint: String?, version: Int?) -> String? {
        switch (fingerprint, version) {
        case (nil, nil): nil
        case (let fingerprint?, nil): fingerprint
        case (nil, let version?): "v\(version)"
        case (let fingerprint?, let version?): "\(fingerprint)+v\(version)"
        }
    }

    /// The name a recorded value takes: `continuum.<kind>`, or `continuum.<kind>:<name>` when named.
    private static func valueStepName(_ kind: String, _ name: String?) -> String {
        name.map { "continuum.\(kind):\($0)" } ?? "continuum.\(kind)"
    }

    /// The current time by the runtime's clock, recorded on first run and returned unchanged on replay.
    ///
    /// - Parameters:
    ///   - name: Needed when child tasks (`async let`, task groups) read the time, so
    ///     that each reading is its own recorded value (`ctx.now(name: "branch-\(i)")`).
    ///   - isolation: The actor the call runs on; leave the default, the caller's (`#isolation`).
    public func now(name: String? = nil, isolation: isolated (any Actor)? = #isolation) async throws -> Date {
        let clock = instance.clock
        return try await step(Self.valueStepName("now", name), isolation: isolation) { () -> Date in
            Date(timeIntervalSince1970: Double(clock.now()) / 1_000_000_000)
        }
    }

    /// A new random UUID, recorded on first run and returned unchanged on replay.
    ///
    /// - Parameters:
    ///   - name: Needed in child tasks, as for ``now(name:isolation:)``.
    ///   - isolation: The actor the call runs on; leave the default, the caller's (`#isolation`).
    public func uuid(name: String? = nil, isolation: isolated (any Actor)? = #isolation) async throws -> UUID {
        try await step(Self.valueStepName("uuid", name), isolation: isolation) { () -> UUID in UUID() }
    }

    /// A random number, recorded on first run and returned unchanged on replay.
    ///
    /// - Parameters:
    ///   - name: Needed in child tasks, as for ``now(name:isolation:)``.
    ///   - isolation: The actor the call runs on; leave the default, the caller's (`#isolation`).
    public func random(name: String? = nil, isolation: isolated (any Actor)? = #isolation) async throws -> UInt64 {
        try await step(Self.valueStepName("random", name), isolation: isolation) { () -> UInt64 in UInt64.random(in: .min ... .max) }
    }

    /// A version marker: `true` when this run takes the new branch of change `id`, `false` when it
    /// is a run that went past this point before the change existed and must keep the old branch.
    ///
    /// ```swift
    /// if try await ctx.patched("send-sms-2026-11") {
    ///     try await ctx.step("send-sms") { try await sms.send(input.phone, text) }
    /// } else {
    ///     try await ctx.step("send-email") { try await mail.send(input.email, text) }
    /// }
    /// ```
    ///
    /// New runs record the marker the first time they pass it, and keep `true` on every replay;
    /// runs recorded before the change replay with `false`. Once no unfinished workflow took the
    /// old branch (`continuum check` lists them per marker), delete the old branch and the `if`;
    /// a recorded marker that the code no longer asks about is ignored.
    public func patched(_ id: String) async throws -> Bool {
        try await instance.patched(id)
    }

    /// Publishes `value` under `name`, for ``WorkflowRuntime/query(_:_:)`` (and
    /// `GET /v1/workflows/{id}/queries/{name}`) to read while the workflow runs and after it ended.
    ///
    /// ```swift
    /// try await ctx.publish("progress", Progress(done: i, of: sources.count))
    /// ```
    ///
    /// Nothing is appended: the value is kept in memory, and a replay of the workflow publishes
    /// it again, since the body computes it from what history recorded. Publish only what the
    /// body derives from its input, steps and events, as for everything else in a workflow.
    ///
    /// - Throws: ``ContinuumError/Code/payloadCoding`` when `value` does not encode.
    public func publish<T: Encodable & Sendable>(_ name: String, _ value: T) async throws {
        let bytes = try PayloadCoder.encode(value, what: "the value published as '\(name)' by workflow '\(workflowID)'")
        await instance.publish(name, bytes)
    }

    /// Ends this run of the workflow and starts a new one with `input`, under the same id:
    /// for a workflow that loops for ever (a schedule, an agent, a poller), so that its history
    /// to replay stays short.
    ///
    /// ```swift
    /// if iteration % 1_000 == 999 { try await ctx.continueAsNew(with: State(cursor: cursor)) }
    /// ```
    ///
    /// A `continuedAsNew` event is committed; the events before it stay stored and readable,
    /// and the new run replays only what follows. Events sent but not consumed yet, dedup keys,
    /// a cancellation and the deadline carry over; children of the ended run go on. The new
    /// run's steps get new idempotency keys. It never returns: the body unwinds, so call it
    /// outside `catch` blocks that would swallow its error.
    ///
    /// - Throws: always; ``ContinuumError/Code/payloadCoding`` when `input` does not encode.
    public func continueAsNew<Input: Encodable & Sendable>(with input: Input) async throws -> Never {
        throw ContinueAsNew(input: try PayloadCoder.encode(input, what: "the input of the next run of workflow '\(workflowID)'"))
    }

    // MARK: Time and events

    /// Sleeps durably for `duration`: the deadline is committed first, so the sleep survives a
    /// restart and ends at the same wall-clock time; it never ends early, and after downtime
    /// an overdue sleep ends at once.
    ///
    /// ```swift
    /// try await ctx.sleep(for: .seconds(3 * 86_400))   // three days
    /// ```
    ///
    /// - Parameters:
    ///   - duration: How long to sleep, from the first time this call runs (not from a replay).
    ///   - name: Identifies the sleep in history, like a step's name.
    ///   - isolation: The actor the call runs on; leave the default, the caller's (`#isolation`).
    /// - Throws: `CancellationError` when the runtime stops (the sleep continues at the next run).
    public func sleep(for duration: Duration, name: String = "sleep", isolation: isolated (any Actor)? = #isolation) async throws {
        // Armed here, where the deadline is taken, before any hop.
        let due = instance.clock.now().adding(duration)
        try await sleep(untilNanoseconds: due, armed: instance.timers.arm(until: due), name: name)
    }

    /// Sleeps durably until `deadline`.
    public func sleep(until deadline: Date, name: String = "sleep", isolation: isolated (any Actor)? = #isolation) async throws {
        let due = Int64.nanoseconds(since1970: deadline)
        try await sleep(untilNanoseconds: due, armed: instance.timers.arm(until: due), name: name)
    }

    private func sleep(untilNanoseconds due: Int64, armed: TimerService.Timer, name: String) async throws {
        let plan = try await instance.beginWait(named: name, concurrent: instance.isChildTask(), wait: .timer, due: due, armed: armed)
        let outcome: WaitOutcome
        switch plan {
        case .ended(let ended, _):
            outcome = ended
        case .waiting(let key, let timer):
            // The timer wakes this task itself: a sleeping workflow is one task, with no group.
            (outcome, _) = try await instance.awaitEnd(of: key, timer: timer, firing: .endsSleep)
        }
        if case .cancelled = outcome { throw await instance.stopError() }
    }

    /// Waits for the next external event named `name` sent to this workflow with
    /// `WorkflowRuntime.send(_:to:payload:dedupKey:)`, and returns its payload, or `nil` when
    /// `timeout` passes first.
    ///
    /// Events that arrived before the wait are buffered durably and delivered oldest first.
    ///
    /// ```swift
    /// let approval = try await ctx.waitForEvent("approval", as: Approval.self, timeout: .seconds(7 * 86_400))
    /// ```
    ///
    /// - Throws: ``ContinuumError/Code/payloadCoding`` when the payload does not decode as `T`.
    public func waitForEvent<T: Decodable & Sendable>(
        _ name: String, as type: T.Type = T.self, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> T? {
        let due = timeout.map { instance.clock.now().adding($0) }
        let plan = try await instance.beginWait(
            named: "event:\(name)", concurrent: instance.isChildTask(), wait: .event(name), due: due,
            armed: due.map { instance.timers.arm(until: $0) })
        let outcome: WaitOutcome
        let payload: [UInt8]?
        switch plan {
        case .ended(let ended, let bytes):
            (outcome, payload) = (ended, bytes)
        case .waiting(let key, let timer):
            (outcome, payload) = try await instance.awaitEnd(of: key, timer: timer, firing: .timesOut)
        }
        if case .cancelled = outcome { throw await instance.stopError() }
        guard case .received = outcome, let payload else { return nil }
        // The payload is in history, so a decoding failure is the same on replay: the code may handle it.
        return try PayloadCoder.decode(T.self, from: payload, what: "event '\(name)' of workflow '\(workflowID)'")
    }

    private func stepFailed(_ key: StepKey, _ failure: FailureRecord) -> ContinuumError {
        if failure.type == "ContinuumError.\(ContinuumError.Code.cancelled)" {
            // A step stopped by cancellation (during its backoff) reads as the cancellation, live and on replay.
            return ContinuumError(.cancelled, failure.message, workflowID: workflowID)
        }
        if failure.type == "ContinuumError.\(ContinuumError.Code.timedOut)", failure.message == instance.timedOut().message {
            // Likewise a step stopped by the workflow's deadline reads as the deadline.
            return instance.timedOut()
        }
        return ContinuumError(
            .stepFailed, "Step \(key) of workflow '\(workflowID)' failed: \(failure.type): \(failure.message)",
            workflowID: workflowID)
    }
}

/// The recorded result of a step that returns nothing.
@usableFromInline
struct Nothing: Codable, Sendable {
    @usableFromInline init() {}
}

/// What ``WorkflowContext/continueAsNew(with:)`` throws to unwind the body.
struct ContinueAsNew: Error {
    /// The next run's input, as JSON.
    var input: [UInt8]
}
