//! Everything the screen shows, owned by the UI: a snapshot of the table
//! (refreshed when it changed, frozen while paused), the recent events,
//! and the user's choices (mode, sort, filter, pane, scroll).

use std::{
    collections::VecDeque,
    hash::{Hash as _, Hasher as _},
};

use jiff::tz::TimeZone;
use netwatch_common::EventKind;
use rustc_hash::FxHasher;

use super::{
    rate::RateMeter,
    view::{self, Entry, Mode, Sort},
};
use crate::{
    event::{clock::WallClock, Event},
    live::Update,
    table::{Closed, ProcessTraffic, Row, StateCounts, Table, Totals},
};

/// Events and closed connections kept for the lower pane: enough that a
/// burst elsewhere (a mass close is tens of thousands of events) does not
/// push out what a filter is looking for at once.
pub const RECENT: usize = 10_000;

/// Program names the process pane lists before summing the rest as `other`.
const TOP_PROCESSES: usize = 100;

/// The connection rate's averaging window.
const RATE_WINDOW_NS: u64 = 5_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    Clean,
    /// Housekeeping may have changed rows (checked by fingerprint).
    Maybe,
    /// Events changed rows.
    Yes,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pane {
    #[default]
    Events,
    Closed,
    /// Top talkers per process: traffic summed by program name.
    Processes,
}

/// What the table looked like at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    pub counts: StateCounts,
    pub totals: Totals,
    /// New connections per second.
    pub rate: f64,
    /// Most recent last.
    pub events: Vec<Event>,
    /// Most recent last.
    pub closed: Vec<Closed>,
    /// Traffic per program name, busiest first.
    pub processes: Vec<ProcessTraffic>,
    /// CLOCK_MONOTONIC ns when taken.
    pub taken_ns: u64,
}

#[derive(Debug, Default)]
pub struct Ui {
    pub mode: Mode,
    pub sort: Sort,
    pub pane: Pane,
    pub paused: bool,
    pub help: bool,
    /// Applied filter, lowercase.
    pub filter: String,
    /// The filter being typed after `/`.
    pub input: Option<String>,
    /// First visible row.
    pub scroll: usize,
    /// Table rows that fit on screen at the last draw (for PgUp/PgDn).
    pub page: usize,
    /// The WORKLOAD column (`w`): container, else unit, else cgroup.
    pub workload: bool,
}

pub struct App {
    pub snap: Snapshot,
    /// Indices into `snap.entries`, in display order.
    pub order: Vec<u32>,
    pub ui: Ui,
    pub clock: WallClock,
    pub tz: TimeZone,
    /// Why process attribution is degraded, when it is.
    pub degraded: Option<String>,
    events: VecDeque<Event>,
    rate: RateMeter,
    /// Whether the table changed since `snap` was taken.
    dirty: Dirty,
    /// [`fingerprint`] of the rows in `snap.entries`.
    fingerprint: u64,
    /// Mode, sort or filter changed since `order` was computed.
    order_dirty: bool,
    /// Where the rows' owners run (cached per PID).
    workloads: crate::workload::Resolver,
}

impl App {
    pub fn new(degraded: Option<String>, tz: TimeZone) -> Self {
        Self {
            snap: Snapshot::default(),
            order: Vec::new(),
            ui: Ui::default(),
            clock: WallClock::new(),
            tz,
            degraded,
            events: VecDeque::with_capacity(RECENT),
            rate: RateMeter::new(RATE_WINDOW_NS),
            dirty: Dirty::Yes,
            fingerprint: 0,
            order_dirty: true,
            workloads: crate::workload::Resolver::default(),
        }
    }

