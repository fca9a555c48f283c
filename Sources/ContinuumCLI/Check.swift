public import ArgumentParser
public import Continuum
import ContinuumExamples
import ContinuumServer
import Foundation

/// `continuum check`: the deploy gate.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay every unfinished workflow of a store against this build's workflows, as a dry run (the deploy gate).",
        discussion: """
            No step runs, nothing is written, no timer waits: an LMDB store is opened read-only, so it can run beside a \
            server using the same directory (or on a copy of it); a PostgreSQL database is only read, beside the servers \
            using it. Prints each workflow that would break — it would be \
            suspended (with the difference), a step's code changed (with what the code-change policy would do), its \
            type is unknown — and, for each version marker, how many workflows still take its old branch. Exits 1 when \
            any workflow would break.

            This binary registers the example workflows and those of `continuum bench`; in your own service, run the same check with \
            WorkflowReplayer(workflows:).check(store:) or runtime.check().
            """)

    @OptionGroup var storage: StoreOptions<StateDirectory>

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "List compatible workflows too.")
    var all = false

    @Option(help: "What the runtime does with a step whose code changed: suspend, rerun or accept.")
    var codeChange: WorkflowRuntime.CodeChangePolicy = .suspend

    @Option(help: "How many workflows are replayed at once.")
    var concurrency = 64

    func run() async throws {
        let report = try await storage.withStore(readOnly: true) { store in
            try await WorkflowReplayer(workflows: exampleWorkflows + Bench.workflows, codeChange: codeChange).check(store: store, concurrency: concurrency)
        }
        if json {
            FileHandle.standardOutput.write(try report.json())
            print()
        } else {
            print(report.text(all: all))
        }
        if !report.passed { throw ExitCode(1) }
    }
}

extension WorkflowRuntime.CodeChangePolicy: ExpressibleByArgument {}
