@_spi(Testing) import Continuum
import ContinuumTesting
import ContinuumTestSupport
import Testing

private func started(_ type: String = "t", input: [UInt8] = [1]) -> HistoryEvent {
    HistoryEvent(sequence: 0, timestamp: 1, kind: .workflowStarted(type: type, input: input))
}

private func completed(_ sequence: UInt32, _ name: String, occurrence: UInt32 = 0, index: UInt32, concurrent: Bool = false, result: [UInt8] = [7]) -> HistoryEvent {
    HistoryEvent(
        sequence: sequence, timestamp: Int64(sequence),
        kind: .stepCompleted(StepRecord(name: name, occurrence: occurrence, index: index, concurrent: concurrent), result: result))
}

@Suite("WorkflowState fold")
struct WorkflowStateTests {
    @Test("folding a history records the start, the steps and the outcome")
    func fold() throws {
        var state = WorkflowState()
        try state.apply(started("onboard", input: [9]))
        try state.apply(completed(1, "a", index: 0, result: [1]))
        try state.apply(
            HistoryEvent(
                sequence: 2, timestamp: 2,
                kind: .stepFailed(StepRecord(name: "b", occurrence: 0, index: 1, concurrent: false), failure: FailureRecord(type: "E", message: "m"))))
        try state.apply(HistoryEvent(sequence: 3, timestamp: 3, kind: .workflowFailed(FailureRecord(type: "E", message: "m"))))
        #expect(state.type == "onboard")
        #expect(state.input == [9])
        #expect(state.nextSequence == 4)
        #expect(state.recordedSteps.count == 2)
        #expect(state.outcome == .failed(FailureRecord(type: "E", message: "m")))
    }

