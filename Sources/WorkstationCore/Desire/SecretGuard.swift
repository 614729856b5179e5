import Foundation

/// Decides whether a key or a value looks like a secret, for everything workstation writes machine-wide
/// (managed settings, `/etc/profile.d`, `/etc/skel`): those files are readable by every user, so a secret in
/// them leaks to all of them (spec section 7: "the machine-wide managed layer is secret-free").
///
/// Key names: `*_KEY`, `*_TOKEN`, `*SECRET*`, `*PASSWORD*`, compared case-insensitively after turning camelCase
/// into snake case (`apiKey` -> `API_KEY`). Values: the well-known token prefixes (Anthropic/OpenAI `sk-`, GitHub
/// `ghp_`/`github_pat_`, GitLab `glpat-`, Slack `xox?-`, AWS `AKIA`, Vault `hvs.`/`hvb.`), JSON web tokens,
/// PEM private keys, URLs carrying a password or a token parameter, and long high-entropy words.
public enum SecretGuard {
    /// The pattern a key name matches (e.g. `*_KEY`), or nil when the name is not secret-like.
    public static func secretName(_ name: String) -> String? {
        let n = snakeUpper(name)
        if n.hasSuffix("_KEY") || n == "KEY" { return "*_KEY" }
        if n.hasSuffix("_TOKEN") || n == "TOKEN" { return "*_TOKEN" }
        if n.contains("SECRET") { return "*SECRET*" }
        if n.contains("PASSWORD") { return "*PASSWORD*" }
        return nil
    }

    /// Why a value looks like a credential (e.g. `an Anthropic/OpenAI API key (sk-...)`), or nil.
    public static func tokenShaped(_ value: String) -> String? {
        if value.contains("-----BEGIN") && value.contains("PRIVATE KEY") { return "a PEM private key" }
        if let why = credentialURL(value) { return why }
        for word in words(value) {
            if let why = knownToken(word) { return why }
        }
        // Paths and URLs are long and mixed-case but not secrets: judge their pieces.
        for word in words(value) {
            for piece in word.split(whereSeparator: { "/.:".contains($0) }) where isHighEntropy(String(piece)) {
                return "a long random string (\(piece.count) characters)"
            }
        }
        return nil
    }

    static let prefixes: [(String, Int, String)] = [
        ("sk-ant-", 20, "an Anthropic API key (sk-ant-...)"), ("sk-", 20, "an API key (sk-...)"),
        ("ghp_", 20, "a GitHub token (ghp_...)"), ("gho_", 20, "a GitHub token (gho_...)"),
        ("ghs_", 20, "a GitHub token (ghs_...)"),
        ("ghu_", 20, "a GitHub token (ghu_...)"), ("github_pat_", 20, "a GitHub token (github_pat_...)"),
        ("glpat-", 20, "a GitLab token (glpat-...)"), ("xoxb-", 20, "a Slack token (xoxb-...)"),
        ("xoxp-", 20, "a Slack token (xoxp-...)"),
        ("xoxa-", 20, "a Slack token (xoxa-...)"), ("hvs.", 20, "a Vault token (hvs....)"),
        ("hvb.", 20, "a Vault token (hvb....)"),
    ]

