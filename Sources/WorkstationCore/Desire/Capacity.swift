import Foundation

/// The figures of `/proc/meminfo` capacity needs, in bytes (`proc(5)`: values are written in kB, meaning KiB).
public struct MemoryInfo: Sendable, Hashable, Codable {
    /// `MemTotal`: usable physical memory.
    public var total: UInt64
    /// `MemAvailable`: estimate of memory available to new work without swapping; nil on kernels without it.
    public var available: UInt64?
    /// `SwapTotal`.
    public var swapTotal: UInt64
    /// `SwapFree`.
    public var swapFree: UInt64

    public init(total: UInt64, available: UInt64?, swapTotal: UInt64, swapFree: UInt64) {
        self.total = total
        self.available = available
        self.swapTotal = swapTotal
        self.swapFree = swapFree
    }

    /// Parses `/proc/meminfo` (`Key:   value kB` per line). Returns nil when `MemTotal` is missing, so a stray or
    /// truncated file reads as "capacity unknown" rather than as a host with no memory. A missing `SwapTotal`
    /// reads as 0 (no swap).
    public static func parse(_ data: Data) -> MemoryInfo? {
        var values: [String: UInt64] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let fields = line[line.index(after: colon)...].split(separator: " ")
            guard let first = fields.first, let n = UInt64(first) else { continue }
            let unit = fields.count > 1 ? fields[1].lowercased() : ""
            let (v, overflow) = n.multipliedReportingOverflow(by: unit == "kb" ? 1024 : 1)
            if !overflow { values[key] = v }
        }
        guard let total = values["MemTotal"] else { return nil }
        return MemoryInfo(
            total: total,
            available: values["MemAvailable"],
            swapTotal: values["SwapTotal"] ?? 0,
            swapFree: values["SwapFree"] ?? 0
        )
    }
}

/// One line of a pressure stall file, `some` or `full` (kernel `Documentation/accounting/psi.rst`).
public struct PressureLine: Sendable, Hashable, Codable {
    /// Share of wall time stalled over the last 10, 60 and 300 seconds, as a ratio 0...1 (the file prints percent).
    public var avg10: Double
    public var avg60: Double
    public var avg300: Double
    /// Total stall time since boot, seconds (the file prints microseconds).
    public var totalSeconds: Double
}

/// `/proc/pressure/<resource>`: the `some` line and, where the kernel writes it, the `full` line.
public struct PressureStall: Sendable, Hashable, Codable {
    public var some: PressureLine?
    public var full: PressureLine?

    /// Parses `some avg10=0.12 avg60=0.05 avg300=0.01 total=12345` lines; unknown or malformed lines are skipped.
    /// Returns nil when neither line parses.
    public static func parse(_ data: Data) -> PressureStall? {
        var out = PressureStall()
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard let kind = parts.first else { continue }
            var kv: [String: Double] = [:]
            for p in parts.dropFirst() {
                let pair = p.split(separator: "=", maxSplits: 1)
                if pair.count == 2, let n = Double(pair[1]) { kv[String(pair[0])] = n }
            }
            guard let a10 = kv["avg10"], let a60 = kv["avg60"], let a300 = kv["avg300"], let total = kv["total"] else {
                continue
            }
            let l = PressureLine(
                avg10: a10 / 100,
                avg60: a60 / 100,
                avg300: a300 / 100,
                totalSeconds: total / 1_000_000
            )
            if kind == "some" { out.some = l } else if kind == "full" { out.full = l }
        }
        return out.some == nil && out.full == nil ? nil : out
    }
}

/// What capacity needs of one process, from `/proc/<pid>/status` and `/proc/<pid>/stat` (`proc(5)`).
public struct ProcessSample: Sendable, Hashable, Codable {
    public var pid: Int
    /// `Name:` (the command name, at most 15 bytes).
    public var name: String
    /// Real uid, the first field of `Uid:`.
    public var uid: Int
    /// `VmRSS:` in bytes; 0 for kernel threads, which have none.
    public var residentBytes: UInt64
    /// Session id (field 6 of `stat`), nil when `stat` was not readable.
    public var session: Int?
    /// Controlling terminal (field 7 of `stat`, `tty_nr`); 0 when the process has none.
    public var tty: Int
    /// `Threads:`, the process's tasks as the pids controller and `TasksMax=` count them; 1 when absent.
    public var threads: Int = 1

    public init(pid: Int, name: String, uid: Int, residentBytes: UInt64, session: Int? = nil, tty: Int = 0) {
        self.pid = pid
        self.name = name
        self.uid = uid
        self.residentBytes = residentBytes
        self.session = session
        self.tty = tty
    }

    /// Parses a process's `status` (required) and `stat` (optional). Returns nil when `status` has no `Uid:` line.
    public static func parse(pid: Int, status: Data, stat: Data?) -> ProcessSample? {
        var name = ""
        var uid: Int?
        var rss: UInt64 = 0
        var threads = 1
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon]
            let rest = line[line.index(after: colon)...]
            switch key {
            case "Name": name = rest.trimmingCharacters(in: .whitespaces)
            case "Uid": uid = rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            case "Threads": threads = Int(rest.trimmingCharacters(in: .whitespaces)).map { max($0, 1) } ?? 1
            case "VmRSS":
                let f = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if let n = f.first.flatMap({ UInt64($0) }) {
                    rss = n * (f.count > 1 && f[1].lowercased() == "kb" ? 1024 : 1)
                }
            default: break
            }
        }
        guard let uid else { return nil }
        var sample = ProcessSample(pid: pid, name: name, uid: uid, residentBytes: rss)
        sample.threads = threads
        // `pid (comm) state ppid pgrp session tty_nr ...`: comm may hold spaces and parentheses, so fields are
        // counted after the last ')'.
        if let stat, let text = String(data: stat, encoding: .utf8), let close = text.lastIndex(of: ")") {
            let f = text[text.index(after: close)...].split(separator: " ")
            if f.count > 4, let session = Int(f[3]), let tty = Int(f[4]) {
                sample.session = session
                sample.tty = tty
            }
        }
        return sample
    }
}

