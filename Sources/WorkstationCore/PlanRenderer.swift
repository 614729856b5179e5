import Foundation

/// Renders a plan for people (grouped per user, one line per change) or as JSON.
public enum PlanRenderer {
    /// Human text: a block per user (host-wide changes under "host"), each change as
    /// `SYMBOL summary [class]`, its fields as `field: before -> after`, then a summary line.
    /// - Parameter commandOptions: appended to every suggested `workstation ...` command (e.g. ` --root DIR`), so a
    ///   command copied from a sandbox plan acts on that sandbox, not on the machine.
    /// - Parameter verdict: the closing "No changes" line, which speaks of apply; lifecycle commands leave it out.
    public static func human(_ plan: Plan, color: Bool = false, commandOptions: String = "", verdict: Bool = true) -> String {
        humanText(plan, color: color, commandOptions: commandOptions, verdict: verdict).rendered
    }

    /// `human(_:color:commandOptions:verdict:)` as terminal text: every value from the plan (names, link targets,
    /// file names, messages from services) is escaped and kept on its line (`printable`), and the only escape
    /// sequences are the symbols' colours.
    public static func humanText(_ plan: Plan, color: Bool = false, commandOptions: String = "", verdict: Bool = true) -> TerminalText {
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
                if let r = c.reason { out += "      \(p(r))\n" }
                if let cmd = c.command { out += "      run: \(p(cmd))\(cmd.hasPrefix("workstation ") ? p(commandOptions) : "")\n" }
            }
        }
        for n in plan.notes { out += "note: \(p(n))\n" }
        for e in plan.errors { out += "error: \(p(e))\n" }
        for r in plan.refusals { out += "refused by \(p(r.gate)): \(p(r.message))\n" }
        let s = plan.summary
        out += "Plan: \(s.create) to create, \(s.update) to update, \(s.pending) pending revoke/destroy, \(s.conflict) conflicts.\n"
        if verdict && plan.isEmpty && plan.refusals.isEmpty {
            out += s.pending + s.conflict == 0 ? "No changes: the host matches the roster.\n"
                : "Nothing for apply to do; the pending and conflicting items above need an operator.\n"
        }
        return out
    }

    /// JSON for machines: `{"changes": [...], "summary": {...}, "notes": [...], "refusals": [...], ...extra}`.
    /// Change fields are as in `Change`; `action` is omitted (it may carry file bytes).
    public static func json(_ plan: Plan, extra: [String: any Sendable] = [:]) -> String {
        var obj: [String: Any] = [:]
        obj["changes"] = plan.changes.map { c -> [String: Any] in
            var d: [String: Any] = ["id": c.id, "kind": c.kind.rawValue, "symbol": c.kind.symbol, "safety": c.safety.rawValue,
                                    "summary": c.summary, "actionable": c.kind.isActionable && c.safety.runsInApply]
            d["user"] = c.user ?? NSNull()
            d["fields"] = c.fields.map { ["field": $0.field, "before": $0.before ?? NSNull(), "after": $0.after ?? NSNull()] as [String: Any] }
            if let r = c.reason { d["reason"] = r }
            if let cmd = c.command { d["command"] = cmd }
            return d
        }
        let s = plan.summary
        obj["summary"] = ["create": s.create, "update": s.update, "pending": s.pending, "conflict": s.conflict,
                          "actionable": plan.actionable.count]
        obj["notes"] = plan.notes
        obj["errors"] = plan.errors
        obj["refusals"] = plan.refusals.map { ["gate": $0.gate, "message": $0.message] }
        for (k, v) in extra { obj[k] = v }
        return jsonText(obj)
    }
}

/// Serializes a JSON object with sorted keys; besides the escapes JSON requires, every character a terminal
/// would act on is written as a `\uXXXX` escape (`escapingInvisibles`), so the text is safe to print.
public func jsonText(_ obj: Any) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
        return "{}"
    }
    // The characters a terminal acts on that JSON may carry raw (DEL, C1, bidi overrides...) as \u escapes.
    return escapingInvisibles(json: String(decoding: data, as: UTF8.self))
}
