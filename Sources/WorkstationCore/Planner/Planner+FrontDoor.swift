import Foundation

extension Planner {
    /// The dispatcher's system account (`sysusers.d(5)` file, then `systemd-sysusers`), the firewall ruleset of the
    /// per-person instance ports (`FrontDoor.ruleset`, from every unit's `port_range`) and the unit that loads it,
    /// enabled and started. A ruleset or unit that changed under a running firewall is loaded again at once
    /// (`ExecReload` replaces the table in one transaction); an enabled firewall that is not running is started.
    func frontDoorChanges(_ o: HostSnapshot, _ host: SetupHostObservation) -> [Change] {
        var out: [Change] = []
        let sysusers = systemFile(
            FrontDoor.sysusersPath,
            Data(FrontDoor.sysusers.utf8),
            host,
            "the dispatcher's system account (sysusers.d)",
            vendorCopy: FrontDoor.vendorSysusersPath
        )
        out += sysusers
        if o.account(FrontDoor.dispatchAccount) == nil {
            out.append(
                Change(
                    id: .account(FrontDoor.dispatchAccount),
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary:
                        "create system account \(FrontDoor.dispatchAccount) (systemd-sysusers; the firewall names it)",
                    fields: [FieldChange("account", nil, FrontDoor.dispatchAccount)],
                    action: .createSystemAccounts(config: (FrontDoor.sysusersPath as NSString).lastPathComponent),
                    dependsOn: sysusers.map(\.id)
                )
            )
        }
        let unitPath = joinPath(unitSearchPath[0], FrontDoor.firewallUnit)
        let files =
            systemFile(
                FrontDoor.rulesetPath,
                Data(FrontDoor.ruleset(units: settings.units).utf8),
                host,
                "the firewall of the instance ports (\(FrontDoor.portRanges(settings.units).map { "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")))"
            )
            + systemFile(
                unitPath,
                Data(FrontDoor.firewallService().utf8),
                host,
                "the unit that loads the firewall",
                vendorCopy: joinPath(Self.vendorUnitDirectory, FrontDoor.firewallUnit)
            )
        out += files
        let deps = out.map(\.id)
        if !o.enabledUnits.contains(FrontDoor.firewallUnit) {
            out.append(
                Change(
                    id: .unit(FrontDoor.firewallUnit),
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: o.systemdRunning
                        ? "enable and start \(FrontDoor.firewallUnit)"
                        : "enable \(FrontDoor.firewallUnit) (not started: no running systemd under this root)",
                    fields: [FieldChange("enabled", "no", "yes")],
                    action: .enableUnit(name: FrontDoor.firewallUnit),
                    dependsOn: deps
                )
            )
        } else if o.systemdRunning && !o.activeUnits.contains(FrontDoor.firewallUnit) {
            out.append(
                Change(
                    id: .unit(FrontDoor.firewallUnit),
                    user: nil,
                    kind: .update,
                    safety: .additive,
                    summary:
                        "start \(FrontDoor.firewallUnit) (enabled, but not running: the instance ports are open to every account)",
                    fields: [FieldChange("active", "no", "yes")],
                    action: .startUnit(name: FrontDoor.firewallUnit),
                    dependsOn: deps
                )
            )
        } else if o.systemdRunning && !files.isEmpty {
            out.append(
                Change(
                    id: .reload(FrontDoor.firewallUnit),
                    user: nil,
                    kind: .update,
                    safety: .derived,
                    summary: "reload \(FrontDoor.firewallUnit), so the regenerated ruleset applies",
                    fields: [FieldChange("reload", nil, "try-reload-or-restart")],
                    action: .reloadUnit(name: FrontDoor.firewallUnit),
                    dependsOn: deps
                )
            )
        }
        return out
    }
}
