//! Whole frames drawn on ratatui's `TestBackend`, read back as text.

use jiff::tz::TimeZone;
use ratatui::{backend::TestBackend, Terminal};

use super::{
    app::{App, Pane},
    fixtures, ui,
    view::Mode,
};
use crate::live::Update;

/// 140 x 30 frame of the fixture table plus a 3 ms connection, 5 s after boot.
fn screen(prepare: impl FnOnce(&mut App)) -> Vec<String> {
    screen_of(140, prepare)
}

fn screen_of(width: u16, prepare: impl FnOnce(&mut App)) -> Vec<String> {
    let mut t = fixtures::table();
    let mut app = App::new(None, TimeZone::UTC);
    fixtures::live(&mut t, &mut app, fixtures::short_lived());
    app.refresh(&t, 5_000_000_000);
    prepare(&mut app);
    let mut term = Terminal::new(TestBackend::new(width, 30)).unwrap();
    term.draw(|f| ui::draw(f, &mut app, 5_000_000_000)).unwrap();
    let buf = term.backend().buffer();
    let width = usize::from(buf.area.width);
    buf.content.chunks(width).map(|line| line.iter().map(|c| c.symbol()).collect::<String>()).collect()
}

fn find<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{}", lines.join("\n")))
}

fn absent(lines: &[String], needle: &str) {
    assert!(!lines.iter().any(|l| l.contains(needle)), "{needle:?} on screen:\n{}", lines.join("\n"));
}

/// The key `c` pressed.
fn press(app: &mut App, c: char) {
    let key = crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
    super::input::on_terminal_event(app, &crossterm::event::Event::Key(key));
}

#[test]
fn header_shows_nonzero_states_totals_and_view() {
    let s = screen(|_| {});
    let title = find(&s, " netwatch ");
    for want in ["5 tcp", "1 udp", "view: all", "sort: State ^"] {
        assert!(title.contains(want), "{want:?} not in {title:?}");
    }
    // The 3 ms connection's client side ended in... LAST_ACK, so no TIME_WAIT row.
    let states = find(&s, "LISTEN 2");
    assert!(states.contains("ESTABLISHED 2") && states.contains("TIME_WAIT 1"), "{states:?}");
    assert!(!states.contains("SYN_SENT"), "zero counts hidden: {states:?}");
    let totals = find(&s, "opened ");
    for want in ["opened 1 active / 0 passive", "closed 1", "failed 0", "lost 0", "reseeds 0", "conn/s"] {
        assert!(totals.contains(want), "{want:?} not in {totals:?}");
    }
}

/// What the model warns of while the screen is up, and packets a full
/// traffic map left out, are in the header, not printed over the screen.
#[test]
fn header_shows_the_latest_warning_and_uncounted_packets() {
    absent(&screen(|_| {}), "uncounted pkts");
    let s = screen(|app| {
        let warnings = vec!["first".to_owned(), "the traffic map is full (1 sockets): 7 packets".to_owned()];
        app.ingest(Update { warnings, ..Update::default() });
        app.snap.totals.traffic_uncounted = 7;
    });
    let line = find(&s, "warning at ");
    assert!(line.contains(": the traffic map is full (1 sockets): 7 packets"), "{line:?}");
    absent(&s, "first");
    assert!(find(&s, "opened ").contains("uncounted pkts 7"), "{s:?}");
}

#[test]
fn table_rows_read_like_netstat() {
    let s = screen(|_| {});
    find(&s, "Connections: 5 shown of 6 (z: list collapsed states)");
    let count = find(&s, "1 sockets collapsed");
    assert!(count.contains("TIME_WAIT") && count.contains("z lists them"), "{count:?}");
    let s = screen(|a| a.toggle_show_all());
    find(&s, "Connections: 6 shown of 6 ");
    let header = find(&s, "Foreign Address");
    assert!(header.contains("Proto") && header.contains("PID/Program") && header.contains("Age"));
    let listen = find(&s, "127.0.0.1:8080       ");
    assert!(listen.contains("tcp ") && listen.contains("LISTEN") && listen.contains("100/server"), "{listen:?}");
    assert!(listen.contains(">4s"), "age from first sight: {listen:?}");
    let v6 = find(&s, "[::1]:22");
    assert!(v6.starts_with("tcp6") && v6.contains("1/sshd"), "{v6:?}");
    let tw = find(&s, "127.0.0.1:40002");
    assert!(tw.contains("TIME_WAIT") && tw.contains(" - "), "no owner: {tw:?}");
    // Default order: listeners first.
    let pos = |needle: &str| s.iter().position(|l| l.contains(needle)).unwrap();
    assert!(pos("[::1]:22") < pos("TIME_WAIT  "));
}

#[test]
fn lower_pane_shows_events_then_closed_with_lifetimes() {
    let s = screen(|_| {});
    find(&s, "[e] Events (5)");
    let close = find(&s, "LAST_ACK -> CLOSE");
    assert!(close.contains("close") && close.contains("300/nw-peer") && close.contains("3.0ms"), "{close:?}");
    let time: Vec<char> = close.chars().take(12).collect();
    assert!(time[2] == ':' && time[5] == ':' && time[8] == '.', "HH:MM:SS.mmm first: {close:?}");
    absent(&s, "destroy");
    let s = screen(|a| a.ui.pane = Pane::Closed);
    find(&s, "[c] Closed (1)");
    let closed = find(&s, "127.0.0.1:40003");
    assert!(closed.contains("closed") && closed.contains("LAST_ACK") && closed.contains("3.0ms"), "{closed:?}");
}

