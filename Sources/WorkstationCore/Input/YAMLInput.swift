import Foundation
import Yams

/// A YAML value with the place it came from. Scalars are read as the text that was written, so YAML 1.1
/// implicit typing never changes meaning: `no`, `off`, `0700` stay the strings they look like wherever a string
/// is expected.
public struct YAMLValue {
    public let node: Node
    public let file: String

    public var location: SourceLocation {
        SourceLocation(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
    }

    /// True for an unquoted `~`, `null`, `Null`, `NULL` or an empty plain value.
    public var isNull: Bool {
        guard case .scalar(let s) = node else { return false }
        guard s.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }
}

/// Collects diagnostics while reading one input; nothing is thrown until the whole input has been read.
public final class DiagnosticCollector {
    public private(set) var diagnostics: [Diagnostic] = []
    public init() {}
    public func error(_ at: SourceLocation, _ message: String) { diagnostics.append(Diagnostic(at, message)) }
    public var isEmpty: Bool { diagnostics.isEmpty }
}

/// Reads one YAML file into a located tree.
///
/// - Throws: `ValidationFailure` with one located diagnostic for: invalid UTF-8, a byte-order mark, a document over
///   `maxBytes`, nesting deeper than `maxDepth` (flow, compact `- - -` or indented), more than `maxValues` values
///   once aliases are expanded (an alias "bomb"), a YAML syntax error, or a duplicated key at any level
///   (YAML 1.2 section 3.2.1.1: keys are unique).
public func loadYAML(
    _ data: Data,
    file: String,
    maxBytes: Int = 4 << 20,
    maxDepth: Int = 64,
    maxValues: Int = 500_000
) throws -> YAMLValue? {
    func fail(_ line: Int, _ column: Int, _ message: String) -> ValidationFailure {
        ValidationFailure([Diagnostic(SourceLocation(file: file, line: line, column: column), message)])
    }
    if data.count > maxBytes {
        throw fail(0, 0, "file is \(data.count) bytes, over the limit of \(maxBytes); a roster this large is a mistake")
    }
    if data.starts(with: [0xEF, 0xBB, 0xBF]) {
        throw fail(1, 1, "file starts with a byte-order mark; save it as UTF-8 without BOM")
    }
    guard let text = String(validating: data, as: UTF8.self) else {
        // Find the first bad line for the operator.
        var line = 1
        var lineStart = data.startIndex
        for i in data.indices {
            if data[i] == 0x0A {
                if String(validating: data[lineStart..<i], as: UTF8.self) == nil { break }
                line += 1
                lineStart = data.index(after: i)
            }
        }
        throw fail(line, 1, "file is not valid UTF-8; re-save it as UTF-8")
    }
    if let (line, column) = firstControlCharacter(in: text) {
        throw fail(line, column, "control character in file; remove it (tabs are not allowed for indentation either)")
    }
    if let (line, column) = flowNestingBeyond(maxDepth, in: text) {
        throw fail(line, column, "nesting deeper than \(maxDepth) levels; simplify the document")
    }
    if let (line, column) = compactNestingBeyond(maxDepth, in: text) {
        throw fail(line, column, "nesting deeper than \(maxDepth) levels; simplify the document")
    }
    do {
        // Resolver.basic: no implicit typing while composing (keys compare by their text, as they are read; the
        // regex-based YAML 1.1 typing is applied only where a name is checked, see `implicitType`).
        guard let node = try Yams.compose(yaml: text, .basic) else { return nil }
        if let (mark, problem) = sizeProblem(node, maxDepth: maxDepth, maxValues: maxValues) {
            throw fail(mark?.line ?? 0, mark?.column ?? 0, problem)
        }
        return YAMLValue(node: node, file: file)
    } catch let error as YamlError {
        switch error {
        case .duplicatedKeysInMapping(let keys, let context):
            let key = keys.first ?? "?"
            throw fail(
                context.mark.line,
                context.mark.column,
                "duplicate key '\(key)': each key may appear once in a mapping; merge or rename the entries"
            )
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            throw fail(mark.line, mark.column, "invalid YAML: \(problem)")
        default:
            throw fail(0, 0, "invalid YAML: \(error)")
        }
    }
}

/// Finds a C0 control character other than newline, carriage return and tab in indentation-free positions.
/// A tab anywhere is reported too: YAML forbids tabs for indentation, and a tab inside a value would break a derived file.
private func firstControlCharacter(in text: String) -> (Int, Int)? {
    var line = 1
    var column = 1
    for scalar in text.unicodeScalars {
        if scalar == "\n" {
            line += 1
            column = 1
            continue
        }
        if scalar.value < 0x20 && scalar != "\r" || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0xFEFF {
            return (line, column)
        }
        column += 1
    }
    return nil
}

/// Compact block collections (`- - - x`, `? ? x`) nest on one line without indentation; the composer recurses once
/// per level, so bound them before it runs.
private func compactNestingBeyond(_ limit: Int, in text: String) -> (Int, Int)? {
    // Bytes, not characters: every byte this looks at (space, '-', '?', newline) is ASCII, and columns up to the
    // reported one are ASCII too.
    let scan = { (b: UnsafeBufferPointer<UInt8>) -> (Int, Int)? in
        var line = 1
        var i = 0
        let n = b.count
        while i < n {
            var column = 1
            while i < n, b[i] == 0x20 {
                i += 1
                column += 1
            }
            var depth = 0
            while i + 1 < n, b[i] == 0x2D || b[i] == 0x3F, b[i + 1] == 0x20 {
                depth += 1
                if depth > limit { return (line, column) }
                i += 2
                column += 2
                while i < n, b[i] == 0x20 {
                    i += 1
                    column += 1
                }
            }
            while i < n, b[i] != 0x0A { i += 1 }
            i += 1
            line += 1
        }
        return nil
    }
    if let found = text.utf8.withContiguousStorageIfAvailable(scan) { return found }
    return Array(text.utf8).withUnsafeBufferPointer(scan)
}

/// Walks the composed tree without recursion and reports the first place it nests deeper than `maxDepth`, or the
/// value at which it holds more than `maxValues` values. Aliases are already expanded in the tree (each alias is a
/// copy of its anchor), so a few lines of anchors can stand for billions of values; the walk stops at the limit.
private func sizeProblem(_ root: Node, maxDepth: Int, maxValues: Int) -> (Mark?, String)? {
    var stack: [(Node, Int)] = [(root, 1)]
    var count = 0
    while let (node, depth) = stack.popLast() {
        count += 1
        if count > maxValues {
            return (
                node.mark,
                "the document holds more than \(maxValues) values once its aliases are expanded; write the roster out without alias chains"
            )
        }
        if depth > maxDepth { return (node.mark, "nesting deeper than \(maxDepth) levels; simplify the document") }
        switch node {
        case .mapping(let m):
            // By index: iterating a Yams mapping first copies all its pairs into a new array.
            var i = m.endIndex
            while i > m.startIndex {
                i -= 1
                let pair = m[i]
                stack.append((pair.value, depth + 1))
                stack.append((pair.key, depth + 1))
            }
        case .sequence(let seq):
            for item in seq.reversed() { stack.append((item, depth + 1)) }
        default: break
        }
    }
    return nil
}

/// Flow collections (`[`, `{`) nest on one line without indentation; bound them before the recursive composer runs.
private func flowNestingBeyond(_ limit: Int, in text: String) -> (Int, Int)? {
    var depth = 0
    var line = 1
    var column = 1
    var inQuote: Unicode.Scalar? = nil
    var inComment = false
    for scalar in text.unicodeScalars {
        defer { column += 1 }
        if scalar == "\n" {
            line += 1
            column = 0
            inComment = false
            continue
        }
        if inComment { continue }
        if let q = inQuote {
            if scalar == q { inQuote = nil }
            continue
        }
        switch scalar {
        case "#": inComment = true
        case "\"", "'": inQuote = scalar
        case "[", "{":
            depth += 1
            if depth > limit { return (line, column) }
        case "]", "}": depth = max(0, depth - 1)
        default: break
        }
    }
    return nil
}

extension YAMLValue {
    /// The pairs of a mapping, keys as written. Reports and returns nil for anything else.
    public func mapping(
        _ what: String,
        _ diags: DiagnosticCollector
    ) -> [(key: String, keyValue: YAMLValue, value: YAMLValue)]? {
        guard case .mapping(let m) = node else {
            diags.error(location, "\(what) must be a mapping (key: value)")
            return nil
        }
        // Labelled as returned: an unlabelled array would be converted element by element on return.
        var out: [(key: String, keyValue: YAMLValue, value: YAMLValue)] = []
        out.reserveCapacity(m.count)
        // By index: iterating a Yams mapping first copies all its pairs into a new array.
        for i in m.startIndex..<m.endIndex {
            let (k, v) = m[i]
            let kv = YAMLValue(node: k, file: file)
            guard case .scalar(let ks) = k else {
                diags.error(kv.location, "keys in \(what) must be plain names")
                continue
            }
            out.append((ks.string, kv, YAMLValue(node: v, file: file)))
        }
        return out
    }

