import ContinuumMacros

/// How long the workflow sleeps between `b` and the last step: a day in production, two
/// seconds here so that the story runs in seconds.
let aDay: Duration = .seconds(2)

/// Follows up on a user: two steps, a durable sleep of "a day", a last step. Version 1, as it
/// was deployed when the workflows started.
///
/// Each step body is written with `#step`, which records a fingerprint of the body's source
/// with its result: a later build whose body differs is noticed when it replays the step.
struct FollowUpV1: Workflow {
    static let name = "follow-up"
    /// Says "step … ran" when a body runs (and only then: a replayed step does not run).
    let narrator: Narrator

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await #step(ctx, "a") { () -> String in
            narrator.ran("a", "a:\(input)")
            return "a:\(input)"
        }
        let b = try await #step(ctx, "b") { step -> String in
            narrator.ran("b", "b1", key: step.idempotencyKey)
            return "b1"
        }
        try await ctx.sleep(for: aDay, name: "wait-a-day")
        let c = try await #step(ctx, "c") { () -> String in
            narrator.ran("c", "c")
            return "c"
        }
        return [a, b, c].joined(separator: " ")
    }
}

/// Version 2: `b`'s body was edited (it now returns `b2`), and the last step was renamed from
/// `c` to `c2`. Step `a` is the same code, token for token, so its fingerprint is unchanged.
///
/// The rename is harmless to the workflows asleep after `b`: none of them has reached the
/// last step, so their histories never recorded `c`. The edit of `b` is what breaks them.
struct FollowUpV2: Workflow {
    static let name = "follow-up"
    let narrator: Narrator

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        let a = try await #step(ctx, "a") { () -> String in
            narrator.ran("a", "a:\(input)")
            return "a:\(input)"
        }
        let b = try await #step(ctx, "b") { step -> String in
            narrator.ran("b", "b2", key: step.idempotencyKey)
            return "b2"
        }
        try await ctx.sleep(for: aDay, name: "wait-a-day")
        let c = try await #step(ctx, "c2") { () -> String in
            narrator.ran("c2", "c2")
            return "c2"
        }
        return [a, b, c].joined(separator: " ")
    }
}

/// Narrates step bodies as they run, marked with who runs them ("v1 pid 123", "v2").
struct Narrator: Sendable {
    let who: String

    func ran(_ step: String, _ result: String, key: String? = nil) {
        Console.say("   [\(who)] step \(step) ran → \(result)" + (key.map { " (idempotency key \($0))" } ?? ""))
    }
}
