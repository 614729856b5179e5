#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory tuning of the dispatcher's process (tuning only: no behaviour depends on it). The dispatcher is one
/// long-running process per host whose resident set is a target (under 30 MB, Benchmarks/dispatch/README.md);
/// most of it was pages of the binary the start-up touched once (relocations, symbols, the code of settings,
/// YAML and argument parsing). The malloc arenas are capped by the unit (`MALLOC_ARENA_MAX=2`), since the cap
/// must be set before the first thread allocates.
public enum ProcessMemory {
    #if os(Linux)
    /// A function of the C library by name (glibc's `malloc_trim` is not in the Glibc module); nil with another
    /// C library.
    private static func libc<F>(_ name: String, as type: F.Type) -> F? {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }
    #endif

    /// Hands the start-up's memory back: the heap's free pages (malloc_trim(3)), and the resident pages of every
    /// read-only executable file mapping (the binary's code and read-only data, the shared libraries'), which the
    /// start-up touched once: madvise(2) `MADV_DONTNEED` drops them from this process's page tables, and the pages
    /// used later are mapped again from the page cache on first use. Only `r-xp` mappings of files are touched:
    /// they are never written, so nothing is lost (a private page that was written would be). Returns the number of
    /// mappings released. Linux only; elsewhere 0.
    @discardableResult
    public static func releaseStartupPages() -> Int {
        #if os(Linux)
        if let trim = libc("malloc_trim", as: (@convention(c) (Int) -> Int32).self) { _ = trim(0) }
        guard let maps = fopen("/proc/self/maps", "r") else { return 0 }
        defer { fclose(maps) }
        var released = 0
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            // "start-end perms offset dev inode path"
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard parts.count == 6, parts[1] == "r-xp", parts[5].drop(while: { $0 == " " }).hasPrefix("/") else {
                continue
            }
            let bounds = parts[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                end > start, let address = UnsafeMutableRawPointer(bitPattern: start)
            else { continue }
            if madvise(address, Int(end - start), MADV_DONTNEED) == 0 { released += 1 }
        }
        return released
        #else
        return 0
        #endif
    }
}
