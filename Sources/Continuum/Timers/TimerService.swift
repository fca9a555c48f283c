import Synchronization

/// The runtime's timers: one ``TimerWheel`` driven by one task on the injected clock.
///
/// Every durable sleep, event timeout and retry backoff of a workflow in memory waits here
/// (``sleep(until:)``), and so do the wake-ups of parked workflows whose timers the runtime
/// loaded from the store's due-time index (``scheduleWake(_:at:)``). The driver sleeps on the
/// clock until the wheel's next deadline (or until an earlier timer arrives), then fires
/// everything due in one batch, in due order.
final class TimerService: Sendable {
    private enum Action {
        /// Resume the task sleeping under this token.
        case resume(UInt64)
        /// Wake a parked workflow.
        case wake(String)
    }

    /// Where one armed timer stands.
    private enum Sleeper {
        /// In the wheel; nobody waits yet.
        case armed(timer: UInt64)
        /// In the wheel, with a task waiting.
        case waiting(CheckedContinuation<Int64, any Error>, timer: UInt64)
        /// In the wheel; its firing resumes the task waiting for `key` in `waiters`.
        case notifying(WaiterRegistry, StepKey, timer: UInt64)
        /// Fired at this time before anybody waited.
        case fired(Int64)
    }

    private struct State {
        var wheel: TimerWheel<Action>
        var sleepers: [UInt64: Sleeper] = [:]
        var nextToken: UInt64 = 0
        /// What the driver sleeps until, when it sleeps; an earlier timer rings the doorbell.
        var dozingUntil: Int64?
        var doorbell: CheckedContinuation<Void, Never>?
        var rung = false
        /// Parked workflows' timers due up to here were (or are being) read from the store.
        var loadedHorizon: Int64 = .min
    }

    let clock: any WorkflowClock
    private let state: Mutex<State>

    init(clock: any WorkflowClock, resolution: Duration = .milliseconds(1)) {
        self.clock = clock
        state = Mutex(State(wheel: TimerWheel(resolution: resolution, now: clock.now())))
    }

    /// How many tasks wait for a timer (a sleep, an event timeout or a retry backoff whose
    /// start is committed) that is not due yet by the clock. Walks every sleeper: for tests
    /// and diagnostics.
    var sleeping: Int {
        let now = clock.now()
        return state.withLock { state in
            state.sleepers.values.count { sleeper in
                switch sleeper {
                case .waiting(_, let timer), .notifying(_, _, let timer):
                    return state.wheel.due(of: timer).map { $0 > now } ?? false
                case .armed, .fired:
                    return false
                }
            }
        }
    }

    /// How many timers wait in all, wake-ups of parked workflows included.
    var scheduled: Int { state.withLock { $0.wheel.count } }

    /// One line on the driver and its timers, for diagnosing a process that seems stuck.
    var diagnostics: String {
        let now = clock.now()
        return state.withLock { state in
            var armed = 0
            var waiting = 0
            var fired = 0
            var overdue = 0
            for sleeper in state.sleepers.values {
                switch sleeper {
                case .armed: armed += 1
                case .waiting(_, let timer), .notifying(_, _, let timer):
                    waiting += 1
                    if let due = state.wheel.due(of: timer), due <= now { overdue += 1 }
                case .fired: fired += 1
                }
            }
            let dozing = state.dozingUntil.map { $0 == .max ? "forever" : "\(($0 - now) / 1_000_000) ms from now" } ?? "not running"
            let next = state.wheel.nextWake.map { "\(($0 - now) / 1_000_000) ms from now" } ?? "none"
            return "timers: \(state.wheel.count) in the wheel (next due \(next)); sleepers \(armed) armed, \(waiting) waiting "
                + "(\(overdue) overdue), \(fired) fired unclaimed; driver dozing until \(dozing), rung \(state.rung), "
                + "doorbell \(state.doorbell == nil ? "not hung" : "hung")"
        }
    }

    /// A timer armed with ``arm(until:)``.
    struct Timer: Sendable, Hashable {
        fileprivate var token: UInt64
    }

