import ArgumentParser

/// The `continuum` command-line tool.
@main
struct ContinuumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "continuum",
        abstract: "Durable workflows for Swift: inspect stores and measure the runtime.",
        subcommands: [Bench.self, List.self, Show.self]
    )
}
