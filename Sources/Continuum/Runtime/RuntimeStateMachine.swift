/// The runtime's decisions about which workflows it drives, who waits for them, and what happens
/// when it stops: a value type with no I/O, driven under one lock by ``WorkflowRuntime``.
///
/// Every method is one transition; what it returns is what the caller must do outside the lock
/// (resume these continuations, launch that workflow). It is generic over what it keeps so that
/// tests can drive it with plain values.
///
/// - `Instance`: a loaded workflow instance.
/// - `Sender`: a caller waiting for a workflow's instance to be loaded (or to leave memory).
/// - `ResultWaiter`: a caller waiting for a workflow's outcome.
/// - `Launcher`: how work is handed to the running serve loop.
struct RuntimeStateMachine<Instance: AnyObject, Sender, ResultWaiter, Launcher> {
    /// A workflow being driven, or about to be: whether a driver owns it, its instance once
    /// loaded, and the senders waiting for that instance.
    struct Slot {
        var driving = false
        var instance: Instance?
        var waiting: [Sender] = []
        /// Whether the workflow is known to be running in this process: its instance is loaded,
        /// or it was just created and handed to a driver. Every way its run ends from then on
        /// answers the result waiters, or leaves the workflow running in the store.
        var live = false
        /// Whether its result waiters were answered (it finished or was suspended).
        var settled = false
        /// Whether its instance is dormant: in memory with its claim, its body's task given up
        /// (``WorkflowRuntime/Configuration/dormantAfter``). A dormant slot's `driving` says
        /// whether a driver is waking it.
        var dormant = false
        /// Something reached the dormant instance while the driver that put it to rest was
        /// still ending: that driver launches it again instead of leaving it dormant.
        var wakeRequested = false
        /// The timed waits a dormant instance's body rested in, and the earliest deadline among
        /// them (for ``WorkflowRuntime/pendingTimers``); meaningless unless `dormant`. Kept
        /// inline: an array would cost every dormant sleeper an allocation.
        var sleeps: (count: Int32, earliest: Int64) = (0, 0)
        /// Who waits for the workflow's outcome while it has this slot. Kept here, not in
        /// ``RuntimeStateMachine/resultWaiters``: registering and answering a waiter then looks
        /// the id up once, in the dictionary every run of the workflow passes through anyway.
        /// Moved to that dictionary when the slot goes with them unanswered.
        var resultWaiters = ResultWaiters()
    }

    /// Whether ``run`` is serving: `nil` while stopped.
    private(set) var launcher: Launcher?
    /// Whether the serve loop finished recovery and reads timers.
    private(set) var isReady = false
    private var slots: [String: Slot] = [:]
    private var suspensions: [String: ContinuumError] = [:]
    /// The result waiters of workflows without a slot (a slot keeps its own): waiters for a
    /// workflow this runtime does not drive, or no longer does.
    private var resultWaiters: [String: ResultWaiters] = [:]

    /// Workflows someone waits for that this runtime does not drive: on a shared store another
    /// process may finish them, and only the store says when.
    var awaitedElsewhere: [String] { resultWaiters.keys.filter { slots[$0] == nil } }
    private var nextWaiterID: UInt64 = 0

    init() {}

    // MARK: Running and stopping

    /// Whether the runtime is running.
    var isRunning: Bool { launcher != nil }

    /// The runtime starts serving through `launcher`.
    ///
    /// - Throws: ``ContinuumError/Code/alreadyRunning`` when it is serving already.
    mutating func start(_ launcher: Launcher) throws(ContinuumError) {
        guard self.launcher == nil else {
            throw ContinuumError(.alreadyRunning, "The runtime is already running; call run() once at a time.")
        }
        self.launcher = launcher
    }

    /// Recovery is done and the first timer horizon is read.
    mutating func becameReady() { isReady = true }

    /// What stopping leaves behind: callers waiting for a result (nothing will produce it in
    /// this run) and senders waiting for an instance that will not be loaded.
    struct Stopped {
        var resultWaiters: [ResultWaiter]
        var senders: [Sender]
    }

