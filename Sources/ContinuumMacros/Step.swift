@_exported public import Continuum

/// A step whose recorded result carries a fingerprint of its body's source, so that replay
/// notices when the code changed since the step ran.
///
/// ```swift
/// import ContinuumMacros
///
/// let receipt = try await #step(ctx, "charge", retry: .exponential(maxAttempts: 3)) { step in
///     try await payments.charge(order, idempotencyKey: step.idempotencyKey)
/// }
/// ```
///
/// It expands to `ctx.step("charge", fingerprint: "h…", retry: …) { … }`. The fingerprint is a
/// hash of the closure's tokens as written: reformatting and comments leave it alone, any other
/// edit of the closure changes it. It does not see code the closure calls — a function in
/// another file, a library — so a change there goes unnoticed: pass `version:` and bump it when
/// you change such code. When replay meets a recorded step whose fingerprint differs,
/// `WorkflowRuntime.Configuration.codeChange` decides: suspend, rerun from it, or accept.
@freestanding(expression)
public macro step<T: Codable & Sendable>(
    _ context: WorkflowContext, _ name: String, version: Int? = nil, retry: RetryPolicy = .none, _ body: (StepContext) async throws -> T
) -> T = #externalMacro(module: "ContinuumMacrosPlugin", type: "StepMacro")

/// `#step` with a body that does not need its ``StepContext``.
@freestanding(expression)
public macro step<T: Codable & Sendable>(
    _ context: WorkflowContext, _ name: String, version: Int? = nil, retry: RetryPolicy = .none, _ body: () async throws -> T
) -> T = #externalMacro(module: "ContinuumMacrosPlugin", type: "StepMacro")
