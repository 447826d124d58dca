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
    group::{self, Group, GroupBy, Line},
    rate::RateMeter,
    view::{self, Collapsed, Entry, Mode, Query, Sort},
};
use crate::{
    event::{clock::WallClock, Event},
    filter::{self, Filter},
    live::Update,
    socket::TcpState,
    table::{Closed, ProcessTraffic, Row, StateCounts, Table, Totals},
};

/// Events and closed connections kept for the lower pane: enough that a
/// burst elsewhere (a mass close is tens of thousands of events) does not
/// push out what a filter is looking for at once.
pub const RECENT: usize = 10_000;

/// Program names the process pane lists before summing the rest as `other`.
const TOP_PROCESSES: usize = 100;

/// Rows copied between two looks at the keyboard (about 10 ms of work on
/// a loaded machine).
pub const COPY_SLICE: usize = 16_384;

/// Handshakes and closes kept for the listeners' rates: the window at
/// 40,000 connections a second.
const RECENT_CAP: usize = 400_000;

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
    /// Applied filter as typed (lowercase when it is plain text).
    pub filter: String,
    /// The applied filter when it is an expression (docs/filters.md).
    pub expr: Option<Filter>,
    /// Why the filter typed last was refused (shown while editing it).
    pub filter_error: Option<String>,
    /// List every row: closing states are not collapsed into counts.
    pub show_all: bool,
    /// The selected row: a position in the display order.
    pub cursor: usize,
    /// The selected connection of the closed pane, newest first.
    pub closed_cursor: usize,
    /// What the details pane shows, if open.
    pub details: Option<Details>,
    pub group_by: GroupBy,
    /// Labels of the groups listed with their rows.
    pub expanded: rustc_hash::FxHashSet<String>,
    /// The filter being typed after `/`.
    pub input: Option<String>,
    /// First visible row.
    pub scroll: usize,
    /// Table rows that fit on screen at the last draw (for PgUp/PgDn).
    pub page: usize,
    /// The WORKLOAD column (`w`): container, else unit, else cgroup.
    pub workload: bool,
    /// Names from DNS in the REMOTE column (`n`), where known.
    pub names: bool,
}

/// The connection the details pane follows: a row (which, once closed, is
/// found in the closed list by its cookie) or a closed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Details {
    Row { cookie: Option<u64>, local: std::net::SocketAddr, remote: std::net::SocketAddr },
    Closed { cookie: Option<u64>, local: std::net::SocketAddr, closed_ns: u64 },
}

/// One state change of a socket, as its event said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub ts_ns: u64,
    pub kind: EventKind,
    pub old: TcpState,
    pub new: TcpState,
}

/// Transitions kept per socket: a connection's life is about ten.
pub const TRANSITIONS: usize = 16;

pub struct App {
    pub snap: Snapshot,
    /// Indices into `snap.entries`, in display order.
    pub order: Vec<u32>,
    /// Count lines below the rows: states collapsed, with their counts.
    pub collapsed: Collapsed,
    /// The rows collapsed into those lines (counted in groups).
    hidden: Vec<u32>,
    /// The groups, when grouping.
    pub groups: Vec<Group>,
    /// What the table lists, line by line.
    pub lines: Vec<Line>,
    /// Each socket's recent transitions, by cookie, for the details pane;
    /// pruned to the rows and closed connections on screen.
    pub transitions: rustc_hash::FxHashMap<u64, VecDeque<Transition>>,
    pub ui: Ui,
    pub clock: WallClock,
    pub tz: TimeZone,
    /// Why process attribution is degraded, when it is.
    pub degraded: Option<String>,
    /// The model's latest warning and when it came (CLOCK_MONOTONIC ns):
    /// a full screen cannot have it printed over it, so the header shows it.
    pub warning: Option<(u64, String)>,
    events: VecDeque<Event>,
    rate: RateMeter,
    /// Whether the table changed since `snap` was taken.
    dirty: Dirty,
    /// [`fingerprint`] of the rows in `snap.entries`.
    fingerprint: u64,
    /// Mode, sort or filter changed since `order` was computed.
    order_dirty: bool,
    /// Rows copied between two calls of `refresh_sliced`'s `between`.
    copy_slice: usize,
    /// Handshakes completed (`false`) and connections closed (`true`) in
    /// the last [`RATE_WINDOW_NS`], by local address: listeners' rates.
    recent: VecDeque<(u64, u32, std::net::SocketAddr, bool)>,
    /// CLOCK_MONOTONIC ns of the first snapshot: rates over less than the
    /// window until it has passed.
    started_ns: Option<u64>,
}

