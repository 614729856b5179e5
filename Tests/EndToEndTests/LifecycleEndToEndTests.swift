import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One entry of a directory tree: kind, owner, mode, link target or bytes.
struct TreeEntry: Hashable, CustomStringConvertible {
    var kind: String
    var uid: UInt32
    var gid: UInt32
    var mode: UInt32
    var target: String?
    var bytes: Data?
    var description: String { "\(kind) \(uid):\(gid) \(String(mode, radix: 8)) \(target ?? "") \(bytes?.count ?? 0)B" }
}

/// Every entry under `dir` (relative path -> entry), never following links.
func tree(_ dir: String, skip: Set<String> = []) -> [String: TreeEntry] {
    var out: [String: TreeEntry] = [:]
    func walk(_ rel: String) {
        let full = rel.isEmpty ? dir : dir + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else { return }
        var e = TreeEntry(kind: "other", uid: st.st_uid, gid: st.st_gid, mode: UInt32(st.st_mode) & 0o7777)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            e.kind = "dir"
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted() {
                let child = rel.isEmpty ? name : rel + "/" + name
                if !skip.contains(child) { walk(child) }
            }
        case S_IFLNK:
            e.kind = "link"
            e.target = try? FileManager.default.destinationOfSymbolicLink(atPath: full)
        case S_IFREG:
            e.kind = "file"
            e.bytes = FileManager.default.contents(atPath: full)
        default: break
        }
        out[rel] = e
    }
    walk("")
    return out
}

/// A sandbox host with a roster file the test edits: carol (admin, the lead), alice (power-user), bob-dev.
final class LifecycleHost {
    let root: TempRoot
    let roster: String
    let settings: String
    static let fullRoster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """

    init() throws {
        root = try TempRoot()
        roster = root.path + "-roster.yaml"
        settings = root.path + "-settings.yaml"
        try Self.fullRoster.write(toFile: roster, atomically: true, encoding: .utf8)
        try """
        config_base: /srv/workstation/config-base
        offboard:
          backup_directory: /var/backups/workstation
        cutover:
          launchers: [start-claude.sh]
          lead_home: /home/carol
          shared_code_group: code-shared
        idle:
          process_names: [claude, tmux, t3]

