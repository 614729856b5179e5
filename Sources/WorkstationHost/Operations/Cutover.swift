import Foundation
import WorkstationCore

/// `workstation cutover USER` and `workstation rollback USER` (spec "Incrementality & migration", step 5): move an
/// existing user off the lead's tree onto the new model, with a recorded rollback. Opt-in: never run by apply.
public enum Cutover {
    /// Records the rollback state, applies the idle gate, then: removes the `~/code` symlink, repoints the launchers
    /// from the lead's tree to `$HOME/code`, drops `~/.claude` links into the lead's home, removes the user from the
    /// shared-code group, and runs the normal apply for that user (which provisions what is now missing, e.g. the clone).
    /// - Throws: `RefusedError` (exit 3: busy user without `force`), `LifecycleError`, `LockError`, `ValidationFailure`.
    public static func cutover(
        user: String,
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        force: Bool = false,
        dryRun: Bool = false,
        progress: (String) -> Void = { _ in }
    ) throws -> LifecycleOutcome {
        let settings = inputs.settings
        let c = settings.cutover
        // Cutover moves an account on this host onto the new model; a workspace on Kubernetes has none.
        guard let entry = inputs.roster[user], !entry.isAdopted, entry.placement(settings) == .host else {
            throw LifecycleError.notInRoster(user)
        }
        let lock = dryRun ? nil : try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let snap = try Observer(root: root, settings: settings).observeBase()
        var state = snap.state
        guard let account = snap.account(user) else { throw LifecycleError.noAccount(user) }
        if let rec = state.cutovers[user], rec.rolledBack == nil {
            return LifecycleOutcome(
                plan: Plan(notes: [
                    "\(user) was cut over already (\(rec.completed ? "complete" : "incomplete")); run workstation rollback \(user) first to redo it"
                ]),
                report: nil,
                dryRun: dryRun
            )
        }
        let homes = HomeWriter(root: root)
        let owner = HomeWriter.Owner(uid: account.uid, gid: account.gid)
        func entryOf(_ rel: String, withContent: Bool) throws -> CutoverRecord.Entry {
            let st = try homes.inspect(home: account.home, relative: rel, owner: owner)
            return CutoverRecord.Entry(
                relative: rel,
                kind: st.kind.rawValue,
                uid: st.uid,
                gid: st.gid,
                mode: st.mode,
                linkTarget: st.linkTarget,
                content: withContent ? st.content : nil
            )
        }
        // (a) What rollback needs, read fd-safely from the home.
        let code = try entryOf("code", withContent: false)
        let launchers = try c.launchers.map { try entryOf($0, withContent: true) }
        var links: [CutoverRecord.Entry] = []
        let leadPrefix = c.leadHome.hasSuffix("/") ? c.leadHome : c.leadHome + "/"
        func intoLead(_ e: CutoverRecord.Entry) -> Bool {
            e.kind == "symlink" && (e.linkTarget == c.leadHome || e.linkTarget?.hasPrefix(leadPrefix) == true)
        }
        if try homes.inspect(home: account.home, relative: ".claude", owner: owner).kind == .directory {
            for name
                in (try? FileManager.default.contentsOfDirectory(atPath: root.path(joinPath(account.home, ".claude"))))
                ?? []
            {
                let e = try entryOf(".claude/\(name)", withContent: false)
                if intoLead(e) { links.append(e) }
                if e.kind == "directory" {
                    for sub
                        in (try? FileManager.default.contentsOfDirectory(
                            atPath: root.path(joinPath(account.home, ".claude", name))
                        )) ?? []
                    {
                        let s = try entryOf(".claude/\(name)/\(sub)", withContent: false)
                        if intoLead(s) { links.append(s) }
                    }
                }
            }
        }
        links.sort { $0.relative < $1.relative }
        let groups = snap.groupsOf(user)

        // (b) The idle gate; a dry run reports it and still prints the steps.
        let idle = IdleGate(root: root, settings: settings).check(user: user, uid: account.uid, state: state)
        let busy = idle.isIdle ? nil : "\(user) is busy: " + idle.busyLines.joined(separator: "; ")
        if let busy, !force, !dryRun {
            throw RefusedError(
                plan: Plan(refusals: [
                    Refusal(gate: .idleGate, message: busy + "; wait until they are idle, or pass --force")
                ])
            )
        }

        // (c) The changes.
        var plan = Plan()
        let path = { (rel: String) in joinPath(account.home, rel) }
        switch code.kind {
        case "symlink":
            plan.changes.append(
                Change(
                    id: .link(path("code")),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: "remove the ~/code symlink (-> \(code.linkTarget ?? "?"))",
                    fields: [FieldChange("target", code.linkTarget, nil)],
                    action: .removeHomeEntry(user: user, path: path("code"), onlySymlink: true)
                )
            )
        case "absent": plan.notes.append("~/code is absent; apply provisions it")
        default: plan.notes.append("~/code is a \(code.kind), not a symlink; left as it is")
        }
        for l in launchers where l.kind == "file" {
            let text = String(decoding: l.content ?? Data(), as: UTF8.self)
            let new = repointLauncher(text, from: c.effectiveLeadTree)
            guard new != text else { continue }
            plan.changes.append(
                Change(
                    id: .file(path(l.relative)),
                    user: user,
                    kind: .update,
                    safety: .revoke,
                    summary: "repoint \(path(l.relative)) from \(c.effectiveLeadTree) to $HOME/code",
                    fields: lineDiff(text, new),
                    action: .rewriteHomeFile(
                        user: user,
                        path: path(l.relative),
                        content: Data(new.utf8),
                        uid: nil,
                        gid: nil,
                        mode: nil
                    )
                )
            )
        }
        for l in launchers where l.kind != "file" && l.kind != "absent" {
            plan.notes.append("launcher \(path(l.relative)) is a \(l.kind); left as it is")
        }
        for l in links {
            plan.changes.append(
                Change(
                    id: .link(path(l.relative)),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: "drop \(path(l.relative)) (-> \(l.linkTarget ?? "?")); the managed layer delivers it",
                    fields: [FieldChange("target", l.linkTarget, nil)],
                    action: .removeHomeEntry(user: user, path: path(l.relative), onlySymlink: true)
                )
            )
        }
        if groups.contains(c.sharedCodeGroup) {
            plan.changes.append(
                Change(
                    id: .membership(user, c.sharedCodeGroup),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: "remove \(user) from group \(c.sharedCodeGroup)",
                    fields: [FieldChange("groups", c.sharedCodeGroup, nil)],
                    action: .removeMembership(user: user, group: c.sharedCodeGroup)
                )
            )
        }
        plan.notes.append("then apply runs for \(user) (it provisions what is now missing, e.g. the clone at ~/code)")
        if let busy {
            plan.notes.append(
                force
                    ? "idle gate overridden (--force): \(busy)"
                    : "idle gate: \(busy); without --force the cutover is refused (exit 3)"
            )
        }
        if dryRun { return LifecycleOutcome(plan: plan, report: nil, dryRun: true) }

        // Record before changing anything: in state and as files under the state directory.
        var record = CutoverRecord(
            time: Date().timeIntervalSince1970.rounded(),
            home: account.home,
            code: code,
            groups: groups,
            launchers: launchers,
            claudeLinks: links
        )
        let copies = try writeRollbackFiles(record, user: user, root: root, settings: settings)
        state.cutovers[user] = record
        try StateStore(root: root, settings: settings).save(state)
        let (executor, journal) = try Executor.explicitRun(
            root: root,
            settings: settings,
            runner: runner,
            systemdRunning: snap.systemdRunning,
            state: state
        )
        var report = executor.runExplicit(plan.changes, progress: progress)
        state = executor.state
        try StateStore(root: root, settings: settings).save(state)
        var messages = ["rollback state recorded in state and in \(copies)"]
        if report.failed.isEmpty && report.skipped.isEmpty {
            let outcome = try Engine.applyHoldingLock(
                inputs,
                root: root,
                runner: runner,
                only: user,
                progress: progress
            )
            report.applied += outcome.report.applied
            report.failed += outcome.report.failed
            report.skipped += outcome.report.skipped
            let left = outcome.verification.actionable.filter { $0.user == user }
            messages.append(
                "apply for \(user): \(outcome.report.applied.count) change(s), "
                    + (left.isEmpty ? "converged" : "NOT converged: " + left.map(\.summary).joined(separator: "; "))
            )
            state = try StateStore(root: root, settings: settings).load()
        }
        record.completed = report.failed.isEmpty && report.skipped.isEmpty
        state.cutovers[user] = record
        try StateStore(root: root, settings: settings).save(state)
        journal.recordStage(
            .cutover(user),
            user: user,
            safety: .revoke,
            summary: "cutover of \(user)",
            ok: record.completed
        )
        messages.append(
            record.completed
                ? "cut over; to undo: workstation rollback \(user)"
                : "cutover incomplete; see the errors, then run workstation rollback \(user)"
        )
        return LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: false)
    }

    /// Restores what `cutover` recorded: `~/code` (moving a clone that replaced it into the state directory), the
    /// launchers' bytes, owner and mode, the dropped `~/.claude` links, and the exact supplementary group list.
    /// - Throws: `LifecycleError.noCutover`, `LockError`, state I/O errors.
    public static func rollback(
        user: String,
        inputs: Inputs,
        root: HostRoot,
        runner: any CommandRunner,
        dryRun: Bool = false,
        progress: (String) -> Void = { _ in }
    ) throws -> LifecycleOutcome {
        let settings = inputs.settings
        let lock = dryRun ? nil : try RunLock(root: root, settings: settings, timeout: settings.lockTimeout)
        defer { withExtendedLifetime(lock) {} }
        let snap = try Observer(root: root, settings: settings).observeBase()
        var state = snap.state
        guard var record = state.cutovers[user], record.rolledBack == nil else { throw LifecycleError.noCutover(user) }
        guard let account = snap.account(user) else { throw LifecycleError.noAccount(user) }
        let homes = HomeWriter(root: root)
        let owner = HomeWriter.Owner(uid: account.uid, gid: account.gid)
        let path = { (rel: String) in joinPath(account.home, rel) }
        var plan = Plan()
        func restoreLink(_ e: CutoverRecord.Entry) throws {
            let now = try homes.inspect(home: account.home, relative: e.relative, owner: owner)
            if now.kind == .symlink && now.linkTarget == e.linkTarget && now.uid == e.uid && now.gid == e.gid { return }
            var deps: [ResourceID] = []
            if now.kind == .directory && e.relative == "code" {
                let dir = joinPath(
                    settings.stateDirectory,
                    "cutover",
                    user,
                    "clone-\(Int(Date().timeIntervalSince1970))"
                )
                plan.changes.append(
                    Change(
                        id: .move(path(e.relative)),
                        user: user,
                        kind: .update,
                        safety: .revoke,
                        summary: "move the clone at \(path(e.relative)) to \(dir)/code (kept for the admin)",
                        action: .moveHomeEntryOut(user: user, path: path(e.relative), toDirectory: dir)
                    )
                )
                record.cloneMovedTo = joinPath(dir, "code")
                deps = [.move(path(e.relative))]
            }
            plan.changes.append(
                Change(
                    id: .link(path(e.relative)),
                    user: user,
                    kind: now.kind == .absent ? .create : .update,
                    safety: .additive,
                    summary: "restore \(path(e.relative)) -> \(e.linkTarget ?? "?")",
                    fields: [
                        FieldChange(
                            "target",
                            now.linkTarget ?? (now.kind == .absent ? nil : now.kind.rawValue),
                            e.linkTarget
                        )
                    ],
                    action: .placeHomeLink(
                        user: user,
                        path: path(e.relative),
                        target: e.linkTarget ?? "",
                        uid: e.uid,
                        gid: e.gid
                    ),
                    dependsOn: deps
                )
            )
        }
        if record.code.kind == "symlink" { try restoreLink(record.code) }
        for l in record.launchers where l.kind == "file" {
            let now = try homes.inspect(home: account.home, relative: l.relative, owner: owner)
            if now.kind == .file && now.content == l.content && now.mode == l.mode && now.uid == l.uid
                && now.gid == l.gid
            {
                continue
            }
            plan.changes.append(
                Change(
                    id: .file(path(l.relative)),
                    user: user,
                    kind: .update,
                    safety: .revoke,
                    summary: "restore \(path(l.relative)) as recorded",
                    fields: lineDiff(
                        now.content.map { String(decoding: $0, as: UTF8.self) },
                        String(decoding: l.content ?? Data(), as: UTF8.self)
                    ),
                    action: .rewriteHomeFile(
                        user: user,
                        path: path(l.relative),
                        content: l.content ?? Data(),
                        uid: l.uid,
                        gid: l.gid,
                        mode: l.mode
                    )
                )
            )
        }
        for l in record.claudeLinks { try restoreLink(l) }
        let current = snap.groupsOf(user)
        for g in record.groups where !current.contains(g) {
            plan.changes.append(
                Change(
                    id: .membership(user, g),
                    user: user,
                    kind: .create,
                    safety: .additive,
                    summary: "add \(user) back to group \(g)",
                    fields: [FieldChange("groups", nil, "+\(g)")],
                    action: .addMembership(user: user, group: g)
                )
            )
        }
        for g in current where !record.groups.contains(g) {
            plan.changes.append(
                Change(
                    id: .membership(user, g),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: "remove \(user) from group \(g) (not held before the cutover)",
                    fields: [FieldChange("groups", g, nil)],
                    action: .removeMembership(user: user, group: g)
                )
            )
        }
        if dryRun { return LifecycleOutcome(plan: plan, report: nil, dryRun: true) }
        let (executor, journal) = try Executor.explicitRun(
            root: root,
            settings: settings,
            runner: runner,
            systemdRunning: snap.systemdRunning,
            state: state
        )
        let report = executor.runExplicit(plan.changes, progress: progress)
        state = executor.state
        var messages: [String] = []
        if report.failed.isEmpty && report.skipped.isEmpty {
            record.rolledBack = Date().timeIntervalSince1970.rounded()
            messages.append("rolled back \(user) to the state recorded at cutover")
            if let moved = record.cloneMovedTo { messages.append("the clone that replaced ~/code is kept at \(moved)") }
        } else {
            record.cloneMovedTo = nil
            messages.append("rollback incomplete; fix the errors and run it again")
        }
        state.cutovers[user] = record
        try StateStore(root: root, settings: settings).save(state)
        journal.recordStage(
            .rollback(user),
            user: user,
            safety: .revoke,
            summary: "rollback of the cutover of \(user)",
            ok: record.rolledBack != nil
        )
        return LifecycleOutcome(plan: plan, report: report, messages: messages, dryRun: false)
    }

    /// Writes `<state dir>/cutover/<user>/rollback.json` and a copy of each launcher under `launchers/`, all 0600.
    /// - Returns: the host path of that directory.
    static func writeRollbackFiles(
        _ record: CutoverRecord,
        user: String,
        root: HostRoot,
        settings: Settings
    ) throws -> String {
        let dir = joinPath(settings.stateDirectory, "cutover", user)
        try FileManager.default.createDirectory(
            atPath: root.path(dir),
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.keyEncodingStrategy = .convertToSnakeCase
        try writeFileAtomically(
            try enc.encode(record) + Data("\n".utf8),
            to: root.path(joinPath(dir, "rollback.json")),
            mode: 0o600
        )
        for l in record.launchers where l.kind == "file" {
            try writeFileAtomically(
                l.content ?? Data(),
                to: root.path(joinPath(dir, "launchers", l.relative.replacingOccurrences(of: "/", with: "_"))),
                mode: 0o600
            )
        }
        return dir
    }
}

/// Replaces the lead's tree in a launcher with `$HOME/code` wherever it stands as a whole path (followed by the end,
/// `/`, a quote, whitespace or a shell separator), so `/home/lead/code-old` is left alone.
public func repointLauncher(_ text: String, from tree: String) -> String {
    guard !tree.isEmpty else { return text }
    var out = ""
    var rest = Substring(text)
    while let r = rest.range(of: tree) {
        let after = rest[r.upperBound...].first
        let boundary =
            after == nil || after == "/" || after == "\"" || after == "'" || after == ";" || after == ")"
            || after == "&" || after == "|" || after!.isWhitespace
        out += rest[..<r.lowerBound]
        out += boundary ? "$HOME/code" : tree
        rest = rest[r.upperBound...]
    }
    return out + rest
}