    /// The serve loop ended: every driver has returned. Empties the state but for suspensions.
    mutating func stop() -> Stopped {
        launcher = nil
        isReady = false
        let stopped = Stopped(
            resultWaiters: resultWaiters.values.flatMap { $0 } + slots.values.flatMap(\.resultWaiters),
            senders: slots.values.flatMap(\.waiting))
        resultWaiters = [:]
        slots = [:]
        return stopped
    }

    // MARK: Driving

    /// A driver asks to drive `id`; `false` when another driver does already.
    mutating func claimDrive(_ id: String) -> Bool {
        guard var slot = slots[id] else {
            slots[id] = Slot(driving: true)
            return true
        }
        guard !slot.driving else { return false }
        slot.driving = true
        slots[id] = slot
        return true
    }

    /// Changes the slot of `id`, when it has one, in place through its index. Every workflow's
    /// run passes here a few times. Through the optional subscript (`slots[id]?.live = true`)
    /// each change went through three nested accessors of the dictionary, each allocating its
    /// frame; on a copy written back, each copy retained the slot's instance and senders (15
    /// retains per workflow). Found by index, the value is changed where it lies.
    private mutating func update<R>(_ id: String, _ change: (inout Slot) -> R) -> R? {
        guard let index = slots.index(forKey: id) else { return nil }
        return change(&slots.values[index])
    }

    /// A workflow was just created under this runtime's claim: its slot is taken for the driver
    /// it is handed to (``Launch/reserved``). Returns the launcher, `nil` when not running; the
    /// slot is not taken when another driver holds it.
    mutating func launchCreated(_ id: String) -> (launcher: Launcher?, reserved: Bool) {
        guard let launcher else { return (nil, false) }
        // Every start passes here, under the runtime's one lock: the id is looked up once (and
        // inserted), not once by `claimDrive` and again to mark the slot live.
        guard let index = slots.index(forKey: id) else {
            slots[id] = Slot(driving: true, live: true)
            return (launcher, true)
        }
        guard !slots.values[index].driving else { return (launcher, false) }
        slots.values[index].driving = true
        slots.values[index].live = true
        return (launcher, true)
    }

    /// The driver loaded `instance` (or woke it): the senders waiting for it get it.
    mutating func loaded(_ id: String, _ instance: Instance) -> [Sender] {
        update(id) { slot in
            slot.instance = instance
            slot.live = true
            slot.dormant = false
            slot.sleeps = (0, 0)
            defer { slot.waiting = [] }
            return slot.waiting
        } ?? []
    }

    /// The driver of `id` returned: the instance left memory; senders still waiting try again.
    /// Result waiters it did not answer (the workflow parked, or left for another owner) go on
    /// waiting without the slot.
    mutating func driveEnded(_ id: String) -> [Sender] { endDrive(id).senders }

    /// ``driveEnded(_:)``, handing back the slot's instance as well: when the slot held its last
    /// reference, the caller lets it go after the lock. Torn down under the lock, a finished
    /// workflow's instance and state freed dozens of blocks there, and every `free` that met
    /// another thread in glibc's arena kept the runtime's lock held through a `futex` call.
    mutating func endDrive(_ id: String) -> (senders: [Sender], instance: Instance?) {
        guard let slot = slots.removeValue(forKey: id) else { return ([], nil) }
        if !slot.resultWaiters.isEmpty { resultWaiters[id, default: ResultWaiters()].formUnion(slot.resultWaiters) }
        return (slot.waiting, slot.instance)
    }

    /// Whether a workflow with this id has a slot (it is driven, or about to be, or dormant).
    func isClaimed(_ id: String) -> Bool { slots[id] != nil }

    // MARK: Dormant workflows

    /// The driver of `id` returned with its instance dormant: the instance stays, with nobody
    /// driving it. Returns the senders to resume, and the launcher when a wake was asked for
    /// while the driver ended (the slot stays taken for that launch: ``Launch/reserved``).
    mutating func driveRested(_ id: String, _ instance: Instance, sleeps: [Int64] = []) -> (senders: [Sender], relaunch: Launcher?) {
        guard launcher != nil, var slot = slots[id], slot.instance === instance else { return (driveEnded(id), nil) }
        let senders = slot.waiting
        slot.waiting = []
        slot.dormant = true
        slot.sleeps = (Int32(clamping: sleeps.count), sleeps.min() ?? 0)
        let relaunch = slot.wakeRequested
        slot.wakeRequested = false
        slot.driving = relaunch
        slots[id] = slot
        return (senders, relaunch ? launcher : nil)
    }

