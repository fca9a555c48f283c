@testable import Continuum
import Testing

/// The runtime's decisions, driven with plain values: no store, no tasks, no continuations.
@Suite("Runtime state machine")
struct RuntimeStateMachineTests {
    final class Instance {}
    typealias Machine = RuntimeStateMachine<Instance, String, String, String>

    private static let full = ContinuumError(.storageFull, "full")
    private static let diverged = ContinuumError(.nondeterminism, "changed")

    @Test("starting twice is refused with alreadyRunning; stopping hands back every waiter and sender")
    func startAndStop() throws {
        var machine = Machine()
        #expect(!machine.isRunning)
        try machine.start("queue")
        #expect(machine.isRunning && !machine.isReady)
        let second = #expect(throws: ContinuumError.self) { try machine.start("other") }
        #expect(second?.code == .alreadyRunning)
        machine.becameReady()
        machine.addResultWaiter("a", machine.newWaiterID(), "waiter-a")
        let value1 = machine.claimDrive("b")
        #expect(value1)
        _ = machine.requestInstance("b", sender: "sender-b", wakeable: true)
        machine.suspend("c", Self.diverged).forEach { _ in }
        let stopped = machine.stop()
        #expect(stopped.resultWaiters == ["waiter-a"])
        #expect(stopped.senders == ["sender-b"])
        #expect(!machine.isRunning && !machine.isReady && !machine.isClaimed("b"))
        #expect(machine.suspension("c")?.code == .nondeterminism, "a suspension outlives a stop")
        try machine.start("again")
    }

    @Test("a result waiter skips the store only while its workflow runs here and has not settled")
    func liveResultWaiters() throws {
        var machine = Machine()
        try machine.start("queue")
        func wait(_ id: String, _ waiter: String) -> Bool { machine.addResultWaiter(id, machine.newWaiterID(), waiter) }
        // Nobody drives it: the store must say how it stands.
        #expect(!wait("cold", "w0"))
        // Just created and handed to a driver: whoever ends its run answers.
        let launched = machine.launchCreated("new")
        #expect(launched.launcher == "queue" && launched.reserved)
        #expect(wait("new", "w1"))
        // Claimed by a driver that has not loaded it yet (a wake-up): it may turn out finished
        // or suspended in the store, so the store is asked.
        let claimed = machine.claimDrive("woken")
        #expect(claimed)
        #expect(!wait("woken", "w2"))
        _ = machine.loaded("woken", Instance())
        #expect(wait("woken", "w3"))
        // Answered: a later waiter reads the outcome from the store.
        let answered = machine.takeResultWaiters("new").sorted()
        #expect(answered == ["w1"])
        #expect(!wait("new", "w4"))
        // Suspended: likewise.
        let suspended = machine.suspend("woken", Self.diverged).sorted()
        #expect(suspended == ["w2", "w3"])
        #expect(!wait("woken", "w5"))
        // A second creation of an id whose slot is taken does not take it again.
        let again = machine.launchCreated("new")
        #expect(again.launcher == "queue" && !again.reserved)
    }

    @Test("one driver per workflow; senders wait for the instance and get it when it is loaded")
    func driving() throws {
        var machine = Machine()
        try machine.start("queue")
        let value2 = machine.claimDrive("w")
        #expect(value2)
        let value3 = machine.claimDrive("w")
        #expect(!value3, "a second driver was let in")
        guard case .wait = machine.requestInstance("w", sender: "s1", wakeable: true) else {
            Issue.record("a sender did not wait for the loading instance")
            return
        }
        let instance = Instance()
        let value4 = machine.loaded("w", instance)
        #expect(value4 == ["s1"])
        guard case .use(let found) = machine.requestInstance("w", sender: "s2", wakeable: true) else {
            Issue.record("a loaded instance was not handed out")
            return
        }
        #expect(found === instance)
        #expect(machine.instances.count == 1 && machine.slotCounts == (1, 1, 0))
        let value5 = machine.driveEnded("w")
        #expect(value5.isEmpty)
        #expect(!machine.isClaimed("w") && machine.instance("w") == nil)
        let value6 = machine.claimDrive("w")
        #expect(value6, "after the driver ended, another may drive it")
    }

