//! Aligning the first firing of a time window to natural time.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use weir_planner::TimeUnit;

/// eKuiper's `getAlignedWindowEndTime`: the first window end after `t_ms`
/// for a window of `raw` units, counted from the start of the enclosing
/// unit (a minute for seconds, an hour for minutes, a day for hours, a
/// second for ms; `dd` counts days from midnight).
///
/// eKuiper compares only the unit component of `t` with `raw`, so when that
/// component is at most `raw` the result is `start + raw` even if that is
/// not after `t`; this is kept for compatibility.
pub(crate) fn aligned_end(t_ms: i64, raw: i64, unit: TimeUnit) -> i64 {
    let Some(t) = Utc.timestamp_millis_opt(t_ms).single() else { return t_ms };
    let raw = raw.max(1);
    let gap = |component: i64| if component > raw { raw * (component / raw + 1) } else { raw };
    let floor = |ms: i64, unit_ms: i64| ms - ms.rem_euclid(unit_ms);
    match unit {
        TimeUnit::Day => {
            let midnight = Utc
                .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
                .single()
                .map(|d| d.timestamp_millis())
                .unwrap_or(t_ms);
            midnight + raw * 86_400_000
        }
        TimeUnit::Hour => floor(t_ms, 86_400_000) + gap(t.hour() as i64) * 3_600_000,
        TimeUnit::Minute => floor(t_ms, 3_600_000) + gap(t.minute() as i64) * 60_000,
        TimeUnit::Second => floor(t_ms, 60_000) + gap(t.second() as i64) * 1000,
        TimeUnit::Millisecond => floor(t_ms, 1000) + gap(t.timestamp_subsec_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_align_within_the_minute() {
        // 09:54:46.013
        let t = 1_541_152_486_013;
        assert_eq!(aligned_end(t, 2, TimeUnit::Second), 1_541_152_488_000);
        assert_eq!(aligned_end(t, 10, TimeUnit::Second), 1_541_152_490_000);
        assert_eq!(aligned_end(t, 1, TimeUnit::Second), 1_541_152_487_000);
    }

    #[test]
    fn small_component_gives_the_raw_step() {
        // 09:54:02.500 with a 5 s window: 2 <= 5, so :05.
        let t = 1_541_152_442_500;
        assert_eq!(aligned_end(t, 5, TimeUnit::Second), 1_541_152_445_000);
    }
}
