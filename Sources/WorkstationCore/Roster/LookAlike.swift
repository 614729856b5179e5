import Foundation

/// Names that pass for one another: the comparison form of a name (its "skeleton") and the scripts its letters
/// come from. Follows Unicode Technical Standard #39 (Unicode Security Mechanisms): section 4, "Confusable
/// Detection" (two strings are confusable when their skeletons are equal), and section 5.1, "Mixed-Script
/// Detection", with a table of the letters names are written in rather than the whole `confusables.txt`.

/// The form in which two names are compared to tell whether a reader would take one for the other.
///
/// Steps: NFKC (full-width and compatibility forms: `ａｌｉｃｅ`, `ﬁ`, the KELVIN SIGN), full case folding
/// approximated by upper- then lower-casing (`ß` and `ss`, `Σ`, `σ` and `ς`, `İ` and `i`), NFKC again, then each
/// character that looks like a Latin letter, digit or `-` mapped to it (Cyrillic `а` to `a`, Greek `ο` to `o`,
/// dashes to `-`, `0` to `o`, `1` and `|` to `l`) and `rn` to `m`, as in TR39's confusables table.
///
/// - Parameter name: any text (an os_user, authentik_user, k8s_user or email).
/// - Returns: the skeleton; equal skeletons mean "looks alike". Not a display form.
public func lookAlikeSkeleton(_ name: String) -> String {
    // The common case: lower-case ASCII letters, digits and . _ - @ + need only the ASCII mappings.
    let folded: String
    if name.utf8.allSatisfy({ $0 < 0x80 }) {
        folded = name.lowercased()
    } else {
        folded =
            name.precomposedStringWithCompatibilityMapping.uppercased().lowercased()
            .precomposedStringWithCompatibilityMapping
    }
    var out = String.UnicodeScalarView()
    for scalar in folded.unicodeScalars {
        // Default-ignorable characters (zero-width joiners, variation selectors, soft hyphen) show nothing.
        if scalar.properties.isDefaultIgnorableCodePoint { continue }
        if let mapped = latinLookAlikes[scalar] { out.append(mapped) } else { out.append(scalar) }
    }
    return String(out).replacingOccurrences(of: "rn", with: "m")
}

/// Letters of other scripts (after case folding) that render like a Latin letter, digit or `-` in common fonts
/// (TR39 `confusables.txt`, the entries whose target is one of `a-z`, `0-9` or `-`).
private let latinLookAlikes: [Unicode.Scalar: Unicode.Scalar] = {
    var m: [Unicode.Scalar: Unicode.Scalar] = [:]
    func add(_ target: Unicode.Scalar, _ sources: String) { for s in sources.unicodeScalars { m[s] = target } }
    // ASCII look-alikes within the names' own alphabet.
    add("o", "0")
    add("l", "1|")
    // Cyrillic.
    add("a", "\u{0430}\u{04D1}\u{04D3}")  // а ӑ ӓ
    add("b", "\u{044C}\u{0432}")  // ь в (Ь looks like b; в as small capital)
    add("c", "\u{0441}\u{04AB}")  // с ҫ
    add("d", "\u{0501}")  // ԁ
    add("e", "\u{0435}\u{0450}\u{0451}\u{04BD}")  // е ѐ ё ҽ
    add("g", "\u{0261}\u{0581}")  // ɡ (Latin script g), ց (Armenian)
    add("h", "\u{04BB}\u{0570}")  // һ, հ (Armenian)
    add("i", "\u{0456}\u{0457}\u{0131}\u{03B9}\u{04CF}")  // і ї ı ι ӏ
    add("j", "\u{0458}\u{03F3}")  // ј ϳ
    add("k", "\u{03BA}\u{043A}")  // κ к
    add("m", "\u{043C}")  // м (small capital form)
    add("n", "\u{0578}\u{03B7}\u{043F}")  // ո (Armenian), η, п
    add("o", "\u{043E}\u{03BF}\u{03C3}\u{0585}\u{05E1}")  // о ο σ օ ס
    add("p", "\u{0440}\u{03C1}")  // р ρ
    add("q", "\u{051B}\u{0566}")  // ԛ զ
    add("r", "\u{0433}")  // г
    add("s", "\u{0455}")  // ѕ
    add("t", "\u{03C4}\u{0442}")  // τ т
    add("u", "\u{03C5}\u{057D}\u{0446}")  // υ ս ц
    add("v", "\u{03BD}\u{0475}\u{0474}")  // ν ѵ
    add("w", "\u{0461}\u{051D}\u{03C9}")  // ѡ ԝ ω
    add("x", "\u{0445}\u{03C7}\u{04B3}")  // х χ ҳ
    add("y", "\u{0443}\u{04AF}\u{03B3}")  // у ү γ
    add("z", "\u{1D22}")  // ᴢ
    // Greek letters that fold to a Latin look-alike not listed above.
    add("a", "\u{03B1}")  // α
    add("b", "\u{03B2}")  // β
    add("e", "\u{03B5}")  // ε
    // Dashes and minus signs NFKC keeps apart from '-'.
    add("-", "\u{2010}\u{2011}\u{2012}\u{2013}\u{2014}\u{2015}\u{2212}\u{FE58}\u{FE63}\u{FF0D}\u{02D7}")
    return m
}()

