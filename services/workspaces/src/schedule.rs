//! Checks of `when.schedules` entries (`automation-dsl.md` §2.6): cron with 5 fields, or 6 with
//! a leading seconds field (no year field), parsed by `croner` as the runtime does; an IANA time
//! zone when given; ticks no closer than the minimum interval.

use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use refract_core::model::Schedule;

/// Consecutive ticks compared when checking the minimum interval.
const INTERVAL_SAMPLES: usize = 16;

/// The parser the runtime must use too: seconds optional, no year field.
pub fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses `cron`, or says why not.
pub fn parse_cron(cron: &str) -> Result<Cron, String> {
    let fields = cron.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "{cron:?}: expected 5 fields, or 6 with leading seconds (found {fields})"
        ));
    }
    parser().parse(cron).map_err(|e| format!("{cron:?}: {e}"))
}

/// Checks one schedule entry.
pub fn check(
    schedule: &Schedule,
    min_interval: Duration,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let cron = parse_cron(schedule.cron())?;
    if let Some(tz) = schedule.timezone() {
        tz.parse::<chrono_tz::Tz>().map_err(|_| {
            format!("unknown time zone {tz:?} (use an IANA name such as Europe/Paris)")
        })?;
    }
    if min_interval > Duration::from_secs(1) {
        let ticks: Vec<DateTime<Utc>> = cron.iter_after(now).take(INTERVAL_SAMPLES).collect();
        for pair in ticks.windows(2) {
            let gap = (pair[1] - pair[0]).to_std().unwrap_or_default();
            if gap < min_interval {
                return Err(format!(
                    "{:?} fires every {} s, more often than the minimum of {} s",
                    schedule.cron(),
                    gap.as_secs(),
                    min_interval.as_secs()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Schedule {
        Schedule::Utc(s.into())
    }

    #[test]
    fn five_and_six_fields_time_zones_and_intervals() {
        let now = Utc::now();
        let min = Duration::from_secs(1);
        assert!(check(&utc("*/5 * * * *"), min, now).is_ok());
        assert!(check(&utc("*/10 * * * * *"), min, now).is_ok());
        assert!(check(&utc("not a cron"), min, now).is_err());
        assert!(check(&utc("61 * * * *"), min, now).is_err());
        assert!(check(&utc("0 0 0 1 1 * 2030"), min, now).is_err());
        assert!(
            check(&utc("@daily"), min, now).is_err(),
            "the runtime takes fields only"
        );
        let zoned = |tz: &str| Schedule::Zoned {
            cron: "0 9 * * 1-5".into(),
            timezone: tz.into(),
        };
        assert!(check(&zoned("Europe/Paris"), min, now).is_ok());
        assert!(check(&zoned("Mars/Olympus"), min, now).is_err());
        assert!(check(&utc("* * * * * *"), Duration::from_secs(60), now).is_err());
        assert!(check(&utc("0 * * * * *"), Duration::from_secs(60), now).is_ok());
    }
}
