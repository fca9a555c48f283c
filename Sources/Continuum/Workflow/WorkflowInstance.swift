import Logging
import Synchronization
import Tracing

/// One running workflow: the thin actor around its ``WorkflowState`` that turns the state's
/// decisions into durable appends.
///
/// Every transition happens synchronously inside one actor method before any `await`, and the
/// append is submitted before the method suspends, so concurrent steps of one workflow keep
/// their stream in order and reentrancy cannot interleave two transitions.
///
/// In ``Mode/replay`` (the ``WorkflowReplayer``) the instance appends nothing and runs no step
/// body: it returns what history recorded until the code asks for something history does not
/// have, and then ends the replay.
actor WorkflowInstance {
    /// Whether the instance runs the workflow or only checks its code against its history.
    enum Mode: Sendable {
        /// Run it: new steps run and everything is appended to the store under `claim`.
        case live(store: any EventStore, claim: Claim)
        /// Replay it: nothing runs, nothing is appended.
        case replay
    }

    /// Why an instance left memory while its body still ran.
    enum Departure: Sendable, Equatable {
        /// It only waited: it was parked in the store.
        case parked
        /// Another claim superseded this runtime's, or its lease ran out: the workflow is
        /// another owner's now, and nothing more is appended here.
        case ownershipLost
        /// A replay reached the end of the recorded history.
        case replayEnded
        /// A recorded step's code changed and the policy is to run it again: the driver resets
        /// the workflow to that step (the reason says which change) and runs it anew.
        /// (Indirect, as every rare case with a payload here: a case's payload widens every instance.)
        indirect case rerun(StepKey, String)
        /// Someone took the workflow over (a reset, a cancellation of a suspended workflow):
        /// this run stops where it is.
        case superseded
        /// The body continued as new: a new instance runs the next run.
        case continued
        /// It only waited: its body gave up its task, and the instance stays in memory with its
        /// claim and state until something wakes it (``WorkflowRuntime/Configuration/dormantAfter``).
        case dormant
    }

    nonisolated let id: String
    nonisolated let stream: StreamID
    /// The task that runs the workflow body; steps called from any other task come from its
    /// children. A dormant instance's body runs again in another task.
    private nonisolated let bodyTask: Atomic<Int>
    nonisolated let mode: Mode
    /// The claim appends are made under; `nil` in a replay.
    nonisolated var claim: Claim? {
        if case .live(_, let claim) = mode { claim } else { nil }
    }
    /// What every instance of the runtime shares, held once rather than by each workflow.
    nonisolated let environment: Environment
    nonisolated var clock: any WorkflowClock { environment.timers.clock }
    /// The runtime's timer wheel, which every sleep, timeout and backoff waits on.
    nonisolated var timers: TimerService { environment.timers }
    /// Tasks waiting in `waitForEvent`, resumed by `receive`, a timeout, or cancellation.
    nonisolated let eventWaiters = WaiterRegistry()
    private var state: WorkflowState
    private(set) var suspension: ContinuumError?

    /// Where the instance reports that it only waits, when the runtime parks such workflows.
    private var parking: ParkingQueue? { environment.parking }
    /// Where committed changes are reported to observers.
    nonisolated var feed: ChangeFeed? { environment.feed }

    /// Where the instance reports steps, retries, timer lateness and events.
    nonisolated var metrics: RuntimeMetrics { environment.metrics }
    /// Where steps report their spans; `nil` when tracing is off.
    nonisolated var tracer: (any Tracer)? { environment.tracer }
    /// The runtime's logger with the workflow's id and type as metadata.
    nonisolated let logger: Logger
    /// The largest step result, in bytes of JSON.
    nonisolated var maxPayloadSize: Int { environment.maxPayloadSize }
    /// What replay does with a recorded step whose code fingerprint changed.
    nonisolated var codeChange: WorkflowRuntime.CodeChangePolicy { environment.codeChange }
    /// The build running the workflow, recorded when it suspends.
    nonisolated var build: String? { environment.build }
    /// How many times the workflow was reset: steps that run in this run carry it in their keys.
    nonisolated let resetGeneration: UInt32
    /// The runtime driving the workflow, which starts its children; `nil` in a replay.
    nonisolated var runtime: WorkflowRuntime? { environment.runtime }
    /// The workflow that started this one, told of its outcome before it is committed.
    nonisolated var parent: ParentLink? { placement?.parent }
    /// The workflow's deadline when it had not passed at load, for the driver to arm.
    nonisolated var deadline: Int64? { placement?.deadline }
    /// How many events the history grows by before the next snapshot (`nil`: none is written).
    private var snapshotEvery: Int? { environment.snapshotEvery }
    /// How many events the last snapshot covers (0: none).
    private var snapshotThrough: UInt32
    /// The queue the workflow runs on: its body runs only while it holds a slot of it, which
    /// its steps on the same queue run within.
    nonisolated var queue: QueueEntry? { placement?.queue }

    /// A parent, a deadline, a queue: what few workflows have, read without the actor, and kept
    /// behind one reference (`nil` for most) rather than 80 bytes in every instance.
    private nonisolated let placement: Placement?

    private final class Placement: Sendable {
        let parent: ParentLink?
        let deadline: Int64?
        let queue: QueueEntry?

        private init(parent: ParentLink?, deadline: Int64?, queue: QueueEntry?) {
            self.parent = parent
            self.deadline = deadline
            self.queue = queue
        }

        /// `nil` when there is nothing to keep. (A failable class initializer would allocate
        /// the object before it could decide not to.)
        static func of(parent: ParentLink?, deadline: Int64?, queue: QueueEntry?) -> Placement? {
            guard parent != nil || deadline != nil || queue != nil else { return nil }
            return Placement(parent: parent, deadline: deadline, queue: queue)
        }
    }

    /// What every instance of one runtime (or one replayer) shares: one object, so that each
    /// workflow's actor holds a reference to it rather than a copy of each.
    final class Environment: Sendable {
        let timers: TimerService
        let metrics: RuntimeMetrics
        let tracer: (any Tracer)?
        let maxPayloadSize: Int
        let parking: ParkingQueue?
        /// Where instances report that they only wait, when the runtime makes such workflows dormant.
        let dormancy: ParkingQueue?
        let feed: ChangeFeed?
        let codeChange: WorkflowRuntime.CodeChangePolicy
        let build: String?
        let runtime: WorkflowRuntime?
        let snapshotEvery: Int?
        /// The runtime's store when it takes appends in a synchronous call: every live
        /// instance's appends go there, submitted from the actor.
        let submitter: (any SubmittingEventStore)?

        init(
            timers: TimerService, metrics: RuntimeMetrics, tracer: (any Tracer)?, maxPayloadSize: Int, parking: ParkingQueue?,
            dormancy: ParkingQueue? = nil, feed: ChangeFeed? = nil, codeChange: WorkflowRuntime.CodeChangePolicy = .suspend, build: String? = nil,
            runtime: WorkflowRuntime? = nil, snapshotEvery: Int? = nil, submitter: (any SubmittingEventStore)? = nil
        ) {
            self.submitter = submitter
            self.timers = timers
            self.metrics = metrics
            self.tracer = tracer
            self.maxPayloadSize = maxPayloadSize
            self.parking = parking
            self.dormancy = dormancy
            self.feed = feed
            self.codeChange = codeChange
            self.build = build
            self.runtime = runtime
            self.snapshotEvery = snapshotEvery
        }
    }

    /// - Parameter snapshotThrough: How many events the workflow's last snapshot covers (0: none).
    init(id: String, stream: StreamID, mode: Mode, environment: Environment, logger: Logger, state: WorkflowState, snapshotThrough: UInt32 = 0) {
        self.environment = environment
        self.snapshotThrough = snapshotThrough
        self.placement = Placement.of(parent: state.parent, deadline: state.pendingDeadline, queue: state.queue)
        self.resetGeneration = state.resetGeneration
        self.logger = logger
        self.id = id
        self.stream = stream
        self.mode = mode
        bodyTask = Atomic(currentTaskIdentity())
        // Moved, and last: assigned before the call above, the parameter outlived it (a call is
        // a barrier to ending a lifetime early), so the state was copied and the copy destroyed.
        self.state = consume state
    }

    /// Whether the calling task is a child task of the body rather than the body itself.
    nonisolated func isChildTask() -> Bool {
        currentTaskIdentity() != bodyTask.load(ordering: .relaxed)
    }

    /// What a step call does once divergence and ambiguity are ruled out.
    enum StepPlan {
        /// Indirect: the plan stays small in the frame of every step call.
        indirect case replay(WorkflowState.RecordedStep)
        case execute(WorkflowState.StepCall)
        /// A new call while history still replays: pass it to ``runAfterSettling(_:)`` before it runs.
        case settle(WorkflowState.StepCall)
    }

    /// Decides what a step call does. Synchronous, so that the decision's temporaries never
    /// sit in an async frame on every step; the rare call that must wait for history to settle
    /// comes back as ``StepPlan/settle(_:)``.
    func beginStep(named name: String, concurrent: Bool, fingerprint: String? = nil) throws(ContinuumError) -> StepPlan {
        try checkUsable()
        switch state.beginStep(named: name, concurrent: concurrent, fingerprint: fingerprint) {
        case .diverged(let divergence):
            throw suspend(nondeterminism(divergence))
        case .ambiguous(let key):
            throw ContinuumError(
                .ambiguousStep,
                "Workflow '\(id)' called step '\(key.name)' while another step of that name was still running. "
                    + "Steps that run at the same time need distinct names, such as \"\(key.name)-\\(i)\".",
                workflowID: id)
        case .replay(let recorded):
            return .replay(recorded)
        case .changed(let recorded):
            if case .replay = mode {
                changedSteps.append(recorded.record.key)
                if codeChange == .accept { return .replay(recorded) }
                if departure == nil {
                    departure = .replayEnded
                    replayEnd = .codeChanged(recorded.record.key)
                }
                eventWaiters.failAll(Self.departedError(.replayEnded))
                throw Self.departedError(.replayEnded)
            }
            switch codeChange {
            case .accept:
                return .replay(recorded)
            case .suspend:
                throw suspend(codeChanged(recorded.record, now: fingerprint))
            case .rerun:
                throw rerun(from: recorded.record.key, because: codeChanged(recorded.record, now: fingerprint))
            }
        case .execute(let call):
            if state.isReplaying { return .settle(call) }
            return try execute(call)
        }
    }

    /// Runs a new call once the history that still replays has settled around it.
    func runAfterSettling(_ call: WorkflowState.StepCall) async throws(ContinuumError) -> StepPlan {
        try await settle(call.key)
        return try execute(call)
    }

    private func execute(_ call: WorkflowState.StepCall) throws(ContinuumError) -> StepPlan {
        if case .replay = mode { throw endReplay(at: "step \(call.key)") }
        runningSteps += 1
        updateWaiting()
        return .execute(call)
    }

    /// Before a call history does not hold runs, lets the body's other tasks claim what history
    /// still holds. A step of a child task may be new only because the process stopped while it
    /// ran, and its siblings, replayed, claim their recorded steps within a few turns. When the
    /// recorded steps left are never claimed (a step renamed, removed or added in the middle of
    /// what history holds), the workflow is suspended before anything of the new call runs or is
    /// appended. Call it only while history is replaying (the common case skips the call).
    private func settle(_ key: StepKey) async throws(ContinuumError) {
        var claimed = state.claimedCount
        var quiet = 0
        while state.isReplaying {
            await Task.yield()
            try checkUsable()
            if state.claimedCount != claimed {
                claimed = state.claimedCount
                quiet = 0
            } else {
                quiet += 1
            }
            if quiet >= Self.settleTurns, let (index, recorded) = state.firstUnclaimed {
                throw suspend(nondeterminism(WorkflowState.Divergence(index: index, recorded: recorded, requested: key)))
            }
        }
    }

    /// How many turns without progress a new call waits for recorded calls to be claimed.
    static let settleTurns = 16

    private func codeChanged(_ record: StepRecord, now fingerprint: String?) -> ContinuumError {
        if divergence == nil { divergence = WorkflowState.Divergence(index: record.index, recorded: record.key, requested: record.key) }
        return ContinuumError(
            .codeChanged,
            "Step \(record.key) of workflow '\(id)' ran with code fingerprint \(record.fingerprint ?? "none"), and the code deployed now "
                + "has \(fingerprint ?? "none"): its recorded result may no longer be what this code would return. Reset the workflow "
                + "to the step to run it again with this code, resume it to keep the recorded result, or cancel it.",
            workflowID: id)
    }

    /// Leaves memory so that the driver resets the workflow to `key` and runs it again.
    private func rerun(from key: StepKey, because error: ContinuumError) -> ContinuumError {
        if departure == nil {
            departure = .rerun(key, error.message)
            logger.notice("Step code changed: the workflow runs again from it (development policy)", metadata: [WorkflowRuntime.LogKey.stepName: "\(key.name)"])
        }
        let departed = Self.departedError(departure!)
        eventWaiters.failAll(departed)
        stopBackoffs()
        return departed
    }

    // MARK: Waiting and parking

    private var runningSteps = 0
    /// The waits the body is in: a few at most, so a list, which holds less than a set.
    private var waitingKeys: [StepKey] = []
    /// Since when (by the clock) every running call of the body has been a wait.
    private var waitingSince: Int64?
    /// When an event last arrived: a workflow that keeps receiving events is not left waiting,
    /// even while its body waits for another name.
    private var lastActivity: Int64?
    /// Why the instance left memory, once it has: every later call throws, nothing more is appended.
    private(set) var departure: Departure?

    /// What a call from the body gets once the instance has left memory.
    static func departedError(_ departure: Departure) -> ContinuumError {
        switch departure {
        case .parked:
            ContinuumError(.notRunning, "The workflow left memory while it waited; it resumes when woken.")
        case .ownershipLost:
            ContinuumError(.ownershipLost, "Another owner claimed the workflow; this runtime stopped running it.")
        case .replayEnded:
            ContinuumError(.notRunning, "The replay reached the end of the recorded history.")
        case .rerun(let key, _):
            ContinuumError(.notRunning, "The workflow runs again from step \(key), whose code changed.")
        case .superseded:
            ContinuumError(.notRunning, "The workflow was taken over (reset or cancelled) while it ran.")
        case .continued:
            ContinuumError(.notRunning, "The workflow continued as new; its next run takes over.")
        case .dormant:
            ContinuumError(.notRunning, "The workflow gave up its task while it waited; it replays when woken.")
        }
    }

    /// Whether the instance stopped for good: it left memory or was suspended. A dormant
    /// instance has not: it takes deliveries.
    var isLeaving: Bool { (departure != nil && departure != .dormant) || suspension != nil }

    /// Whether the instance is dormant.
    var isDormant: Bool { departure == .dormant }

    private func checkUsable() throws(ContinuumError) {
        if let suspension { throw suspension }
        if let departure { throw Self.departedError(departure) }
    }

    /// What a delivery (an event, a cancellation) checks: unlike the body's calls, it reaches a
    /// dormant instance, and wakes it.
    private func checkReachable() throws(ContinuumError) {
        if let suspension { throw suspension }
        if let departure, departure != .dormant { throw Self.departedError(departure) }
    }

    /// The body entered a wait (a sleep or an event wait).
    func enterWait(_ key: StepKey) {
        if !waitingKeys.contains(key) { waitingKeys.append(key) }
        updateWaiting()
    }

    /// The body left a wait.
    func exitWait(_ key: StepKey) {
        waitingKeys.removeAll { $0 == key }
        updateWaiting()
    }

    private func updateWaiting() {
        // A dormant instance keeps the time it began to wait, for parking; its body unwinding
        // changes nothing.
        if departure == .dormant { return }
        let waiting = runningSteps == 0 && !waitingKeys.isEmpty && departure == nil && suspension == nil
        if !waiting {
            waitingSince = nil
        } else if waitingSince == nil {
            // A recovered workflow that only waits lets recovery start the next.
            environment.runtime?.pacer.end(id)
            let now = clock.now()
            waitingSince = now
            parking?.add(self, since: now)
            environment.dormancy?.add(self, since: now)
        }
    }

    /// The deadlines of the waits the workflow was parked with; the runtime makes sure one of
    /// them wakes it once the body has unwound.
    private(set) var parkedDues: [Int64] = []

    /// Parks the workflow if every running call of its body has been a wait since `since` or
    /// earlier (by the clock) and no timer is due within `margin` nanoseconds: releases its claim
    /// in the store, leaves memory, and wakes the body's waits so it unwinds.
    func parkIfWaiting(since: Int64, margin: Int64) async {
        guard case .live(let store, let claim) = mode else { return }
        if departure == .dormant { return await parkDormant(since: since, margin: margin, store: store, claim: claim) }
        guard let dues = duesToLeave(since: since, margin: margin, lookAgain: parking) else { return }
        departure = .parked  // in this turn: a delivery from now on finds it leaving
        await releaseClaim(store: store, claim: claim)
        parkedDues = dues
        eventWaiters.failAll(Self.departedError(.parked))
    }

    /// Releases the claim of an instance marked parked (every later call throws, nothing more
    /// is appended): the workflow waits in the store.
    private func releaseClaim(store: any EventStore, claim: Claim) async {
        do {
            try await store.append(AppendRequest(fence: claim, id: id, events: [], release: true, snapshot: snapshotIfDue()))
            feed?.publish(WorkflowChange(workflowID: id, parked: true))
        } catch {
            // Not released: recovery finds it runnable, which is safe.
        }
    }

    /// The deadlines the workflow would leave with, when every running call of its body has been
    /// a wait since `since` or earlier and none is due within `margin`; otherwise `nil`, and the
    /// instance is put back in `lookAgain` to be looked at after another delay.
    private func duesToLeave(since: Int64, margin: Int64, lookAgain queue: ParkingQueue?) -> [Int64]? {
        guard let waitingSince, waitingSince <= since, departure == nil, suspension == nil else { return nil }
        if let lastActivity, lastActivity > since {
            queue?.add(self, since: lastActivity)  // look again one delay after the last event
            return nil
        }
        // Every wait the body is in must still be pending (one that ended, with its task not yet
        // resumed, would leave nothing to wake the workflow), and none may be due soon.
        let waits = waitingKeys.compactMap { state.recordedWaits[$0] }
        let now = clock.now()
        guard waits.count == waitingKeys.count, waits.allSatisfy({ $0.outcome == nil }), !waits.contains(where: { ($0.due ?? .max) <= now + margin }),
            (state.pendingDeadline ?? .max) > now + margin
        else {
            // Still waiting, but not to leave now: look again after another delay.
            queue?.add(self, since: now)
            return nil
        }
        return wakeDues(waitsIn: waitingKeys, now: now)
    }

    /// The deadlines a workflow that leaves memory (or its task) must be woken at: those of the
    /// waits `keys` it is in and its own, and every later one of a pending wait (a branch's wait
    /// may have begun, its deadline indexed and the loader past it, and not yet be entered). Not
    /// the past deadline of a wait a cancelled branch left pending: that would wake it over and over.
    private func wakeDues(waitsIn keys: [StepKey], now: Int64) -> [Int64] {
        var dues = Set(keys.compactMap { state.recordedWaits[$0] }.filter { $0.outcome == nil }.compactMap(\.due))
        if let deadline = state.pendingDeadline { dues.insert(deadline) }
        dues.formUnion(state.pendingDues.filter { $0 > now })
        return Array(dues)
    }

    // MARK: Dormancy

    /// Makes the workflow dormant if every running call of its body has been a wait since
    /// `since` or earlier and none is due within `margin` nanoseconds: the body's waits throw so
    /// that its task ends, and the instance stays in memory, with its claim and its state, for
    /// whatever wakes it (``WorkflowRuntime/Configuration/dormantAfter``). Nothing is appended.
    func restIfWaiting(since: Int64, margin: Int64) {
        // A workflow on a queue keeps its task, and with it the queue's slot, as it would in memory.
        guard case .live = mode, queue == nil, let dues = duesToLeave(since: since, margin: margin, lookAgain: environment.dormancy) else { return }
        departure = .dormant
        parkedDues = dues
        restingWaits = waitingKeys
        eventWaiters.failAll(Self.departedError(.dormant))
    }

    /// The body of a dormant instance has unwound and its driver is ending: forgets the run's
    /// bookkeeping, so that the instance holds only its state and the next run replays from the
    /// start. Returns the deadlines its timers must wake it at, and those of the timed waits
    /// (sleeps, event timeouts) its body rested in, which tests count as waiting timers.
    func rested() -> (dues: [Int64], sleeps: [Int64]) {
        let sleeps = restingWaits.compactMap { state.recordedWaits[$0] }.filter { $0.outcome == nil }.compactMap(\.due)
        state.rewind()
        waitingKeys = []
        runningSteps = 0
        patchesTaken = [:]
        startsChildren = false
        divergence = nil
        defer { parkedDues = [] }  // the driver arms them; the instance need not keep them
        return (parkedDues, sleeps)
    }

    /// Whether the instance was suspended as it went to rest: then it does not rest, and its
    /// driver records the suspension as for any run that ends suspended.
    func keepIfSuspended() -> Bool {
        guard suspension != nil, departure == .dormant else { return false }
        departure = nil
        return true
    }

    /// What a waking driver needs to run a dormant instance's body again.
    struct Awakened: Sendable {
        var type: String
        var input: [UInt8]
        var traceContext: [String: String]
        var queue: QueueEntry?
        var queuedAt: Int64
        var events: Int
    }

    /// Called by the driver that wakes a dormant instance, from the task that runs its body
    /// next; `nil` when it is not dormant any more (it was parked, superseded, or lost its
    /// claim while it rested), and the driver leaves it.
    func awaken() async -> Awakened? {
        // A delivery to the dormant instance changed its state before its append committed: the
        // body must not act on that change before it is durable.
        while dormantAppends > 0 { await withCheckedContinuation { commitWaiters.append($0) } }
        guard departure == .dormant, let type = state.type else { return nil }
        departure = nil
        restingWaits = []
        waitingSince = nil
        parkedDues = []
        bodyTask.store(currentTaskIdentity(), ordering: .relaxed)
        return Awakened(
            type: type, input: state.input, traceContext: state.traceContext, queue: state.queue, queuedAt: state.queuedAt,
            events: Int(state.nextSequence))
    }

    /// The waits the body was in when it went to rest, in the order it entered them: a delivery
    /// ends these as it would have ended their tasks' waits.
    private var restingWaits: [StepKey] = []

    /// Appends of deliveries to the dormant instance that have not committed yet.
    private var dormantAppends = 0
    /// Drivers waking the instance, waiting for those appends.
    private var commitWaiters: [CheckedContinuation<Void, Never>] = []

    /// Appends `events` of a delivery, counted while they commit when the instance is dormant.
    private func appendDelivery(_ events: [HistoryEvent], dormant: Bool) async throws(ContinuumError) {
        guard dormant else { return try await appendOrSuspend(events) }
        dormantAppends += 1
        defer {
            dormantAppends -= 1
            if dormantAppends == 0 {
                for waiter in commitWaiters { waiter.resume() }
                commitWaiters = []
            }
        }
        try await appendOrSuspend(events)
    }

    /// Something changed a dormant instance (or made it leave): a driver runs its body again, or
    /// finds it gone. One that lost its claim gives its slot back itself when nobody drives it:
    /// a driver would first wait for room in memory, which whoever waits for the slot may hold.
    private func wakeIfDormant(_ wasDormant: Bool) {
        guard wasDormant, let runtime else { return }
        if departure == .ownershipLost, let senders = runtime.state.withLock({ $0.dormantLeft(id, self) }) {
            for sender in senders { sender.resume(returning: nil) }
            return
        }
        if let launcher = runtime.state.withLock({ $0.wakeDormant(id, self) }) {
            launcher.yield(Launch(id: id, wake: true, reserved: true))
        }
    }

    /// Parks a dormant workflow that waited long enough, as ``parkIfWaiting(since:margin:)``
    /// parks one with a task: its slot is taken first, so that no driver wakes it meanwhile,
    /// and let go once the claim is released.
    private func parkDormant(since: Int64, margin: Int64, store: any EventStore, claim: Claim) async {
        guard let waitingSince, waitingSince <= since, let runtime else { return }
        let now = clock.now()
        if let lastActivity, lastActivity > since {
            parking?.add(self, since: lastActivity)
            return
        }
        // A delivery still committing may end a wait: parked after it, the workflow would wait
        // in the store with nothing left to wake it. Its wake comes once it commits.
        if dormantAppends > 0 {
            parking?.add(self, since: now)
            return
        }
        let dues = wakeDues(waitsIn: restingWaits, now: now)
        guard !dues.contains(where: { $0 <= now + margin }) else {
            parking?.add(self, since: now)
            return
        }
        switch runtime.state.withLock({ $0.reserveDormant(id, self) }) {
        case .reserved:
            break
        case .resting:
            // The driver that put it to rest has not ended yet: look again.
            parking?.add(self, since: waitingSince)
            return
        case .busy:
            // Being woken (it is looked at again if it waits again), or no longer this runtime's
            // instance of the workflow (the runtime stopped, or another run took the slot).
            return
        }
        departure = .parked  // in this turn: a delivery from now on finds it leaving
        await releaseClaim(store: store, claim: claim)
        for sender in runtime.state.withLock({ $0.driveEnded(id) }) { sender.resume(returning: nil) }
        // As a parked workflow's driver does once it has gone.
        for due in dues { timers.wakeIfLoaded(id, at: due) }
    }

    func completeStep(_ call: WorkflowState.StepCall, outcome: Result<[UInt8], FailureRecord>) async throws(ContinuumError) {
        try await appendOrSuspend(completedStep(call, outcome: outcome))
    }

    @inline(never)
    private func completedStep(_ call: WorkflowState.StepCall, outcome: Result<[UInt8], FailureRecord>) throws(ContinuumError) -> [HistoryEvent] {
        try checkUsable()
        let event = state.completeStep(call, outcome: outcome, timestamp: clock.now())
        runningSteps -= 1
        updateWaiting()
        return [event]
    }

    /// Records a failed attempt and its backoff; returns the call for the next attempt once committed.
    func retryStep(_ call: WorkflowState.StepCall, failure: FailureRecord, nextAttemptAt: Int64) async throws(ContinuumError) -> WorkflowState.StepCall {
        try checkUsable()
        var call = call
        let event = state.retryStep(&call, failure: failure, nextAttemptAt: nextAttemptAt, timestamp: clock.now())
        try await appendOrSuspend([event])
        return call
    }

    func abandonStep(_ call: WorkflowState.StepCall) {
        state.abandonStep(call)
        runningSteps -= 1
        updateWaiting()
    }

    /// Records how the body ended. Returns the outcome as stored, or the error that suspended the workflow.
    ///
    /// A child first tells its parent how it ends, and a parent first cancels the children it
    /// leaves behind (``ParentClosePolicy/cancel``); only then is the end committed. A crash in
    /// between repeats both on the next run, which the dedup key and cancellation's idempotence
    /// make harmless; the other order could lose the parent's wake-up for good.
    func finish(_ outcome: WorkflowState.Outcome) async -> Result<WorkflowState.Outcome, ContinuumError> {
        var told: WorkflowState.Outcome?
        if let runtime, let family = family(ending: outcome) {
            do {
                try await runtime.settle(family)
            } catch {
                return .failure(ContinuumError.wrap(error))
            }
            // A cancellation that came while the family was told must not change what is
            // committed: the parent holds this outcome.
            told = family.outcome
        }
        // Consumed, and the request handed over whole: bound from a value kept, or used after
        // the append, the request was copied, retaining each reference it holds. What the feed
        // gets is kept aside; whether anyone observes is asked after the commit, as always.
        let finishing = finishing(told ?? outcome, exactly: told != nil)
        switch consume finishing {
        case .ended(let result):
            return result
        case .commit(let destination, let request, let stored):
            let (events, status) = (request.events, request.status)
            do {
                switch consume destination {
                case .queued(let store): try await submit(request, to: store)
                case .awaited(let store): try await store.append(request)
                }
                feed?.publish(WorkflowChange(workflowID: id, events: events, status: status))
                return .success(stored)
            } catch {
                return .failure(failAppend(error))
            }
        }
    }

    /// Ends this run and records the start of a new one with `input` (``WorkflowContext/continueAsNew(with:)``),
    /// keeping the claim; the driver then runs the body again from the new run. Returns the
    /// error that stopped it instead (a suspension, a divergence, a failed append).
    func continueAsNew(input: [UInt8]) async -> ContinuumError? {
        if let suspension { return suspension }
        if let departure { return Self.departedError(departure) }
        // The deadlines of the run's pending waits leave the index with it; the workflow's own stays.
        let dues = Set(state.recordedWaits.values.filter { $0.outcome == nil }.compactMap(\.due)).subtracting(state.pendingDeadline.map { [$0] } ?? [])
        switch state.continueAsNew(input: input, timestamp: clock.now()) {
        case .failure(let divergence):
            return suspend(nondeterminism(divergence))
        case .success(let event):
            guard case .live(let store, let claim) = mode else {
                departure = .replayEnded
                replayEnd = .reachedEnd("continueAsNew")
                return Self.departedError(.replayEnded)
            }
            // From here on this instance takes nothing: an event sent meanwhile waits for the
            // next run's instance, which loads after this commit.
            departure = .continued
            do {
                try await store.append(AppendRequest(fence: claim, id: id, events: [event], timers: dues.map(TimerChange.remove)))
            } catch {
                departure = nil  // not continued: suspended, or left to the owner that took it
                return failAppend(error)
            }
            feed?.publish(WorkflowChange(workflowID: id, events: [event]))
            return nil
        }
    }

    /// Whether this run's body started (or replayed the start of) a child: only then does its
    /// end look for children to cancel, which keeps that search off every other workflow's end.
    private var startsChildren = false

    /// Notes that the body starts a child (``WorkflowContext/startChild(_:name:input:onParentClose:timeout:isolation:)``).
    func noteChildStart() {
        startsChildren = true
    }

    /// What the end of this workflow owes its parent and children, when it owes anything.
    private func family(ending outcome: WorkflowState.Outcome) -> WorkflowRuntime.FamilySettlement? {
        guard parent != nil || startsChildren, suspension == nil, departure == nil, case .live = mode else { return nil }
        let children = startsChildren ? state.openChildren.filter { $0.onParentClose == .cancel } : []
        guard parent != nil || !children.isEmpty, let final = state.finalOutcome(outcome) else { return nil }
        return WorkflowRuntime.FamilySettlement(id: id, outcome: final, parent: parent, children: children)
    }

    /// The payload of the event named `name` that a wait of this run already received.
    func receivedByClaimedWait(eventName name: String) -> [UInt8]? {
        state.receivedByClaimedWait(eventName: name)
    }

    /// How finishing the body goes on: it ended already (replay, suspension, divergence), or
    /// its end is to be committed.
    private enum Finishing {
        case ended(Result<WorkflowState.Outcome, ContinuumError>)
        case commit(Destination, AppendRequest, stored: WorkflowState.Outcome)
    }

    @inline(never)
    private func finishing(_ outcome: WorkflowState.Outcome, exactly: Bool = false) -> Finishing {
        if let suspension { return .ended(.failure(suspension)) }
        if let departure { return .ended(.failure(Self.departedError(departure))) }
        switch state.finish(outcome, timestamp: clock.now(), exactly: exactly) {
        case .failure(let divergence):
            return .ended(.failure(suspend(nondeterminism(divergence))))
        case .success(let event):
            let status: WorkflowStatus
            let stored: WorkflowState.Outcome
            switch event.kind {
            case .workflowCompleted(let output): (status, stored) = (.completed, .completed(output))
            case .workflowCancelled(let reason): (status, stored) = (.cancelled, .cancelled(reason: reason))
            // What was committed, which is not the body's outcome when a deadline passed first.
            case .workflowFailed(let failure): (status, stored) = (.failed, .failed(failure))
            default: (status, stored) = (.failed, outcome)
            }
            guard let destination = liveDestination(), let claim else {
                // A replay that reaches the end of the body has checked everything history holds.
                departure = .replayEnded
                replayEnd = .finished
                return .ended(.success(stored))
            }
            // Waits the body left behind have nothing more to wake.
            var dues = state.recordedWaits.isEmpty ? [] : Set(state.recordedWaits.values.filter { $0.outcome == nil }.compactMap(\.due))
            // A deadline's entry may outlive a cancellation; removing one already gone is harmless.
            if let deadline = state.deadline, !state.timedOut { dues.insert(deadline) }
            let timers = dues.map(TimerChange.remove)
            return .commit(destination, AppendRequest(fence: claim, id: id, events: [event], status: status, timers: timers, release: true), stored: stored)
        }
    }

    // MARK: Waits

    /// Where a wait stands once it has begun.
    enum WaitPlan: Sendable {
        /// It ended; for a delivered event, with its payload.
        case ended(WaitOutcome, payload: [UInt8]?)
        /// It waits; when it has a deadline, on this armed timer, which the caller must wait
        /// for or disarm.
        case waiting(StepKey, timer: TimerService.Timer?)
    }

    /// Begins (or, on replay, resumes) a wait; a new wait is committed before this returns.
    /// An event wait takes the oldest buffered event of its name at once.
    ///
    /// A deadline's timer is armed by the caller (`timers.arm(until: due)`) where it computes
    /// the deadline, before any hop and before the commit: under load either can take longer
    /// than a short sleep. This takes it over: it is disarmed unless the plan waits on it.
    @inline(never)
    nonisolated func beginWait(
        named name: String, concurrent: Bool, wait: WaitKind, due: Int64?, armed: TimerService.Timer?
    ) async throws(ContinuumError) -> WaitPlan {
        do {
            let plan = try await beginWaitIsolated(named: name, concurrent: concurrent, wait: wait, due: due, armed: armed)
            if let armed, case .waiting(_, let timer) = plan, timer == armed { return plan }
            if let armed { timers.disarm(armed) }
            return plan
        } catch {
            if let armed { timers.disarm(armed) }
            throw error
        }
    }

    private func beginWaitIsolated(
        named name: String, concurrent: Bool, wait: WaitKind, due: Int64?, armed: TimerService.Timer?
    ) async throws(ContinuumError) -> WaitPlan {
        // Decided synchronously (see beginStep); only the commit is awaited here.
        var start = try startingWait(named: name, concurrent: concurrent, wait: wait, due: due)
        if case .settle(let call) = start {
            try await settle(call.key)
            start = try startingNewWait(call, named: name, wait: wait, due: due)
        }
        guard case .commit(let events, let key, let waitDue, let received) = start else {
            guard case .ended(let outcome, let payload) = start else { preconditionFailure("a settled wait commits") }
            return .ended(outcome, payload: payload)
        }
        if let received {
            try await appendOrSuspend(events)
            return .ended(.received(sequence: received.sequence), payload: received.payload)
        }
        // On replay the deadline is the recorded one, not the one the call computed now.
        let timer = waitDue.map { $0 == due ? armed : timers.arm(until: $0) } ?? nil
        do {
            if !events.isEmpty { try await appendOrSuspend(events) }
        } catch {
            if let timer, timer != armed { timers.disarm(timer) }
            throw error
        }
        return .waiting(key, timer: timer)
    }

    /// How a wait call begins.
    private enum WaitStart {
        /// History holds its end.
        case ended(WaitOutcome, payload: [UInt8]?)
        /// A new call while history still replays: settle, then ``startingNewWait(_:named:wait:due:)``.
        case settle(WorkflowState.StepCall)
        /// Commit `events` (its start, and its end when a buffered event was `received`), then
        /// wait for `key` until `due`.
        case commit([HistoryEvent], key: StepKey, due: Int64?, received: (sequence: UInt32, payload: [UInt8])?)
    }

    @inline(never)
    private func startingWait(named name: String, concurrent: Bool, wait: WaitKind, due: Int64?) throws(ContinuumError) -> WaitStart {
        try checkUsable()
        switch state.beginWait(named: name, concurrent: concurrent, wait: wait) {
        case .diverged(let divergence):
            throw suspend(nondeterminism(divergence))
        case .ambiguous(let key):
            throw ContinuumError(
                .ambiguousStep,
                "Workflow '\(id)' began wait '\(key.name)' while another wait of that name was still waiting. "
                    + "Waits that run at the same time need distinct names.",
                workflowID: id)
        case .replay(let recorded):
            if let outcome = recorded.outcome { return .ended(outcome, payload: payload(of: outcome)) }
            return try waiting(recorded.record.key, events: [], due: recorded.due, named: name, wait: wait)
        case .execute(let call):
            if state.cancellation != nil {
                state.abandonStep(call)
                throw stopError()
            }
            if state.isReplaying { return .settle(call) }
            return try startingNewWait(call, named: name, wait: wait, due: due)
        }
    }

    @inline(never)
    private func startingNewWait(_ call: WorkflowState.StepCall, named name: String, wait: WaitKind, due: Int64?) throws(ContinuumError) -> WaitStart {
        let started = state.startWait(call, wait: wait, due: due, timestamp: clock.now())
        return try waiting(call.key, events: [started], due: due, named: name, wait: wait)
    }

    /// A wait that history has not seen end: it takes a buffered event of its name at once.
    private func waiting(_ key: StepKey, events: [HistoryEvent], due: Int64?, named name: String, wait: WaitKind) throws(ContinuumError) -> WaitStart {
        // A replay stops at a wait history has not seen end: what happens next is not recorded.
        if case .replay = mode { throw endReplay(at: name) }
        if case .event(let eventName) = wait, let (sequence, event) = state.oldestUnconsumed(named: eventName),
            let ended = state.endWait(key, outcome: .received(sequence: sequence), timestamp: clock.now())
        {
            return .commit(events + [ended], key: key, due: due, received: (sequence, event.payload))
        }
        return .commit(events, key: key, due: due, received: nil)
    }

    /// Waits out a retry backoff until `deadline`, unless the workflow is cancelled or
    /// suspended first (either disarms the timer, under the timer service's lock, so neither
    /// can slip in before the wait begins).
    func backoff(_ key: StepKey, until deadline: Int64) async throws {
        if state.cancellation != nil { throw stopError() }
        try checkUsable()
        let timer = timers.arm(until: deadline)
        backoffs[key] = timer
        defer { backoffs[key] = nil }
        do {
            _ = try await timers.wait(for: timer)
        } catch {
            if state.cancellation != nil { throw stopError() }
            try checkUsable()
            throw error  // the task was cancelled: the runtime is stopping
        }
    }

    /// The timers of steps waiting out a retry backoff.
    private var backoffs: [StepKey: TimerService.Timer] = [:]

    /// Ends every retry backoff now; each throws once it wakes.
    private func stopBackoffs() {
        for timer in backoffs.values { timers.disarm(timer) }
    }

    /// Whether cancellation was requested.
    var isCancellationRequested: Bool { state.cancellation != nil }

    /// Records a cancellation request, ends every pending wait, and wakes the tasks waiting.
    func cancel(reason: String, by: String? = nil) async throws(ContinuumError) {
        try checkReachable()
        // A dormant workflow's body runs again to compensate, whatever came of the append.
        let wasDormant = departure == .dormant
        defer { wakeIfDormant(wasDormant) }
        guard state.outcome == nil else {
            throw ContinuumError(.workflowFinished, "Workflow '\(id)' has finished; there is nothing to cancel.", workflowID: id)
        }
        let events = state.requestCancellation(reason: reason, by: by, timestamp: clock.now())
        guard !events.isEmpty else { return }
        // Only the waits this request ended (a wait that ended just before keeps its outcome),
        // and the steps waiting out a backoff.
        let waiters = takeWaiters(endedBy: events)
        do {
            try await appendDelivery(events, dormant: wasDormant)
        } catch {
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
        let error = cancelled(reason)
        for waiter in waiters { waiter.resume(throwing: error) }
        stopBackoffs()
    }

    /// Takes out the tasks waiting in the waits that `events` cancel, to be woken once the
    /// events are committed: meanwhile their timers cannot wake them.
    private func takeWaiters(endedBy events: [HistoryEvent]) -> [WaiterRegistry.Continuation] {
        events.compactMap { event in
            guard case .waitEnded(let key, .cancelled) = event.kind else { return nil }
            return eventWaiters.take(key)
        }
    }

    nonisolated func cancelled(_ reason: String) -> ContinuumError {
        ContinuumError(.cancelled, "Workflow '\(id)' was cancelled: \(reason)", workflowID: id)
    }

    /// What a wait or backoff that the workflow's stopping ended throws: `timedOut` when its
    /// deadline passed, `cancelled` when someone cancelled it. Never inlined: its messages would
    /// otherwise sit in the frame of every sleep and wait.
    @inline(never)
    func stopError() -> ContinuumError {
        if state.timedOut { return timedOut() }
        return cancelled(state.cancellation ?? "cancelled")
    }

    nonisolated func timedOut() -> ContinuumError {
        ContinuumError(.timedOut, "Workflow '\(id)' timed out: \(WorkflowState.deadlineReason)", workflowID: id)
    }

    /// Records that the deadline passed, ends every pending wait and wakes the tasks waiting,
    /// as a cancellation does; the workflow then ends failed with `timedOut`.
    func passDeadline() async {
        guard suspension == nil, departure == nil, case .live = mode else { return }
        let events = state.passDeadline(timestamp: clock.now())
        guard !events.isEmpty else { return }
        let waiters = takeWaiters(endedBy: events)
        do {
            try await appendOrSuspend(events)
        } catch {
            // Suspended or departed: every other waiter was woken with that.
            for waiter in waiters { waiter.resume(throwing: error) }
            return
        }
        logger.notice("The workflow's deadline passed")
        let error = timedOut()
        for waiter in waiters { waiter.resume(throwing: error) }
        stopBackoffs()
    }

    /// What a wait's timer ends when it fires first.
    enum Firing: Sendable {
        /// A sleep: it ends fired.
        case endsSleep
        /// An event wait's timeout: it ends timed out.
        case timesOut
    }

    /// Waits, counted as waiting (the instance may leave memory while every call of the body
    /// waits), until a delivery, the wait's `timer` or a cancellation ends the wait of `key`, or
    /// returns at once when it ended already. The timer resumes this task itself (no task waits
    /// for it), which then records what the firing ends.
    func awaitEnd(of key: StepKey, timer: TimerService.Timer?, firing: Firing) async throws -> (WaitOutcome, [UInt8]?) {
        // This frame lives as long as the wait: what is decided before it is decided elsewhere.
        enterWait(key)
        defer {
            exitWait(key)
            if let timer { timers.disarm(timer) }  // nothing left for it to wake
        }
        if let ended = try await endedAlready(key) { return ended }
        let wake = try await waitForEnd(of: key, timer: timer)
        return try await ended(key, by: wake, firing: firing)
    }

    /// How the wait ended, when it did before anyone waited (a buffered event ends it now,
    /// committed); `nil` while it waits.
    @inline(never)
    private func endedAlready(_ key: StepKey) async throws -> (WaitOutcome, [UInt8]?)? {
        switch try endingNow(key) {
        case .ended(let outcome, let payload):
            return (outcome, payload)
        case .received(let ended, let sequence, let payload):
            try await appendOrSuspend([ended])
            return (.received(sequence: sequence), payload)
        case .waits:
            return nil
        }
    }

    /// How a wake-up ends the wait: as it says, or, from the wait's timer, as the firing ends it.
    @inline(never)
    private func ended(_ key: StepKey, by wake: WaiterRegistry.Wake, firing: Firing) async throws -> (WaitOutcome, [UInt8]?) {
        switch wake {
        case .ended(let outcome, let payload):
            return (outcome, payload)
        case .timerFired(let firedAt):
            return try await timerFired(key, at: firedAt, firing)
        }
    }

    /// Records that the wait's timer fired at `firedAt` and returns once that is committed.
    /// Whatever else ends a wait takes its task out of the registry in the same turn, so the
    /// timer's wake-up finds the wait still waiting.
    private func timerFired(_ key: StepKey, at firedAt: Int64, _ firing: Firing) async throws -> (WaitOutcome, [UInt8]?) {
        try checkUsable()
        let due = state.recordedWaits[key]?.due ?? firedAt
        let outcome: WaitOutcome =
            switch firing {
            case .endsSleep: .fired(latenessNanoseconds: max(0, firedAt - due))
            case .timesOut: .timedOut
            }
        guard let event = state.endWait(key, outcome: outcome, timestamp: clock.now()) else {
            let ended = state.recordedWaits[key]?.outcome ?? outcome
            return (ended, payload(of: ended))
        }
        try await appendOrSuspend([event])
        if case .endsSleep = firing { metrics.timerLateness.recordNanoseconds(max(0, firedAt - due)) }
        return (outcome, nil)
    }

    private enum EndingNow {
        case ended(WaitOutcome, [UInt8]?)
        /// A buffered event ends it: commit `ended`.
        case received(HistoryEvent, sequence: UInt32, payload: [UInt8])
        case waits
    }

    @inline(never)
    private func endingNow(_ key: StepKey) throws(ContinuumError) -> EndingNow {
        try checkUsable()
        if let outcome = state.recordedWaits[key]?.outcome { return .ended(outcome, payload(of: outcome)) }
        // An event may have arrived between beginWait and now, before anyone waited for it.
        if case .event(let name)? = state.recordedWaits[key]?.wait, let (sequence, event) = state.oldestUnconsumed(named: name),
            let ended = state.endWait(key, outcome: .received(sequence: sequence), timestamp: clock.now())
        {
            return .received(ended, sequence: sequence, payload: event.payload)
        }
        return .waits
    }

    /// Waits for a delivery, the wait's timer or a cancellation to end the wait of `key`.
    private func waitForEnd(of key: StepKey, timer: TimerService.Timer?) async throws -> WaiterRegistry.Wake {
        let registry = eventWaiters
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                self.register(key, continuation, timer: timer)
            }
        } onCancel: {
            registry.resume(key, with: .failure(CancellationError()))
        }
    }

    /// Registers the task waiting for `key` to end.
    ///
    /// Synchronous and isolated to the actor on purpose: the compiler then proves that the
    /// closures calling it run on the actor, in the same turn as the checks before them, so no
    /// delivery or timer can end the wait in between and find nobody to wake. A closure that
    /// only captured the registry would be nonisolated: calling it hops off the actor, and the
    /// crash campaign's soak caught a timer firing in that gap (the workflow then waited forever).
    private func register(_ key: StepKey, _ continuation: WaiterRegistry.Continuation, timer: TimerService.Timer?) {
        eventWaiters.register(key, continuation)
        if let timer { timers.notify(eventWaiters, key, when: timer) }
    }

    private func payload(of outcome: WaitOutcome) -> [UInt8]? {
        if case .received(let sequence) = outcome { return state.inbox[sequence]?.payload }
        return nil
    }

    // MARK: External events

    /// Appends an external event (unless its dedup key was seen) and hands it to a task waiting
    /// for it; returns once the event is committed. A resend is compared with the first event
    /// with its key here, where the state holds every event received (`compared`), and refused
    /// with `dedupKeyConflict` when it differs.
    func receive(name: String, payload: [UInt8], dedupKey: String?) async throws(ContinuumError) -> (receipt: EventReceipt, compared: Bool) {
        try checkReachable()
        guard state.outcome == nil else {
            throw ContinuumError(.workflowFinished, "Workflow '\(id)' has finished; it takes no more events.", workflowID: id)
        }
        lastActivity = clock.now()
        switch state.receive(name: name, payload: payload, dedupKey: dedupKey, timestamp: clock.now()) {
        case .failure(let duplicate):
            if let dedupKey, pendingSends[dedupKey] != nil {
                // The first send of this key is still committing: answer only once it is durable.
                await withCheckedContinuation { pendingSends[dedupKey, default: []].append($0) }
            }
            try checkReachable()
            let receipt = EventReceipt(workflowID: id, sequence: duplicate.sequence, duplicate: true)
            // Compared here rather than against the history in the store, which the runtime
            // would load in full for every resend.
            guard let first = state.inbox[duplicate.sequence], let dedupKey else { return (receipt, false) }
            guard first.name == name, first.payload == payload else { throw WorkflowRuntime.dedupKeyConflict(dedupKey, workflowID: id) }
            return (receipt, true)
        case .success(let event):
            var events = [event]
            // The task waiting for it is taken out now and woken once the event is committed.
            var delivered: WaiterRegistry.Continuation?
            // A dormant workflow has no task waiting: the event ends the oldest of the waits its
            // body rested in, as it would have ended that wait's task, and the body, woken once it
            // is committed, replays it. Never another pending wait (a cancelled branch's), which
            // no live delivery would end either.
            let wasDormant = departure == .dormant
            if wasDormant {
                if let key = restingWaits.first(where: { state.recordedWaits[$0]?.wait == .event(name) }),
                    let ended = state.endWait(key, outcome: .received(sequence: event.sequence), timestamp: event.timestamp)
                {
                    events.append(ended)
                    restingWaits.removeAll { $0 == key }
                }
            } else if let key = eventWaiters.oldestWaiting(where: { state.recordedWaits[$0]?.wait == .event(name) }),
                let ended = state.endWait(key, outcome: .received(sequence: event.sequence), timestamp: event.timestamp)
            {
                events.append(ended)
                delivered = eventWaiters.take(key)
            }
            if let dedupKey { pendingSends[dedupKey] = [] }
            defer {
                if let dedupKey { for waiter in pendingSends.removeValue(forKey: dedupKey) ?? [] { waiter.resume() } }
            }
            do {
                try await appendDelivery(events, dormant: wasDormant)
            } catch {
                delivered?.resume(throwing: error)
                wakeIfDormant(wasDormant)  // its waking driver finds it suspended or gone
                throw error
            }
            wakeIfDormant(wasDormant && events.count > 1)
            metrics.eventsReceived.increment()
            delivered?.resume(returning: .ended(.received(sequence: event.sequence), payload))
            return (EventReceipt(workflowID: id, sequence: event.sequence, duplicate: false), false)
        }
    }

    private var pendingSends: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// Appends `events` under the instance's claim and reports them once committed; a failed
    /// append suspends the workflow (or ends this instance when another owner took it over).
    ///
    /// Inlined into each caller: a call of its own checks the executor when it starts.
    @inline(__always)
    private func appendOrSuspend(_ events: [HistoryEvent]) async throws(ContinuumError) {
        // Every step passes here: the request is made in a synchronous function, so that this
        // frame holds little more than it.
        let destination = try destination(appending: events)
        do {
            switch consume destination {
            case .queued(let store): try await submit(appendRequest(events), to: store)
            case .awaited(let store): try await store.append(appendRequest(events))
            }
        } catch {
            throw failAppend(error)
        }
        publish(events)
    }

    /// Hands `request` to a store that queues it (submitted here, on the actor, so the
    /// workflow's appends reach the store in the order their sequences were given), and waits
    /// for its commit.
    ///
    /// `withUnsafeContinuation` takes the caller's isolation as a parameter, and an actor's
    /// method that awaits it checks its executor before the closure as well as after the
    /// resumption; the variant that inherits the caller's executor checks only after (its
    /// caller hops back to the actor, as after any await). With the store's `async` `append`
    /// a step's commit made four checks, here two: 72 → 65 `swift_task_switch` per three-step
    /// workflow (Documentation/Benchmarks.md, stop 33).
    @inline(__always)
    private func submit(_ request: consuming AppendRequest, to store: any SubmittingEventStore) async throws(ContinuumError) {
        var request = Optional(request)
        try await _unsafeInheritExecutor_withUnsafeContinuation { store.submitAppend(&request, $0) }.get()
    }

    /// How an append reaches the store.
    private enum Destination {
        /// Submitted in a synchronous call (``submit(_:to:)``).
        case queued(any SubmittingEventStore)
        /// Awaited through the store's `append`.
        case awaited(any EventStore)
    }

    /// The store to append `events` to; none when this instance replays.
    private func destination(appending events: [HistoryEvent]) throws(ContinuumError) -> Destination {
        guard let destination = liveDestination() else { throw endReplay(at: events.first.map { "\($0.kind)" } ?? "an append") }
        return destination
    }

    /// Where this instance's appends go; `nil` in a replay.
    private func liveDestination() -> Destination? {
        // One reference taken, not both: bound, the store in `mode` was retained too.
        if let submitter = environment.submitter, case .live = mode {
            assert(isRuntimeStore(submitter), "a live instance appends to its runtime's store")
            return .queued(submitter)
        }
        guard case .live(let store, _) = mode else { return nil }
        return .awaited(store)
    }

    /// Whether `store` is the one this live instance appends to (for assertions).
    private func isRuntimeStore(_ store: any EventStore) -> Bool {
        if case .live(let own, _) = mode { own === store } else { false }
    }

    /// Reports committed events to observers.
    @inline(never)
    private func publish(_ events: [HistoryEvent]) {
        feed?.publish(WorkflowChange(workflowID: id, events: events))
    }

    /// The append of `events` under this instance's claim, with the timer-index changes they make.
    @inline(never)
    private func appendRequest(_ events: [HistoryEvent]) -> AppendRequest {
        // Asked only when an event can move a timer: the call copies the whole state (an event
        // delivery's append, which moves none, spent about 1 % of its CPU on that copy).
        let timers = events.contains(where: WorkflowState.mayChangeTimers) ? state.timerChanges(for: events) : []
        guard case .live(_, let claim) = mode else { preconditionFailure("an append request is made only for a live instance") }
        return AppendRequest(fence: claim, id: id, events: events, timers: timers, snapshot: snapshotIfDue())
    }

    /// A snapshot of the state for the append being made, once the history grew by
    /// ``snapshotEvery`` events since the last one and by half the state's size: written that
    /// rarely, a snapshot costs each event at most two entries, however long the history.
    /// The state then holds every event up to the append's last, committed or on its way in
    /// order, so the snapshot stands for exactly the events before ``WorkflowSnapshot/through``.
    private func snapshotIfDue() -> WorkflowSnapshot? {
        guard let snapshotEvery, state.outcome == nil else { return nil }
        let grown = Int(state.nextSequence) - Int(snapshotThrough)
        guard grown >= snapshotEvery, grown >= state.snapshotWeight / 2 else { return nil }
        let snapshot = state.snapshot()
        snapshotThrough = snapshot.through
        metrics.snapshotsWritten.increment()
        return snapshot
    }

    /// Turns a failed append into what the workflow does next: another owner's claim makes this
    /// instance leave memory quietly; any other failure suspends it. Either wakes every waiter.
    @inline(never)
    private func failAppend(_ error: ContinuumError) -> ContinuumError {
        guard error.code == .ownershipLost else { return suspend(error) }
        if departure == nil || departure == .dormant {
            departure = .ownershipLost
            logger.notice("Lost the claim on the workflow; its new owner continues it", metadata: [WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
        }
        let departed = Self.departedError(.ownershipLost)
        eventWaiters.failAll(departed)
        stopBackoffs()
        return departed
    }

    /// Someone takes the workflow over (a reset, say): stop where it is, append nothing more, and
    /// wake every wait so the body unwinds.
    func supersede() {
        if departure == nil || departure == .dormant { departure = .superseded }
        eventWaiters.failAll(Self.departedError(.superseded))
        stopBackoffs()
    }

    /// The claim was found lost without an append (a lease renewal said so): leave memory.
    func ownershipLost() {
        // The body's end released the claim itself (a renewal that ran after it committed finds
        // the claim gone): the workflow is finished, not lost to another owner. Had another owner
        // taken it, the append of the end is refused and says so.
        guard state.outcome == nil else { return }
        let wasDormant = departure == .dormant
        _ = failAppend(ContinuumError(.ownershipLost, "The lease on the workflow was lost."))
        wakeIfDormant(wasDormant)  // its waking driver finds it gone and lets its slot go
    }

    // MARK: Version markers

    /// Decides `ctx.patched(id)`: true for new work and for runs that recorded the marker,
    /// false for a run replaying what it did before the marker existed.
    func patched(_ marker: String) async throws(ContinuumError) -> Bool {
        try checkUsable()
        switch state.patch(marker, timestamp: clock.now()) {
        case .recorded:
            patchesTaken[marker] = true
            return true
        case .oldBranch:
            patchesTaken[marker] = false
            return false
        case .newBranch(let event):
            if case .replay = mode { throw endReplay(at: "version marker '\(marker)'") }
            patchesTaken[marker] = true
            try await appendOrSuspend([event])
            return true
        }
    }

    /// Which branch each version marker took in this run (false: the old branch).
    private(set) var patchesTaken: [String: Bool] = [:]

    // MARK: Replay

    /// How a replay ended, once it has.
    enum ReplayEnd: Sendable, Equatable {
        /// The code asked for something history does not hold (named): everything before it matched.
        /// (Indirect: only replays set it, and the payload would widen every instance.)
        indirect case reachedEnd(String)
        /// The body returned or threw, having claimed everything history holds.
        case finished
        /// A recorded step's code changed, and the policy does not accept it.
        indirect case codeChanged(StepKey)
    }

    /// The recorded steps whose code changed, in the order the replay met them.
    private(set) var changedSteps: [StepKey] = []

    // MARK: Queries

    /// The values the body published (``WorkflowContext/publish(_:_:)``), latest per name: kept
    /// in memory only, and published again by every replay.
    private(set) var published: [String: [UInt8]] = [:]

    func publish(_ name: String, _ value: [UInt8]) {
        published[name] = value
    }

    /// What a query of a live instance finds.
    enum LiveQuery: Sendable {
        /// The value published under the name (`nil`: none).
        case value([UInt8]?)
        /// The body is still replaying history: its values lag behind what is recorded.
        case catchingUp
    }

    func query(_ name: String) -> LiveQuery {
        // A dormant body published everything before it rested; its state is rewound.
        if departure == .dormant { return .value(published[name]) }
        return state.isReplaying ? .catchingUp : .value(published[name])
    }

    /// How the replay ended; `nil` while it runs, and for a live instance.
    private(set) var replayEnd: ReplayEnd?

    /// Ends a replay at the first call history does not hold: every later call throws.
    private func endReplay(at what: String) -> ContinuumError {
        if departure == nil {
            departure = .replayEnded
            replayEnd = .reachedEnd(what)
        }
        let ended = Self.departedError(.replayEnded)
        eventWaiters.failAll(ended)
        return ended
    }

    /// The state as the replay left it, for its report.
    var replayedState: WorkflowState { state }

    /// Stops the workflow where it is: every later call from its body throws `error`, and nothing more is appended.
    @discardableResult
    func suspend(_ error: ContinuumError) -> ContinuumError {
        if let suspension { return suspension }
        var error = error
        error.workflowID = id
        suspension = error
        eventWaiters.failAll(error)
        stopBackoffs()
        return error
    }

    /// What the instance is doing, on one line, for diagnosing a workflow that seems stuck:
    /// its steps running, the waits its body is in, the tasks registered to be woken, and the
    /// waits still pending in its state.
    var diagnostics: String {
        let now = clock.now()
        let pending = state.recordedWaits.filter { $0.value.outcome == nil }.map { key, wait in
            "\(key) \(wait.wait)" + (wait.due.map { " due in \(($0 - now) / 1_000_000) ms" } ?? "")
        }
        func names(_ keys: some Sequence<StepKey>) -> [String] { keys.map(\.description).sorted() }
        return "steps running \(runningSteps); body waiting in \(names(waitingKeys)); registered \(names(eventWaiters.keys)); "
            + "backoffs \(names(backoffs.keys)); pending waits \(pending.sorted()); "
            + "departure \(departure.map { "\($0)" } ?? "none"); suspension \(suspension.map { "\($0.code)" } ?? "none"); "
            + "cancellation \(state.cancellation ?? "none"); outcome \(state.outcome.map { "\($0)" } ?? "none"); "
            + "unconsumed events named \(Set(state.inbox.values.map(\.name)).filter { state.oldestUnconsumed(named: $0) != nil }.sorted())"
    }

    /// Where the code stopped matching history, for the suspension's record.
    private var divergence: WorkflowState.Divergence? {
        get { noted?.divergence }
        set { noted = newValue.map(Noted.init) }
    }
    /// The divergence behind one reference: 52 bytes in every instance otherwise.
    private var noted: Noted?

    private final class Noted {
        let divergence: WorkflowState.Divergence
        init(_ divergence: WorkflowState.Divergence) { self.divergence = divergence }
    }

    /// Appends the suspension (with what the code and history disagree on) and releases the
    /// workflow: it is listed as suspended and waits, across restarts, for someone to decide.
    func recordSuspension(_ error: ContinuumError) async throws(ContinuumError) {
        guard case .live(let store, let claim) = mode, departure == nil else { return }
        let record = SuspensionRecord(
            code: error.code.name, message: error.message, index: divergence?.index, recorded: divergence?.recorded,
            requested: divergence?.requested, build: build)
        let event = state.recordSuspension(record, timestamp: clock.now())
        departure = .superseded
        try await store.append(AppendRequest(fence: claim, id: id, events: [event], status: .suspended, release: true))
        feed?.publish(WorkflowChange(workflowID: id, events: [event], status: .suspended))
    }

    private func nondeterminism(_ divergence: WorkflowState.Divergence) -> ContinuumError {
        if self.divergence == nil { self.divergence = divergence }
        return ContinuumError(
            .nondeterminism,
            "Workflow '\(id)' (type \(state.type ?? "?")) no longer matches its history: \(divergence). "
                + "It is suspended; nothing of the new call ran or was appended. Deploy code whose steps match the recorded "
                + "history (keep old steps for workflows already past them, or branch with ctx.patched) and resume it, "
                + "or reset it to a step to run the new code from there.",
            workflowID: id)
    }
}

extension WorkflowState {
    /// Whether `event` is of a kind ``timerChanges(for:)`` looks at.
    static func mayChangeTimers(_ event: HistoryEvent) -> Bool {
        switch event.kind {
        case .waitStarted(_, _, _?), .waitEnded, .deadlinePassed: true
        default: false
        }
    }

    /// The changes to the due-time index that appending `events` makes, for a state that has
    /// already applied them: a wait with a deadline adds it, its end removes it.
    func timerChanges(for events: [HistoryEvent]) -> [TimerChange] {
        var timers: [TimerChange] = []
        for event in events {
            switch event.kind {
            case .waitStarted(_, _, let due?): timers.append(.add(due))
            case .waitEnded(let key, _):
                // The index holds one entry per (due time, workflow): keep it while another wait,
                // or the deadline, shares it.
                if let due = recordedWaits[key]?.due, !recordedWaits.values.contains(where: { $0.outcome == nil && $0.due == due }),
                    pendingDeadline != due
                {
                    timers.append(.remove(due))
                }
            case .deadlinePassed:
                if let due = deadline, !recordedWaits.values.contains(where: { $0.outcome == nil && $0.due == due }) {
                    timers.append(.remove(due))
                }
            default: continue
            }
        }
        return timers
    }
}
