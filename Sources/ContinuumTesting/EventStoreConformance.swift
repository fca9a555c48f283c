public import Continuum
import Synchronization

/// What a store's tests provide so that ``EventStoreConformance`` can check it.
public protocol EventStoreFixture: Sendable {
    /// A new, empty store. A store whose claims expire reads time from `clock`.
    func makeStore(clock: ManualClock) async throws -> any EventStore

    /// Closes `store` and opens it again on the same data, or returns `nil` for a store whose
    /// data does not outlive it (then the check of durability across reopening is skipped).
    func reopen(_ store: any EventStore, clock: ManualClock) async throws -> (any EventStore)?

    /// Damages the stored bytes of event `sequence` of workflow `id`, as a failing disk would.
    func corrupt(_ store: any EventStore, id: String, sequence: UInt32) async throws

    /// Releases what `makeStore` made (the store is closed already).
    func dispose(_ store: any EventStore) async
}

extension EventStoreFixture {
    public func dispose(_ store: any EventStore) async {}
}

/// A behaviour every ``/Continuum/EventStore`` must have, checked against a store from an ``EventStoreFixture``.
///
/// Run every check as a parameterized test, one test case per check:
///
/// ```swift
/// @Test(arguments: EventStoreConformance.checks)
/// func conforms(_ check: EventStoreConformance.Check) async throws {
///     try await check.run(on: MyStoreFixture())
/// }
/// ```
///
/// A failing check throws ``ConformanceFailure`` saying what the store did instead.
public enum EventStoreConformance {
    /// One behaviour, with the code that checks it.
    public struct Check: Sendable, CustomStringConvertible {
        /// What the store must do.
        public let name: String
        let body: @Sendable (Context) async throws -> Void

        public var description: String { name }

        /// Runs the check on a new store from `fixture`, closing and disposing of it afterwards.
        public func run(on fixture: any EventStoreFixture) async throws {
            let clock = ManualClock()
            let store = try await fixture.makeStore(clock: clock)
            let context = Context(check: name, fixture: fixture, clock: clock, store: store)
            let result: Result<Void, any Error>
            do {
                try await body(context)
                result = .success(())
            } catch {
                result = .failure(error)
            }
            let current = context.current
            await current.close()
            await fixture.dispose(current)
            try result.get()
        }
    }

    /// Every check, in the order they build on each other.
    public static let checks: [Check] = [
        Check(name: "create stores the start and claims the new workflow; the same id again returns it unchanged", body: createIsIdempotent),
        Check(name: "streams are numbered in creation order and listing pages through them", body: listingPages),
        Check(name: "events come back in order with every field of every kind", body: eventsRoundTrip),
        Check(name: "an append that does not follow the stored stream is refused alone; the rest commits", body: gapRefused),
        Check(name: "appends an actor submits one after another without awaiting are applied in that order", body: submissionOrder),
        Check(name: "a thousand concurrent appends are all stored", body: concurrentAppends),
        Check(name: "a status change moves the workflow between lists and counts", body: statusChanges),
        Check(name: "a released running workflow is parked: running, not runnable, counted parked; a claim takes it back", body: parking),
        Check(name: "the due-time index lists timers in due order and follows adds and removes", body: timerIndex),
        Check(name: "a new claim supersedes the old one: its token is refused and renewing reports it lost", body: claimSupersedes),
        Check(name: "after a release appends are refused until the workflow is claimed again", body: releaseEndsClaim),
        Check(name: "a finished workflow can be claimed and keeps its status; an unknown one cannot", body: claimNeedsUnfinished),
        Check(name: "a new workflow can be created with a history and timers in the same transaction", body: createWithHistory),
        Check(name: "leases: another owner's live claim stands; once it runs out the workflow is taken and the old owner cannot write", body: leases),
        Check(name: "a lapsed lease nobody took is still the claim: its owner appends and renews; only another's claim ends it", body: lapsedLease),
        Check(
            name: "claimAvailable takes lapsed claims and parked workflows with overdue timers, nothing live, finished or not yet due; keeps the caller's own token",
            body: claimAvailable),
        Check(name: "two runtimes claiming available work at once get disjoint shares of it", body: claimAvailableShares),
        Check(
            name: "a shared store's inbox keeps messages for the workflow's holder, or anyone when nobody holds it, oldest first; the first settlement stands",
            body: inbox),
        Check(name: "ids of the longest declared length, and ids that differ in any byte, are distinct workflows", body: idLimits),
        Check(name: "a damaged value is reported as corruptedData naming the workflow; others still load", body: corruption),
        Check(
            name: "a snapshot is written with its append and replaced by the next; loadRecent returns it and the events after it, load every event",
            body: snapshots),
        Check(
            name: "a shared store's queues admit in order across owners, by priority, within partitions and the rate; a dead claim's entries stop counting",
            body: sharedQueues),
        Check(name: "what was acknowledged survives closing and reopening the store", body: durability),
        Check(name: "after close, writes and reads fail with storeClosed", body: closing),
    ]

    // MARK: The checks

    private static func createIsIdempotent(_ c: Context) async throws {
        let started = c.start("t", input: Array("[1]".utf8))
        guard case .created(let claim) = try await c.store.create(CreateRequest(id: "a", type: "t", started: started, owner: c.owner)) else {
            throw c.failure("a new id was not created")
        }
        try c.expect(claim.token.owner == c.owner, "the new workflow is claimed for the request's owner, got \(claim.token)")
        let again = try await c.store.create(CreateRequest(id: "a", type: "other", started: c.start("other"), owner: c.other))
        guard case .existing(let stream, let summary) = again else { throw c.failure("the same id was created twice: \(again)") }
        try c.expect(stream == claim.stream && summary.type == "t" && summary.status == .running, "the existing workflow came back changed: \(summary)")
        let loaded = try c.require(try await c.store.load(id: "a"), "the created workflow does not load")
        try c.expect(loaded.events == [started], "the stored start differs: \(loaded.events)")
        try c.expect(loaded.summary.createdAt == started.timestamp, "createdAt is not the start's timestamp")
        try c.expect(try await c.store.summary(id: "a")?.id == "a", "summary(id:) does not find the workflow")
        try c.expect(try await c.store.load(id: "missing") == nil, "an unknown id loads")
        try c.expect(try await c.store.summary(id: "missing") == nil, "an unknown id has a summary")
        // The claim is live: appending under it works.
        try await c.store.append(AppendRequest(fence: claim, id: "a", events: [c.step(1, "s")]))
    }

