public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real child process for crash tests: start it, wait for a line it prints, kill it with
/// SIGKILL, and wait for its exit, without blocking the caller's thread.
///
/// ```swift
/// let child = try ChildProcess(executable: workerPath, arguments: ["--state", dir])
/// try await child.waitForLine("ready")
/// child.kill()
/// let exit = await child.exit()   // .signalled(SIGKILL)
/// ```
public final class ChildProcess: Sendable {
    /// How a child process ended.
    public enum Exit: Sendable, Equatable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// A signal ended it.
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signalled(let signal): "killed by signal \(signal)"
            }
        }
    }

    private struct State {
        var output = ""
        var lineWaiters: [(String, CheckedContinuation<Void, any Error>)] = []
        /// How the child ended, published once its output is read to the end too.
        var exit: Exit?
        var exitWaiters: [CheckedContinuation<Exit, Never>] = []
        /// How the child ended, as soon as it did.
        var terminated: Exit?
        /// Whether the reader reached the end of the child's output.
        var outputEnded = false
    }

    private final class Shared: Sendable {
        let state = Mutex(State())

        /// Publishes the child's exit once it ended and its output was read to the end (or,
        /// with `force`, once it ended): resumes those waiting for the exit, fails those waiting
        /// for a line. The termination handler can run before the reader has read the last of
        /// the output, and a caller reading ``ChildProcess/output`` after ``ChildProcess/exit()``
        /// must see all of it.
        func publishExit(force: Bool) {
            let published = state.withLock { state -> (Exit, [CheckedContinuation<Exit, Never>], [(String, CheckedContinuation<Void, any Error>)])? in
                guard state.exit == nil, let terminated = state.terminated, state.outputEnded || force else { return nil }
                state.exit = terminated
                defer {
                    state.exitWaiters = []
                    state.lineWaiters = []
                }
                return (terminated, state.exitWaiters, state.lineWaiters)
            }
            guard case let (exit, exitWaiters, lineWaiters)? = published else { return }
            for waiter in exitWaiters { waiter.resume(returning: exit) }
            for (line, waiter) in lineWaiters { waiter.resume(throwing: ChildProcessError(message: "the child \(exit) before printing '\(line)'")) }
        }
    }

    private let process: Process
    private let shared = Shared()

    /// Starts `executable` with `arguments`; its standard output is captured, its standard
    /// error goes to this process's.
    public init(executable: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        self.process = process
        // A blocking reader on a thread of its own, until end of file: dispatch-based
        // readability handlers can outlive the descriptor they watch and crash the process.
        let reader = pipe.fileHandleForReading
        let thread = Thread { [shared] in
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                let ready = shared.state.withLock { state in
                    state.output += String(decoding: data, as: UTF8.self)
                    let output = state.output
                    let (matched, waiting) = state.lineWaiters.reduce(
                        into: ([CheckedContinuation<Void, any Error>](), [(String, CheckedContinuation<Void, any Error>)]())
                    ) {
                        if output.contains($1.0 + "\n") { $0.0.append($1.1) } else { $0.1.append($1) }
                    }
                    state.lineWaiters = waiting
                    return matched
                }
                for waiter in ready { waiter.resume() }
            }
            try? reader.close()
            shared.state.withLock { $0.outputEnded = true }
            shared.publishExit(force: false)
        }
        thread.name = "child-process-reader"
        thread.start()
        process.terminationHandler = { [shared] process in
            let exit: Exit = process.terminationReason == .uncaughtSignal ? .signalled(process.terminationStatus) : .exited(process.terminationStatus)
            shared.state.withLock { $0.terminated = exit }
            shared.publishExit(force: false)
            // A grandchild that inherited the pipe can hold it open after the child ended: the
            // exit is published after a grace period even if the output has not ended.
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(5)) { shared.publishExit(force: true) }
        }
        try process.run()
    }

    /// The child's process id.
    public var pid: Int32 { process.processIdentifier }

    /// Everything the child printed to standard output so far.
    public var output: String { shared.state.withLock { $0.output } }

    /// Waits until the child prints `line` on a line of its own.
    ///
    /// - Throws: ``ChildProcessError`` when the child exits first.
    public func waitForLine(_ line: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, any Error>? = shared.state.withLock { state in
                if state.output.contains(line + "\n") { return .success(()) }
                if let exit = state.exit { return .failure(ChildProcessError(message: "the child \(exit) before printing '\(line)'")) }
                state.lineWaiters.append((line, continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// Sends SIGTERM, asking the child to shut down gracefully.
    public func terminate() {
        signal(SIGTERM)
    }

    /// Sends `signal`.
    public func signal(_ signal: Int32) {
        _ = Glibc.kill(process.processIdentifier, signal)
    }

    /// Sends SIGKILL.
    public func kill() {
        signal(SIGKILL)
    }

    /// Waits for the child to end and for everything it printed to be read, so that
    /// ``output`` is complete afterwards.
    public func exit() async -> Exit {
        await withCheckedContinuation { continuation in
            let exit = shared.state.withLock { state in
                if state.exit == nil { state.exitWaiters.append(continuation) }
                return state.exit
            }
            if let exit { continuation.resume(returning: exit) }
        }
    }

    /// How the child exited, or `nil` — after killing it — when it runs longer than `timeout`:
    /// a hang fails the test instead of blocking CI.
    public func exit(within timeout: Duration) async throws -> Exit? {
        try await withThrowingTaskGroup(of: Exit?.self) { group in
            group.addTask { await self.exit() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            let first = try await group.next() ?? nil
            if first == nil {
                kill()
                _ = await exit()
            }
            return first
        }
    }

    /// Whether the child has ended.
    public var hasExited: Bool { shared.state.withLock { $0.exit != nil } }
}

/// A child process did not do what the test waited for.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// What happened.
    public var message: String
    public var description: String { message }
}

/// The path of an executable built beside the running test bundle, such as a crash worker.
public func builtExecutable(named name: String) -> String? {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    return nil
}

/// A small seeded random number generator (SplitMix64), so a failing random schedule can be replayed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator with `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A port for a test's server: random, and below Linux's ephemeral range (32768–60999), from
/// which every outgoing connection (to PostgreSQL, to a test's own server) takes its local port,
/// so that a connection cannot be holding it when the server binds.
public func randomServerPort() -> Int {
    Int.random(in: 20_000..<32_000)
}
