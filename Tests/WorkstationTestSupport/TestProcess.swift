import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a finished program left behind: its exit status and both outputs.
public struct ProcessOutput: Sendable {
    /// The exit status, or 128 + the signal number when a signal ended it (the shell's `$?`).
    public var status: Int32
    /// Standard output and standard error as bytes; empty when they were discarded.
    public var stdoutData: Data
    public var stderrData: Data
    /// The signal that ended the program, nil when it exited.
    public var signal: Int32?

    public init(status: Int32, stdout: String, stderr: String) {
        self.init(status: status, stdoutData: Data(stdout.utf8), stderrData: Data(stderr.utf8), signal: nil)
    }

    public init(status: Int32, stdoutData: Data, stderrData: Data, signal: Int32?) {
        self.status = status
        self.stdoutData = stdoutData
        self.stderrData = stderrData
        self.signal = signal
    }

    /// The outputs decoded as UTF-8 (invalid bytes replaced).
    public var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
    public var stderr: String { String(decoding: stderrData, as: UTF8.self) }
}

/// The one way tests run a program: the built `workstation`, a system tool (useradd with `--prefix`, git, openssl,
/// setpriv, curl, ...) or a shell script. A `TestProcess` starts when it is made and runs in the background until
/// `wait()`, so a test can read its output as it comes, signal it, or race another process against it; `run`
/// starts one and waits for it. Built on Foundation's `Process` (posix_spawn(3)); the child's standard input is
/// `/dev/null` unless given.
public final class TestProcess: @unchecked Sendable {
    /// Where standard input comes from.
    public enum Input: Sendable {
        /// `/dev/null`.
        case none
        /// The file at this path.
        case file(String)
        /// These bytes, then end of file.
        case bytes(Data)
    }

    private let process = Process()
    private let captures: Bool
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()
    private let readers = DispatchGroup()

    /// Starts `executable` with `arguments`.
    /// - Parameters:
    ///   - environment: the child's whole environment; nil inherits this process's (`inheritedEnvironment(adding:)`
    ///     adds to it).
    ///   - directory: the working directory; nil keeps this process's.
    ///   - captureOutput: false sends both outputs to `/dev/null` (for a child whose descendants may outlive it and
    ///     would otherwise hold the pipes open).
    /// - Throws: what `Process.run()` throws when the executable cannot be started.
    public init(
        _ executable: String,
        _ arguments: [String] = [],
        environment: [String: String]? = nil,
        directory: String? = nil,
        input: Input = .none,
        captureOutput: Bool = true
    ) throws {
        captures = captureOutput
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var feed: (Pipe, Data)?
        switch input {
        case .none: process.standardInput = FileHandle.nullDevice
        case .file(let path): process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        case .bytes(let data):
            let pipe = Pipe()
            process.standardInput = pipe
            feed = (pipe, data)
        }
        let outPipe = Pipe()
        let errPipe = Pipe()
        if captureOutput {
            process.standardOutput = outPipe
            process.standardError = errPipe
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        if let (pipe, data) = feed {
            // A writer of its own: a child that does not read its input must not block the test.
            Thread.detachNewThread {
                try? pipe.fileHandleForWriting.write(contentsOf: data)
                try? pipe.fileHandleForWriting.close()
            }
        }
        guard captureOutput else { return }
        for (pipe, isOut) in [(outPipe, true), (errPipe, false)] {
            readers.enter()
            Thread.detachNewThread { [self] in
                let handle = pipe.fileHandleForReading
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    lock.withLock {
                        if isOut { out.append(chunk) } else { err.append(chunk) }
                    }
                }
                readers.leave()
            }
        }
    }

    /// Runs `executable` to the end and returns what it left (parameters as for `init`).
    @discardableResult
    public static func run(
        _ executable: String,
        _ arguments: [String] = [],
        environment: [String: String]? = nil,
        directory: String? = nil,
        input: Input = .none,
        captureOutput: Bool = true
    ) throws -> ProcessOutput {
        try TestProcess(
            executable,
            arguments,
            environment: environment,
            directory: directory,
            input: input,
            captureOutput: captureOutput
        ).wait()
    }

