//! The public holidays the law itself fixes, computed for a year the State Council has not yet
//! published a calendar for (DESIGN §5). Pure: no I/O, no clock.
//!
//! 全国年节及纪念日放假办法 (as revised in 2024, in force from 2025) gives every citizen 13 days
//! off: 元旦 (1 January), 春节 (除夕 to 初三: the last day of the twelfth lunar month and the first
//! three days of the first), 清明 (the day of the solar term), 劳动节 (1–2 May), 端午 (5th day of
//! the fifth lunar month), 中秋 (15th day of the eighth lunar month) and 国庆 (1–3 October). Its
//! article 6 adds a day off in lieu (补假) on a working day for each of those days that falls on a
//! Saturday or Sunday: here, the first Monday to Friday after it that is not already off.
//!
//! What it does not fix, and so what is not computed: the State Council's yearly bridging of
//! holidays with weekends and the make-up working days (调休) that pay for it — those are known
//! only when the year's notice is published, which is why deadlines resting on a computed year
//! are provisional.
//!
//! Lunar dates come from the standard month-length table of the Chinese calendar (one word per
//! lunar year: which months have 30 days, which month is repeated and how long the repeat is),
//! kept here for the lunar years 2020–2100 and anchored on the lunar new year of 2020
//! (2020-01-25). The solar term 清明 is the day (China time, UTC+8) the Sun's apparent ecliptic
//! longitude reaches 15°, computed with the low-precision solar theory of Meeus, *Astronomical
//! Algorithms*, ch. 25 (about 0.01°, a quarter of an hour). Both are tested against the published
//! calendars of 2023–2026 and well-known dates of later years.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The first year the 2024 revision fixes the holidays of (earlier years had fewer days off).
pub const FIRST_YEAR: i32 = 2025;
/// The last year the lunar table covers.
pub const LAST_YEAR: i32 = 2100;

/// The first lunar year of [`LUNAR_YEARS`].
const TABLE_FIRST_YEAR: i32 = 2020;

/// One word per lunar year from 2020 to 2100: bits 15..4 say whether months 1..12 have 30 days
/// (bit set) or 29; bits 3..0 name the repeated (leap, 闰) month, 0 for none; bit 16 says whether
/// the repeated month has 30 days.
const LUNAR_YEARS: [u32; 81] = [
    0x07954, 0x06aa0, 0x0ad50, 0x05b52, 0x04b60, 0x0a6e6, 0x0a4e0, 0x0d260, 0x0ea65,
    0x0d530, // 2020
    0x05aa0, 0x076a3, 0x096d0, 0x04bd7, 0x04ad0, 0x0a4d0, 0x1d0b6, 0x0d250, 0x0d520,
    0x0dd45, // 2030
    0x0b5a0, 0x056d0, 0x055b2, 0x049b0, 0x0a577, 0x0a4b0, 0x0aa50, 0x1b255, 0x06d20,
    0x0ada0, // 2040
    0x14b63, 0x09370, 0x049f8, 0x04970, 0x064b0, 0x168a6, 0x0ea50, 0x06b20, 0x1a6c4,
    0x0aae0, // 2050
    0x092e0, 0x0d2e3, 0x0c960, 0x0d557, 0x0d4a0, 0x0da50, 0x05d55, 0x056a0, 0x0a6d0,
    0x055d4, // 2060
    0x052d0, 0x0a9b8, 0x0a950, 0x0b4a0, 0x0b6a6, 0x0ad50, 0x055a0, 0x0aba4, 0x0a5b0,
    0x052b0, // 2070
    0x0b273, 0x06930, 0x07337, 0x06aa0, 0x0ad50, 0x14b55, 0x04b60, 0x0a570, 0x054e4,
    0x0d160, // 2080
    0x0e968, 0x0d520, 0x0daa0, 0x16aa6, 0x056d0, 0x04ae0, 0x0a9d4, 0x0a2d0, 0x0d150,
    0x0f252, // 2090
    0x0d520, // 2100
];

/// 正月初一 of lunar year 2020.
fn table_anchor() -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(2020, 1, 25)
}

fn table_word(year: i32) -> Option<u32> {
    let i = usize::try_from(year.checked_sub(TABLE_FIRST_YEAR)?).ok()?;
    LUNAR_YEARS.get(i).copied()
}

