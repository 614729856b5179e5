import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Readers of the derived files (the dispatcher, the ttyd login shim) see only whole versions while apply rewrites
/// them, and an invalid roster leaves the last good versions in place.
@Suite(.serialized, .enabled(if: slowSuitesEnabled, "slow: skipped while WORKSTATION_SKIP_SLOW is set"))
struct RegenerationReaderTests {
    final class Reader: @unchecked Sendable {
        let paths: [String]
        let valid: [[Data]]
        let lock = NSLock()
        var reads = 0
        var bad: [String] = []
        var seen: [Set<Int>]
        var stop = false
        init(paths: [String], valid: [[Data]]) {
            self.paths = paths
            self.valid = valid
            seen = paths.map { _ in [] }
        }
        func loop() {
            while !lock.withLock({ stop }) {
                for (i, p) in paths.enumerated() {
                    guard let d = FileManager.default.contents(atPath: p) else {
                        lock.withLock { bad.append("\(p) missing") }
                        continue
                    }
                    if let v = valid[i].firstIndex(of: d) {
                        lock.withLock {
                            seen[i].insert(v)
                            reads += 1
                        }
                    } else {
                        lock.withLock { bad.append("\(p): \(d.count) bytes, not a whole version") }
                    }
                }
            }
        }
    }

    @Test func readersSeeWholeVersionsAcrossAThousandRegenerations() throws {
        let dir = try TempRoot()
        let inputs = try TempRoot()
        let root = HostRoot(dir.path)
        try Fixture.seed(dir)
        let count = 8
        try inputs.write("/a.yaml", Fixture.roster(count: count, authentikPrefix: "id-"))
        try inputs.write("/b.yaml", Fixture.roster(count: count, authentikPrefix: "ak-"))
        let a = try Engine.load(InputPaths(roster: inputs.file("/a.yaml"), settings: Fixture.settingsPath), root: root)
        let b = try Engine.load(InputPaths(roster: inputs.file("/b.yaml"), settings: Fixture.settingsPath), root: root)
        let runner = ProcessRunner()
        let files = ["/etc/ttyd-user-map", "/etc/t3-serve/dispatch.json"]
        var versions: [[Data]] = [[], []]
        for loaded in [a, b] {
            let o = try Engine.apply(loaded, root: root, runner: runner)
            try #require(o.succeeded, "\(o.report.failed.map { $0.error })")
            for (i, f) in files.enumerated() { versions[i].append(try #require(root.read(f))) }
        }
        #expect(versions[0][0] != versions[0][1] && versions[1][0] != versions[1][1])
        let reader = Reader(paths: files.map(root.path), valid: versions)
        let done = DispatchSemaphore(value: 0)
        Thread {
            reader.loop()
            done.signal()
        }.start()
        let spawnedBefore = runner.spawned
        for i in 0..<1000 {
            let o = try Engine.apply(i % 2 == 0 ? a : b, root: root, runner: runner)
            if !o.succeeded {
                Issue.record("regeneration \(i) failed: \(o.report.failed.map { $0.error })")
                break
            }
        }
        reader.lock.withLock { reader.stop = true }
        done.wait()
        #expect(
            runner.spawned == spawnedBefore,
            "regenerating derived files spawned \(runner.spawned - spawnedBefore) processes"
        )
        #expect(reader.bad.isEmpty, "\(reader.bad.count) bad reads, first: \(reader.bad.prefix(5))")
        #expect(reader.reads > 1000, "the reader ran only \(reader.reads) times")
        #expect(
            reader.seen.allSatisfy { $0 == [0, 1] },
            "the reader should have seen both versions of both files: \(reader.seen)"
        )

        // An invalid roster: error, and the files (indeed the whole root) stay as the last good apply left them.
        let before = TreeSnapshot(dir.path)
        try inputs.write(
            "/bad.yaml",
            Fixture.roster(count: count) + "  Bad User: { authentik_user: x, k8s_user: x, tier: power-user }\n"
        )
        let r = try CLI.run([
            "apply", "--roster", inputs.file("/bad.yaml"), "--settings", Fixture.settingsPath, "--root", dir.path,
        ])
        #expect(r.status == 1 && r.stderr.contains("contains whitespace"), "\(r.stderr)")
        #expect(TreeSnapshot(dir.path) == before)
    }
}
