import Foundation

/// The story's narration, written straight to the file descriptor.
///
/// `print` buffers when stdout is a pipe, and the version 1 process is killed with `SIGKILL`,
/// which would take its buffered lines with it; `FileHandle.write` is a plain `write(2)`.
enum Console {
    /// Writes one line to standard output.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Writes a stage's heading.
    static func heading(_ title: String) {
        say("\n== \(title) ==")
    }

    /// Writes one line to standard error.
    static func complain(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
