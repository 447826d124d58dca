//! Checks on the event history of one socket (all events with its cookie).

use std::collections::BTreeMap;

use crate::event::SockEvent;

/// Ways a connection may end, as successive `new_state`s after ESTABLISHED.
pub const CLOSE_SEQUENCES: [[&str; 3]; 3] =
    [["FIN_WAIT1", "FIN_WAIT2", "CLOSE"], ["FIN_WAIT1", "CLOSING", "CLOSE"], ["CLOSE_WAIT", "LAST_ACK", "CLOSE"]];

/// Which end of a connection a socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The connecting socket: CLOSE->SYN_SENT->ESTABLISHED->...->CLOSE.
    Client,
    /// The accepted child: ->SYN_RECV->ESTABLISHED->...->CLOSE.
    Child,
}

/// Who must own every event of a socket.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub pid: u64,
    pub comm: &'a str,
    pub uid: u64,
}

/// Events grouped by socket cookie, each group in output order.
pub fn by_cookie(events: &[SockEvent]) -> BTreeMap<u64, Vec<&SockEvent>> {
    let mut map: BTreeMap<u64, Vec<&SockEvent>> = BTreeMap::new();
    for e in events {
        map.entry(e.cookie).or_default().push(e);
    }
    map
}

/// Whether a passive socket's events are those of a stillborn child: two
/// segments of one handshake handled at once (two CPUs, or two vCPUs under
/// qemu) may each clone a child; the kernel keeps one and closes the other
/// at once (SYN_RECV -> CLOSE, never ESTABLISHED). A real socket of the
/// server's, reported as such, but no connection of the client's.
pub fn stillborn(evs: &[&SockEvent]) -> bool {
    evs.iter().any(|e| e.old_state == "SYN_RECV" && e.new_state == "CLOSE")
        && !evs.iter().any(|e| e.new_state == "ESTABLISHED")
}

/// The events of every socket but stillborn children: a connection's, not
/// a race's.
pub fn without_stillborn(events: &[SockEvent]) -> Vec<&SockEvent> {
    let cookies = by_cookie(events);
    events.iter().filter(|e| !stillborn(&cookies[&e.cookie])).collect()
}

/// The `event` value the contract gives to a transition.
pub fn kind_of(old: &str, new: &str) -> &'static str {
    match (old, new) {
        ("CLOSE", "SYN_SENT") => "connect",
        ("SYN_SENT", "ESTABLISHED") => "established",
        ("SYN_RECV", "ESTABLISHED") => "handshake",
        ("SYN_SENT", "CLOSE") => "connect_failed",
        (_, "CLOSE") => "close",
        (_, "LISTEN") => "listen",
        _ => "state",
    }
}

/// Prints events one per line, for assertion messages.
pub fn show(events: &[&SockEvent]) -> String {
    events.iter().map(|e| format!("    {}\n", e.line)).collect()
}

/// Checks a full lifecycle: the right transitions in order, chained
/// (each `old_state` is the previous `new_state`), each with the right
/// `event` name, ending in exactly one `close` that carries `duration_ms`.
///
/// "Transitions" to the same state (FIN_WAIT1 -> FIN_WAIT1 when a socket is
/// closed after a shutdown) are real kernel calls: they may be reported, as
/// `state` events, and are otherwise ignored.
pub fn check_lifecycle(all: &[&SockEvent], role: Role) -> Result<(), String> {
    let fail = |why: String| Err(format!("{why}; events of this socket:\n{}", show(all)));
    // `accept` (accept() returning the socket) changes no state either.
    if let Some(e) = all.iter().find(|e| e.old_state == e.new_state && e.event != "state" && e.event != "accept") {
        return fail(format!("a same-state transition must be a `state` or `accept` event: {}", e.line));
    }
    let events: Vec<&SockEvent> = all.iter().copied().filter(|e| e.old_state != e.new_state).collect();
    let news: Vec<&str> = events.iter().map(|e| e.new_state.as_str()).collect();
    let opening: &[&str] = match role {
        Role::Client => &["SYN_SENT", "ESTABLISHED"],
        Role::Child => &["SYN_RECV", "ESTABLISHED"],
    };
    let valid = CLOSE_SEQUENCES.iter().any(|tail| news.len() == 5 && news[..2] == *opening && news[2..] == *tail);
    if !valid {
        return fail(format!(
            "{role:?} state sequence {news:?} is not {opening:?} followed by one of {CLOSE_SEQUENCES:?}"
        ));
    }
    if role == Role::Client && events[0].old_state != "CLOSE" {
        return fail(format!("connect must start from CLOSE, not {}", events[0].old_state));
    }
    for pair in events.windows(2) {
        if pair[1].old_state != pair[0].new_state {
            return fail(format!("transition chain broken at {} after {}", pair[1].line, pair[0].line));
        }
    }
    let skip = usize::from(role == Role::Child); // the child's first old_state is not specified
    for e in &events[skip..] {
        let want = kind_of(&e.old_state, &e.new_state);
        if e.event != want {
            return fail(format!("event {:?} should be {want:?}: {}", e.event, e.line));
        }
    }
    if role == Role::Child && events[0].event != "state" {
        return fail(format!("the child's SYN_RECV should be a `state` event: {}", events[0].line));
    }
    let close = events.last().expect("five events");
    match close.duration_ms {
        Some(d) if d > 0.0 => Ok(()),
        other => fail(format!("close must carry duration_ms > 0, got {other:?}: {}", close.line)),
    }
}

/// Checks that every event carries the owner's pid, comm and uid.
pub fn check_owner(events: &[&SockEvent], owner: Owner<'_>) -> Result<(), String> {
    let wrong: Vec<&SockEvent> =
        events.iter().copied().filter(|e| e.pid != owner.pid || e.comm != owner.comm || e.uid != owner.uid).collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} event(s) not attributed to pid={} comm={} uid={}:\n{}all events of this socket:\n{}",
            wrong.len(),
            owner.pid,
            owner.comm,
            owner.uid,
            show(&wrong),
            show(events)
        ))
    }
}

/// Collects failures so one test run reports many of them, then panics.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn check(&mut self, what: impl std::fmt::Display, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(format!("{what}: {e}"));
        }
    }

    pub fn push(&mut self, p: String) {
        self.0.push(p);
    }

    /// Panics with the first 10 problems (and how many there were).
    pub fn assert_none(self, context: &str) {
        if self.0.is_empty() {
            return;
        }
        // First lines with numbers blanked out: what went wrong, how often.
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for p in &self.0 {
            let mut kind = String::new();
            for c in p.lines().next().unwrap_or_default().chars().take(160) {
                if !c.is_ascii_digit() {
                    kind.push(c);
                } else if !kind.ends_with('N') {
                    kind.push('N');
                }
            }
            *kinds.entry(kind).or_default() += 1;
        }
        let histogram: String = kinds.iter().map(|(k, n)| format!("  {n:>5} x {k}\n")).collect();
        let shown: Vec<&str> = self.0.iter().take(10).map(String::as_str).collect();
        panic!(
            "{context}: {} problem(s):\n{histogram}\n{}:\n\n{}",
            self.0.len(),
            if self.0.len() > 10 { "the first 10" } else { "all" },
            shown.join("\n\n")
        );
    }
}
