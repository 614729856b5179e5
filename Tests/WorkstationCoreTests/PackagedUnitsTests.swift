import Foundation
import Testing

@testable import WorkstationCore

/// setup-host on a host where the Debian package is installed: the reconcile service runs the packaged binary, and a
/// unit or sysusers file the package ships with exactly the bytes setup-host would write is used where it is, with
/// no copy in /etc. Anything else (no package, a different vendor copy, an /etc copy already there, an explicit
/// `setup_host.binary`) keeps the /etc copy as before.
@Suite struct PackagedUnitsTests {
    enum Vendor: Sendable { case absent, identical, different }

    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var packagedBinary: Bool
        var binarySetting: String? = nil
        var vendor: Vendor
        /// An /etc copy of every file exists already, with the bytes setup-host would write.
        var etcCopies = false
        /// Expected: the ExecStart binary, and whether setup-host writes an /etc copy of the reconcile service (the
        /// timer, the firewall unit and the sysusers file follow the vendor copy alone: written unless identical).
        var binary: String
        var writes: Bool
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "built from source, no package",
            packagedBinary: false,
            vendor: .absent,
            binary: "/usr/local/bin/workstation",
            writes: true
        ),
        Case(
            name: "package installed",
            packagedBinary: true,
            vendor: .identical,
            binary: "/usr/bin/workstation",
            writes: false
        ),
        Case(
            name: "package binary, units from an older package",
            packagedBinary: true,
            vendor: .different,
            binary: "/usr/bin/workstation",
            writes: true
        ),
        Case(
            name: "package binary, no vendor units",
            packagedBinary: true,
            vendor: .absent,
            binary: "/usr/bin/workstation",
            writes: true
        ),
        // The packaged service runs /usr/bin/workstation: another binary needs an /etc copy of the service only.
        Case(
            name: "explicit binary beats the package",
            packagedBinary: true,
            binarySetting: "/opt/ws/bin/workstation",
            vendor: .identical,
            binary: "/opt/ws/bin/workstation",
            writes: true
        ),
        Case(
            name: "an /etc copy made before the package is kept up to date",
            packagedBinary: true,
            vendor: .identical,
            etcCopies: true,
            binary: "/usr/bin/workstation",
            writes: false
        ),
    ]

    static let files = ["workstation-reconcile.service", "workstation-reconcile.timer", "workstation-firewall.service"]

    @Test(arguments: cases) func packagedCopiesAndBinary(_ c: Case) throws {
        let yaml =
            "config_base: /srv/workstation/config-base\n"
            + (c.binarySetting.map { "setup_host: { binary: \($0) }\n" } ?? "")
        let settings = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
        let planner = Planner(settings: settings)
        // What the package ships (its service runs the packaged binary) and what setup-host would write.
        let shipped: [String: Data] = [
            "workstation-reconcile.service": Data(
                ReconcileUnits.service(binary: SetupHostSettings.packagedBinary).utf8
            ),
            "workstation-reconcile.timer": Data(ReconcileUnits.timer(interval: "15min").utf8),
            "workstation-firewall.service": Data(FrontDoor.firewallService().utf8),
        ]
        let contents: [String: Data] = [
            "workstation-reconcile.service": Data(ReconcileUnits.service(binary: c.binary).utf8),
            "workstation-reconcile.timer": Data(ReconcileUnits.timer(interval: "15min").utf8),
            "workstation-firewall.service": Data(FrontDoor.firewallService().utf8),
        ]
        var host = SetupHostObservation()
        if c.packagedBinary { host.files[SetupHostSettings.packagedBinary] = PathState(kind: .file, mode: 0o755) }
        func vendorBytes(_ d: Data) -> Data? {
            switch c.vendor {
            case .absent: nil
            case .identical: d
            case .different: d + Data("# from an older package\n".utf8)
            }
        }
        for name in Self.files {
            if let v = vendorBytes(shipped[name]!) {
                host.files["/usr/lib/systemd/system/\(name)"] = PathState(kind: .file, mode: 0o644, content: v)
            }
            if c.etcCopies {
                host.files["/etc/systemd/system/\(name)"] = PathState(
                    kind: .file,
                    mode: 0o644,
                    content: contents[name]!
                )
            }
        }
        if let v = vendorBytes(Data(FrontDoor.sysusers.utf8)) {
            host.files[FrontDoor.vendorSysusersPath] = PathState(kind: .file, mode: 0o644, content: v)
        }
        if c.etcCopies {
            host.files[FrontDoor.sysusersPath] = PathState(
                kind: .file,
                mode: 0o644,
                content: Data(FrontDoor.sysusers.utf8)
            )
        }

        #expect(planner.reconcileBinary(host) == c.binary)
        let (plan, _) = planner.setupHostPlan(desired: DesiredState(), observed: HostSnapshot(), host: host)
        let ids = Set(plan.changes.map(\.id.description))
        // An /etc copy that already holds the right bytes needs no change either way.
        #expect(ids.contains("file:/etc/systemd/system/workstation-reconcile.service") == (c.writes && !c.etcCopies))
        let others = c.vendor != .identical && !c.etcCopies
        for path in Self.files.dropFirst().map({ "/etc/systemd/system/\($0)" }) + [FrontDoor.sysusersPath] {
            #expect(ids.contains("file:\(path)") == others, "\(path)")
        }
        if c.writes && !c.etcCopies,
            case .writeFile(_, let data, _)? = plan.changes.first(where: {
                $0.id == "file:/etc/systemd/system/workstation-reconcile.service"
            })?.action
        {
            #expect(String(decoding: data, as: UTF8.self).contains("ExecStart=\(c.binary) apply\n"))
        }
        // Enabling the timer and the firewall and creating the account are planned whoever ships the files.
        #expect(
            ids.isSuperset(of: [
                "unit:workstation-reconcile.timer", "unit:workstation-firewall.service", "account:workstation-dispatch",
            ])
        )
    }

    /// The watched paths include the packaged binary and the vendor copies, so the observation above is what a
    /// host run reads.
    @Test func setupHostWatchesTheVendorCopies() {
        let watched = Set(Planner(settings: Settings()).setupHostWatchedPaths().map(\.path))
        #expect(
            watched.isSuperset(
                of: Self.files.map { "/usr/lib/systemd/system/\($0)" } + [
                    FrontDoor.vendorSysusersPath, SetupHostSettings.packagedBinary,
                ]
            )
        )
    }
}
