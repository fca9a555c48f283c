#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The JSON form of an event: what `continuum export` writes, the HTTP API's history returns and
/// ``WorkflowReplayer`` reads back. It keeps everything a replay needs: full-precision times
/// (nanoseconds), step positions and concurrency flags, and every payload as its exact JSON text.
///
/// ```json
/// {"sequence": 1, "timestamp": 1767225600123456789, "time": "2026-01-01T00:00:00.123Z",
///  "kind": "stepCompleted", "step": {"name": "charge", "occurrence": 0, "index": 0, "concurrent": false},
///  "result": "{\"receipt\":\"r-17\"}"}
/// ```
///
/// `time` is for people and ignored when read; `timestamp` is the event's time.
extension HistoryEvent: Codable {
    private enum Key: String, CodingKey {
        case sequence, timestamp, time, kind
        case type, input, traceContext, step, result, error, output
        case waitsFor, event, due, until, outcome, latenessNanoseconds, eventSequence
        case attempt, nextAttemptAt, reason, payload, dedupKey
        case suspension, action, toSequence, generation, from, marker, by, parent, childKey, queue
    }

    /// The names of the event kinds, as `kind` holds them.
    enum KindName: String, Codable {
        case workflowStarted, stepCompleted, stepFailed, workflowCompleted, workflowFailed, waitStarted, waitEnded
        case stepRetrying, cancelRequested, workflowCancelled, eventReceived
        case workflowSuspended, workflowResumed, workflowReset, workflowForked, markerRecorded, startedAsChild
        case deadlineSet, deadlinePassed, continuedAsNew, enqueued
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(Self.iso(timestamp), forKey: .time)
        func text(_ bytes: [UInt8], _ key: Key) throws { try container.encode(String(decoding: bytes, as: UTF8.self), forKey: key) }
        switch kind {
        case .workflowStarted(let type, let input, let traceContext):
            try container.encode(KindName.workflowStarted, forKey: .kind)
            try container.encode(type, forKey: .type)
            try text(input, .input)
            if !traceContext.isEmpty { try container.encode(traceContext, forKey: .traceContext) }
        case .stepCompleted(let step, let result):
            try container.encode(KindName.stepCompleted, forKey: .kind)
            try container.encode(step, forKey: .step)
            try text(result, .result)
        case .stepFailed(let step, let failure):
            try container.encode(KindName.stepFailed, forKey: .kind)
            try container.encode(step, forKey: .step)
            try container.encode(failure, forKey: .error)
        case .workflowCompleted(let output):
            try container.encode(KindName.workflowCompleted, forKey: .kind)
            try text(output, .output)
        case .workflowFailed(let failure):
            try container.encode(KindName.workflowFailed, forKey: .kind)
            try container.encode(failure, forKey: .error)
        case .waitStarted(let step, let wait, let due):
            try container.encode(KindName.waitStarted, forKey: .kind)
            try container.encode(step, forKey: .step)
            switch wait {
            case .timer:
                try container.encode("timer", forKey: .waitsFor)
            case .event(let name):
                try container.encode("event", forKey: .waitsFor)
                try container.encode(name, forKey: .event)
            }
            if let due {
                try container.encode(due, forKey: .due)
                try container.encode(Self.iso(due), forKey: .until)
            }
        case .waitEnded(let key, let outcome):
            try container.encode(KindName.waitEnded, forKey: .kind)
            try container.encode(key, forKey: .step)
            switch outcome {
            case .fired(let lateness):
                try container.encode("fired", forKey: .outcome)
                try container.encode(lateness, forKey: .latenessNanoseconds)
            case .received(let sequence):
                try container.encode("received", forKey: .outcome)
                try container.encode(sequence, forKey: .eventSequence)
            case .timedOut: try container.encode("timedOut", forKey: .outcome)
            case .cancelled: try container.encode("cancelled", forKey: .outcome)
            }
        case .stepRetrying(let step, let attempt, let failure, let next):
            try container.encode(KindName.stepRetrying, forKey: .kind)
            try container.encode(step, forKey: .step)
            try container.encode(attempt, forKey: .attempt)
            try container.encode(failure, forKey: .error)
            try container.encode(next, forKey: .nextAttemptAt)
        case .cancelRequested(let reason, let by):
            try container.encode(KindName.cancelRequested, forKey: .kind)
            try container.encode(reason, forKey: .reason)
            try container.encodeIfPresent(by, forKey: .by)
        case .workflowCancelled(let reason):
            try container.encode(KindName.workflowCancelled, forKey: .kind)
            try container.encode(reason, forKey: .reason)
        case .eventReceived(let name, let payload, let dedupKey):
            try container.encode(KindName.eventReceived, forKey: .kind)
            try container.encode(name, forKey: .event)
            try text(payload, .payload)
            try container.encodeIfPresent(dedupKey, forKey: .dedupKey)
        case .workflowSuspended(let record):
            try container.encode(KindName.workflowSuspended, forKey: .kind)
            try container.encode(record, forKey: .suspension)
        case .workflowResumed(let action):
            try container.encode(KindName.workflowResumed, forKey: .kind)
            try container.encode(action, forKey: .action)
        case .workflowReset(let toSequence, let generation, let action):
            try container.encode(KindName.workflowReset, forKey: .kind)
            try container.encode(toSequence, forKey: .toSequence)
            try container.encode(generation, forKey: .generation)
            try container.encode(action, forKey: .action)
        case .workflowForked(let from, let sequence, let action):
            try container.encode(KindName.workflowForked, forKey: .kind)
            try container.encode(from, forKey: .from)
            try container.encode(sequence, forKey: .eventSequence)
            try container.encode(action, forKey: .action)
        case .markerRecorded(let id):
            try container.encode(KindName.markerRecorded, forKey: .kind)
            try container.encode(id, forKey: .marker)
        case .startedAsChild(let parent, let key):
            try container.encode(KindName.startedAsChild, forKey: .kind)
            try container.encode(parent, forKey: .parent)
            try container.encode(key, forKey: .childKey)
        case .deadlineSet(let due):
            try container.encode(KindName.deadlineSet, forKey: .kind)
            try container.encode(due, forKey: .due)
            try container.encode(Self.iso(due), forKey: .until)
        case .deadlinePassed:
            try container.encode(KindName.deadlinePassed, forKey: .kind)
        case .continuedAsNew(let input):
            try container.encode(KindName.continuedAsNew, forKey: .kind)
            try text(input, .input)
        case .enqueued(let entry):
            try container.encode(KindName.enqueued, forKey: .kind)
            try container.encode(entry, forKey: .queue)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let sequence = try container.decode(UInt32.self, forKey: .sequence)
        let timestamp = try container.decode(Int64.self, forKey: .timestamp)
        func bytes(_ key: Key) throws -> [UInt8] { Array(try container.decode(String.self, forKey: key).utf8) }
        let kind: Kind
        switch try container.decode(KindName.self, forKey: .kind) {
        case .workflowStarted:
            kind = .workflowStarted(
                type: try container.decode(String.self, forKey: .type), input: try bytes(.input),
                traceContext: try container.decodeIfPresent([String: String].self, forKey: .traceContext) ?? [:])
        case .stepCompleted:
            kind = .stepCompleted(try container.decode(StepRecord.self, forKey: .step), result: try bytes(.result))
        case .stepFailed:
            kind = .stepFailed(try container.decode(StepRecord.self, forKey: .step), failure: try container.decode(FailureRecord.self, forKey: .error))
        case .workflowCompleted:
            kind = .workflowCompleted(output: try bytes(.output))
        case .workflowFailed:
            kind = .workflowFailed(try container.decode(FailureRecord.self, forKey: .error))
        case .waitStarted:
            let wait: WaitKind
            switch try container.decode(String.self, forKey: .waitsFor) {
            case "timer": wait = .timer
            case "event": wait = .event(try container.decode(String.self, forKey: .event))
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .waitsFor, in: container, debugDescription: "unknown wait '\(other)'")
            }
            kind = .waitStarted(
                try container.decode(StepRecord.self, forKey: .step), wait: wait, due: try container.decodeIfPresent(Int64.self, forKey: .due))
        case .waitEnded:
            let outcome: WaitOutcome
            switch try container.decode(String.self, forKey: .outcome) {
            case "fired": outcome = .fired(latenessNanoseconds: try container.decode(Int64.self, forKey: .latenessNanoseconds))
            case "received": outcome = .received(sequence: try container.decode(UInt32.self, forKey: .eventSequence))
            case "timedOut": outcome = .timedOut
            case "cancelled": outcome = .cancelled
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .outcome, in: container, debugDescription: "unknown wait outcome '\(other)'")
            }
            kind = .waitEnded(try container.decode(StepKey.self, forKey: .step), outcome: outcome)
        case .stepRetrying:
            kind = .stepRetrying(
                try container.decode(StepRecord.self, forKey: .step), attempt: try container.decode(UInt32.self, forKey: .attempt),
                failure: try container.decode(FailureRecord.self, forKey: .error), nextAttemptAt: try container.decode(Int64.self, forKey: .nextAttemptAt))
        case .cancelRequested:
            kind = .cancelRequested(reason: try container.decode(String.self, forKey: .reason), by: try container.decodeIfPresent(String.self, forKey: .by))
        case .workflowCancelled:
            kind = .workflowCancelled(reason: try container.decode(String.self, forKey: .reason))
        case .eventReceived:
            kind = .eventReceived(
                name: try container.decode(String.self, forKey: .event), payload: try bytes(.payload),
                dedupKey: try container.decodeIfPresent(String.self, forKey: .dedupKey))
        case .workflowSuspended:
            kind = .workflowSuspended(try container.decode(SuspensionRecord.self, forKey: .suspension))
        case .workflowResumed:
            kind = .workflowResumed(try container.decode(ActionRecord.self, forKey: .action))
        case .workflowReset:
            kind = .workflowReset(
                toSequence: try container.decode(UInt32.self, forKey: .toSequence), generation: try container.decode(UInt32.self, forKey: .generation),
                try container.decode(ActionRecord.self, forKey: .action))
        case .workflowForked:
            kind = .workflowForked(
                from: try container.decode(String.self, forKey: .from), sequence: try container.decode(UInt32.self, forKey: .eventSequence),
                try container.decode(ActionRecord.self, forKey: .action))
        case .markerRecorded:
            kind = .markerRecorded(try container.decode(String.self, forKey: .marker))
        case .startedAsChild:
            kind = .startedAsChild(parent: try container.decode(String.self, forKey: .parent), key: try container.decode(String.self, forKey: .childKey))
        case .deadlineSet:
            kind = .deadlineSet(due: try container.decode(Int64.self, forKey: .due))
        case .deadlinePassed:
            kind = .deadlinePassed
        case .continuedAsNew:
            kind = .continuedAsNew(input: try bytes(.input))
        case .enqueued:
            kind = .enqueued(try container.decode(QueueEntry.self, forKey: .queue))
        }
        self.init(sequence: sequence, timestamp: timestamp, kind: kind)
    }

    /// A time as `2026-01-01T00:00:00.123Z`.
    static func iso(_ nanoseconds: Int64) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
    }

    /// The event kind's name, as the JSON form's `kind` holds it.
    public var kindName: String {
        switch kind {
        case .workflowStarted: KindName.workflowStarted.rawValue
        case .stepCompleted: KindName.stepCompleted.rawValue
        case .stepFailed: KindName.stepFailed.rawValue
        case .workflowCompleted: KindName.workflowCompleted.rawValue
        case .workflowFailed: KindName.workflowFailed.rawValue
        case .waitStarted: KindName.waitStarted.rawValue
        case .waitEnded: KindName.waitEnded.rawValue
        case .stepRetrying: KindName.stepRetrying.rawValue
        case .cancelRequested: KindName.cancelRequested.rawValue
        case .workflowCancelled: KindName.workflowCancelled.rawValue
        case .eventReceived: KindName.eventReceived.rawValue
        case .workflowSuspended: KindName.workflowSuspended.rawValue
        case .workflowResumed: KindName.workflowResumed.rawValue
        case .workflowReset: KindName.workflowReset.rawValue
        case .workflowForked: KindName.workflowForked.rawValue
        case .markerRecorded: KindName.markerRecorded.rawValue
        case .startedAsChild: KindName.startedAsChild.rawValue
        case .deadlineSet: KindName.deadlineSet.rawValue
        case .deadlinePassed: KindName.deadlinePassed.rawValue
        case .continuedAsNew: KindName.continuedAsNew.rawValue
        case .enqueued: KindName.enqueued.rawValue
        }
    }
}


