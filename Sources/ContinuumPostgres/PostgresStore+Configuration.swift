public import Continuum
import Foundation

extension PostgresStore {
    /// Where the store's database is and how the store shares it.
    public struct Configuration: Sendable {
        /// The server's host name or address.
        public var host: String
        /// The server's port.
        public var port: Int
        /// The role to connect as.
        public var username: String
        /// Its password, when the server asks for one.
        public var password: String?
        /// The database.
        public var database: String
        /// Whether to require TLS (`sslmode=require` in a URL). Off by default: most deployments
        /// reach PostgreSQL over a private network or loopback.
        public var requireTLS: Bool = false
        /// The schema holding Continuum's tables, created if missing. Several independent
        /// deployments (or tests) can share one database with one schema each.
        public var schema: String = "continuum"
        /// How many connections the store keeps at most: one commits the write batches, the
        /// others serve reads, claims and renewals.
        public var poolSize: Int = 8
        /// How long a claim on a workflow lasts unless its owner renews it; a process paused
        /// longer than this loses its workflows to others, and its late appends are refused.
        public var leaseDuration: Duration = .seconds(30)
        /// How long opening the store keeps retrying (with backoff) while the server cannot be
        /// reached, before it fails with ``ContinuumError/Code/storageFailure``.
        public var connectTimeout: Duration = .seconds(30)
        /// The longest a statement may run on the server (`statement_timeout`); `nil`: no limit.
        public var statementTimeout: Duration? = .seconds(60)
        /// With no `statementTimeout`: the longest a statement may wait for PostgreSQL's answer
        /// (plus 5 seconds) before the store closes its connection and fails it with
        /// ``ContinuumError/Code/storeUnavailable``. With one, that limit is used instead.
        public var commitTimeout: Duration = .seconds(30)
        /// The most submissions committed in one transaction.
        public var maxBatch: Int = 1024
        /// The largest payload, in bytes, the store accepts (PostgreSQL's `bytea` holds 1 GiB).
        public var maxPayloadBytes: Int = 64 << 20
        /// The clock leases run on; `nil` (the default): the database server's clock, so that
        /// processes never compare their own clocks. Tests pass a manual clock.
        public var clock: (any WorkflowClock)?

        /// A configuration from its parts.
        public init(host: String = "127.0.0.1", port: Int = 5432, username: String, password: String? = nil, database: String) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
        }

        /// A configuration from a URL: `postgres://user:password@host:port/database`, with an
        /// optional `?sslmode=require` and `&schema=name`.
        ///
        /// - Throws: ``ContinuumError/Code/invalidArgument`` naming what is wrong with the URL.
        public init(url: String) throws(ContinuumError) {
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                scheme == "postgres" || scheme == "postgresql"
            else {
                throw ContinuumError(.invalidArgument, "'\(Self.redacted(url))' is not a PostgreSQL URL: expected postgres://user:password@host:port/database.")
            }
            guard let host = components.host, !host.isEmpty else {
                throw ContinuumError(.invalidArgument, "The PostgreSQL URL '\(Self.redacted(url))' names no host.")
            }
            guard let user = components.user, !user.isEmpty else {
                throw ContinuumError(.invalidArgument, "The PostgreSQL URL '\(Self.redacted(url))' names no user.")
            }
            let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            guard !database.isEmpty, !database.contains("/") else {
                throw ContinuumError(.invalidArgument, "The PostgreSQL URL '\(Self.redacted(url))' names no database (…/database).")
            }
            self.init(host: host, port: components.port ?? 5432, username: user, password: components.password, database: database)
            for item in components.queryItems ?? [] {
                switch (item.name, item.value) {
                case ("sslmode", "require"?), ("sslmode", "verify-full"?): requireTLS = true
                case ("sslmode", "disable"?), ("sslmode", "prefer"?), ("sslmode", "allow"?): requireTLS = false
                case ("schema", let name?): schema = name
                default:
                    throw ContinuumError(.invalidArgument, "The PostgreSQL URL option '\(item.name)=\(item.value ?? "")' is not supported (sslmode, schema are).")
                }
            }
            try validate()
        }

        /// The URL without its password, for messages and logs.
        public var displayURL: String { "postgres://\(username)@\(host):\(port)/\(database)?schema=\(schema)" }

        func validate() throws(ContinuumError) {
            guard let first = schema.unicodeScalars.first, first == "_" || ("a"..."z").contains(first),
                schema.unicodeScalars.allSatisfy({ $0 == "_" || ("a"..."z").contains($0) || ("0"..."9").contains($0) }), schema.utf8.count <= 48
            else {
                throw ContinuumError(.invalidArgument, "The schema name '\(schema)' must be lowercase letters, digits and _, at most 48 bytes, not starting with a digit.")
            }
            guard poolSize >= 2 else { throw ContinuumError(.invalidArgument, "poolSize must be at least 2 (one writer, one reader); got \(poolSize).") }
            guard leaseDuration > .zero else { throw ContinuumError(.invalidArgument, "leaseDuration must be positive.") }
            guard maxBatch >= 1 else { throw ContinuumError(.invalidArgument, "maxBatch must be at least 1.") }
        }

        private static func redacted(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "***"
            return components.string ?? url
        }
    }
}