/// Days in month `m` (1–12, not the repeated one) of the lunar year `word` describes.
fn month_days(word: u32, m: u32) -> u64 {
    if word & (0x10000 >> m) != 0 {
        30
    } else {
        29
    }
}

/// The repeated month of the year (1–12), if any, and its length.
fn leap_month(word: u32) -> Option<(u32, u64)> {
    match word & 0xf {
        0 => None,
        m => Some((m, if word & 0x10000 != 0 { 30 } else { 29 })),
    }
}

fn year_days(word: u32) -> u64 {
    (1..=12).map(|m| month_days(word, m)).sum::<u64>() + leap_month(word).map_or(0, |(_, n)| n)
}

/// 正月初一 (the lunar new year, 春节) of lunar year `year`, which falls in January or February of
/// the Gregorian year of the same number. `None` outside 2020–2100.
pub fn lunar_new_year(year: i32) -> Option<NaiveDate> {
    table_word(year)?;
    let mut day = table_anchor()?;
    for y in TABLE_FIRST_YEAR..year {
        day = day.checked_add_days(Days::new(year_days(table_word(y)?)))?;
    }
    Some(day)
}

/// The Gregorian date of day `day` (1–30) of the ordinary (not repeated) lunar month `month`
/// (1–12) of lunar year `year`. `None` outside 2020–2100, for a month or day out of range, or for
/// day 30 of a 29-day month.
pub fn lunar_date(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let word = table_word(year)?;
    if !(1..=12).contains(&month) || day == 0 || u64::from(day) > month_days(word, month) {
        return None;
    }
    let mut offset: u64 = (1..month).map(|m| month_days(word, m)).sum();
    if let Some((leap, len)) = leap_month(word) {
        if leap < month {
            offset += len;
        }
    }
    lunar_new_year(year)?.checked_add_days(Days::new(offset + u64::from(day) - 1))
}

/// 除夕: the last day of the lunar year before `year`'s new year.
pub fn chuxi(year: i32) -> Option<NaiveDate> {
    lunar_new_year(year)?.pred_opt()
}

/// Julian day (UT) → the civil date in China (UTC+8).
fn china_date_of_jd(jd_ut: f64) -> Option<NaiveDate> {
    // JDN 2451545 is 2000-01-01; a civil day runs from JD n−0.5 to n+0.5.
    let jdn = (jd_ut + 8.0 / 24.0 + 0.5).floor() as i64;
    let base = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    let delta = jdn - 2_451_545;
    if delta >= 0 {
        base.checked_add_days(Days::new(delta.unsigned_abs()))
    } else {
        base.checked_sub_days(Days::new(delta.unsigned_abs()))
    }
}

/// TT − UT in seconds (Espenak and Meeus's polynomials for 2005–2150).
fn delta_t_seconds(year: f64) -> f64 {
    if year < 2050.0 {
        let t = year - 2000.0;
        62.92 + 0.32217 * t + 0.005589 * t * t
    } else {
        let u = (year - 1820.0) / 100.0;
        -20.0 + 32.0 * u * u - 0.5628 * (2150.0 - year)
    }
}

/// The Sun's apparent ecliptic longitude in degrees [0, 360) at Julian Ephemeris Day `jde`
/// (Meeus ch. 25, low accuracy).
fn solar_longitude(jde: f64) -> f64 {
    let t = (jde - 2_451_545.0) / 36_525.0;
    let l0 = 280.466_46 + 36_000.769_83 * t + 0.000_303_2 * t * t;
    let m = (357.529_11 + 35_999.050_29 * t - 0.000_153_7 * t * t).to_radians();
    let c = (1.914_602 - 0.004_817 * t - 0.000_014 * t * t) * m.sin()
        + (0.019_993 - 0.000_101 * t) * (2.0 * m).sin()
        + 0.000_289 * (3.0 * m).sin();
    let omega = (125.04 - 1_934.136 * t).to_radians();
    let apparent = l0 + c - 0.005_69 - 0.004_78 * omega.sin();
    apparent.rem_euclid(360.0)
}

