//! Schedules: cron expressions with an optional leading seconds field, in UTC or in the
//! entry's IANA time zone (`{cron, timezone}`). Every instance plans the
//! same ticks; a `set_if_absent` lock per (workspace, automation, expression, tick) lets one
//! run happen per tick across the cluster. Ticks missed while no instance was up are not
//! replayed: a plan starts at the next tick after now, and after a late check it skips to the
//! next tick after now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use refract_core::model::{Automation, Schedule};
use refract_storage::{Cache, CacheKey, StorageError};

use crate::index::TriggerIndex;

/// A parsed `when.schedules` entry.
#[derive(Debug, Clone)]
pub(crate) struct CronSchedule {
    /// The cron expression (reported as the trigger value).
    pub(crate) expression: String,
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses 5 cron fields, or 6 with leading seconds, in `timezone` (IANA; `None` = UTC).
    pub(crate) fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let tz: Tz = match timezone {
            None => Tz::UTC,
            Some(zone) => zone
                .parse()
                .map_err(|_| format!("unknown time zone {zone:?}"))?,
        };
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "{expression:?}: expected 5 fields, or 6 with leading seconds"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("{expression:?}: {e}"))?;
        Ok(Self {
            expression: expression.to_owned(),
            cron,
            tz,
        })
    }

    /// Parses an entry of the automation model.
    pub(crate) fn from_model(schedule: &Schedule) -> Result<Self, String> {
        Self::parse(schedule.cron(), schedule.timezone())
    }

    /// The first tick strictly after `t`.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// A schedule's identity in plans and locks: the cron, plus the zone when there is one.
fn label(schedule: &Schedule) -> String {
    match schedule.timezone() {
        Some(tz) => format!("{} {tz}", schedule.cron()),
        None => schedule.cron().to_owned(),
    }
}

/// The lock of one tick of one schedule of one automation.
pub(crate) fn tick_lock(
    workspace: &str,
    slug: &str,
    expression: &str,
    tick: DateTime<Utc>,
) -> CacheKey {
    CacheKey::lock(&format!(
        "cron:{workspace}:{slug}:{expression}:{}",
        tick.timestamp_millis()
    ))
}

/// Takes the lock of a tick; `true` for the one instance that gets it.
pub(crate) async fn claim_tick(
    cache: &dyn Cache,
    key: &CacheKey,
    instance: &str,
    ttl: Duration,
) -> Result<bool, StorageError> {
    cache.set_if_absent(key, instance.as_bytes(), ttl).await
}

/// A tick to run.
#[derive(Debug, Clone)]
pub(crate) struct Fire {
    pub(crate) workspace: String,
    pub(crate) automation: Arc<Automation>,
    pub(crate) expression: String,
    /// The schedule's identity in the tick lock (cron and time zone).
    pub(crate) lock: String,
    pub(crate) tick: DateTime<Utc>,
}

struct Planned {
    schedule: CronSchedule,
    label: String,
    automation: Arc<Automation>,
    next: Option<DateTime<Utc>>,
}

/// The next tick of every schedule of the index.
#[derive(Default)]
pub(crate) struct Planner {
    entries: HashMap<(String, String, String), Planned>,
    version: Option<u64>,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Planner {
    /// A planner with nothing planned; the first refresh reads the index.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of schedules planned.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no schedule is planned.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Re-reads the index if it changed: new schedules start at their next tick after `now`,
    /// unchanged ones keep their plan, removed ones are dropped.
    pub(crate) fn refresh(&mut self, index: &TriggerIndex, now: DateTime<Utc>) {
        let version = index.version();
        if self.version == Some(version) {
            return;
        }
        self.version = Some(version);
        let mut entries = HashMap::new();
        for (ws, automation) in index.scheduled() {
            let Some(when) = automation.when.as_ref() else {
                continue;
            };
            for entry in &when.schedules {
                let key = (ws.clone(), automation.slug.clone(), label(entry));
                let planned = match self.entries.remove(&key) {
                    Some(p) => Planned {
                        automation: automation.clone(),
                        ..p
                    },
                    None => match CronSchedule::from_model(entry) {
                        Ok(schedule) => {
                            let next = schedule.next_after(now);
                            Planned {
                                schedule,
                                label: key.2.clone(),
                                automation: automation.clone(),
                                next,
                            }
                        }
                        Err(e) => {
                            tracing::warn!(workspace_id = %ws, automation = %automation.slug, error = %e, "invalid schedule skipped");
                            continue;
                        }
                    },
                };
                entries.insert(key, planned);
            }
        }
        self.entries = entries;
    }

    /// The ticks due at `now` (one per schedule at most: a backlog is skipped), and the plan
    /// moved to each schedule's next tick after `now`.
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Vec<Fire> {
        let mut fires = Vec::new();
        for ((ws, _, _), p) in &mut self.entries {
            let Some(next) = p.next else { continue };
            if next > now {
                continue;
            }
            fires.push(Fire {
                workspace: ws.clone(),
                automation: p.automation.clone(),
                expression: p.schedule.expression.clone(),
                lock: p.label.clone(),
                tick: next,
            });
            p.next = p.schedule.next_after(now);
        }
        fires
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use refract_storage::cache::MemoryCache;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_and_six_fields_and_time_zones() {
        let every_second = CronSchedule::parse("* * * * * *", None).unwrap();
        assert_eq!(
            every_second.next_after(at("2026-11-27T10:00:00.500Z")),
            Some(at("2026-11-27T10:00:01Z"))
        );
        let minutely = CronSchedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            minutely.next_after(at("2026-11-27T10:01:30Z")),
            Some(at("2026-11-27T10:05:00Z"))
        );
        let seconds = CronSchedule::parse("30 0 9 * * *", None).unwrap();
        assert_eq!(
            seconds.next_after(at("2026-11-27T08:00:00Z")),
            Some(at("2026-11-27T09:00:30Z"))
        );
        // 09:00 in Paris is 08:00 UTC in November (CET, UTC+1).
        let zoned: Schedule =
            serde_json::from_value(json!({"cron": "0 9 * * *", "timezone": "Europe/Paris"}))
                .unwrap();
        let paris = CronSchedule::from_model(&zoned).unwrap();
        assert_eq!(
            paris.next_after(at("2026-11-27T07:00:00Z")),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap())
        );
        for bad in ["", "* * *", "61 * * * *", "* * * * * * *"] {
            assert!(CronSchedule::parse(bad, None).is_err(), "{bad}");
        }
        assert!(CronSchedule::parse("* * * * *", Some("Mars/Base")).is_err());
    }

