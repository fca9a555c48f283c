#if canImport(FoundationInternationalization)
public import FoundationEssentials
import FoundationInternationalization
#else
public import Foundation
#endif

/// A cron expression: when a schedule fires, as wall-clock times in a time zone.
///
/// Five fields — minute, hour, day of month, month, day of week — or six with seconds first:
///
/// ```swift
/// let nightly = try CronExpression("0 6 * * *")                 // 06:00 every day
/// let weekdays = try CronExpression("*/15 9-17 * * MON-FRI")    // every 15 minutes in office hours
/// let often = try CronExpression("*/10 * * * * *")              // every ten seconds
/// ```
///
/// Each field takes `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, and lists of
/// those separated by commas. Months and days of the week take names (`JAN`–`DEC`,
/// `SUN`–`SAT`); Sunday is 0 or 7. `?` means `*` in the day fields. `@yearly`, `@monthly`,
/// `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for their usual expressions. When both
/// day fields are restricted, a day matches if either does, as in Vixie cron; when one starts
/// with `*` (`*/2`, say), a day must match both.
///
/// Across daylight-saving changes, a wall-clock time that does not exist that day (the hour the
/// clocks skip) does not fire, and one that happens twice (the hour they repeat) fires once, at
/// its first occurrence.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written.
    public let description: String
    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    /// Days of the week, 0 (Sunday) to 6.
    let weekdays: Set<Int>
    /// Whether a day must match both day fields (one of them starts with `*` or is `?`) rather
    /// than either (both are restricted), as in Vixie cron.
    let daysMatchBoth: Bool
    /// The hours, minutes and seconds in order, for the search.
    private let hourList: [Int]
    private let minuteList: [Int]
    private let secondList: [Int]

    /// Parses `expression`.
    ///
    /// - Throws: ``ContinuumError/Code/invalidArgument`` naming the field that is wrong.
    public init(_ expression: String) throws(ContinuumError) {
        description = expression
        let macros = [
            "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
            "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
        ]
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        let text = macros[trimmed.lowercased()] ?? trimmed
        var fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw ContinuumError(
                .invalidArgument,
                "A cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first; '\(expression)' has \(fields.count).")
        }
        if fields.count == 5 { fields.insert("0", at: 0) }
        let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        seconds = try Self.field(fields[0], "second", 0...59, expression: expression)
        minutes = try Self.field(fields[1], "minute", 0...59, expression: expression)
        hours = try Self.field(fields[2], "hour", 0...23, expression: expression)
        days = try Self.field(fields[3], "day of month", 1...31, expression: expression, question: true)
        months = try Self.field(fields[4], "month", 1...12, names: monthNames, nameBase: 1, expression: expression)
        let weekdays = try Self.field(fields[5], "day of week", 0...7, names: dayNames, nameBase: 0, expression: expression, question: true)
        self.weekdays = Set(weekdays.map { $0 % 7 })
        // As in Vixie cron: when either day field starts with `*` (`*`, `*/2`) or is `?`, a day must
        // match both; when both are restricted, either will do.
        daysMatchBoth = [fields[3], fields[5]].contains { $0.hasPrefix("*") || $0 == "?" }
        hourList = hours.sorted()
        minuteList = minutes.sorted()
        secondList = seconds.sorted()
    }

    public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool { lhs.description == rhs.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    private static func field(
        _ text: String, _ what: String, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0, expression: String,
        question: Bool = false
    ) throws(ContinuumError) -> Set<Int> {
        func refuse(_ why: String) -> ContinuumError {
            ContinuumError(.invalidArgument, "The \(what) field '\(text)' of cron expression '\(expression)' \(why).")
        }
        func value(_ part: Substring) throws(ContinuumError) -> Int {
            if let number = Int(part) {
                guard range.contains(number) else { throw refuse("has \(number), outside \(range.lowerBound)–\(range.upperBound)") }
                return number
            }
            if let index = names.firstIndex(of: part.uppercased()) { return index + nameBase }
            throw refuse("has '\(part)', which is neither a number nor a name")
        }
        var result = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw refuse("has an empty list item") }
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw refuse("has more than one '/' in '\(item)'") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed > 0 else { throw refuse("has step '\(pieces[1])', which is not a positive number") }
                step = parsed
            }
            let base = pieces[0]
            var low: Int
            var high: Int
            if base == "*" || (question && base == "?") {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw refuse("has the range \(base), whose start is after its end") }
            } else {
                low = try value(base)
                // `a/n` means from a to the end in steps of n.
                high = pieces.count == 2 ? range.upperBound : low
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    /// The first time strictly after `date` at which the expression fires in `timeZone`, or
    /// `nil` when none comes within eight years (`0 0 30 2 *`, say).
    public func next(after date: Date, in timeZone: TimeZone) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        // Whole seconds: a slot is a second of the clock.
        let start = Date(timeIntervalSince1970: (date.timeIntervalSince1970 + 1).rounded(.down))
        let startDay = calendar.startOfDay(for: start)
        // On the first day, wall-clock times before the start's are passed over without asking
        // the calendar (which costs microseconds each): `* * * * * *` late in a day has 86,400.
        let first = calendar.dateComponents([.hour, .minute, .second], from: start)
        let firstTime = (first.hour ?? 0, first.minute ?? 0, first.second ?? 0)
        for offset in 0..<(366 * 8 + 2) {
            guard let day = calendar.date(byAdding: .day, value: offset, to: startDay) else { return nil }
            let parts = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
            guard let year = parts.year, let month = parts.month, let dayOfMonth = parts.day, let weekday = parts.weekday,
                months.contains(month), matches(day: dayOfMonth, weekday: weekday - 1)
            else { continue }
            for hour in hourList where offset > 0 || hour >= firstTime.0 {
                for minute in minuteList where offset > 0 || (hour, minute) >= (firstTime.0, firstTime.1) {
                    for second in secondList where offset > 0 || (hour, minute, second) >= firstTime {
                        let wanted = DateComponents(year: year, month: month, day: dayOfMonth, hour: hour, minute: minute, second: second)
                        guard let candidate = calendar.date(from: wanted), candidate >= start else { continue }
                        // A time the clocks skip comes back as another wall time: it does not fire.
                        let back = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: candidate)
                        guard back.day == dayOfMonth, back.hour == hour, back.minute == minute, back.second == second else { continue }
                        return candidate
                    }
                }
            }
        }
        return nil
    }

    /// The first `count` times after `date` at which the expression fires.
    public func next(_ count: Int, after date: Date, in timeZone: TimeZone) -> [Date] {
        var dates: [Date] = []
        var from = date
        while dates.count < count, let next = next(after: from, in: timeZone) {
            dates.append(next)
            from = next
        }
        return dates
    }

    private func matches(day: Int, weekday: Int) -> Bool {
        daysMatchBoth ? days.contains(day) && weekdays.contains(weekday) : days.contains(day) || weekdays.contains(weekday)
    }
}
