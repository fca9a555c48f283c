@testable import Continuum
import Testing

/// Resets, forks, markers and fingerprints on the fold alone: no store, no runtime.
@Suite("History edits")
struct HistoryEditsTests {
    private static func step(_ sequence: UInt32, _ name: String, index: UInt32, fingerprint: String? = nil) -> HistoryEvent {
        HistoryEvent(
            sequence: sequence, timestamp: Int64(sequence),
            kind: .stepCompleted(StepRecord(name: name, occurrence: 0, index: index, concurrent: false, fingerprint: fingerprint), result: Array("\"\(name)\"".utf8)))
    }

    /// start, a, b, sleep (pending, due 500), event "go" received, c? no: waits at the sleep.
    private static let history: [HistoryEvent] = [
        HistoryEvent(sequence: 0, timestamp: 0, kind: .workflowStarted(type: "t", input: Array("null".utf8))),
        step(1, "a", index: 0),
        step(2, "b", index: 1, fingerprint: "h1"),
        HistoryEvent(sequence: 3, timestamp: 3, kind: .waitStarted(StepRecord(name: "nap", occurrence: 0, index: 2, concurrent: false), wait: .timer, due: 500)),
        HistoryEvent(sequence: 4, timestamp: 4, kind: .eventReceived(name: "go", payload: Array("1".utf8), dedupKey: "k")),
    ]
    private static let action = ActionRecord(by: "test", reason: "because")

    @Test("a reset supersedes the tail but keeps external events, bumps the generation, and moves the timer index")
    func reset() throws {
        let target = try HistoryEdits.target(of: StepKey(name: "b", occurrence: 0), in: Self.history)
        #expect(target == 2)
        let reset = try HistoryEdits.reset(Self.history, to: target, action: Self.action, timestamp: 9)
        #expect(reset.event.sequence == 5 && reset.status == .running)
        guard case .workflowReset(2, 1, Self.action) = reset.event.kind else {
            Issue.record("unexpected reset event \(reset.event)")
            return
        }
        #expect(reset.timers == [.remove(500)], "the superseded sleep's index entry goes")
        let effective = try WorkflowState.effective(Self.history + [reset.event])
        #expect(effective.map(\.sequence) == [0, 1, 4, 5], "start, a, the event kept, the reset")
        let state = try WorkflowState(replaying: Self.history + [reset.event])
        #expect(state.recordedSteps.keys.map(\.name) == ["a"])
        #expect(state.resetGeneration == 1 && state.nextSequence == 6 && state.supersededEvents == 2)
        #expect(state.oldestUnconsumed(named: "go")?.sequence == 4, "the event is delivered again")
        #expect(state.dedupKeys["k"] == 4)
    }

    @Test("a reset that would leave a finished workflow, or goes to the start or past the end, is refused")
    func resetBounds() throws {
        for target: UInt32 in [0, 5, 99] {
            #expect(throws: ContinuumError.self) { try HistoryEdits.reset(Self.history, to: target, action: Self.action, timestamp: 1) }
        }
        #expect(throws: ContinuumError.self) { try HistoryEdits.target(of: StepKey(name: "missing", occurrence: 0), in: Self.history) }
        // A reset event that points outside its history is damage.
        let bad = HistoryEvent(sequence: 5, timestamp: 5, kind: .workflowReset(toSequence: 7, generation: 1, Self.action))
        let error = #expect(throws: ContinuumError.self) { try WorkflowState(replaying: Self.history + [bad]) }
        #expect(error?.code == .corruptedData)
    }

    @Test("a second reset folds on top of the first; the superseded events stay in the raw stream")
    func twoResets() throws {
        let first = try HistoryEdits.reset(Self.history, to: 2, action: Self.action, timestamp: 9)
        var events = Self.history + [first.event, Self.step(6, "b", index: 1, fingerprint: "h2")]
        let second = try HistoryEdits.reset(events, to: 1, action: Self.action, timestamp: 10)
        events.append(second.event)
        let state = try WorkflowState(replaying: events)
        #expect(state.resetGeneration == 2 && state.recordedSteps.isEmpty)
        #expect(try WorkflowState.effective(events).map(\.sequence) == [0, 4, 7], "the first reset is superseded too; the event stays")
    }

