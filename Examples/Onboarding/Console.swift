import Foundation

/// The demo's narration, written straight to the file descriptor.
///
/// `print` buffers when stdout is a pipe, and a worker killed with `SIGKILL` would take its
/// buffered lines with it; `FileHandle.write` is a plain `write(2)`, so every line is out
/// before the next statement runs.
enum Console {
    /// Writes one line to standard output.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Writes one line to standard error.
    static func complain(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
