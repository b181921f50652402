//! Working days for eligibility deadlines (DESIGN.md §5), pure (no I/O, no clock): a calendar of
//! public holidays and make-up working days (调休) read from a TOML string, counting working days
//! between dates, adding them to a date, and grading a deadline as on time, due soon or overdue.
//!
//! A day is a working day when it is a listed make-up workday, or a Monday to Friday that is not
//! a listed holiday. The shipped default, [`WorkCalendar::china_2026`], is the State Council's
//! 2026 schedule (`calendar-cn-2026.toml` beside this file); a bureau can merge local holidays
//! into it with [`WorkCalendar::merge`].
//!
//! A year is **published** when the calendar lists at least one holiday in it (the shipped 2026
//! file, and any year an administrator's file lists a holiday of). For a year that is not,
//! [`WorkCalendar::with_statutory_holidays`] adds the days off the law itself fixes
//! ([`super::statutory`]): no bridging, no make-up workdays, which only the year's published
//! notice can say. A deadline counted across a year that is not published is **provisional**
//! ([`WorkCalendar::rests_on_unpublished`]). Years neither published nor computed count weekends
//! only.
//!
//! The file format:
//!
//! ```toml
//! holidays = ["2026-01-01", "2026-01-02"]   # days off, weekends included or not
//! workdays = ["2026-01-04"]                 # make-up working Saturdays and Sundays
//! ```
//!
//! Both keys are optional; any other key is an error. Dates are strings `YYYY-MM-DD`. A date in
//! both lists, or a make-up workday that is not a Saturday or Sunday, is an error naming the date.

use std::collections::BTreeSet;
use std::ops::{Bound, RangeInclusive};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// Which days are working days.
///
/// Invariant: `holidays` and `workdays` are disjoint, and every date in `workdays` is a Saturday
/// or Sunday; `published` holds the year of every listed (not computed) holiday; `computed` and
/// `published` are disjoint. Every constructor keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkCalendar {
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    /// Years with at least one listed holiday.
    published: BTreeSet<i32>,
    /// Years whose holidays were computed by law ([`WorkCalendar::with_statutory_holidays`]).
    computed: BTreeSet<i32>,
}

/// Why a calendar cannot be read or merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The text is not TOML of the expected shape (unknown key, wrong type, syntax error).
    #[error("calendar is not valid: {0}")]
    Toml(String),
    /// A list entry is not a date written `YYYY-MM-DD`.
    #[error("{list}: {value:?} is not a date written YYYY-MM-DD")]
    BadDate {
        /// `holidays` or `workdays`.
        list: &'static str,
        /// The entry as written.
        value: String,
    },
    /// A date is both a holiday and a make-up workday.
    #[error("{date} is listed both as a holiday and as a make-up workday")]
    InBothLists {
        /// The date in question.
        date: NaiveDate,
    },
    /// A make-up workday falls on a Monday to Friday, which is a working day anyway.
    #[error("make-up workday {date} is a {weekday}, not a Saturday or Sunday")]
    WorkdayNotWeekend {
        /// The date in question.
        date: NaiveDate,
        /// Its day of the week.
        weekday: Weekday,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    workdays: Vec<String>,
}

