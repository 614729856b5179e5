/// A place in an input file, 1-based, as compilers print it.
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The file as the operator named it (not resolved), e.g. `roster.yaml`.
    public var file: String
    /// Line, starting at 1; 0 when unknown.
    public var line: Int
    /// Column in Unicode scalars, starting at 1; 0 when unknown.
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String {
        line > 0 ? "\(file):\(line):\(column)" : file
    }
}

/// One problem found in an input file: `FILE:LINE:COL: error: MESSAGE`.
public struct Diagnostic: Sendable, Hashable, Codable, CustomStringConvertible {
    public var location: SourceLocation
    /// Lower-case sentence saying what is wrong and what to do.
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    /// One line: the location and message with every control, format and separator character escaped (`printable`).
    public var description: String { "\(printable(location.description)): error: \(printable(message))" }
}

/// Every problem found in the inputs, reported at once. Nothing has been changed when this is thrown.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    /// What apply ran although the inputs failed a host check: only the revocation of people who left the roster
    /// (`Engine`); empty for every other failure.
    public var revoked: [String] = []

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics.sorted {
            ($0.location.file, $0.location.line, $0.location.column) < (
                $1.location.file, $1.location.line, $1.location.column
            )
        }
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}
