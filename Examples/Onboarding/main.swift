import Foundation

/// `Onboarding demo [--state DIR]` tells the whole story (what `make run` calls);
/// `Onboarding worker --state DIR [--crash-after-step N]` is the service process it launches.
let usage = """
    usage: Onboarding demo [--state DIR]
           Onboarding worker --state DIR [--crash-after-step N]
    """

/// The command line, parsed by hand: a command, then `--option value` pairs.
struct Arguments {
    var command: String
    var options: [String: String] = [:]

    init?(_ arguments: [String]) {
        guard let command = arguments.first else { return nil }
        self.command = command
        var rest = arguments.dropFirst()
        while let name = rest.popFirst() {
            guard name.hasPrefix("--"), let value = rest.popFirst() else { return nil }
            options[String(name.dropFirst(2))] = value
        }
    }
}

/// Prints `message` and the usage to standard error, and exits with status 2.
func fail(_ message: String) -> Never {
    Console.complain("\(message)\n\(usage)")
    exit(2)
}

guard let arguments = Arguments(Array(CommandLine.arguments.dropFirst())) else { fail("Expected a command.") }
let known: Set<String> = arguments.command == "worker" ? ["state", "crash-after-step"] : ["state"]
if let unknown = arguments.options.keys.first(where: { !known.contains($0) }) { fail("Unknown option --\(unknown).") }

switch arguments.command {
case "demo":
    exit(await Demo.run(stateDirectory: arguments.options["state"] ?? "./state"))
case "worker":
    guard let state = arguments.options["state"] else { fail("worker needs --state DIR.") }
    var crashAfterStep: Int?
    if let text = arguments.options["crash-after-step"] {
        guard let step = Int(text), (1...3).contains(step) else { fail("--crash-after-step takes 1, 2 or 3.") }
        crashAfterStep = step
    }
    exit(await Worker.run(stateDirectory: state, crashAfterStep: crashAfterStep))
default:
    fail("Unknown command '\(arguments.command)'.")
}
