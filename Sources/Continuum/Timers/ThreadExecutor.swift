import Foundation
import Synchronization

/// A task executor that runs every job on one dedicated thread.
///
/// The timer driver runs here so that firing timers does not queue behind the workflows on the
/// cooperative pool: with two cores and thousands of workflows starting, a timer task there
/// waited hundreds of milliseconds for a turn (Documentation/Benchmarks.md, measured facts: a 1 ms
/// ticker on the pool starved for 2 s beside blocking commits).
/// Only short, non-blocking jobs may run on it.
final class ThreadExecutor: TaskExecutor {
    private struct Queue: ~Copyable {
        var jobs: [UnownedJob] = []
        var stopped = false
        /// Runs on the thread once the wall clock reaches `deadline` (nanoseconds since 1970).
        var alarm: (deadline: Int64, action: @Sendable () -> Void)?
    }

    private let condition = NSCondition()
    // Guarded by `condition`, which every access below holds.
    private nonisolated(unsafe) var queue = Queue()

    /// Starts the thread, named `name`.
    init(name: String) {
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        queue.jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Runs `action` on the thread when the wall clock reaches `deadline` (nanoseconds since
    /// 1970), replacing the alarm set before. The thread waits for it itself, so the wake-up does
    /// not queue behind the cooperative pool as a `Task.sleep` does.
    func setAlarm(at deadline: Int64, _ action: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.alarm = (deadline, action)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread finish once its queue is empty.
    func shutdown() {
        condition.lock()
        queue.stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            var ringing: (@Sendable () -> Void)?
            while queue.jobs.isEmpty && !queue.stopped {
                guard let alarm = queue.alarm else {
                    condition.wait()
                    continue
                }
                let now = Date()
                let deadline = Date(timeIntervalSince1970: Double(alarm.deadline) / 1e9)
                if now >= deadline {
                    ringing = alarm.action
                    queue.alarm = nil
                    break
                }
                // Capped: Foundation traps converting a date far in the future.
                _ = condition.wait(until: min(deadline, now.addingTimeInterval(3_600)))
            }
            if queue.jobs.isEmpty && queue.stopped && ringing == nil {
                condition.unlock()
                return
            }
            swap(&batch, &queue.jobs)
            condition.unlock()
            ringing?()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
