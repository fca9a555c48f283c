#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// What the deploy gate found: every unfinished workflow of a store replayed against this
/// build's code, as a dry run.
///
/// ```sh
/// continuum check --path ./state          # exits 1 when any workflow would break
/// continuum check --path ./state --json   # the same, for CI
/// ```
public struct CheckReport: Sendable, Codable, Equatable {
    /// One workflow's verdict.
    public struct Entry: Sendable, Codable, Equatable {
        /// How the replay went.
        public enum Verdict: String, Sendable, Codable {
            /// Its code matches its history.
            case compatible
            /// It would be suspended: the code asks for another step than history recorded.
            case wouldSuspend
            /// A recorded step's code changed (its fingerprint differs); `outcome` says what
            /// the runtime's policy would do.
            case codeChanged
            /// Its type is not registered in this build.
            case unknownType
            /// Its code fails on recorded data (a result that no longer decodes).
            case failsOnReplay
            /// Its history cannot be read.
            case unreadable
        }

        public var id: String
        public var type: String
        public var verdict: Verdict
        /// What happened, for people (the divergence, the changed step, the error).
        public var message: String
        /// The step concerned (the changed one), when there is one.
        public var step: String?
        /// For a changed step: what the policy would do (`suspend` or `rerun`).
        public var outcome: String?
        /// How many events the history holds.
        public var events: Int
        /// The version markers the replay met, with the branch each took (`false`: old).
        public var markers: [String: Bool]

        /// Whether deploying this build would break the workflow (anything but compatible,
        /// or a changed step the policy accepts).
        public var breaks: Bool { verdict != .compatible }

        init(_ result: ReplayResult) {
            id = result.id
            type = result.type
            events = result.events
            markers = result.patches
            message = result.description
            switch result.outcome {
            case .compatible: verdict = .compatible
            case .diverged: verdict = .wouldSuspend
            case .failed: verdict = .failsOnReplay
            case .unknownType: verdict = .unknownType
            case .unreadable: verdict = .unreadable
            case .codeChanged(let key, let policy):
                verdict = .codeChanged
                step = key.description
                outcome = policy.rawValue
            }
        }
    }

    /// How many workflows were replayed.
    public var checked: Int
    /// How many would break.
    public var breaking: Int
    /// How long the check took, in seconds.
    public var seconds: Double
    /// For each version marker met: how many workflows took the old branch (still needed) and
    /// how many the new one. A marker whose old branch no workflow takes can be retired.
    public var markers: [String: MarkerUse]
    /// Every workflow's verdict, breaking ones first.
    public var entries: [Entry]

    /// How the workflows replayed use a version marker.
    public struct MarkerUse: Sendable, Codable, Equatable {
        /// Workflows that took the old branch: the branch must stay.
        public var oldBranch: Int
        /// Workflows that took the new branch.
        public var newBranch: Int

        /// Creates a count.
        public init(oldBranch: Int, newBranch: Int) {
            self.oldBranch = oldBranch
            self.newBranch = newBranch
        }
    }

    /// Whether no workflow would break.
    public var passed: Bool { breaking == 0 }

    init(results: [ReplayResult], seconds: Double) {
        let entries = results.map(Entry.init)
        self.entries = entries.filter(\.breaks) + entries.filter { !$0.breaks }
        checked = entries.count
        breaking = entries.count(where: \.breaks)
        self.seconds = seconds
        var markers: [String: MarkerUse] = [:]
        for entry in entries {
            for (marker, new) in entry.markers {
                var use = markers[marker, default: MarkerUse(oldBranch: 0, newBranch: 0)]
                if new { use.newBranch += 1 } else { use.oldBranch += 1 }
                markers[marker] = use
            }
        }
        self.markers = markers
    }

    /// The report for people: every workflow that would break, the markers, and a summary.
    public func text(all: Bool = false) -> String {
        var lines: [String] = []
        for entry in entries where all || entry.breaks {
            lines.append("\(entry.breaks ? "✗" : "✓") \(entry.message)")
        }
        for (marker, use) in markers.sorted(by: { $0.key < $1.key }) {
            lines.append(
                "marker '\(marker)': \(use.oldBranch) workflow(s) on the old branch, \(use.newBranch) on the new"
                    + (use.oldBranch == 0 ? " — the old branch can be retired" : ""))
        }
        lines.append(
            "Checked \(checked) workflow(s) in \(String(format: "%.2f", seconds)) s: "
                + (passed ? "every one replays with this build." : "\(breaking) would break with this build."))
        return lines.joined(separator: "\n")
    }

    /// The report as JSON, for CI.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try encoder.encode(self)
    }
}

extension WorkflowReplayer {
    /// The deploy gate: replays every workflow of `store` with one of `statuses` (the unfinished
    /// ones by default), `concurrency` at a time, and reports what this build would do to each.
    /// Nothing runs and nothing is written: it works on a store opened read-only beside a
    /// running server.
    public func check(
        store: any EventStore, statuses: [WorkflowStatus] = [.running, .suspended], concurrency: Int = 8, pageSize: Int = 500
    ) async throws(ContinuumError) -> CheckReport {
        let started = ContinuousClock.now
        var results: [ReplayResult] = []
        for status in statuses {
            var after: StreamID?
            while true {
                let page = try await store.list(status: status, after: after, limit: pageSize)
                results += await withTaskGroup(of: ReplayResult.self) { group in
                    var next = page.makeIterator()
                    var running = 0
                    var done: [ReplayResult] = []
                    func add(_ row: ListedWorkflow) {
                        group.addTask { await self.replayStored(row, in: store) }
                        running += 1
                    }
                    while running < max(1, concurrency), let row = next.next() { add(row) }
                    while let result = await group.next() {
                        done.append(result)
                        if let row = next.next() { add(row) }
                    }
                    return done
                }
                guard page.count == pageSize, let last = page.last else { break }
                after = last.stream
            }
        }
        let elapsed = ContinuousClock.now - started
        return CheckReport(results: results.sorted { $0.id < $1.id }, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    private func replayStored(_ row: ListedWorkflow, in store: any EventStore) async -> ReplayResult {
        do {
            guard let stored = try await store.load(id: row.summary.id) else {
                return ReplayResult(id: row.summary.id, type: row.summary.type, events: 0, outcome: .unreadable(ContinuumError(.unknownWorkflow, "It was deleted.")))
            }
            return await replay(id: stored.summary.id, type: stored.summary.type, events: stored.events)
        } catch {
            return ReplayResult(id: row.summary.id, type: row.summary.type, events: 0, outcome: .unreadable(error))
        }
    }
}

extension WorkflowRuntime {
    /// The deploy gate for this runtime's store and workflow types, with its code-change policy:
    /// see ``WorkflowReplayer/check(store:statuses:concurrency:pageSize:)``.
    public func check(statuses: [WorkflowStatus] = [.running, .suspended]) async throws(ContinuumError) -> CheckReport {
        try await WorkflowReplayer(workflows: workflows, codeChange: configuration.codeChange, logger: logger).check(store: store, statuses: statuses)
    }
}
