public import Continuum

extension LMDBStore {
    /// Deletes a finished workflow: its id, record, status entry and every event. Returns
    /// `false` when no workflow has the id. The id can be used again afterwards.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` when the workflow has not finished.
    @discardableResult
    public func deleteFinished(id: String) async throws(ContinuumError) -> Bool {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Bool, ContinuumError>, Never>) in
            writer.submit(.purge(id) { continuation.resume(returning: $0) })
        }
        return try result.get()
    }

    /// Deletes every workflow that finished (completed, failed or cancelled) before `cutoff`
    /// (nanoseconds since 1970); returns how many. Running workflows are never touched.
    ///
    /// ```sh
    /// continuum gc --finished-before 30d --path ./state
    /// ```
    public func deleteFinished(before cutoff: Int64, progress: (Int) -> Void = { _ in }) async throws(ContinuumError) -> Int {
        var deleted = 0
        for status in [WorkflowStatus.completed, .failed, .cancelled] {
            var after: StreamID?
            while true {
                let page = try await list(status: status, after: after, limit: 1000)
                // A page's deletions go to the writer together, so they share commits.
                let ids = page.filter { $0.summary.updatedAt < cutoff }.map(\.summary.id)
                let results = await withTaskGroup(of: Result<Bool, ContinuumError>.self) { group in
                    for id in ids {
                        group.addTask {
                            do throws(ContinuumError) { return .success(try await self.deleteFinished(id: id)) } catch { return .failure(error) }
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                for result in results where try result.get() { deleted += 1 }
                if deleted > 0 { progress(deleted) }
                guard page.count == 1000, let last = page.last else { break }
                after = last.stream
            }
        }
        return deleted
    }
}
