import Testing

@testable import MessageStore

@Suite("Duration conversions for the C client")
struct DurationConversionTests {
    @Test func ordinaryDurations() {
        #expect(Duration.milliseconds(1500).milliseconds == 1500)
        #expect(Duration.microseconds(1).milliseconds == 1)
        #expect(Duration.zero.milliseconds == 0)
        #expect(Duration.milliseconds(1500).nanoseconds == 1_500_000_000)
        #expect(Duration.nanoseconds(7).nanoseconds == 7)
    }

    @Test func hugeDurationsClampInsteadOfTrapping() {
        // Reachable through any public `timeout:` parameter.
        let huge = Duration.seconds(9_223_372_036) + .milliseconds(900)
        #expect(huge.nanoseconds == .max)
        #expect(Duration.seconds(Int64.max).nanoseconds == .max)
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
        #expect(Duration.seconds(Int64.min).nanoseconds == .min)
        #expect(Duration.seconds(Int64.min).milliseconds == .min)
        #expect(MonotonicClock.deadline(after: huge) > UInt64(Int64.max))
        #expect(MonotonicClock.deadline(after: .seconds(1)) > MonotonicClock.now())
    }
}
