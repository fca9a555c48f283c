import ArgumentParser
import ContinuumLMDB
import Foundation

/// `continuum verify`: checks every stored value's CRC and format.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every stored value (CRC-32C, format, decoding) and report what is damaged.",
        discussion: "Opens the store, so stop the server using it first. Exits 1 when anything is damaged.")

    @Option(help: "The LMDB directory.")
    var path = "./state"

    func run() async throws {
        let report = try await LMDBStore.withStore(path: path) { store in try store.verify() }
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
