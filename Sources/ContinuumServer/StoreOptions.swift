package import ArgumentParser
package import Continuum
package import ContinuumLMDB
package import ContinuumPostgres
import Foundation
package import Logging

/// `--path DIR` or `--postgres URL`: the store a command opens, the embedded LMDB store in a
/// directory or a PostgreSQL database, for every command that opens one.
///
/// Without either flag, `CONTINUUM_POSTGRES_URL` names the database when it is set (which keeps
/// the password out of the process list), else the default directory is used. `--path` wins
/// over the variable; `--path` with `--postgres` is refused.
package struct StoreOptions<DefaultPath: DefaultStorePath>: ParsableArguments {
    /// The environment variable read when `--postgres` is absent.
    package static var environmentVariable: String { "CONTINUUM_POSTGRES_URL" }

    @Option(help: ArgumentHelp("The LMDB directory \(DefaultPath.help).", valueName: "path"))
    package var path: String?

    @Option(
        help: ArgumentHelp(
            """
            A PostgreSQL database instead of an LMDB directory: postgres://user:password@host:port/database, \
            optionally with ?schema=name (default continuum) and &sslmode=require. When this flag is absent, \
            CONTINUUM_POSTGRES_URL is read instead (it keeps the password out of the process list); --path wins over it.
            """,
            valueName: "url"))
    package var postgres: String?

    package init() {}

    package func validate() throws {
        if path != nil, postgres != nil {
            throw ValidationError("Give either --path (an LMDB directory) or --postgres (a PostgreSQL URL), not both.")
        }
    }

    /// The store these options name: `--postgres`; else `--path`; else `CONTINUUM_POSTGRES_URL`
    /// when it is set; else the default directory.
    ///
    /// - Throws: `ValidationError` naming the flag or the variable when the URL is not one.
    package func location(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> StoreLocation {
        let url: String
        let source: String
        if let postgres {
            (url, source) = (postgres, "--postgres")
        } else if path == nil, let value = environment[Self.environmentVariable], !value.isEmpty {
            (url, source) = (value, Self.environmentVariable)
        } else {
            return .lmdb(path ?? DefaultPath.path)
        }
        do {
            return .postgres(try PostgresStore.Configuration(url: url), url: url)
        } catch {
            throw ValidationError("\(source): \(error.message)")
        }
    }

    /// Opens the store these options name, runs `body` with it, then closes it, also when `body`
    /// throws.
    ///
    /// - Parameters:
    ///   - readOnly: Opens an LMDB store read-only, beside a process that holds it (a PostgreSQL
    ///     store is shared anyway; `body` should then only read).
    ///   - logger: Where a PostgreSQL store logs; by default warnings and errors only, on
    ///     standard error.
    package func withStore<R>(
        readOnly: Bool = false, logger: Logger = commandLogger, isolation: isolated (any Actor)? = #isolation,
        _ body: (any CommandLineStore) async throws -> R
    ) async throws -> R {
        let store: any CommandLineStore
        switch try location() {
        case .lmdb(let path):
            var configuration = LMDBStore.Configuration()
            configuration.readOnly = readOnly
            store = try LMDBStore(path: path, configuration: configuration)
        case .postgres(let configuration, _):
            store = try await PostgresStore.connect(configuration: configuration, logger: logger)
        }
        return try await store.closing(body)
    }
}

/// Where `--path` points when a command is not given one.
package protocol DefaultStorePath {
    /// The directory (a new one each time for a temporary directory).
    static var path: String { get }
    /// How `--help` says it, in parentheses.
    static var help: String { get }
}

/// `./state`, where `continuum serve` keeps its store and the inspection commands look.
package enum StateDirectory: DefaultStorePath {
    package static var path: String { "./state" }
    package static var help: String { "(default: ./state)" }
}

/// A new temporary directory, which `continuum bench` removes afterwards.
package enum TemporaryDirectory: DefaultStorePath {
    package static var path: String { FileManager.default.temporaryDirectory.appendingPathComponent("continuum-bench-\(UUID().uuidString)").path }
    package static var help: String { "(default: a new temporary directory, removed afterwards)" }
}

/// The store a command opens.
package enum StoreLocation: CustomStringConvertible {
    /// The embedded store in this directory.
    case lmdb(String)
    /// A PostgreSQL database (and schema), and the URL that named it.
    case postgres(PostgresStore.Configuration, url: String)

    /// The directory, or the URL without its password.
    package var description: String {
        switch self {
        case .lmdb(let path): path
        case .postgres(let configuration, _): configuration.displayURL
        }
    }
}

/// What the commands need of a store beyond ``EventStore``: deleting finished workflows
/// (`continuum gc`) and checking every stored value (`continuum verify`). Both stores have both.
package protocol CommandLineStore: EventStore {
    /// Deletes the workflows that finished before `cutoff` (nanoseconds since 1970); returns how many.
    func deleteFinished(before cutoff: Int64, progress: (Int) -> Void) async throws(ContinuumError) -> Int
    /// Reads every stored value and reports the damaged ones.
    func verify() async throws(ContinuumError) -> VerificationReport
}

extension LMDBStore: CommandLineStore {}
extension PostgresStore: CommandLineStore {}

/// The logger of commands that print their results: warnings and errors only, on standard error,
/// so that they never mix with the output (a PostgreSQL store logs each schema migration at info).
package let commandLogger: Logger = {
    var logger = Logger(label: "continuum")
    logger.logLevel = .warning
    return logger
}()
