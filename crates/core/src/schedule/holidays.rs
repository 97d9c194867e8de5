//! Holiday calendars computed by rule, so any year works without a table to maintain.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// One statutory holiday: its legal date and, when that falls on a weekend, the weekday the
/// business closes instead (`observed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: &'static str,
}

/// Which calendar to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// Québec's statutory holidays (Loi sur les normes du travail, plus Canada Day).
    Quebec,
    /// No computed holidays: only the admin-added dates.
    None,
}

/// What happens to a holiday that falls on Saturday or Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedRule {
    /// Saturday and Sunday both move to the following Monday (or the next free weekday).
    NextWeekday,
    /// Saturday moves to the Friday before, Sunday to the Monday after.
    NearestWeekday,
    /// No shift: a weekend holiday closes nothing extra.
    None,
}

/// Western (Gregorian) Easter Sunday, anonymous Gregorian algorithm (Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n)
}

/// The legal dates of `calendar` in `year`.
pub fn statutory(calendar: Calendar, year: i32) -> Vec<Holiday> {
    if calendar == Calendar::None {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut push = |date: Option<NaiveDate>, name: &'static str| {
        if let Some(date) = date {
            out.push(Holiday { date, name });
        }
    };
    let ymd = NaiveDate::from_ymd_opt;
    push(ymd(year, 1, 1), "New Year's Day (Jour de l'An)");
    push(
        easter_sunday(year).map(|e| e - Duration::days(2)),
        "Good Friday (Vendredi saint)",
    );
    // The Monday before May 25 (May 18 when the 25th is itself a Monday).
    push(
        ymd(year, 5, 24).map(|d| {
            let back = d.weekday().num_days_from_monday() as i64;
            d - Duration::days(back)
        }),
        "National Patriots' Day (Journée nationale des patriotes)",
    );
    push(
        ymd(year, 6, 24),
        "Saint-Jean-Baptiste (Fête nationale du Québec)",
    );
    push(ymd(year, 7, 1), "Canada Day (Fête du Canada)");
    push(
        nth_weekday(year, 9, Weekday::Mon, 1),
        "Labour Day (Fête du Travail)",
    );
    push(
        nth_weekday(year, 10, Weekday::Mon, 2),
        "Thanksgiving (Action de grâce)",
    );
    push(ymd(year, 12, 25), "Christmas Day (Noël)");
    out
}

/// A day the business is closed for a holiday: the legal date or the weekday it shifted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub date: NaiveDate,
    pub name: &'static str,
    pub observed: bool,
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Every day closed for a holiday in `year`: legal dates plus observed weekday shifts.
pub fn closed_days(calendar: Calendar, rule: ObservedRule, year: i32) -> Vec<Closed> {
    let legal = statutory(calendar, year);
    let mut out: Vec<Closed> = legal
        .iter()
        .map(|h| Closed {
            date: h.date,
            name: h.name,
            observed: false,
        })
        .collect();
    for h in &legal {
        if !is_weekend(h.date) {
            continue;
        }
        let mut d = match (rule, h.date.weekday()) {
            (ObservedRule::None, _) => continue,
            (ObservedRule::NearestWeekday, Weekday::Sat) => h.date - Duration::days(1),
            (_, Weekday::Sat) => h.date + Duration::days(2),
            _ => h.date + Duration::days(1),
        };
        // Two holidays shifting onto the same weekday: the later one takes the next free one.
        while is_weekend(d) || out.iter().any(|c| c.date == d) {
            d += Duration::days(1);
        }
        out.push(Closed {
            date: d,
            name: h.name,
            observed: true,
        });
    }
    out.sort_by_key(|c| c.date);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter_known_dates() {
        let known = [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, day) in known {
            assert_eq!(easter_sunday(y), Some(d(y, m, day)), "{y}");
        }
    }
}