/// Parses exactly `YYYY-MM-DD` (chrono alone would also take `2026-1-1`).
fn parse_date(list: &'static str, s: &str) -> Result<NaiveDate, CalendarError> {
    let bad = || CalendarError::BadDate {
        list,
        value: s.to_owned(),
    };
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(bad());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Number of Mondays to Fridays in a fixed origin's future up to and including `d`, extended to
/// negative values before it: `weekdays_upto(b) - weekdays_upto(a)` counts the Mondays to Fridays
/// in `(a, b]` for `a <= b`.
fn weekdays_upto(d: NaiveDate) -> i64 {
    // Day 0 is 0001-01-01 (proleptic Gregorian), a Monday; checked by a test.
    let t = i64::from(d.num_days_from_ce()) - 1;
    let weeks = t.div_euclid(7);
    let rem = t.rem_euclid(7); // 0 = Monday .. 6 = Sunday
    weeks * 5 + (rem + 1).min(5)
}

impl WorkCalendar {
    /// A calendar from explicit lists, checked like a file.
    pub fn new(
        holidays: impl IntoIterator<Item = NaiveDate>,
        workdays: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<Self, CalendarError> {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let cal = WorkCalendar {
            published: holidays.iter().map(|d| d.year()).collect(),
            holidays,
            workdays: workdays.into_iter().collect(),
            computed: BTreeSet::new(),
        };
        cal.check()
    }

    fn check(self) -> Result<Self, CalendarError> {
        if let Some(&date) = self.holidays.intersection(&self.workdays).next() {
            return Err(CalendarError::InBothLists { date });
        }
        if let Some(&date) = self.workdays.iter().find(|d| !is_weekend(**d)) {
            return Err(CalendarError::WorkdayNotWeekend {
                date,
                weekday: date.weekday(),
            });
        }
        Ok(self)
    }

    /// Reads a calendar in the format of the module doc. Errors name the offending key or date.
    pub fn from_toml_str(s: &str) -> Result<Self, CalendarError> {
        let file: CalendarFile =
            toml::from_str(s).map_err(|e| CalendarError::Toml(e.to_string().trim().to_owned()))?;
        let holidays = file
            .holidays
            .iter()
            .map(|s| parse_date("holidays", s))
            .collect::<Result<Vec<_>, _>>()?;
        let workdays = file
            .workdays
            .iter()
            .map(|s| parse_date("workdays", s))
            .collect::<Result<Vec<_>, _>>()?;
        WorkCalendar::new(holidays, workdays)
    }

    /// The State Council's 2026 public holidays and make-up workdays for mainland China (国务院办公厅
    /// 关于2026年部分节假日安排的通知, 2025-11-04), shipped as `calendar-cn-2026.toml`.
    #[allow(clippy::expect_used)] // The invariant below: a compile-time constant that a test parses.
    pub fn china_2026() -> Self {
        // Invariant: the shipped file is valid; the test `china_2026_file_parses` checks it, so
        // this cannot fail at run time.
        WorkCalendar::from_toml_str(include_str!("calendar-cn-2026.toml"))
            .expect("calendar-cn-2026.toml is valid (checked by test china_2026_file_parses)")
    }

    /// The union of two calendars (e.g. the national one and a bureau's local holidays). A date
    /// that is a holiday in one and a make-up workday in the other is an error naming it. Merge
    /// listed calendars only: computed years are added last, by
    /// [`WorkCalendar::with_statutory_holidays`].
    pub fn merge(mut self, other: Self) -> Result<Self, CalendarError> {
        self.holidays.extend(other.holidays);
        self.workdays.extend(other.workdays);
        self.published.extend(other.published);
        self.computed.extend(other.computed);
        let published = &self.published;
        self.computed.retain(|y| !published.contains(y));
        self.check()
    }

    /// Adds, for every year of `years` that is not published and that
    /// [`super::statutory::days_off`] covers, the days off the law fixes; a listed make-up
    /// workday stays a working day. Those years are then [`WorkCalendar::computed_years`].
    pub fn with_statutory_holidays(mut self, years: RangeInclusive<i32>) -> Self {
        for year in years {
            if self.published.contains(&year) {
                continue;
            }
            if let Some(days) = super::statutory::days_off(year) {
                let workdays = &self.workdays;
                self.holidays
                    .extend(days.into_iter().filter(|d| !workdays.contains(d)));
                self.computed.insert(year);
            }
        }
        self
    }

    /// Years with at least one listed holiday, in order.
    pub fn published_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.published.iter().copied()
    }

    /// Years whose holidays are computed by law rather than published, in order.
    pub fn computed_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.computed.iter().copied()
    }

    /// The years of the days in `(from, to]` that are not published (computed, or weekends
    /// only), in order: the years a deadline counted from `from` to `to` rests on without a
    /// published calendar. Empty when `to <= from`.
    pub fn unpublished_years_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<i32> {
        match from.succ_opt() {
            Some(first) if to >= first => (first.year()..=to.year())
                .filter(|y| !self.published.contains(y))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// True when a day of `(from, to]` lies in a year that is not published: a deadline counted
    /// over it is provisional.
    pub fn rests_on_unpublished(&self, from: NaiveDate, to: NaiveDate) -> bool {
        !self.unpublished_years_between(from, to).is_empty()
    }

    /// The listed holidays, in date order.
    pub fn holidays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.holidays.iter().copied()
    }

    /// The listed make-up workdays, in date order.
    pub fn workdays(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.workdays.iter().copied()
    }

    /// A Monday to Friday that is not a listed holiday, or a listed make-up workday.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        !is_weekend(d) && !self.holidays.contains(&d)
    }

    /// True when no listed date falls in `(from, to]`.
    fn plain_span(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let range = (Bound::Excluded(from), Bound::Included(to));
        self.holidays.range(range).next().is_none() && self.workdays.range(range).next().is_none()
    }

    /// The `n`-th working day after `start` (`start` itself is not counted; `n = 0` gives
    /// `start`). Saturates at the last date chrono can represent.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            // Seven days with nothing listed hold exactly five working days; skip them whole while
            // more than five remain, so the answer still lies beyond the skipped week.
            if left > 5 {
                if let Some(week_on) = day.checked_add_days(Days::new(7)) {
                    if self.plain_span(day, week_on) {
                        day = week_on;
                        left -= 5;
                        continue;
                    }
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return day,
            }
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// The number of working days in `(from, to]`; negative (minus those in `(to, from]`) when
    /// `to` is before `from`. So `working_days_between(d, add_working_days(d, n)) == n`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to < from {
            return -self.working_days_between(to, from);
        }
        let range = (Bound::Excluded(from), Bound::Included(to));
        let weekdays = weekdays_upto(to) - weekdays_upto(from);
        // Holidays on weekends and workdays on weekdays change nothing (the latter cannot occur by
        // the invariant, but counting only weekends keeps this exact regardless).
        let holidays_on_weekdays = self
            .holidays
            .range(range)
            .filter(|d| !is_weekend(**d))
            .count();
        let workdays_on_weekends = self
            .workdays
            .range(range)
            .filter(|d| is_weekend(**d))
            .count();
        // Both counts are at most the number of days in the span (< 2^32), so they fit in i64.
        weekdays - holidays_on_weekdays as i64 + workdays_on_weekends as i64
    }
}