    @Test("a dormant instance stays in its slot with nobody driving it; one wake takes the slot, a wake while its driver ends relaunches it")
    func dormancy() throws {
        var machine = Machine()
        try machine.start("queue")
        let instance = Instance()
        let claimed = machine.claimDrive("w")
        #expect(claimed)
        _ = machine.loaded("w", instance)
        // A wake asked for while the driver that rests it is still ending: that driver relaunches it.
        let early = machine.wakeDormant("w", instance)
        #expect(early == nil)
        let relaunched = machine.driveRested("w", instance)
        #expect(relaunched.relaunch == "queue" && relaunched.senders.isEmpty)
        let second = machine.claimDrive("w")
        #expect(!second, "the relaunch's slot was not kept taken")
        #expect(machine.dormant("w") === instance && !machine.needsWake("w"))
        _ = machine.loaded("w", instance)
        // Rested with nothing pending: in memory, not driven, and a timer is to wake it.
        let rested = machine.driveRested("w", instance)
        #expect(rested.relaunch == nil)
        #expect(machine.slotCounts == (1, 1, 1) && machine.instance("w") === instance && machine.needsWake("w"))
        // The first wake takes the slot; a second finds a driver on its way.
        let woken = machine.wakeDormant("w", instance)
        let again = machine.wakeDormant("w", instance)
        let driven = machine.claimDrive("w")
        #expect(woken == "queue" && again == nil && !machine.needsWake("w") && !driven)
        let parkedWhileWaking = machine.reserveDormant("w", instance)
        #expect(parkedWhileWaking == .busy, "parked while a driver wakes it")
        _ = machine.loaded("w", instance)
        #expect(machine.slotCounts == (1, 1, 0))
        // Rested again, then parked: the slot is taken for that, and no wake gets in.
        _ = machine.driveRested("w", instance)
        let reserved = machine.reserveDormant("w", instance)
        let wakeWhileParking = machine.wakeDormant("w", instance)
        #expect(reserved == .reserved && wakeWhileParking == nil && !machine.needsWake("w"))
        let senders = machine.driveEnded("w")
        #expect(senders.isEmpty && !machine.isClaimed("w"))
        // Taken over (a reset): the dormant instance leaves the slot with it.
        let claimedOther = machine.claimDrive("v")
        #expect(claimedOther)
        let other = Instance()
        _ = machine.loaded("v", other)
        // Parking asked for before its resting driver let the slot go: asked again later.
        let beforeRest = machine.reserveDormant("v", other)
        #expect(beforeRest == .resting)
        _ = machine.driveRested("v", other)
        // Its claim lost with nobody driving it: the slot goes at once.
        let left = machine.dormantLeft("v", other)
        #expect(left == [] && !machine.isClaimed("v"))
        let stranger = Instance()
        let gone = machine.reserveDormant("v", stranger)
        #expect(gone == .busy, "a slot that is gone is nobody's to park")
        let claimedAgain = machine.claimDrive("v")
        #expect(claimedAgain)
        _ = machine.loaded("v", other)
        _ = machine.driveRested("v", other)
        let takeover = machine.claimDrive("v")
        let taken = machine.takeDormant("v")
        #expect(takeover && taken === other && machine.instance("v") == nil)
        // A stopped runtime keeps no dormant slot.
        _ = machine.stop()
        let afterStop = machine.driveRested("v", other)
        #expect(afterStop.relaunch == nil && !machine.isClaimed("v"))
    }

