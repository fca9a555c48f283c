import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Names the calling thread as the kernel keeps it, which `top -H`, `ps -L` and `perf` show.
///
/// Foundation's `Thread.name` does not reach the kernel on Linux: a thread named only through it
/// shows the name of the pool thread that started it ("oot.default-qos"). Linux keeps at most 15
/// bytes and refuses a longer name, so `name` must fit. Glibc's `pthread_setname_np` is not
/// imported into Swift, so on Linux the name is written where the kernel keeps it.
package func nameCurrentThread(_ name: String) {
    precondition(name.utf8.count <= 15, "A thread name holds at most 15 bytes: '\(name)'")
    #if os(Linux)
    let file = open("/proc/thread-self/comm", O_WRONLY)
    guard file >= 0 else { return }  // no /proc: the name is cosmetic
    _ = name.withCString { write(file, $0, strlen($0)) }
    close(file)
    #elseif canImport(Darwin)
    _ = pthread_setname_np(name)
    #endif
}

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

    /// Starts the thread, named `name` (at most 15 bytes: ``nameCurrentThread(_:)``).
    init(name: String) {
        let thread = Thread { [self] in
            nameCurrentThread(name)
            loop()
        }
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
