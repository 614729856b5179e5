import Foundation
import Testing

@testable import WorkstationCore

/// Planner fixtures: each directory under `Fixtures/` is one case, (roster.yaml, settings.yaml, host.json) ->
/// expected.plan, run by one test. `WORKSTATION_REGENERATE_FIXTURES=1 swift test --filter PlannerFixtures` writes
/// every expected.plan from what the planner does now; review the change with `git diff` (Fixtures/README.md).
@Suite struct PlannerFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures"
    )
    static let regenerate = ProcessInfo.processInfo.environment["WORKSTATION_REGENERATE_FIXTURES"] == "1"

    /// The case directories (those holding a roster.yaml), sorted.
    static var cases: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent("\($0)/roster.yaml").path)
        }
        .sorted()
    }

    @Test func everyCaseDirectoryIsComplete() throws {
        #expect(Self.cases.count >= 15, "\(Self.cases)")
        for name in Self.cases {
            for file in ["settings.yaml", "host.json"] + (Self.regenerate ? [] : ["expected.plan"]) {
                let path = Self.directory.appendingPathComponent("\(name)/\(file)").path
                #expect(FileManager.default.fileExists(atPath: path), "Fixtures/\(name) has no \(file)")
            }
        }
    }

    @Test(arguments: cases)
    func planMatchesTheExpectedPlan(_ name: String) throws {
        let dir = Self.directory.appendingPathComponent(name)
        let fixture = try FixtureCase(directory: dir)
        let rendered = fixture.rendered(name: name)
        let expectedFile = dir.appendingPathComponent("expected.plan")
        if Self.regenerate {
            let old = try? String(contentsOf: expectedFile, encoding: .utf8)
            if old != rendered {
                try rendered.write(to: expectedFile, atomically: true, encoding: .utf8)
                print("PlannerFixtures: wrote Fixtures/\(name)/expected.plan")
            }
        } else {
            let expected = try String(contentsOf: expectedFile, encoding: .utf8)
            let matches = rendered == expected  // a Bool, so a failure prints the diff below, not both files
            #expect(
                matches,
                """
                Fixtures/\(name): the plan differs from expected.plan (- expected, + now):
                \(lineDifferences(expected, rendered))
                If the change is intended: WORKSTATION_REGENERATE_FIXTURES=1 swift test --filter PlannerFixtures, \
                then review git diff.
                """
            )
        }
        for problem in fixture.invariantViolations() { Issue.record("Fixtures/\(name): \(problem)") }
    }

    /// The lines only in `a` (`- `) and only in `b` (`+ `), in order.
    func lineDifferences(_ a: String, _ b: String) -> String {
        let diff = b.split(separator: "\n", omittingEmptySubsequences: false).difference(
            from: a.split(separator: "\n", omittingEmptySubsequences: false)
        )
        return diff.map { change -> String in
            switch change {
            case .remove(let offset, let line, _): "- \(offset + 1): \(line)"
            case .insert(let offset, let line, _): "+ \(offset + 1): \(line)"
            }
        }
        .joined(separator: "\n")
    }
}

/// One fixture directory, loaded and planned.
struct FixtureCase {
    var settings: Settings
    var host: HostSnapshot
    /// The roster, or nil when parsing it failed (`parseErrors` says why).
    var roster: Roster?
    var parseErrors: [String] = []
    var desired: DesiredState?
    var plan: Plan?

    init(directory: URL) throws {
        let settingsData = try Data(contentsOf: directory.appendingPathComponent("settings.yaml"))
        settings = try Settings.parse(settingsData, file: "settings.yaml")
        host = try FixtureHost.load(directory.appendingPathComponent("host.json")).snapshot()
        let rosterData = try Data(contentsOf: directory.appendingPathComponent("roster.yaml"))
        do {
            roster = try Roster.parse(rosterData, file: "roster.yaml", settings: settings)
        } catch let failure as ValidationFailure {
            parseErrors = failure.diagnostics.map(\.description)
        }
        guard let roster else { return }
        let d = desire(roster: roster, settings: settings, snapshot: host)
        desired = d
        // As the commands do: a roster with located errors is not planned.
        if d.diagnostics.isEmpty { plan = Planner(settings: settings).plan(desired: d, observed: host) }
    }

    /// expected.plan: the located errors, else the desired people, the plan as `workstation plan` prints it, its
    /// refusals, and every change with its kind, safety class, action and dependencies.
    func rendered(name: String) -> String {
        var out = "# Fixtures/\(name), planned from roster.yaml, settings.yaml and host.json by PlannerFixtures.\n"
        out += "# Regenerate: WORKSTATION_REGENERATE_FIXTURES=1 swift test --filter PlannerFixtures; review git diff.\n"
        let errors = parseErrors + (desired?.diagnostics.map(\.description) ?? [])
        if !errors.isEmpty {
            out += "\n## errors (nothing is planned)\n"
            for e in errors { out += e + "\n" }
            return out
        }
        guard let desired, let plan else { return out }
        out += "\n## desired\n"
        for u in desired.users {
            let ports = u.ports.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out += "\(u.osUser): uid \(u.uid), home \(u.home), groups [\(u.groups.joined(separator: ", "))]"
            out += (u.accountExists ? ", account exists" : "") + (ports.isEmpty ? "" : ", ports \(ports)") + "\n"
        }
        for r in desired.identities {
            let ports = r.ports.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out += "route \(r.authentikUser) -> \(r.osUser)" + (ports.isEmpty ? "" : ", \(ports)")
            out += (r.adopted ? " (admin: routed, never provisioned)" : "") + "\n"
        }
        for (template, byUser) in desired.ports.sorted(by: { $0.key < $1.key }) {
            out += "ports \(template): "
            out += byUser.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
        }
        if !desired.departed.isEmpty { out += "departed: \(desired.departed.joined(separator: ", "))\n" }
        out += "\n## plan (as `workstation plan` prints it)\n"
        out += PlanRenderer.human(plan)
        if !plan.refusals.isEmpty {
            out += "\n## refusals\n"
            for r in plan.refusals { out += "\(r.gate): \(r.message)\n" }
        }
        if !plan.changes.isEmpty {
            out += "\n## changes (id, kind, safety; the action the executor runs; what it waits for)\n"
            for c in plan.changes {
                out += "\(c.id) \(c.kind.rawValue) \(c.safety.rawValue)\n"
                if let action = c.action { out += "  action: \(Self.json(action))\n" }
                if !c.dependsOn.isEmpty {
                    out += "  after: \(c.dependsOn.map(\.description).joined(separator: ", "))\n"
                }
            }
        }
        return out
    }