    /// Suspends until `deadline` (nanoseconds since 1970) and returns the time the timer fired:
    /// never earlier than `deadline`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Int64) async throws -> Int64 {
        try await wait(for: arm(until: deadline))
    }

    /// Starts a timer for `deadline` now; ``wait(for:)`` then returns when it fired. A workflow
    /// arms its timer before the wait's start is committed, so a slow commit does not delay the
    /// firing. Every armed timer must be waited for (or ``disarm(_:)``ed).
    func arm(until deadline: Int64) -> Timer {
        let now = clock.now()
        let (token, doorbell) = state.withLock { state -> (UInt64, CheckedContinuation<Void, Never>?) in
            state.nextToken += 1
            let token = state.nextToken
            if deadline <= now {
                state.sleepers[token] = .fired(now)
                return (token, nil)
            }
            let timer = state.wheel.insert(due: deadline, payload: .resume(token))
            state.sleepers[token] = .armed(timer: timer)
            return (token, Self.ring(&state, for: deadline))
        }
        doorbell?.resume()
        return Timer(token: token)
    }

    /// Stops a timer that nobody will wait for.
    func disarm(_ timer: Timer) {
        let waiter = state.withLock { state -> CheckedContinuation<Int64, any Error>? in
            switch state.sleepers.removeValue(forKey: timer.token) {
            case .armed(let entry)?:
                state.wheel.remove(entry)
                return nil
            case .waiting(let continuation, let entry)?:
                state.wheel.remove(entry)
                return continuation
            case .notifying(_, _, let entry)?:
                state.wheel.remove(entry)
                return nil
            case .fired?, nil:
                return nil
            }
        }
        waiter?.resume(throwing: CancellationError())
    }

    /// Has an armed timer's firing resume the task waiting for `key` in `waiters` (with
    /// ``WaiterRegistry/Wake/timerFired(at:)``), so that a wait with a deadline needs no task
    /// of its own to wait for it. Resumes it at once when the timer fired already. Register the
    /// waiter first, and ``disarm(_:)`` the timer once the wait is over.
    func notify(_ waiters: WaiterRegistry, _ key: StepKey, when timer: Timer) {
        let firedAt = state.withLock { state -> Int64? in
            switch state.sleepers[timer.token] {
            case .armed(let entry)?:
                state.sleepers[timer.token] = .notifying(waiters, key, timer: entry)
                return nil
            case .fired(let at)?:
                state.sleepers[timer.token] = nil
                return at
            case .waiting?, .notifying?, nil:
                return nil  // disarmed, or waited for twice
            }
        }
        if let firedAt { waiters.resume(key, with: .success(.timerFired(at: firedAt))) }
    }

    /// Waits until an armed timer fires and returns when it did (never before its deadline).
    ///
    /// - Throws: `CancellationError` when the task is cancelled first; the timer is then disarmed.
    func wait(for timer: Timer) async throws -> Int64 {
        let token = timer.token
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int64, any Error>) in
                let resume = state.withLock { state -> Result<Int64, any Error>? in
                    switch state.sleepers[token] {
                    case .armed(let entry):
                        if Task.isCancelled {
                            state.sleepers[token] = nil
                            state.wheel.remove(entry)
                            return .failure(CancellationError())
                        }
                        state.sleepers[token] = .waiting(continuation, timer: entry)
                        return nil
                    case .fired(let at):
                        state.sleepers[token] = nil
                        return .success(at)
                    case .waiting, .notifying, nil:
                        // Disarmed, or waited for twice.
                        return .failure(CancellationError())
                    }
                }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Int64, any Error>? in
                guard case .waiting(let continuation, let entry) = state.sleepers[token] else { return nil }
                state.sleepers[token] = nil
                state.wheel.remove(entry)
                return continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Arranges for `wake` to be called with `id` at `due`.
    func scheduleWake(_ id: String, at due: Int64) {
        let doorbell = state.withLock { state in
            state.wheel.insert(due: due, payload: .wake(id))
            return Self.ring(&state, for: due)
        }
        doorbell?.resume()
    }

    /// Marks parked workflows' timers due up to `horizon` as loaded; the caller reads them from
    /// the store next. A workflow parked after that should call ``wakeIfLoaded(_:at:)``.
    func claimHorizon(_ horizon: Int64) {
        state.withLock { $0.loadedHorizon = max($0.loadedHorizon, horizon) }
    }

    /// The horizon claimed so far.
    var loadedHorizon: Int64 { state.withLock { $0.loadedHorizon } }

    /// For a workflow being parked: schedules its wake-up at `due` when the loader has already
    /// passed that time (otherwise the loader finds it in the store's index).
    func wakeIfLoaded(_ id: String, at due: Int64) {
        let doorbell = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard due <= state.loadedHorizon else { return nil }
            state.wheel.insert(due: due, payload: .wake(id))
            return Self.ring(&state, for: due)
        }
        doorbell?.resume()
    }

    /// Fires timers until cancelled. Parked workflows' wake-ups go to `wake`, in due order.
    ///
    /// - Parameter thread: The executor the caller runs this on. With the system clock, the
    ///   driver sleeps on that thread's alarm rather than `Task.sleep`, whose wake-up waits for
    ///   a turn on the cooperative pool (hundreds of milliseconds under load).
    func run(on thread: ThreadExecutor? = nil, wake: (String) -> Void) async {
        while !Task.isCancelled {
            let now = clock.now()
            var resumed: [CheckedContinuation<Int64, any Error>] = []
            var notified: [(WaiterRegistry, StepKey)] = []
            var woken: [String] = []
            let next = state.withLock { state -> Int64? in
                for entry in state.wheel.advance(to: now) {
                    switch entry.payload {
                    case .resume(let token):
                        switch state.sleepers[token] {
                        case .waiting(let continuation, _)?:
                            state.sleepers[token] = nil
                            resumed.append(continuation)
                        case .notifying(let waiters, let key, _)?:
                            state.sleepers[token] = nil
                            notified.append((waiters, key))
                        case .armed?:
                            state.sleepers[token] = .fired(now)
                        case .fired?, nil:
                            break
                        }
                    case .wake(let id):
                        woken.append(id)
                    }
                }
                let next = state.wheel.nextWake
                state.dozingUntil = next ?? .max
                state.rung = false
                return next
            }
            // Each timer fires at `now`, which is not before its due time.
            for continuation in resumed { continuation.resume(returning: now) }
            for (waiters, key) in notified { waiters.resume(key, with: .success(.timerFired(at: now))) }
            for id in woken { wake(id) }
            if let thread, clock is SystemClock {
                await waitForDoorbell { thread.setAlarm(at: next ?? .max) { self.ringNow() } }
            } else {
                await doze(until: next)
            }
        }
        state.withLock { $0.dozingUntil = nil }
    }

    /// Sleeps until `deadline` or until a timer due earlier arrives.
    private func doze(until deadline: Int64?) async {
        await withTaskGroup(of: Void.self) { group in
            if let deadline {
                group.addTask { [clock] in try? await clock.sleep(until: deadline) }
            }
            group.addTask { await self.waitForDoorbell() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Waits until the doorbell rings; `armAlarm` runs once the doorbell is hung, to arrange
    /// a ring at the next deadline.
    private func waitForDoorbell(armAlarm: () -> Void = {}) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.rung || Task.isCancelled { return true }
                    state.doorbell = continuation
                    return false
                }
                if ready {
                    continuation.resume()
                } else {
                    armAlarm()
                }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.doorbell = nil }
                return state.doorbell
            }?.resume()
        }
    }

    /// Wakes the driver now (its alarm went off).
    private func ringNow() {
        state.withLock { state in
            state.rung = true
            defer { state.doorbell = nil }
            return state.doorbell
        }?.resume()
    }

    /// Rings the doorbell when a timer due at `due` is earlier than what the driver sleeps until.
    private static func ring(_ state: inout State, for due: Int64) -> CheckedContinuation<Void, Never>? {
        guard let dozing = state.dozingUntil, due < dozing else { return nil }
        state.dozingUntil = due
        state.rung = true
        defer { state.doorbell = nil }
        return state.doorbell
    }
}