    static func knownToken(_ w: String) -> String? {
        for (p, minLength, why) in prefixes where w.hasPrefix(p) && w.count >= minLength { return why }
        if w.count == 20, w.hasPrefix("AKIA") || w.hasPrefix("ASIA"),
            w.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) })
        {
            return "an AWS access key id (AKIA...)"
        }
        let parts = w.split(separator: ".", omittingEmptySubsequences: false)
        if w.hasPrefix("eyJ"), parts.count == 3, parts.allSatisfy({ $0.count >= 8 }) {
            return "a JSON web token (eyJ...)"
        }
        return nil
    }

    /// `scheme://user:password@host` or a `token=`/`key=`/`secret=`/`password=` query parameter with a value.
    static func credentialURL(_ value: String) -> String? {
        for word in value.split(whereSeparator: { $0.isWhitespace || $0 == "\"" || $0 == "'" }) {
            let w = String(word)
            guard let schemeEnd = w.range(of: "://") else { continue }
            let rest = w[schemeEnd.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
                return "a URL with a password in it"
            }
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2, !kv[1].isEmpty,
                        secretName(String(kv[0])) != nil
                            || ["key", "token", "apikey", "api_key", "access_token", "secret"].contains(
                                kv[0].lowercased()
                            )
                    {
                        return "a URL with a credential parameter (\(kv[0])=...)"
                    }
                }
            }
        }
        return nil
    }

    /// Words of a value: runs of characters that occur in tokens.
    static func words(_ s: String) -> [String] {
        s.split(whereSeparator: { !($0.isASCII && ($0.isLetter || $0.isNumber || "-_.+/=~".contains($0))) }).map(
            String.init
        )
    }

    /// At least 32 characters, upper and lower case letters and digits, and more than 4 bits of entropy per character.
    static func isHighEntropy(_ w: String) -> Bool {
        guard w.count >= 32 else { return false }
        guard w.contains(where: \.isUppercase), w.contains(where: \.isLowercase), w.contains(where: \.isNumber) else {
            return false
        }
        var counts: [Character: Int] = [:]
        for c in w { counts[c, default: 0] += 1 }
        let n = Double(w.count)
        let entropy = counts.values.reduce(0.0) { acc, k in
            let p = Double(k) / n
            return acc - p * log2(p)
        }
        return entropy > 4.0
    }

    /// `apiKey` -> `API_KEY`, `memory-api-key` -> `MEMORY_API_KEY`.
    static func snakeUpper(_ s: String) -> String {
        var out = ""
        var prevLower = false
        for c in s {
            if c.isUppercase && prevLower { out.append("_") }
            out.append(c == "-" || c == "." ? "_" : Character(c.uppercased()))
            prevLower = c.isLowercase || c.isNumber
        }
        return out
    }

    /// One secret found in a machine-wide file or setting.
    public struct Finding: Sendable, Hashable {
        /// Dotted key path (`env.MEMORY_API_KEY`) or the shell variable name; empty for a token in free text.
        public var key: String
        public var why: String
        /// 1-based line in the file, 0 when unknown.
        public var line: Int
        public init(key: String, why: String, line: Int = 0) {
            self.key = key
            self.why = why
            self.line = line
        }

        /// `key env.MEMORY_API_KEY looks like a secret (name matches *_KEY)`.
        public var message: String { key.isEmpty ? why : "key \(key) \(why)" }
    }

    /// Scans a JSON-like value: secret-like key names anywhere (when the key has a non-empty value), every entry of
    /// an `env` object, and token-shaped string values.
    public static func scan(_ v: ManagedValue, path: String = "") -> [Finding] {
        var out: [Finding] = []
        switch v {
        case .object(let m):
            for (k, child) in m.sorted(by: { $0.key < $1.key }) {
                let p = path.isEmpty ? k : "\(path).\(k)"
                if let pattern = secretName(k), !child.isEmptyValue {
                    out.append(Finding(key: p, why: "looks like a secret (name matches \(pattern))"))
                    continue
                }
                out += scan(child, path: p)
            }
        case .array(let items):
            for (i, item) in items.enumerated() { out += scan(item, path: "\(path)[\(i)]") }
        case .string(let s):
            if let why = tokenShaped(s) {
                out.append(Finding(key: path.isEmpty ? "value" : path, why: "has a value that looks like \(why)"))
            }
        case .bool, .integer, .number, .null:
            break
        }
        return out
    }

    /// Scans shell text (profile.d, skel dotfiles): `[export ]NAME=value` with a secret-like name and a literal
    /// value, and token-shaped words on any line. Comments are scanned too (a pasted token is a leak anywhere).
    public static func scanShell(_ text: String) -> [Finding] {
        var out: [Finding] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.trimmingCharacters(in: .whitespaces)
            for kw in ["export ", "declare -x ", "readonly ", "local "] where line.hasPrefix(kw) {
                line = String(line.dropFirst(kw.count)).trimmingCharacters(in: .whitespaces)
            }
            if !line.hasPrefix("#"), let eq = line.firstIndex(of: "="),
                line[..<eq].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
                !line[..<eq].isEmpty
            {
                let name = String(line[..<eq])
                let value = line[line.index(after: eq)...].trimmingCharacters(in: CharacterSet(charactersIn: "\"' ;"))
                if let pattern = secretName(name), !value.isEmpty, !value.hasPrefix("$") {
                    out.append(Finding(key: name, why: "looks like a secret (name matches \(pattern))", line: i + 1))
                    continue
                }
            }
            if let why = tokenShaped(String(raw)) {
                out.append(Finding(key: "", why: "holds what looks like \(why)", line: i + 1))
            }
        }
        return out
    }

    /// Scans free text (the org guidance) for token-shaped words only; prose may name keys freely.
    public static func scanText(_ text: String) -> [Finding] {
        var out: [Finding] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let why = tokenShaped(String(line)) {
                out.append(Finding(key: "", why: "holds what looks like \(why)", line: i + 1))
            }
        }
        return out
    }

    /// The advice every refusal ends with.
    public static let advice =
        "machine-wide files are readable by every user; keep secrets in each user's own 0600 files (~/.claude/settings.json, ~/.claude.json) and remove it here"
}
