/// A durable workflow: ordinary `async` code whose dangerous parts are named steps.
///
/// If the process dies while a workflow runs, the runtime runs ``run(_:input:)`` again when it
/// comes back; every step that already completed returns its recorded result at once instead
/// of running again.
///
/// ```swift
/// struct OnboardUser: Workflow {
///     struct Input: Codable, Sendable { var userID: String; var email: String }
///     let payments: Payments
///     let mail: Mailer
///
///     func run(_ ctx: WorkflowContext, input: Input) async throws -> String {
///         let customer = try await ctx.step("create-customer") { step in
///             try await payments.createCustomer(email: input.email, idempotencyKey: step.idempotencyKey)
///         }
///         try await ctx.step("send-welcome") { try await mail.sendWelcome(to: input.email) }
///         return customer
///     }
/// }
/// ```
///
/// The body must be deterministic apart from its steps: given the same step results it must
/// call the same steps in the same order. Read the time, make ids and draw random numbers
/// through ``WorkflowContext/now(name:isolation:)``, ``WorkflowContext/uuid(name:isolation:)`` and ``WorkflowContext/random(name:isolation:)``,
/// and do every side effect inside a step.
public protocol Workflow: Sendable {
    /// The workflow's input, stored with its start.
    associatedtype Input: Codable & Sendable
    /// What the workflow returns, stored when it completes.
    associatedtype Output: Codable & Sendable

    /// The name stored in history and used to find the type on recovery. Keep it stable
    /// across releases; it defaults to the type's name.
    static var name: String { get }

    /// The workflow's body.
    func run(_ ctx: WorkflowContext, input: Input) async throws -> Output

    /// Checks an update (``WorkflowRuntime/update(_:_:payload:dedupKey:timeout:as:)``) before
    /// anything is recorded: throw to refuse it, and the caller gets
    /// ``ContinuumError/Code/updateRejected`` with the error's description while the workflow's
    /// history stays as it was. The default accepts every update.
    ///
    /// ```swift
    /// func validateUpdate(named name: String, payload: [UInt8]) throws {
    ///     guard name == "approve" else { throw UnknownUpdate(name: name) }
    ///     _ = try JSONDecoder().decode(Approval.self, from: Data(payload))
    /// }
    /// ```
    func validateUpdate(named name: String, payload: [UInt8]) throws
}

extension Workflow {
    public static var name: String { String(describing: Self.self) }

    public func validateUpdate(named name: String, payload: [UInt8]) throws {}
}

/// A registered workflow with its types erased, as the runtime stores it: a class, so that
/// each workflow's driver that takes it retains one reference, not its name and four closures.
final class AnyWorkflow: Sendable {
    let name: String
    let execute: @Sendable (WorkflowContext, [UInt8]) async throws -> [UInt8]
    /// Throws `payloadCoding` when the JSON does not decode as the workflow's input.
    let checkInput: @Sendable ([UInt8]) throws(ContinuumError) -> Void
    /// The input decoded and encoded again with sorted keys: two spellings of one input compare equal.
    let canonicalInput: @Sendable ([UInt8]) throws(ContinuumError) -> [UInt8]
    /// The type's check of an update before it is recorded.
    let validateUpdate: @Sendable (String, [UInt8]) throws -> Void

    init<W: Workflow>(_ workflow: W) {
        name = W.name
        validateUpdate = { name, payload in try workflow.validateUpdate(named: name, payload: payload) }
        checkInput = { bytes throws(ContinuumError) in
            _ = try PayloadCoder.decode(W.Input.self, from: bytes, what: "the input of a '\(W.name)' workflow")
        }
        canonicalInput = { bytes throws(ContinuumError) in
            let input = try PayloadCoder.decode(W.Input.self, from: bytes, what: "the input of a '\(W.name)' workflow")
            return try PayloadCoder.encode(input, what: "the input of a '\(W.name)' workflow", sortedKeys: true)
        }
        execute = { context, inputBytes in
            let input: W.Input
            do {
                input = try PayloadCoder.decode(W.Input.self, from: inputBytes, what: "the input of workflow '\(context.workflowID)'")
            } catch {
                // The stored input no longer fits the code's type: a code change, so the workflow
                // is suspended (not failed), to be resumed once the type decodes it again.
                throw await context.instance.suspend(ContinuumError.wrap(error))
            }
            let output = try await workflow.run(context, input: input)
            return try PayloadCoder.encode(output, what: "the output of workflow '\(context.workflowID)'")
        }
    }
}
