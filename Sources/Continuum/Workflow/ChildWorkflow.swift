/// What happens to a parent's unfinished children when the parent ends (completes, fails or
/// is cancelled).
public enum ParentClosePolicy: String, Sendable, Hashable, Codable {
    /// Cancel them (the default): each child's waits throw ``ContinuumError/Code/cancelled``, it
    /// may run compensating steps, and it ends ``WorkflowStatus/cancelled``.
    case cancel
    /// Leave them running on their own; their outcome is recorded in their own history.
    case abandon
}

/// A child workflow started by ``WorkflowContext/startChild(_:name:input:onParentClose:timeout:isolation:)``:
/// its id, and a durable way to wait for its result.
///
/// ```swift
/// let pages = try await withThrowingTaskGroup(of: Page.self) { group in
///     for source in input.sources {
///         group.addTask { try await ctx.child(Scrape.self, name: "scrape-\(source.id)", input: source) }
///     }
///     return try await group.reduce(into: []) { $0.append($1) }
/// }
/// ```
public struct ChildWorkflow<W: Workflow>: Sendable {
    /// The child's workflow id: the parent's id, a slash and the child's name
    /// (`order-7/charge`), with `@<generation>` after it when the parent was reset.
    public let id: String
    let key: String
    let context: WorkflowContext

    /// Waits durably until the child ends and returns its output.
    ///
    /// The wait is a recorded event wait: the parent may leave memory (park) while the child
    /// runs, and the child's end wakes it, in this process or another sharing the store. Called
    /// again, it returns the same answer without waiting.
    ///
    /// - Throws: ``ContinuumError/Code/childFailed`` when the child's body threw (the error's
    ///   `workflowID` is the child's, its `cause` the child's ``FailureRecord``);
    ///   ``ContinuumError/Code/childCancelled`` when the child was cancelled;
    ///   ``ContinuumError/Code/cancelled`` when the parent is cancelled while it waits.
    public func result(isolation: isolated (any Actor)? = #isolation) async throws -> W.Output {
        let name = ChildRecord.noticeName(key)
        let outcome: ChildOutcome
        if let seen = await context.instance.receivedByClaimedWait(eventName: name) {
            outcome = try PayloadCoder.decode(ChildOutcome.self, from: seen, what: "the outcome of child workflow '\(id)'")
        } else {
            // No timeout: the wait ends with the child's notice, or with the parent's cancellation.
            guard let notice = try await context.waitForEvent(name, as: ChildOutcome.self, isolation: isolation) else {
                preconditionFailure("a wait without a timeout ends with its event or throws")
            }
            outcome = notice
        }
        return try decode(outcome)
    }

    /// Waits durably for the child's output, at most `timeout`: `nil` when the timeout passes
    /// first. The child goes on; a later call waits again.
    ///
    /// ```swift
    /// guard let page = try await child.result(timeout: .seconds(600)) else { return .tooSlow }
    /// ```
    ///
    /// - Throws: as ``result(isolation:)``.
    public func result(timeout: Duration, isolation: isolated (any Actor)? = #isolation) async throws -> W.Output? {
        let name = ChildRecord.noticeName(key)
        if let seen = await context.instance.receivedByClaimedWait(eventName: name) {
            return try decode(try PayloadCoder.decode(ChildOutcome.self, from: seen, what: "the outcome of child workflow '\(id)'"))
        }
        guard let notice = try await context.waitForEvent(name, as: ChildOutcome.self, timeout: timeout, isolation: isolation) else { return nil }
        return try decode(notice)
    }

    private func decode(_ outcome: ChildOutcome) throws -> W.Output {
        switch outcome.status {
        case .completed:
            return try PayloadCoder.decode(W.Output.self, from: Array((outcome.output ?? "null").utf8), what: "the output of child workflow '\(id)'")
        case .cancelled:
            throw ContinuumError(
                .childCancelled, "Child workflow '\(id)' was cancelled: \(outcome.reason ?? "cancelled")", workflowID: id)
        default:
            let failure = outcome.failure ?? FailureRecord(type: "unknown", message: "no failure recorded")
            throw ContinuumError(
                .childFailed, "Child workflow '\(id)' failed: \(failure.type): \(failure.message)", workflowID: id, cause: failure)
        }
    }
}

