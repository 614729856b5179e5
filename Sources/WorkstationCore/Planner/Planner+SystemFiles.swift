import Foundation

extension Planner {
    /// A root-owned file wholly owned by workstation: written when absent, regenerated when its bytes or mode differ.
    /// With `vendorCopy` (the path where the Debian package ships the same file): nothing to write while `path` is
    /// absent and the vendor copy holds exactly `content`, since systemd reads it there.
    func systemFile(
        _ path: String,
        _ content: Data,
        _ host: SetupHostObservation,
        _ what: String,
        mode: UInt32 = 0o644,
        vendorCopy: String? = nil
    ) -> [Change] {
        if host.file(path).kind == .absent, let vendorCopy, host.file(vendorCopy).kind == .file,
            host.file(vendorCopy).content == content
        {
            return []
        }
        return rootFile(path, content, observed: host.file(path), what, mode: mode)
    }

    /// The change that makes `path` a root-owned file holding `content` with `mode`, given what is there now:
    /// nothing when it already is; a derived create or update (with the line diff and any mode change) for a file or
    /// nothing; a conflict for anything else (a link or directory workstation did not make is never replaced).
    func rootFile(
        _ path: String,
        _ content: Data,
        observed st: PathState,
        _ what: String,
        mode: UInt32 = 0o644
    )
        -> [Change]
    {
        if st.kind == .file && st.content == content && st.mode & 0o7777 == mode { return [] }
        if st.kind != .file && st.kind != .absent {
            return [
                Change(
                    id: .file(path),
                    user: nil,
                    kind: .conflict,
                    safety: .derived,
                    summary: "\(path) is a \(st.kind.rawValue), not a file; \(what) not written",
                    reason: "workstation never replaces a link or directory it did not make; remove it by hand"
                )
            ]
        }
        var fields = lineDiff(
            st.content.map { String(decoding: $0, as: UTF8.self) },
            String(decoding: content, as: UTF8.self)
        )
        if st.kind == .file && st.mode & 0o7777 != mode {
            fields.append(FieldChange("mode", octal(st.mode & 0o7777), octal(mode)))
        }
        return [
            Change(
                id: .file(path),
                user: nil,
                kind: st.kind == .absent ? .create : .update,
                safety: .derived,
                summary: "\(st.kind == .absent ? "write" : "regenerate") \(path): \(what)",
                fields: fields,
                action: .writeFile(path: path, content: content, mode: mode)
            )
        ]
    }

    /// A root-owned symlink, made only when nothing is at the path; anything else there is kept and reported.
    func systemLink(_ path: String, target: String, _ host: SetupHostObservation, _ what: String) -> [Change] {
        let st = host.file(path)
        switch st.kind {
        case .absent:
            return [
                Change(
                    id: .link(path),
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "link \(path) -> \(target): \(what)",
                    fields: [FieldChange("target", nil, target)],
                    action: .createSystemLink(path: path, target: target)
                )
            ]
        case .symlink where st.linkTarget == target:
            return []
        default:
            return [
                Change(
                    id: .link(path),
                    user: nil,
                    kind: .conflict,
                    safety: .additive,
                    summary:
                        "\(path) is a \(st.kind == .symlink ? "link to \(st.linkTarget ?? "?")" : st.kind.rawValue) workstation did not make; kept",
                    reason: "remove it so \(what.split(separator: ",").first ?? "") comes from \(target)"
                )
            ]
        }
    }

    func skelChanges(_ host: SetupHostObservation) -> [Change] {
        let dir = joinPath(settings.setupHost.skel, ".claude")
        var out: [Change] = []
        switch host.file(dir).kind {
        case .absent:
            out.append(
                Change(
                    id: .dir(dir),
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "create \(dir) (copied into new homes as ~/.claude)",
                    fields: [FieldChange("mode", nil, "0700")],
                    action: .createSystemDirectory(path: dir, mode: 0o700)
                )
            )
        case .directory: break
        default:
            return [
                Change(
                    id: .dir(dir),
                    user: nil,
                    kind: .conflict,
                    safety: .additive,
                    summary: "\(dir) is a \(host.file(dir).kind.rawValue), not a directory; skel links not made",
                    reason: "remove it by hand so new homes get ~/.claude links"
                )
            ]
        }
        for item in settings.inheritedItems {
            let path = joinPath(dir, item)
            let target = joinPath(settings.configBase, item)
            let st = host.file(path)
            switch st.kind {
            case .absent:
                out.append(
                    Change(
                        id: .link(path),
                        user: nil,
                        kind: .create,
                        safety: .additive,
                        summary: "link \(path) -> \(target)",
                        fields: [FieldChange("target", nil, target)],
                        action: .createSystemLink(path: path, target: target),
                        dependsOn: host.file(dir).kind == .absent ? [.dir(dir)] : []
                    )
                )
            case .symlink where st.linkTarget == target: break
            default:
                out.append(
                    Change(
                        id: .link(path),
                        user: nil,
                        kind: .conflict,
                        safety: .additive,
                        summary:
                            "\(path) is a \(st.kind == .symlink ? "link to \(st.linkTarget ?? "?")" : st.kind.rawValue), not a link to \(target)",
                        reason: "kept; remove it so new homes inherit \(item) live"
                    )
                )
            }
        }
        return out
    }

    func packageChanges(_ host: SetupHostObservation, _ options: SetupHostOptions) -> [Change] {
        let installed = host.installedPackages ?? []
        let missing = settings.setupHost.packages.filter { !installed.contains($0) }
        guard !missing.isEmpty else { return [] }
        let list = missing.joined(separator: " ")
        let why = host.installedPackages == nil ? " (no dpkg database at /var/lib/dpkg/status under the root)" : ""
        if options.installPackages && host.canInstallPackages {
            return [
                Change(
                    id: .packages,
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "install missing packages: \(list)",
                    fields: missing.map { FieldChange("package", nil, $0) },
                    action: .installPackages(names: missing)
                )
            ]
        }
        return [
            Change(
                id: .packages,
                user: nil,
                kind: .conflict,
                safety: .additive,
                summary: "missing packages from the tool manifest: \(list)\(why)",
                fields: missing.map { FieldChange("package", nil, $0) },
                reason: options.installPackages
                    ? "apt-get cannot install into a --root prefix; run setup-host --install-packages on the host itself"
                    : "run workstation setup-host --install-packages, or apt-get install \(list)"
            )
        ]
    }
}
