import Foundation

extension Planner {
    func secretGuard(_ host: SetupHostObservation, guidancePath: String, owned: [String]) -> [Diagnostic] {
        var out: [Diagnostic] = []
        func report(_ path: String, _ f: SecretGuard.Finding, _ what: String) {
            out.append(
                Diagnostic(
                    SourceLocation(file: host.display(path), line: f.line, column: f.line > 0 ? 1 : 0),
                    "\(what) \(f.message); \(SecretGuard.advice)"
                )
            )
        }
        if let g = host.guidance {
            for f in SecretGuard.scanText(String(decoding: g, as: UTF8.self)) {
                report(guidancePath, f, "the org guidance (copied into the managed layer)")
            }
        }
        var jsonFiles = host.otherDropIns
        let main = settings.setupHost.managedSettingsPath
        if !owned.contains(main), let data = host.file(main).content { jsonFiles[main] = data }
        for (path, data) in jsonFiles.sorted(by: { $0.key < $1.key }) {
            guard let obj = try? JSONSerialization.jsonObject(with: data), let v = ManagedValue(json: obj) else {
                continue
            }
            for f in SecretGuard.scan(v) {
                let line = lineOf(key: f.key, in: data)
                report(path, SecretGuard.Finding(key: f.key, why: f.why, line: line), "managed setting")
            }
        }
        for (path, data) in host.skelFiles.sorted(by: { $0.key < $1.key }) {
            let findings: [SecretGuard.Finding]
            if path.hasSuffix(".json"), let obj = try? JSONSerialization.jsonObject(with: data),
                let v = ManagedValue(json: obj)
            {
                findings = SecretGuard.scan(v).map {
                    SecretGuard.Finding(key: $0.key, why: $0.why, line: lineOf(key: $0.key, in: data))
                }
            } else {
                findings = SecretGuard.scanShell(String(decoding: data, as: UTF8.self))
            }
            for f in findings { report(path, f, "skel file (copied into every new home)") }
        }
        return out
    }

    /// 1-based line where the last component of a dotted key first appears quoted; 0 when not found.
    func lineOf(key: String, in data: Data) -> Int {
        let last = key.split(separator: ".").last.map { String($0.split(separator: "[").first ?? "") } ?? key
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        where line.contains("\"\(last)\"") {
            return i + 1
        }
        return 0
    }
}