    @Test("a request for an unloaded workflow launches a driver once, and only while running and wakeable")
    func launching() throws {
        var machine = Machine()
        guard case .unavailable = machine.requestInstance("w", sender: "s", wakeable: true) else {
            Issue.record("a stopped runtime launched a driver")
            return
        }
        try machine.start("queue")
        guard case .unavailable = machine.requestInstance("w", sender: "s", wakeable: false) else {
            Issue.record("a finished workflow was launched")
            return
        }
        guard case .launch(let launcher) = machine.requestInstance("w", sender: "s1", wakeable: true) else {
            Issue.record("no driver was launched")
            return
        }
        #expect(launcher == "queue")
        guard case .wait = machine.requestInstance("w", sender: "s2", wakeable: true) else {
            Issue.record("a second request launched a second driver")
            return
        }
        // The launched driver takes the slot over with both senders.
        let value7 = machine.claimDrive("w")
        #expect(value7)
        let value8 = machine.loaded("w", Instance())
        #expect(value8 == ["s1", "s2"])
        _ = machine.suspend("x", Self.diverged)
        guard case .unavailable = machine.requestInstance("x", sender: "s", wakeable: true) else {
            Issue.record("a suspended workflow was launched")
            return
        }
    }

    @Test("a delivery to an unloaded workflow takes its slot (no driver, no room in memory); the next waits for it, then asks again")
    func reachingUnloaded() throws {
        var machine = Machine()
        guard case .unavailable = machine.reachInstance("w", wakeable: true) else {
            Issue.record("a stopped runtime reserved a slot")
            return
        }
        try machine.start("queue")
        guard case .unavailable = machine.reachInstance("w", wakeable: false) else {
            Issue.record("a finished workflow's slot was reserved")
            return
        }
        guard case .reserved = machine.reachInstance("w", wakeable: true) else {
            Issue.record("the slot was not reserved")
            return
        }
        let driven = machine.claimDrive("w")
        #expect(!driven, "a driver started while a delivery held the slot")
        guard case .wait = machine.reachInstance("w", wakeable: true) else {
            Issue.record("a second delivery took the slot too")
            return
        }
        let queued = machine.waitForSlot("w", sender: "s1")
        #expect(queued)
        let retrying = machine.driveEnded("w")
        #expect(retrying == ["s1"])
        let gone = machine.waitForSlot("w", sender: "s2")
        #expect(!gone, "a sender was queued on a slot nobody holds")
        // A loaded instance is used at once, and not waited for.
        _ = machine.claimDrive("w")
        let instance = Instance()
        _ = machine.loaded("w", instance)
        guard case .use(let found) = machine.reachInstance("w", wakeable: true), found === instance else {
            Issue.record("the loaded instance was not used")
            return
        }
        let waitedForLoaded = machine.waitForSlot("w", sender: "s3")
        #expect(!waitedForLoaded)
        _ = machine.suspend("x", Self.diverged)
        guard case .unavailable = machine.reachInstance("x", wakeable: true) else {
            Issue.record("a suspended workflow's slot was reserved")
            return
        }
    }

    @Test("a sender waits for a departing instance to go; a gone one is not waited for")
    func waitingUntilGone() throws {
        var machine = Machine()
        try machine.start("queue")
        let old = Instance()
        let value9 = machine.claimDrive("w")
        #expect(value9)
        _ = machine.loaded("w", old)
        let value10 = machine.waitUntilGone("w", old, sender: "s")
        #expect(value10)
        let value11 = machine.waitUntilGone("w", Instance(), sender: "t")
        #expect(!value11, "waited for an instance that does not drive it")
        let value12 = machine.driveEnded("w")
        #expect(value12 == ["s"])
        let value13 = machine.waitUntilGone("w", old, sender: "u")
        #expect(!value13)
    }