#[test]
fn filter_mode_pause_and_help_are_visible() {
    let s = screen(|a| {
        a.set_filter("SERVER");
        a.toggle_pause();
    });
    find(&s, "filter: server");
    find(&s, "PAUSED");
    find(&s, "Connections: 2 shown of 6");
    absent(&s, "1/sshd");
    absent(&s, "300/nw-peer");
    let s = screen(|a| {
        a.set_filter("40003");
    });
    find(&s, "LAST_ACK -> CLOSE");
    let s = screen(|a| {
        a.set_filter("40003");
        a.ui.pane = Pane::Closed;
    });
    find(&s, "[c] Closed (1)");
    find(&s, "127.0.0.1:40003");
    let s = screen(|a| a.set_mode(Mode::Listening));
    find(&s, "view: listening");
    find(&s, "Connections: 3 shown of 6");
    absent(&s, "127.0.0.1:40001");
    let s = screen(|a| a.ui.input = Some("80".into()));
    find(&s, "filter: 80_");
    let s = screen(|a| a.ui.help = true);
    find(&s, "netwatch keys");
    find(&s, "filter: text in any column, or an expression");
}

/// `w` adds the Workload column: the container's name, else the unit, `-`
/// for an owner of unknown workload; the `/` filter matches it too.
#[test]
fn workload_column_and_filter() {
    let web = fixtures::workload("/machine.slice/libpod-x.scope", Some("libpod-x.scope"), Some("webctr"));
    let give = |a: &mut App| {
        for e in &mut a.snap.entries {
            e.workload = None;
        }
        a.snap.entries[0].workload = Some(web.clone());
    };
    absent(&screen(give), "Workload");
    let s = screen(|a| {
        give(a);
        press(a, 'w');
    });
    find(&s, "Workload");
    find(&s, "webctr");
    let filtered = screen(|a| {
        give(a);
        a.set_filter("webctr");
    });
    absent(&filtered, "Workload");
    assert!(find(&filtered, "Connections:").contains("1 shown"), "{filtered:?}");
    // The details pane says where the selected connection's holder runs.
    let details = screen(|a| {
        give(a);
        let r = &a.snap.entries[0].row;
        a.ui.details = Some(super::app::Details::Row { cookie: r.cookie, local: r.local, remote: r.remote });
    });
    assert!(find(&details, "cgroup /machine.slice/libpod-x.scope").contains("container podman webctr"), "{details:?}");
}

/// `n` shows the remote's name from DNS in REMOTE, with the port, where a
/// row has one; the others keep their address.
#[test]
fn names_key_shows_the_remote_name() {
    let give = |a: &mut App| {
        for e in &mut a.snap.entries {
            e.rhost = None;
        }
        a.snap.entries[0].rhost = Some("web.example.test".into());
    };
    let port = |a: &App| a.snap.entries[0].row.remote.port();
    let mut remote_port = 0;
    let plain = screen(|a| {
        give(a);
        remote_port = port(a);
    });
    absent(&plain, "web.example.test");
    let named = screen(|a| {
        give(a);
        press(a, 'n');
    });
    find(&named, &format!("web.example.test:{remote_port}"));
    // `/` finds the row by its name, shown or not.
    let filtered = screen(|a| {
        give(a);
        a.set_filter("example.test");
    });
    assert!(find(&filtered, "Connections:").contains("1 shown"), "{filtered:?}");
}

#[test]
fn latency_columns_show_where_the_addresses_keep_their_room() {
    let give = |a: &mut App| {
        let e = a.snap.entries.iter_mut().find(|e| e.row.local.port() == 40001).unwrap();
        e.connect_us = Some(2_050_000);
        e.rtt_us = Some(40);
        e.row.traffic.rtt = Some(crate::seed::diag::Rtt { srtt_us: 40, rttvar_us: 20, total_retrans: 3 });
    };
    let narrow = screen(give);
    absent(&narrow, "Connect ");
    absent(&narrow, " RTT");
    let wide = screen_of(151, give);
    let header = find(&wide, "Foreign Address");
    assert!(header.trim_end().ends_with(" Tx      Connect RTT"), "{header:?}");
    let client = find(&wide, "200/curl");
    assert!(client.contains(" 2s ") && client.contains(" 40us "), "{client:?}");
    let server = find(&wide, "100/server");
    assert!(server.trim_end().ends_with(" 0       -       -"), "no figures: {server:?}");
    // The workload column takes its room first.
    absent(
        &screen_of(151, |a| {
            give(a);
            a.ui.workload = true;
        }),
        "Connect ",
    );
    // The details pane has the figures at any width.
    let details = screen(|a| {
        give(a);
        let r = &a.snap.entries.iter().find(|e| e.row.local.port() == 40001).unwrap().row;
        a.ui.details = Some(super::app::Details::Row { cookie: r.cookie, local: r.local, remote: r.remote });
    });
    let line = find(&details, "rtt now");
    assert!(line.contains("40us") && line.contains("rttvar 20us") && line.contains("retransmitted 3"), "{line:?}");
}

/// The details pane of an open connection says its drops, per reason,
/// as the kernel's row has them now; a connection without drops, nothing.
#[test]
fn details_say_the_drops_per_reason() {
    let open = |drops: u32| {
        screen(move |a| {
            let e = a.snap.entries.iter_mut().find(|e| e.row.local.port() == 40001).unwrap();
            let t = &mut e.row.traffic.totals;
            (t.drops, t.drop_slots, t.drop_counts) = (drops, 9999 | (9998 << 16), [4, 1, 0]);
            let r = &e.row;
            a.ui.details = Some(super::app::Details::Row { cookie: r.cookie, local: r.local, remote: r.remote });
        })
    };
    let screen = open(6);
    let line = find(&screen, "dropped ");
    assert!(line.contains("dropped 6   by reason 9998 1, 9999 4, other 1"), "{line:?}");
    absent(&open(0), "dropped ");
}
