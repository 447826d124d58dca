//! The "traffic per process" pane: top talkers by program name, busiest
//! (current rate, then bytes) first. Connections are ranked in the table
//! itself with `b`.

use ratatui::{
    style::{Color, Style},
    widgets::{Cell, Row},
};

use super::format;
use crate::table::ProcessTraffic;

/// At most `fit` rows of processes whose name contains `filter` (lowercase).
pub fn rows(processes: &[ProcessTraffic], filter: &str, fit: usize) -> Vec<Row<'static>> {
    let mut shown: Vec<&ProcessTraffic> =
        processes.iter().filter(|p| filter.is_empty() || format::contains_ci(&p.name, filter)).collect();
    shown.sort_by(|a, b| {
        b.rate()
            .cmp(&a.rate())
            .then((b.totals.tx_bytes + b.totals.rx_bytes).cmp(&(a.totals.tx_bytes + a.totals.rx_bytes)))
    });
    shown.into_iter().take(fit).map(row).collect()
}

fn row(p: &ProcessTraffic) -> Row<'static> {
    let t = &p.totals;
    let color = if t.retransmits > 0 || t.resets() > 0 { Color::Yellow } else { Color::Reset };
    Row::new([
        Cell::from(p.name.clone()),
        Cell::from(p.sockets.to_string()),
        Cell::from(format::bytes(p.rx_rate)),
        Cell::from(format::bytes(p.tx_rate)),
        Cell::from(format::bytes(t.rx_bytes)),
        Cell::from(format::bytes(t.tx_bytes)),
        Cell::from(format!("{}/{}", t.retransmits, t.resets())).style(Style::new().fg(color)),
    ])
}
