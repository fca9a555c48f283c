import ArgumentParser
import ContinuumServer
import Foundation

/// `continuum verify`: checks every stored value's CRC and format.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every stored value (CRC-32C, format, decoding) and report what is damaged.",
        discussion: """
            On LMDB it opens the store, so stop the server using it first. On PostgreSQL it reads one consistent \
            snapshot beside running servers, and also checks each workflow's event count and the status counts. \
            Exits 1 when anything is damaged.
            """)

    @OptionGroup var storage: StoreOptions<StateDirectory>

    func run() async throws {
        let report = try await storage.withStore { store in try await store.verify() }
        let counts = report.checked.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("Checked \(counts.isEmpty ? "nothing (empty store)" : counts).")
        if report.isClean {
            print("Every value is intact.")
            return
        }
        print("\(report.problems.count) damaged value(s); workflows affected: \(report.damagedWorkflows.sorted().joined(separator: ", ")):")
        for problem in report.problems { print("  \(problem)") }
        throw ExitCode(1)
    }
}
