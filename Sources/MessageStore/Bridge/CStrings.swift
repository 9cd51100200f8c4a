#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Calls `body` with a C array of NUL-terminated copies of `strings`, valid only inside `body`.
func withCStringArray<R>(
    _ strings: [String],
    _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>) throws(MessageStoreError) -> R
) throws(MessageStoreError) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(copies.count, 1))
    defer { array.deallocate() }
    for (index, copy) in copies.enumerated() {
        array[index] = UnsafePointer(copy)
    }
    return try body(array)
}

extension Duration {
    /// Whole milliseconds, at least 1 for any positive duration (cnats treats 0 as "no wait"),
    /// clamped to Int64.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        let (value, sumOverflow) = product.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        if overflow || sumOverflow { return seconds < 0 ? .min : .max }
        return value == 0 && attoseconds > 0 ? 1 : value
    }

    /// Whole nanoseconds, clamped to Int64.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, sumOverflow) = product.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow || sumOverflow { return seconds < 0 ? .min : .max }
        return sum
    }
}