    @Test("a fork copies the effective prefix, renumbered, with delivered-event references moved, and says where it came from")
    func fork() throws {
        let delivered = Self.history + [
            HistoryEvent(sequence: 5, timestamp: 5, kind: .waitStarted(StepRecord(name: "event:go", occurrence: 0, index: 3, concurrent: false), wait: .event("go"), due: nil)),
            HistoryEvent(sequence: 6, timestamp: 6, kind: .waitEnded(StepKey(name: "event:go", occurrence: 0), outcome: .received(sequence: 4))),
        ]
        // Forking at the event wait drops it and its delivery, but keeps the event itself.
        let fork = try HistoryEdits.fork(delivered, at: 5, from: "w", action: Self.action, timestamp: 9)
        #expect(fork.events.map(\.sequence) == Array(0..<6))
        #expect(fork.events.map(\.kindName) == ["workflowStarted", "stepCompleted", "stepCompleted", "waitStarted", "eventReceived", "workflowForked"])
        #expect(fork.timers == [.add(500)], "the pending sleep is indexed for the new workflow")
        let state = try WorkflowState(replaying: fork.events)
        #expect(state.forkedFrom?.id == "w" && state.forkedFrom?.sequence == 5)
        // Forking after the delivery keeps it, pointing at the event's new position.
        let later = delivered + [Self.step(7, "c", index: 4)]
        let copy = try HistoryEdits.fork(later, at: 7, from: "w", action: Self.action, timestamp: 9)
        guard case .waitEnded(_, .received(let moved)) = copy.events[6].kind else {
            Issue.record("the delivery was not copied: \(copy.events.map(\.kindName))")
            return
        }
        #expect(copy.events[Int(moved)].kindName == "eventReceived")
    }

    @Test("version markers: recorded ones stay new, a run still replaying takes the old branch, new work records the marker")
    func markers() throws {
        var replaying = try WorkflowState(replaying: Self.history)
        #expect(replaying.patch("p", timestamp: 1) == .oldBranch, "history holds calls not made yet")
        var live = try WorkflowState(replaying: Array(Self.history.prefix(1)))
        guard case .newBranch(let event) = live.patch("p", timestamp: 1) else {
            Issue.record("new work did not take the new branch")
            return
        }
        #expect(event.kind == .markerRecorded("p") && event.sequence == 1)
        #expect(live.patch("p", timestamp: 2) == .recorded)
        let recorded = try WorkflowState(replaying: Array(Self.history.prefix(1)) + [event])
        var again = recorded
        #expect(again.patch("p", timestamp: 3) == .recorded)
    }

    @Test("a recorded step with another fingerprint is changed; without one on either side it replays")
    func fingerprints() throws {
        var state = try WorkflowState(replaying: Self.history)
        _ = state.beginStep(named: "a", fingerprint: "anything")
        guard case .changed(let recorded) = state.beginStep(named: "b", fingerprint: "h2") else {
            Issue.record("a changed fingerprint was not noticed")
            return
        }
        #expect(recorded.record.fingerprint == "h1")
        var same = try WorkflowState(replaying: Self.history)
        _ = same.beginStep(named: "a")
        guard case .replay = same.beginStep(named: "b", fingerprint: "h1") else {
            Issue.record("the same fingerprint did not replay")
            return
        }
        var unfingerprinted = try WorkflowState(replaying: Self.history)
        _ = unfingerprinted.beginStep(named: "a")
        guard case .replay = unfingerprinted.beginStep(named: "b") else {
            Issue.record("a call without a fingerprint did not replay")
            return
        }
    }
}