    /// Takes what one `Live::next` brought. Events are kept even while
    /// paused, so unpausing shows everything that happened.
    pub fn ingest(&mut self, update: Update) {
        if !update.events.is_empty() || update.reseeded {
            self.dirty = Dirty::Yes;
        }
        for e in update.events {
            // A socket being freed is bookkeeping, not news (as `netwatch events`).
            if e.kind == EventKind::Destroy {
                continue;
            }
            if self.events.len() == RECENT {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
    }

    /// Housekeeping in the live model (TIME_WAIT expiry, minisocket
    /// re-reads) changes rows without events: assume it did.
    pub fn mark_table_dirty(&mut self) {
        self.dirty = self.dirty.max(Dirty::Maybe);
    }

    /// Whether events changed the table since the last snapshot.
    pub fn table_dirty(&self) -> bool {
        self.dirty == Dirty::Yes
    }

    /// Takes a new snapshot unless paused. Rows are copied (and later
    /// re-sorted) only when they changed: surely after events, and after a
    /// tick only if their fingerprint (one pass, no allocation) moved.
    /// Counts, totals and the lower pane are small and always refreshed.
    pub fn refresh(&mut self, table: &Table, now_ns: u64) {
        let totals = &table.totals;
        self.rate.push(now_ns, totals.opened_active + totals.opened_passive);
        if self.ui.paused {
            return;
        }
        let s = &mut self.snap;
        let copy = match self.dirty {
            Dirty::Clean => false,
            Dirty::Maybe => fingerprint(table.rows()) != self.fingerprint || s.entries.len() != table.len(),
            Dirty::Yes => true,
        };
        if copy {
            s.entries.clear();
            s.entries.extend(table.rows().map(Entry::of));
            for (e, r) in s.entries.iter_mut().zip(table.rows()) {
                e.workload = r.owners.first().and_then(|o| self.workloads.of(o.pid, 0));
            }
            self.fingerprint = fingerprint(table.rows());
            self.order_dirty = true;
        }
        s.counts = table.counts();
        s.totals = totals.clone();
        s.rate = self.rate.per_sec();
        s.events.clear();
        s.events.extend(self.events.iter().cloned());
        s.closed.clear();
        s.closed.extend(table.history().rev().take(RECENT).cloned());
        s.closed.reverse();
        s.processes = table.traffic_by_process(TOP_PROCESSES);
        s.taken_ns = now_ns;
        self.dirty = Dirty::Clean;
    }

    /// Recomputes the display order if anything it depends on changed.
    pub fn reorder(&mut self) {
        if self.order_dirty {
            view::order(&self.snap.entries, self.ui.mode, &self.ui.filter, self.ui.sort, &mut self.order);
            self.order_dirty = false;
        }
        // Rows vanish and the window resizes: keep the last page full.
        self.clamp_scroll();
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.ui.mode = mode;
        self.ui.scroll = 0;
        self.order_dirty = true;
    }

    pub fn set_sort(&mut self, sort: Sort) {
        self.ui.sort = sort;
        self.order_dirty = true;
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.ui.filter = filter.to_lowercase();
        self.ui.scroll = 0;
        self.order_dirty = true;
    }

    pub fn toggle_pause(&mut self) {
        self.ui.paused = !self.ui.paused;
    }

    /// Moves the first visible row by `delta` rows.
    pub fn scroll_by(&mut self, delta: isize) {
        self.ui.scroll = self.ui.scroll.saturating_add_signed(delta);
        self.clamp_scroll();
    }

    pub fn scroll_to_end(&mut self) {
        self.ui.scroll = usize::MAX;
        self.clamp_scroll();
    }

    fn clamp_scroll(&mut self) {
        let last_page = self.order.len().saturating_sub(self.ui.page.max(1));
        self.ui.scroll = self.ui.scroll.min(last_page);
    }

    /// What the Age column counts from: frozen while paused.
    pub fn now_for_ages(&self, now_ns: u64) -> u64 {
        if self.ui.paused {
            self.snap.taken_ns
        } else {
            now_ns.max(self.snap.taken_ns)
        }
    }
}

/// An order-independent hash of the rows' displayed fields (the table's
/// iteration order is not stable across changes).
fn fingerprint<'a>(rows: impl Iterator<Item = &'a Row>) -> u64 {
    rows.fold(0u64, |acc, r| {
        let mut h = FxHasher::default();
        (r.proto, r.cookie, r.state, r.local, r.remote, r.opened_ns, r.seen_ns).hash(&mut h);
        (r.owners.len(), r.owners.first().map(|o| o.pid)).hash(&mut h);
        // Traffic moves once a second, when the counters are read.
        r.traffic.sampled_ns.hash(&mut h);
        acc.wrapping_add(h.finish())
    })
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
