public import Foundation
import Synchronization

/// The PostgreSQL server the tests use: `CONTINUUM_POSTGRES_URL` when set (`make test` sets it),
/// otherwise a throwaway cluster started by `tools/postgres.sh` — the tests never skip for want
/// of a server.
public enum TestPostgres {
    private static let cached = Mutex<String?>(nil)

    /// The server's URL, starting the cluster once per test process when no URL was given.
    public static func url() throws -> String {
        if let url = ProcessInfo.processInfo.environment["CONTINUUM_POSTGRES_URL"], !url.isEmpty { return url }
        return try cached.withLock { cached in
            if let cached { return cached }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("tools/postgres.sh").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [script, "start"]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let url = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard process.terminationStatus == 0, url.hasPrefix("postgres://") else {
                throw TestPostgresError(message: "tools/postgres.sh start failed (status \(process.terminationStatus)): \(url)")
            }
            cached = url
            return url
        }
    }

    /// A schema name no other test uses.
    public static func uniqueSchema(_ prefix: String = "t") -> String {
        "\(prefix)_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))"
    }
}

/// The throwaway PostgreSQL could not be started.
public struct TestPostgresError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