    /// Runs `/bin/sh -c script` with a minimal environment (a fixed PATH, `LANG=C.UTF-8`, `HOME=/nonexistent`)
    /// plus `environment`.
    @discardableResult
    public static func shell(_ script: String, environment: [String: String] = [:]) throws -> ProcessOutput {
        var e = ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": "/nonexistent"]
        for (k, v) in environment { e[k] = v }
        return try run("/bin/sh", ["-c", script], environment: e)
    }

    /// This process's environment with `extra` added (an entry of `extra` wins).
    public static func inheritedEnvironment(adding extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(extra) { $1 }
    }

    /// The child's process id.
    public var pid: pid_t { process.processIdentifier }

    /// True until the child has exited (and been reaped by `wait()` or Foundation).
    public var isRunning: Bool { process.isRunning }

    /// Sends `signal` (default `SIGKILL`) to the child only, not to its descendants.
    public func signal(_ signal: Int32 = SIGKILL) { kill(pid, signal) }

    /// Standard output so far.
    public var stdoutSoFar: Data { lock.withLock { out } }

    /// Waits (polling every 10 ms, at most `timeout` seconds) until standard output holds a whole line, and returns
    /// the first one without its newline; nil when the child ended or the time ran out first.
    public func firstLine(timeout: Double = 20) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let data = stdoutSoFar
            if let nl = data.firstIndex(of: 0x0A) { return String(decoding: data[..<nl], as: UTF8.self) }
            if !process.isRunning { return nil }
            usleep(10_000)
        }
        return nil
    }

    /// Waits for the child to exit and, when captured, for both outputs to reach end of file.
    public func wait() -> ProcessOutput {
        process.waitUntilExit()
        if captures { readers.wait() }
        let signalled = process.terminationReason == .uncaughtSignal
        return lock.withLock {
            ProcessOutput(
                status: signalled ? 128 + process.terminationStatus : process.terminationStatus,
                stdoutData: out,
                stderrData: err,
                signal: signalled ? process.terminationStatus : nil
            )
        }
    }
}

/// Where this package lives, and what its build left: the examples and the built `workstation` binary.
public enum Repository {
    /// The package's root directory (the one holding Package.swift).
    public static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `Examples/` (the example roster and settings).
    public static var examples: URL { root.appendingPathComponent("Examples") }

    /// The `workstation` binary of the current build: `.build/debug/workstation`, else `.build/release/workstation`.
    public static var workstationBinary: String {
        for config in ["debug", "release"] {
            let p = root.appendingPathComponent(".build/\(config)/workstation").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root.appendingPathComponent(".build/debug/workstation").path
    }
}

extension TestProcess {
    /// Runs a shadow-utils account tool (`useradd`, `groupadd`, `usermod`... from /usr/sbin) on the temp root at
    /// `prefix` only: `--prefix` is always the first argument, so no test can edit this machine's accounts.
    @discardableResult
    public static func accountTool(_ name: String, prefix: String, _ arguments: [String]) throws -> ProcessOutput {
        try run("/usr/sbin/\(name)", ["--prefix", prefix] + arguments)
    }
}

/// The built `workstation` binary, run as an operator would: this process's environment plus `NO_COLOR=1`.
public enum CLI {
    /// Runs `workstation ARGS` to the end.
    /// - Parameter env: variables added to (or replacing) the inherited environment.
    @discardableResult
    public static func run(_ args: [String], env: [String: String] = [:]) throws -> ProcessOutput {
        try start(args, env: env).wait()
    }

    /// Starts `workstation ARGS` in the background (to kill it, or race another run against it).
    public static func start(_ args: [String], env: [String: String] = [:]) throws -> TestProcess {
        try TestProcess(
            Repository.workstationBinary,
            args,
            environment: TestProcess.inheritedEnvironment(adding: ["NO_COLOR": "1"].merging(env) { $1 })
        )
    }
}
