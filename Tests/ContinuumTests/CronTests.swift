import Continuum
import Foundation
import Testing

private func date(_ text: String) -> Date {
    try! Date(text, strategy: .iso8601)
}

private func utc(_ cron: String, after: String) throws -> String? {
    try CronExpression(cron).next(after: date(after), in: TimeZone(identifier: "UTC")!).map { $0.formatted(.iso8601) }
}

@Suite("Cron expressions")
struct CronTests {
    @Test("fields: numbers, ranges, steps, lists, names, macros, seconds")
    func fields() throws {
        #expect(try utc("0 6 * * *", after: "2026-11-30T05:59:00Z") == "2026-11-30T06:00:00Z")
        #expect(try utc("0 6 * * *", after: "2026-11-30T06:00:00Z") == "2026-12-01T06:00:00Z")
        #expect(try utc("*/15 9-17 * * MON-FRI", after: "2026-11-28T12:00:00Z") == "2026-11-30T09:00:00Z")  // Saturday → Monday
        #expect(try utc("*/15 9-17 * * MON-FRI", after: "2026-11-30T09:07:00Z") == "2026-11-30T09:15:00Z")
        #expect(try utc("5/20 * * * *", after: "2026-11-30T10:06:00Z") == "2026-11-30T10:25:00Z")
        #expect(try utc("0 0 1,15 JAN,jul *", after: "2026-01-02T00:00:00Z") == "2026-01-15T00:00:00Z")
        #expect(try utc("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == "2028-02-29T00:00:00Z")
        #expect(try utc("0 12 * * 7", after: "2026-11-30T00:00:00Z") == "2026-12-06T12:00:00Z")  // 7 is Sunday
        // Both day fields restricted: either matches (the 1st, or a Friday).
        #expect(try utc("0 0 1 * FRI", after: "2026-11-30T00:00:00Z") == "2026-12-01T00:00:00Z")
        #expect(try utc("0 0 1 * FRI", after: "2026-12-01T00:00:00Z") == "2026-12-04T00:00:00Z")
        // `*/2` in the day of month does not restrict for the either-day rule: every other day that is a Monday.
        #expect(try utc("0 0 */2 * MON", after: "2026-11-30T00:00:00Z") == "2026-12-07T00:00:00Z")
        #expect(try utc("@daily", after: "2026-11-30T10:00:00Z") == "2026-12-01T00:00:00Z")
        #expect(try utc("@hourly", after: "2026-11-30T10:00:00Z") == "2026-11-30T11:00:00Z")
        #expect(try utc("*/10 * * * * *", after: "2026-11-30T10:00:05Z") == "2026-11-30T10:00:10Z")
        #expect(try utc("0 0 30 2 *", after: "2026-01-01T00:00:00Z") == nil)
        // Late in a day, the times before the start are passed over, and the day turns.
        #expect(try utc("* * * * * *", after: "2026-11-30T23:59:58Z") == "2026-11-30T23:59:59Z")
        #expect(try utc("* * * * * *", after: "2026-11-30T23:59:59Z") == "2026-12-01T00:00:00Z")
        #expect(try utc("30 10 * * *", after: "2026-11-30T10:30:00Z") == "2026-12-01T10:30:00Z")
        #expect(try utc("30 10 * * *", after: "2026-11-30T10:29:59Z") == "2026-11-30T10:30:00Z")
        let next = try CronExpression("0 */6 * * *").next(3, after: date("2026-11-30T07:00:00Z"), in: TimeZone(identifier: "UTC")!)
        #expect(next.map { $0.formatted(.iso8601) } == ["2026-11-30T12:00:00Z", "2026-11-30T18:00:00Z", "2026-12-01T00:00:00Z"])
    }

    @Test("a wall-clock time the clocks skip does not fire; one they repeat fires once, at its first occurrence")
    func daylightSaving() throws {
        let newYork = TimeZone(identifier: "America/New_York")!
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that day.
        let spring = try CronExpression("30 2 * * *").next(after: date("2026-03-08T05:00:00Z"), in: newYork)
        #expect(spring?.formatted(.iso8601) == "2026-03-09T06:30:00Z")
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice; it fires at the first.
        let fall = try CronExpression("30 1 * * *")
        let first = fall.next(after: date("2026-11-01T04:00:00Z"), in: newYork)
        #expect(first?.formatted(.iso8601) == "2026-11-01T05:30:00Z")
        #expect(fall.next(after: first!, in: newYork)?.formatted(.iso8601) == "2026-11-02T06:30:00Z")
        // Local times in Paris: 06:00 is 05:00Z in winter and 04:00Z in summer.
        let paris = TimeZone(identifier: "Europe/Paris")!
        #expect(try CronExpression("0 6 * * *").next(after: date("2026-12-01T00:00:00Z"), in: paris)?.formatted(.iso8601) == "2026-12-01T05:00:00Z")
        #expect(try CronExpression("0 6 * * *").next(after: date("2026-07-01T00:00:00Z"), in: paris)?.formatted(.iso8601) == "2026-07-01T04:00:00Z")
    }

    @Test("a malformed expression is refused with invalidArgument naming the field", arguments: [
        ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day of month"), ("* * * 13 *", "month"),
        ("* * * * FUNDAY", "day of week"), ("*/0 * * * *", "step"), ("5-1 * * * *", "start is after its end"),
        ("* * *", "5 fields"), ("1,,2 * * * *", "empty"), ("1/2/3 * * * *", "more than one"),
    ])
    func malformed(expression: String, mentions: String) {
        do {
            _ = try CronExpression(expression)
            Issue.record("'\(expression)' parsed")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }
}
