import Foundation

/// A Kubernetes object as a tree, written as block YAML by `text`: the renderers build values, never YAML text, so
/// indentation and quoting cannot go wrong. Strings are always double-quoted (JSON string syntax, which YAML 1.1
/// and 1.2 read alike), so no value is ever re-typed (`"true"`, `"0440"`, `"1.0"` stay strings). Keys are written
/// plain when they are letters, digits and `./-_`, quoted otherwise. Mappings keep the order they were built in.
public indirect enum ManifestValue: Sendable, Hashable {
    case map([(String, ManifestValue)])
    case list([ManifestValue])
    case string(String)
    case int(Int)
    case bool(Bool)

    public static func == (a: ManifestValue, b: ManifestValue) -> Bool { a.text() == b.text() }
    public func hash(into hasher: inout Hasher) { hasher.combine(text()) }

    /// The value of `key` in a mapping, nil for anything else or a missing key.
    public subscript(key: String) -> ManifestValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    /// The block YAML of this value as a document body (ends with a newline).
    public func text() -> String {
        var out = ""
        write(into: &out, indent: 0, inline: false)
        return out
    }

    private static func key(_ k: String) -> String {
        let plain =
            !k.isEmpty && k.first.map { $0.isASCII && $0.isLetter } == true
            && k.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "./-_".contains($0)) }
        return plain ? k : KubernetesManifests.quote(k)
    }

    private var isEmptyCollection: Bool {
        switch self {
        case .map(let p): p.isEmpty
        case .list(let l): l.isEmpty
        default: false
        }
    }

    private var scalar: String? {
        switch self {
        case .string(let s): KubernetesManifests.quote(s)
        case .int(let n): String(n)
        case .bool(let b): b ? "true" : "false"
        case .map(let p) where p.isEmpty: "{}"
        case .list(let l) where l.isEmpty: "[]"
        default: nil
        }
    }

    /// Writes the value; `inline` means the cursor is after `- ` of a list item (the first key goes there).
    private func write(into out: inout String, indent: Int, inline: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let pairs) where !pairs.isEmpty:
            for (i, (k, v)) in pairs.enumerated() {
                if !(inline && i == 0) { out += pad }
                out += Self.key(k) + ":"
                if let s = v.scalar {
                    out += " " + s + "\n"
                } else if case .list = v {
                    out += "\n"
                    v.write(into: &out, indent: indent, inline: false)
                } else {
                    out += "\n"
                    v.write(into: &out, indent: indent + 2, inline: false)
                }
            }
        case .list(let items) where !items.isEmpty:
            for item in items {
                out += pad + "- "
                if let s = item.scalar {
                    out += s + "\n"
                } else if case .list = item {
                    out += "\n"
                    item.write(into: &out, indent: indent + 2, inline: false)
                } else {
                    item.write(into: &out, indent: indent + 2, inline: true)
                }
            }
        default:
            out += (inline ? "" : pad) + (scalar ?? "") + "\n"
        }
    }
}

extension ManifestValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral s: String) { self = .string(s) }
    public init(integerLiteral n: Int) { self = .int(n) }
    public init(booleanLiteral b: Bool) { self = .bool(b) }
}

/// Parses a Kubernetes quantity (`20Gi`, `500M`, `250m`, `1.5`) into its value in base units (bytes, cores);
/// nil for anything else. Suffixes per the API's `resource.Quantity`: binary `Ki`..`Ei`, decimal `k`..`E`, `m`.
public func quantityValue(_ s: String) -> Double? {
    let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
        ("Pi", 1_125_899_906_842_624), ("Ei", 1_152_921_504_606_846_976), ("k", 1e3), ("M", 1e6), ("G", 1e9),
        ("T", 1e12), ("P", 1e15), ("E", 1e18), ("m", 1e-3),
    ]
    for (suffix, factor) in suffixes where s.hasSuffix(suffix) {
        return Double(s.dropLast(suffix.count)).map { $0 * factor }
    }
    return Double(s)
}
