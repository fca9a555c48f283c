import Synchronization

/// The runtime's ``RuntimeStateMachine`` behind one lock, with the continuations it keeps: every
/// transition runs under the lock, and whatever it hands back is resumed after the lock is let go.
final class RuntimeState: Sendable {
    /// A caller waiting for a workflow's instance (`nil`: it left memory, or will not be loaded).
    typealias Sender = CheckedContinuation<WorkflowInstance?, Never>
    /// A caller waiting for a workflow's JSON output.
    typealias ResultWaiter = ResultPromise
    typealias Machine = RuntimeStateMachine<WorkflowInstance, Sender, ResultWaiter, Launcher>

    private let machine = Mutex(Machine())

    /// Runs one transition under the lock.
    func withLock<R>(_ body: (inout Machine) throws(ContinuumError) -> R) throws(ContinuumError) -> R {
        try machine.withLock { machine throws(ContinuumError) in try body(&machine) }
    }

    /// Runs one transition that cannot fail under the lock.
    func withLock<R>(_ body: (inout Machine) -> R) -> R {
        machine.withLock { body(&$0) }
    }

    /// Hands a workflow to the running serve loop; when not running, the next run recovers it.
    func launch(_ launch: Launch) {
        withLock { $0.launcher }?.yield(launch)
    }

    /// Hands a workflow this runtime just created (under `claim`, with its whole history) to the
    /// serve loop, taking its slot for the driver in the same transition.
    func launchCreated(_ id: String, claim: Claim, created: consuming StoredWorkflow) {
        let (launcher, reserved) = withLock { $0.launchCreated(id) }
        launcher?.yield(Launch(id: id, claim: claim, created: CreatedHistory(created), reserved: reserved))
    }

    /// Answers everyone waiting for the outcome of `id`.
    func resolve(_ id: String, with result: Result<[UInt8], ContinuumError>) {
        for waiter in withLock({ $0.takeResultWaiters(id) }) { waiter.fulfill(result.mapError { $0 }, released: true) }
    }

    /// Marks `id` suspended and answers its result waiters with `error`.
    func suspend(_ id: String, _ error: ContinuumError) {
        for waiter in withLock({ $0.suspend(id, error) }) { waiter.fulfill(.failure(error), released: true) }
    }

    /// The serve loop ended: answers every waiter and sender that this run will not serve.
    func stop() {
        let stopped = withLock { $0.stop() }
        let error = ContinuumError(.storeClosed, "The runtime stopped before the workflow finished; it continues when the runtime runs again.")
        for waiter in stopped.resultWaiters { waiter.fulfill(.failure(error), released: true) }
        for sender in stopped.senders { sender.resume(returning: nil) }
    }
}

/// A workflow's outcome, promised to one caller: fulfilled once (later answers are dropped),
/// awaited once, and fulfilled with `CancellationError` when the waiting task is cancelled.
final class ResultPromise: Sendable {
    private struct State {
        var result: Result<[UInt8], any Error>?
        var waiter: UnsafeContinuation<[UInt8], any Error>?
        var released = false
    }

    private let state = Mutex(State())

    /// Answers the caller, unless it was answered already. `released`: the runtime's state
    /// let go of the promise before answering it (it took the workflow's waiters), so nobody
    /// needs to remove it from there (``isReleased``).
    func fulfill(_ result: Result<[UInt8], any Error>, released: Bool = false) {
        let waiter = state.withLock { state -> UnsafeContinuation<[UInt8], any Error>? in
            if released { state.released = true }
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    /// Whether the runtime's state let go of the promise: the caller that registered it then
    /// spares the runtime's lock the removal, on every `result()` that a finished run answered.
    var isReleased: Bool { state.withLock { $0.released } }

    /// The answer, once there is one.
    var value: [UInt8] {
        get async throws {
            try await withTaskCancellationHandler {
                // Unsafe, not checked: the lock hands the continuation to exactly one resume, and a
                // checked one cost an allocation per result.
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[UInt8], any Error>) in
                    let result = state.withLock { state -> Result<[UInt8], any Error>? in
                        if state.result == nil { state.waiter = continuation }
                        return state.result
                    }
                    if let result { continuation.resume(with: result) }
                }
            } onCancel: {
                fulfill(.failure(CancellationError()))
            }
        }
    }
}
