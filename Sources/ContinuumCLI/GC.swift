import ArgumentParser
import ContinuumServer
import Foundation

/// `continuum gc --finished-before 30d`: retention for finished workflows.
struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete workflows that finished longer ago than a duration (running ones are never touched).",
        discussion: """
            On LMDB it opens the store, so stop the server using it first; on PostgreSQL it runs beside running \
            servers, a thousand workflows per transaction. Durations: 90s, 45m, 12h, 30d.
            """)

    @Option(help: "Delete workflows that finished before this long ago (e.g. 30d).")
    var finishedBefore: String

    @OptionGroup var storage: StoreOptions<StateDirectory>

    func run() async throws {
        guard let age = Self.seconds(finishedBefore) else {
            throw ValidationError("--finished-before takes a number with s, m, h or d (like 30d); got '\(finishedBefore)'.")
        }
        let cutoff = Int64((Date().timeIntervalSince1970 - age) * 1e9)
        let deleted = try await storage.withStore { store in
            try await store.deleteFinished(before: cutoff) { count in
                FileHandle.standardError.write(Data("\rdeleted \(count)…".utf8))
            }
        }
        print("\(deleted == 0 ? "" : "\r")Deleted \(deleted) workflow(s) that finished before \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(cutoff) / 1e9))).")
    }

    /// `30d`, `12h`, `45m`, `90s` in seconds.
    static func seconds(_ text: String) -> Double? {
        guard let unit = text.last, let value = Double(text.dropLast()), value >= 0 else { return nil }
        switch unit {
        case "s": return value
        case "m": return value * 60
        case "h": return value * 3_600
        case "d": return value * 86_400
        default: return nil
        }
    }
}
