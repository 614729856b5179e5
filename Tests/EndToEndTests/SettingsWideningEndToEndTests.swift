import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Settings that would widen access on this host, each prepared in a converged root: refused at the settings
/// file's line with the fix by apply, plan and setup-host, and the root byte-for-byte what it was.
@Suite(.serialized) struct SettingsWideningEndToEndTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// Applied to the example settings' text.
        var edit: @Sendable (String) -> String
        /// Prepares the host under the root (before the snapshot).
        var prepare: @Sendable (TempRoot) throws -> Void
        var message: String
        var testDescription: String { name }
    }

    static func append(_ yaml: String) -> @Sendable (String) -> String { { $0 + yaml } }

    static let cases: [Case] = [
        Case(
            name: "state directory through a symlink",
            edit: append("state_directory: /var/lib/ws-link/state\n"),
            prepare: { root in
                try FileManager.default.createDirectory(
                    atPath: root.file("/var/lib/ws-real"),
                    withIntermediateDirectories: true
                )
                try FileManager.default.createSymbolicLink(
                    atPath: root.file("/var/lib/ws-link"),
                    withDestinationPath: "ws-real"
                )
            },
            message: "state_directory /var/lib/ws-link/state: /var/lib/ws-link is a symlink"
        ),
        Case(
            name: "derived file whose directory is a symlink",
            edit: {
                $0.replacingOccurrences(
                    of: "dispatch: /etc/t3-serve/dispatch.json",
                    with: "dispatch: /etc/ws-dispatch/dispatch.json"
                )
            },
            prepare: { root in
                try FileManager.default.createSymbolicLink(
                    atPath: root.file("/etc/ws-dispatch"),
                    withDestinationPath: "/srv"
                )
            },
            message: "/etc/ws-dispatch is a symlink"
        ),
        Case(
            name: "backups below a world-writable directory",
            edit: append("offboard:\n  backup_directory: /srv/drop/backups\n"),
            prepare: { root in
                try FileManager.default.createDirectory(
                    atPath: root.file("/srv/drop"),
                    withIntermediateDirectories: true
                )
                chmod(root.file("/srv/drop"), 0o1777)
            },
            message: "/srv/drop is writable by every account (mode 1777)"
        ),
        Case(
            name: "skel below a directory another account owns",
            edit: append("setup_host:\n  skel: /srv/erin-owned/skel\n"),
            prepare: { root in
                try FileManager.default.createDirectory(
                    atPath: root.file("/srv/erin-owned"),
                    withIntermediateDirectories: true
                )
                chown(root.file("/srv/erin-owned"), 1500, 1500)
            },
            message: "/srv/erin-owned is owned by uid 1500"
        ),
        Case(
            name: "managed group an existing system group",
            edit: { $0.replacingOccurrences(of: "  group: workstation", with: "  group: ssl-cert") },
            prepare: { root in
                let r = try TestProcess.accountTool("groupadd", prefix: root.path, ["--system", "ssl-cert"])
                if r.status != 0 { throw SetupError(message: r.stderr) }
            },
            message: "accounts.group 'ssl-cert' is a system group on this host"
        ),
        Case(
            name: "config base in a person's home",
            edit: {
                $0.replacingOccurrences(
                    of: "config_base: /srv/workstation/config-base",
                    with: "config_base: /home/erin/base"
                )
            },
            prepare: { _ in },
            message: "config_base /home/erin/base is inside the home of 'erin' (/home/erin), who is not an admin"
        ),
    ]
    struct SetupError: Error { var message: String }

    @Test(arguments: cases) func refusedAtTheLineAndNothingChanges(_ c: Case) throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try inputs.write("/roster.yaml", HostileCase.base)
        let example = try String(contentsOfFile: Fixture.settingsPath, encoding: .utf8)
        let r = try CLI.run([
            "apply", "--roster", inputs.file("/roster.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
            "--init-root",
        ])
        try #require(r.status == 0, "\(r.stderr)")
        let erin = try TestProcess.accountTool("useradd", prefix: root.path, ["-u", "1500", "-m", "erin"])
        try #require(erin.status == 0, "\(erin.stderr)")
        try c.prepare(root)
        try inputs.write("/settings.yaml", c.edit(example))
        let before = TreeSnapshot(root.path)
        let args = [
            "--roster", inputs.file("/roster.yaml"), "--settings", inputs.file("/settings.yaml"), "--root", root.path,
        ]
        for command in [["apply"], ["plan"], ["setup-host"], ["doctor"]] {
            let out = try CLI.run(command + args)
            #expect(out.status == 1, "\(c.name): \(command) exited \(out.status): \(out.stderr)")
            let located = out.stderr.split(separator: "\n").filter {
                $0.hasPrefix(inputs.file("/settings.yaml") + ":") && $0.contains(": error: ")
            }
            #expect(
                located.contains { $0.contains(c.message) && !$0.hasPrefix(inputs.file("/settings.yaml") + ":0:") },
                "\(c.name): \(command) must report '\(c.message)' at a line; stderr:\n\(out.stderr)"
            )
            #expect(out.stderr.contains("nothing was changed"), "\(c.name): \(out.stderr)")
        }
        let after = TreeSnapshot(root.path)
        #expect(
            before == after,
            "\(c.name): the root changed:\n\(before.differences(to: after).prefix(20).joined(separator: "\n"))"
        )
    }
}