    /// Something changed a dormant `instance` (an event, a cancellation, a lost claim): its
    /// body is to run again. Returns the launcher when the caller is to launch it (the slot
    /// taken for that launch); `nil` when a driver is on its way already, or will launch it
    /// as it ends.
    mutating func wakeDormant(_ id: String, _ instance: Instance) -> Launcher? {
        guard let launcher, var slot = slots[id], slot.instance === instance else { return nil }
        if !slot.dormant {
            slot.wakeRequested = true  // the driver that put it to rest has not ended yet
        } else if !slot.driving {
            slot.driving = true
        } else {
            return nil  // a waking driver has yet to wake it
        }
        slots[id] = slot
        return slot.dormant ? launcher : nil
    }

    /// The dormant instance of `id`, for the driver that just took its slot to wake it.
    func dormant(_ id: String) -> Instance? {
        guard let slot = slots[id], slot.dormant else { return nil }
        return slot.instance
    }

    /// Takes the dormant instance out of the slot of `id`, which the caller has taken (a reset, a
    /// resume): the workflow is then handled as if it were not in memory.
    mutating func takeDormant(_ id: String) -> Instance? {
        update(id) { slot -> Instance? in
            guard slot.dormant else { return nil }
            defer {
                slot.instance = nil
                slot.dormant = false
                slot.sleeps = (0, 0)
            }
            return slot.instance
        } ?? nil
    }

    /// What asking for the slot of a dormant instance came to.
    enum DormantReservation: Equatable {
        /// The slot is the caller's now.
        case reserved
        /// The driver that puts the instance to rest has not let the slot go yet.
        case resting
        /// A driver is waking it, or the slot is not this instance's.
        case busy
    }

    /// Takes the slot of `id` for parking its dormant `instance`.
    mutating func reserveDormant(_ id: String, _ instance: Instance) -> DormantReservation {
        update(id) { slot in
            guard slot.instance === instance else { return .busy }
            guard slot.dormant else { return slot.driving ? .resting : .busy }
            guard !slot.driving else { return .busy }
            slot.driving = true
            return .reserved
        } ?? .busy
    }

    /// A dormant `instance` left (its claim was lost): its slot goes, when nobody drives it, and
    /// the senders waiting for it are returned; `nil` when a driver holds the slot, which then
    /// finds the instance gone.
    mutating func dormantLeft(_ id: String, _ instance: Instance) -> [Sender]? {
        guard let slot = slots[id], slot.instance === instance, slot.dormant, !slot.driving else { return nil }
        return driveEnded(id)
    }

    /// Whether a timer that came due for `id` is to launch it: nothing drives it, or its
    /// instance is dormant and nobody wakes it yet.
    func needsWake(_ id: String) -> Bool {
        guard let slot = slots[id] else { return true }
        return slot.dormant && !slot.driving
    }

    /// The instance driving `id`, when one is loaded.
    func instance(_ id: String) -> Instance? { slots[id]?.instance }

    /// Every loaded instance.
    var instances: [Instance] { slots.values.compactMap(\.instance) }

    /// How many timed waits dormant workflows rested in, not counting a workflow whose earliest
    /// is due by `now` (its timer is about to wake it).
    func dormantSleeps(after now: Int64) -> Int {
        slots.values.reduce(0) { count, slot in slot.dormant && slot.sleeps.earliest > now ? count + Int(slot.sleeps.count) : count }
    }

    /// How many workflows have a slot, how many of those are loaded, and how many of those are dormant.
    var slotCounts: (claimed: Int, loaded: Int, dormant: Int) {
        (slots.count, slots.values.count { $0.instance != nil }, slots.values.count { $0.dormant })
    }

    /// How a request for a workflow's instance goes on.
    enum InstanceRequest {
        /// Use this instance now.
        case use(Instance)
        /// A driver is loading it: the sender was queued and is resumed by ``loaded(_:_:)`` or ``driveEnded(_:)``.
        case wait
        /// Nobody drives it: the sender was queued in a new slot; launch a driver for it (woken).
        case launch(Launcher)
        /// Nobody drives it: its slot is the caller's now (``reachInstance(_:wakeable:)``).
        case reserved
        /// It cannot be had: the runtime is stopped, or the workflow is not one to wake.
        case unavailable
    }

