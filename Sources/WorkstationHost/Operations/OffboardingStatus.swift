import Foundation
import WorkstationCore

/// One person mid-offboarding, for `workstation status` and `workstation metrics`: they left the roster, and
/// `state.json` still records their account (the archive stage, the last one, drops it). From the state file, the
/// account databases and `/proc` only; spawns nothing.
public struct OffboardingRow: Sendable, Hashable, Codable {
    public var osUser: String
    /// The uid state recorded for the account.
    public var uid: Int
    /// The account now (`AccountState`): `expired` once the cut ran, `active` before it.
    public var account: AccountState
    /// Stages recorded complete, in order (`cut`, `revoke`).
    public var done: [OffboardStage]
    /// True when a cut was started and stopped half-way (run it again).
    public var cutIncomplete: Bool
    /// The stage to run next.
    public var nextStage: OffboardStage
    /// When the cut and the revoke stages were recorded, seconds since 1970; nil when not run.
    public var cutTime: Double?
    public var revokeTime: Double?
    /// Processes running as the account now (0 after a complete cut).
    public var processes: Int

    /// The command that runs the next stage (the archive stage needs `--confirm USER`), without `--root` and the
    /// input options: the caller appends those of its own run.
    public var command: String {
        "workstation offboard \(osUser) --stage \(nextStage.rawValue)\(nextStage == .archive ? " --confirm \(osUser)" : "")"
    }

    /// The last stage recorded, in words: `none`, `cut (incomplete)`, `cut`, `revoke`.
    public var stageWords: String {
        if let last = done.last { return last.rawValue }
        return cutIncomplete ? "cut (incomplete)" : "none"
    }

    /// Everyone mid-offboarding, sorted by os_user: each account `state.json` records (workstation made it) whose
    /// os_user is not in the roster.
    /// - Parameters:
    ///   - usage: per-uid process figures (`UserUsage.byUid`).
    ///   - today: days since 1970-01-01, for the account's expiry.
    public static func pending(
        roster: Roster,
        snapshot snap: HostSnapshot,
        usage: [Int: UserUsage],
        today: Int
    ) -> [OffboardingRow] {
        let inRoster = Set(roster.entries.map(\.osUser))
        return snap.state.accounts.keys.filter { !inRoster.contains($0) }.sorted().map { name in
            let record = snap.state.offboarding[name]
            let uid = snap.state.accounts[name]?.uid ?? snap.account(name)?.uid ?? -1
            return OffboardingRow(
                osUser: name,
                uid: uid,
                account: AccountState.of(name, snap, today: today),
                done: OffboardStage.allCases.filter { record?.done($0) == true },
                cutIncomplete: record?.cut.map { !$0.completed } ?? false,
                nextStage: record?.nextStage ?? .cut,
                cutTime: record?.cut?.time,
                revokeTime: record?.revoke?.time,
                processes: usage[uid]?.processes ?? 0
            )
        }
    }

    /// The status block: a heading and one aligned line per person; empty when nobody is mid-offboarding.
    /// - Parameter options: the `--roster`/`--settings`/`--root` options of this run, appended to each NEXT command.
    public static func table(_ rows: [OffboardingRow], options: String = "") -> String {
        guard !rows.isEmpty else { return "" }
        let header = ["USER", "UID", "ACCOUNT", "DONE", "SINCE", "PROCESSES", "NEXT"]
        let lines = rows.map { r in
            [
                r.osUser, String(r.uid), r.account.rawValue, r.stageWords,
                (r.revokeTime ?? r.cutTime).map(utcDay) ?? "-",
                String(r.processes), r.command + options,
            ]
        }
        var widths = header.map(\.count)
        for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
        func fmt(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ")
        }
        return "\nMid-offboarding (left the roster, not archived; run NEXT):\n"
            + ([fmt(header)] + lines.map(fmt)).joined(separator: "\n") + "\n"
    }

    /// The row as JSON: `os_user`, `uid`, `account`, `done` (stage names), `cut_incomplete`, `next_stage`,
    /// `cut_time`/`revoke_time` (seconds since 1970 or null), `processes`, `command`.
    public func jsonObject(options: String = "") -> [String: Any] {
        [
            "os_user": osUser, "uid": uid, "account": account.rawValue, "done": done.map(\.rawValue),
            "cut_incomplete": cutIncomplete,
            "next_stage": nextStage.rawValue, "cut_time": cutTime ?? NSNull(), "revoke_time": revokeTime ?? NSNull(),
            "processes": processes, "command": command + options,
        ]
    }

    /// `YYYY-MM-DD` (UTC) of a time in seconds since 1970.
    static func utcDay(_ t: Double) -> String {
        ISO8601DateFormatter.string(
            from: Date(timeIntervalSince1970: t),
            timeZone: TimeZone(identifier: "UTC")!,
            formatOptions: [.withFullDate]
        )
    }
}
