#if canImport(FoundationEssentials)
    package import FoundationEssentials
#else
    package import Foundation
#endif

/// The one ISO 8601 form `JSONEncoder` writes, `2024-01-02T03:04:05Z`, read without a calendar.
/// Every other string goes to `Date.ISO8601FormatStyle`, as in `JSONDecoder`.
package enum FastJSONDate {
    package static func parse(_ string: String) -> Date? {
        var string = string
        return string.withUTF8 { s -> Date? in
            guard s.count == 20, s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"), s[10] == UInt8(ascii: "T"),
                s[13] == UInt8(ascii: ":"), s[16] == UInt8(ascii: ":"), s[19] == UInt8(ascii: "Z")
            else { return nil }
            func number(_ start: Int, _ length: Int) -> Int? {
                var value = 0
                for k in start..<start + length {
                    let digit = s[k] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    value = value * 10 + Int(digit)
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                // Gregorian dates well after the Julian cutover, and no rolling over of fields.
                (1900...9999).contains(year), (1...12).contains(month), day >= 1,
                day <= daysInMonth(year, month), hour < 24, minute < 60, second < 60
            else { return nil }
            let days = daysSince1970(year: year, month: month, day: day)
            let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
            return Date(timeIntervalSince1970: Double(seconds))
        }
    }

    package static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    package static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the given Gregorian date (year 1900 or later).
    package static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        // Count from 1 March of year 0 so the leap day is the last day of the year.
        let y = month <= 2 ? year - 1 : year
        let m = month <= 2 ? month + 9 : month - 3
        let daysBeforeYear = 365 * y + y / 4 - y / 100 + y / 400
        let daysBeforeMonth = (153 * m + 2) / 5
        // 719_468 is the count from 0000-03-01 to 1970-01-01.
        return daysBeforeYear + daysBeforeMonth + day - 1 - 719_468
    }
}
