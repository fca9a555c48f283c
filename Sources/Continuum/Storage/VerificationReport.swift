/// What a store's `verify()` found: `LMDBStore.verify()` and `PostgresStore.verify()` both
/// return one, and `continuum verify` prints it.
public struct VerificationReport: Sendable {
    /// One value that failed its check.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The database or table (`workflows`, `events`, `timers`, `ids`, `counts`).
        public var database: String
        /// Where: the workflow's id when known, and the stream and sequence.
        public var location: String
        /// What is wrong.
        public var message: String

        /// A problem in `database` at `location`.
        public init(database: String, location: String, message: String) {
            self.database = database
            self.location = location
            self.message = message
        }

        public var description: String { "\(database) \(location): \(message)" }
    }

    /// How many values were checked, per database.
    public var checked: [String: Int] = [:]
    /// Every value that failed.
    public var problems: [Problem] = []
    /// The workflows whose history holds a damaged value.
    public var damagedWorkflows: Set<String> = []

    /// An empty report, to fill in.
    public init() {}

    /// Whether every value passed.
    public var isClean: Bool { problems.isEmpty }
}