    /// What must hold in every case, whatever expected.plan says: no account is created with an admin or docker
    /// group, a person of the admin tier is routed but never provisioned, and nothing apply would run revokes or
    /// destroys.
    func invariantViolations() -> [String] {
        guard let plan, let roster else { return [] }
        var problems: [String] = []
        for c in plan.changes {
            if case .createAccount(let spec) = c.action,
                let bad = spec.groups.first(where: { ["sudo", "admin", "wheel", "docker"].contains($0) })
            {
                problems.append("\(c.id) puts the new account in \(bad)")
            }
        }
        let admins = Set(roster.entries.filter { $0.tier == .admin }.map(\.osUser))
        for c in plan.actionable where c.user.map(admins.contains) == true {
            problems.append("\(c.id) provisions the admin \(c.user!)")
        }
        for c in plan.actionable where !c.safety.runsInApply || c.kind == .pending {
            problems.append("\(c.id) would run a \(c.safety.rawValue) change in apply")
        }
        return problems
    }

    /// The action as one line of JSON with sorted keys; bytes (file contents) as text when they are UTF-8, and
    /// permission bits in octal (`"mode":"0700"`).
    static func json(_ action: Action) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dataEncodingStrategy = .custom { data, encoder in
            var c = encoder.singleValueContainer()
            if let text = String(data: data, encoding: .utf8) {
                try c.encode(text)
            } else {
                try c.encode("base64:" + data.base64EncodedString())
            }
        }
        guard let data = try? encoder.encode(action) else { return "(not encodable)" }
        let text = String(decoding: data, as: UTF8.self)
        guard let modes = try? Regex(#""mode":([0-9]+)"#) else { return text }
        return text.replacing(modes) { match in
            let value = Int(String(text[match.range]).dropFirst(7)) ?? 0
            return "\"mode\":\"0\(String(value, radix: 8))\""
        }
    }
}

/// host.json: the observed host of a fixture, the parts of `HostSnapshot` the planner reads. Accounts and groups
/// are passwd(5) and group(5) lines; each path is `{"kind": "file" | "directory" | "symlink" | "other", "mode":
/// "0644", "owner": "UID:GID", "target": LINK, "content": TEXT}` (all but kind optional); `state` is state.json.
struct FixtureHost: Codable {
    struct Path: Codable {
        var kind: String
        var mode: String?
        var owner: String?
        var target: String?
        var content: String?

        init(kind: String, mode: String? = nil, owner: String? = nil, target: String? = nil, content: String? = nil) {
            self.kind = kind
            self.mode = mode
            self.owner = owner
            self.target = target
            self.content = content
        }
    }
    var passwd: [String] = []
    var groups: [String] = []
    var paths: [String: Path] = [:]
    var enabledUnits: [String]?
    var activeUnits: [String]?
    var systemdRunning: Bool?
    var state: WorkstationState?

    enum CodingKeys: String, CodingKey {
        case passwd, groups, paths, state
        case enabledUnits = "enabled_units"
        case activeUnits = "active_units"
        case systemdRunning = "systemd_running"
    }

    static func load(_ url: URL) throws -> FixtureHost {
        try JSONDecoder().decode(FixtureHost.self, from: Data(contentsOf: url))
    }

    func snapshot() throws -> HostSnapshot {
        var s = HostSnapshot()
        s.passwd = try passwd.map { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 7, let uid = Int(f[2]), let gid = Int(f[3]) else { throw FixtureError("passwd: \(line)") }
            return PasswdEntry(name: f[0], uid: uid, gid: gid, gecos: f[4], home: f[5], shell: f[6])
        }
        s.groups = try groups.map { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4, let gid = Int(f[2]) else { throw FixtureError("group: \(line)") }
            return GroupEntry(name: f[0], gid: gid, members: f[3].split(separator: ",").map(String.init))
        }
        for (path, p) in paths {
            guard let kind = PathState.Kind(rawValue: p.kind) else { throw FixtureError("\(path): kind \(p.kind)") }
            let owner = (p.owner ?? "0:0").split(separator: ":").compactMap { Int($0) }
            guard owner.count == 2, let mode = UInt32(p.mode ?? "0", radix: 8) else {
                throw FixtureError("\(path): mode \(p.mode ?? "") or owner \(p.owner ?? "")")
            }
            s.paths[path] = PathState(
                kind: kind,
                mode: mode,
                uid: owner[0],
                gid: owner[1],
                linkTarget: p.target,
                content: p.content.map { Data($0.utf8) }
            )
        }
        s.enabledUnits = Set(enabledUnits ?? [])
        s.activeUnits = Set(activeUnits ?? [])
        s.systemdRunning = systemdRunning ?? false
        if let state { s.state = state }
        return s
    }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = "host.json: " + d }
    }
}
