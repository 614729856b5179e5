import Dispatch

// The one way workstation spreads work over threads: `DispatchQueue.concurrentPerform` (Dispatch, "Performing
// Loop Iterations Concurrently"), the calling thread taking part, with each result written to its own slot of one
// buffer. No slot is written by two iterations, so no lock is needed and no result is copied.

/// Runs `body(i)` for every `i` in `0..<count` at once and returns the results in index order. With `count` 1 the
/// body runs on the calling thread alone; `count` 0 returns `[]`.
public func parallelMap<T>(count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    guard count > 1 else { return count == 1 ? [body(0)] : [] }
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        let slots = Slots(buffer)
        DispatchQueue.concurrentPerform(iterations: count) { i in
            (slots.buffer.baseAddress! + i).initialize(to: body(i))
        }
        initialized = count
    }
}

/// Updates every element of `items` in place at once: `body(i, &items[i])`, each element by one iteration. An
/// element is changed where it lies (a dictionary or array element that no one else references grows without a copy).
public func parallelUpdate<T>(_ items: inout [T], _ body: @Sendable (Int, inout T) -> Void) {
    guard items.count > 1 else {
        if !items.isEmpty { body(0, &items[0]) }
        return
    }
    items.withUnsafeMutableBufferPointer { buffer in
        let slots = Slots(buffer)
        DispatchQueue.concurrentPerform(iterations: buffer.count) { i in body(i, &slots.buffer[i]) }
    }
}

/// Runs `first` and `second` at once and returns both results. When both throw, `second`'s error is the one thrown
/// (callers put the input checks there: they are what a person must fix). Non-throwing closures make a
/// non-throwing call (`E` is `Never`).
public func concurrently<A, B, E: Error>(
    _ first: @Sendable () throws(E) -> A,
    _ second: @Sendable () throws(E) -> B
) throws(E) -> (A, B) {
    var a: Result<A, E>?
    var b: Result<B, E>?
    withoutActuallyEscaping(first) { first in
        withoutActuallyEscaping(second) { second in
            let pair = Pair(
                first: { a = Result { () throws(E) in try first() } },
                second: { b = Result { () throws(E) in try second() } }
            )
            DispatchQueue.concurrentPerform(iterations: 2) { i in i == 0 ? pair.first() : pair.second() }
        }
    }
    let secondValue = try b!.get()
    return (try a!.get(), secondValue)
}

/// A buffer whose slots the iterations of one `concurrentPerform` write, each its own.
private struct Slots<T>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ buffer: UnsafeMutableBufferPointer<T>) { self.buffer = buffer }
}

/// Two closures that write one result each, run by the two iterations of one `concurrentPerform`.
private struct Pair: @unchecked Sendable {
    let first: () -> Void
    let second: () -> Void
}
