#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An update a caller sent into the workflow with ``WorkflowRuntime/update(_:_:payload:dedupKey:timeout:as:)``,
/// waiting for the workflow's reply.
///
/// ```swift
/// let request = try await ctx.nextUpdate("approve", as: Approval.self)
/// try await request.reply(Decision(accepted: request.payload.amount < 1_000))
/// ```
public struct UpdateRequest<Payload: Decodable & Sendable>: Sendable {
    /// The update's id: the caller's dedup key, or one the runtime made.
    public let id: String
    /// What the caller sent.
    public let payload: Payload
    let context: WorkflowContext

    /// Records `value` as the reply (a step named `continuum.reply:<id>`, so it is recorded once
    /// and replayed) and hands it to the caller waiting in `update`.
    public func reply<R: Codable & Sendable>(_ value: R, isolation: isolated (any Actor)? = #isolation) async throws {
        let json = try PayloadCoder.encode(value, what: "the reply to update '\(id)'")
        try await UpdateReply.record(.init(reply: String(decoding: json, as: UTF8.self)), to: id, in: context, isolation: isolation)
    }

    /// Refuses the update after it was recorded: the caller's `update` throws
    /// ``ContinuumError/Code/updateRejected`` with `reason`.
    public func reject(_ reason: String, isolation: isolated (any Actor)? = #isolation) async throws {
        try await UpdateReply.record(.init(error: reason), to: id, in: context, isolation: isolation)
    }
}

extension WorkflowContext {
    /// Waits durably for the next update named `name` (the oldest one not taken yet), or `nil`
    /// when `timeout` passes first. Reply to it with ``UpdateRequest/reply(_:isolation:)``.
    ///
    /// Updates are recorded as they arrive, after the workflow type's
    /// ``Workflow/validateUpdate(named:payload:)`` accepted them, and are taken in order. One
    /// whose payload does not decode as `Payload` is rejected (its caller gets
    /// ``ContinuumError/Code/updateRejected``) and the wait goes on.
    public func nextUpdate<Payload: Decodable & Sendable>(
        _ name: String, as type: Payload.Type = Payload.self, timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation
    ) async throws -> UpdateRequest<Payload>? {
        while true {
            guard let envelope = try await waitForEvent(UpdateEnvelope.eventName(name), as: UpdateEnvelope.self, timeout: timeout, isolation: isolation)
            else { return nil }
            switch Self.decodeUpdate(Payload.self, envelope, name: name) {
            case .success(let payload):
                return UpdateRequest(id: envelope.id, payload: payload, context: self)
            case .failure(let error):
                try await UpdateReply.record(.init(error: error.message), to: envelope.id, in: self, isolation: isolation)
            }
        }
    }

    private static func decodeUpdate<Payload: Decodable>(_ type: Payload.Type, _ envelope: UpdateEnvelope, name: String) -> Result<Payload, ContinuumError> {
        do throws(ContinuumError) {
            return .success(try PayloadCoder.decode(Payload.self, from: Array(envelope.payload.utf8), what: "update '\(name)' (\(envelope.id))"))
        } catch {
            return .failure(error)
        }
    }

    /// Takes the next update named `name`, answers it with what `handler` returns, and returns
    /// that reply; a handler that throws rejects the update with the error's description.
    ///
    /// ```swift
    /// try await ctx.handleUpdate("add-item", as: Item.self) { item in
    ///     cart.append(item)
    ///     return cart.count
    /// }
    /// ```
    @discardableResult
    public func handleUpdate<Payload: Decodable & Sendable, Reply: Codable & Sendable>(
        _ name: String, as type: Payload.Type = Payload.self, isolation: isolated (any Actor)? = #isolation,
        _ handler: (Payload) async throws -> Reply
    ) async throws -> Reply? {
        guard let request = try await nextUpdate(name, as: Payload.self, isolation: isolation) else { return nil }
        let reply: Reply
        do {
            reply = try await handler(request.payload)
        } catch {
            try await request.reject(String(describing: error), isolation: isolation)
            return nil
        }
        try await request.reply(reply, isolation: isolation)
        return reply
    }
}

/// An update as recorded in the workflow's history: an event named `continuum.update:<name>`
/// whose payload carries the update's id beside the caller's payload.
package struct UpdateEnvelope: Codable, Sendable {
    package static let prefix = "continuum.update:"
    package var id: String
    /// The caller's payload, as its JSON text.
    package var payload: String

    package static func eventName(_ name: String) -> String { prefix + name }
    package static func dedupKey(_ id: String) -> String { prefix + id }
}

/// A reply as recorded: the result of step `continuum.reply:<id>`.
package struct UpdateReply: Codable, Sendable {
    package static let prefix = "continuum.reply:"
    /// The reply, as its JSON text.
    package var reply: String?
    /// Why the update was refused.
    package var error: String?

    package init(reply: String? = nil, error: String? = nil) {
        self.reply = reply
        self.error = error
    }

    package static func stepName(_ id: String) -> String { prefix + id }

    static func record(_ reply: UpdateReply, to id: String, in context: WorkflowContext, isolation: isolated (any Actor)?) async throws {
        _ = try await context.step(stepName(id), isolation: isolation) { () -> UpdateReply in reply }
    }
}
