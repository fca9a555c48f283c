package import Continuum

/// Which events of a history a reset superseded, and which reset: for the dashboard's timeline
/// and `continuum show`, which show every stored event and mark the superseded ones.
///
/// Whether an event is superseded is what the runtime folds (``WorkflowState/effective(_:)``):
/// an event is superseded when the effective history leaves it out. The reset that superseded
/// it is the first reset after it whose target is at or before it.
package enum Supersession {
    /// A reset that superseded events.
    package struct Reset: Sendable, Hashable {
        /// Its generation: 1 for the workflow's first reset, 2 for the second, ….
        package var generation: UInt32
        /// Its own event's sequence number.
        package var sequence: UInt32

        package init(generation: UInt32, sequence: UInt32) {
            self.generation = generation
            self.sequence = sequence
        }
    }

    /// The superseded events' sequence numbers, each with the reset that superseded it.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` for a history whose resets are inconsistent.
    package static func resets(in events: [HistoryEvent]) throws(ContinuumError) -> [UInt32: Reset] {
        let effective = Set(try WorkflowState.effective(events).map(\.sequence))
        guard effective.count < events.count else { return [:] }
        let resets = events.compactMap { event -> (target: UInt32, reset: Reset)? in
            guard case .workflowReset(let target, let generation, _) = event.kind else { return nil }
            return (target, Reset(generation: generation, sequence: event.sequence))
        }
        var superseded: [UInt32: Reset] = [:]
        for event in events where !effective.contains(event.sequence) {
            if let by = resets.first(where: { $0.reset.sequence > event.sequence && $0.target <= event.sequence }) {
                superseded[event.sequence] = by.reset
            }
        }
        return superseded
    }

    /// The steps and waits of the history in effect, in the order they were first recorded:
    /// what a reset or a fork can go to (``WorkflowRuntime/reset(_:toStep:occurrence:by:reason:)``).
    /// Empty when the history cannot be read.
    package static func steps(in events: [HistoryEvent]) -> [(key: StepKey, sequence: UInt32, isWait: Bool)] {
        guard let state = try? WorkflowState(replaying: events) else { return [] }
        return state.firstSequence.sorted { $0.value < $1.value }.map { key, sequence in
            (key, sequence, state.recordedWaits[key] != nil)
        }
    }
}
