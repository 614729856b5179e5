import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

// The checks of `doctor` that compare the host with the plan: derived files and pending changes.
extension Doctor {
    func derivedFileChecks(_ d: DesiredState, _ snap: HostSnapshot) -> [Finding] {
        [(inputs.settings.derived.ttydUserMap, d.ttydUserMap), (inputs.settings.derived.dispatch, d.dispatch)].map {
            path,
            content in
            let st = snap.path(path)
            if st.kind == .file && st.content == content {
                return Finding("derived-file", .ok, "\(path) matches the roster")
            }
            return Finding(
                "derived-file",
                .fail,
                st.kind == .absent ? "\(path) is missing" : "\(path) is out of sync with the roster",
                fix: "workstation apply"
            )
        }
    }

    /// One finding for a plan's actionable changes: `converged` when there are none, else a failure naming the
    /// first five.
    static func pending(_ check: String, _ todo: [Change], what: String, converged: String, fix: String) -> Finding {
        guard !todo.isEmpty else { return Finding(check, .ok, converged) }
        let shown = todo.prefix(5).map(\.summary).joined(separator: "; ")
        return Finding(
            check,
            .fail,
            "\(todo.count) \(what)\(todo.count == 1 ? "" : "s") pending: \(shown)\(todo.count > 5 ? "; ..." : "")",
            fix: fix
        )
    }

    func driftChecks(_ plan: Plan) -> [Finding] {
        var out = [
            Self.pending(
                "drift",
                plan.actionable,
                what: "change",
                converged: "the plan is empty: the host matches the roster",
                fix: "workstation plan, then workstation apply"
            )
        ]
        for r in plan.refusals {
            out.append(
                Finding(
                    "drift",
                    .fail,
                    "apply would be refused by \(r.gate): \(r.message)",
                    fix: "see the refusal; workstation plan shows it"
                )
            )
        }
        for c in plan.changes where c.kind == .conflict {
            out.append(Finding("drift", user: c.user, .warn, "conflict left alone: \(c.summary)", fix: c.reason))
        }
        // Cluster access of people who left the roster: a failure of its own, not drift.
        for c in plan.changes where c.id.kind == .k8sUsersLeft {
            out.append(
                Finding(
                    "k8s-users",
                    user: c.user,
                    .fail,
                    c.summary,
                    fix: [c.reason, c.command].compactMap { $0 }.joined(
                        separator: "; and delete what render rbac made: "
                    )
                )
            )
        }
        for c in plan.changes
        where c.kind == .pending && c.id.kind != .violation && c.id.kind != .k8sUsersLeft {
            out.append(Finding("drift", user: c.user, .warn, c.summary, fix: c.command))
        }
        return out
    }
}
