/// How much work a named queue lets run, set per queue in ``WorkflowRuntime/Configuration/queues``.
///
/// ```swift
/// var configuration = WorkflowRuntime.Configuration()
/// configuration.queues["model-api"] = QueueLimits(concurrency: 4, rate: .init(60, per: .seconds(60)))
/// configuration.queues["reports"] = QueueLimits(concurrency: 10, perPartition: 1)
/// ```
///
/// A queue limits step executions (`ctx.step(_:queue:…)`: each attempt of the body holds a
/// slot) and workflows started on it (``WorkflowRuntime/start(_:id:input:timeout:queue:)``:
/// each run of the body holds one while the workflow is in memory; a parked workflow holds
/// none and takes one again when it wakes). Waiting work is served by priority, then in the
/// order it asked. On a store several processes share (``EventStore/sharedQueues``), the
/// limits hold across all of them; otherwise the runtime applies them in memory.
public struct QueueLimits: Sendable, Hashable {
    /// How many may run at once in the whole queue (`nil`: no limit).
    public var concurrency: Int?
    /// How many may run at once for one partition key (`nil`: no limit).
    public var perPartition: Int?
    /// How many may start per time window (`nil`: no limit).
    public var rate: Rate?

    /// At most `count` starts in any window of `window`.
    public struct Rate: Sendable, Hashable {
        /// Starts allowed per window.
        public var count: Int
        /// The window's length.
        public var window: Duration

        /// `count` starts in any window of `window`.
        public init(_ count: Int, per window: Duration) {
            self.count = max(1, count)
            self.window = window
        }
    }

    /// Limits; every one is optional.
    public init(concurrency: Int? = nil, perPartition: Int? = nil, rate: Rate? = nil) {
        self.concurrency = concurrency.map { max(1, $0) }
        self.perPartition = perPartition.map { max(1, $0) }
        self.rate = rate
    }
}

/// Work placed on a named queue: which queue, which partition of it, and how urgent.
///
/// ```swift
/// let answer = try await ctx.step("ask-model", queue: QueueEntry("model-api", partition: input.customer)) {
///     try await model.complete(prompt)
/// }
/// ```
public struct QueueEntry: Sendable, Hashable, Codable {
    /// The queue's name, as ``WorkflowRuntime/Configuration/queues`` names it (a queue with no
    /// configured limits lets everything through).
    public var name: String
    /// The partition key (a customer, say) that ``QueueLimits/perPartition`` counts by.
    public var partition: String?
    /// Higher runs first; work of equal priority runs in the order it asked.
    public var priority: Int

    /// An entry on queue `name`.
    public init(_ name: String, partition: String? = nil, priority: Int = 0) {
        self.name = name
        self.partition = partition
        self.priority = priority
    }
}
