import Foundation
import Synchronization

@testable import WorkstationHost

/// Records every command (systemctl and apt-get must not reach this machine); runs the real tool only when
/// `passThrough` names it (setfacl), answers 0 otherwise.
final class RecordingRunner: CommandRunner {
    let passThrough: Set<String>
    private let log = Mutex<[[String]]>([])
    private let real = ProcessRunner()
    init(passThrough: Set<String> = []) { self.passThrough = passThrough }
    var commands: [[String]] { log.withLock { $0 } }
    var spawned: Int { real.spawned }
    func run(_ argv: [String], environment: [String: String], stdin: Data?) throws -> CommandResult {
        log.withLock { $0.append(argv + environment.sorted { $0.key < $1.key }.map { "env:\($0.key)=\($0.value)" }) }
        if passThrough.contains(argv[0]) { return try real.run(argv, environment: environment, stdin: stdin) }
        return CommandResult(status: 0, stdout: "", stderr: "")
    }
}
