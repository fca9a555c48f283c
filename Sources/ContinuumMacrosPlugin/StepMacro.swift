import SwiftCompilerPlugin
public import SwiftSyntax
import SwiftSyntaxBuilder
public import SwiftSyntaxMacros

/// `#step(ctx, "name") { body }` → `ctx.step("name", fingerprint: "<hash of body>") { body }`.
///
/// The fingerprint hashes the body closure's tokens as written, without trivia: whitespace and
/// comments do not change it, any other edit to the closure's own source does. Code the
/// closure calls (a function in another file, a library) is not part of it.
public struct StepMacro: ExpressionMacro {
    public static func expansion(
        of node: some FreestandingMacroExpansionSyntax, in context: some MacroExpansionContext
    ) throws -> ExprSyntax {
        var arguments = Array(node.arguments)
        var closure = node.trailingClosure
        if closure == nil, let last = arguments.last, let trailing = last.expression.as(ClosureExprSyntax.self), last.label == nil {
            closure = trailing
            arguments.removeLast()
        }
        guard arguments.count >= 2, arguments[0].label == nil, arguments[1].label == nil else {
            throw StepMacroError("#step takes the workflow context and the step's name first: #step(ctx, \"name\") { … }")
        }
        guard let body = closure else {
            throw StepMacroError("#step needs the step's body as a closure: #step(ctx, \"name\") { … }")
        }
        let fingerprint = Self.fingerprint(of: body)
        var forwarded: [String] = ["\(arguments[1].expression.trimmed)", "fingerprint: \"\(fingerprint)\""]
        for argument in arguments.dropFirst(2) {
            guard let label = argument.label?.text else {
                throw StepMacroError("#step's arguments after the name are labelled (version:, retry:)")
            }
            forwarded.append("\(label): \(argument.expression.trimmed)")
        }
        return "\(arguments[0].expression.trimmed).step(\(raw: forwarded.joined(separator: ", "))) \(body.trimmed)"
    }

    /// `h` and 16 hex digits of FNV-1a over the closure's tokens, without trivia.
    static func fingerprint(of closure: ClosureExprSyntax) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for token in closure.tokens(viewMode: .sourceAccurate) {
            for byte in token.text.utf8 + [0x1F] {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
        }
        let hex = String(hash, radix: 16)
        return "h" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

struct StepMacroError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
struct ContinuumMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [StepMacro.self]
}
