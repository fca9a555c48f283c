import Foundation

/// `Evolution story [--state DIR]` tells the whole story (what `make evolution` runs);
/// `Evolution v1 --state DIR --ids ID,ID…` is the version 1 process it launches.
let usage = """
    usage: Evolution story [--state DIR]
           Evolution v1 --state DIR --ids ID,ID…
    """

/// Prints `message` and the usage to standard error, and exits with status 2.
func fail(_ message: String) -> Never {
    Console.complain("\(message)\n\(usage)")
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard !arguments.isEmpty else { fail("Expected a command.") }
let command = arguments.removeFirst()
var options: [String: String] = [:]
while !arguments.isEmpty {
    let name = arguments.removeFirst()
    guard name.hasPrefix("--"), !arguments.isEmpty else { fail("Expected --option value pairs.") }
    options[String(name.dropFirst(2))] = arguments.removeFirst()
}
let known: Set<String> = command == "v1" ? ["state", "ids"] : ["state"]
if let unknown = options.keys.first(where: { !known.contains($0) }) { fail("Unknown option --\(unknown).") }

switch command {
case "story":
    exit(await Story.run(stateDirectory: options["state"] ?? "./evolution-state"))
case "v1":
    guard let state = options["state"], let ids = options["ids"]?.split(separator: ",").map(String.init), !ids.isEmpty else {
        fail("v1 needs --state DIR and --ids ID,ID….")
    }
    exit(await Worker.run(stateDirectory: state, ids: ids))
default:
    fail("Unknown command '\(command)'.")
}
