/// The appends that take a workflow's history somewhere new without destroying any of it: a
/// reset that supersedes a tail, a fork that copies a prefix into a new workflow. Pure functions
/// of the stored events, used by the runtime and tested without I/O.
package enum HistoryEdits {
    /// What resetting a history appends: the reset event, the timer-index changes that make the
    /// index match the waits pending after it, and the status the workflow then has.
    package struct Reset: Sendable {
        package var event: HistoryEvent
        package var timers: [TimerChange]
        package var status: WorkflowStatus
        /// The state after the reset.
        package var state: WorkflowState
    }

    /// The event to reset to for step (or wait) `key`: its first event, so that the whole step
    /// runs again, every attempt included.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when history holds no such step.
    package static func target(of key: StepKey, in events: [HistoryEvent]) throws(ContinuumError) -> UInt32 {
        let state = try WorkflowState(replaying: events)
        guard let sequence = state.firstSequence[key] else {
            let known = state.firstSequence.sorted { $0.value < $1.value }.map { "\($0.key)" }.joined(separator: ", ")
            throw ContinuumError(
                .invalidArgument,
                "The workflow's history holds no step \(key) to reset to; its steps are: \(known.isEmpty ? "none" : known).")
        }
        return sequence
    }

    /// Resets `events` to event `target`: everything from there on is superseded (external
    /// events excepted, which are delivered again) and the workflow runs from there.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when `target` is not after the start.
    package static func reset(
        _ events: [HistoryEvent], to target: UInt32, action: ActionRecord, timestamp: Int64
    ) throws(ContinuumError) -> Reset {
        guard target >= 1, Int(target) < events.count else {
            throw ContinuumError(.invalidArgument, "A reset goes to an event after the start and before the end; got \(target) of \(events.count).")
        }
        let before = try WorkflowState(replaying: events)
        let event = HistoryEvent(
            sequence: UInt32(events.count), timestamp: timestamp,
            kind: .workflowReset(toSequence: target, generation: before.resetGeneration + 1, action))
        let after = try WorkflowState(replaying: events + [event])
        guard after.outcome == nil else {
            throw ContinuumError(.invalidArgument, "A reset to event \(target) would leave the workflow finished; reset to an earlier event.")
        }
        let timers = after.pendingDues.subtracting(before.pendingDues).sorted().map(TimerChange.add)
            + before.pendingDues.subtracting(after.pendingDues).sorted().map(TimerChange.remove)
        return Reset(event: event, timers: timers, status: .running, state: after)
    }

    /// The history of a new workflow forked from `events` at event `target`: the events in effect
    /// before it (as a reset there would leave them, external events included), renumbered,
    /// followed by a `workflowForked` event naming where it came from.
    package static func fork(
        _ events: [HistoryEvent], at target: UInt32, from id: String, action: ActionRecord, timestamp: Int64
    ) throws(ContinuumError) -> (events: [HistoryEvent], timers: [TimerChange]) {
        let reset = try self.reset(events, to: target, action: action, timestamp: timestamp)
        let effective = try WorkflowState.effective(events + [reset.event]).filter { event in
            switch event.kind {
            case .workflowReset, .workflowSuspended, .workflowResumed, .workflowForked, .startedAsChild: false
            default: true
            }
        }
        var renumbered: [UInt32: UInt32] = [:]
        for (position, event) in effective.enumerated() { renumbered[event.sequence] = UInt32(position) }
        var copied = effective.enumerated().map { position, event in
            var event = event
            event.sequence = UInt32(position)
            if case .waitEnded(let key, .received(let sequence)) = event.kind, let moved = renumbered[sequence] {
                event.kind = .waitEnded(key, outcome: .received(sequence: moved))
            }
            return event
        }
        copied.append(
            HistoryEvent(sequence: UInt32(copied.count), timestamp: timestamp, kind: .workflowForked(from: id, sequence: target, action)))
        let state = try WorkflowState(replaying: copied)
        return (copied, state.pendingDues.sorted().map(TimerChange.add))
    }
}
