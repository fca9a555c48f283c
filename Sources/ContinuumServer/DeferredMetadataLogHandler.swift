import Logging

/// A log handler that keeps the metadata set on it and hands it to the handler it wraps only
/// when a message is logged: the lines are the wrapped handler's own.
///
/// Hummingbird gives every request a logger carrying the request's id as metadata, and
/// `StreamLogHandler` renders its metadata as text each time metadata is set: the id was turned
/// into a string and the text built for every request (about 1.5 % of an event delivery's CPU),
/// though at the server's level almost no request logs a line.
struct DeferredMetadataLogHandler: LogHandler {
    private var wrapped: any LogHandler
    var metadata: Logger.Metadata

    init(_ wrapped: any LogHandler) {
        self.wrapped = wrapped
        self.metadata = wrapped.metadata
    }

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var handler = wrapped
        handler.metadata = metadata
        handler.log(event: event)
    }
}
