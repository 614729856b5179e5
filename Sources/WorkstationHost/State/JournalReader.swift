import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reading `journal.jsonl` back.
///
/// Torn lines: each entry is appended with one `write(2)` on an `O_APPEND` descriptor and fsynced, so killing the
/// process (`kill -9`, the OOM killer) never leaves part of a line. A power loss or a full disk can: the file may then
/// end in a fragment without its newline. The reader reports such a fragment as `tornTail` and skips it, and
/// `Journal.init` terminates it with a newline before appending, so a later entry is never glued onto it (the
/// fragment then reads back as one `malformed` line).
extension Journal {
    /// What a journal file holds.
    public struct Contents: Sendable {
        /// Whole entries, in file order.
        public var entries: [Entry] = []
        /// Newline-terminated lines that are not entries (1-based line number, text).
        public var malformed: [(line: Int, text: String)] = []
        /// A final fragment without a newline (a write cut short by a power loss), if any.
        public var tornTail: String?
    }

    /// Parses journal bytes: one JSON `Entry` per line.
    public static func read(_ data: Data) -> Contents {
        var out = Contents()
        let dec = JSONDecoder()
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex {
            lineNumber += 1
            guard let nl = data[start...].firstIndex(of: 0x0A) else {
                out.tornTail = String(decoding: data[start...], as: UTF8.self)
                break
            }
            let line = data[start..<nl]
            start = data.index(after: nl)
            if line.isEmpty { continue }
            if let e = try? dec.decode(Entry.self, from: line) {
                out.entries.append(e)
            } else {
                out.malformed.append((lineNumber, String(decoding: line, as: UTF8.self)))
            }
        }
        return out
    }

    /// Ends a torn last line (no trailing newline) with one, so the next entry starts on its own line.
    static func terminateTornTail(_ fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return }
        var last: UInt8 = 0
        guard pread(fd, &last, 1, st.st_size - 1) == 1, last != 0x0A else { return }
        var nl: UInt8 = 0x0A
        _ = write(fd, &nl, 1)
    }
}