/// A workflow's recorded history as a file: what `continuum export` writes and
/// ``WorkflowReplayer`` replays, so that a history recorded today is checked against
/// tomorrow's code.
///
/// ```swift
/// let history = try WorkflowHistory(contentsOf: URL(fileURLWithPath: "Histories/order-7.json"))
/// let result = await WorkflowReplayer(workflows: [Checkout()]).replay(history)
/// #expect(result.isCompatible, "\(result)")
/// ```
public struct WorkflowHistory: Sendable, Equatable, Codable {
    /// The file format's version: ``currentFormat`` when written by this release.
    public var format: Int
    /// The workflow's id.
    public var id: String
    /// Its registered type name.
    public var type: String
    /// Its status when exported.
    public var status: WorkflowStatus?
    /// Every event, in order.
    public var events: [HistoryEvent]

    /// The format this release writes; it reads every earlier one.
    public static let currentFormat = 1

    /// A history of workflow `id` of type `type`.
    public init(id: String, type: String, status: WorkflowStatus? = nil, events: [HistoryEvent]) {
        self.format = Self.currentFormat
        self.id = id
        self.type = type
        self.status = status
        self.events = events
    }

    /// The history of a stored workflow.
    public init(_ stored: StoredWorkflow) {
        self.init(id: stored.summary.id, type: stored.summary.type, status: stored.summary.status, events: stored.events)
    }

