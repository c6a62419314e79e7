//! `date(x, format[, locale[, tz]])` (`automation-dsl.md` §4.7): dayjs format tokens, the
//! localized formats of dayjs' `localizedFormat` plugin, the `en` and `fr` locales (D10) and
//! IANA time zones (default `Europe/Paris`, as in Prisme.ai).

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// The time zone of `date()` formatting when the call names none.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Paris";

struct Locale {
    months: [&'static str; 12],
    months_short: [&'static str; 12],
    weekdays: [&'static str; 7],
    weekdays_short: [&'static str; 7],
    weekdays_min: [&'static str; 7],
    /// `LT LTS L LL LLL LLLL`.
    formats: [&'static str; 6],
}

const EN: Locale = Locale {
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    months_short: [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ],
    weekdays: [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ],
    weekdays_short: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
    weekdays_min: ["Su", "Mo", "Tu", "We", "Th", "Fr", "Sa"],
    formats: [
        "h:mm A",
        "h:mm:ss A",
        "MM/DD/YYYY",
        "MMMM D, YYYY",
        "MMMM D, YYYY h:mm A",
        "dddd, MMMM D, YYYY h:mm A",
    ],
};

const FR: Locale = Locale {
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    months_short: [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ],
    weekdays: [
        "dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
    ],
    weekdays_short: ["dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."],
    weekdays_min: ["di", "lu", "ma", "me", "je", "ve", "sa"],
    formats: [
        "HH:mm",
        "HH:mm:ss",
        "DD/MM/YYYY",
        "D MMMM YYYY",
        "D MMMM YYYY HH:mm",
        "dddd D MMMM YYYY HH:mm",
    ],
};

fn locale(name: &str) -> Option<&'static Locale> {
    match name.to_ascii_lowercase().as_str() {
        "en" | "en-us" => Some(&EN),
        "fr" | "fr-fr" => Some(&FR),
        _ => None,
    }
}

/// Formats `d` with a dayjs `format` in `locale` and time zone `tz`; `None` for an unknown
/// locale or zone.
pub fn format(
    d: DateTime<Utc>,
    format: &str,
    locale_name: Option<&str>,
    tz: Option<&str>,
) -> Option<String> {
    let loc = locale(locale_name.unwrap_or("en"))?;
    let tz: Tz = tz.unwrap_or(DEFAULT_TIME_ZONE).parse().ok()?;
    let local = tz.from_utc_datetime(&d.naive_utc());
    let offset_secs = local.offset().fix().local_minus_utc();
    let expanded = expand_localized(format, loc);
    Some(render(&expanded, loc, &local, offset_secs))
}

/// `[…]` literals of `text` kept, other characters handed to `f` in runs.
fn split_literals(text: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        if open > 0 {
            out.push((false, &rest[..open]));
        }
        out.push((true, &rest[open..open + close + 1]));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push((false, rest));
    }
    out
}

/// The `localizedFormat` plugin: `LTS? L{1,4} l{1,4}` replaced by the locale's formats (`l`
/// forms shorten `MMMM MM DD dddd`).
fn expand_localized(format: &str, loc: &Locale) -> String {
    let mut out = String::new();
    for (literal, part) in split_literals(format) {
        if literal {
            out.push_str(part);
            continue;
        }
        let b = part.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let run = |c: u8| b[i..].iter().take_while(|&&x| x == c).count().min(4);
            if part[i..].starts_with("LTS") {
                out.push_str(loc.formats[1]);
                i += 3;
            } else if part[i..].starts_with("LT") {
                out.push_str(loc.formats[0]);
                i += 2;
            } else if b[i] == b'L' {
                let n = run(b'L');
                out.push_str(loc.formats[1 + n]);
                i += n;
            } else if b[i] == b'l' {
                let n = run(b'l');
                out.push_str(&shorten(loc.formats[1 + n]));
                i += n;
            } else {
                let ch = part[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// dayjs: `l` formats replace `MMMM|MM|DD|dddd` by their shorter form.
fn shorten(f: &str) -> String {
    let mut out = String::new();
    let mut rest = f;
    while !rest.is_empty() {
        let (token, short) = [("MMMM", "MMM"), ("dddd", "ddd"), ("MM", "M"), ("DD", "D")]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t))
            .map_or_else(
                || (&rest[..rest.chars().next().map_or(1, char::len_utf8)], None),
                |(t, s)| (t, Some(s)),
            );
        out.push_str(short.unwrap_or(token));
        rest = &rest[token.len()..];
    }
    out
}

fn render<T: TimeZone>(format: &str, loc: &Locale, d: &DateTime<T>, offset_secs: i32) -> String {
    let mut out = String::new();
    for (literal, part) in split_literals(format) {
        if literal {
            out.push_str(&part[1..part.len() - 1]);
            continue;
        }
        let b = part.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let n = b[i..].iter().take_while(|&&x| x == c).count();
            let (text, used) = token(c, n, part, i, loc, d, offset_secs);
            match text {
                Some(t) => out.push_str(&t),
                None => out.push_str(&part[i..i + used]),
            }
            i += used;
        }
    }
    out
}

/// One dayjs token at `part[i..]` (`c` repeated `n` times): its text and the bytes it used;
/// `None` text keeps the characters as they are.
#[allow(clippy::too_many_arguments)]
fn token<T: TimeZone>(
    c: u8,
    n: usize,
    part: &str,
    i: usize,
    loc: &Locale,
    d: &DateTime<T>,
    off: i32,
) -> (Option<String>, usize) {
    let two = |x: u32| format!("{x:02}");
    let hour12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    let month = d.month0() as usize;
    let weekday = d.weekday().num_days_from_sunday() as usize;
    match c {
        b'Y' => {
            let n = n.min(4);
            match n {
                4 => (Some(format!("{:04}", d.year())), 4),
                2 => (Some(format!("{:02}", d.year().rem_euclid(100))), 2),
                _ => (None, n),
            }
        }
        b'M' => {
            let n = n.min(4);
            let t = match n {
                1 => (month + 1).to_string(),
                2 => format!("{:02}", month + 1),
                3 => loc.months_short[month].to_owned(),
                _ => loc.months[month].to_owned(),
            };
            (Some(t), n)
        }
        b'D' => {
            let n = n.min(2);
            (
                Some(if n == 1 {
                    d.day().to_string()
                } else {
                    two(d.day())
                }),
                n,
            )
        }
        b'd' => {
            let n = n.min(4);
            let t = match n {
                1 => weekday.to_string(),
                2 => loc.weekdays_min[weekday].to_owned(),
                3 => loc.weekdays_short[weekday].to_owned(),
                _ => loc.weekdays[weekday].to_owned(),
            };
            (Some(t), n)
        }
        b'H' => {
            let n = n.min(2);
            (
                Some(if n == 1 {
                    d.hour().to_string()
                } else {
                    two(d.hour())
                }),
                n,
            )
        }
        b'h' => {
            let n = n.min(2);
            let h = hour12(d.hour());
            (Some(if n == 1 { h.to_string() } else { two(h) }), n)
        }
        b'm' => {
            let n = n.min(2);
            (
                Some(if n == 1 {
                    d.minute().to_string()
                } else {
                    two(d.minute())
                }),
                n,
            )
        }
        b's' => {
            let n = n.min(2);
            (
                Some(if n == 1 {
                    d.second().to_string()
                } else {
                    two(d.second())
                }),
                n,
            )
        }
        b'S' if n >= 3 => (Some(format!("{:03}", d.timestamp_subsec_millis())), 3),
        b'A' => (Some(if d.hour() < 12 { "AM" } else { "PM" }.to_owned()), 1),
        b'a' => (Some(if d.hour() < 12 { "am" } else { "pm" }.to_owned()), 1),
        b'Z' => {
            let n = n.min(2);
            let sign = if off < 0 { '-' } else { '+' };
            let (h, m) = (off.unsigned_abs() / 3600, (off.unsigned_abs() % 3600) / 60);
            (
                Some(if n == 1 {
                    format!("{sign}{h:02}:{m:02}")
                } else {
                    format!("{sign}{h:02}{m:02}")
                }),
                n,
            )
        }
        _ => {
            let len = part[i..].chars().next().map_or(1, char::len_utf8);
            (None, len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iso: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(iso)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn tokens_in_paris_and_utc() {
        let d = at("2024-03-05T14:30:07.042Z");
        assert_eq!(
            format(d, "DD/MM/YYYY HH:mm", None, None).unwrap(),
            "05/03/2024 15:30"
        );
        assert_eq!(
            format(d, "HH:mm", Some("en"), Some("UTC")).unwrap(),
            "14:30"
        );
        assert_eq!(
            format(d, "YY M D d H h m s SSS A a Z ZZ", None, Some("UTC")).unwrap(),
            "24 3 5 2 14 2 30 7 042 PM pm +00:00 +0000"
        );
        assert_eq!(format(d, "Z", None, None).unwrap(), "+01:00");
        assert_eq!(
            format(d, "dddd ddd dd MMMM MMM", None, Some("UTC")).unwrap(),
            "Tuesday Tue Tu March Mar"
        );
        assert_eq!(
            format(d, "[YYYY is] YYYY", None, Some("UTC")).unwrap(),
            "YYYY is 2024"
        );
        assert_eq!(
            format(at("2024-07-01T00:00:00Z"), "ZZ", None, None).unwrap(),
            "+0200",
            "summer time"
        );
    }

    #[test]
    fn localized_formats_and_locales() {
        let d = at("2024-03-05T14:30:07Z");
        assert_eq!(
            format(d, "LLLL", Some("en"), Some("UTC")).unwrap(),
            "Tuesday, March 5, 2024 2:30 PM"
        );
        assert_eq!(
            format(d, "L LT LTS", Some("en"), Some("UTC")).unwrap(),
            "03/05/2024 2:30 PM 2:30:07 PM"
        );
        assert_eq!(
            format(d, "l ll", Some("en"), Some("UTC")).unwrap(),
            "3/5/2024 Mar 5, 2024"
        );
        assert_eq!(
            format(d, "LLLL", Some("fr"), Some("UTC")).unwrap(),
            "mardi 5 mars 2024 14:30"
        );
        assert_eq!(
            format(d, "llll", Some("fr"), Some("UTC")).unwrap(),
            "mar. 5 mars 2024 14:30"
        );
        assert_eq!(format(d, "L", Some("xx"), None), None, "unknown locale");
        assert_eq!(
            format(d, "L", None, Some("Mars/Olympus")),
            None,
            "unknown zone"
        );
    }
}
