//! Usage per workspace and UTC day: runs, run-milliseconds, emits and fetches (the events
//! service adds the bytes stored in the history to the same counters). Counted in
//! memory on the run path (a map update), added to durable cache counters every
//! [`FLUSH_EVERY`] by [`Usage::flush`], so every instance's runs add up; read back by day for
//! `GET /v2/workspaces/{id}/usage` and the quotas view. Each flush also adds the counts to
//! Prometheus counters labelled by workspace (`workspace_runs_total{workspace_id}`, …): the
//! first [`LABELLED_WORKSPACES`] workspaces this instance sees get their own series, the rest
//! share `workspace_id="_other"`, so a platform with many tenants cannot blow up the metrics.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use refract_core::WorkspaceId;
use refract_host::RunReport;
use refract_storage::{Cache, CacheKey, StorageError, UsageMetric};
use serde_json::{Map, Value, json};

/// How often the counts are added to the shared counters.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// The metrics this service counts, each with its Prometheus counter (the events service counts
/// [`UsageMetric::StoredBytes`]).
const COUNTED: [(UsageMetric, &str); 4] = [
    (UsageMetric::Runs, "workspace_runs_total"),
    (UsageMetric::RunMs, "workspace_run_milliseconds_total"),
    (UsageMetric::Emits, "workspace_emits_total"),
    (UsageMetric::Fetches, "workspace_fetches_total"),
];
/// Workspaces with their own series on one instance; the others are `_other`.
pub(crate) const LABELLED_WORKSPACES: usize = 100;
/// The label of the workspaces past [`LABELLED_WORKSPACES`].
const OTHER: &str = "_other";

/// Counts not yet flushed, by workspace and day.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts([i64; 4]);

/// The usage counters of this instance.
pub(crate) struct Usage {
    cache: Arc<dyn Cache>,
    pending: Mutex<HashMap<(WorkspaceId, NaiveDate), Counts>>,
    /// The workspaces that have their own series.
    labelled: Mutex<HashSet<WorkspaceId>>,
}

impl Usage {
    pub(crate) fn new(cache: Arc<dyn Cache>) -> Self {
        Self {
            cache,
            pending: Mutex::default(),
            labelled: Mutex::default(),
        }
    }

    /// The `workspace_id` label of `workspace`'s series.
    fn label(&self, workspace: &WorkspaceId) -> String {
        let mut labelled = self.labelled.lock().unwrap_or_else(PoisonError::into_inner);
        if labelled.contains(workspace) || labelled.len() < LABELLED_WORKSPACES {
            labelled.insert(workspace.clone());
            workspace.to_string()
        } else {
            OTHER.to_owned()
        }
    }

    /// Counts a finished run of `workspace`.
    pub(crate) fn record(&self, workspace: &WorkspaceId, report: &RunReport) {
        let day = Utc::now().date_naive();
        let ms = i64::try_from(report.elapsed.as_millis()).unwrap_or(i64::MAX);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let c = pending.entry((workspace.clone(), day)).or_default();
        for (slot, add) in
            c.0.iter_mut()
                .zip([1, ms, i64::from(report.emits), i64::from(report.fetches)])
        {
            *slot = slot.saturating_add(add);
        }
    }

    /// Adds what was counted since the last flush to the shared counters; what could not be
    /// added is kept for the next flush.
    pub(crate) async fn flush(&self) {
        let batch: Vec<_> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        for ((ws, day), counts) in batch {
            let label = self.label(&ws);
            for ((_, series), by) in COUNTED.into_iter().zip(counts.0) {
                if by > 0 {
                    metrics::counter!(series, "workspace_id" => label.clone())
                        .increment(by.unsigned_abs());
                }
            }
            let mut left = Counts::default();
            for (i, (metric, _)) in COUNTED.into_iter().enumerate() {
                let by = counts.0[i];
                if by == 0 {
                    continue;
                }
                if let Err(e) = self
                    .cache
                    .incr(&CacheKey::usage(&ws, day, metric), by, UsageMetric::KEPT)
                    .await
                {
                    tracing::warn!(workspace_id = %ws, error = %e, "usage not counted yet");
                    left.0[i] = by;
                }
            }
            if left != Counts::default() {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let c = pending.entry((ws, day)).or_default();
                for (slot, add) in c.0.iter_mut().zip(left.0) {
                    *slot = slot.saturating_add(add);
                }
            }
        }
    }

