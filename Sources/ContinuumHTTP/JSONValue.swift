public import Continuum
public import Foundation

/// Any JSON value, to carry workflow inputs, results and event payloads (stored as JSON bytes)
/// inside the API's own JSON documents.
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses JSON bytes; `nil` when they are not JSON.
    public init?(parsing bytes: some Collection<UInt8>) {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else { return nil }
        self = value
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Stored payload bytes as a value: the JSON they hold, or (not expected) a string of them.
    static func payload(_ bytes: [UInt8]) -> JSONValue {
        JSONValue(parsing: bytes) ?? .string(String(decoding: bytes, as: UTF8.self))
    }
}

extension HistoryEvent {
    /// The event as a JSON object, as the HTTP API and `continuum export` show it.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "sequence": .integer(Int64(sequence)),
            "time": .string(Timestamp.string(from: date)),
        ]
        func step(_ record: StepRecord) {
            object["step"] = .string(record.name)
            if record.occurrence > 0 { object["occurrence"] = .integer(Int64(record.occurrence)) }
        }
        func failure(_ failure: FailureRecord) {
            object["error"] = .object(["type": .string(failure.type), "message": .string(failure.message)])
        }
        func time(_ nanoseconds: Int64) -> JSONValue {
            .string(Timestamp.string(nanoseconds: nanoseconds))
        }
        switch kind {
        case .workflowStarted(let type, let input, let traceContext):
            object["kind"] = .string("workflowStarted")
            object["type"] = .string(type)
            object["input"] = .payload(input)
            if !traceContext.isEmpty {
                object["traceContext"] = .object(traceContext.mapValues { .string($0) })
            }
        case .stepCompleted(let record, let result):
            object["kind"] = .string("stepCompleted")
            step(record)
            object["result"] = .payload(result)
        case .stepFailed(let record, let error):
            object["kind"] = .string("stepFailed")
            step(record)
            failure(error)
        case .workflowCompleted(let output):
            object["kind"] = .string("workflowCompleted")
            object["output"] = .payload(output)
        case .workflowFailed(let error):
            object["kind"] = .string("workflowFailed")
            failure(error)
        case .waitStarted(let record, let wait, let due):
            object["kind"] = .string("waitStarted")
            step(record)
            switch wait {
            case .timer: object["waitsFor"] = .string("timer")
            case .event(let name):
                object["waitsFor"] = .string("event")
                object["event"] = .string(name)
            }
            if let due { object["until"] = time(due) }
        case .waitEnded(let key, let outcome):
            object["kind"] = .string("waitEnded")
            object["step"] = .string(key.name)
            if key.occurrence > 0 { object["occurrence"] = .integer(Int64(key.occurrence)) }
            switch outcome {
            case .fired(let lateness):
                object["outcome"] = .string("fired")
                object["latenessMilliseconds"] = .number(Double(lateness) / 1e6)
            case .received(let sequence):
                object["outcome"] = .string("received")
                object["eventSequence"] = .integer(Int64(sequence))
            case .timedOut: object["outcome"] = .string("timedOut")
            case .cancelled: object["outcome"] = .string("cancelled")
            }
        case .stepRetrying(let record, let attempt, let error, let next):
            object["kind"] = .string("stepRetrying")
            step(record)
            object["attempt"] = .integer(Int64(attempt))
            failure(error)
            object["nextAttemptAt"] = time(next)
        case .cancelRequested(let reason):
            object["kind"] = .string("cancelRequested")
            object["reason"] = .string(reason)
        case .workflowCancelled(let reason):
            object["kind"] = .string("workflowCancelled")
            object["reason"] = .string(reason)
        case .eventReceived(let name, let payload, let dedupKey):
            object["kind"] = .string("eventReceived")
            object["event"] = .string(name)
            object["payload"] = .payload(payload)
            if let dedupKey { object["dedupKey"] = .string(dedupKey) }
        default:
            object["kind"] = .string(kindName)
        }
        return .object(object)
    }
}

/// Times as `2026-11-25T16:51:03.123Z`.
enum Timestamp {
    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func string(from date: Date) -> String { style.format(date) }

    static func string(nanoseconds: Int64) -> String { string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)) }
}
