@testable import ContinuumServer
import Logging
import Synchronization
import Testing

/// Captures what a `StreamLogHandler` writes.
private final class Lines: TextOutputStream, @unchecked Sendable {
    private let text = Mutex("")
    func write(_ string: String) { text.withLock { $0 += string } }
    /// The lines without their timestamps.
    var written: [String] { text.withLock { $0 }.split(separator: "\n").map { String($0.drop { $0 != " " }) } }
}

@Suite("continuum serve's logging")
struct ServerLoggingTests {
    @Test("metadata set on the server's logger is rendered when a line is logged, as the stream handler renders it")
    func deferredMetadata() {
        struct RequestID: CustomStringConvertible { var description: String { "0000000000000001" } }
        let direct = Lines()
        let deferred = Lines()
        var plain = Logger(label: "continuum") { StreamLogHandler(label: $0, stream: direct, metadataProvider: nil) }
        var wrapped = Logger(label: "continuum") { DeferredMetadataLogHandler(StreamLogHandler(label: $0, stream: deferred, metadataProvider: nil)) }
        for index in 0..<2 {
            plain[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            wrapped[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            plain.logLevel = .debug
            wrapped.logLevel = .debug
            plain.debug("refused", metadata: ["continuum.http.status": "\(400 + index)"])
            wrapped.debug("refused", metadata: ["continuum.http.status": "\(400 + index)"])
            plain.trace("not written")
            wrapped.trace("not written")
            plain[metadataKey: "hb.request.id"] = nil
            wrapped[metadataKey: "hb.request.id"] = nil
            plain.info("plain")
            wrapped.info("plain")
        }
        #expect(direct.written.count == 4)
        #expect(deferred.written == direct.written)
        #expect(wrapped.logLevel == .debug && wrapped[metadataKey: "hb.request.id"] == nil)
    }
}