    /// `workspace`'s usage from `from` to `to` (UTC days, both included): `{days: [{day,
    /// runs, runMs, emits, fetches, storedBytes}], total: {…}}`.
    pub(crate) async fn between(
        &self,
        workspace: &WorkspaceId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Value, StorageError> {
        let mut days = Vec::new();
        let mut total = [0i64; UsageMetric::ALL.len()];
        let mut day = from;
        while day <= to {
            let text = day.format("%Y-%m-%d").to_string();
            let mut row = Map::new();
            row.insert("day".into(), json!(text));
            for (i, metric) in UsageMetric::ALL.into_iter().enumerate() {
                let n = self
                    .cache
                    .get(&CacheKey::usage(workspace, day, metric))
                    .await?
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(0);
                total[i] = total[i].saturating_add(n);
                row.insert(metric.name().into(), json!(n));
            }
            days.push(Value::Object(row));
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        let total: Map<String, Value> = UsageMetric::ALL
            .iter()
            .zip(total)
            .map(|(m, n)| (m.name().to_owned(), json!(n)))
            .collect();
        Ok(json!({"days": days, "total": total}))
    }
}

#[cfg(test)]
mod tests {
    use refract_host::{RunOutcome, RunTimings};
    use refract_storage::open_cache;

    use super::*;

    fn report(emits: u32, fetches: u32, ms: u64) -> RunReport {
        RunReport {
            outcome: RunOutcome::Ok(refract_host::Output {
                body: "{}".into(),
                http: None,
            }),
            emits,
            fetches,
            elapsed: Duration::from_millis(ms),
            logs: Vec::new(),
            logs_dropped: 0,
            timings: RunTimings::default(),
        }
    }

    #[tokio::test]
    async fn past_the_cap_workspaces_share_one_label() {
        let cache = open_cache("memory://", "test").await.unwrap();
        let usage = Usage::new(cache);
        let ids: Vec<_> = (0..=LABELLED_WORKSPACES)
            .map(|i| WorkspaceId::new(format!("ws{i}")).unwrap())
            .collect();
        for id in &ids[..LABELLED_WORKSPACES] {
            assert_eq!(usage.label(id), id.to_string());
        }
        assert_eq!(usage.label(&ids[LABELLED_WORKSPACES]), OTHER);
        assert_eq!(
            usage.label(&ids[0]),
            "ws0",
            "a labelled workspace keeps its label"
        );
    }

    #[tokio::test]
    async fn runs_are_counted_per_day_and_add_up_across_flushes() {
        let cache = open_cache("memory://", "test").await.unwrap();
        let usage = Usage::new(cache);
        let ws = WorkspaceId::new("ws1").unwrap();
        usage.record(&ws, &report(2, 1, 30));
        usage.record(&ws, &report(0, 0, 10));
        usage.flush().await;
        usage.record(&ws, &report(1, 0, 5));
        usage.flush().await;
        let today = Utc::now().date_naive();
        let got = usage.between(&ws, today, today).await.unwrap();
        assert_eq!(
            got["total"],
            json!({"runs": 3, "runMs": 45, "emits": 3, "fetches": 1, "storedBytes": 0})
        );
        assert_eq!(
            got["days"][0]["day"],
            json!(today.format("%Y-%m-%d").to_string())
        );
        let other = WorkspaceId::new("ws2").unwrap();
        assert_eq!(
            usage.between(&other, today, today).await.unwrap()["total"]["runs"],
            0
        );
    }
}
