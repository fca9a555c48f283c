@_spi(Testing) import Continuum
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import InMemoryTracing
import Testing
import Tracing

/// Prepares, waits for "go", ships.
private struct Shipment: Workflow {
    static let name = "shipment"

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        _ = try await ctx.step("prepare") { "prepared \(input)" }
        let carrier = try await ctx.waitForEvent("go", as: String.self)
        return try await ctx.step("ship") { "shipped \(input) with \(carrier ?? "nobody")" }
    }
}

/// A tracer whose ids cannot collide with another tracer's.
private func uniqueTracer() -> InMemoryTracer {
    InMemoryTracer(idGenerator: .init(nextTraceID: { UUID().uuidString }, nextSpanID: { UUID().uuidString }))
}

/// A runtime configuration reporting to `tracer`.
private func traced(by tracer: InMemoryTracer) -> WorkflowRuntime.Configuration {
    var configuration = WorkflowRuntime.Configuration()
    configuration.tracer = tracer
    return configuration
}

private func spans(_ tracer: InMemoryTracer, named name: String) -> [FinishedInMemorySpan] {
    tracer.finishedSpans.filter { $0.operationName == name }
}

@Suite("Tracing")
struct TracingTests {
    @Test("a workflow resumed by another process stays in the trace of the request that started it")
    func resumedWorkflowContinuesTrace() async throws {
        try await withTemporaryDirectory { path in
            let first = uniqueTracer()
            let configuration = traced(by: first)
            let requestSpan: InMemorySpanContext = try await WorkflowRuntime.withLMDB(
                path: path, workflows: [Shipment()], runtime: configuration
            ) { runtime in
                let request = try await first.withSpan("POST /orders", ofKind: .server) { span in
                    _ = try await runtime.start(Shipment.self, id: "order-1", input: "books")
                    return span.spanContext
                }
                try await eventually {
                    try await runtime.history(of: "order-1").contains { if case .waitStarted = $0.kind { true } else { false } }
                }
                return request
            }

            // Process one: the request, its start span, a run that stopped at shutdown, one step.
            let start = try #require(spans(first, named: "start shipment").first)
            #expect(start.traceID == requestSpan.traceID)
            #expect(start.parentSpanID == requestSpan.spanID)
            #expect(start.kind == .producer)
            let run1 = try #require(spans(first, named: "workflow shipment").first)
            #expect(run1.traceID == requestSpan.traceID)
            #expect(run1.parentSpanID == start.spanID)
            #expect(run1.attributes[TraceAttribute.runOutcome]?.toSpanAttribute() == .string("stopped"))
            let prepare = try #require(spans(first, named: "step prepare").first)
            #expect(prepare.parentSpanID == run1.spanID)
            #expect(prepare.attributes[TraceAttribute.stepAttempt]?.toSpanAttribute() == .int64(1))

            // The start span's context is stored with the workflow.
            let stored = try await WorkflowRuntime.withLMDB(path: path, workflows: [Shipment()]) { runtime in
                try await runtime.history(of: "order-1").first?.kind
            }
            guard case .workflowStarted(_, _, let traceContext)? = stored else {
                Issue.record("the first event is \(String(describing: stored))")
                return
            }
            #expect(traceContext[InMemoryTracer.traceIDKey] == requestSpan.traceID)
            #expect(traceContext[InMemoryTracer.spanIDKey] == start.spanID)

            // Process two, with a tracer of its own: the event resumes the workflow in the same trace.
            let second = uniqueTracer()
            let result = try await WorkflowRuntime.withLMDB(path: path, workflows: [Shipment()], runtime: traced(by: second)) { runtime in
                try await runtime.send("go", to: "order-1", payload: "courier")
                return try await runtime.handle(Shipment.self, id: "order-1").result()
            }
            #expect(result == "shipped books with courier")
            let run2 = try #require(spans(second, named: "workflow shipment").last)
            #expect(run2.traceID == requestSpan.traceID)
            #expect(run2.parentSpanID == start.spanID)
            #expect(run2.attributes[TraceAttribute.runOutcome]?.toSpanAttribute() == .string("completed"))
            let ship = try #require(spans(second, named: "step ship").first)
            #expect(ship.traceID == requestSpan.traceID)
            #expect(ship.parentSpanID == run2.spanID)
            #expect(spans(second, named: "step prepare").isEmpty, "a replayed step gets no span")
            #expect(spans(second, named: "send go").count == 1)
        }
    }

    @Test("a failing step and a failed workflow are marked as errors")
    func failuresAreErrors() async throws {
        struct Broken: Workflow {
            static let name = "broken"
            func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
                try await ctx.step("explode") { () throws -> Int in throw CocoaError(.fileNoSuchFile) }
            }
        }
        try await withTemporaryDirectory { path in
            let tracer = uniqueTracer()
            let configuration = traced(by: tracer)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Broken()], runtime: configuration) { runtime in
                let handle = try await runtime.start(Broken.self, id: "b", input: 1)
                await #expect(throws: ContinuumError.self) { try await handle.result() }
            }
            let step = try #require(spans(tracer, named: "step explode").first)
            #expect(step.status?.code == .error)
            #expect(step.errors.count == 1)
            let run = try #require(spans(tracer, named: "workflow broken").first)
            #expect(run.status?.code == .error)
            #expect(run.attributes[TraceAttribute.runOutcome]?.toSpanAttribute() == .string("failed"))
        }
    }

    @Test("a workflow started outside any trace still gets one trace across its runs")
    func rootStart() async throws {
        try await withTemporaryDirectory { path in
            let tracer = uniqueTracer()
            let configuration = traced(by: tracer)
            try await WorkflowRuntime.withLMDB(path: path, workflows: [Shipment()], runtime: configuration) { runtime in
                _ = try await runtime.start(Shipment.self, id: "o", input: "tea")
                try await runtime.send("go", to: "o", payload: "bike")
                _ = try await runtime.handle(Shipment.self, id: "o").result()
            }
            let start = try #require(spans(tracer, named: "start shipment").first)
            #expect(start.parentSpanID == nil)
            let traced = tracer.finishedSpans.filter { $0.operationName != "send go" }
            #expect(traced.count == 4, "start, workflow run, two steps: \(traced.map(\.operationName))")
            #expect(traced.allSatisfy { $0.traceID == start.traceID })
        }
    }
}
