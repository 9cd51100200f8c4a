extension UInt64 {
    /// `self * 10 + digit` when `byte` is an ASCII digit and the result fits; nil otherwise.
    /// The one step of reading a decimal number from bytes the server sent, which must never
    /// trap on a long or malformed one.
    @inline(__always)
    func appendingDecimalDigit(_ byte: UInt8) -> UInt64? {
        let digit = byte &- UInt8(ascii: "0")
        guard digit < 10 else { return nil }
        let (times, overflow1) = multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times.addingReportingOverflow(UInt64(digit))
        return overflow1 || overflow2 ? nil : sum
    }
}