/// One user's place in the admission arithmetic.
public struct BudgetLine: Sendable, Hashable, Codable {
    public var osUser: String
    public var budget: MemoryBudget
    /// True when the person has no account yet: onboarding them is what the gate decides.
    public var isNew: Bool
    public init(osUser: String, budget: MemoryBudget, isNew: Bool) {
        self.osUser = osUser
        self.budget = budget
        self.isNew = isNew
    }
}

/// The admission arithmetic (docs/capacity.md): the sum of the `MemoryMax` budgets of every provisioned person
/// (existing and new) must not exceed physical memory + swap - reserve, and the roster may hold at most
/// `max_active_users` non-admin people. Pure; all figures are bytes.
public struct CapacityLedger: Sendable, Hashable {
    public var lines: [BudgetLine]
    /// nil when `/proc/meminfo` could not be read: capacity unknown.
    public var memory: MemoryInfo?
    public var settings: CapacitySettings

    public init(lines: [BudgetLine], memory: MemoryInfo?, settings: CapacitySettings) {
        self.lines = lines
        self.memory = memory
        self.settings = settings
    }

    /// Sum of `MemoryMax` over every line, saturating at `UInt64.max`.
    public var committed: UInt64 {
        lines.reduce(UInt64(0)) { acc, l in
            let (s, o) = acc.addingReportingOverflow(l.budget.max)
            return o ? .max : s
        }
    }

    /// Memory + swap - reserve, floored at 0; nil when capacity is unknown.
    public var limit: UInt64? {
        guard let m = memory else { return nil }
        let (sum, o) = m.total.addingReportingOverflow(m.swapTotal)
        let physical = o ? UInt64.max : sum
        return physical > settings.reserve ? physical - settings.reserve : 0
    }

    public var newUsers: [String] { lines.filter(\.isNew).map(\.osUser) }

    /// True when the budgets fit: committed <= limit (exactly at the limit fits).
    public var fits: Bool { limit.map { committed <= $0 } ?? true }

    /// True when the roster holds no more non-admin people than `max_active_users`.
    public var withinHeadcount: Bool { lines.count <= settings.maxActiveUsers }

    /// The arithmetic in one line: `alice 4G + bob 3G = 7G (7516192768 bytes) against memory 24G + swap 8G - reserve 12G = 20G (...)`.
    public var arithmetic: String {
        let terms = abbreviatedList(
            lines.map { "\($0.osUser) \(humanBytes($0.budget.max))\($0.isNew ? " (new)" : "")" },
            separator: " + "
        )
        var s = "MemoryMax budgets \(terms.isEmpty ? "(none)" : terms) = \(humanBytes(committed)) (\(committed) bytes)"
        if let m = memory, let limit {
            s +=
                "; limit = memory \(humanBytes(m.total)) + swap \(humanBytes(m.swapTotal)) - reserve \(humanBytes(settings.reserve))"
            s += " = \(humanBytes(limit)) (\(limit) bytes)"
        } else {
            s += "; limit unknown (no /proc/meminfo)"
        }
        return s
    }

    /// The refusals for this run: none unless someone is new. Over budget and over headcount are reported apart.
    public func refusals() -> [Refusal] {
        let new = newUsers
        guard !new.isEmpty else { return [] }
        let who = abbreviatedList(new, separator: ", ")
        var out: [Refusal] = []
        if !fits, let limit {
            out.append(
                Refusal(
                    gate: .capacity,
                    message: """
                        onboarding \(who) would commit \(humanBytes(committed)) of memory budgets, \(committed - limit) bytes over \
                        the limit: \(arithmetic); add swap or memory, lower budgets (capacity.budgets in workstation.yaml, or \
                        memory in the roster), or pass --allow-overcommit to onboard anyway
                        """
                )
            )
        }
        if !withinHeadcount {
            out.append(
                Refusal(
                    gate: .capacity,
                    message: """
                        onboarding \(who) would make \(lines.count) non-admin people, over max_active_users \
                        \(settings.maxActiveUsers); raise capacity.max_active_users in workstation.yaml once the host can carry \
                        them, offboard someone, or pass --allow-overcommit to onboard anyway
                        """
                )
            )
        }
        return out
    }
}

/// `items` joined by `separator`, the first `limit` of them only, then `and N more`: a refusal about a
/// thousand-person roster stays one readable line.
func abbreviatedList(_ items: [String], separator: String, limit: Int = 12) -> String {
    guard items.count > limit else { return items.joined(separator: separator) }
    return items.prefix(limit).joined(separator: separator) + "\(separator)and \(items.count - limit) more"
}

/// `4294967296` -> `4G`, `1536 MiB` -> `1.5G`: binary units, at most one decimal, for messages (not for systemd).
public func humanBytes(_ n: UInt64) -> String {
    for (suffix, mult) in [
        ("T", UInt64(1) << 40), ("G", UInt64(1) << 30), ("M", UInt64(1) << 20), ("K", UInt64(1) << 10),
    ] where n >= mult {
        if n % mult == 0 { return "\(n / mult)\(suffix)" }
        let tenths = (Double(n) / Double(mult) * 10).rounded() / 10
        return tenths == tenths.rounded() ? "\(Int(tenths))\(suffix)" : "\(tenths)\(suffix)"
    }
    return "\(n)B"
}
