package import Logging

/// A workflow's folded state as bytes: what an append leaves in the store
/// (``AppendRequest/snapshot``) so that a wake folds the events after it, not the whole history.
///
/// Only what the fold builds from history is kept, never the current run's bookkeeping (which
/// calls this run claimed): a snapshot is the state ``WorkflowState/init(replaying:)`` returns
/// for the events it covers, and ``init(snapshot:)`` gives that state back exactly, but for
/// ``WorkflowState/firstSequence``, which only edits of the whole history read (a reset, a
/// fork) and which they fold from every event. Every map is written in key order, so the same
/// state always gives the same bytes.
extension WorkflowState {
    /// The layout written by this release, the first byte of the body. A snapshot of another
    /// layout is not read: the runtime folds the events instead.
    static let snapshotLayout: UInt8 = 1

    /// How large the state is, in entries a snapshot writes: a new snapshot is worth its cost
    /// once at least half as many events came after the last one (each event then pays for at
    /// most two entries written, however long the history).
    package var snapshotWeight: Int {
        recordedSteps.count + recordedWaits.count + retryingSteps.count + inbox.count + dedupKeys.count
    }

    /// The state as a snapshot covering every event folded so far.
    package func snapshot() -> WorkflowSnapshot {
        WorkflowSnapshot(through: nextSequence, bytes: BinaryCodec.seal { writer in encode(into: &writer) })
    }

    /// The state a snapshot holds, or `nil` when it was written in a layout this release does
    /// not read.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when its bytes are damaged.
    package init?(snapshot: WorkflowSnapshot) throws(ContinuumError) {
        self.init()
        do {
            let read = try snapshot.bytes.withUnsafeBytes { buffer in
                try BinaryCodec.read(buffer, location: "a snapshot of \(snapshot.through) events") { reader in
                    guard try reader.read() as UInt8 == Self.snapshotLayout else { return false }
                    try decode(from: &reader)
                    try reader.expectEnd()
                    return true
                }
            }
            guard read else { return nil }
        } catch {
            throw ContinuumError.wrap(error)
        }
        guard nextSequence == snapshot.through else {
            throw ContinuumError(
                .corruptedData, "A snapshot said to cover \(snapshot.through) events holds the state after \(nextSequence).")
        }
    }

    /// The state of `snapshot` with `events` (those after it) folded in; `nil` when the snapshot
    /// cannot stand for the events before it — a layout this release does not read, or a
    /// reset among `events` that reaches back before it — and the whole history must be folded.
    ///
    /// - Throws: ``ContinuumError/Code/corruptedData`` when the snapshot or the events are inconsistent.
    package init?(snapshot: WorkflowSnapshot, then events: [HistoryEvent]) throws(ContinuumError) {
        for event in events {
            if case .workflowReset = event.kind { return nil }  // rare: fold the whole history
        }
        guard var state = try WorkflowState(snapshot: snapshot) else { return nil }
        for event in events { try state.apply(event) }
        self = state
    }

