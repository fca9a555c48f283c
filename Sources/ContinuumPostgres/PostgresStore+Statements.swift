import Continuum
import Logging
import NIOCore
import PostgresNIO

/// How the store runs a statement: on a given connection or a pooled one, with every row
/// collected, and never waiting forever.
///
/// postgres-nio (1.33) hands a query to its channel without a write promise. A query written
/// after the server ended the connection — PostgreSQL restarting sends `FATAL 57P01` to idle
/// connections, which then close — is dropped, and its result never comes: the store's writer,
/// and every workflow waiting on it, would wait forever (seen in the restart test, 1 run in 10).
/// So a statement on a closed connection fails at once, one whose connection closes while it
/// waits fails within a second, and one without an answer within `answerTimeout` fails too; all
/// are ``ContinuumError/Code/storeUnavailable``.
extension PostgresStore {
    /// A statement could not be answered: its connection was closed, or no answer came in time.
    struct ConnectionGone: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `query` and returns its rows: on `connection`, or on one leased from the pool.
    func fetch(_ query: PostgresQuery, on connection: PostgresConnection? = nil) async throws -> [PostgresRow] {
        guard let connection else {
            return try await client.withConnection { connection in
                try await self.fetch(query, on: connection)
            }
        }
        guard !connection.isClosed else { throw ConnectionGone(description: "the connection to PostgreSQL is closed") }
        let promise = connection.eventLoop.makePromise(of: [PostgresRow].self)
        let timeout = answerTimeout
        let timer = connection.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            promise.fail(ConnectionGone(description: "no answer from PostgreSQL within \(timeout)"))
        }
        // The connection may close between the check above and the write: look again every
        // second while the statement waits, so such a statement fails within a second.
        let watch = connection.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            if connection.isClosed { promise.fail(ConnectionGone(description: "the connection to PostgreSQL closed")) }
        }
        connection.query(query, logger: logger).whenComplete { result in
            timer.cancel()
            watch.cancel()
            // The first completion stands: a late answer after the timeout is ignored.
            promise.completeWith(result.map(\.rows))
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as ConnectionGone {
            // Whatever the connection was doing, it is not to be used again.
            try? await connection.close()
            throw error
        }
    }

    /// How long a statement may go without an answer: the server's own limit and a margin.
    var answerTimeout: Duration { (configuration.statementTimeout ?? configuration.commitTimeout) + .seconds(5) }
}

extension Array where Element == PostgresRow {
    /// Each row decoded as one column of type `Column`.
    func decode<Column: PostgresDecodable>(_ type: Column.Type) throws -> [Column] {
        try map { try $0.decode(type) }
    }

    /// Each row decoded as a tuple of columns.
    func decode<each Column: PostgresDecodable>(_ types: (repeat each Column).Type) throws -> [(repeat each Column)] {
        try map { try $0.decode(types) }
    }
}
