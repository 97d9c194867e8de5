//! The schedule over whole years: Québec holidays 2024–2030, DST nights, hour boundaries.

use astreinte::schedule::{Reason, Schedule, ScheduleConfig};
use astreinte::triage::Severity;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::America::Toronto;

fn sched() -> Schedule {
    Schedule::from_config(&ScheduleConfig::default()).unwrap()
}

fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Toronto
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Every weekday closed for a holiday, 2024–2030, written out by hand from published calendars.
/// Weekend legal dates move to the following Monday ("next_weekday").
const CLOSED_WEEKDAYS: &[(i32, &[(u32, u32)])] = &[
    (
        2024,
        &[
            (1, 1),
            (3, 29),
            (5, 20),
            (6, 24),
            (7, 1),
            (9, 2),
            (10, 14),
            (12, 25),
        ],
    ),
    (
        2025,
        &[
            (1, 1),
            (4, 18),
            (5, 19),
            (6, 24),
            (7, 1),
            (9, 1),
            (10, 13),
            (12, 25),
        ],
    ),
    (
        2026,
        &[
            (1, 1),
            (4, 3),
            (5, 18),
            (6, 24),
            (7, 1),
            (9, 7),
            (10, 12),
            (12, 25),
        ],
    ),
    (
        2027,
        &[
            (1, 1),
            (3, 26),
            (5, 24),
            (6, 24),
            (7, 1),
            (9, 6),
            (10, 11),
            (12, 27),
        ],
    ),
    (
        2028,
        &[
            (1, 3),
            (4, 14),
            (5, 22),
            (6, 26),
            (7, 3),
            (9, 4),
            (10, 9),
            (12, 25),
        ],
    ),
    (
        2029,
        &[
            (1, 1),
            (3, 30),
            (5, 21),
            (6, 25),
            (7, 2),
            (9, 3),
            (10, 8),
            (12, 25),
        ],
    ),
    (
        2030,
        &[
            (1, 1),
            (4, 19),
            (5, 20),
            (6, 24),
            (7, 1),
            (9, 2),
            (10, 14),
            (12, 25),
        ],
    ),
];

#[test]
fn every_weekday_of_2024_to_2030_is_open_unless_a_holiday() {
    let s = sched();
    for (year, closed) in CLOSED_WEEKDAYS {
        let closed: Vec<NaiveDate> = closed.iter().map(|&(m, d)| date(*year, m, d)).collect();
        let mut d = date(*year, 1, 1);
        let mut found = Vec::new();
        while d.year() == *year {
            let noon = local(d.year(), d.month(), d.day(), 12, 0);
            let o = s.is_open(noon);
            let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
            if weekend {
                assert!(!o.open, "{d} is a weekend");
                // A weekend legal date still reads as the holiday, not just "weekend".
                if !matches!(o.reason, Reason::Weekend | Reason::Holiday { .. }) {
                    panic!("{d}: {:?}", o.reason);
                }
            } else if !o.open {
                assert!(
                    matches!(o.reason, Reason::Holiday { .. }),
                    "{d}: {:?}",
                    o.reason
                );
                found.push(d);
            }
            d = d.succ_opt().unwrap();
        }
        assert_eq!(found, closed, "holiday closures of {year}");
    }
}

#[test]
fn weekend_holidays_are_named_and_observed_on_monday() {
    let s = sched();
    // Christmas 2027 is a Saturday; the business closes Monday the 27th.
    let sat = s.is_open(local(2027, 12, 25, 12, 0));
    assert_eq!(
        sat.reason,
        Reason::Holiday {
            name: "Christmas Day (Noël)".into(),
            observed: false
        }
    );
    let mon = s.is_open(local(2027, 12, 27, 12, 0));
    assert!(!mon.open);
    assert_eq!(
        mon.reason.to_string(),
        "holiday: Christmas Day (Noël) (observed)"
    );
    // Saint-Jean-Baptiste 2029 is a Sunday: Monday June 25 (as the Fête nationale act says).
    assert!(!s.is_open(local(2029, 6, 25, 9, 0)).open);
    // ...and the line reopens Tuesday 08:00.
    assert_eq!(
        s.is_open(local(2029, 6, 24, 9, 0)).next_change,
        Some(local(2029, 6, 26, 8, 0))
    );
}

