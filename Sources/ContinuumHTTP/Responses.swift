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

/// Any of the runtime's Codable values (`StartReceipt`, `EventReceipt`) as a JSON answer.
struct JSONAnswer<Value: Encodable & Sendable>: ResponseEncodable {
    var value: Value

    init(_ value: Value) { self.value = value }

    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
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
