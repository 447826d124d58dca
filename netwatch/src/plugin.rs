//! Monitoring-plugin conventions (Nagios, Icinga, Naemon, Sensu, NRPE):
//! exit codes, threshold ranges and the one-line output with perfdata, as
//! the monitoring-plugins development guidelines define them.
//!
//! Threshold ranges are parsed by the `nagios-range` crate; the text the
//! user gave is kept, because perfdata must repeat it as written.

use std::fmt;

use nagios_range::NagiosRange;

/// A plugin's result; the exit code (its number, in declaration order) is
/// the contract with the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warning,
    Critical,
    /// Could not check at all: bad arguments, no access, a kernel error.
    Unknown,
}

impl Status {
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Which of two results several checks report: the worse, ranked as
    /// monitoring-plugins' `max_state_alt` ranks them (CRITICAL, WARNING,
    /// UNKNOWN, OK): a definite problem is the more useful page.
    pub fn worst(self, other: Self) -> Self {
        std::cmp::max_by_key(self, other, |s| match s {
            Self::Ok => 0,
            Self::Unknown => 1,
            Self::Warning => 2,
            Self::Critical => 3,
        })
    }
}

/// One `-w`/`-c` range: `10` (alert outside 0..10), `10:` (below 10),
/// `~:10` (above 10), `10:20` (outside), `@10:20` (inside).
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    range: NagiosRange,
    text: String,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let range = NagiosRange::from(text).map_err(|e| format!("bad threshold range {text:?}: {e}"))?;
        if range.start().is_nan() || range.end().is_nan() {
            return Err(format!("bad threshold range {text:?}: not a number"));
        }
        Ok(Self { range, text: text.to_owned() })
    }

    /// True when `value` should raise this threshold's alert.
    pub fn alerts(&self, value: f64) -> bool {
        self.range.check(value)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The status a value gets from its warning and critical ranges.
pub fn evaluate(value: f64, warning: Option<&Threshold>, critical: Option<&Threshold>) -> Status {
    if critical.is_some_and(|c| c.alerts(value)) {
        Status::Critical
    } else if warning.is_some_and(|w| w.alerts(value)) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// One perfdata item: `'label'=value;warn;crit;min;max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Perfdata {
    pub label: String,
    pub value: u64,
    pub warning: Option<String>,
    pub critical: Option<String>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl fmt::Display for Perfdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_label(f, &self.label)?;
        write!(f, "={}", self.value)?;
        let fields = [
            self.warning.clone().unwrap_or_default(),
            self.critical.clone().unwrap_or_default(),
            self.min.map(|m| m.to_string()).unwrap_or_default(),
            self.max.map(|m| m.to_string()).unwrap_or_default(),
        ];
        // Trailing empty fields may be dropped (guidelines), and are.
        let used = fields.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1);
        fields[..used].iter().try_for_each(|s| write!(f, ";{s}"))
    }
}

/// Labels are quoted when they hold spaces; `=` and `'` are not allowed in
/// a label at all, so they become `_`.
fn write_label(f: &mut fmt::Formatter<'_>, label: &str) -> fmt::Result {
    let clean: String = label.chars().map(|c| if matches!(c, '=' | '\'') { '_' } else { c }).collect();
    if clean.contains(char::is_whitespace) {
        write!(f, "'{clean}'")
    } else {
        f.write_str(&clean)
    }
}

/// `SERVICE STATUS - text | perfdata`, the one line a scheduler reads.
pub fn status_line(service: &str, status: Status, text: &str, perfdata: &[Perfdata]) -> String {
    let mut line = format!("{service} {} - {}", status.name(), one_line(text));
    if !perfdata.is_empty() {
        line.push_str(" |");
        line.extend(perfdata.iter().map(|p| format!(" {p}")));
    }
    line
}

/// The text part must not contain `|` (it starts perfdata) or line breaks.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        Threshold::parse(s).unwrap()
    }

    #[test]
    fn ranges_follow_the_guidelines() {
        // 10: alert outside 0..=10.
        assert!(!t("10").alerts(10.0) && t("10").alerts(11.0) && t("10").alerts(-1.0));
        // 10: alert below 10.
        assert!(t("10:").alerts(9.0) && !t("10:").alerts(1e9));
        // ~:10: alert above 10, never below.
        assert!(!t("~:10").alerts(-5.0) && t("~:10").alerts(10.5));
        // 10:20 outside, @10:20 inside.
        assert!(t("10:20").alerts(9.0) && !t("10:20").alerts(15.0) && t("10:20").alerts(21.0));
        assert!(t("@10:20").alerts(10.0) && !t("@10:20").alerts(21.0));
        for bad in ["", "abc", "20:10", "1:x", "nan"] {
            assert!(Threshold::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(t(" 5: ").as_str(), "5:");
    }

    #[test]
    fn critical_wins_over_warning() {
        let (w, c) = (t("5"), t("10"));
        assert_eq!(evaluate(3.0, Some(&w), Some(&c)), Status::Ok);
        assert_eq!(evaluate(6.0, Some(&w), Some(&c)), Status::Warning);
        assert_eq!(evaluate(11.0, Some(&w), Some(&c)), Status::Critical);
        assert_eq!(evaluate(11.0, None, None), Status::Ok);
        assert_eq!(evaluate(11.0, Some(&w), None), Status::Warning);
    }

    #[test]
    fn worst_status_ranks_as_monitoring_plugins() {
        assert_eq!(Status::Ok.worst(Status::Warning), Status::Warning);
        assert_eq!(Status::Critical.worst(Status::Unknown), Status::Critical);
        assert_eq!(Status::Unknown.worst(Status::Warning), Status::Warning);
        assert_eq!(Status::Ok.worst(Status::Unknown), Status::Unknown);
        assert_eq!(
            [Status::Ok.code(), Status::Warning.code(), Status::Critical.code(), Status::Unknown.code()],
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn perfdata_format() {
        let p = |w: Option<&str>, c: Option<&str>| Perfdata {
            label: "port_443".into(),
            value: 7,
            warning: w.map(Into::into),
            critical: c.map(Into::into),
            min: Some(0),
            max: None,
        };
        assert_eq!(p(Some("5"), Some("10")).to_string(), "port_443=7;5;10;0");
        assert_eq!(p(None, Some("10")).to_string(), "port_443=7;;10;0");
        assert_eq!(p(None, None).to_string(), "port_443=7;;;0");
        let quoted = Perfdata { label: "a b=c".into(), value: 1, warning: None, critical: None, min: None, max: None };
        assert_eq!(quoted.to_string(), "'a b_c'=1");
        let line = status_line("NETWATCH", Status::Warning, "x | y\nz", &[p(Some("5"), None)]);
        assert_eq!(line, "NETWATCH WARNING - x / y z | port_443=7;5;;0");
    }
}
