@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Logging
import ServiceLifecycle
import Testing

/// Sleeps `input` milliseconds (real time), then returns it.
struct Nap: Workflow {
    static let name = "nap"

    func run(_ ctx: WorkflowContext, input: Int) async throws -> Int {
        try await ctx.sleep(for: .milliseconds(input))
        return input
    }
}

@Suite("Service lifecycle")
struct ServiceTests {
    @Test("a graceful shutdown with workflows in flight closes the store; a restart completes them")
    func gracefulShutdown() async throws {
        try await withTemporaryDirectory { path in
            let logger = Logger(label: "test")
            let store = try LMDBStore(path: path)
            let runtime = WorkflowRuntime(store: store, workflows: [Approval(), Nap()])
            let group = ServiceGroup(services: [runtime], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await eventually { runtime.isReady }
                for index in 0..<20 { try await runtime.start(Approval.self, id: "a\(index)", input: .init(amount: index)) }
                // Naps long enough to be in flight at the shutdown unless a loaded machine takes
                // seconds over the 40 starts (CI once took 20): the approvals, which wait for
                // ever, are in flight whatever the machine does.
                for index in 0..<20 { try await runtime.start(Nap.self, id: "n\(index)", input: 4_000 + index) }
                try await eventually { try await runtime.list(limit: 100).count == 40 }
                #expect(try await runtime.list(status: .running, limit: 100).filter { $0.type == Approval.name }.count == 20)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(!runtime.isReady)
            // The store was closed by the shutdown: the directory is free for the next process.
            try await LMDBStore.withStore(path: path) { reopened throws in
            try await WorkflowRuntime.withRuntime(store: reopened, workflows: [Approval(), Nap()]) { runtime in
                for index in 0..<20 {
                    try await runtime.send("approve", to: "a\(index)", payload: Approval.Decision(by: "restart"))
                    #expect(try await runtime.handle(Approval.self, id: "a\(index)").result() == "\(index) approved by restart")
                    #expect(try await runtime.handle(Nap.self, id: "n\(index)").result() == 4_000 + index)
                }
            }
            }
        }
    }
}