/// How a deadline stands on a given day, counted in working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeadlineStatus {
    /// More than the "due soon" margin is left.
    OnTime {
        /// Working days in `(today, due]`.
        days_left: i64,
    },
    /// The due date is today or within the margin.
    DueSoon {
        /// Working days in `(today, due]` (0 when due today).
        days_left: i64,
    },
    /// The due date has passed.
    Overdue {
        /// Working days in `(due, today]`; 0 when only non-working days have passed since.
        days_over: i64,
    },
}

/// Grades a deadline: after `due` → `Overdue`; `due_soon_within` working days or fewer left
/// (due today included) → `DueSoon`; otherwise `OnTime`.
pub fn deadline_status(
    cal: &WorkCalendar,
    due: NaiveDate,
    today: NaiveDate,
    due_soon_within: u32,
) -> DeadlineStatus {
    if today > due {
        return DeadlineStatus::Overdue {
            days_over: cal.working_days_between(due, today),
        };
    }
    let days_left = cal.working_days_between(today, due);
    if days_left <= i64::from(due_soon_within) {
        DeadlineStatus::DueSoon { days_left }
    } else {
        DeadlineStatus::OnTime { days_left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn naive_between(cal: &WorkCalendar, from: NaiveDate, to: NaiveDate) -> i64 {
        let (lo, hi, sign) = if to < from {
            (to, from, -1)
        } else {
            (from, to, 1)
        };
        let mut n = 0;
        let mut day = lo;
        while day < hi {
            day = day.succ_opt().unwrap();
            if cal.is_working_day(day) {
                n += 1;
            }
        }
        sign * n
    }

    fn naive_add(cal: &WorkCalendar, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().unwrap();
            if cal.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    #[test]
    fn china_2026_file_parses() {
        let cal = WorkCalendar::from_toml_str(include_str!("calendar-cn-2026.toml")).unwrap();
        assert_eq!(cal, WorkCalendar::china_2026());
        // 3 + 9 + 3 + 5 + 3 + 3 + 7 days off; 6 make-up workdays.
        assert_eq!(cal.holidays().count(), 33);
        assert_eq!(
            cal.workdays().collect::<Vec<_>>(),
            vec![
                d(2026, 1, 4),
                d(2026, 2, 14),
                d(2026, 2, 28),
                d(2026, 5, 9),
                d(2026, 9, 20),
                d(2026, 10, 10)
            ]
        );
    }

    #[test]
    fn national_day_week_is_off() {
        let cal = WorkCalendar::china_2026();
        for day in 1..=7 {
            assert!(!cal.is_working_day(d(2026, 10, day)), "2026-10-{day:02}");
        }
        assert!(cal.is_working_day(d(2026, 10, 8)));
        assert!(cal.is_working_day(d(2026, 9, 30)));
    }

    #[test]
    fn make_up_weekends_are_working_days() {
        let cal = WorkCalendar::china_2026();
        // Saturday 2026-02-14 and Sunday 2026-01-04 are 调休 working days.
        assert_eq!(d(2026, 2, 14).weekday(), Weekday::Sat);
        assert!(cal.is_working_day(d(2026, 2, 14)));
        assert_eq!(d(2026, 1, 4).weekday(), Weekday::Sun);
        assert!(cal.is_working_day(d(2026, 1, 4)));
        assert!(cal.is_working_day(d(2026, 10, 10)));
        // An ordinary Saturday is not; an ordinary Wednesday is.
        assert!(!cal.is_working_day(d(2026, 3, 7)));
        assert!(cal.is_working_day(d(2026, 3, 11)));
        // Without a calendar, only weekends are off.
        let plain = WorkCalendar::default();
        assert!(plain.is_working_day(d(2026, 10, 1)));
        assert!(!plain.is_working_day(d(2026, 2, 14)));
    }

    #[test]
    fn add_working_days_across_spring_festival() {
        let cal = WorkCalendar::china_2026();
        // Fri 02-13 → Sat 02-14 (make-up) → 02-15..23 off → Tue 02-24, Wed 02-25.
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 1), d(2026, 2, 14));
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 2), d(2026, 2, 24));
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 3), d(2026, 2, 25));
        // 02-24..27 (4 days) + Sat 02-28 (make-up) = 5; then Mon 03-02.
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 7), d(2026, 3, 2));
        assert_eq!(cal.add_working_days(d(2026, 2, 13), 0), d(2026, 2, 13));
        // Starting on a holiday counts from the next working day.
        assert_eq!(cal.add_working_days(d(2026, 2, 17), 1), d(2026, 2, 24));
        assert_eq!(cal.working_days_between(d(2026, 2, 13), d(2026, 2, 24)), 2);
        assert_eq!(cal.working_days_between(d(2026, 2, 24), d(2026, 2, 13)), -2);
    }

    #[test]
    fn thirty_working_days_hand_counted() {
        let cal = WorkCalendar::china_2026();
        // From Thu 2026-09-10, by hand:
        //  9/11 (1) · 9/14–18 (2–6) · Sun 9/20 make-up (7) · 9/21–24 (8–11) · 9/25–27 中秋 off
        //  · 9/28–30 (12–14) · 10/1–7 国庆 off · 10/8–9 (15–16) · Sat 10/10 make-up (17)
        //  · 10/12–16 (18–22) · 10/19–23 (23–27) · 10/26–28 (28–30).
        assert_eq!(cal.add_working_days(d(2026, 9, 10), 30), d(2026, 10, 28));
        assert_eq!(
            cal.working_days_between(d(2026, 9, 10), d(2026, 10, 28)),
            30
        );
        // The same span without holidays: 30 weekdays after Thu 9/10 is Thu 10/22.
        assert_eq!(
            WorkCalendar::default().add_working_days(d(2026, 9, 10), 30),
            d(2026, 10, 22)
        );
        // From Wed 2026-04-01, across 清明 (4/4–6) and 劳动节 (5/1–5, Sat 5/9 make-up):
        //  4/2–3 (1–2) · 4/7–10 (3–6) · 4/13–17 (7–11) · 4/20–24 (12–16) · 4/27–30 (17–20)
        //  · 5/6–8 (21–23) · Sat 5/9 (24) · 5/11–15 (25–29) · 5/18 (30).
        assert_eq!(cal.add_working_days(d(2026, 4, 1), 30), d(2026, 5, 18));
    }

    #[test]
    fn whole_year_2026_count() {
        let cal = WorkCalendar::china_2026();
        // 261 weekdays in 2026, minus 19 holidays on weekdays, plus 6 make-up days = 248.
        assert_eq!(
            cal.working_days_between(d(2025, 12, 31), d(2026, 12, 31)),
            248
        );
    }

    #[test]
    fn day_zero_is_a_monday() {
        assert_eq!(d(1, 1, 1).weekday(), Weekday::Mon);
        assert_eq!(d(1, 1, 1).num_days_from_ce(), 1);
    }

    #[test]
    fn toml_errors() {
        let err =
            WorkCalendar::from_toml_str("holidays = []\nbridges = [\"2026-01-01\"]\n").unwrap_err();
        assert!(matches!(err, CalendarError::Toml(_)), "{err:?}");
        assert!(err.to_string().contains("bridges"), "{err}");

        for bad in [
            "2026-1-01",
            "2026-02-30",
            "2026/01/01",
            " 2026-01-01",
            "tomorrow",
        ] {
            let text = format!("holidays = [\"{bad}\"]");
            assert_eq!(
                WorkCalendar::from_toml_str(&text),
                Err(CalendarError::BadDate {
                    list: "holidays",
                    value: bad.to_owned()
                }),
                "{bad}"
            );
        }
        let err = WorkCalendar::from_toml_str("workdays = [\"2026-13-01\"]").unwrap_err();
        assert!(err.to_string().contains("workdays"), "{err}");
        // A TOML date literal instead of a string, and a non-list.
        assert!(matches!(
            WorkCalendar::from_toml_str("holidays = [2026-01-01]"),
            Err(CalendarError::Toml(_))
        ));
        assert!(matches!(
            WorkCalendar::from_toml_str("holidays = \"2026-01-01\""),
            Err(CalendarError::Toml(_))
        ));
        assert!(matches!(
            WorkCalendar::from_toml_str("holidays = ["),
            Err(CalendarError::Toml(_))
        ));

        let err = WorkCalendar::from_toml_str(
            "holidays = [\"2026-02-14\", \"2026-02-15\"]\nworkdays = [\"2026-02-14\"]",
        )
        .unwrap_err();
        assert_eq!(
            err,
            CalendarError::InBothLists {
                date: d(2026, 2, 14)
            }
        );
        assert!(err.to_string().contains("2026-02-14"), "{err}");

        let err = WorkCalendar::from_toml_str("workdays = [\"2026-02-16\"]").unwrap_err();
        assert_eq!(
            err,
            CalendarError::WorkdayNotWeekend {
                date: d(2026, 2, 16),
                weekday: Weekday::Mon
            }
        );

        // Both keys are optional.
        assert_eq!(WorkCalendar::from_toml_str(""), Ok(WorkCalendar::default()));
    }

    #[test]
    fn merge_unions_and_rejects_contradictions() {
        let local = WorkCalendar::from_toml_str("holidays = [\"2026-03-09\"]").unwrap();
        let cal = WorkCalendar::china_2026().merge(local).unwrap();
        assert!(!cal.is_working_day(d(2026, 3, 9)));
        assert!(!cal.is_working_day(d(2026, 10, 1)));

        let contrary = WorkCalendar::from_toml_str("holidays = [\"2026-02-28\"]").unwrap();
        assert_eq!(
            WorkCalendar::china_2026().merge(contrary),
            Err(CalendarError::InBothLists {
                date: d(2026, 2, 28)
            })
        );
    }

    #[test]
    fn deadline_grades() {
        let cal = WorkCalendar::china_2026();
        let due = d(2026, 2, 25); // Wed after the Spring Festival
                                  // From Fri 02-13: 02-14, 02-24, 02-25 → 3 working days left.
        assert_eq!(
            deadline_status(&cal, due, d(2026, 2, 13), 2),
            DeadlineStatus::OnTime { days_left: 3 }
        );
        assert_eq!(
            deadline_status(&cal, due, d(2026, 2, 13), 3),
            DeadlineStatus::DueSoon { days_left: 3 }
        );
        assert_eq!(
            deadline_status(&cal, due, d(2026, 2, 20), 2),
            DeadlineStatus::DueSoon { days_left: 2 }
        );
        assert_eq!(
            deadline_status(&cal, due, due, 0),
            DeadlineStatus::DueSoon { days_left: 0 }
        );
        assert_eq!(
            // 02-26, 02-27, Sat 02-28 (make-up), 03-02.
            deadline_status(&cal, due, d(2026, 3, 2), 2),
            DeadlineStatus::Overdue { days_over: 4 }
        );
        // Due Friday, looked at on Saturday: overdue by zero working days.
        assert_eq!(
            deadline_status(&cal, d(2026, 3, 6), d(2026, 3, 7), 2),
            DeadlineStatus::Overdue { days_over: 0 }
        );
        assert_eq!(
            serde_json::to_value(DeadlineStatus::DueSoon { days_left: 2 }).unwrap(),
            serde_json::json!({"status": "due_soon", "days_left": 2})
        );
        assert_eq!(
            serde_json::to_value(DeadlineStatus::Overdue { days_over: 1 }).unwrap(),
            serde_json::json!({"status": "overdue", "days_over": 1})
        );
    }

    /// The shipped calendar with the law's holidays for the years it does not list, as a node
    /// builds it.
    fn filled() -> WorkCalendar {
        WorkCalendar::china_2026().with_statutory_holidays(2025..=2100)
    }

    #[test]
    fn published_and_computed_years() {
        let cal = filled();
        assert_eq!(cal.published_years().collect::<Vec<_>>(), vec![2026]);
        let computed: Vec<i32> = cal.computed_years().collect();
        assert_eq!(computed.first(), Some(&2025));
        assert_eq!(computed.last(), Some(&2100));
        assert!(!computed.contains(&2026));
        assert_eq!(computed.len(), 75);
        // 2026 is exactly the published file: nothing computed was added to it.
        assert_eq!(
            cal.holidays().filter(|d| d.year() == 2026).count(),
            WorkCalendar::china_2026().holidays().count()
        );
        // 2027: 元旦, 春节 (除夕 to 初三 and two days in lieu), 国庆 are off; the Saturday before
        // the Spring Festival is not a make-up workday (nothing is known of 调休).
        for day in [
            d(2027, 1, 1),
            d(2027, 2, 5),
            d(2027, 2, 8),
            d(2027, 2, 10),
            d(2027, 10, 4),
        ] {
            assert!(!cal.is_working_day(day), "{day}");
        }
        assert!(!cal.is_working_day(d(2027, 1, 30)));
        assert!(cal.is_working_day(d(2027, 2, 11)));
        // An administrator's file for 2027 (one holiday is enough) makes 2027 published: only
        // its days count then, and merging after filling drops 2027 from the computed years.
        let file = WorkCalendar::from_toml_str("holidays = [\"2027-01-01\"]").unwrap();
        let cal = WorkCalendar::china_2026()
            .merge(file.clone())
            .unwrap()
            .with_statutory_holidays(2025..=2100);
        assert_eq!(cal.published_years().collect::<Vec<_>>(), vec![2026, 2027]);
        assert!(!cal.computed_years().any(|y| y == 2027));
        assert!(cal.is_working_day(d(2027, 2, 8)));
        let late = filled().merge(file).unwrap();
        assert!(!late.computed_years().any(|y| y == 2027));
        // Years before the 2024 revision and after the lunar table are neither.
        assert!(!filled().computed_years().any(|y| y == 2024 || y == 2101));
    }

    #[test]
    fn a_listed_workday_wins_over_a_computed_holiday() {
        // A file naming only a make-up Sunday in 2027 does not publish 2027; the computed 7 Feb
        // (初二, a Sunday) stays a working day because the file says so.
        let file = WorkCalendar::from_toml_str("workdays = [\"2027-02-07\"]").unwrap();
        let cal = WorkCalendar::china_2026()
            .merge(file)
            .unwrap()
            .with_statutory_holidays(2025..=2100);
        assert!(cal.computed_years().any(|y| y == 2027));
        assert!(cal.is_working_day(d(2027, 2, 7)));
        assert!(!cal.is_working_day(d(2027, 2, 8)));
    }

    /// A case submitted on Sunday 2026-12-20 with 30 working days: by hand, 12/21–25 (1–5),
    /// 12/28–31 (6–9), 1/1 元旦 off, 1/4–8 (10–14), 1/11–15 (15–19), 1/18–22 (20–24),
    /// 1/25–29 (25–29), Mon 2/1 (30). Counting 1 January as a working day gave 29 January.
    #[test]
    fn a_deadline_into_an_unpublished_year() {
        let cal = filled();
        let start = d(2026, 12, 20);
        let due = cal.add_working_days(start, 30);
        assert_eq!(due, d(2027, 2, 1));
        assert_eq!(
            WorkCalendar::china_2026().add_working_days(start, 30),
            d(2027, 1, 29)
        );
        assert!(cal.rests_on_unpublished(start, due));
        assert_eq!(cal.unpublished_years_between(start, due), vec![2027]);
        // Across the Spring Festival of 2027: from Mon 2027-01-25, 5/6/7 Feb are off, 8–10 Feb
        // too (初三 and two days in lieu): 1/26–29 (1–4), 2/1–4 (5–8), 2/11–12 (9–10).
        assert_eq!(cal.add_working_days(d(2027, 1, 25), 10), d(2027, 2, 12));
        // Within 2026 nothing is provisional; a span ending on 31 December neither.
        assert!(!cal.rests_on_unpublished(d(2026, 9, 10), d(2026, 10, 28)));
        assert!(!cal.rests_on_unpublished(d(2026, 12, 1), d(2026, 12, 31)));
        assert!(cal.rests_on_unpublished(d(2026, 12, 31), d(2027, 1, 4)));
        // No days counted, nothing rests on anything.
        assert!(!cal.rests_on_unpublished(d(2027, 3, 1), d(2027, 3, 1)));
        assert!(!cal.rests_on_unpublished(d(2027, 3, 1), d(2027, 2, 1)));
        // A span over several years names each unpublished one.
        assert_eq!(
            cal.unpublished_years_between(d(2025, 12, 1), d(2028, 1, 5)),
            vec![2025, 2027, 2028]
        );
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let cal = WorkCalendar::default();
        assert_eq!(cal.add_working_days(NaiveDate::MAX, 3), NaiveDate::MAX);
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        // 2025-06-01 .. 2027-06-01, around the shipped calendar.
        (0u64..730).prop_map(|n| d(2025, 6, 1) + Days::new(n))
    }

    proptest! {
        #[test]
        fn between_matches_day_by_day(a in any_date(), b in any_date()) {
            let cal = WorkCalendar::china_2026();
            prop_assert_eq!(cal.working_days_between(a, b), naive_between(&cal, a, b));
            let plain = WorkCalendar::default();
            prop_assert_eq!(plain.working_days_between(a, b), naive_between(&plain, a, b));
            let filled = filled();
            prop_assert_eq!(filled.working_days_between(a, b), naive_between(&filled, a, b));
        }

        #[test]
        fn add_matches_day_by_day_and_inverts_between(start in any_date(), n in 0u32..200) {
            let cal = WorkCalendar::china_2026();
            let end = cal.add_working_days(start, n);
            prop_assert_eq!(end, naive_add(&cal, start, n));
            prop_assert_eq!(cal.working_days_between(start, end), i64::from(n));
            if n > 0 {
                prop_assert!(cal.is_working_day(end));
            }
            let filled = filled();
            let end = filled.add_working_days(start, n);
            prop_assert_eq!(end, naive_add(&filled, start, n));
            prop_assert_eq!(filled.working_days_between(start, end), i64::from(n));
        }

        #[test]
        fn weekday_count_far_from_today(a in -300_000i64..300_000, len in 0i64..3000) {
            let cal = WorkCalendar::default();
            let from = d(1, 1, 1) + chrono::Duration::days(a);
            let to = from + chrono::Duration::days(len);
            prop_assert_eq!(cal.working_days_between(from, to), naive_between(&cal, from, to));
        }
    }
}