#[test]
fn boundaries_1759_1800_1801_and_0759_0800() {
    let s = sched();
    // Wednesday 2025-03-12.
    assert!(s.is_open(local(2025, 3, 12, 17, 59)).open);
    assert!(
        s.is_open(local(2025, 3, 12, 18, 0)).open,
        "the guide: open until 18:00, closed from 18:01"
    );
    let closed = s.is_open(local(2025, 3, 12, 18, 1));
    assert!(!closed.open);
    assert_eq!(closed.reason, Reason::OutsideHours);
    assert_eq!(closed.next_change, Some(local(2025, 3, 13, 8, 0)));
    assert!(!s.is_open(local(2025, 3, 12, 7, 59)).open);
    let open = s.is_open(local(2025, 3, 12, 8, 0));
    assert!(open.open);
    assert_eq!(open.next_change, Some(local(2025, 3, 12, 18, 1)));
    // Friday evening: next opening is Monday morning.
    let fri = s.is_open(local(2025, 3, 14, 18, 30));
    assert_eq!(fri.next_change, Some(local(2025, 3, 17, 8, 0)));
    assert_eq!(s.is_open(local(2025, 3, 15, 10, 0)).reason, Reason::Weekend);
}

#[test]
fn dst_nights_both_ways_keep_real_minutes() {
    let s = sched();
    // 2025-03-09 02:00 EST → 03:00 EDT. A ticket at 01:50 local is due 30 real minutes later,
    // which the wall clock shows as 03:20.
    let t = local(2025, 3, 9, 1, 50);
    let due = s.due(Severity::S1, t);
    assert_eq!(due.callback_due_at - t, Duration::minutes(30));
    assert_eq!(due.callback_due_at, local(2025, 3, 9, 3, 20));
    // 2025-11-02 02:00 EDT → 01:00 EST. 01:50 EDT + 30 min = 01:20 EST.
    let t = Utc.with_ymd_and_hms(2025, 11, 2, 5, 50, 0).unwrap(); // 01:50 EDT
    let due = s.due(Severity::S1, t);
    assert_eq!(
        due.callback_due_at,
        Utc.with_ymd_and_hms(2025, 11, 2, 6, 20, 0).unwrap()
    );
    assert_eq!(
        due.callback_due_at
            .with_timezone(&Toronto)
            .format("%H:%M %Z")
            .to_string(),
        "01:20 EST"
    );
    // Monday opening after each change is 08:00 local.
    assert_eq!(
        s.next_opening(local(2025, 3, 8, 12, 0)),
        Some(local(2025, 3, 10, 8, 0))
    );
    assert_eq!(
        s.next_opening(local(2025, 11, 1, 12, 0)),
        Some(local(2025, 11, 3, 8, 0))
    );
    // The week after the change has 13:00 UTC openings, the week before 12:00 (EDT → EST).
    assert_eq!(
        local(2025, 11, 3, 8, 0),
        Utc.with_ymd_and_hms(2025, 11, 3, 13, 0, 0).unwrap()
    );
}

#[test]
fn open_hours_across_a_dst_night() {
    // Hours that span the 02:00 change: a Sunday open 00:00-05:59.
    let mut cfg = ScheduleConfig::default();
    cfg.open.sun = vec!["00:00-05:59".into()];
    let s = Schedule::from_config(&cfg).unwrap();
    let spring = s.is_open(local(2025, 3, 9, 1, 0));
    assert!(spring.open);
    // 6 local hours minus the lost hour = 5 real hours from midnight.
    let midnight = local(2025, 3, 9, 0, 0);
    assert_eq!(
        s.is_open(midnight).next_change,
        Some(midnight + Duration::hours(5))
    );
    let fall_midnight = local(2025, 11, 2, 0, 0);
    assert_eq!(
        s.is_open(fall_midnight).next_change,
        Some(fall_midnight + Duration::hours(7))
    );
}

#[test]
fn business_time_skips_nights_weekends_and_holidays() {
    let s = sched();
    // S3 on Monday 10:00: 24 business hours = Mon 8 h + Tue 10 h + Wed 6 h → Wed 14:00 + 2 min
    // (each day is 10 h 01 min since 18:00 is included).
    let t = local(2025, 3, 10, 10, 0);
    let due = s.due(Severity::S3, t);
    assert_eq!(due.callback_due_at, local(2025, 3, 12, 13, 58));
    // 5 business days from Monday 10:00 is next Monday 10:00.
    assert_eq!(due.resolution_due_at, local(2025, 3, 17, 10, 0));
    // An S3 left Thursday before Good Friday 2025 (April 18) evening: clock starts Monday 08:00
    // (April 21, Easter Monday is not a Québec holiday when Good Friday is).
    let t = local(2025, 4, 17, 20, 0);
    assert_eq!(s.next_opening(t), Some(local(2025, 4, 21, 8, 0)));
    let due = s.due(Severity::S3, t);
    assert_eq!(due.resolution_due_at, local(2025, 4, 28, 8, 0));
    // S1/S2 after hours: 30 and 60 real minutes; in hours: "immediately" (5 min by default).
    let night = local(2025, 3, 12, 23, 0);
    assert_eq!(
        s.due(Severity::S1, night).callback_due_at,
        night + Duration::minutes(30)
    );
    assert_eq!(
        s.due(Severity::S2, night).callback_due_at,
        night + Duration::minutes(60)
    );
    assert_eq!(
        s.due(Severity::S1, night).resolution_due_at,
        night + Duration::hours(2)
    );
    assert_eq!(
        s.due(Severity::S2, night).resolution_due_at,
        night + Duration::hours(6)
    );
    let day = local(2025, 3, 12, 11, 0);
    assert_eq!(
        s.due(Severity::S2, day).callback_due_at,
        day + Duration::minutes(5)
    );
}

