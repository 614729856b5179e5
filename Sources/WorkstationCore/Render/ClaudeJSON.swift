import Foundation

/// Adding one MCP server to Claude Code's `~/.claude.json` without changing anything else in the file: the entry
/// is inserted as text at the start of the top-level `mcpServers` object (or a new `mcpServers` at the start of
/// the top-level object), so every other byte, key order and formatting stay as they were. Pure.
public enum ClaudeJSON {
    /// The outcome of `addMCPServer`.
    public enum Edit: Sendable, Equatable {
        /// `mcpServers.<name>` is already there (the person's own, or added earlier): nothing to do.
        case present
        /// The whole new file content.
        case write(Data)
        /// The file is left alone, with the reason (not JSON, not an object, `mcpServers` not an object).
        case refused(String)
    }

    /// The file with `mcpServers.<name> = entry` added where absent.
    /// - Parameters:
    ///   - original: the file's bytes; nil when there is no file (a new file is made).
    ///   - name: the `mcpServers` key, e.g. `playwright`.
    ///   - entry: the entry as JSON text (an object).
    /// - Returns: `.present`, `.write(bytes)` or `.refused(why)`; never a file that fails to parse (RFC 8259).
    public static func addMCPServer(_ original: Data?, name: String, entry: String) -> Edit {
        let key = KubernetesManifests.quote(name)
        guard let original else { return .write(Data("{\n  \"mcpServers\": {\n    \(key): \(entry)\n  }\n}\n".utf8)) }
        guard let any = try? JSONSerialization.jsonObject(with: original), let top = any as? [String: Any] else {
            return .refused("it is not a JSON object")
        }
        if let servers = top["mcpServers"] {
            guard let s = servers as? [String: Any] else { return .refused("its mcpServers is not an object") }
            if s[name] != nil { return .present }
        }
        var scan = Scanner(bytes: [UInt8](original))
        guard let found = scan.topLevel() else { return .refused("it could not be read as one JSON object") }
        let bytes = [UInt8](original)
        var out: [UInt8]
        switch found {
        case .duplicate: return .refused("it names mcpServers twice")
        case .servers(let open, let empty):
            out =
                Array(bytes[...open]) + Array("\n    \(key): \(entry)\(empty ? "\n  " : ",")".utf8)
                + Array(bytes[(open + 1)...])
        case .noServers(let open, let empty):
            let insert = "\n  \"mcpServers\": {\n    \(key): \(entry)\n  }\(empty ? "\n" : ",")"
            out = Array(bytes[...open]) + Array(insert.utf8) + Array(bytes[(open + 1)...])
        }
        // The edit must parse and hold the entry; anything else is a bug: leave the file alone.
        guard let check = try? JSONSerialization.jsonObject(with: Data(out)) as? [String: Any],
            (check["mcpServers"] as? [String: Any])?[name] != nil,
            check.count == top.count + (top["mcpServers"] == nil ? 1 : 0)
        else { return .refused("the entry could not be added without changing the rest") }
        return .write(Data(out))
    }

    /// Finds the byte offsets the edit needs in a document already known to be a JSON object.
    struct Scanner {
        enum Found {
            case servers(open: Int, empty: Bool)
            case noServers(open: Int, empty: Bool)
            case duplicate
        }
        let bytes: [UInt8]
        var i = 0
        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func ws() { while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 } }

        /// Skips a string literal starting at `i` (a quote); returns its raw bytes, quotes included.
        mutating func string() -> [UInt8]? {
            let start = i
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "\\") {
                    i += 2
                    continue
                }
                if bytes[i] == UInt8(ascii: "\"") {
                    i += 1
                    return Array(bytes[start..<i])
                }
                i += 1
            }
            return nil
        }

        /// Skips one value of any kind.
        mutating func value() -> Bool {
            ws()
            guard i < bytes.count else { return false }
            switch bytes[i] {
            case UInt8(ascii: "\""): return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < bytes.count {
                    switch bytes[i] {
                    case UInt8(ascii: "\""):
                        guard string() != nil else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            i += 1
                            return true
                        }
                    default: break
                    }
                    i += 1
                }
                return false
            default:
                while i < bytes.count,
                    ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(
                        bytes[i]
                    )
                { i += 1 }
                return true
            }
        }

        /// Walks the members of the top-level object.
        mutating func topLevel() -> Found? {
            ws()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
            let open = i
            i += 1
            ws()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return .noServers(open: open, empty: true) }
            var servers: Int?
            var serversEmpty = false
            while i < bytes.count {
                ws()
                guard let raw = string() else { return nil }
                let key = (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String
                ws()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
                i += 1
                ws()
                if key == "mcpServers" {
                    if servers != nil { return .duplicate }
                    servers = i
                    var probe = i + 1
                    while probe < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[probe]) { probe += 1 }
                    serversEmpty = probe < bytes.count && bytes[probe] == UInt8(ascii: "}")
                }
                guard value() else { return nil }
                ws()
                guard i < bytes.count else { return nil }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "}") { break }
                return nil
            }
            if let s = servers { return .servers(open: s, empty: serversEmpty) }
            return .noServers(open: open, empty: false)
        }
    }
}
