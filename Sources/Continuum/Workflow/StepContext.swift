/// What a step's body knows about the step it runs in.
public struct StepContext: Sendable {
    /// The workflow the step belongs to.
    public let workflowID: String
    /// The step's identity within its workflow.
    public let key: StepKey
    /// Which attempt this is (1 for the first), when the step has a retry policy.
    public let attempt: UInt32
    /// How many times the workflow was reset before this run (0 when never).
    public let resetGeneration: UInt32

    /// A step context (for tests of step bodies).
    public init(workflowID: String, key: StepKey, attempt: UInt32, resetGeneration: UInt32 = 0) {
        self.workflowID = workflowID
        self.key = key
        self.attempt = attempt
        self.resetGeneration = resetGeneration
    }

    /// A key that is the same every time this step runs (after a crash too) and different for
    /// every other step: pass it to external APIs as their idempotency key so that a step run
    /// again before its completion was committed has its effect only once.
    ///
    /// Its form is `workflowID/step-name/occurrence`. After a reset (``WorkflowRuntime/reset(_:toStep:occurrence:by:reason:)``)
    /// the steps that run again are new requests on purpose: the key gains the reset generation,
    /// `workflowID/step-name/occurrence/reset-N`.
    public var idempotencyKey: String {
        let base = "\(workflowID)/\(key.name)/\(key.occurrence)"
        return resetGeneration == 0 ? base : base + "/reset-\(resetGeneration)"
    }
}