    /// The text of a scalar exactly as written (never re-typed). Reports null, sequences and mappings.
    public func string(_ what: String, _ diags: DiagnosticCollector) -> String? {
        guard case .scalar(let s) = node else {
            diags.error(location, "\(what) must be a single value, not a list or mapping")
            return nil
        }
        if isNull {
            diags.error(location, "\(what) has no value; write one or remove the key")
            return nil
        }
        if !["", "!", Tag.Name.str.rawValue].contains(s.tag.rawValue) {
            diags.error(
                location,
                "\(what) has an explicit YAML tag (\(s.tag.rawValue)); workstation reads values as written, remove the tag"
            )
            return nil
        }
        return s.string
    }

    /// A name (an identity, a group, a namespace): `string`, refusing a plain scalar that YAML 1.1 readers type as
    /// something else (`no`, `off`, `yes`, `null`, `1001`, `0700`, `2026-01-01`, `.inf`), so every tool that reads
    /// the same roster (Terraform's yamldecode, PyYAML...) sees the same text. Quoting makes it a string everywhere.
    public func name(_ what: String, _ diags: DiagnosticCollector) -> String? {
        guard let text = string(what, diags) else { return nil }
        if let type = implicitType {
            diags.error(
                location,
                "\(what) is written as a bare '\(printable(text))', which YAML 1.1 readers take as \(type); quote it (\"\(printable(text))\") if you mean the text"
            )
            return nil
        }
        return text
    }