    private func encode(into writer: inout ByteWriter) {
        writer.write(Self.snapshotLayout)
        writer.write(nextSequence)
        writer.write(UInt32(supersededEvents))
        writer.write(optional: type)
        writer.write(bytes: input)
        writer.write(UInt32(traceContext.count))
        for (key, value) in traceContext.sorted(by: { $0.key < $1.key }) {
            writer.write(string: key)
            writer.write(string: value)
        }
        writer.write(optional: cancellation)
        writer.write(UInt8(suspension == nil ? 0 : 1))
        if let suspension { writer.write(suspension) }
        writer.write(resetGeneration)
        writer.write(UInt32(markers.count))
        for marker in markers.sorted() { writer.write(string: marker) }
        writer.write(UInt8(forkedFrom == nil ? 0 : 1))
        if let forkedFrom {
            writer.write(string: forkedFrom.id)
            writer.write(forkedFrom.sequence)
        }
        writer.write(UInt8(parent == nil ? 0 : 1))
        if let parent {
            writer.write(string: parent.id)
            writer.write(string: parent.key)
        }
        writer.write(UInt8(queue == nil ? 0 : 1))
        if let queue {
            writer.write(string: queue.name)
            writer.write(optional: queue.partition)
            writer.write(Int64(queue.priority))
        }
        writer.write(queuedAt)
        writer.write(UInt8(deadline == nil ? 0 : 1))
        writer.write(deadline ?? 0)
        writer.write(UInt8(timedOut ? 1 : 0))
        switch outcome {
        case nil: writer.write(UInt8(0))
        case .completed(let output):
            writer.write(UInt8(1))
            writer.write(bytes: output)
        case .failed(let failure):
            writer.write(UInt8(2))
            writer.write(failure)
        case .cancelled(let reason):
            writer.write(UInt8(3))
            writer.write(string: reason)
        }

        writer.write(UInt32(recordedSteps.count))
        for (_, step) in recordedSteps.sorted(by: { Self.order($0.key, $1.key) }) {
            writer.write(step.record)
            switch step.outcome {
            case .success(let result):
                writer.write(UInt8(1))
                writer.write(bytes: result)
            case .failure(let failure):
                writer.write(UInt8(2))
                writer.write(failure.failure)
            }
        }
        writer.write(UInt32(retryingSteps.count))
        for (_, retry) in retryingSteps.sorted(by: { Self.order($0.key, $1.key) }) {
            writer.write(retry.record)
            writer.write(retry.attempt)
            writer.write(retry.nextAttemptAt)
        }
        writer.write(UInt32(recordedWaits.count))
        for (_, wait) in recordedWaits.sorted(by: { Self.order($0.key, $1.key) }) {
            writer.write(wait.record)
            writer.write(wait.wait)
            writer.write(UInt8(wait.due == nil ? 0 : 1))
            writer.write(wait.due ?? 0)
            writer.write(UInt8(wait.outcome == nil ? 0 : 1))
            if let outcome = wait.outcome { writer.write(outcome) }
        }
        writer.write(UInt32(recordedBodyCalls.count))
        for (index, key) in recordedBodyCalls.sorted(by: { $0.key < $1.key }) {
            writer.write(index)
            writer.write(optional: key)
        }
        writer.write(UInt32(inbox.count))
        for (sequence, event) in inbox.sorted(by: { $0.key < $1.key }) {
            writer.write(sequence)
            writer.write(string: event.name)
            writer.write(bytes: event.payload)
        }
        writer.write(UInt32(consumed.count))
        for sequence in consumed.sorted() { writer.write(sequence) }
        writer.write(UInt32(dedupKeys.count))
        for (key, sequence) in dedupKeys.sorted(by: { $0.key < $1.key }) {
            writer.write(string: key)
            writer.write(sequence)
        }
    }

    private static func order(_ a: StepKey, _ b: StepKey) -> Bool {
        a.name == b.name ? a.occurrence < b.occurrence : a.name < b.name
    }

