public import Continuum
public import ContinuumLMDB
import Foundation

/// A directory under the system's temporary folder, removed when the scope ends.
///
/// ```swift
/// try await withTemporaryDirectory { path in
///     let store = try LMDBStore(path: path)
///     …
/// }
/// ```
public func withTemporaryDirectory<R>(
    prefix: String = "continuum",
    isolation: isolated (any Actor)? = #isolation,
    _ body: (String) async throws -> R
) async throws -> R {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

extension WorkflowRuntime {
    /// Opens an `LMDBStore` at `path`, runs a runtime with `workflows` on it for the duration
    /// of `body`, then stops the runtime and closes the store.
    public static func withLMDB<R>(
        path: String,
        workflows: [any Workflow],
        configuration: LMDBStore.Configuration = .init(),
        runtime runtimeConfiguration: WorkflowRuntime.Configuration = .init(),
        _ body: (WorkflowRuntime) async throws -> R
    ) async throws -> R {
        let store = try LMDBStore(path: path, configuration: configuration)
        let runtime = WorkflowRuntime(store: store, workflows: workflows, configuration: runtimeConfiguration)
        let result: Result<R, any Error>
        do {
            result = .success(try await runtime.withRunning(body))
        } catch {
            result = .failure(error)
        }
        await store.close()
        return try result.get()
    }

    /// ``withLMDB(path:workflows:configuration:runtime:_:)`` with a runtime on `clock`.
    public static func withLMDB<R>(
        path: String,
        clock: ManualClock,
        workflows: [any Workflow],
        _ body: (WorkflowRuntime) async throws -> R
    ) async throws -> R {
        try await withLMDB(path: path, workflows: workflows, runtime: .init(clock: clock), body)
    }
}