/// The day (China time) the Sun's apparent longitude reaches `target` degrees in Gregorian year
/// `year`, starting the search from `near` (a date within a few days of it).
fn solar_term(year: i32, near: NaiveDate, target: f64) -> Option<NaiveDate> {
    let base = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    let mut jde = 2_451_544.5 + (near - base).num_days() as f64;
    for _ in 0..50 {
        let diff = (target - solar_longitude(jde) + 540.0).rem_euclid(360.0) - 180.0;
        // The Sun moves about 360° in 365.2422 days.
        let step = diff * 365.242_2 / 360.0;
        jde += step;
        if step.abs() < 1e-7 {
            break;
        }
    }
    let ut = jde - delta_t_seconds(f64::from(year)) / 86_400.0;
    china_date_of_jd(ut)
}

/// 清明: the day (China time) the Sun reaches apparent longitude 15°, 4 or 5 April. `None`
/// outside 2020–2100 (the range the module keeps to).
pub fn qingming(year: i32) -> Option<NaiveDate> {
    if !(TABLE_FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return None;
    }
    solar_term(year, NaiveDate::from_ymd_opt(year, 4, 5)?, 15.0)
}

/// A holiday the law fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Festival {
    /// 元旦, 1 January.
    NewYear,
    /// 春节, 除夕 to 初三.
    SpringFestival,
    /// 清明节, the day of the solar term.
    Qingming,
    /// 劳动节, 1–2 May.
    LabourDay,
    /// 端午节, 五月初五.
    DragonBoat,
    /// 中秋节, 八月十五.
    MidAutumn,
    /// 国庆节, 1–3 October.
    NationalDay,
}

impl Festival {
    /// The holiday's Chinese name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Festival::NewYear => "元旦",
            Festival::SpringFestival => "春节",
            Festival::Qingming => "清明节",
            Festival::LabourDay => "劳动节",
            Festival::DragonBoat => "端午节",
            Festival::MidAutumn => "中秋节",
            Festival::NationalDay => "国庆节",
        }
    }
}

/// The 13 days the law gives every citizen off in Gregorian `year`, in date order with their
/// festival. `None` outside [`FIRST_YEAR`]–[`LAST_YEAR`].
pub fn festival_days(year: i32) -> Option<Vec<(NaiveDate, Festival)>> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return None;
    }
    festival_days_unchecked(year)
}