extension WorkflowContext {
    /// Starts a child workflow and returns at once with its handle; the child runs on its own
    /// (in this process, or another sharing the store) while the parent goes on.
    ///
    /// The start is a recorded step (named `continuum.child:<name>`): on replay the child is
    /// not started again, and a start interrupted by a crash is repeated with the same id and
    /// input, which finds the child already started. The child's id is derived from the
    /// parent's and `name`, so it is the same on every run.
    ///
    /// - Parameters:
    ///   - type: The child's workflow type; the runtime must register it.
    ///   - name: The child's name among this workflow's children, unique per parent; children
    ///     started from concurrent tasks need distinct names (`"scrape-\(i)"`).
    ///   - input: The child's input.
    ///   - onParentClose: What happens to the child if this workflow ends first (default: it is
    ///     cancelled).
    ///   - timeout: How long the child may take (``WorkflowRuntime/start(_:id:input:timeout:queue:)``);
    ///     past it, the child ends failed with `timedOut` and the parent gets ``ContinuumError/Code/childFailed``.
    ///   - isolation: The actor the caller runs on.
    /// - Throws: ``ContinuumError/Code/stepFailed`` when the child could not be started (its type
    ///   is not registered, its id is too long, or the id belongs to another workflow).
    public func startChild<W: Workflow>(
        _ type: W.Type, name: String, input: W.Input, onParentClose: ParentClosePolicy = .cancel, timeout: Duration? = nil,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> ChildWorkflow<W> {
        let instance = self.instance
        await instance.noteChildStart()
        let key = instance.resetGeneration == 0 ? name : "\(name)@\(instance.resetGeneration)"
        let record = try await step(ChildRecord.stepPrefix + name, retry: ChildRecord.startRetry, isolation: isolation) { () async throws -> ChildRecord in
            guard let runtime = instance.runtime else {
                throw ContinuumError(.notRunning, "A child workflow can only be started while the runtime runs.", workflowID: instance.id)
            }
            return try await runtime.startChild(W.self, parent: instance.id, key: key, input: input, onParentClose: onParentClose, timeout: timeout)
        }
        return ChildWorkflow(id: record.id, key: record.key, context: self)
    }

    /// Starts a child workflow and waits durably for its output: ``startChild(_:name:input:onParentClose:timeout:isolation:)``
    /// followed by ``ChildWorkflow/result(isolation:)``.
    ///
    /// ```swift
    /// let receipt = try await ctx.child(Charge.self, name: "charge", input: .init(order: input.order, cents: total))
    /// ```
    public func child<W: Workflow>(
        _ type: W.Type, name: String, input: W.Input, onParentClose: ParentClosePolicy = .cancel, timeout: Duration? = nil,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> W.Output {
        try await startChild(type, name: name, input: input, onParentClose: onParentClose, timeout: timeout, isolation: isolation)
            .result(isolation: isolation)
    }
}

/// The link a child keeps to the parent that started it.
package struct ParentLink: Sendable, Hashable {
    /// The parent's id.
    package var id: String
    /// The child's key among the parent's children.
    package var key: String
}

/// A child's start as its parent records it: the result of step `continuum.child:<name>`.
package struct ChildRecord: Sendable, Hashable, Codable {
    /// The prefix of the steps that start children, and of the events that bring their outcomes.
    package static let stepPrefix = "continuum.child:"

    /// The child's workflow id.
    package var id: String
    /// Its registered type name.
    package var type: String
    /// Its key among the parent's children: its name, with the parent's reset generation.
    package var key: String
    /// What happens to it when the parent ends first.
    package var onParentClose: ParentClosePolicy

    /// The name of the event that brings the outcome of child `key` to its parent.
    package static func noticeName(_ key: String) -> String { stepPrefix + key }

    var noticeName: String { Self.noticeName(key) }

    /// Starting a child retries what a store may fail with for a while (the start is
    /// idempotent), and fails at once on a refusal (an unknown type, an id conflict).
    static let startRetry = RetryPolicy(maxAttempts: 8, initialInterval: .milliseconds(250), maxInterval: .seconds(10)) { error in
        guard let error = error as? ContinuumError else { return false }
        return !WorkflowDriver.isDurable(error)
    }
}

/// How a child ended, as delivered to its parent: the payload of event `continuum.child:<key>`.
package struct ChildOutcome: Sendable, Codable {
    /// `completed`, `failed` or `cancelled`.
    package var status: WorkflowStatus
    /// The child's output as JSON text, when it completed.
    package var output: String?
    /// What its body threw, when it failed.
    package var failure: FailureRecord?
    /// Why it was cancelled, when it was.
    package var reason: String?

    package init(_ outcome: WorkflowState.Outcome) {
        switch outcome {
        case .completed(let output): (status, self.output) = (.completed, String(decoding: output, as: UTF8.self))
        case .failed(let failure): (status, self.failure) = (.failed, failure)
        case .cancelled(let reason): (status, self.reason) = (.cancelled, reason)
        }
    }
}
