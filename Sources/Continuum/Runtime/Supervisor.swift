import Synchronization

/// A workflow handed to the serve loop to be driven.
struct Launch: Sendable {
    var id: String
    /// Whether a timer or an event wakes it from the store (it may be parked).
    var wake = false
    /// The claim the launcher already holds (a workflow it just created), so the driver need
    /// not claim it again.
    var claim: Claim?
    /// The whole history of a workflow the launcher just created under `claim`, so the driver
    /// need not read back what it was handed (the claim fences any other writer).
    var created: CreatedHistory?
    /// Whether the launcher already took the workflow's slot (a resume or reset does, so that
    /// no other driver starts in between).
    var reserved = false
    /// Whether `claim` was taken in a batch and waits in ``PendingClaims`` for this driver.
    var pending = false
}

/// The history of a workflow just created, handed to its driver, which takes it out: the task
/// that drives the workflow keeps its launch for as long as it runs, and the history need not
/// stay in memory with it.
final class CreatedHistory: Sendable {
    private let stored: Mutex<StoredWorkflow?>

    init(_ stored: StoredWorkflow) { self.stored = Mutex(stored) }

    /// The history, the first time it is asked for; `nil` after.
    func take() -> StoredWorkflow? {
        stored.withLock { stored in
            defer { stored = nil }
            return stored
        }
    }
}

/// Drives launched workflows in many task groups, each admitted into memory first.
///
/// Removing a finished child from a Swift task group walks the group's list of children: with
/// 100,000 sleeping workflows in one group that took a third of the CPU. So workflows are
/// spread round-robin over ``laneCount`` groups.
struct Supervisor: Sendable {
    static let laneCount = 64

    private let lanes: [(stream: AsyncStream<Launch>, continuation: AsyncStream<Launch>.Continuation)]
    let admission: Admission
    let metrics: RuntimeMetrics

    init(admission: Admission, metrics: RuntimeMetrics) {
        self.admission = admission
        self.metrics = metrics
        lanes = (0..<Self.laneCount).map { _ in AsyncStream.makeStream(of: Launch.self) }
    }

    /// Adds a task per lane to `group`; each drives what its lane receives until ``finish()``.
    func start(in group: inout ThrowingDiscardingTaskGroup<any Error>, drive: @escaping @Sendable (Launch) async -> Void) {
        for lane in lanes {
            group.addTask {
                await withDiscardingTaskGroup { workflows in
                    for await launch in lane.stream {
                        // Stopping: what is still queued is recovered by the next run.
                        if Task.isCancelled { break }
                        await admission.enter()
                        metrics.resident.record(admission.inside)
                        workflows.addTask {
                            defer {
                                admission.leave()
                                metrics.resident.record(admission.inside)
                            }
                            await drive(launch)
                        }
                    }
                }
            }
        }
    }

    /// Hands `launch` to lane `lane % laneCount`.
    func assign(_ launch: Launch, lane: Int) {
        lanes[lane % lanes.count].continuation.yield(launch)
    }

    /// Ends every lane once it has handed out what it holds.
    func finish() {
        for lane in lanes { lane.continuation.finish() }
    }
}