/// [`festival_days`] by the 2024 rules for any year the tables cover (tests compare earlier
/// years' festival dates with their published calendars).
fn festival_days_unchecked(year: i32) -> Option<Vec<(NaiveDate, Festival)>> {
    let ymd = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let new_year = lunar_new_year(year)?;
    let mut days = vec![
        (ymd(1, 1)?, Festival::NewYear),
        (chuxi(year)?, Festival::SpringFestival),
        (new_year, Festival::SpringFestival),
        (
            new_year.checked_add_days(Days::new(1))?,
            Festival::SpringFestival,
        ),
        (
            new_year.checked_add_days(Days::new(2))?,
            Festival::SpringFestival,
        ),
        (qingming(year)?, Festival::Qingming),
        (ymd(5, 1)?, Festival::LabourDay),
        (ymd(5, 2)?, Festival::LabourDay),
        (lunar_date(year, 5, 5)?, Festival::DragonBoat),
        (lunar_date(year, 8, 15)?, Festival::MidAutumn),
        (ymd(10, 1)?, Festival::NationalDay),
        (ymd(10, 2)?, Festival::NationalDay),
        (ymd(10, 3)?, Festival::NationalDay),
    ];
    days.sort();
    Some(days)
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Every day off the law fixes in `year`: the [`festival_days`] and, for each of them on a
/// Saturday or Sunday, a day off in lieu on the first Monday to Friday after it that is not
/// already off (article 6). When 中秋 falls within 1–3 October, the two holidays share a date and
/// the shared day is given in lieu the same way (the State Council did so in 2020, when 中秋 was
/// 1 October), so a year always holds 13 days off plus one per weekend festival day. `None`
/// outside [`FIRST_YEAR`]–[`LAST_YEAR`].
pub fn days_off(year: i32) -> Option<BTreeSet<NaiveDate>> {
    let festivals = festival_days(year)?;
    let mut off: BTreeSet<NaiveDate> = festivals.iter().map(|(d, _)| *d).collect();
    let owed = festivals
        .iter()
        .filter(|(d, _)| is_weekend(*d))
        .map(|(d, _)| *d)
        .chain(
            festivals
                .windows(2)
                .filter(|w| w[0].0 == w[1].0)
                .map(|w| w[0].0),
        );
    for day in owed {
        let mut next = day;
        loop {
            next = next.succ_opt()?;
            if !is_weekend(next) && !off.contains(&next) {
                off.insert(next);
                break;
            }
        }
    }
    Some(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The festival dates of the State Council's published calendars (春节 初一, 清明, 端午, 中秋).
    #[test]
    fn festival_dates_match_published_calendars() {
        let published = [
            // year, 春节 (初一), 清明, 端午, 中秋
            (
                2023,
                d(2023, 1, 22),
                d(2023, 4, 5),
                d(2023, 6, 22),
                d(2023, 9, 29),
            ),
            (
                2024,
                d(2024, 2, 10),
                d(2024, 4, 4),
                d(2024, 6, 10),
                d(2024, 9, 17),
            ),
            (
                2025,
                d(2025, 1, 29),
                d(2025, 4, 4),
                d(2025, 5, 31),
                d(2025, 10, 6),
            ),
            (
                2026,
                d(2026, 2, 17),
                d(2026, 4, 5),
                d(2026, 6, 19),
                d(2026, 9, 25),
            ),
        ];
        for (year, spring, qm, dragon, moon) in published {
            assert_eq!(lunar_new_year(year), Some(spring), "{year} 春节");
            assert_eq!(chuxi(year), spring.pred_opt(), "{year} 除夕");
            assert_eq!(qingming(year), Some(qm), "{year} 清明");
            assert_eq!(lunar_date(year, 5, 5), Some(dragon), "{year} 端午");
            assert_eq!(lunar_date(year, 8, 15), Some(moon), "{year} 中秋");
        }
    }

    /// The shipped 2026 calendar holds every day the law fixes for 2026 (its breaks are longer).
    #[test]
    fn the_2026_calendar_holds_the_statutory_days() {
        let cal = super::super::calendar::WorkCalendar::china_2026();
        let listed: BTreeSet<NaiveDate> = cal.holidays().collect();
        for (day, festival) in festival_days(2026).unwrap() {
            assert!(listed.contains(&day), "{day} {}", festival.label_zh());
        }
        // 清明 2026 is a Sunday: the law's day in lieu is Monday 6 April, as published.
        assert_eq!(d(2026, 4, 5).weekday(), Weekday::Sun);
        assert!(days_off(2026).unwrap().contains(&d(2026, 4, 6)));
        for day in days_off(2026).unwrap() {
            assert!(listed.contains(&day), "{day}");
        }
    }

    #[test]
    fn lunar_new_years_far_ahead() {
        let known = [
            (2027, d(2027, 2, 6)),
            (2028, d(2028, 1, 26)),
            (2029, d(2029, 2, 13)),
            (2030, d(2030, 2, 3)),
            (2031, d(2031, 1, 23)),
            (2032, d(2032, 2, 11)),
            (2033, d(2033, 1, 31)),
            (2034, d(2034, 2, 19)),
            (2035, d(2035, 2, 8)),
            (2040, d(2040, 2, 12)),
            (2045, d(2045, 2, 17)),
            (2050, d(2050, 1, 23)),
        ];
        for (year, day) in known {
            assert_eq!(lunar_new_year(year), Some(day), "{year}");
        }
        // 2020 is the table's anchor; 2021 and 2022 follow from its length.
        assert_eq!(lunar_new_year(2021), Some(d(2021, 2, 12)));
        assert_eq!(lunar_new_year(2022), Some(d(2022, 2, 1)));
        // 2027: 端午 9 June, 中秋 15 September; 2028 has a repeated fifth month (闰五月), and
        // 端午 is in the ordinary fifth month: 28 May; 中秋 3 October.
        assert_eq!(lunar_date(2027, 5, 5), Some(d(2027, 6, 9)));
        assert_eq!(lunar_date(2027, 8, 15), Some(d(2027, 9, 15)));
        assert_eq!(lunar_date(2028, 5, 5), Some(d(2028, 5, 28)));
        assert_eq!(lunar_date(2028, 8, 15), Some(d(2028, 10, 3)));
    }

    #[test]
    fn every_lunar_year_is_plausible() {
        for year in TABLE_FIRST_YEAR..=LAST_YEAR {
            let ny = lunar_new_year(year).unwrap();
            assert_eq!(ny.year(), year);
            assert!(
                (d(year, 1, 21)..=d(year, 2, 20)).contains(&ny),
                "{year}: lunar new year {ny}"
            );
            let len = year_days(table_word(year).unwrap());
            assert!(
                (353..=355).contains(&len) || (383..=385).contains(&len),
                "{year}: {len} days"
            );
            assert_eq!(
                leap_month(table_word(year).unwrap()).is_some(),
                len > 355,
                "{year}"
            );
            let dragon = lunar_date(year, 5, 5).unwrap();
            let moon = lunar_date(year, 8, 15).unwrap();
            assert!(
                (d(year, 5, 20)..=d(year, 6, 26)).contains(&dragon),
                "{year}: {dragon}"
            );
            assert!(
                (d(year, 9, 6)..=d(year, 10, 9)).contains(&moon),
                "{year}: {moon}"
            );
            let qm = qingming(year).unwrap();
            assert!(qm == d(year, 4, 4) || qm == d(year, 4, 5), "{year}: {qm}");
        }
        assert_eq!(lunar_new_year(2101), None);
        assert_eq!(lunar_new_year(2019), None);
        assert_eq!(lunar_date(2027, 13, 1), None);
        assert_eq!(lunar_date(2027, 0, 1), None);
        assert_eq!(lunar_date(2027, 1, 0), None);
        assert_eq!(festival_days(2024), None);
        assert_eq!(days_off(2101), None);
    }

    /// 清明 by the astronomical computation agrees with the usual 21st-century rule of thumb
    /// (day = ⌊0.2422·Y + 4.81⌋ − ⌊Y/4⌋ of April, Y = year − 2000) over the years the law applies.
    #[test]
    fn qingming_agrees_with_the_rule_of_thumb() {
        for year in FIRST_YEAR..=2099 {
            let y = f64::from(year - 2000);
            let day = (0.2422 * y + 4.81).floor() as u32 - (year - 2000) as u32 / 4;
            assert_eq!(qingming(year), Some(d(year, 4, day)), "{year}");
        }
    }

    #[test]
    fn thirteen_days_and_days_in_lieu() {
        for year in FIRST_YEAR..=LAST_YEAR {
            let days = festival_days(year).unwrap();
            assert_eq!(days.len(), 13, "{year}");
            let off = days_off(year).unwrap();
            let weekend = days.iter().filter(|(d, _)| is_weekend(*d)).count();
            assert_eq!(off.len(), 13 + weekend, "{year}");
        }
        // 2031: 中秋 is Wed 1 October, shared with 国庆 (Wed–Fri): Mon 6 October is given in lieu.
        assert_eq!(lunar_date(2031, 8, 15), Some(d(2031, 10, 1)));
        let off = days_off(2031).unwrap();
        assert!(off.contains(&d(2031, 10, 6)), "{off:?}");
        assert!(!off.contains(&d(2031, 10, 7)));
        // 2027: 元旦 is a Friday; 春节 runs 除夕 Fri 5 Feb – 初三 Mon 8 Feb, so Sat 6 and Sun 7
        // give Tue 9 and Wed 10 in lieu; 国庆 Fri 1 – Sun 3 Oct gives Mon 4 and Tue 5.
        let off = days_off(2027).unwrap();
        let expected: BTreeSet<NaiveDate> = [
            d(2027, 1, 1),
            d(2027, 2, 5),
            d(2027, 2, 6),
            d(2027, 2, 7),
            d(2027, 2, 8),
            d(2027, 2, 9),
            d(2027, 2, 10),
            d(2027, 4, 5),
            d(2027, 5, 1),
            d(2027, 5, 2),
            d(2027, 5, 3),
            d(2027, 5, 4),
            d(2027, 6, 9),
            d(2027, 9, 15),
            d(2027, 10, 1),
            d(2027, 10, 2),
            d(2027, 10, 3),
            d(2027, 10, 4),
            d(2027, 10, 5),
        ]
        .into();
        assert_eq!(off, expected);
        assert_eq!(Festival::SpringFestival.label_zh(), "春节");
    }
}