    private static func listingPages(_ c: Context) async throws {
        var streams: [StreamID] = []
        for index in 0..<25 { streams.append(try await c.create("w\(index)").stream) }
        try c.expect(streams == streams.sorted() && Set(streams).count == 25, "streams are not numbered in creation order: \(streams)")
        for status in [WorkflowStatus?.none, .running] {
            var seen: [String] = []
            var after: StreamID?
            while true {
                let page = try await c.store.list(status: status, after: after, limit: 10)
                seen += page.map(\.summary.id)
                guard page.count == 10 else { break }
                after = page.last?.stream
            }
            try c.expect(seen == (0..<25).map { "w\($0)" }, "paging (status \(status.map { "\($0)" } ?? "any")) returned \(seen)")
        }
        try c.expect(try await c.store.list(status: .completed, after: nil, limit: 10).isEmpty, "a running workflow is listed as completed")
        var runnable: [String] = []
        var after: StreamID?
        repeat {
            let page = try await c.store.runnable(after: after, limit: 7)
            runnable += page.map(\.summary.id)
            after = page.count == 7 ? page.last?.stream : nil
        } while after != nil
        // Claims made by `create` may be live in a store with leases; without leases all are runnable.
        if c.store.limits.leaseDuration == nil {
            try c.expect(runnable == (0..<25).map { "w\($0)" }, "runnable paging returned \(runnable)")
        }
    }