    /// `sender` wants the instance of `id`; `wakeable` says whether the workflow may be loaded
    /// (it is running and not suspended).
    mutating func requestInstance(_ id: String, sender: Sender, wakeable: Bool) -> InstanceRequest {
        if let instance = slots[id]?.instance { return .use(instance) }
        if slots[id] != nil {
            slots[id]?.waiting.append(sender)
            return .wait
        }
        guard let launcher, wakeable, suspensions[id] == nil else { return .unavailable }
        slots[id] = Slot(waiting: [sender])
        return .launch(launcher)
    }

    /// How a delivery (an event, a cancellation) reaches `id`: through its instance, after
    /// whoever holds its slot (``InstanceRequest/wait``: then ``waitForSlot(_:sender:)``), or
    /// straight to the store, the slot now the caller's (``InstanceRequest/reserved``) until it
    /// hands it back with ``driveEnded(_:)``. Loading the workflow would wait for room in memory,
    /// which the caller may be holding itself.
    mutating func reachInstance(_ id: String, wakeable: Bool) -> InstanceRequest {
        if let instance = slots[id]?.instance { return .use(instance) }
        if slots[id] != nil { return .wait }
        guard launcher != nil, wakeable, suspensions[id] == nil else { return .unavailable }
        slots[id] = Slot(driving: true)
        return .reserved
    }

    /// `sender` waits until whoever holds the slot of `id` loads the workflow or lets the slot
    /// go; `false` (not queued) when nobody holds it without an instance any more.
    mutating func waitForSlot(_ id: String, sender: Sender) -> Bool {
        guard slots[id] != nil, slots[id]?.instance == nil else { return false }
        slots[id]?.waiting.append(sender)
        return true
    }

    /// `sender` waits until `instance` no longer drives `id`; `false` when it does not already.
    mutating func waitUntilGone(_ id: String, _ instance: Instance, sender: Sender) -> Bool {
        guard let slot = slots[id], slot.instance === instance else { return false }
        slots[id]?.waiting.append(sender)
        return true
    }

    // MARK: Suspensions

    /// The workflow stopped and needs an operator (or, for a full store, a retry).
    mutating func suspend(_ id: String, _ error: ContinuumError) -> ResultWaiters {
        suspensions[id] = error
        return takeResultWaiters(id)
    }

    /// Why `id` is suspended, if it is.
    func suspension(_ id: String) -> ContinuumError? { suspensions[id] }

    /// Someone resumed or reset `id`: whatever stopped it in memory no longer holds.
    mutating func clearSuspension(_ id: String) -> ContinuumError? {
        suspensions.removeValue(forKey: id)
    }

    /// Every suspension, by workflow id.
    var allSuspensions: [String: ContinuumError] { suspensions }

    /// The workflows a full or unreachable store stopped (they stop only until the store
    /// recovers) and whose drivers have returned: they are no longer suspended and are to be
    /// launched again.
    mutating func takeStoppedByStore() -> [String] {
        let ids = suspensions.filter { [.storageFull, .storeUnavailable].contains($0.value.code) && slots[$0.key] == nil }.map(\.key)
        for id in ids { suspensions[id] = nil }
        return ids.sorted()
    }

    // MARK: Result waiters

    /// A number for a new result waiter.
    mutating func newWaiterID() -> UInt64 {
        nextWaiterID += 1
        return nextWaiterID
    }

    /// `waiter` waits for the outcome of `id`. Returns whether the workflow is running in this
    /// process and has not settled: then whoever ends its run answers the waiter, and nobody
    /// needs to ask the store how it stands.
    @discardableResult
    mutating func addResultWaiter(_ id: String, _ waiterID: UInt64, _ waiter: ResultWaiter) -> Bool {
        let live = update(id) { slot in
            slot.resultWaiters.insert(waiter, as: waiterID)
            return slot.live && !slot.settled
        }
        if let live { return live && (suspensions.isEmpty || suspensions[id] == nil) }
        // Taken out, changed and put back: changed in place, the nested accessors allocated.
        var waiters = resultWaiters.removeValue(forKey: id) ?? ResultWaiters()
        waiters.insert(waiter, as: waiterID)
        resultWaiters[id] = waiters
        return false
    }

