public import Continuum
import Foundation
public import Hummingbird

// The API's answers as Codable types: the server encodes them, and a Swift client can decode
// them. Payloads (inputs, results, event payloads) are carried as their exact JSON text, as in
// `HistoryEvent`'s JSON form, so what was stored is what is returned, byte for byte.

/// A workflow as `GET /v1/workflows/{id}` and the list show it.
public struct WorkflowInfo: ResponseCodable, Sendable, Equatable {
    /// A runtime's reason for suspending a workflow.
    public typealias Suspension = SuspensionRecord

    public var id: String
    public var type: String
    public var status: WorkflowStatus
    /// When it was started, as ISO 8601 (`2026-11-25T16:51:03.123Z`).
    public var createdAt: String
    /// When its status last changed, as ISO 8601.
    public var updatedAt: String
    /// Once completed (single workflow only): its output, as JSON text.
    public var result: String?
    /// Once failed (single workflow only): the error its body threw.
    public var error: FailureRecord?
    /// Once cancelled (single workflow only): the reason given.
    public var reason: String?
    /// While suspended (single workflow only): why, where the code stopped matching, what
    /// history recorded there and what the code asked for.
    public var suspension: SuspensionRecord?

    /// The summary's fields, with no outcome.
    public init(_ summary: WorkflowSummary) {
        self.id = summary.id
        self.type = summary.type
        self.status = summary.status
        self.createdAt = Timestamp.string(nanoseconds: summary.createdAt)
        self.updatedAt = Timestamp.string(nanoseconds: summary.updatedAt)
    }

    /// The summary with the outcome its history ends with, and the suspension if any.
    init(_ summary: WorkflowSummary, last: HistoryEvent?, suspension: SuspensionRecord?) {
        self.init(summary)
        switch last?.kind {
        case .workflowCompleted(let output)?: result = String(decoding: output, as: UTF8.self)
        case .workflowFailed(let failure)?: error = failure
        case .workflowCancelled(let reason)?: self.reason = reason
        default: break
        }
        self.suspension = suspension
    }
}

/// A page of `GET /v1/workflows`.
public struct WorkflowList: ResponseCodable, Sendable, Equatable {
    /// The workflows, oldest first.
    public var workflows: [WorkflowInfo]
    /// Pass as `after` for the next page; absent on the last page.
    public var next: String?
}

/// The answer of `GET /healthz`.
public struct HealthStatus: ResponseCodable, Sendable, Equatable {
    /// `ready` (`200`), or `starting` (`503`) until the runtime is ready.
    public var status: String
}

/// The answer of `POST /v1/workflows/{id}/cancel`.
public struct CancelReceipt: ResponseCodable, Sendable, Equatable {
    public var id: String
    /// Always `true`: the request is committed; the workflow ends once its body finishes.
    public var cancelRequested: Bool
}

/// The answer of `POST /v1/workflows/{id}/resume` and `…/reset` (`202`): the action is
/// committed to history with who asked and why; the workflow runs again with the code deployed now.
public struct ActionReceipt: ResponseCodable, Sendable, Equatable {
    public var id: String
    /// `resume` or `reset`.
    public var action: String
    /// Who asked, as history records it.
    public var by: String
    /// Why, as history records it.
    public var reason: String

    public init(id: String, action: String, by: String, reason: String) {
        self.id = id
        self.action = action
        self.by = by
        self.reason = reason
    }
}

// The bodies of the ways out, for Swift clients to encode (`continuum resume` does).

/// The body of `POST /v1/workflows/{id}/resume`; both fields optional.
public struct ResumeRequest: Codable, Sendable, Equatable {
    /// Who asks (default: who the caller is, else `http`).
    public var by: String?
    /// Why (default: `resumed over HTTP`).
    public var reason: String?

    public init(by: String? = nil, reason: String? = nil) {
        self.by = by
        self.reason = reason
    }
}

/// The body of `POST /v1/workflows/{id}/reset`: exactly one of `toStep` (with `occurrence`
/// for a repeated step, default 0) and `toEvent` (an event's sequence number).
public struct ResetRequest: Codable, Sendable, Equatable {
    public var toStep: String?
    public var occurrence: UInt32?
    public var toEvent: UInt32?
    public var by: String?
    public var reason: String?

    public init(toStep: String? = nil, occurrence: UInt32? = nil, toEvent: UInt32? = nil, by: String? = nil, reason: String? = nil) {
        self.toStep = toStep
        self.occurrence = occurrence
        self.toEvent = toEvent
        self.by = by
        self.reason = reason
    }
}

/// The body of `POST /v1/workflows/{id}/fork`: the step to fork at and the new workflow's id.
public struct ForkRequest: Codable, Sendable, Equatable {
    public var toStep: String?
    public var occurrence: UInt32?
    /// The new workflow's id.
    public var `as`: String?
    public var by: String?
    public var reason: String?

    public init(toStep: String? = nil, occurrence: UInt32? = nil, as newID: String? = nil, by: String? = nil, reason: String? = nil) {
        self.toStep = toStep
        self.occurrence = occurrence
        self.as = newID
        self.by = by
        self.reason = reason
    }
}

/// Any of the runtime's Codable values (`StartReceipt`, `EventReceipt`) as a JSON answer.
struct JSONAnswer<Value: Encodable & Sendable>: ResponseEncodable {
    var value: Value

    init(_ value: Value) { self.value = value }

    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// The answer of an event delivery: its receipt, `202` when the event was appended, `200` when
/// the dedup key was seen before.
///
/// Written out by hand for the common id rather than by `JSONEncoder` (a new one per answer,
/// sorting the keys), which cost about 3 % of a delivery's CPU; the bytes are the same.
struct EventReceiptAnswer: ResponseGenerator {
    var receipt: EventReceipt

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = try Self.json(receipt)
        return Response(
            status: receipt.duplicate ? .ok : .accepted,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.count)],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The receipt as ``APIJSON/encoder`` writes it (keys sorted, slashes unescaped).
    static func json(_ receipt: EventReceipt) throws -> [UInt8] {
        // An id of printable ASCII but `"` and `\` goes into the string as it is; any other is
        // left to the encoder, which knows how to escape it.
        guard receipt.workflowID.utf8.allSatisfy({ (0x20...0x7E).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else {
            return Array(try APIJSON.encoder.encode(receipt))
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(56 + receipt.workflowID.utf8.count)
        bytes.append(contentsOf: receipt.duplicate ? #"{"duplicate":true,"sequence":"#.utf8 : #"{"duplicate":false,"sequence":"#.utf8)
        bytes.append(contentsOf: String(receipt.sequence).utf8)
        bytes.append(contentsOf: #","workflowID":""#.utf8)
        bytes.append(contentsOf: receipt.workflowID.utf8)
        bytes.append(contentsOf: #""}"#.utf8)
        return bytes
    }
}

/// JSON that is already encoded: a value a workflow published, answered as it was published.
struct RawJSONAnswer: ResponseGenerator {
    var bytes: [UInt8]

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// A workflow's history as its export file (`WorkflowHistory.json()`): what `continuum export`
/// prints and `WorkflowHistory(contentsOf:)` reads back for the replayer.
struct HistoryAnswer: ResponseGenerator {
    var history: WorkflowHistory

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try history.json())))
    }
}

/// Times as `2026-11-25T16:51:03.123Z`.
enum Timestamp {
    static func string(nanoseconds: Int64) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
    }
}