    private static func eventsRoundTrip(_ c: Context) async throws {
        let claim = try await c.create("w", input: Array("{\"x\":1}".utf8), traceContext: ["traceparent": "00-abc-def-01"])
        let step = StepRecord(name: "step ✓", occurrence: 2, index: 7, concurrent: true)
        let failure = FailureRecord(type: "Module.Error", message: "went wrong: \u{1F4A5}")
        let kinds: [HistoryEvent.Kind] = [
            .stepCompleted(step, result: Array("\"ok\"".utf8)),
            .stepFailed(step, failure: failure),
            .stepRetrying(step, attempt: 3, failure: failure, nextAttemptAt: 1_767_225_600_123_456_789),
            .waitStarted(step, wait: .timer, due: -5),
            .waitStarted(StepRecord(name: "event:go", occurrence: 0, index: 8, concurrent: false), wait: .event("go"), due: nil),
            .eventReceived(name: "go", payload: Array("null".utf8), dedupKey: "key-1"),
            .eventReceived(name: "go", payload: [], dedupKey: nil),
            .waitEnded(StepKey(name: "step ✓", occurrence: 2), outcome: .fired(latenessNanoseconds: 12)),
            .waitEnded(StepKey(name: "a", occurrence: 0), outcome: .received(sequence: 6)),
            .waitEnded(StepKey(name: "b", occurrence: 1), outcome: .timedOut),
            .waitEnded(StepKey(name: "c", occurrence: 0), outcome: .cancelled),
            .cancelRequested(reason: "no longer needed"),
            .workflowCancelled(reason: "no longer needed"),
        ]
        let events = kinds.enumerated().map { HistoryEvent(sequence: UInt32($0.offset + 1), timestamp: Int64($0.offset) * 1_000_003, kind: $0.element) }
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: Array(events.prefix(5))))
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: Array(events.dropFirst(5))))
        let loaded = try c.require(try await c.store.load(id: "w"), "the workflow does not load")
        try c.expect(Array(loaded.events.dropFirst()) == events, "events came back changed: \(loaded.events)")
        try c.expect(
            loaded.events.first?.kind == .workflowStarted(type: "t", input: Array("{\"x\":1}".utf8), traceContext: ["traceparent": "00-abc-def-01"]),
            "the start came back changed")
    }

    private static func gapRefused(_ c: Context) async throws {
        let w = try await c.create("w")
        let v = try await c.create("v")
        async let bad = c.errorOf { try await c.store.append(AppendRequest(fence: w, id: "w", events: [c.step(5, "late")])) }
        async let good = c.errorOf { try await c.store.append(AppendRequest(fence: v, id: "v", events: [c.step(1, "a")])) }
        let (badError, goodError) = await (bad, good)
        try c.expect(badError != nil, "an append leaving a gap was accepted")
        try c.expect(goodError == nil, "a valid append in the same batch failed: \(goodError.map { "\($0)" } ?? "")")
        try c.expect(try await c.store.load(id: "w")?.events.count == 1, "the refused append wrote something")
        try c.expect(try await c.store.load(id: "v")?.events.count == 2, "the valid append was not stored")
        let duplicate = await c.errorOf { try await c.store.append(AppendRequest(fence: v, id: "v", events: [c.step(1, "again")])) }
        try c.expect(duplicate != nil, "an event was stored twice at one sequence number")
        try c.expect(try await c.store.load(id: "v")?.events.last?.kind == c.step(1, "a").kind, "a refused duplicate replaced the stored event")
    }

    /// An actor that submits appends for one workflow, each numbered in the actor's turn.
    private actor Submitter {
        let store: any EventStore
        let claim: Claim
        let context: Context
        var next: UInt32 = 1

        init(_ context: Context, claim: Claim) {
            self.context = context
            self.store = context.store
            self.claim = claim
        }

        func submit() async throws {
            let event = context.step(next, "s\(next)")
            next += 1
            try await store.append(AppendRequest(fence: claim, id: "ordered", events: [event]))
        }
    }

    private static func submissionOrder(_ c: Context) async throws {
        let submitter = Submitter(c, claim: try await c.create("ordered"))
        // Hundreds of turns interleave; each append must land in the order its turn ran.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<500 { group.addTask { try await submitter.submit() } }
            try await group.waitForAll()
        }
        let loaded = try c.require(try await c.store.load(id: "ordered"), "the workflow does not load")
        try c.expect(loaded.events.map(\.sequence) == Array(0...500), "appends were applied out of order")
    }

    private static func concurrentAppends(_ c: Context) async throws {
        let claims = try await withThrowingTaskGroup(of: (Int, Claim).self) { group in
            for index in 0..<1000 { group.addTask { (index, try await c.create("w\(index)")) } }
            return try await group.reduce(into: [Int: Claim]()) { $0[$1.0] = $1.1 }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, claim) in claims {
                group.addTask { try await c.store.append(AppendRequest(fence: claim, id: "w\(index)", events: [c.step(1, "s")])) }
            }
            try await group.waitForAll()
        }
        for index in 0..<1000 where try await c.store.load(id: "w\(index)")?.events.count != 2 {
            throw c.failure("workflow w\(index) lost its append")
        }
        let counts = try await c.store.counts()
        try c.expect(counts[.running] == 1000, "counts say \(counts)")
    }

    private static func statusChanges(_ c: Context) async throws {
        let w = try await c.create("w")
        _ = try await c.create("still-running")
        let failed = try await c.create("failed")
        let started = try await c.store.counts()
        try c.expect(started == StatusCounts(byStatus: [.running: 3]), "counts after three starts: \(started)")
        try await c.store.append(AppendRequest(fence: w, id: "w", events: [c.step(1, "a")]))
        try await c.store.append(
            AppendRequest(
                fence: w, id: "w", events: [HistoryEvent(sequence: 2, timestamp: 99, kind: .workflowCompleted(output: [4]))], status: .completed,
                release: true))
        try await c.store.append(
            AppendRequest(
                fence: failed, id: "failed", events: [HistoryEvent(sequence: 1, timestamp: 5, kind: .workflowFailed(FailureRecord(type: "E", message: "m")))],
                status: .failed, release: true))
        let summary = try c.require(try await c.store.summary(id: "w"), "the workflow vanished")
        try c.expect(summary.status == .completed && summary.updatedAt == 99, "the summary did not follow: \(summary)")
        try c.expect(try await c.store.list(status: .completed, after: nil, limit: 10).map(\.summary.id) == ["w"], "completed list is wrong")
        try c.expect(try await c.store.list(status: .failed, after: nil, limit: 10).map(\.summary.id) == ["failed"], "failed list is wrong")
        try c.expect(try await c.store.list(status: .running, after: nil, limit: 10).map(\.summary.id) == ["still-running"], "running list is wrong")
        try c.expect(try await c.store.list(status: nil, after: nil, limit: 10).map(\.summary.id) == ["w", "still-running", "failed"], "the full list is wrong")
        let counts = try await c.store.counts()
        try c.expect(counts == StatusCounts(byStatus: [.running: 1, .completed: 1, .failed: 1]), "counts after finishing: \(counts)")
        try c.expect(try await c.store.runnable(after: nil, limit: 10).allSatisfy { $0.summary.status == .running }, "a finished workflow is runnable")
    }

    private static func parking(_ c: Context) async throws {
        let a = try await c.create("a")
        let b = try await c.create("b")
        try await c.store.release(a, id: "a")
        try await c.store.release(b, id: "b")
        try c.expect(try await c.store.runnable(after: nil, limit: 10).isEmpty, "a parked workflow is runnable")
        try c.expect(try await c.store.list(status: .running, after: nil, limit: 10).map(\.summary.id) == ["a", "b"], "parked workflows are not listed as running")
        try c.expect(try await c.store.summary(id: "a")?.status == .running, "a parked workflow is not running")
        let parkedCounts = try await c.store.counts()
        try c.expect(parkedCounts == StatusCounts(byStatus: [.running: 2], parked: 2), "counts: \(parkedCounts)")
        let claim = try c.require(try await c.store.claim("a", owner: c.owner), "a parked workflow cannot be claimed")
        try c.expect(claim.stream == a.stream && claim.token.epoch > a.token.epoch, "a new claim must have a larger epoch: \(a.token) then \(claim.token)")
        let runnable = try await c.store.runnable(after: nil, limit: 10).map(\.summary.id)
        try c.expect(c.store.limits.leaseDuration != nil || runnable == ["a"], "a claimed workflow is still parked: runnable \(runnable)")
        let claimedCounts = try await c.store.counts()
        try c.expect(claimedCounts.parked == 1, "counts: \(claimedCounts)")
        try await c.store.append(AppendRequest(fence: claim, id: "a", events: [c.step(1, "woken")]))
        // Finishing a parked workflow's history unparks it from the counts too.
        let other = try c.require(try await c.store.claim("b", owner: c.owner), "b cannot be claimed")
        try await c.store.append(
            AppendRequest(
                fence: other, id: "b", events: [HistoryEvent(sequence: 1, timestamp: 3, kind: .workflowCompleted(output: []))], status: .completed,
                release: true))
        let finishedCounts = try await c.store.counts()
        try c.expect(finishedCounts == StatusCounts(byStatus: [.running: 1, .completed: 1], parked: 0), "counts: \(finishedCounts)")
    }

    private static func timerIndex(_ c: Context) async throws {
        let a = try await c.create("a")
        let b = try await c.create("b")
        try await c.store.append(AppendRequest(fence: a, id: "a", events: [], timers: [.add(300), .add(-5)]))
        try await c.store.append(AppendRequest(fence: b, id: "b", events: [], timers: [.add(100), .add(300)]))
        let all = try await c.store.timers(after: nil, limit: 10)
        try c.expect(all.map(\.due) == [-5, 100, 300, 300], "timers are not in due order: \(all)")
        try c.expect(all.map(\.id) == ["a", "b", "a", "b"], "ties are not in stream order: \(all)")
        try c.expect(try await c.store.timers(after: all[1], limit: 10).map(\.id) == ["a", "b"], "timers(after:) is wrong")
        try c.expect(try await c.store.timers(after: nil, limit: 2).count == 2, "timers(limit:) is wrong")
        try await c.store.append(AppendRequest(fence: a, id: "a", events: [], timers: [.remove(300), .remove(-5)]))
        try c.expect(try await c.store.timers(after: nil, limit: 10).map(\.id) == ["b", "b"], "removed timers are still indexed")
    }

    private static func claimSupersedes(_ c: Context) async throws {
        let first = try await c.create("w")
        let second = try c.require(try await c.store.claim("w", owner: c.owner), "the owner cannot claim its own workflow again")
        try c.expect(second.token.epoch > first.token.epoch, "epochs must grow: \(first.token) then \(second.token)")
        let stale = await c.errorOf { try await c.store.append(AppendRequest(fence: first, id: "w", events: [c.step(1, "late")])) }
        try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "a superseded claim could append: \(stale.map { "\($0)" } ?? "no error")")
        try c.expect(try await c.store.load(id: "w")?.events.count == 1, "the refused append wrote something")
        try await c.store.append(AppendRequest(fence: second, id: "w", events: [c.step(1, "current")]))
        try c.expect(try await c.store.renew([first, second]) == [first], "renew must report exactly the superseded claim")
    }

    private static func releaseEndsClaim(_ c: Context) async throws {
        let claim = try await c.create("w")
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(1, "a")], release: true))
        let late = await c.errorOf { try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(2, "b")])) }
        try c.expect((late as? ContinuumError)?.code == .ownershipLost, "a released claim could append: \(late.map { "\($0)" } ?? "no error")")
        try c.expect(try await c.store.renew([claim]) == [claim], "renew must report a released claim lost")
        let again = try c.require(try await c.store.claim("w", owner: c.other), "a released workflow cannot be claimed")
        try await c.store.append(AppendRequest(fence: again, id: "w", events: [c.step(2, "b")]))
        try c.expect(try await c.store.load(id: "w")?.events.count == 3, "appends under the new claim were not stored")
    }

    private static func claimNeedsUnfinished(_ c: Context) async throws {
        let claim = try await c.create("done")
        try await c.store.append(
            AppendRequest(
                fence: claim, id: "done", events: [HistoryEvent(sequence: 1, timestamp: 2, kind: .workflowCompleted(output: []))], status: .completed,
                release: true))
        let finished = try c.require(try await c.store.claim("done", owner: c.owner), "a finished workflow could not be claimed")
        try c.expect(try await c.store.summary(id: "done")?.status == .completed, "claiming changed a finished workflow's status")
        try c.expect(try await c.store.runnable(after: nil, limit: 10).isEmpty, "a claimed finished workflow is runnable")
        try await c.store.release(finished, id: "done")
        let counts = try await c.store.counts()
        try c.expect(counts == StatusCounts(byStatus: [.completed: 1]), "claiming and releasing a finished workflow changed the counts: \(counts)")
        try c.expect(try await c.store.claim("missing", owner: c.owner) == nil, "an unknown workflow was claimed")
    }

    private static func createWithHistory(_ c: Context) async throws {
        let history = [c.step(1, "copied"), HistoryEvent(sequence: 2, timestamp: 3, kind: .waitStarted(
            StepRecord(name: "sleep", occurrence: 0, index: 1, concurrent: false), wait: .timer, due: 77))]
        let outcome = try await c.store.create(CreateRequest(id: "fork", type: "t", started: c.start("t"), owner: c.owner, history: history, timers: [.add(77)]))
        guard case .created(let claim) = outcome else { throw c.failure("the fork was not created: \(outcome)") }
        let loaded = try c.require(try await c.store.load(id: "fork"), "the fork does not load")
        try c.expect(Array(loaded.events.dropFirst()) == history, "the fork's history came back changed: \(loaded.events)")
        try c.expect(try await c.store.timers(after: nil, limit: 10).map(\.due) == [77], "the fork's timer is not indexed")
        try await c.store.append(AppendRequest(fence: claim, id: "fork", events: [c.step(3, "next")]))
        let misnumbered = await c.errorOf {
            _ = try await c.store.create(CreateRequest(id: "bad", type: "t", started: c.start("t"), owner: c.owner, history: [c.step(2, "gap")]))
        }
        try c.expect(misnumbered != nil, "a history not numbered from 1 was stored")
        try c.expect(try await c.store.summary(id: "bad") == nil, "a refused create left a workflow behind")
    }

    private static func leases(_ c: Context) async throws {
        let held = try await c.create("w")
        guard let lease = c.store.limits.leaseDuration else {
            // One process owns the store: a claim by anyone supersedes, and the old token is refused.
            let taken = try c.require(try await c.store.claim("w", owner: c.other), "a store without leases refused a claim")
            let stale = await c.errorOf { try await c.store.append(AppendRequest(fence: held, id: "w", events: [c.step(1, "late")])) }
            try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "the superseded owner could append")
            try await c.store.append(AppendRequest(fence: taken, id: "w", events: [c.step(1, "new owner")]))
            return
        }
        try c.expect(try await c.store.claim("w", owner: c.other) == nil, "another owner took a workflow whose lease is live")
        try c.expect(try await c.store.runnable(after: nil, limit: 10).isEmpty, "a workflow with a live claim is runnable")
        // Renewed before it runs out, the lease holds.
        c.clock.advance(by: lease * 0.75)
        try c.expect(try await c.store.renew([held]).isEmpty, "a live lease could not be renewed")
        c.clock.advance(by: lease * 0.75)
        try c.expect(try await c.store.claim("w", owner: c.other) == nil, "a renewed lease ran out early")
        // Not renewed, it runs out: the workflow is runnable and another owner takes it.
        c.clock.advance(by: lease * 1.5)
        try c.expect(try await c.store.runnable(after: nil, limit: 10).map(\.summary.id) == ["w"], "a workflow whose lease ran out is not runnable")
        let taken = try c.require(try await c.store.claim("w", owner: c.other), "a workflow whose lease ran out cannot be claimed")
        let stale = await c.errorOf { try await c.store.append(AppendRequest(fence: held, id: "w", events: [c.step(1, "late")])) }
        try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "the owner whose lease ran out could append")
        try c.expect(try await c.store.renew([held, taken]) == [held], "renew must report the expired claim lost")
        try await c.store.append(AppendRequest(fence: taken, id: "w", events: [c.step(1, "new owner")]))
    }

    private static func lapsedLease(_ c: Context) async throws {
        guard let lease = c.store.limits.leaseDuration else { return }
        let held = try await c.create("w")
        c.clock.advance(by: lease * 1.5)
        // Nobody took it: the token is current, so it writes and renews.
        try await c.store.append(AppendRequest(fence: held, id: "w", events: [c.step(1, "late but current")]))
        try c.expect(try await c.store.renew([held]).isEmpty, "a lapsed claim nobody took could not be renewed")
        try c.expect(try await c.store.claim("w", owner: c.other) == nil, "a renewed lease could be taken")
        // Lapsed again and taken: now the old token is refused.
        c.clock.advance(by: lease * 1.5)
        let taken = try c.require(try await c.store.claim("w", owner: c.other), "a lapsed lease could not be taken")
        let stale = await c.errorOf { try await c.store.append(AppendRequest(fence: held, id: "w", events: [c.step(2, "stale")])) }
        try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "the owner whose workflow was taken could append: \(stale.map { "\($0)" } ?? "no error")")
        try c.expect(try await c.store.renew([held]) == [held], "renew must report a taken claim lost")
        try await c.store.append(AppendRequest(fence: taken, id: "w", events: [c.step(2, "new owner")]))
    }

    private static func claimAvailable(_ c: Context) async throws {
        guard let lease = c.store.limits.leaseDuration else {
            // One process owns the store: what it has to run is what recovery would run.
            _ = try await c.create("a")
            let parked = try await c.create("b")
            try await c.store.release(parked, id: "b")
            let claimed = try await c.store.claimAvailable(owner: c.other, overdue: .zero, limit: 10)
            try c.expect(claimed.map(\.id) == ["a"], "claimAvailable without leases: \(claimed.map(\.id))")
            try await c.store.append(AppendRequest(fence: claimed[0].claim, id: "a", events: [c.step(1, "claimed")]))
            return
        }
        let start = c.clock.now()
        let lapsed = try await c.create("lapsed")
        let sleeper = try await c.create("sleeper")
        let early = try await c.create("early")
        let done = try await c.create("done")
        try await c.store.append(AppendRequest(fence: sleeper, id: "sleeper", events: [], timers: [.add(start + lease.nanoseconds / 2)], release: true))
        try await c.store.append(AppendRequest(fence: early, id: "early", events: [], timers: [.add(start + lease.nanoseconds * 10)], release: true))
        try await c.store.append(
            AppendRequest(
                fence: done, id: "done", events: [HistoryEvent(sequence: 1, timestamp: 3, kind: .workflowCompleted(output: []))], status: .completed,
                release: true))
        c.clock.advance(by: lease * 1.5)
        _ = try await c.create("live")
        let first = try await c.store.claimAvailable(owner: c.other, overdue: lease / 4, limit: 10)
        try c.expect(Set(first.map(\.id)) == ["lapsed", "sleeper"], "claimed \(first.map(\.id)), not the lapsed and the overdue one")
        try c.expect(first.allSatisfy { $0.claim.token.owner == c.other }, "claims for another owner: \(first)")
        let counts = try await c.store.counts()
        try c.expect(counts.parked == 1, "a claimed parked workflow is still counted parked: \(counts)")
        let stale = await c.errorOf { try await c.store.append(AppendRequest(fence: lapsed, id: "lapsed", events: [c.step(1, "stale")])) }
        try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "the lapsed owner could append after the workflow was claimed")
        let claim = try c.require(first.first { $0.id == "lapsed" }?.claim, "no claim for 'lapsed'")
        try await c.store.append(AppendRequest(fence: claim, id: "lapsed", events: [c.step(1, "claimed")]))
        try c.expect(try await c.store.claimAvailable(owner: c.owner, overdue: lease / 4, limit: 10).isEmpty, "live claims were taken")
        // All lapse: the caller's own come back with their tokens; the others' get new epochs.
        c.clock.advance(by: lease * 1.5)
        let one = try await c.store.claimAvailable(owner: c.other, overdue: lease / 4, limit: 1)
        try c.expect(one.count == 1, "limit 1 claimed \(one.count)")
        let rest = try await c.store.claimAvailable(owner: c.other, overdue: lease / 4, limit: 10)
        let second = one + rest
        try c.expect(Set(second.map(\.id)) == ["lapsed", "sleeper", "live"], "claimed \(second.map(\.id)) after all lapsed")
        for workflow in first {
            let again = second.first { $0.id == workflow.id }
            try c.expect(again?.claim == workflow.claim, "the caller's own lapsed claim on '\(workflow.id)' changed: \(workflow.claim) then \(String(describing: again))")
        }
        try await c.store.append(AppendRequest(fence: claim, id: "lapsed", events: [c.step(2, "same token")]))
    }

    private static func claimAvailableShares(_ c: Context) async throws {
        guard let lease = c.store.limits.leaseDuration else { return }
        let ids = (0..<60).map { "w\($0)" }
        for id in ids { _ = try await c.create(id) }
        c.clock.advance(by: lease * 1.5)
        let store = c.store
        let owners = (0..<3).map { OwnerID("sharer-\($0)") }
        let shares = try await withThrowingTaskGroup(of: [ClaimedWorkflow].self) { group in
            for owner in owners {
                group.addTask {
                    var mine: [ClaimedWorkflow] = []
                    while true {
                        let page = try await store.claimAvailable(owner: owner, overdue: .zero, limit: 7)
                        if page.isEmpty { return mine }
                        mine += page
                    }
                }
            }
            return try await group.reduce(into: [[ClaimedWorkflow]]()) { $0.append($1) }
        }
        let all = shares.flatMap { $0.map(\.id) }
        try c.expect(all.count == ids.count && Set(all) == Set(ids), "shares overlap or miss: \(shares.map { $0.map(\.id) })")
    }

    private static func inbox(_ c: Context) async throws {
        // A store one process owns has no inbox: that process runs every workflow.
        guard c.store.limits.leaseDuration != nil else { return }
        _ = try await c.create("held")
        let parked = try await c.create("parked")
        try await c.store.release(parked, id: "parked")
        let first = try await c.store.post(.event(name: "go", payload: Array("1".utf8), dedupKey: nil), to: "held")
        let second = try await c.store.post(.cancel(by: "ops", reason: "stop"), to: "held")
        let third = try await c.store.post(.event(name: "go", payload: [], dedupKey: "k"), to: "parked")
        try c.expect(first < second && second < third, "inbox numbers do not grow in posting order: \(first), \(second), \(third)")
        let unknown = await c.errorOf { _ = try await c.store.post(.cancel(by: nil, reason: "x"), to: "missing") }
        try c.expect((unknown as? ContinuumError)?.code == .unknownWorkflow, "posting to an unknown workflow: \(unknown.map { "\($0)" } ?? "accepted")")

        let mine = try await c.store.pendingInbox(for: c.owner, limit: 10)
        try c.expect(mine.map(\.number) == [first, second, third], "the holder's pending messages: \(mine.map(\.number))")
        try c.expect(mine[0].kind == .event(name: "go", payload: Array("1".utf8), dedupKey: nil) && mine[0].workflowID == "held", "an event came back as \(mine[0])")
        try c.expect(mine[0].dedupKey == "continuum.inbox.\(first)" && mine[2].dedupKey == "k", "dedup keys: \(mine.map(\.dedupKey))")
        try c.expect(mine[1].kind == .cancel(by: "ops", reason: "stop"), "a cancellation came back as \(mine[1])")
        let others = try await c.store.pendingInbox(for: c.other, limit: 10)
        try c.expect(others.map(\.number) == [third], "another owner sees \(others.map(\.number)); only the unheld workflow's message is its business")
        try c.expect(try await c.store.pendingInbox(for: c.owner, limit: 1).count == 1, "pendingInbox(limit:) is not respected")

        try c.expect(try await c.store.outcome(of: first) == nil, "an unsettled message has an outcome")
        try await c.store.settle(first, with: InboxOutcome(sequence: 3))
        try await c.store.settle(first, with: InboxOutcome(errorCode: "late", errorMessage: "second settlement"))
        try c.expect(try await c.store.outcome(of: first) == InboxOutcome(sequence: 3), "the first settlement did not stand")
        try await c.store.settle(second, with: InboxOutcome(refusal: ContinuumError(.workflowFinished, "done")))
        try c.expect(try await c.store.outcome(of: second)?.error?.code == .workflowFinished, "a refusal's code is lost")
        try c.expect(try await c.store.pendingInbox(for: c.owner, limit: 10).map(\.number) == [third], "settled messages are still pending")
    }

    private static func idLimits(_ c: Context) async throws {
        let limit = c.store.limits.maxWorkflowIDBytes
        let longest = String(repeating: "é", count: limit / 2) + String(repeating: "x", count: limit % 2)
        try c.expect(longest.utf8.count == limit, "test id has \(longest.utf8.count) bytes")
        let odd = ["a\u{0}b", "a\u{0}c", "e\u{301}", "\u{E9}", "../etc", "\u{202E}txt", "🧪", longest]
        for id in odd { _ = try await c.create(id) }
        for id in odd {
            let loaded = try c.require(try await c.store.load(id: id), "id \(Array(id.utf8)) does not load")
            try c.expect(Array(loaded.summary.id.utf8) == Array(id.utf8), "id \(Array(id.utf8)) came back as \(Array(loaded.summary.id.utf8))")
        }
        let listed = try await c.store.list(status: nil, after: nil, limit: 100).map { Array($0.summary.id.utf8) }
        try c.expect(listed == odd.map { Array($0.utf8) }, "listing returned \(listed)")
    }

    private static func corruption(_ c: Context) async throws {
        let damaged = try await c.create("damaged", input: Array("\"important\"".utf8))
        try await c.store.append(AppendRequest(fence: damaged, id: "damaged", events: [c.step(1, "a")]))
        _ = try await c.create("healthy")
        try await c.fixture.corrupt(c.store, id: "damaged", sequence: 1)
        let error = await c.errorOf { _ = try await c.store.load(id: "damaged") }
        guard let error = error as? ContinuumError, error.code == .corruptedData else {
            throw c.failure("a damaged event was not reported as corruptedData: \(error.map { "\($0)" } ?? "it loaded")")
        }
        try c.expect(error.message.contains("damaged"), "the error does not name the workflow: \(error.message)")
        try c.expect(try await c.store.load(id: "healthy")?.events.count == 1, "another workflow no longer loads")
    }

    private static func snapshots(_ c: Context) async throws {
        let claim = try await c.create("w")
        try c.expect(try await c.store.loadRecent(id: "missing") == nil, "an unknown id loads")
        let first = WorkflowSnapshot(through: 4, bytes: [1, 2, 3])
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: (1...3).map { c.step($0, "s\($0)") }, snapshot: first))
        var recent = try c.require(try await c.store.loadRecent(id: "w"), "the workflow does not load")
        try c.expect(recent.snapshot == first && recent.events.isEmpty, "loadRecent after a snapshot of every event: \(recent.snapshot.map { "\($0)" } ?? "none"), \(recent.events.count) events")
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(4, "s4"), c.step(5, "s5")]))
        recent = try c.require(try await c.store.loadRecent(id: "w"), "the workflow does not load")
        try c.expect(recent.snapshot == first && recent.events.map(\.sequence) == [4, 5], "loadRecent: \(recent.events.map(\.sequence)) after the snapshot")
        let full = try c.require(try await c.store.load(id: "w"), "the workflow does not load")
        try c.expect(full.snapshot == nil && full.events.map(\.sequence) == Array(0...5), "load: \(full.events.map(\.sequence))")

        // A snapshot that does not cover the stream exactly is refused with its events.
        let wrong = await c.errorOf {
            try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(6, "s6")], snapshot: WorkflowSnapshot(through: 6, bytes: [9])))
        }
        try c.expect(wrong != nil, "a snapshot covering 6 of 7 events was accepted")
        try c.expect(try await c.store.load(id: "w")?.events.count == 6, "the refused append wrote its events")
        // Without events, it covers the stream as it is; it replaces the one before.
        let second = WorkflowSnapshot(through: 6, bytes: Array(repeating: 7, count: 100_000))
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: [], release: true, snapshot: second))
        recent = try c.require(try await c.store.loadRecent(id: "w"), "the workflow does not load")
        try c.expect(recent.snapshot == second && recent.events.isEmpty, "the second snapshot did not replace the first")
        // A stale claim writes no snapshot.
        let stale = await c.errorOf {
            try await c.store.append(AppendRequest(fence: claim, id: "w", events: [], snapshot: WorkflowSnapshot(through: 6, bytes: [0])))
        }
        try c.expect((stale as? ContinuumError)?.code == .ownershipLost, "a snapshot under a released claim: \(stale.map { "\($0)" } ?? "no error")")
        try c.expect(try await c.store.loadRecent(id: "w")?.snapshot == second, "a refused snapshot replaced the stored one")

        guard let store = try await c.fixture.reopen(c.store, clock: c.clock) else { return }
        c.current = store
        recent = try c.require(try await store.loadRecent(id: "w"), "the workflow is gone after reopening")
        try c.expect(recent.snapshot == second && recent.events.isEmpty, "the snapshot came back changed after reopening")
    }

    private static func durability(_ c: Context) async throws {
        let claim = try await c.create("w", input: [9])
        try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(1, "a"), c.step(2, "b")], timers: [.add(42)]))
        try await c.store.append(
            AppendRequest(
                fence: claim, id: "w", events: [HistoryEvent(sequence: 3, timestamp: 3, kind: .workflowCompleted(output: [4]))], status: .completed,
                release: true))
        let parked = try await c.create("parked")
        try await c.store.release(parked, id: "parked")
        let before = try await c.store.counts()
        guard let store = try await c.fixture.reopen(c.store, clock: c.clock) else { return }
        c.current = store
        let loaded = try c.require(try await store.load(id: "w"), "the workflow is gone after reopening")
        try c.expect(loaded.events.map(\.sequence) == [0, 1, 2, 3] && loaded.summary.status == .completed, "the workflow came back changed")
        try c.expect(try await store.timers(after: nil, limit: 10).map(\.due) == [42], "the timer index came back changed")
        let after = try await store.counts()
        try c.expect(after == before, "counts came back changed: \(after) instead of \(before)")
        try c.expect(try await store.runnable(after: nil, limit: 10).isEmpty, "a parked workflow is runnable after reopening")
        let next = try c.require(try await store.create(CreateRequest(id: "next", type: "t", started: c.start("t"), owner: c.owner)).claim, "no claim")
        try c.expect(next.stream > parked.stream, "stream numbers were reused after reopening")
    }

    private static func closing(_ c: Context) async throws {
        let claim = try await c.create("w")
        await c.store.close()
        let write = await c.errorOf { try await c.store.append(AppendRequest(fence: claim, id: "w", events: [c.step(1, "late")])) }
        try c.expect((write as? ContinuumError)?.code == .storeClosed, "a write after close: \(write.map { "\($0)" } ?? "no error")")
        let create = await c.errorOf { _ = try await c.store.create(CreateRequest(id: "x", type: "t", started: c.start("t"), owner: c.owner)) }
        try c.expect((create as? ContinuumError)?.code == .storeClosed, "a create after close: \(create.map { "\($0)" } ?? "no error")")
        let read = await c.errorOf { _ = try await c.store.load(id: "w") }
        try c.expect((read as? ContinuumError)?.code == .storeClosed, "a read after close: \(read.map { "\($0)" } ?? "no error")")
        await c.store.close()  // twice is fine
    }

    private static func sharedQueues(_ c: Context) async throws {
        // A store one process owns keeps no queue slots: its one runtime applies the limits.
        guard let lease = c.store.limits.leaseDuration else { return }
        let queues = try c.require(c.store.sharedQueues, "a store shared by processes (it has leases) shares no queue slots: each process would apply the limits alone")
        let limits = QueueLimits(concurrency: 2, perPartition: 1)
        var keys = 0
        func claim(_ id: String, _ owner: OwnerID) async throws -> Claim {
            let outcome = try await c.store.create(CreateRequest(id: id, type: "t", started: c.start("t"), owner: owner))
            return try c.require(outcome.claim, "workflow \(id) was not created")
        }
        func request(_ claim: Claim, _ partition: String?, priority: Int = 0, since: Int64, within: Bool = false, queue: String = "q") -> QueueRequest {
            keys += 1
            return QueueRequest(key: "k\(keys)", entry: QueueEntry(queue, partition: partition, priority: priority), since: since, within: within, claim: claim)
        }
        func join(_ claim: Claim, _ partition: String?, priority: Int = 0, since: Int64, within: Bool = false, queue: String = "q", limits: QueueLimits = limits)
            async throws -> (ticket: UInt64, admitted: Bool, admission: QueueAdmission)
        {
            let admission = try await queues.admit(
                QueuePass(
                    queue: queue, limits: limits, owner: claim.token.owner,
                    joining: [request(claim, partition, priority: priority, since: since, within: within, queue: queue)]))
            let ticket = try c.require(admission.tickets.first, "a joining entry got no ticket: \(admission)")
            return (ticket, admission.admitted.contains(ticket), admission)
        }
        func pass(_ owner: OwnerID, leaving: [UInt64] = [], waiting: [UInt64] = [], queue: String = "q", limits: QueueLimits = limits) async throws -> QueueAdmission {
            try await queues.admit(QueuePass(queue: queue, limits: limits, owner: owner, leaving: leaving, waiting: waiting))
        }
        let (a1, a2, a3) = (try await claim("a1", c.owner), try await claim("a2", c.owner), try await claim("a3", c.owner))
        let (b1, b2) = (try await claim("b1", c.other), try await claim("b2", c.other))

        // Order across owners, partitions and the concurrency.
        let first = try await join(a1, "x", since: 1)
        try c.expect(first.admitted, "the first entry of an empty queue was not admitted: \(first.admission)")
        let blocked = try await join(b1, "x", since: 2)
        try c.expect(!blocked.admitted, "a second entry of a full partition was admitted")
        let second = try await join(a2, "y", since: 3)
        try c.expect(second.admitted, "an entry of a free partition, behind one whose partition is full, was not admitted: \(second.admission)")
        let fourth = try await join(b2, "z", since: 4)
        try c.expect(!fourth.admitted, "an entry was admitted past the concurrency")
        try c.expect(try await pass(c.owner, leaving: [first.ticket]).admitted.isEmpty, "a pass admitted an entry of another owner's, or jumped ahead of it")
        try c.expect(try await pass(c.other).admitted == [blocked.ticket], "the owner of the next entry that could go did not get it")
        let load = try await queues.queueLoad()["q"]
        try c.expect(
            load == QueueLoad(running: 2, waiting: 1, partitions: ["x": 1, "y": 1]), "the load is \(load.map { "\($0)" } ?? "missing")")

        // A lapsed lease nobody took is still the claim: its slot still counts, and its owner
        // may renew it. Its waiting entry is passed over meanwhile.
        c.clock.advance(by: lease / 2)
        try c.expect(try await c.store.renew([a1, a2, a3]).isEmpty, "a live claim was lost")
        c.clock.advance(by: lease / 2 + .milliseconds(1))
        let behind = try await join(a3, "w", since: 5)
        try c.expect(!behind.admitted, "the slot of a lapsed lease nobody took stopped counting: \(behind.admission)")
        try c.expect(try await c.store.renew([b1, b2]).isEmpty, "a lapsed lease nobody took could not be renewed")
        // A takeover ends the claim: its slot comes back, its waiting entry is gone.
        c.clock.advance(by: lease + .milliseconds(1))
        try c.expect(try await c.store.renew([a1, a2, a3]).isEmpty, "a claim was lost")
        _ = try c.require(try await c.store.claim("b1", owner: c.owner), "a lapsed lease could not be taken over")
        _ = try c.require(try await c.store.claim("b2", owner: c.owner), "a lapsed lease could not be taken over")
        let taken = try await pass(c.owner, waiting: [behind.ticket])
        try c.expect(taken.admitted == [behind.ticket], "the slot of a claim taken over still counted: \(taken)")
        let gone = try await pass(c.other, waiting: [fourth.ticket])
        try c.expect(gone.gone == [fourth.ticket], "a waiting entry whose claim was taken over was not reported gone: \(gone)")

        // A retried join (its answer lost) finds the entry it made, and learns it was admitted.
        let retry = request(a1, nil, since: 30, queue: "r")
        let lost = try await queues.admit(QueuePass(queue: "r", limits: QueueLimits(concurrency: 1), owner: c.owner, joining: [retry]))
        let again = try await queues.admit(QueuePass(queue: "r", limits: QueueLimits(concurrency: 1), owner: c.owner, joining: [retry]))
        try c.expect(lost.tickets == again.tickets && again.admitted == again.tickets, "a retried join made another entry, or did not learn its admission: \(lost), \(again)")
        // The first pass of a new runtime under the same owner drops what the last one left.
        let fresh = try await join(a2, nil, since: 31, queue: "r", limits: QueueLimits(concurrency: 1))
        try c.expect(!fresh.admitted, "an entry was admitted past the concurrency")
        let restarted = try await queues.admit(
            QueuePass(queue: "r", limits: QueueLimits(concurrency: 1), owner: c.owner, joining: [request(a3, nil, since: 32, queue: "r")], firstOfOwner: true))
        try c.expect(restarted.admitted == restarted.tickets, "the first pass of a new runtime did not drop its owner's earlier entries: \(restarted)")

        // Priority before order; within a held slot only the rate counts. (The window is much
        // shorter than the lease, which a store's claims have at least.)
        try c.expect(try await c.store.renew([a1, a2, a3]).isEmpty, "a claim was lost")
        let one = QueueLimits(concurrency: 1, rate: .init(2, per: .seconds(1)))
        let held = try await join(a1, nil, since: 10, queue: "p", limits: one)
        try c.expect(held.admitted, "the first entry was not admitted: \(held.admission)")
        let low = try await join(a2, nil, since: 11, queue: "p", limits: one)
        let high = try await join(a3, nil, priority: 5, since: 12, queue: "p", limits: one)
        let inside = try await join(a1, nil, since: 13, within: true, queue: "p", limits: one)
        try c.expect(inside.admitted, "work within a held slot waited for a slot: \(inside.admission)")
        let next = try await pass(c.owner, leaving: [held.ticket, inside.ticket], queue: "p", limits: one)
        try c.expect(next.admitted.isEmpty && next.retryAfter != nil, "a third start within the rate's window: \(next)")
        c.clock.advance(by: .milliseconds(1001))
        let later = try await pass(c.owner, queue: "p", limits: one)
        try c.expect(later.admitted == [high.ticket], "after the window the higher priority did not go first: \(later), low \(low.ticket)")

        // Several entries join in one pass, in order.
        let both = try await queues.admit(
            QueuePass(queue: "m", limits: QueueLimits(concurrency: 1), owner: c.owner, joining: [request(a1, nil, since: 20, queue: "m"), request(a2, nil, since: 20, queue: "m")]))
        try c.expect(both.tickets.count == 2 && both.tickets[0] < both.tickets[1], "two entries joined in one pass got tickets \(both.tickets)")
        try c.expect(both.admitted == [both.tickets[0]], "of two entries joined in one pass on a queue of one, \(both.admitted) were admitted")
    }

    // MARK: Helpers

    /// What a check works with.
    final class Context: Sendable {
        let check: String
        let fixture: any EventStoreFixture
        let clock: ManualClock
        let owner = OwnerID("conformance-owner")
        let other = OwnerID("conformance-other")
        private let storeBox: Mutex<any EventStore>

        init(check: String, fixture: any EventStoreFixture, clock: ManualClock, store: any EventStore) {
            self.check = check
            self.fixture = fixture
            self.clock = clock
            self.storeBox = Mutex(store)
        }

        /// The store under test.
        var store: any EventStore { current }
        /// The store now (reopening replaces it).
        var current: any EventStore {
            get { storeBox.withLock { $0 } }
            set { storeBox.withLock { $0 = newValue } }
        }

        func start(_ type: String, input: [UInt8] = Array("null".utf8), traceContext: [String: String] = [:]) -> HistoryEvent {
            HistoryEvent(sequence: 0, timestamp: 1_767_225_600_000_000_001, kind: .workflowStarted(type: type, input: input, traceContext: traceContext))
        }

        func step(_ sequence: UInt32, _ name: String) -> HistoryEvent {
            HistoryEvent(
                sequence: sequence, timestamp: Int64(sequence) * 1000,
                kind: .stepCompleted(StepRecord(name: name, occurrence: 0, index: sequence - 1, concurrent: false), result: Array("\(sequence)".utf8)))
        }

        /// Creates a workflow of type `t` and returns its claim.
        func create(_ id: String, input: [UInt8] = Array("null".utf8), traceContext: [String: String] = [:]) async throws -> Claim {
            let outcome = try await store.create(CreateRequest(id: id, type: "t", started: start("t", input: input, traceContext: traceContext), owner: owner))
            guard case .created(let claim) = outcome else { throw failure("workflow \(id) was not created: \(outcome)") }
            return claim
        }

        func expect(_ condition: Bool, _ message: @autoclosure () -> String, line: Int = #line) throws {
            guard condition else { throw failure(message(), line: line) }
        }

        func require<T>(_ value: T?, _ message: @autoclosure () -> String, line: Int = #line) throws -> T {
            guard let value else { throw failure(message(), line: line) }
            return value
        }

        func failure(_ message: String, line: Int = #line) -> ConformanceFailure {
            ConformanceFailure(check: check, message: message, line: line)
        }

        func errorOf(_ operation: () async throws -> Void) async -> (any Error)? {
            do {
                try await operation()
                return nil
            } catch {
                return error
            }
        }
    }
}

/// A store did not do what ``EventStoreConformance`` expects.
public struct ConformanceFailure: Error, CustomStringConvertible {
    /// The check that failed.
    public var check: String
    /// What the store did instead.
    public var message: String
    /// The line of the expectation in `EventStoreConformance.swift`.
    public var line: Int

    public var description: String { "\(check): \(message) (EventStoreConformance.swift:\(line))" }
}

extension CreateOutcome {
    /// The claim of a created workflow; `nil` when it existed.
    fileprivate var claim: Claim? {
        if case .created(let claim) = self { claim } else { nil }
    }
}