    @Test("a gap, a second start, an event after the end and a step recorded twice are named corruptions")
    func inconsistentHistories() throws {
        let cases: [[HistoryEvent]] = [
            [started(), completed(2, "a", index: 0)],
            [started(), HistoryEvent(sequence: 1, timestamp: 0, kind: .workflowStarted(type: "t", input: []))],
            [completed(0, "a", index: 0)],
            [started(), HistoryEvent(sequence: 1, timestamp: 0, kind: .workflowCompleted(output: [])), completed(2, "a", index: 0)],
            [started(), completed(1, "a", index: 0), completed(2, "a", index: 1)],
            [started(), completed(1, "a", index: 0), completed(2, "b", index: 0)],
        ]
        for events in cases {
            var state = WorkflowState()
            let error = #expect(throws: ContinuumError.self) {
                for event in events { try state.apply(event) }
            }
            #expect(error?.code == .corruptedData)
        }
    }

    @Test("recorded steps replay; the next call runs live; the end appends the outcome")
    func replayThenLive() throws {
        var state = WorkflowState()
        try state.apply(started())
        try state.apply(completed(1, "a", index: 0, result: [42]))
        #expect(state.isReplaying)
        guard case .replay(let recorded) = state.beginStep(named: "a") else {
            Issue.record("expected replay")
            return
        }
        #expect(recorded.outcome == .success([42]))
        #expect(!state.isReplaying)
        guard case .execute(let call) = state.beginStep(named: "b") else {
            Issue.record("expected execute")
            return
        }
        #expect(call.key == StepKey(name: "b", occurrence: 0))
        let event = state.completeStep(call, outcome: .success([5]), timestamp: 9)
        #expect(event.sequence == 2)
        let end = try state.finish(.completed([1]), timestamp: 10).get()
        #expect(end.sequence == 3)
        #expect(end.kind == .workflowCompleted(output: [1]))
    }

    @Test("a body step at another position, renamed, or missing diverges")
    func divergences() throws {
        func recordedAB() throws -> WorkflowState {
            var state = WorkflowState()
            try state.apply(started())
            try state.apply(completed(1, "a", index: 0))
            try state.apply(completed(2, "b", index: 1))
            return state
        }
        var reordered = try recordedAB()
        #expect(reordered.beginStep(named: "b") == .diverged(.init(index: 0, recorded: StepKey(name: "a", occurrence: 0), requested: StepKey(name: "b", occurrence: 0))))

        var renamed = try recordedAB()
        _ = renamed.beginStep(named: "a")
        #expect(renamed.beginStep(named: "x") == .diverged(.init(index: 1, recorded: StepKey(name: "b", occurrence: 0), requested: StepKey(name: "x", occurrence: 0))))

        var truncated = try recordedAB()
        _ = truncated.beginStep(named: "a")
        guard case .failure(let divergence) = truncated.finish(.completed([]), timestamp: 0) else {
            Issue.record("finishing without calling 'b' must diverge")
            return
        }
        #expect(divergence.recorded == StepKey(name: "b", occurrence: 0))
        #expect(divergence.requested == nil)

        var movedIntoChild = try recordedAB()
        if case .diverged = movedIntoChild.beginStep(named: "a", concurrent: true) {} else {
            Issue.record("a body step called from a child task must diverge")
        }
    }

    @Test("child-task steps match by name and occurrence in any order")
    func concurrentAnyOrder() throws {
        var state = WorkflowState()
        try state.apply(started())
        try state.apply(completed(1, "x", index: 0, concurrent: true, result: [1]))
        try state.apply(completed(2, "y", index: 1, concurrent: true, result: [2]))
        try state.apply(completed(3, "after", index: 0, result: [3]))
        guard case .replay(let y) = state.beginStep(named: "y", concurrent: true),
            case .replay(let x) = state.beginStep(named: "x", concurrent: true),
            case .replay(let after) = state.beginStep(named: "after")
        else {
            Issue.record("expected three replays")
            return
        }
        #expect(x.outcome == .success([1]) && y.outcome == .success([2]) && after.outcome == .success([3]))
    }

    @Test("a second live step of a name still running is ambiguous")
    func ambiguity() throws {
        var state = WorkflowState()
        try state.apply(started())
        guard case .execute(let first) = state.beginStep(named: "fetch", concurrent: true) else {
            Issue.record("expected execute")
            return
        }
        #expect(state.beginStep(named: "fetch", concurrent: true) == .ambiguous(StepKey(name: "fetch", occurrence: 1)))
        _ = state.completeStep(first, outcome: .success([]), timestamp: 0)
        guard case .execute(let second) = state.beginStep(named: "fetch", concurrent: true) else {
            Issue.record("after the first completes, the name is free")
            return
        }
        #expect(second.key.occurrence == 1)
    }

    @Test("seeded random workflows: a live run's events fold back to the same state and replay every step", arguments: 0..<200)
    func randomizedRoundTrip(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let names = ["a", "b", "c", "d"]
        var live = WorkflowState()
        let start = started("random", input: [UInt8(seed & 0xFF)])
        try live.apply(start)
        var events = [start]
        var calls: [(String, Bool)] = []
        var pending: [WorkflowState.StepCall] = []
        for _ in 0..<Int.random(in: 0...30, using: &random) {
            // Start a step (sometimes from a child task) or complete one that is running.
            if pending.isEmpty || Bool.random(using: &random) {
                let name = names.randomElement(using: &random)!
                let concurrent = Bool.random(using: &random)
                switch live.beginStep(named: name, concurrent: concurrent) {
                case .execute(let call):
                    pending.append(call)
                    calls.append((name, concurrent))
                case .ambiguous:
                    continue
                case let other:
                    Issue.record("seed \(seed): a new workflow cannot \(other)")
                }
            } else {
                let call = pending.remove(at: Int.random(in: 0..<pending.count, using: &random))
                let outcome: Result<[UInt8], FailureRecord> =
                    Bool.random(using: &random)
                    ? .success([UInt8.random(in: 0...255, using: &random)]) : .failure(FailureRecord(type: "E", message: "\(seed)"))
                events.append(live.completeStep(call, outcome: outcome, timestamp: Int64(events.count)))
            }
        }
        for call in pending { events.append(live.completeStep(call, outcome: .success([0]), timestamp: 0)) }
        if let end = try? live.finish(.completed([1]), timestamp: 0).get() { events.append(end) }

        // Every event survives the binary codec, and the fold of the stored events is the live state.
        var folded = WorkflowState()
        for event in events {
            let decoded = try BinaryCodec.decodeEvent(BinaryCodec.encode(event), sequence: event.sequence)
            #expect(decoded == event, "seed \(seed)")
            try folded.apply(decoded)
        }
        #expect(folded.recordedSteps == live.recordedSteps, "seed \(seed)")
        #expect(folded.nextSequence == live.nextSequence)
        #expect(folded.outcome == live.outcome)

        // Replaying the same calls in the same order replays every one of them.
        var replay = WorkflowState()
        for event in events where event.kind != .workflowCompleted(output: [1]) { try replay.apply(event) }
        for (name, concurrent) in calls {
            guard case .replay = replay.beginStep(named: name, concurrent: concurrent) else {
                Issue.record("seed \(seed): \(name) did not replay")
                return
            }
        }
        #expect(!replay.isReplaying)
    }
}