    @Test("result waiters get the outcome once; removed ones get nothing")
    func resultWaiters() throws {
        var machine = Machine()
        let first = machine.newWaiterID()
        let second = machine.newWaiterID()
        #expect(first != second)
        machine.addResultWaiter("w", first, "one")
        machine.addResultWaiter("w", second, "two")
        #expect(machine.resultWaiterCount("w") == 2 && machine.resultWaiterCount() == 2)
        let value14 = machine.removeResultWaiter("w", first)
        #expect(value14 == "one")
        let value15 = machine.removeResultWaiter("w", first)
        #expect(value15 == nil)
        let value16 = machine.takeResultWaiters("w")
        #expect(Array(value16) == ["two"])
        let value17 = machine.takeResultWaiters("w")
        #expect(value17.isEmpty)
        machine.addResultWaiter("v", machine.newWaiterID(), "three")
        let value18 = machine.suspend("v", Self.diverged)
        #expect(Array(value18) == ["three"], "suspending answers the waiters")
        // One waiter is kept inline and more beside it: every mix of adds and removes answers
        // each waiter once.
        let (a, b, c) = (machine.newWaiterID(), machine.newWaiterID(), machine.newWaiterID())
        machine.addResultWaiter("m", a, "a")
        machine.addResultWaiter("m", b, "b")
        let removedFirst = machine.removeResultWaiter("m", a)
        #expect(removedFirst == "a")
        machine.addResultWaiter("m", c, "c")
        machine.addResultWaiter("m", a, "a2")
        #expect(machine.resultWaiterCount("m") == 3)
        let removedMiddle = machine.removeResultWaiter("m", c)
        #expect(removedMiddle == "c")
        #expect(machine.takeResultWaiters("m").sorted() == ["a2", "b"])
        machine.addResultWaiter("d", a, "x")
        machine.addResultWaiter("d", a, "y")
        #expect(Array(machine.takeResultWaiters("d")) == ["y"], "a waiter number names one waiter")
        #expect(machine.resultWaiterCount() == 0)
    }

    @Test("result waiters outlive the slot they came to, and meet those that came before it")
    func resultWaitersAcrossSlots() throws {
        var machine = Machine()
        try machine.start("queue")
        // Before any slot: waiting for a workflow nobody here drives.
        machine.addResultWaiter("w", machine.newWaiterID(), "before")
        #expect(machine.awaitedElsewhere == ["w"])
        // A driver takes it and loads it: a waiter now comes to the slot.
        let launched = machine.launchCreated("w")
        #expect(launched.reserved)
        let during = machine.newWaiterID()
        let live = machine.addResultWaiter("w", during, "during")
        #expect(live)
        #expect(machine.resultWaiterCount("w") == 2 && machine.resultWaiterCount() == 2)
        #expect(machine.awaitedElsewhere.isEmpty)
        // The driver returns unanswered (the workflow parked): both still wait, with no slot.
        _ = machine.driveEnded("w")
        #expect(machine.resultWaiterCount("w") == 2)
        #expect(machine.awaitedElsewhere == ["w"])
        // A removed waiter is gone wherever it waits.
        let removed = machine.removeResultWaiter("w", during)
        #expect(removed == "during")
        let removedAgain = machine.removeResultWaiter("w", during)
        #expect(removedAgain == nil)
        // Driven again and answered: the one that waited since before any slot gets it, and
        // so does one that came to the new slot.
        let claimed = machine.claimDrive("w")
        #expect(claimed)
        machine.addResultWaiter("w", machine.newWaiterID(), "again")
        let answered = machine.takeResultWaiters("w").sorted()
        #expect(answered == ["again", "before"])
        #expect(machine.resultWaiterCount() == 0 && machine.awaitedElsewhere.isEmpty)
        // Stopping answers the waiters of slots too.
        let second = machine.launchCreated("s")
        #expect(second.reserved)
        machine.addResultWaiter("s", machine.newWaiterID(), "slot")
        machine.addResultWaiter("t", machine.newWaiterID(), "elsewhere")
        let stopped = machine.stop()
        #expect(stopped.resultWaiters.sorted() == ["elsewhere", "slot"])
    }

    @Test("workflows stopped by a full store are retried once their drivers have returned")
    func fullStoreRetry() throws {
        var machine = Machine()
        try machine.start("queue")
        let value19 = machine.claimDrive("a")
        #expect(value19)
        _ = machine.suspend("a", Self.full)
        _ = machine.suspend("b", Self.full)
        _ = machine.suspend("c", Self.diverged)
        let value20 = machine.takeStoppedByStore()
        #expect(value20 == ["b"], "a workflow still being unwound, or suspended for another reason, was retried")
        #expect(machine.suspension("b") == nil)
        _ = machine.driveEnded("a")
        let value21 = machine.takeStoppedByStore()
        #expect(value21 == ["a"])
        let value22 = machine.takeStoppedByStore()
        #expect(value22.isEmpty)
        #expect(machine.allSuspensions.keys.sorted() == ["c"])
    }
}
