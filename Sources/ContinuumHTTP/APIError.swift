public import Continuum
import Foundation
public import HTTPTypes
public import Hummingbird
import Logging

/// An error the API answers with: an HTTP status, a stable ``Code`` and a message that says what
/// to do, sent as `{"error": {"code": "…", "message": "…"}}`.
///
/// The runtime's ``/Continuum/ContinuumError``s become API errors with the same code name and a status
/// chosen by ``init(_:)``; the codes below are the HTTP edge's own.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    /// A stable error code: clients branch on it, never on the message.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as the JSON body carries it.
        public let name: String

        init(_ name: String) { self.name = name }

        /// A runtime error's code, under its own name.
        public init(_ code: ContinuumError.Code) { self.name = code.name }

        public var description: String { name }

        /// The body is larger than ``ContinuumAPI/Configuration/maxBodySize`` (`413`).
        public static let bodyTooLarge = Code("bodyTooLarge")
        /// A browser sent a write from another site (`403`).
        public static let crossSiteRequest = Code("crossSiteRequest")
        /// A body that must be JSON is not (`400`).
        public static let invalidJSON = Code("invalidJSON")
        /// No accepted token, nor a webhook signature where one would do (`401`).
        public static let unauthorized = Code("unauthorized")
        /// A webhook signature was present and refused: wrong secret, stale timestamp, changed body (`401`).
        public static let badSignature = Code("badSignature")
        /// A signed `webhook-id` was already delivered to another workflow or event (`409`).
        public static let webhookReplayed = Code("webhookReplayed")
        /// The replay guard is full of ids still inside their window (`503`).
        public static let webhookLimit = Code("webhookLimit")
        /// An id, name, query parameter or form field is not acceptable (`400`).
        public static let invalidArgument = Code(ContinuumError.Code.invalidArgument)
        /// No workflow has the id (`404`).
        public static let unknownWorkflow = Code(ContinuumError.Code.unknownWorkflow)
        /// No workflow type has the name (`404`).
        public static let unknownWorkflowType = Code(ContinuumError.Code.unknownWorkflowType)
        /// No schedule has the name (`404`).
        public static let unknownSchedule = Code("unknownSchedule")
        /// The workflow refused an update (`422`).
        public static let updateRejected = Code(ContinuumError.Code.updateRejected)
        /// The workflow published no value under the queried name (`404`).
        public static let unknownQuery = Code(ContinuumError.Code.unknownQuery)
    }

    /// The JSON body of an error answer, for clients to decode.
    public struct Body: Codable, Sendable {
        public struct Detail: Codable, Sendable {
            public var code: String
            public var message: String
        }

        public var error: Detail
    }

    public var status: HTTPResponse.Status
    public var code: Code
    public var message: String

    public init(status: HTTPResponse.Status, code: Code, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// A runtime error, with the status its code calls for.
    public init(_ error: ContinuumError) {
        self.init(status: Self.status(for: error.code), code: Code(error.code), message: error.message)
    }

    /// The status a runtime error code is answered with.
    static func status(for code: ContinuumError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument, .payloadCoding: .badRequest
        case .unknownWorkflowType, .unknownWorkflow, .unknownQuery: .notFound
        // The workflow is not in a state that allows the request: finished, suspended (resume,
        // reset or cancel it first), its id taken, its history at odds with the code.
        case .workflowFinished, .workflowIDConflict, .dedupKeyConflict, .nondeterminism, .ambiguousStep, .corruptedData, .suspended,
            .codeChanged, .notSuspended:
            .conflict
        // ownershipLost: another process took the workflow over; nothing was written and a retry
        // reaches its new owner's state.
        // readOnly: this server's store was opened read-only; writes go to the server that owns it.
        // storeUnavailable: the database is out of reach for now; a retry may succeed.
        case .notRunning, .storeClosed, .storeLocked, .ownershipLost, .readOnly, .storeUnavailable: .serviceUnavailable
        case .storageFull: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        // The workflow understood the update and refused it.
        case .updateRejected: .unprocessableContent
        // No reply in time; the update is recorded, and the same Idempotency-Key gets its reply later.
        case .timedOut: .gatewayTimeout
        case .payloadTooLarge: .contentTooLarge
        // alreadyRunning is the host application's mistake (run() twice), not the client's.
        default: .internalServerError
        }
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// The JSON answer, logged with dotted metadata: a client's mistake at `debug`, the server's
    /// own failure at `error`.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        context.logger.log(
            level: status.code >= 500 ? .error : .debug, "Request refused: \(message)",
            metadata: [
                LogKey.errorCode: "\(code)", LogKey.status: "\(status.code)", LogKey.path: "\(request.uri.path)",
            ])
        let body = try APIJSON.encoder.encode(Body(error: .init(code: code.name, message: message)))
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension APIError {
    static func tooLarge(limit: Int) -> APIError {
        APIError(
            status: .contentTooLarge, code: .bodyTooLarge,
            message: "The request body is larger than this server's limit of \(limit) bytes; "
                + "send a smaller payload (store large data elsewhere and send a reference).")
    }

    static let crossSite = APIError(
        status: .forbidden, code: .crossSiteRequest,
        message: "A page from another site may not change workflows here; "
            + "send the request from this server's own pages or from a non-browser client.")

    static func notJSON(_ what: String) -> APIError {
        APIError(status: .badRequest, code: .invalidJSON, message: "\(what) is not valid JSON.")
    }

    static func invalidArgument(_ message: String) -> APIError {
        APIError(status: .badRequest, code: .invalidArgument, message: message)
    }

    static func unknownWorkflow(_ id: String) -> APIError {
        APIError(status: .notFound, code: .unknownWorkflow, message: "No workflow has id '\(id)'.")
    }
}

/// Dotted log metadata keys of the HTTP edge.
enum LogKey {
    static let errorCode = "continuum.error.code"
    static let status = "continuum.http.status"
    static let path = "continuum.http.path"
}