    /// The words YAML 1.1 reads as booleans (yaml.org/type/bool.html).
    private static let booleanWords: Set<String> = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF",
    ]

    /// For a plain (unquoted) scalar that YAML 1.1's implicit typing resolves to something other than a string,
    /// what it resolves to ("a boolean", "a number", "null", "a date"); nil for strings and quoted scalars.
    public var implicitType: String? {
        guard case .scalar(let s) = node, s.style == .plain else { return nil }
        // Cheap first: names that start with a letter and are not yes/no/on/off/true/false/null words are strings.
        if Self.booleanWords.contains(s.string) { return "a boolean" }
        if let f = s.string.unicodeScalars.first, f.properties.isAlphabetic,
            !["null", "Null", "NULL"].contains(s.string)
        {
            return nil
        }
        // A fresh node: the composed one's tag may already be resolved (Yams resolves key tags in place when it
        // hashes them for its duplicate check).
        switch Resolver.default.resolveTag(of: Node(s.string)) {
        case .bool: return "a boolean"
        case .int, .float: return "a number"
        case .null: return "null"
        case .timestamp: return "a date"
        case .merge, .value: return "a YAML key word"
        default: return nil
        }
    }

    /// A decimal integer written without sign, leading zeros or underscores (so `0700` and `01001` are refused,
    /// since YAML 1.1 reads them as octal).
    public func integer(_ what: String, _ diags: DiagnosticCollector, range: ClosedRange<Int>) -> Int? {
        guard let text = string(what, diags) else { return nil }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(text) else {
            diags.error(location, "\(what) must be a whole number, got '\(text)'")
            return nil
        }
        if text.count > 1 && text.hasPrefix("0") {
            diags.error(location, "\(what) '\(text)' has a leading zero (YAML may read it as octal); write \(n)")
            return nil
        }
        guard range.contains(n) else {
            diags.error(location, "\(what) must be between \(range.lowerBound) and \(range.upperBound), got \(n)")
            return nil
        }
        return n
    }