    /// Reads a history file.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when the file is not a history, or is
    ///   from a newer release.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ContinuumError(.invalidArgument, "Cannot read the history file \(url.path): \(error).", cause: error)
        }
        try self.init(json: data, source: url.path)
    }

    /// Reads a history from its JSON.
    public init(json data: Data, source: String = "JSON") throws {
        let decoded: WorkflowHistory
        do {
            decoded = try JSONDecoder().decode(WorkflowHistory.self, from: data)
        } catch {
            throw ContinuumError(
                .invalidArgument, "\(source) is not a Continuum history (as `continuum export` writes): \(error).", cause: error)
        }
        guard decoded.format <= Self.currentFormat else {
            throw ContinuumError(
                .invalidArgument, "\(source) has history format \(decoded.format); this release reads up to \(Self.currentFormat). Update Continuum.")
        }
        self = decoded
    }

    /// The history as JSON: sorted keys, one event per line, readable in a diff.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var text = "{\"format\":\(format),\"id\":\(try String(decoding: encoder.encode(id), as: UTF8.self)),"
        text += "\"type\":\(try String(decoding: encoder.encode(type), as: UTF8.self)),"
        if let status { text += "\"status\":\"\(status.rawValue)\"," }
        text += "\"events\":[\n"
        text += try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: ",\n")
        text += "\n]}\n"
        return Data(text.utf8)
    }
}
