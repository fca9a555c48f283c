public import ArgumentParser
public import Continuum
import ContinuumHTTP
import ContinuumServer
import Foundation

/// `continuum list`: the workflows in a store.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the workflows in a store (an LMDB directory or a PostgreSQL database).",
        discussion: "One line each: id, type, status, start time, and for a suspended workflow the suspension's code.")

    @OptionGroup var storage: StoreOptions<StateDirectory>

    @Option(help: "Only workflows with this status: \(WorkflowStatus.names).")
    var status: WorkflowStatus?

    @Option(help: "At most this many.")
    var limit = 100

    func run() async throws {
        // A suspended row also gets the suspension's code, read from its history.
        let rows = try await storage.withStore { store in
            var rows: [(WorkflowSummary, String?)] = []
            for row in try await store.list(status: status, after: nil, limit: limit) {
                guard row.summary.status == .suspended else {
                    rows.append((row.summary, nil))
                    continue
                }
                let events = try await store.load(id: row.summary.id)?.events ?? []
                rows.append((row.summary, suspension(in: events)?.code ?? "unknown"))
            }
            return rows
        }
        for (summary, code) in rows {
            print("\(summary.id)\t\(summary.type)\t\(summary.status)\t\(Date(nanoseconds: summary.createdAt))" + (code.map { "\t\($0)" } ?? ""))
        }
    }
}

/// `continuum show`: a workflow's history as a readable timeline.
struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a workflow's history.",
        discussion: "Every stored event; those a reset superseded are marked with ~ and the reset that superseded them.")

    @OptionGroup var storage: StoreOptions<StateDirectory>

    @Argument(help: "The workflow's id.")
    var id: String

    func run() async throws {
        guard let stored = try await storage.withStore({ store in try await store.load(id: id) }) else {
            throw ValidationError("No workflow has id '\(id)' in \(try storage.location()).")
        }
        print("\(stored.summary.id)  type \(stored.summary.type)  \(stored.summary.status)")
        if stored.summary.status == .suspended, let record = suspension(in: stored.events) {
            print("  suspended (\(record.code)): \(record.message)")
            if let recorded = record.recorded {
                print("    history recorded \(recorded); the code asked for \(record.requested.map(\.description) ?? "nothing")")
            }
        }
        // Events a reset superseded stay in the stream; they are marked, not hidden.
        let superseded = (try? Supersession.resets(in: stored.events)) ?? [:]
        if !superseded.isEmpty { print("  (~ marks the \(superseded.count) events a reset superseded: kept, no longer in effect)") }
        for event in stored.events {
            let text: String
            switch event.kind {
            case .workflowStarted(let type, let input, _):
                text = "started \(type) input \(String(decoding: input, as: UTF8.self))"
            case .stepCompleted(let step, let result):
                text = "step #\(step.index) \(step.key) completed → \(String(decoding: result, as: UTF8.self))"
            case .stepFailed(let step, let failure):
                text = "step #\(step.index) \(step.key) failed: \(failure.type): \(failure.message)"
            case .workflowCompleted(let output):
                text = "completed → \(String(decoding: output, as: UTF8.self))"
            case .workflowFailed(let failure):
                text = "failed: \(failure.type): \(failure.message)"
            case .waitStarted(let step, let wait, let due):
                let what: String
                switch wait {
                case .timer: what = "sleep"
                case .event(let name): what = "wait for event '\(name)'"
                }
                text = "\(what) \(step.key)" + (due.map { " until \(Date(nanoseconds: $0))" } ?? "")
            case .waitEnded(let key, let outcome):
                switch outcome {
                case .fired(let lateness): text = "timer \(key) fired (\(Double(lateness) / 1e6) ms late)"
                case .received(let sequence): text = "wait \(key) got event #\(sequence)"
                case .timedOut: text = "wait \(key) timed out"
                case .cancelled: text = "wait \(key) cancelled"
                }
            case .cancelRequested(let reason, _):
                text = "cancellation requested: \(reason)"
            case .workflowCancelled(let reason):
                text = "cancelled: \(reason)"
            case .stepRetrying(let step, let attempt, let failure, let next):
                text = "step #\(step.index) \(step.key) attempt \(attempt) failed: \(failure.type): \(failure.message); next attempt at \(Date(nanoseconds: next))"
            case .eventReceived(let name, let payload, let dedupKey):
                text = "event '\(name)' received \(String(decoding: payload, as: UTF8.self))" + (dedupKey.map { " (key \($0))" } ?? "")
            case .workflowSuspended(let record):
                text = "suspended (\(record.code)): \(record.message)"
            case .workflowResumed(let action):
                text = "resumed by \(action.by): \(action.reason)"
            case .workflowReset(let target, let generation, let action):
                text = "reset to event #\(target) (generation \(generation)) by \(action.by): \(action.reason)"
            case .workflowForked(let from, let sequence, let action):
                text = "forked from '\(from)' at event #\(sequence) by \(action.by): \(action.reason)"
            case .markerRecorded(let marker):
                text = "version marker '\(marker)' recorded"
            case .startedAsChild(let parent, let key):
                text = "child '\(key)' of workflow '\(parent)'"
            case .deadlineSet(let due):
                text = "must end by \(Date(nanoseconds: due))"
            case .deadlinePassed:
                text = "deadline passed"
            case .continuedAsNew(let input):
                text = "continued as new with \(String(decoding: input, as: UTF8.self))"
            case .enqueued(let entry):
                text = "runs on queue '\(entry.name)'" + (entry.partition.map { ", partition '\($0)'" } ?? "") + ", priority \(entry.priority)"
            }
            let mark = superseded[event.sequence].map { "  [superseded by reset #\($0.generation) at event #\($0.sequence)]" } ?? ""
            print("\(mark.isEmpty ? " " : "~") \(String(format: "%4d", event.sequence))  \(event.date)  \(text)\(mark)")
        }
    }
}

/// The suspension the history records last, if any.
private func suspension(in events: [HistoryEvent]) -> SuspensionRecord? {
    for event in events.reversed() {
        if case .workflowSuspended(let record) = event.kind { return record }
    }
    return nil
}

extension Date {
    init(nanoseconds: Int64) { self.init(timeIntervalSince1970: Double(nanoseconds) / 1e9) }
}

extension WorkflowStatus: ExpressibleByArgument {
    public init?(argument: String) { self.init(named: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
