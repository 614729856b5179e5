import Foundation

/// Renders a plan for people (grouped per user, one line per change) or as JSON.
public enum PlanRenderer {
    /// Human text: a block per user (host-wide changes under "host"), each change as
    /// `SYMBOL summary [class]`, its fields as `field: before -> after`, then a summary line. Refusals are not part
    /// of it: commands print them on standard error (one stream for every refusal).
    /// - Parameter commandOptions: appended to every suggested `workstation ...` command (e.g. ` --root DIR`), so a
    ///   command copied from a sandbox plan acts on that sandbox, not on the machine.
    /// - Parameter verdict: the closing "No changes" line, which speaks of apply; lifecycle commands leave it out.
    public static func human(
        _ plan: Plan,
        color: Bool = false,
        commandOptions: String = "",
        verdict: Bool = true
    ) -> String {
        humanText(plan, color: color, commandOptions: commandOptions, verdict: verdict).rendered
    }

    /// `human(_:color:commandOptions:verdict:)` as terminal text: every value from the plan (names, link targets,
    /// file names, messages from services) is escaped and kept on its line (`printable`), and the only escape
    /// sequences are the symbols' colours.
    public static func humanText(
        _ plan: Plan,
        color: Bool = false,
        commandOptions: String = "",
        verdict: Bool = true
    ) -> TerminalText {
        var out = TerminalText()
        var order: [String] = []
        var byUser: [String: [Change]] = [:]
        for c in plan.changes {
            let key = c.user ?? ""
            if byUser[key] == nil { order.append(key) }
            byUser[key, default: []].append(c)
        }
        func sgr(_ kind: ChangeKind) -> String? {
            guard color else { return nil }
            return switch kind {
            case .create: "32"
            case .update: "33"
            case .pending: "31"
            case .conflict: "35"
            }
        }
        let p = printable
        for key in order {
            out += key.isEmpty ? "host\n" : "\(p(key))\n"
            for c in byUser[key]! {
                out += "  "
                out.append(c.kind.symbol, sgr: sgr(c.kind))
                out += " \(p(c.summary)) [\(c.safety.rawValue)]\n"
                for f in c.fields {
                    if f.field == "line" {
                        if let b = f.before { out += "      - \(p(b))\n" }
                        if let a = f.after { out += "      + \(p(a))\n" }
                    } else {
                        out += "      \(p(f.field)): \(f.before.map(p) ?? "(none)") -> \(f.after.map(p) ?? "(none)")\n"
                    }
                }
                if let r = c.reason { out += "      \(p(SuggestedCommand.carrying(commandOptions, in: r)))\n" }
                if let cmd = c.command {
                    out += "      run: \(p(cmd))\(cmd.hasPrefix("workstation ") ? p(commandOptions) : "")\n"
                }
            }
        }
        for n in plan.notes { out += "note: \(p(SuggestedCommand.carrying(commandOptions, in: n)))\n" }
        for e in plan.errors { out += "error: \(p(SuggestedCommand.carrying(commandOptions, in: e)))\n" }
        let s = plan.summary
        out +=
            "Plan: \(s.create) to create, \(s.update) to update, \(s.pending) pending revoke/destroy, \(s.conflict) conflicts.\n"
        if verdict && plan.isEmpty && plan.refusals.isEmpty {
            out +=
                s.pending + s.conflict == 0
                ? "No changes: the host matches the roster.\n"
                : "Nothing for apply to do; the pending and conflicting items above need an operator.\n"
        }
        return out
    }

    /// JSON for machines: `{"changes": [...], "summary": {...}, "notes": [...], "errors": [...], "refusals": [...],
    /// ...extra}` (`jsonObject` serialized with sorted keys).
    public static func json(_ plan: Plan, extra: [String: any Sendable] = [:]) -> String {
        var obj = jsonObject(plan)
        for (k, v) in extra { obj[k] = v }
        return jsonText(obj)
    }

