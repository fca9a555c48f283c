#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The store's handle on one workflow's stream, returned when the workflow is created or loaded.
public struct StreamID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The store's own number for the stream; stores assign them in creation order so that the
    /// streams of workflows started together sit together on disk.
    public var rawValue: UInt64

    /// Wraps a store's stream number.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public var description: String { "#\(rawValue)" }

    public static func < (lhs: StreamID, rhs: StreamID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Who holds claims on workflows: one runtime in one process.
public struct OwnerID: Hashable, Sendable, CustomStringConvertible {
    /// The owner's name, unique among the processes sharing a store.
    public var rawValue: String

    /// Wraps an owner's name.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A new name for this process: host, process id and a random part.
    public static func unique() -> OwnerID {
        OwnerID("\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8))")
    }

    public var description: String { rawValue }
}

/// Proof that a runtime holds a workflow: the store checks it on every append.
public struct FencingToken: Hashable, Sendable, CustomStringConvertible {
    /// Who holds the claim.
    public var owner: OwnerID
    /// How many times the workflow has been claimed, this claim included; a later claim has a
    /// larger epoch and makes every earlier token stale.
    public var epoch: UInt64

    /// Creates a token.
    public init(owner: OwnerID, epoch: UInt64) {
        self.owner = owner
        self.epoch = epoch
    }

    public var description: String { "\(owner)@\(epoch)" }
}

/// A runtime's claim on one workflow.
public struct Claim: Hashable, Sendable {
    /// The workflow's stream.
    public var stream: StreamID
    /// The token appends under this claim carry.
    public var token: FencingToken

    /// Creates a claim.
    public init(stream: StreamID, token: FencingToken) {
        self.stream = stream
        self.token = token
    }
}

/// A workflow a store claimed for a runtime that asked for work nobody does
/// (``EventStore/claimAvailable(owner:overdue:limit:)``).
public struct ClaimedWorkflow: Hashable, Sendable {
    /// The workflow's id.
    public var id: String
    /// The claim taken for the runtime; the workflow is no longer parked.
    public var claim: Claim

    /// Creates a claimed workflow.
    public init(id: String, claim: Claim) {
        self.id = id
        self.claim = claim
    }
}

/// What a store accepts, and how it shares workflows between processes. The runtime checks ids,
/// names and payloads against these before it submits anything.
public struct StoreLimits: Hashable, Sendable {
    /// The longest workflow id, in bytes of UTF-8.
    public var maxWorkflowIDBytes: Int
    /// The longest event name or dedup key, in bytes of UTF-8.
    public var maxNameBytes: Int
    /// The largest payload (input, step result, event payload, output) the store can hold, in
    /// bytes. The runtime's own `maxPayloadSize` may be lower, never higher.
    public var maxPayloadBytes: Int
    /// How long a claim lasts unless renewed; `nil` when claims never expire because one process
    /// owns the whole store (LMDB's file lock sees to it).
    public var leaseDuration: Duration?

    /// Creates limits.
    public init(maxWorkflowIDBytes: Int, maxNameBytes: Int = 256, maxPayloadBytes: Int = 64 << 20, leaseDuration: Duration? = nil) {
        self.maxWorkflowIDBytes = maxWorkflowIDBytes
        self.maxNameBytes = maxNameBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.leaseDuration = leaseDuration
    }
}

/// What ``EventStore/create(_:)`` found.
public enum CreateOutcome: Sendable, Equatable {
    /// A new workflow was created and claimed for the request's owner; its start is durable.
    case created(Claim)
    /// A workflow with that id existed already; nothing was written and nothing was claimed.
    case existing(StreamID, WorkflowSummary)
}

/// A request to create a workflow.
public struct CreateRequest: Sendable {
    /// The workflow's id.
    public var id: String
    /// Its registered type name.
    public var type: String
    /// Its `workflowStarted` event (sequence 0).
    public var started: HistoryEvent
    /// Who claims the new workflow.
    public var owner: OwnerID
    /// Events that follow the start in the same transaction (a fork's copied history), numbered
    /// from 1; usually none.
    public var history: [HistoryEvent]
    /// Timers of those events to add to the due-time index.
    public var timers: [TimerChange]

    /// Creates a request.
    public init(id: String, type: String, started: HistoryEvent, owner: OwnerID, history: [HistoryEvent] = [], timers: [TimerChange] = []) {
        self.id = id
        self.type = type
        self.started = started
        self.owner = owner
        self.history = history
        self.timers = timers
    }
}

/// A batch of events for one workflow, appended atomically under a claim.
public struct AppendRequest: Sendable {
    /// The claim the events are appended under; the store refuses a stale one.
    public var fence: Claim
    /// The workflow's id (for the summary record and error messages).
    public var id: String
    /// The events, with consecutive sequence numbers following the last stored one.
    public var events: [HistoryEvent]
    /// The workflow's new status, when these events change it.
    public var status: WorkflowStatus?
    /// Timers to add to or remove from the due-time index (a sleep's deadline, a wait's timeout).
    public var timers: [TimerChange]
    /// Whether the claim ends with this append: the workflow leaves its owner's memory. A
    /// running workflow is then *parked*: recovery leaves it alone until one of its indexed
    /// timers comes due or an event arrives, and whoever wakes it claims it again.
    public var release: Bool
    /// The workflow's folded state once these events are applied, which the store keeps in
    /// place of the previous snapshot, in the same transaction; ``WorkflowSnapshot/through``
    /// is then the number of events the stream holds. See ``EventStore/loadRecent(id:)``.
    ///
    /// A constant, unlike the other fields: while it was a `var`, Swift 6.3's optimizer built
    /// every request twice and copied one into the other (an `outlined init with copy`, about
    /// twenty retains and releases per three-step workflow), whatever the initializer's order.
    public let snapshot: WorkflowSnapshot?

    /// The workflow's stream.
    public var stream: StreamID { fence.stream }

    /// Creates a request.
    public init(
        fence: Claim, id: String, events: [HistoryEvent], status: WorkflowStatus? = nil, timers: [TimerChange] = [], release: Bool = false,
        snapshot: WorkflowSnapshot? = nil
    ) {
        self.fence = fence
        self.id = id
        self.events = events
        self.status = status
        self.timers = timers
        self.release = release
        self.snapshot = snapshot
    }
}

/// A workflow's folded state after its first ``through`` events: what a wake loads instead of
/// those events (a *compacted history*).
///
/// The runtime writes one with an append once a workflow's history has grown enough since the
/// last (``WorkflowRuntime/Configuration/snapshotEvery``). The events stay stored and readable
/// (``EventStore/load(id:)``, the history API); a snapshot is a cache of their fold, in a format
/// of the runtime's own that a store keeps as opaque bytes. A snapshot the runtime cannot read
/// (damaged, or written by a release with another format) is ignored and the events are folded
/// instead, so nothing depends on it but speed.
public struct WorkflowSnapshot: Sendable, Hashable {
    /// How many events it covers: the fold of events `0..<through`.
    public var through: UInt32
    /// The encoded state.
    public var bytes: [UInt8]

    /// Creates a snapshot.
    public init(through: UInt32, bytes: [UInt8]) {
        self.through = through
        self.bytes = bytes
    }
}

/// A change to the due-time index of timers.
public enum TimerChange: Sendable, Hashable {
    /// A timer of the workflow is due at this time (nanoseconds since 1970).
    case add(Int64)
    /// The timer due at this time is no longer needed.
    case remove(Int64)
}

/// A timer from the store's due-time index.
public struct DueTimer: Sendable, Hashable, Comparable {
    /// When it is due, in nanoseconds since 1970.
    public var due: Int64
    /// The workflow's stream.
    public var stream: StreamID
    /// The workflow's id.
    public var id: String

    /// Creates a timer entry.
    public init(due: Int64, stream: StreamID, id: String) {
        self.due = due
        self.stream = stream
        self.id = id
    }

    public static func < (lhs: DueTimer, rhs: DueTimer) -> Bool {
        (lhs.due, lhs.stream.rawValue) < (rhs.due, rhs.stream.rawValue)
    }
}

/// A workflow as loaded from the store: where its stream is, its summary and its events.
public struct StoredWorkflow: Sendable {
    /// The workflow's stream.
    public var stream: StreamID
    /// Its summary record.
    public var summary: WorkflowSummary
    /// Its events, in sequence order: all of them, or, with a ``snapshot``, those after it.
    public var events: [HistoryEvent]
    /// The snapshot that stands for the events before ``events``, when the store was asked for
    /// the recent part only (``EventStore/loadRecent(id:)``) and holds one. A constant for the
    /// reason ``AppendRequest/snapshot`` is.
    public let snapshot: WorkflowSnapshot?

    /// Creates a stored workflow.
    public init(stream: StreamID, summary: WorkflowSummary, events: [HistoryEvent], snapshot: WorkflowSnapshot? = nil) {
        self.stream = stream
        self.summary = summary
        self.events = events
        self.snapshot = snapshot
    }
}

/// One row of a store's listing: a workflow's stream (the listing's cursor) and its summary.
public struct ListedWorkflow: Sendable, Hashable {
    /// The workflow's stream; pass the last row's as `after` for the next page.
    public var stream: StreamID
    /// Its summary record.
    public var summary: WorkflowSummary

    /// Creates a row.
    public init(stream: StreamID, summary: WorkflowSummary) {
        self.stream = stream
        self.summary = summary
    }
}

/// How many workflows have each status, as the store keeps count.
public struct StatusCounts: Sendable, Hashable {
    /// Counts by status; parked workflows count as running.
    public var byStatus: [WorkflowStatus: Int]
    /// How many of the running workflows are parked (waiting in the store, not in memory).
    public var parked: Int

    /// Creates counts.
    public init(byStatus: [WorkflowStatus: Int] = [:], parked: Int = 0) {
        self.byStatus = byStatus
        self.parked = parked
    }

    /// How many workflows have `status`.
    public subscript(status: WorkflowStatus) -> Int { byStatus[status, default: 0] }

    /// How many workflows there are.
    public var total: Int { byStatus.values.reduce(0, +) }

    /// Equal when every status has the same count (a missing status counts zero).
    public static func == (lhs: StatusCounts, rhs: StatusCounts) -> Bool {
        lhs.parked == rhs.parked && WorkflowStatus.allCases.allSatisfy { lhs[$0] == rhs[$0] }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(parked)
        for status in WorkflowStatus.allCases { hasher.combine(self[status]) }
    }
}
