/// What a step's body knows about the step it runs in.
public struct StepContext: Sendable {
    /// The workflow the step belongs to.
    public let workflowID: String
    /// The step's identity within its workflow.
    public let key: StepKey
    /// Which attempt this is (1 for the first), when the step has a retry policy.
    public let attempt: UInt32

    /// A key that is the same every time this step runs (after a crash too) and different for
    /// every other step: pass it to external APIs as their idempotency key so that a step run
    /// again before its completion was committed has its effect only once.
    ///
    /// Its form is `workflowID/step-name/occurrence`.
    public var idempotencyKey: String { "\(workflowID)/\(key.name)/\(key.occurrence)" }
}
