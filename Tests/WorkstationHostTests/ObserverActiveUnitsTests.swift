import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct ObserverActiveUnitsTests {
    /// systemd's runtime records: an `invocation:<unit>` link per running unit, among other files.
    @Test func activeUnitsAreTheInvocationRecords() throws {
        let temp = try TempRoot("obs")
        let dir = temp.path
        let units = dir + "/run/systemd/units"
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: units + "/invocation:t3-serve@alice.service",
            withDestinationPath: "ce973c6b2c4342d7bf6b1d17064bee2e"
        )
        try FileManager.default.createSymbolicLink(
            atPath: units + "/invocation:t3-serve@bob-dev.service",
            withDestinationPath: "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        )
        FileManager.default.createFile(
            atPath: units + "/log-level-max:t3-serve@carol.service",
            contents: Data("6".utf8)
        )
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        #expect(observer.activeUnits() == ["t3-serve@alice.service", "t3-serve@bob-dev.service"])
    }

    @Test func noRecordsMeansNothingRuns() {
        #expect(
            Observer(root: HostRoot("/nonexistent-\(UUID().uuidString)"), settings: Settings()).activeUnits().isEmpty
        )
    }
}