    /// Removes one waiter (its task was cancelled, or it was answered by the store).
    mutating func removeResultWaiter(_ id: String, _ waiterID: UInt64) -> ResultWaiter? {
        if let removed = update(id, { $0.resultWaiters.remove(waiterID) }) ?? nil { return removed }
        // Looked up first, since a modifying access to a missing key makes room for it.
        guard !resultWaiters.isEmpty, resultWaiters[id] != nil, var waiters = resultWaiters.removeValue(forKey: id) else { return nil }
        let waiter = waiters.remove(waiterID)
        if !waiters.isEmpty { resultWaiters[id] = waiters }
        return waiter
    }

    /// The workflow has an outcome: every waiter gets it.
    mutating func takeResultWaiters(_ id: String) -> ResultWaiters {
        var taken =
            update(id) { slot in
                slot.settled = true
                var waiters = ResultWaiters()
                swap(&waiters, &slot.resultWaiters)
                return waiters
            } ?? ResultWaiters()
        // Waiters that came before the slot (or stayed after an earlier one) wait here.
        if !resultWaiters.isEmpty, let waiting = resultWaiters.removeValue(forKey: id) { taken.formUnion(waiting) }
        return taken
    }

    /// How many result waiters wait for `id` (all workflows when `nil`).
    func resultWaiterCount(_ id: String? = nil) -> Int {
        guard let id else {
            return resultWaiters.values.reduce(0) { $0 + $1.count } + slots.values.reduce(0) { $0 + $1.resultWaiters.count }
        }
        return (resultWaiters[id]?.count ?? 0) + (slots[id]?.resultWaiters.count ?? 0)
    }

    /// A diagnostic view of one workflow's slot.
    func slotDescription(_ id: String) -> (driving: Bool, senders: Int, loaded: Instance?)? {
        slots[id].map { ($0.driving, $0.waiting.count, $0.instance) }
    }
}

extension RuntimeStateMachine {
    /// The callers waiting for one workflow's outcome, by waiter number. Nearly always one, and
    /// one is kept without a collection: a dictionary per workflow cost three allocations on
    /// every `result()`.
    struct ResultWaiters: Sequence {
        private var one: (id: UInt64, waiter: ResultWaiter)?
        private var more: [UInt64: ResultWaiter] = [:]

        var count: Int { (one == nil ? 0 : 1) + more.count }
        var isEmpty: Bool { one == nil && more.isEmpty }

        mutating func insert(_ waiter: ResultWaiter, as id: UInt64) {
            if (one == nil && more.isEmpty) || one?.id == id {
                one = (id, waiter)
            } else {
                more[id] = waiter
            }
        }

        /// Adds every waiter of `other` (numbers are unique: no waiter replaces another).
        mutating func formUnion(_ other: Self) {
            if let one = other.one { insert(one.waiter, as: one.id) }
            for (id, waiter) in other.more { insert(waiter, as: id) }
        }

        mutating func remove(_ id: UInt64) -> ResultWaiter? {
            if let one, one.id == id {
                self.one = nil
                return one.waiter
            }
            return more.removeValue(forKey: id)
        }

        func makeIterator() -> Iterator { Iterator(one: one?.waiter, more: more.values.makeIterator()) }

        struct Iterator: IteratorProtocol {
            fileprivate var one: ResultWaiter?
            fileprivate var more: Dictionary<UInt64, ResultWaiter>.Values.Iterator

            mutating func next() -> ResultWaiter? {
                if let waiter = one {
                    one = nil
                    return waiter
                }
                return more.next()
            }
        }
    }
}

extension RuntimeStateMachine.ResultWaiters: Sendable where ResultWaiter: Sendable {}

extension RuntimeStateMachine: Sendable where Instance: Sendable, Sender: Sendable, ResultWaiter: Sendable, Launcher: Sendable {}
extension RuntimeStateMachine.Slot: Sendable where Instance: Sendable, Sender: Sendable, ResultWaiter: Sendable {}