    /// The plan's JSON fields (docs/json.md): `changes` (each with `id`, `kind`, `symbol`, `safety`, `summary`,
    /// `actionable`, `user` or null, `fields` [{`field`, `before`, `after`}], and `reason`, `command` when set; the
    /// change's action is left out, it may carry file bytes), `summary` {`create`, `update`, `pending`, `conflict`,
    /// `actionable`}, `notes`, `errors`, `refusals` [{`gate`, `message`}].
    public static func jsonObject(_ plan: Plan) -> [String: Any] {
        var obj: [String: Any] = [:]
        obj["changes"] = plan.changes.map { c -> [String: Any] in
            var d: [String: Any] = [
                "id": c.id.description, "kind": c.kind.rawValue, "symbol": c.kind.symbol, "safety": c.safety.rawValue,
                "summary": c.summary, "actionable": c.kind.isActionable && c.safety.runsInApply,
            ]
            d["user"] = c.user ?? NSNull()
            d["fields"] = c.fields.map {
                ["field": $0.field, "before": $0.before ?? NSNull(), "after": $0.after ?? NSNull()] as [String: Any]
            }
            if let r = c.reason { d["reason"] = r }
            if let cmd = c.command { d["command"] = cmd }
            return d
        }
        let s = plan.summary
        obj["summary"] = [
            "create": s.create, "update": s.update, "pending": s.pending, "conflict": s.conflict,
            "actionable": plan.actionable.count,
        ]
        obj["notes"] = plan.notes
        obj["errors"] = plan.errors
        obj["refusals"] = plan.refusals.map { ["gate": $0.gate.rawValue, "message": $0.message] }
        return obj
    }
}

/// Serializes a JSON object with sorted keys; besides the escapes JSON requires, every character a terminal
/// would act on is written as a `\uXXXX` escape (`escapingInvisibles`), so the text is safe to print.
public func jsonText(_ obj: Any) -> String {
    guard
        let data = try? JSONSerialization.data(
            withJSONObject: obj,
            options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        )
    else {
        return "{}"
    }
    // The characters a terminal acts on that JSON may carry raw (DEL, C1, bidi overrides...) as \u escapes.
    return escapingInvisibles(json: String(decoding: data, as: UTF8.self))
}

/// Suggested `workstation ...` commands in messages, made to act on the same inputs and root as the run that prints
/// them.
public enum SuggestedCommand {
    /// The subcommands a message may suggest.
    static let subcommands: Set<Substring> = [
        "validate", "plan", "apply", "setup-host", "offboard", "cutover", "rollback", "doctor", "status", "metrics",
        "clone-status", "render",
    ]

    /// `text` with `options` (e.g. ` --roster R --root DIR`, leading space) inserted right after the subcommand of
    /// every `workstation SUBCOMMAND` it contains (options may precede the arguments: `workstation offboard --root
    /// DIR bob --stage cut`). A word that is part of a path or name (`/etc/workstation apply`, `workstation-dispatch`)
    /// is left alone, and so is a command that already carries `options`. Returns `text` when `options` is empty.
    public static func carrying(_ options: String, in text: String) -> String {
        guard !options.isEmpty, text.contains("workstation ") else { return text }
        var out = ""
        var rest = Substring(text)
        while let hit = rest.range(of: "workstation ") {
            let before = rest[..<hit.lowerBound]
            out += before
            out += rest[hit]
            rest = rest[hit.upperBound...]
            let previous = out.dropLast("workstation ".count).last
            let startsWord =
                previous.map { $0 == " " || $0 == "`" || $0 == "'" || $0 == "\"" || $0 == "(" || $0 == "\n" } ?? true
            let word = rest.prefix { $0.isLetter || $0 == "-" }
            let after = rest.dropFirst(word.count).first
            let endsWord =
                after.map {
                    $0 == " " || $0 == "`" || $0 == "'" || $0 == "\"" || $0 == ")" || $0 == "," || $0 == ";"
                        || $0 == "." || $0 == ":" || $0 == "\n"
                } ?? true
            guard startsWord, endsWord, subcommands.contains(word), !rest.dropFirst(word.count).hasPrefix(options)
            else { continue }
            out += word + options
            rest = rest.dropFirst(word.count)
        }
        return out + rest
    }
}