        """.write(toFile: settings, atomically: true, encoding: .utf8)
        let r = try run(["apply", "--init-root"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    deinit {
        unlink(roster)
        unlink(settings)
    }

    @discardableResult
    func run(_ args: [String]) throws -> CLIResult {
        try CLI.run(args + ["--roster", roster, "--settings", settings, "--root", root.path])
    }

    func setRoster(without user: String?) throws {
        let text =
            Self.fullRoster.split(separator: "\n").filter { user == nil || !$0.hasPrefix("  \(user!):") }.joined(
                separator: "\n"
            ) + "\n"
        try text.write(toFile: roster, atomically: true, encoding: .utf8)
    }

    func line(_ file: String, _ user: String) -> String? {
        root.read(file)?.split(separator: "\n").first { $0.hasPrefix("\(user):") }.map(String.init)
    }

    func uid(_ user: String) -> Int? { line("/etc/passwd", user).flatMap { Int($0.split(separator: ":")[2]) } }

    /// Supplementary groups of `user` from the root's /etc/group, in file order.
    func groups(_ user: String) -> [String] {
        (root.read("/etc/group") ?? "").split(separator: "\n").compactMap { l in
            let f = l.split(separator: ":", omittingEmptySubsequences: false)
            return f.count >= 4 && f[3].split(separator: ",").contains(Substring(user)) ? String(f[0]) : nil
        }
    }

    var wants: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.file("/etc/systemd/system/multi-user.target.wants")))
            ?? []).sorted()
    }

    func state() throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: root.file("/var/lib/workstation/state.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func editState(_ body: (inout [String: Any]) -> Void) throws {
        var s = try state()
        body(&s)
        let data = try JSONSerialization.data(withJSONObject: s, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: root.file("/var/lib/workstation/state.json")))
    }

    /// Gives `user` a password hash, so locking is observable (useradd leaves `!`, already locked).
    func setPassword(_ user: String) throws {
        // A locked password as useradd (`!`) or systemd-sysusers (`!*`) leaves it.
        let shadow = root.read("/etc/shadow")!.replacingOccurrences(
            of: "\n\(user):!*:",
            with: "\n\(user):$6$salt$hash:"
        )
        .replacingOccurrences(of: "\n\(user):!:", with: "\n\(user):$6$salt$hash:")
        try root.write("/etc/shadow", shadow)
    }

    /// A synthetic /proc entry: a process of `uid` named `name`.
    func process(pid: Int, uid: Int, name: String) throws {
        try root.write(
            "/proc/\(pid)/status",
            "Name:\t\(name)\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\nGid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n"
        )
        try root.write("/proc/\(pid)/comm", "\(name)\n")
    }

    /// A synthetic /proc/net/tcp with one connection to `port` in `state` (hex, `01` = ESTABLISHED).
    func tcp(port: Int, state: String) throws {
        let header =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        let p = String(format: "%04X", port)
        try root.write(
            "/proc/net/tcp",
            header
                + "   0: 0100007F:\(p) 0100007F:A2C4 \(state) 00000000:00000000 00:00000000 00000000  1001        0 12345 1 0000000000000000 20 4 30 10 -1\n"
        )
        try root.write("/proc/net/tcp6", header)
    }

    func t3Port(_ user: String) throws -> Int {
        let s = try state()
        return try #require((s["ports"] as? [String: [String: Int]])?["t3-serve@"]?[user])
    }
}

@Suite(.serialized) struct OffboardEndToEndTests {
    @Test func offboardIsRefusedWhileTheUserIsInTheRoster() throws {
        let h = try LifecycleHost()
        let before = tree(h.root.path)
        let r = try h.run(["offboard", "alice", "--stage", "cut"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("'alice' is still in the roster"), "\(r.stderr)")
        #expect(tree(h.root.path) == before)
    }

    @Test func laterStagesAreRefusedUntilTheEarlierOneIsRecorded() throws {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let before = tree(h.root.path)
        let revoke = try h.run(["offboard", "alice", "--stage", "revoke"])
        #expect(revoke.status == 3)
        #expect(revoke.stderr.contains("stage revoke needs stage cut first"), "\(revoke.stderr)")
        let archive = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"])
        #expect(archive.status == 3)
        #expect(archive.stderr.contains("stage archive needs stage cut first"), "\(archive.stderr)")
        #expect(tree(h.root.path) == before)
        // After cut, archive still needs revoke.
        #expect(try h.run(["offboard", "alice", "--stage", "cut"]).status == 0)
        let archive2 = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"])
        #expect(archive2.status == 3)
        #expect(archive2.stderr.contains("stage archive needs stage revoke first"), "\(archive2.stderr)")
    }

    @Test func cutIsRefusedWhileTheDerivedFilesStillRouteTheUser() throws {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")  // no apply: the derived files still hold alice
        let before = tree(h.root.path)
        let r = try h.run(["offboard", "alice", "--stage", "cut"])
        #expect(r.status == 3)
        #expect(r.stderr.contains("still route 'alice'") && r.stderr.contains("run workstation apply"), "\(r.stderr)")
        #expect(tree(h.root.path) == before)
    }

    @Test func cutDryRunChangesNothingThenCutLocksExpiresAndDisables() throws {
        let h = try LifecycleHost()
        try h.setPassword("alice")
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        #expect(h.wants.contains("t3-serve@alice.service"))
        let before = tree(h.root.path)
        let dry = try h.run(["offboard", "alice", "--stage", "cut", "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(
            dry.stdout.contains("disable t3-serve@alice.service")
                && dry.stdout.contains("lock the password and expire"),
            "\(dry.stdout)"
        )
        #expect(dry.stdout.contains("idp membership: not configured"))
        #expect(tree(h.root.path) == before)

        let cut = try h.run(["offboard", "alice", "--stage", "cut", "--json"])
        #expect(cut.status == 0, "\(cut.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
        #expect((json["applied"] as? [String])?.sorted() == ["login:alice", "unit:t3-serve@alice.service"])
        let shadow = try #require(h.line("/etc/shadow", "alice")).split(
            separator: ":",
            omittingEmptySubsequences: false
        )
        #expect(shadow[1].hasPrefix("!$6$") && shadow[7] == "1")
        #expect(!h.wants.contains("t3-serve@alice.service"))
        #expect(h.wants.contains("t3-serve@bob-dev.service"))
        let rec = try #require((try h.state()["offboarding"] as? [String: Any])?["alice"] as? [String: Any])
        let cutRec = try #require(rec["cut"] as? [String: Any])
        #expect(cutRec["completed"] as? Bool == true)
        let b = try #require(cutRec["before"] as? [String: Any])
        #expect(
            b["password_locked"] as? Bool == false && b["expire_days"] == nil
                && b["idp_membership"] as? String == "not configured"
        )
        #expect((b["units"] as? [String: Bool]) == ["t3-serve@alice.service": true])
        #expect((b["groups"] as? [String]) == ["workstation", "workstation-power-user"])
        let journal = h.root.read("/var/lib/workstation/journal.jsonl") ?? ""
        #expect(journal.contains("\"change\":\"login:alice\"") && journal.contains("\"safety\":\"revoke\""))
        #expect(journal.contains("\"change\":\"offboard:alice:cut\",") && journal.contains("\"result\":\"ok\""))
        // apply never undoes a cut while the user is out of the roster, and the plan names the next stage.
        let plan = try h.run(["plan"])
        #expect(plan.stdout.contains("workstation offboard alice --stage revoke"), "\(plan.stdout)")
        #expect(try h.run(["apply"]).status == 0)
        #expect(h.line("/etc/shadow", "alice") == shadow.joined(separator: ":"))
    }

    @Test func cutUnderARootDisablesLingerAndLeavesEveryProcessAlone() throws {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let uid = try #require(h.uid("alice"))
        try h.root.write("/var/lib/systemd/linger/alice", "")
        try h.process(pid: 4242, uid: uid, name: "sleep")
        let dry = try h.run(["offboard", "alice", "--stage", "cut", "--dry-run"])
        #expect(dry.stdout.contains("disable linger for alice"), "\(dry.stdout)")
        #expect(dry.stdout.contains("processes of alice are not ended under --root"), "\(dry.stdout)")

        let cut = try h.run(["offboard", "alice", "--stage", "cut", "--json"])
        #expect(cut.status == 0, "\(cut.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
        #expect(
            (json["applied"] as? [String])?.sorted() == ["linger:alice", "login:alice", "unit:t3-serve@alice.service"]
        )
        #expect((json["changes"] as? [[String: Any]])?.contains { $0["id"] as? String == "processes:alice" } == false)
        #expect((json["ended_processes"] as? [Any])?.isEmpty == true)
        #expect(!h.root.exists("/var/lib/systemd/linger/alice"))
        // The synthetic process of the root is a file there, nothing more: left as it was.
        #expect(h.root.read("/proc/4242/status")?.contains("Name:\tsleep") == true)
    }

    @Test func reinstatingAfterCutRestoresExactlyWhatCutRecorded() throws {
        let h = try LifecycleHost()
        try h.setPassword("alice")
        // Drop the account's expiry onto a real date to see it restored, not just cleared.
        let sh = try #require(h.line("/etc/shadow", "alice"))
        var f = sh.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        f[7] = "30000"
        try h.root.write(
            "/etc/shadow",
            h.root.read("/etc/shadow")!.replacingOccurrences(of: sh, with: f.joined(separator: ":"))
        )
        let passwd = h.line("/etc/passwd", "alice")
        let shadow = h.line("/etc/shadow", "alice")
        let groups = h.groups("alice")
        let wants = h.wants
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        #expect(try h.run(["offboard", "alice", "--stage", "cut"]).status == 0)
        #expect(try h.run(["offboard", "alice", "--stage", "revoke"]).status == 0)
        #expect(h.line("/etc/shadow", "alice") != shadow)

        try h.setRoster(without: nil)
        let plan = try h.run(["plan"])
        #expect(
            plan.stdout.contains("restore the login of alice") && plan.stdout.contains("[additive]"),
            "\(plan.stdout)"
        )
        let apply = try h.run(["apply"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(h.line("/etc/passwd", "alice") == passwd)
        #expect(h.line("/etc/shadow", "alice") == shadow)
        #expect(h.groups("alice") == groups)
        #expect(h.wants == wants)
        #expect((try h.state()["offboarding"] as? [String: Any])?["alice"] == nil)
        #expect(try h.run(["plan", "--detailed-exitcode"]).status == 0)
    }

    /// Each recorded secret file as it is at revoke time: deleted only while it holds exactly the bytes written
    /// (the digest in state); changed, unrecorded digest, or a link now: kept in the home (for the archive), reported.
    @Test func revokeDeletesOnlyRecordedSecretFilesUnchangedSinceWrittenAndNeverFollowsLinks() throws {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let uid = try #require(h.uid("alice"))
        func digest(_ text: String) throws -> String {
            try h.root.write("/tmp/digest", text)
            return "sha256:"
                + String(try CLI.runTool("/usr/bin/sha256sum", [h.root.file("/tmp/digest")]).stdout.prefix(64))
        }
        // (path, bytes written, bytes now (nil: a link to /srv/precious), digest recorded, deleted)
        let table: [(String, String, String?, Bool, Bool)] = [
            ("/home/alice/.vault-token", "s.secret\n", "s.secret\n", true, true),
            ("/home/alice/.kube/config", "apiVersion: v1\n", "apiVersion: v1\n", true, true),
            // the agent changed it
            ("/home/alice/.claude.json", "{}\n", "{\"mcpServers\": {\"mine\": {}}}\n", true, false),
            ("/home/alice/.config/tool/token", "t\n", "t\n", false, false),  // no digest on record
            ("/home/alice/.memory-key", "k\n", nil, true, false),  // a link now
        ]
        try h.root.write("/srv/precious", "keep me\n")
        var digests: [String: String] = [:]
        for (path, written, now, recorded, _) in table {
            if recorded { digests[path] = try digest(written) }
            if let now {
                try h.root.write(path, now)
                var dir = (path as NSString).deletingLastPathComponent
                while dir != "/home/alice" {
                    chown(h.root.file(dir), uid_t(uid), gid_t(uid))
                    dir = (dir as NSString).deletingLastPathComponent
                }
                chown(h.root.file(path), uid_t(uid), gid_t(uid))
            } else {
                symlink(h.root.file("/srv/precious"), h.root.file(path))
                lchown(h.root.file(path), uid_t(uid), gid_t(uid))
            }
        }
        try h.editState { s in
            s["secret_files_written"] = ["alice": table.map(\.0) + ["/home/alice/.gone"]]
            s["written_digests"] = ["alice": digests]
        }
        #expect(try h.run(["offboard", "alice", "--stage", "cut"]).status == 0)
        let dry = try h.run(["offboard", "alice", "--stage", "revoke", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("delete secret file /home/alice/.vault-token"), "\(dry.stdout)")
        #expect(
            dry.stdout.contains("kept secret file /home/alice/.claude.json: changed since workstation wrote it"),
            "\(dry.stdout)"
        )
        #expect(h.root.read("/home/alice/.vault-token") != nil)
        let r = try h.run(["offboard", "alice", "--stage", "revoke"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            r.stdout.contains("remove the k8s_users entry 'alice'") && r.stdout.contains("ClusterRoleBinding"),
            "\(r.stdout)"
        )
        #expect(
            r.stdout.contains(
                "kubectl delete rolebindings,clusterrolebindings --all-namespaces -l app.kubernetes.io/managed-by=workstation,workstation/os-user=alice"
            ),
            "\(r.stdout)"
        )
        for (path, _, now, _, deleted) in table {
            var st = stat()
            #expect((lstat(h.root.file(path), &st) == 0) == !deleted, "\(path)")
            if let now, !deleted { #expect(h.root.read(path) == now, "\(path) kept as it was") }
            if !deleted { #expect(r.stdout.contains("kept \(path): "), "\(path) reported: \(r.stdout)") }
        }
        #expect(h.root.read("/srv/precious") == "keep me\n")
        let s = try h.state()
        #expect((s["secret_files_written"] as? [String: Any])?["alice"] == nil)
        #expect((s["written_digests"] as? [String: Any])?["alice"] == nil)
        let rev = try #require(
            ((s["offboarding"] as? [String: Any])?["alice"] as? [String: Any])?["revoke"] as? [String: Any]
        )
        #expect((rev["deleted_files"] as? [String])?.sorted() == table.filter(\.4).map(\.0).sorted())
        #expect((rev["kept_files"] as? [String: String]).map { Set($0.keys) } == Set(table.filter { !$0.4 }.map(\.0)))
        #expect(rev["absent_files"] as? [String] == ["/home/alice/.gone"])
        #expect(
            h.root.read("/var/lib/workstation/journal.jsonl")?.contains(
                "\"change\":\"secret:/home/alice/.vault-token\""
            ) == true
        )
        #expect(
            h.root.read("/var/lib/workstation/journal.jsonl")?.contains("\"change\":\"offboard:alice:revoke\"") == true
        )
        // The kept files go into the archive with the rest of the home.
        let arch = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"])
        #expect(arch.status == 0, "\(arch.stderr)")
        let file = try #require(
            try FileManager.default.contentsOfDirectory(atPath: h.root.file("/var/backups/workstation")).first {
                $0.hasSuffix(".tar.gz")
            }
        )
        let listing = try CLI.runTool("/usr/bin/tar", ["-tzf", h.root.file("/var/backups/workstation/" + file)]).stdout
        #expect(
            listing.contains("alice/.claude.json") && listing.contains("alice/.config/tool/token")
                && !listing.contains("alice/.vault-token"),
            "\(listing)"
        )
    }

    /// A host where alice is cut and revoked, ready for archive.
    func revoked() throws -> LifecycleHost {
        let h = try LifecycleHost()
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        #expect(try h.run(["offboard", "alice", "--stage", "cut"]).status == 0)
        #expect(try h.run(["offboard", "alice", "--stage", "revoke"]).status == 0)
        return h
    }

    @Test func archiveRefusesWithoutExactConfirmationAndWhileProcessesRun() throws {
        let h = try revoked()
        let uid = try #require(h.uid("alice"))
        var before = tree(h.root.path)
        let none = try h.run(["offboard", "alice", "--stage", "archive"])
        #expect(none.status == 3 && none.stderr.contains("add --confirm alice"), "\(none.stderr)")
        let wrong = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "Alice"])
        #expect(wrong.status == 3 && wrong.stderr.contains("does not match"), "\(wrong.stderr)")
        #expect(tree(h.root.path) == before)

        try h.process(pid: 4242, uid: uid, name: "bash")
        try h.process(pid: 4243, uid: 0, name: "claude")  // root's: not alice's
        before = tree(h.root.path)
        for extra in [[], ["--force"]] {
            let r = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"] + extra)
            #expect(r.status == 3, "\(r.stdout)")
            #expect(r.stderr.contains("4242 (bash)") && !r.stderr.contains("4243"), "\(r.stderr)")
        }
        #expect(tree(h.root.path) == before)
        #expect(h.uid("alice") == uid)
    }

    @Test func archiveIdleGateRefusesAConnectionToTheT3PortUnlessForced() throws {
        let h = try revoked()
        let port = try h.t3Port("alice")
        try h.tcp(port: port, state: "0A")  // LISTEN: not a connection
        let listenOnly = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice", "--dry-run"])
        #expect(listenOnly.status == 0, "\(listenOnly.stderr)")
        try h.tcp(port: port, state: "01")
        let before = tree(h.root.path)
        let busy = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"])
        #expect(busy.status == 3)
        #expect(
            busy.stderr.contains("idle gate") && busy.stderr.contains("connection to the t3 port \(port)"),
            "\(busy.stderr)"
        )
        #expect(tree(h.root.path) == before)
        let forced = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice", "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(h.uid("alice") == nil)
    }

    @Test func archiveTarsVerifiesDeletesAndRetiresTheUid() throws {
        let h = try revoked()
        let uid = try #require(h.uid("alice"))
        try h.root.write("/home/alice/notes/todo.txt", "ship it\n")
        chown(h.root.file("/home/alice/notes"), uid_t(uid), gid_t(uid))
        chown(h.root.file("/home/alice/notes/todo.txt"), uid_t(uid), gid_t(uid))
        chmod(h.root.file("/home/alice/notes/todo.txt"), 0o640)
        let acl = try CLI.runTool("/usr/bin/setfacl", ["-m", "u:1234:r", h.root.file("/home/alice/notes/todo.txt")])
        #expect(acl.status == 0, "\(acl.stderr)")
        let r = try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice", "--json"])
        #expect(r.status == 0, "\(r.stderr)\(r.stdout)")
        #expect(h.uid("alice") == nil)
        #expect(!FileManager.default.fileExists(atPath: h.root.file("/home/alice")))
        #expect(
            !FileManager.default.fileExists(
                atPath: h.root.file("/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf")
            )
        )
        let s = try h.state()
        #expect((s["retired_uids"] as? [Int])?.contains(uid) == true)
        #expect((s["accounts"] as? [String: Any])?["alice"] == nil)
        let arch = try #require(
            ((s["offboarding"] as? [String: Any])?["alice"] as? [String: Any])?["archive"] as? [String: Any]
        )
        let path = h.root.file(try #require(arch["path"] as? String))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600 && Int(st.st_size) == arch["bytes"] as? Int)
        let listing = try CLI.runTool("/usr/bin/tar", ["--numeric-owner", "-tvzf", path])
        #expect(
            listing.stdout.contains("-rw-r-----+ \(uid)/\(uid)") || listing.stdout.contains("-rw-r----- \(uid)/\(uid)"),
            "\(listing.stdout)"
        )
        #expect(listing.stdout.contains("alice/notes/todo.txt"))
        let acls = try CLI.runTool("/usr/bin/tar", ["--acls", "-tvzf", path])
        #expect(acls.stdout.contains("-rw-r-----+"), "the ACL travelled with the file: \(acls.stdout)")
        let sum = try CLI.runTool("/usr/bin/sha256sum", [path])
        #expect(String(sum.stdout.prefix(64)) == arch["sha256"] as? String)
        #expect(
            h.root.read("/var/backups/workstation/" + (path as NSString).lastPathComponent + ".sha256")?.hasPrefix(
                String(sum.stdout.prefix(64))
            ) == true
        )
        // Archiving again is a no-op; the plan no longer lists alice.
        #expect(try h.run(["offboard", "alice", "--stage", "archive", "--confirm", "alice"]).status == 0)
        #expect(!(try h.run(["plan"]).stdout.contains("alice left the roster")))

        // The retired-uid rule: no account or group holds the uid any more, yet a new user does not get it.
        #expect(!(h.root.read("/etc/passwd") ?? "").contains(":\(uid):"))
        let groupFile =
            (h.root.read("/etc/group") ?? "").split(separator: "\n").filter { !$0.contains(":\(uid):") }.joined(
                separator: "\n"
            ) + "\n"
        // userdel may keep the private group; drop it so only the rule guards the uid
        try h.root.write("/etc/group", groupFile)
        try
            (LifecycleHost.fullRoster.replacingOccurrences(
                of:
                    "  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }\n",
                with: ""
            )
            + "  dave: { authentik_user: dave99, k8s_user: dave99, tier: namespace-owner, namespaces: [dave99] }\n")
            .write(toFile: h.roster, atomically: true, encoding: .utf8)
        let apply = try h.run(["apply"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let dave = try #require(h.uid("dave"))
        #expect(dave != uid)
        #expect(dave == uid + 2, "the lowest free uid after the retired one and bob-dev's")

        // An account of the same name created later starts a fresh offboarding; the archived record is history.
        try h.setRoster(without: nil)
        #expect(try h.run(["apply"]).status == 0)
        let newUid = try #require(h.uid("alice"))
        #expect(newUid != uid)
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        let again = try h.run(["offboard", "alice", "--stage", "cut"])
        #expect(again.status == 0 && again.stdout.contains("cut recorded"), "\(again.stdout)\(again.stderr)")
        let rec = try #require((try h.state()["offboarding"] as? [String: Any])?["alice"] as? [String: Any])
        #expect(rec["uid"] as? Int == newUid && rec["archive"] == nil)
    }
}
