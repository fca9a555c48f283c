@_spi(Testing) import Continuum
@_spi(Testing) import ContinuumPostgres
import ContinuumTesting
import ContinuumTestSupport
import Foundation
import Logging
import Testing

/// Warnings and errors only: the store logs each schema migration at `info`.
let testLogger: Logger = {
    var logger = Logger(label: "continuum.postgres.test")
    logger.logLevel = .warning
    return logger
}()

/// PostgreSQL stores, each in a schema of its own on the test server, for the conformance suite.
struct PostgresFixture: EventStoreFixture {
    func configuration(schema: String, clock: ManualClock) throws -> PostgresStore.Configuration {
        var configuration = try PostgresStore.Configuration(url: TestPostgres.url())
        configuration.schema = schema
        configuration.clock = clock
        configuration.poolSize = 4
        return configuration
    }

    func makeStore(clock: ManualClock) async throws -> any EventStore {
        try await PostgresStore.connect(configuration: configuration(schema: TestPostgres.uniqueSchema(), clock: clock), logger: testLogger)
    }

    func reopen(_ store: any EventStore, clock: ManualClock) async throws -> (any EventStore)? {
        let schema = try #require(store as? PostgresStore).configuration.schema
        await store.close()
        return try await PostgresStore.connect(configuration: configuration(schema: schema, clock: clock), logger: testLogger)
    }

    func corrupt(_ store: any EventStore, id: String, sequence: UInt32) async throws {
        try await #require(store as? PostgresStore).damage(id: id, sequence: sequence)
    }

    func dispose(_ store: any EventStore) async {
        guard let store = store as? PostgresStore else { return }
        // The store is closed: drop its schema through a new one.
        var configuration = store.configuration
        configuration.clock = nil
        if let cleaner = try? await PostgresStore.connect(configuration: configuration, logger: testLogger) {
            try? await cleaner.dropSchema()
            await cleaner.close()
        }
    }
}

@Suite("PostgreSQL store conformance")
struct PostgresConformanceTests {
    @Test(arguments: EventStoreConformance.checks)
    func conforms(_ check: EventStoreConformance.Check) async throws {
        try await check.run(on: PostgresFixture())
    }
}
