import ArgumentParser

/// The `continuum` command-line tool.
@main
struct ContinuumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "continuum",
        abstract: "Durable workflows for Swift: serve the HTTP API, inspect stores and measure the runtime.",
        subcommands: [
            Serve.self, Send.self, Update.self, Query.self, ScheduleCommand.self, Unschedule.self, Schedules.self, Cancel.self, Resume.self, Reset.self, Fork.self, Export.self, List.self, Show.self, Check.self, Verify.self, GC.self,
            Bench.self,
        ]
    )
}
