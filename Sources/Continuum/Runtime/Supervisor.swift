import DequeModule
import Metrics
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

    init(_ stored: consuming StoredWorkflow) { self.stored = Mutex(stored) }

    /// The history, the first time it is asked for; `nil` after.
    func take() -> StoredWorkflow? {
        stored.withLock { $0.take() }
    }
}

/// Where launched workflows wait for the task that drives them: ``laneCount`` lanes, each a
/// queue that one of the ``Supervisor``'s tasks takes from, handed launches round-robin.
///
/// `start`, a wake or a recovery hands its launch straight to a lane: no serve loop in between,
/// and no `AsyncStream`, whose generic code (not specialized for `Launch`) looked up its
/// storage's metadata about seven times per element, at both ends. So a workflow started while
/// recovery still pages through the store runs at once, beside the recovered ones (admission
/// bounds them all alike); it no longer waits until the runtime is ready. Launches handed over
/// before the lanes' tasks start wait in their lanes; after ``finish()`` (the runtime stopped)
/// they are dropped, and the next run recovers those workflows from the store.
final class Launcher: Sendable {
    static let laneCount = 64

    private struct Queue {
        var launches = Deque<Launch>()
        /// The lane's task, while it waits for a launch.
        var taker: UnsafeContinuation<Launch?, Never>?
        var finished = false
    }

    private final class Lane: Sendable {
        let queue = Mutex(Queue())
    }

    private let lanes = (0..<Launcher.laneCount).map { _ in Lane() }
    private let next = Atomic<Int>(0)

    /// Queues `launch` on the next lane. Returns `false` when the launcher is finished (the
    /// launch is dropped).
    @discardableResult
    func yield(_ launch: consuming Launch) -> Bool {
        let lane = lanes[next.wrappingAdd(1, ordering: .relaxed).oldValue & (Self.laneCount - 1)]
        // Moved, not copied, into the queue or to the taker (a copy retained what it holds).
        var launch = Optional(launch)
        let (queued, taker) = lane.queue.withLock { queue -> (Bool, UnsafeContinuation<Launch?, Never>?) in
            if queue.finished { return (false, nil) }
            if let taker = queue.taker {
                queue.taker = nil
                return (true, taker)
            }
            queue.launches.append(launch.take()!)
            return (true, nil)
        }
        if let taker { taker.resume(returning: launch.take()) }
        return queued
    }

    /// The next launch of lane `index`, waiting for one; `nil` once the launcher is finished and
    /// the lane empty, or when the waiting task is cancelled.
    func take(lane index: Int) async -> Launch? {
        let lane = lanes[index]
        let now = lane.queue.withLock { queue -> Launch?? in
            if let launch = queue.launches.popFirst() { return .some(launch) }
            return queue.finished ? .some(nil) : nil
        }
        if let now { return now }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (taker: UnsafeContinuation<Launch?, Never>) in
                let answer = lane.queue.withLock { queue -> Launch?? in
                    if let launch = queue.launches.popFirst() { return .some(launch) }
                    if queue.finished || Task.isCancelled { return .some(nil) }
                    queue.taker = taker
                    return nil
                }
                if let answer { taker.resume(returning: answer) }
            }
        } onCancel: {
            lane.queue.withLock { queue in
                defer { queue.taker = nil }
                return queue.taker
            }?.resume(returning: nil)
        }
    }

    /// The run is over: drops what is still queued and every launch handed over from now on
    /// (the next run recovers those workflows from the store). A lane's task still waiting, if
    /// any, gets `nil`; the lanes' tasks normally ended already, with the run's cancellation.
    func finish() {
        for lane in lanes {
            lane.queue.withLock { queue in
                queue.finished = true
                queue.launches.removeAll()
                defer { queue.taker = nil }
                return queue.taker
            }?.resume(returning: nil)
        }
    }
}

/// Drives launched workflows in many task groups, each admitted into memory first.
///
/// Removing a finished child from a Swift task group walks the group's list of children: with
/// 100,000 sleeping workflows in one group that took a third of the CPU. So workflows are
/// spread round-robin over the ``Launcher``'s lanes, a group each.
struct Supervisor: Sendable {
    let launcher: Launcher
    let admission: Admission
    /// The gauge of workflows in memory: the only metric a lane records. (A lane that captured
    /// all of ``RuntimeMetrics`` copied it into every workflow's task: eleven references
    /// retained and released per workflow.)
    let resident: Gauge

    /// Adds a task per lane to `group`; each drives what its lane receives until the launcher
    /// finishes or the group is cancelled.
    func start(in group: inout ThrowingDiscardingTaskGroup<any Error>, drive: @escaping @Sendable (Launch) async -> Void) {
        for lane in 0..<Launcher.laneCount {
            group.addTask { [launcher, admission, resident] in
                await withDiscardingTaskGroup { workflows in
                    while let launch = await launcher.take(lane: lane) {
                        // Stopping: what is still queued is recovered by the next run.
                        if Task.isCancelled { break }
                        await admission.enter()
                        resident.record(admission.inside)
                        workflows.addTask {
                            defer {
                                admission.leave()
                                resident.record(admission.inside)
                            }
                            await drive(launch)
                        }
                    }
                }
            }
        }
    }
}