/// The writing system of a letter, as far as look-alike names are concerned (Unicode `Scripts.txt`, by block).
enum LetterScript: String, CaseIterable {
    case latin = "Latin"
    case greek = "Greek"
    case cyrillic = "Cyrillic"
    case armenian = "Armenian"
    case hebrew = "Hebrew"
    case
        arabic = "Arabic"
    case cherokee = "Cherokee"
    case georgian = "Georgian"
    case han = "Han"
    case kana = "Japanese kana"
    case
        hangul = "Hangul"
    case other = "another script"

    /// The script of a letter; nil for everything that is not a letter (digits, punctuation, combining marks
    /// inherit the script of the letter they follow, as TR39 treats Common and Inherited).
    init?(_ s: Unicode.Scalar) {
        guard s.properties.isAlphabetic, !s.properties.generalCategory.isMark else { return nil }
        switch s.value {
        case 0x41...0x5A, 0x61...0x7A, 0xAA, 0xBA, 0xC0...0x24F, 0x250...0x2AF, 0x1D00...0x1D7F, 0x1E00...0x1EFF,
            0x2C60...0x2C7F, 0xA720...0xA7FF, 0xAB30...0xAB6F, 0xFF21...0xFF3A, 0xFF41...0xFF5A:
            self = .latin
        case 0x370...0x3FF, 0x1F00...0x1FFF: self = .greek
        case 0x400...0x52F, 0x1C80...0x1C8F, 0x2DE0...0x2DFF, 0xA640...0xA69F: self = .cyrillic
        case 0x530...0x58F: self = .armenian
        case 0x590...0x5FF: self = .hebrew
        case 0x600...0x6FF, 0x750...0x77F: self = .arabic
        case 0x13A0...0x13FF, 0xAB70...0xABBF: self = .cherokee
        case 0x10A0...0x10FF: self = .georgian
        case 0x3040...0x30FF, 0x31F0...0x31FF, 0xFF66...0xFF9F: self = .kana
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2FA1F: self = .han
        case 0xAC00...0xD7AF, 0x1100...0x11FF, 0x3130...0x318F: self = .hangul
        default: self = .other
        }
    }
}

extension Unicode.GeneralCategory {
    fileprivate var isMark: Bool { self == .nonspacingMark || self == .spacingMark || self == .enclosingMark }
}

/// The first two scripts (Latin first) a name mixes, when its letters come from more than one writing system and the mix is not one
/// a language uses (TR39 section 5.2 "Highly Restrictive": Han with kana, Han with Hangul are allowed).
/// A mixed name is how a look-alike is made (`аlice` with a Cyrillic `а`); nil for a single-script name.
func mixedScripts(_ name: String) -> (LetterScript, LetterScript)? {
    if name.utf8.allSatisfy({ $0 < 0x80 }) { return nil }
    var seen: [LetterScript] = []
    for s in name.unicodeScalars {
        if let script = LetterScript(s), !seen.contains(script) { seen.append(script) }
    }
    let cjk: Set<LetterScript> = [.han, .kana]
    let korean: Set<LetterScript> = [.han, .hangul]
    if seen.count <= 1 || Set(seen).isSubset(of: cjk) || Set(seen).isSubset(of: korean) { return nil }
    let ordered = LetterScript.allCases.filter(seen.contains)
    return (ordered[0], ordered[1])
}