impl App {
    pub fn new(degraded: Option<String>, tz: TimeZone) -> Self {
        Self {
            snap: Snapshot::default(),
            order: Vec::new(),
            collapsed: Vec::new(),
            hidden: Vec::new(),
            groups: Vec::new(),
            lines: Vec::new(),
            transitions: rustc_hash::FxHashMap::default(),
            ui: Ui::default(),
            clock: WallClock::new(),
            tz,
            degraded,
            warning: None,
            events: VecDeque::with_capacity(RECENT),
            rate: RateMeter::new(RATE_WINDOW_NS),
            dirty: Dirty::Yes,
            fingerprint: 0,
            order_dirty: true,
            copy_slice: COPY_SLICE,
            recent: VecDeque::new(),
            started_ns: None,
        }
    }

    /// Takes what one `Live::next` brought. Events are kept even while
    /// paused, so unpausing shows everything that happened.
    pub fn ingest(&mut self, update: Update) {
        if !update.events.is_empty() || update.reseeded {
            self.dirty = Dirty::Yes;
        }
        if let Some(w) = update.warnings.last() {
            self.warning = Some((crate::event::clock::monotonic_ns(), w.clone()));
            self.dirty = Dirty::Yes;
        }
        for e in update.events {
            // A socket being freed is bookkeeping, not news (as `netwatch events`).
            if e.kind == EventKind::Destroy {
                continue;
            }
            self.remember(&e);
            if matches!(e.kind, EventKind::Handshake | EventKind::Close) && self.recent.len() < RECENT_CAP {
                self.recent.push_back((e.ts_ns, e.netns, e.local, e.kind == EventKind::Close));
            }
            if self.events.len() == RECENT {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
    }

    fn remember(&mut self, e: &Event) {
        let list = self.transitions.entry(e.cookie).or_default();
        if list.len() == TRANSITIONS {
            list.pop_front();
        }
        list.push_back(Transition { ts_ns: e.ts_ns, kind: e.kind, old: e.old_state, new: e.new_state });
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
        let _: Result<bool, std::convert::Infallible> = self.refresh_sliced(table, now_ns, |_| Ok(true));
    }

    /// [`Self::refresh`], calling `between` after each [`COPY_SLICE`] rows
    /// copied: copying 130,000 rows takes 50-180 ms, too long for a key to
    /// wait. `between` may change the UI (the screen still shows the old
    /// snapshot, which stays whole until the copy is done); it returns
    /// `false` to give up (quit), and pausing abandons the copy.
    pub fn refresh_sliced<E>(
        &mut self,
        table: &Table,
        now_ns: u64,
        mut between: impl FnMut(&mut Self) -> Result<bool, E>,
    ) -> Result<bool, E> {
        let totals = &table.totals;
        self.rate.push(now_ns, totals.opened_active + totals.opened_passive);
        if self.ui.paused {
            return Ok(true);
        }
        self.started_ns.get_or_insert(now_ns);
        let had = !self.recent.is_empty();
        while self.recent.front().is_some_and(|&(t, ..)| t + RATE_WINDOW_NS < now_ns) {
            self.recent.pop_front();
        }
        if had && self.ui.group_by == GroupBy::Listener {
            // The rates move even when the rows do not.
            self.order_dirty = true;
        }
        let copy = match self.dirty {
            Dirty::Clean => false,
            Dirty::Maybe => fingerprint(table.rows()) != self.fingerprint || self.snap.entries.len() != table.len(),
            Dirty::Yes => true,
        };
        if copy {
            let mut fresh = Vec::with_capacity(table.len());
            let mut print = 0u64;
            let mut rows = table.rows();
            loop {
                let before = fresh.len();
                for r in rows.by_ref().take(self.copy_slice) {
                    let mut e = self.entry_of(table, r);
                    e.rhost = table.row_name(r);
                    fresh.push(e);
                    print = print.wrapping_add(row_hash(r));
                }
                if fresh.len() - before < self.copy_slice {
                    break;
                }
                if !between(self)? {
                    return Ok(false);
                }
                if self.ui.paused {
                    return Ok(true);
                }
            }
            self.snap.entries = fresh;
            self.fingerprint = print;
            self.order_dirty = true;
        }
        let s = &mut self.snap;
        s.counts = table.counts();
        s.totals = totals.clone();
        s.rate = self.rate.per_sec();
        s.events.clear();
        s.events.extend(self.events.iter().cloned());
        s.closed.clear();
        s.closed.extend(table.history().rev().take(RECENT).cloned());
        s.closed.reverse();
        s.processes = table.traffic_by_process(TOP_PROCESSES);
        // Bounded by what is on screen: history of sockets neither in the
        // table nor in the closed list is dropped, in one pass now and then.
        if self.transitions.len() > 2 * (s.entries.len() + s.closed.len()) + 4096 {
            let mut keep: rustc_hash::FxHashSet<u64> = s.entries.iter().filter_map(|e| e.row.cookie).collect();
            keep.extend(s.closed.iter().filter_map(|c| c.cookie));
            self.transitions.retain(|c, _| keep.contains(c));
        }
        s.taken_ns = now_ns;
        self.dirty = Dirty::Clean;
        Ok(true)
    }

    /// Handshakes and closes per local address over the rate window (up to
    /// `now_ns`), for the listener groups.
    fn activity(&self, now_ns: u64) -> group::Activity {
        let mut a = group::Activity::default();
        if self.ui.group_by != GroupBy::Listener {
            return a;
        }
        let since = now_ns.saturating_sub(RATE_WINDOW_NS);
        for &(_, netns, local, close) in self.recent.iter().filter(|r| r.0 >= since && r.0 <= now_ns) {
            let (accepted, closed) = a.by_local.entry((netns, local)).or_default();
            *if close { closed } else { accepted } += 1;
        }
        let span = now_ns.saturating_sub(self.started_ns.unwrap_or(now_ns)).min(RATE_WINDOW_NS);
        // Under a second the rate would be a guess: count over one.
        a.span_ms = (span.max(1_000_000_000) / 1_000_000) as u32;
        a
    }

    /// A row as the view keeps it, with what the view adds to it.
    fn entry_of(&self, table: &Table, r: &Row) -> Entry {
        let mut e = Entry::of(r);
        e.workload = table.row_workload(r);
        let last = e.row.cookie.and_then(|c| self.transitions.get(&c)).and_then(|t| t.back());
        e.state_since_ns = last.filter(|t| t.new == e.row.state).map(|t| t.ts_ns);
        e
    }

    /// Recomputes the display order if anything it depends on changed.
    pub fn reorder(&mut self) {
        if self.order_dirty {
            let now_ns = self.snap.taken_ns;
            let q = Query {
                mode: self.ui.mode,
                text: &self.ui.filter,
                expr: self.ui.expr.as_ref(),
                sort: self.ui.sort,
                // States the user asked for by name are listed whole.
                collapse_at: (!self.ui.show_all && !self.ui.expr.as_ref().is_some_and(|f| f.expr.names_state()))
                    .then_some(now_ns),
                now_ns,
            };
            view::order(&self.snap.entries, &q, &mut self.order, &mut self.collapsed, &mut self.hidden);
            self.groups = match self.ui.group_by {
                GroupBy::None => Vec::new(),
                by => group::groups(&self.snap.entries, &self.order, &self.hidden, by, &self.activity(now_ns)),
            };
            self.lines = group::lines(&self.order, &self.collapsed, &self.groups, &self.ui.expanded);
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

    /// Applies a filter: an expression when it reads as one (it starts
    /// with a field, `state`, `not`, `!` or `(`), else text to look for in
    /// any cell. A bad expression is refused, its error kept for the footer.
    pub fn set_filter(&mut self, filter: &str) -> bool {
        if filter::looks_like_expression(filter) {
            match filter::parse(filter) {
                Ok(expr) => {
                    self.ui.expr = Some(Filter { expr, ..Filter::default() });
                    self.ui.filter = filter.to_owned();
                }
                Err(e) => {
                    self.ui.filter_error = Some(e.to_string());
                    return false;
                }
            }
        } else {
            self.ui.expr = None;
            self.ui.filter = filter.to_lowercase();
        }
        self.ui.filter_error = None;
        self.ui.scroll = 0;
        self.ui.cursor = 0;
        self.order_dirty = true;
        true
    }

    pub fn toggle_show_all(&mut self) {
        self.ui.show_all = !self.ui.show_all;
        self.order_dirty = true;
    }

    /// The row under the cursor.
    pub fn selected(&self) -> Option<&Entry> {
        match self.lines.get(self.ui.cursor) {
            Some(&Line::Row(i)) => self.snap.entries.get(i as usize),
            _ => None,
        }
    }

    /// The group whose header is under the cursor.
    fn selected_group(&self) -> Option<&Group> {
        match self.lines.get(self.ui.cursor) {
            Some(&Line::Group(g)) => self.groups.get(g as usize),
            _ => None,
        }
    }

    pub fn set_group_by(&mut self, by: GroupBy) {
        self.ui.group_by = by;
        self.ui.cursor = 0;
        self.ui.scroll = 0;
        self.order_dirty = true;
    }

    /// Expands (`Some(true)`), collapses (`Some(false)`) or toggles the
    /// group under the cursor; `false` when the cursor is on no group.
    pub fn expand(&mut self, open: Option<bool>) -> bool {
        let Some(label) = self.selected_group().map(|g| g.label.clone()) else { return false };
        let now_open = open.unwrap_or(!self.ui.expanded.contains(&label));
        if now_open {
            self.ui.expanded.insert(label);
        } else {
            self.ui.expanded.remove(&label);
        }
        self.order_dirty = true;
        true
    }

    /// Expands or collapses every group.
    pub fn expand_all(&mut self, open: bool) {
        self.ui.expanded =
            if open { self.groups.iter().map(|g| g.label.clone()).collect() } else { Default::default() };
        self.order_dirty = true;
    }

    /// Enter: a group header opens or closes; a row opens the details
    /// pane, or closes it.
    pub fn enter(&mut self) {
        if !self.expand(None) {
            self.ui.details = match (self.ui.details, self.selected()) {
                (Some(_), _) | (None, None) => None,
                (None, Some(e)) => {
                    Some(Details::Row { cookie: e.row.cookie, local: e.row.local, remote: e.row.remote })
                }
            };
        }
    }

    /// Opens the details pane on the closed pane's selected connection.
    pub fn closed_details(&mut self) {
        let newest = super::events_pane::newest_closed(self).nth(self.ui.closed_cursor);
        self.ui.details = newest.map(|c| Details::Closed { cookie: c.cookie, local: c.local, closed_ns: c.closed_ns });
    }

    pub fn toggle_pause(&mut self) {
        self.ui.paused = !self.ui.paused;
    }

    /// Moves the cursor by `delta` lines; the page follows it.
    pub fn scroll_by(&mut self, delta: isize) {
        self.ui.cursor = self.ui.cursor.saturating_add_signed(delta);
        self.clamp_scroll();
    }

    pub fn scroll_to_end(&mut self) {
        self.ui.cursor = usize::MAX;
        self.clamp_scroll();
    }

    fn clamp_scroll(&mut self) {
        let page = self.ui.page.max(1);
        let lines = self.lines.len();
        self.ui.cursor = self.ui.cursor.min(lines.saturating_sub(1));
        let last_page = lines.saturating_sub(page);
        if self.ui.cursor < self.ui.scroll {
            self.ui.scroll = self.ui.cursor;
        } else if self.ui.cursor >= self.ui.scroll + page {
            self.ui.scroll = self.ui.cursor + 1 - page;
        }
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
    rows.fold(0u64, |acc, r| acc.wrapping_add(row_hash(r)))
}

/// One row's share of [`fingerprint`].
fn row_hash(r: &Row) -> u64 {
    let mut h = FxHasher::default();
    (r.proto, r.cookie, r.state, r.local, r.remote, r.opened_ns, r.seen_ns).hash(&mut h);
    (r.owners.len(), r.owners.first().map(|o| o.pid)).hash(&mut h);
    // Traffic moves once a second, when the counters are read.
    r.traffic.sampled_ns.hash(&mut h);
    // A listener's drop counter moves with the minisocket re-read.
    r.traffic.listen_drops.hash(&mut h);
    h.finish()
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
