import Foundation
import Testing

@testable import WorkstationCore

/// The firewall of the instance ports and the dispatcher's account, as `setup-host` plans them.
@Suite struct FrontDoorSetupPlanTests {
    static func unit(_ t: String, _ r: ClosedRange<Int>) -> PerUserUnit {
        PerUserUnit(template: t, portRange: r, portEnvironment: "PORT")
    }

    @Test(arguments: [
        ([unit("t3-serve@", 3774...3873)], "3774-3873"),
        ([unit("t3-serve@", 3774...3873), unit("browser@", 4000...4099)], "3774-3873, 4000-4099"),
        // Sorted, and merged where ranges touch or overlap, so nft never sees overlapping intervals.
        ([unit("browser@", 4000...4099), unit("t3-serve@", 3774...3999)], "3774-4099"),
        ([unit("t3-serve@", 3774...3873), unit("browser@", 3800...3810)], "3774-3873"),
        ([unit("t3-serve@", 5000...5000)], "5000"),
    ])
    func everyUnitsPortRangeIsInBothChains(units: [PerUserUnit], ports: String) {
        let r = FrontDoor.ruleset(units: units)
        #expect(
            r.contains(
                "oifname \"lo\" tcp dport { \(ports) } meta skuid != { 0, \"workstation-dispatch\" } counter reject with tcp reset"
            ),
            "\(r)"
        )
        #expect(r.contains("iifname != \"lo\" tcp dport { \(ports) } counter drop"), "\(r)")
        // Loading the file again replaces the table in the same transaction.
        #expect(r.contains("table inet workstation\ndelete table inet workstation\n\ntable inet workstation {"))
    }

    @Test func theUnitLoadsReloadsAndStopsTheTableAfterSysusers() {
        let u = FrontDoor.firewallService()
        for line in [
            "Type=oneshot", "RemainAfterExit=yes", "ExecStart=/usr/sbin/nft -f /etc/workstation/firewall.nft",
            "ExecReload=/usr/sbin/nft -f /etc/workstation/firewall.nft",
            "ExecStop=/usr/sbin/nft delete table inet workstation",
            "After=local-fs.target systemd-sysusers.service", "Before=network-pre.target shutdown.target",
            "WantedBy=sysinit.target",
        ] {
            #expect(u.split(separator: "\n").contains(Substring(line)), "missing \(line)")
        }
        #expect(FrontDoor.sysusers.contains("\nu workstation-dispatch - \"workstation dispatcher\" -\n"))
        // The template setup-host installs starts after the firewall.
        let t = ReconcileUnits.perUserTemplate(Settings().primaryUnit)
        #expect(t.contains("After=network.target workstation-firewall.service"))
    }

    /// The observed state of the front door, and what setup-host must plan for it.
    enum Case: String, CaseIterable, Sendable {
        case fresh, accountExists, converged, enabledButStopped, rangeChangedWhileRunning, rangeChangedNoSystemd
    }

    func observe(_ c: Case, settings: Settings) -> (HostSnapshot, SetupHostObservation) {
        var snap = HostSnapshot()
        var host = SetupHostObservation()
        let current = Settings()
        func file(_ content: String) -> PathState {
            var st = PathState(kind: .file)
            st.mode = 0o100644
            st.content = Data(content.utf8)
            return st
        }
        if c != .fresh {
            snap.passwd = [
                PasswdEntry(name: "workstation-dispatch", uid: 998, gid: 998, home: "/", shell: "/usr/sbin/nologin")
            ]
        }
        if c != .fresh && c != .accountExists {
            host.files[FrontDoor.sysusersPath] = file(FrontDoor.sysusers)
            host.files[FrontDoor.rulesetPath] = file(FrontDoor.ruleset(units: current.units))
            host.files["/etc/systemd/system/workstation-firewall.service"] = file(FrontDoor.firewallService())
            snap.enabledUnits = ["workstation-firewall.service"]
            snap.systemdRunning = c != .rangeChangedNoSystemd
            snap.activeUnits = c == .enabledButStopped ? [] : ["workstation-firewall.service"]
        }
        return (snap, host)
    }

    @Test(arguments: Case.allCases)
    func setupHostPlansTheFrontDoor(_ c: Case) {
        var settings = Settings()
        if c == .rangeChangedWhileRunning || c == .rangeChangedNoSystemd { settings.units[0].portRange = 4000...4199 }
        let (snap, host) = observe(c, settings: settings)
        let (plan, _) = Planner(settings: settings).setupHostPlan(
            desired: DesiredState(users: []),
            observed: snap,
            host: host
        )
        let ids = plan.changes.map(\.id.description).filter {
            $0.contains("workstation-dispatch") || $0.contains("firewall") || $0.contains("sysusers")
        }
        let expected: [String] =
            switch c {
            case .fresh:
                [
                    "file:/etc/sysusers.d/workstation.conf", "account:workstation-dispatch",
                    "file:/etc/workstation/firewall.nft",
                    "file:/etc/systemd/system/workstation-firewall.service", "unit:workstation-firewall.service",
                ]
            case .accountExists:
                [
                    "file:/etc/sysusers.d/workstation.conf", "file:/etc/workstation/firewall.nft",
                    "file:/etc/systemd/system/workstation-firewall.service", "unit:workstation-firewall.service",
                ]
            case .converged: []
            case .enabledButStopped: ["unit:workstation-firewall.service"]
            case .rangeChangedWhileRunning:
                ["file:/etc/workstation/firewall.nft", "reload:workstation-firewall.service"]
            case .rangeChangedNoSystemd: ["file:/etc/workstation/firewall.nft"]
            }
        #expect(ids == expected, "\(c): \(plan.changes.map(\.summary))")
        let byID = Dictionary(plan.changes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        if c == .fresh {
            #expect(byID["account:workstation-dispatch"]?.action == .createSystemAccounts(config: "workstation.conf"))
            #expect(byID["account:workstation-dispatch"]?.safety == .additive)
            // The unit is enabled only once the account it names and the files exist.
            #expect(
                byID["unit:workstation-firewall.service"]?.dependsOn.map(\.description) == Array(expected.dropLast())
            )
            #expect(
                byID["unit:workstation-firewall.service"]?.action == .enableUnit(name: "workstation-firewall.service")
            )
        }
        if c == .enabledButStopped {
            #expect(
                byID["unit:workstation-firewall.service"]?.action == .startUnit(name: "workstation-firewall.service")
            )
        }
        if c == .rangeChangedWhileRunning {
            #expect(
                byID["reload:workstation-firewall.service"]?.action == .reloadUnit(name: "workstation-firewall.service")
            )
            #expect(
                byID["file:/etc/workstation/firewall.nft"]?.fields.contains { $0.after?.contains("4000-4199") == true }
                    == true
            )
        }
    }
}
