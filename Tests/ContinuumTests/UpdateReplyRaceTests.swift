@_spi(Testing) import Continuum
import ContinuumLMDB
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Synchronization
import Testing

/// Takes one "finish" update, works on it for a moment, replies and ends.
struct ReplyThenEnd: Workflow {
    static let name = "reply-then-end"

    func run(_ ctx: WorkflowContext, input: String) async throws -> String {
        guard let request = try await ctx.nextUpdate("finish", as: String.self) else { return "no update" }
        // Long enough for the caller to read the history before the reply is in it.
        try await ctx.step("work") {
            try await Task.sleep(for: .milliseconds(300))
        }
        try await request.reply("done: \(request.payload)")
        return "finished"
    }
}

/// An LMDB store whose `summary(id:)` holds the call it is armed for until the workflow has
/// finished: the caller then reads a status newer than the history it read before.
final class SlowSummaryStore: EventStore {
    let inner: LMDBStore
    /// Summary calls to let through before holding one; negative when disarmed.
    let passes = Atomic<Int>(-1)

    init(_ inner: LMDBStore) { self.inner = inner }

    var limits: StoreLimits { inner.limits }
    nonisolated(nonsending) func create(_ request: CreateRequest) async throws(ContinuumError) -> CreateOutcome { try await inner.create(request) }
    nonisolated(nonsending) func append(_ request: AppendRequest) async throws(ContinuumError) { try await inner.append(request) }
    func claim(_ id: String, owner: OwnerID) async throws(ContinuumError) -> Claim? { try await inner.claim(id, owner: owner) }
    func renew(_ claims: [Claim]) async throws(ContinuumError) -> [Claim] { try await inner.renew(claims) }
    func claimAvailable(owner: OwnerID, overdue: Duration, limit: Int) async throws(ContinuumError) -> [ClaimedWorkflow] {
        try await inner.claimAvailable(owner: owner, overdue: overdue, limit: limit)
    }
    func post(_ kind: InboxMessage.Kind, to id: String) async throws(ContinuumError) -> UInt64 { try await inner.post(kind, to: id) }
    func pendingInbox(for owner: OwnerID, limit: Int) async throws(ContinuumError) -> [InboxMessage] { try await inner.pendingInbox(for: owner, limit: limit) }
    func settle(_ number: UInt64, with outcome: InboxOutcome) async throws(ContinuumError) { try await inner.settle(number, with: outcome) }
    func outcome(of number: UInt64) async throws(ContinuumError) -> InboxOutcome? { try await inner.outcome(of: number) }
    func inboxNotices() -> AsyncStream<Void> { inner.inboxNotices() }
    var sharedQueues: (any SharedQueueStore)? { inner.sharedQueues }
    func load(id: String) async throws(ContinuumError) -> StoredWorkflow? { try await inner.load(id: id) }
    func loadRecent(id: String) async throws(ContinuumError) -> StoredWorkflow? { try await inner.loadRecent(id: id) }
    func list(status: WorkflowStatus?, after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] {
        try await inner.list(status: status, after: after, limit: limit)
    }
    func runnable(after: StreamID?, limit: Int) async throws(ContinuumError) -> [ListedWorkflow] { try await inner.runnable(after: after, limit: limit) }
    func timers(after: DueTimer?, limit: Int) async throws(ContinuumError) -> [DueTimer] { try await inner.timers(after: after, limit: limit) }
    func counts() async throws(ContinuumError) -> StatusCounts { try await inner.counts() }
    func close() async { await inner.close() }

    func summary(id: String) async throws(ContinuumError) -> WorkflowSummary? {
        if passes.subtract(1, ordering: .relaxed).newValue == -1 {
            // The armed call: answered once the workflow has ended.
            while try await inner.summary(id: id)?.status.isFinished != true {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        return try await inner.summary(id: id)
    }
}

@Suite("Update replies")
struct UpdateReplyRaceTests {
    @Test("a workflow that replies and ends between the caller's read of its history and of its status gets its reply to the caller")
    func replyThenEndBetweenReads() async throws {
        try await withTemporaryDirectory { path in
            let store = SlowSummaryStore(try LMDBStore(path: path))
            let runtime = WorkflowRuntime(store: store, workflows: [ReplyThenEnd()])
            try await runtime.withRunning { runtime in
                let handle = try await runtime.start(ReplyThenEnd.self, id: "r", input: "x")
                try await runtime.waitForHistory(of: "r") { $0.contains { $0.kindName == "waitStarted" } }
                // `update` reads the summary once to find the workflow's type; the caller's
                // wait for the reply reads the history, then the status: that read is held.
                store.passes.store(1, ordering: .relaxed)
                let reply = try await runtime.update("r", "finish", payload: "now", as: String.self)
                #expect(reply == "done: now")
                #expect(try await handle.result() == "finished")
            }
            await store.close()
        }
    }
}