    fn index_with(schedules: &[&str]) -> TriggerIndex {
        let index = TriggerIndex::new();
        let a: Automation = serde_json::from_value(json!({"slug": "tick", "name": "tick", "kind": "component",
            "when": {"schedules": schedules}, "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u"})).unwrap();
        index.upsert("ws1", a);
        index
    }

    #[test]
    fn a_plan_fires_each_tick_once_and_skips_missed_ones() {
        let index = index_with(&["* * * * * *", "not a cron"]);
        let mut planner = Planner::new();
        let t0 = at("2026-11-27T10:00:00.200Z");
        planner.refresh(&index, t0);
        assert_eq!(planner.len(), 1, "the invalid entry is skipped");
        assert!(
            planner.due(t0).is_empty(),
            "nothing is due before the first tick"
        );
        let fires = planner.due(at("2026-11-27T10:00:01.010Z"));
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].tick, at("2026-11-27T10:00:01Z"));
        assert!(
            planner.due(at("2026-11-27T10:00:01.500Z")).is_empty(),
            "a tick fires once"
        );
        // Down for a minute: one fire for the latest due tick, no replay of the others.
        let fires = planner.due(at("2026-11-27T10:01:05.100Z"));
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].tick, at("2026-11-27T10:00:02Z"));
        assert!(planner.due(at("2026-11-27T10:01:05.900Z")).is_empty());
        assert_eq!(planner.due(at("2026-11-27T10:01:06.000Z")).len(), 1);
        // Removing the schedule drops the plan.
        index.remove("ws1", "tick");
        planner.refresh(&index, at("2026-11-27T10:01:07Z"));
        assert!(planner.is_empty());
    }

    #[test]
    fn a_plan_started_later_does_not_replay_earlier_ticks() {
        let index = index_with(&["0 * * * * *"]);
        let mut planner = Planner::new();
        planner.refresh(&index, at("2026-11-27T10:00:30Z"));
        assert!(planner.due(at("2026-11-27T10:00:30Z")).is_empty());
        let fires = planner.due(at("2026-11-27T10:01:00.050Z"));
        assert_eq!(fires[0].tick, at("2026-11-27T10:01:00Z"));
    }

    #[tokio::test(start_paused = true)]
    async fn one_instance_wins_each_tick_lock() {
        let cache = MemoryCache::new("t");
        let tick = at("2026-11-27T10:00:01Z");
        let key = tick_lock("ws1", "tick", "* * * * * *", tick);
        let ttl = Duration::from_secs(60);
        assert!(claim_tick(&cache, &key, "a", ttl).await.unwrap());
        assert!(!claim_tick(&cache, &key, "b", ttl).await.unwrap());
        let next = tick_lock("ws1", "tick", "* * * * * *", at("2026-11-27T10:00:02Z"));
        assert!(
            claim_tick(&cache, &next, "b", ttl).await.unwrap(),
            "the next tick is free"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(
            claim_tick(&cache, &key, "b", ttl).await.unwrap(),
            "locks expire"
        );
    }
}