    private mutating func decode(from reader: inout ByteReader) throws {
        nextSequence = try reader.read()
        supersededEvents = Int(try reader.read() as UInt32)
        type = try reader.readOptionalString()
        input = try reader.readBytes()
        for _ in 0..<(try reader.read() as UInt32) {
            let key = try reader.readString()
            traceContext[key] = try reader.readString()
        }
        cancellation = try reader.readOptionalString()
        if try reader.read() as UInt8 == 1 { suspension = try reader.readSuspension() }
        resetGeneration = try reader.read()
        for _ in 0..<(try reader.read() as UInt32) { markers.insert(try reader.readString()) }
        if try reader.read() as UInt8 == 1 { forkedFrom = (try reader.readString(), try reader.read()) }
        if try reader.read() as UInt8 == 1 { parent = ParentLink(id: try reader.readString(), key: try reader.readString()) }
        if try reader.read() as UInt8 == 1 {
            queue = QueueEntry(try reader.readString(), partition: try reader.readOptionalString(), priority: Int(try reader.read() as Int64))
        }
        queuedAt = try reader.read()
        let hasDeadline: UInt8 = try reader.read()
        let due: Int64 = try reader.read()
        deadline = hasDeadline == 1 ? due : nil
        timedOut = try reader.read() as UInt8 == 1
        switch try reader.read() as UInt8 {
        case 0: outcome = nil
        case 1: outcome = .completed(try reader.readBytes())
        case 2: outcome = .failed(try reader.readFailure())
        case 3: outcome = .cancelled(reason: try reader.readString())
        case let other: throw ByteReader.Damage("unknown outcome \(other)")
        }

        let recordedStepsCount = Int(try reader.read() as UInt32)
        recordedSteps.reserveCapacity(min(recordedStepsCount, 1 << 20))
        for _ in 0..<recordedStepsCount {
            let record = try reader.readStep()
            let outcome: Result<[UInt8], StepFailure>
            switch try reader.read() as UInt8 {
            case 1: outcome = .success(try reader.readBytes())
            case 2: outcome = .failure(StepFailure(failure: try reader.readFailure()))
            case let other: throw ByteReader.Damage("unknown step outcome \(other)")
            }
            recordedSteps[record.key] = RecordedStep(record: record, outcome: outcome)
        }
        for _ in 0..<(try reader.read() as UInt32) {
            let record = try reader.readStep()
            retryingSteps[record.key] = Retry(record: record, attempt: try reader.read(), nextAttemptAt: try reader.read())
        }
        let recordedWaitsCount = Int(try reader.read() as UInt32)
        recordedWaits.reserveCapacity(min(recordedWaitsCount, 1 << 20))
        for _ in 0..<recordedWaitsCount {
            let record = try reader.readStep()
            let wait = try reader.readWaitKind()
            let hasDue: UInt8 = try reader.read()
            let due: Int64 = try reader.read()
            let outcome = try reader.read() as UInt8 == 1 ? try reader.readWaitOutcome() : nil
            recordedWaits[record.key] = RecordedWait(record: record, wait: wait, due: hasDue == 1 ? due : nil, outcome: outcome)
        }
        for _ in 0..<(try reader.read() as UInt32) {
            let index: UInt32 = try reader.read()
            guard let key = try reader.readOptionalKey() else { throw ByteReader.Damage("a body call without its step") }
            recordedBodyCalls[index] = key
        }
        let inboxCount = Int(try reader.read() as UInt32)
        inbox.reserveCapacity(min(inboxCount, 1 << 20))
        for _ in 0..<inboxCount {
            let sequence: UInt32 = try reader.read()
            inbox[sequence] = ReceivedEvent(name: try reader.readString(), payload: try reader.readBytes())
        }
        for _ in 0..<(try reader.read() as UInt32) { consumed.insert(try reader.read()) }
        for _ in 0..<(try reader.read() as UInt32) {
            let key = try reader.readString()
            dedupKeys[key] = try reader.read()
        }
    }
}

extension EventStore {
    /// Workflow `id` as a wake needs it: its snapshot and the events after it, folded; or, when
    /// there is no snapshot (or `snapshots` is off), its events unfolded (`nil` state); or the
    /// whole history, unfolded, when the snapshot cannot stand for the events before it
    /// (damaged, of another release's layout, or a reset reaching back before it), which is
    /// logged. A snapshot is a cache of the fold: the events stay the truth.
    package func loadForWake(id: String, snapshots: Bool, logger: Logger) async throws(ContinuumError) -> (StoredWorkflow, WorkflowState?)? {
        guard snapshots, let stored = try await loadRecent(id: id) else { return try await load(id: id).map { ($0, nil) } }
        guard stored.snapshot != nil else { return (stored, nil) }
        if let folded = Self.fold(stored, id: id, logger: logger) { return (stored, folded) }
        return try await load(id: id).map { ($0, nil) }
    }

    /// The state `stored`'s snapshot and events fold to; `nil` when the snapshot cannot stand for
    /// the events before it. Synchronous, so that the fold's temporaries are not part of the
    /// frame of every wake (a task keeps the memory its deepest frames took until it ends).
    @inline(never)
    private static func fold(_ stored: StoredWorkflow, id: String, logger: Logger) -> WorkflowState? {
        guard let snapshot = stored.snapshot else { return nil }
        do {
            return try WorkflowState(snapshot: snapshot, then: stored.events)
        } catch {
            logger.warning(
                "Ignored the workflow's snapshot and folded its whole history: \(error.message)",
                metadata: [WorkflowRuntime.LogKey.workflowID: "\(id)", WorkflowRuntime.LogKey.errorCode: "\(error.code)"])
            return nil
        }
    }
}
