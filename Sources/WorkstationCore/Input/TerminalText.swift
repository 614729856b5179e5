import Foundation

/// Text on its way to root's terminal. Link targets, file names, process names, IdP names and server messages are
/// chosen by others; written raw, their control characters would move the cursor, retitle the window, rewrite
/// earlier lines or answer back (ECMA-48 C0/C1 controls, `ESC [`, `ESC ]`), and bidirectional overrides would show
/// a line in an order other than its bytes (Unicode TR9; CVE-2021-42574). Every human output of the executable is
/// written through this type or `terminalSafe(_:keepingNewlines:)`, so each renderer is covered at one place.

/// Whether a scalar must be escaped before it reaches a terminal: C0 and C1 controls and DEL (general category
/// Cc), format characters (Cf: bidi embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069, marks
/// U+200E/U+200F, zero-width characters, U+FEFF), line and paragraph separators (Zl, Zp), and unassigned code
/// points (Cn, which a later terminal may give any meaning).
@inline(__always) func needsEscape(_ s: Unicode.Scalar) -> Bool {
    if s.value >= 0x20 && s.value < 0x7F { return false }
    switch s.properties.generalCategory {
    case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .surrogate: return true
    default: return false
    }
}

/// `s` with every character `needsEscape` names written as `\u{hex}` (Swift's escape, lower-case hex), so it shows
/// as text and acts as nothing. Newlines (U+000A) are kept when `keepingNewlines` (a whole rendered text);
/// otherwise they are escaped too (a single value that must stay on its line).
public func terminalSafe(_ s: String, keepingNewlines: Bool = true) -> String {
    // The common case: printable ASCII (and newlines) only, returned as is.
    if s.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || ($0 == 0x0A && keepingNewlines) }) { return s }
    var out = ""
    out.reserveCapacity(s.utf8.count + 8)
    for scalar in s.unicodeScalars {
        if needsEscape(scalar) && !(keepingNewlines && scalar == "\n") {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// Rendered text that is safe to write to a terminal: every piece appended is escaped (`terminalSafe`), and the
/// only escape sequences it holds are the colours added with `append(_:sgr:)`.
public struct TerminalText: Sendable, Hashable, CustomStringConvertible {
    /// The bytes to write, as text.
    public private(set) var rendered: String = ""

    public init() {}
    /// `text` escaped, newlines kept.
    public init(_ text: String) { rendered = terminalSafe(text) }

    /// Appends `text` escaped (newlines kept).
    public mutating func append(_ text: String) { rendered += terminalSafe(text) }

    /// Appends `text` escaped and, when `sgr` is non-nil, coloured with the ECMA-48 Select Graphic Rendition
    /// parameters `sgr` (digits and `;` only, e.g. `32` for green), then reset (`ESC [ 0 m`).
    public mutating func append(_ text: String, sgr: String?) {
        guard let sgr, !sgr.isEmpty, sgr.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ";") }) else {
            append(text)
            return
        }
        rendered += "\u{1B}[\(sgr)m" + terminalSafe(text) + "\u{1B}[0m"
    }

    public static func += (a: inout TerminalText, b: String) { a.append(b) }
    public static func += (a: inout TerminalText, b: TerminalText) { a.rendered += b.rendered }

    public var description: String { rendered }
}

/// JSON text with the characters `needsEscape` names, which JSON allows raw inside strings (RFC 8259 section 7
/// requires escaping only U+0000-U+001F), written as `\uXXXX` escapes: the same JSON value, safe on a terminal.
/// Only string contents can hold such characters (the rest of JSON's syntax is ASCII).
func escapingInvisibles(json: String) -> String {
    guard json.unicodeScalars.contains(where: { $0.value >= 0x7F && needsEscape($0) }) else { return json }
    var out = ""
    out.reserveCapacity(json.utf8.count + 16)
    for scalar in json.unicodeScalars {
        if scalar.value >= 0x7F && needsEscape(scalar) {
            // Beyond the BMP: a UTF-16 surrogate pair, as JSON spells such characters.
            for unit in String(scalar).utf16 { out += String(format: "\\u%04x", unit) }
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}
