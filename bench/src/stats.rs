//! Summaries of per-login times.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
    pub mean: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        // Nearest-rank percentiles.
        let rank = |p: usize| sorted[(n * p).div_ceil(100).clamp(1, n) - 1];
        let total: Duration = sorted.iter().sum();
        Some(Self {
            count: n,
            median: rank(50),
            p99: rank(99),
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
            max: sorted[n - 1],
        })
    }

    /// `median=… p99=… mean=… max=… count=…` in nanoseconds, as children report it.
    pub fn to_wire(self) -> String {
        format!(
            "count={} median={} p99={} mean={} max={}",
            self.count,
            self.median.as_nanos(),
            self.p99.as_nanos(),
            self.mean.as_nanos(),
            self.max.as_nanos()
        )
    }

    pub fn from_wire(fields: &std::collections::HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| -> Result<u64, String> {
            fields
                .get(k)
                .ok_or_else(|| format!("missing {k}"))?
                .parse::<u64>()
                .map_err(|e| format!("bad {k}: {e}"))
        };
        Ok(Self {
            count: usize::try_from(get("count")?).map_err(|e| e.to_string())?,
            median: Duration::from_nanos(get("median")?),
            p99: Duration::from_nanos(get("p99")?),
            mean: Duration::from_nanos(get("mean")?),
            max: Duration::from_nanos(get("max")?),
        })
    }
}

/// Microseconds, rounded, with thousands separators: `1,777`.
pub fn micros(d: Duration) -> String {
    let us = (d.as_nanos() + 500) / 1000;
    group_thousands(us)
}

pub fn group_thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parses `key=value` fields of a child's `RESULT` line.
pub fn parse_fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_formatting() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&samples).unwrap_or_else(|| unreachable!());
        assert_eq!(s.median, Duration::from_micros(50));
        assert_eq!(s.p99, Duration::from_micros(99));
        assert_eq!(s.max, Duration::from_micros(100));
        assert_eq!(micros(Duration::from_nanos(1_777_400)), "1,777");
        assert_eq!(group_thousands(100_000), "100,000");
        let back = Summary::from_wire(&parse_fields(&s.to_wire()));
        assert!(matches!(back, Ok(b) if b.median == s.median && b.count == 100));
    }
}