    /// `true`/`false` only (not YAML 1.1's yes/no/on/off, which are ambiguous).
    public func bool(_ what: String, _ diags: DiagnosticCollector) -> Bool? {
        guard let text = string(what, diags) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            diags.error(location, "\(what) must be true or false, got '\(text)'")
            return nil
        }
    }

    /// A list of scalars; a single scalar is refused so a forgotten `[ ]` is caught.
    public func stringList(_ what: String, _ diags: DiagnosticCollector) -> [(String, SourceLocation)]? {
        list(what, diags) { $0.string("an item of \(what)", diags) }
    }

    /// A list of names (`name(_:_:)` for each item: bare `no`, `1001` are refused).
    public func nameList(_ what: String, _ diags: DiagnosticCollector) -> [(String, SourceLocation)]? {
        list(what, diags) { $0.name("an item of \(what)", diags) }
    }

    private func list(
        _ what: String,
        _ diags: DiagnosticCollector,
        _ item: (YAMLValue) -> String?
    ) -> [(String, SourceLocation)]? {
        guard case .sequence(let seq) = node else {
            diags.error(location, "\(what) must be a list, e.g. [a, b]")
            return nil
        }
        var out: [(String, SourceLocation)] = []
        for i in seq {
            let v = YAMLValue(node: i, file: file)
            if let s = item(v) { out.append((s, v.location)) }
        }
        return out
    }

    /// A mapping of scalar to scalar, e.g. an environment.
    public func stringMap(
        _ what: String,
        _ diags: DiagnosticCollector
    ) -> [(key: String, value: String, location: SourceLocation)]? {
        guard let pairs = mapping(what, diags) else { return nil }
        var out: [(String, String, SourceLocation)] = []
        for p in pairs {
            if let s = p.value.string("\(what).\(p.key)", diags) { out.append((p.key, s, p.value.location)) }
        }
        return out
    }
}

/// Reads a mapping with a fixed set of known keys; an unknown key (a typo) is reported with the closest known one.
public struct KeyedReader {
    public let what: String
    public let location: SourceLocation
    private var values: [String: YAMLValue] = [:]
    /// Known keys an unknown key was reported as a likely misspelling of: their absence is not reported again.
    private var misspelled: Set<String> = []

    public init?(_ value: YAMLValue, what: String, known: [String], _ diags: DiagnosticCollector) {
        guard let pairs = value.mapping(what, diags) else { return nil }
        self.what = what
        self.location = value.location
        for p in pairs {
            if known.contains(p.key) {
                values[p.key] = p.value
            } else {
                let guess = closest(to: p.key, in: known)
                if let guess { misspelled.insert(guess) }
                let hint =
                    guess.map { "; did you mean '\($0)'?" }
                    ?? "; known keys: \(known.joined(separator: ", "))"
                diags.error(p.keyValue.location, "unknown key '\(p.key)' in \(what)\(hint)")
            }
        }
    }

    /// The value of an optional key; an explicit null (`key: ~`) counts as absent.
    public subscript(_ key: String) -> YAMLValue? {
        guard let v = values[key], !v.isNull else { return nil }
        return v
    }

    /// The value of a key that must be present (a null counts as absent).
    public func required(_ key: String, _ diags: DiagnosticCollector) -> YAMLValue? {
        if let v = values[key], !v.isNull { return v }
        if let v = values[key] {
            diags.error(v.location, "\(key) in \(what) has no value; write one")
        } else if !misspelled.contains(key) {
            diags.error(location, "\(what) is missing required key '\(key)'")
        }
        return nil
    }

    /// True when the key is written, even with a null value.
    public func has(_ key: String) -> Bool { values[key] != nil }

    /// Where the key's value is written (also for a null value); nil when the key is absent.
    public func location(of key: String) -> SourceLocation? { values[key]?.location }
}

/// The known word with the smallest edit distance, if it is close enough to be a typo.
func closest(to word: String, in words: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var prev = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var cur = [i + 1]
            for (j, cb) in b.enumerated() {
                cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (ca == cb ? 0 : 1)))
            }
            prev = cur
        }
        return prev[b.count]
    }
    let w = Array(word.lowercased())
    let best = words.map { ($0, distance(w, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
    guard let (name, d) = best, d <= max(2, word.count / 3) else { return nil }
    return name
}