#[test]
fn maintenance_windows_and_admin_dates() {
    let mut cfg = ScheduleConfig::default();
    cfg.holidays.extra.push(astreinte::schedule::ExtraDay {
        date: "2025-12-26".into(),
        name: "Lendemain de Noël".into(),
    });
    cfg.holidays.removed.push("2025-10-13".into());
    cfg.holidays
        .closures
        .push(astreinte::schedule::ClosureConfig {
            from: "2025-12-24T12:00".into(),
            to: "2025-12-24T18:01".into(),
            name: "Christmas Eve afternoon".into(),
        });
    let s = Schedule::from_config(&cfg).unwrap();
    assert_eq!(
        s.is_open(local(2025, 12, 26, 9, 0)).reason,
        Reason::Holiday {
            name: "Lendemain de Noël".into(),
            observed: false
        }
    );
    assert!(
        s.is_open(local(2025, 10, 13, 9, 0)).open,
        "Thanksgiving removed by the admin"
    );
    let eve = s.is_open(local(2025, 12, 24, 13, 0));
    assert_eq!(
        eve.reason,
        Reason::Closure {
            name: "Christmas Eve afternoon".into()
        }
    );
    assert!(s.is_open(local(2025, 12, 24, 11, 59)).open);
    // Closed Dec 24 noon through the 26th and the weekend: reopens Monday 29th.
    assert_eq!(eve.next_change, Some(local(2025, 12, 29, 8, 0)));
    // Maintenance: Mon–Thu 00:01–04:00.
    assert_eq!(
        s.is_open(local(2025, 3, 11, 0, 1)).maintenance.as_deref(),
        Some("Tue 00:01-04:00")
    );
    assert_eq!(
        s.is_open(local(2025, 3, 11, 4, 0)).maintenance.as_deref(),
        Some("Tue 00:01-04:00")
    );
    assert_eq!(s.is_open(local(2025, 3, 11, 4, 1)).maintenance, None);
    assert_eq!(s.is_open(local(2025, 3, 11, 0, 0)).maintenance, None);
    assert_eq!(
        s.is_open(local(2025, 3, 14, 1, 0)).maintenance,
        None,
        "not on Fridays"
    );
}

#[test]
fn empty_open_table_means_always_closed_and_bad_ranges_are_located() {
    let cfg: ScheduleConfig = toml::from_str("[open]\n").unwrap();
    let s = Schedule::from_config(&cfg).unwrap();
    let o = s.is_open(local(2025, 3, 12, 12, 0));
    assert!(!o.open);
    assert_eq!(o.next_change, None);
    let text = "[sip]\n[schedule.open]\nmon = [\"08:00-18:00\"]\ntue = [\"18:00-08:00\"]\n";
    let err = astreinte::config::Config::parse(std::path::Path::new("x.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.toml:4: schedule.open.tue[0]"), "{err}");
}

/// A drill deployment (`[drill] time_scale = 60`): S1/S2 targets last 30 s and 60 s of real
/// time, resolution 2 min and 6 min; S3's business-time targets are not compressed.
#[test]
fn a_drill_compresses_the_s1_and_s2_targets_only() {
    let mut cfg = ScheduleConfig::default();
    cfg.sla.time_scale = astreinte::schedule::sla::TimeScale::new(60).unwrap();
    let drill = Schedule::from_config(&cfg).unwrap();
    let night = local(2025, 3, 12, 23, 0);
    assert_eq!(
        drill.due(Severity::S1, night).callback_due_at,
        night + Duration::seconds(30)
    );
    assert_eq!(
        drill.due(Severity::S2, night).callback_due_at,
        night + Duration::seconds(60)
    );
    assert_eq!(
        drill.due(Severity::S1, night).resolution_due_at,
        night + Duration::minutes(2)
    );
    let t = local(2025, 3, 10, 10, 0);
    assert_eq!(
        drill.due(Severity::S3, t),
        sched().due(Severity::S3, t),
        "S3 keeps business time"
    );
}
