//! Starting and stopping: nothing stays in the kernel after a signal, and a
//! closed stdout ends netwatch quietly.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use netwatch_common::names::{ALL_PROGRAMS as PROGRAMS, MAP_READER_AWAKE};
use netwatch_tests::bpf::{array_value, held_by, links, map_of, nw_programs, pinned};
use netwatch_tests::{wait, Netwatch, Peer};

#[test]
fn sigterm_detaches_everything() {
    super::setup();
    detaches_on(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_detaches_everything() {
    super::setup();
    detaches_on(libc::SIGINT, "SIGINT");
}

/// No namespace of its own: no traffic is looked at, and programs, links
/// and pins are the kernel's, in no namespace.
fn detaches_on(signal: libc::c_int, name: &str) {
    let pinned_before = pinned();
    let nw = Netwatch::start(&["events", "--json"]);

    // Programs of other netwatches (other tests run at the same time) are
    // not ours: ours are those this process holds.
    let held = held_by(nw.pid(), "prog_id");
    let ours: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| held.contains(id)).collect();
    let names: BTreeSet<&str> = ours.iter().map(|(_, n)| n.as_str()).collect();
    for want in PROGRAMS {
        assert!(names.contains(want), "while running, `bpftool prog show` lacks {want}; new nw_ programs: {ours:?}");
    }
    let new_pins: Vec<_> = pinned().difference(&pinned_before).cloned().collect();
    assert!(new_pins.is_empty(), "netwatch pinned under /sys/fs/bpf: {new_pins:?}");

    nw.stop_with(signal);
    // Program memory is released asynchronously after the last fd closes.
    let ids: BTreeSet<u64> = ours.iter().map(|(id, _)| *id).collect();
    wait::until(&format!("our programs to be unloaded after {name} and exit 0"), Duration::from_secs(3), || {
        let left: Vec<(u64, String)> = nw_programs().into_iter().filter(|(id, _)| ids.contains(id)).collect();
        wait::check(left.is_empty(), || format!("still loaded: {left:?}"))
    });
    let stale_links: Vec<(u64, u64)> = links().into_iter().filter(|(_, prog)| ids.contains(prog)).collect();
    assert!(stale_links.is_empty(), "after {name}, links to our programs remain: {stale_links:?}");
    let new_pins: Vec<_> = pinned().difference(&pinned_before).cloned().collect();
    assert!(new_pins.is_empty(), "after {name}, left pinned under /sys/fs/bpf: {new_pins:?}");
}

#[test]
fn closed_pipe_ends_quietly() {
    let ns = super::setup_in("pipe");
    let (mut nw, stdout) = Netwatch::start_raw(&["events", "--json", "--netns", &ns.arg()]);
    let (_server, srv) = Peer::server("127.0.0.1:0", None);

    // `netwatch events | head -1`: read one line, then close the pipe.
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        Peer::client(srv.addr, 1, 0);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            break line;
        }
        assert!(Instant::now() < deadline, "netwatch printed no event in 10 s");
    };
    reader.join().expect("reader thread");
    assert!(line.starts_with('{'), "first line is not a JSON event: {line:?}");

    // Keep making events so netwatch writes into the closed pipe.
    let status = wait::until("netwatch to exit after its stdout was closed", Duration::from_secs(5), || {
        nw.try_status().ok_or_else(|| {
            Peer::client(srv.addr, 5, 0);
            format!("still running; stderr:\n{}", nw.stderr_lines().join("\n"))
        })
    });
    let stderr = nw.stderr_to_eof().join("\n");
    assert!(status.success(), "netwatch exited with {status} after its stdout closed; stderr:\n{stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("broken pipe") && !lower.contains("panicked"),
        "netwatch complained about the closed pipe:\n{stderr}"
    );
}

/// Events reach the output while netwatch runs, whether the reader was
/// draining on its own clock (a burst) or had gone to sleep after a quiet
/// spell (a lone connection later): every connection's two closes are
/// printed within a second, before netwatch is stopped.
#[test]
fn events_arrive_after_bursts_and_quiet_spells() {
    let ns = super::setup_in("quiet");
    let rounds: [u64; 4] = [50, 1, 20, 1];
    let (mut server, srv) = Peer::server("127.0.0.1:0", Some(rounds.iter().sum()));
    let port = srv.addr.port().to_string();
    let nw = super::events_in(&ns, &["--port", &port]);
    // Connections' closes, not the listener's (the server exits after its count).
    let closes = || {
        let lines = nw.lines();
        lines.iter().filter(|l| l.contains("\"event\":\"close\"") && !l.contains("\"old_state\":\"LISTEN\"")).count()
            as u64
    };
    let awake = map_of(nw.pid(), MAP_READER_AWAKE).expect("netwatch holds its reader flag");
    let mut expected = 0;
    for (i, n) in rounds.into_iter().enumerate() {
        // Quiet until the reader has stopped draining on its own clock (the
        // flag the programs read to know whether to wake it).
        wait::until("the reader to go to sleep", Duration::from_secs(5), || {
            let flag = array_value(awake, 0);
            wait::check(flag == 0, || format!("READER_AWAKE = {flag}"))
        });
        Peer::client(srv.addr, n, 1);
        expected += 2 * n;
        wait::until(&format!("round {i}'s closes ({n} connections) within a second"), Duration::from_secs(1), || {
            let seen = closes();
            wait::check(seen == expected, || format!("{seen} of {expected} closes printed"))
        });
    }
    server.wait_success(Duration::from_secs(10));
    nw.stop();
}

/// A server that shuts its side down and then closes, as HTTP servers do:
/// the close sets the state the shutdown already set (the kernel still
/// fires its tracepoint), which is no transition and no event. The states
/// the server's sockets go through are exactly the FIN handshake's, each
/// once, FIN_WAIT1 named after the test's own process, which made the call.
#[test]
fn a_close_after_shutdown_is_no_second_fin_wait1() {
    use std::io::{Read as _, Write as _};
    let ns = super::setup_in("shutdown");
    let nw = super::events_in(&ns, &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let port = listener.local_addr().unwrap().port();
    const N: usize = 5;
    for _ in 0..N {
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
        let (mut served, _) = listener.accept().expect("accepting");
        served.write_all(b"x").expect("writing");
        served.shutdown(std::net::Shutdown::Write).expect("shutting down");
        drop(served);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).expect("reading to the end");
    }
    let stopped = nw.stop();
    let events = netwatch_tests::event::sock_events(&stopped.events());
    let mut per_socket: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let served =
        |e: &&netwatch_tests::SockEvent| e.event != "accept" && e.old_state != "LISTEN" && e.new_state != "LISTEN";
    for e in events.iter().filter(|e| e.sport == port).filter(served) {
        per_socket.entry(e.cookie).or_default().push(format!("{}->{}", e.old_state, e.new_state));
        if e.new_state == "FIN_WAIT1" {
            assert_eq!(e.pid, u64::from(std::process::id()), "the closer: {}", e.line);
        }
    }
    assert_eq!(per_socket.len(), N, "server-side sockets: {per_socket:?}");
    for states in per_socket.values() {
        assert_eq!(
            states,
            &["SYN_RECV->ESTABLISHED", "ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2", "FIN_WAIT2->CLOSE"],
            "{per_socket:?}"
        );
    }
}

/// A UDP socket closed without ever having a port (what a resolver opens
/// and leaves unused) is no event; one that had a port is, with it and
/// its lifetime, from `socket()` to its release: also when
/// `connect(AF_UNSPEC)` took its port back before the close (the event
/// names the port it used), and without packet counting.
#[test]
fn a_udp_socket_that_never_had_a_port_is_no_event() {
    use std::os::fd::AsRawFd as _;
    let ns = super::setup_in("udp-unbound");
    let nw = super::events_in(&ns, &[]);
    // SAFETY: socket() and close() of a descriptor of our own (std makes
    // no UDP socket without binding it).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0, "socket(): {}", std::io::Error::last_os_error());
        libc::close(fd);
    }
    let used = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding");
    let port = used.local_addr().unwrap().port();
    used.send_to(b"x", ("127.0.0.1", port)).expect("sending");
    let lived = Instant::now();
    thread::sleep(Duration::from_millis(100));
    drop(used);
    let lived = lived.elapsed();
    // Bound by its connect(), disconnected: getsockname() says port 0.
    let dropped = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding");
    let dropped_port = dropped.local_addr().unwrap().port();
    dropped.connect(("127.0.0.1", port)).expect("connecting");
    // SAFETY: connect() of our own descriptor to an AF_UNSPEC address,
    // the way to disconnect a UDP socket.
    let rc = unsafe {
        let mut unspec: libc::sockaddr = std::mem::zeroed();
        unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(dropped.as_raw_fd(), &unspec, size_of::<libc::sockaddr>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "disconnecting: {}", std::io::Error::last_os_error());
    drop(dropped);
    let pid = u64::from(std::process::id());
    let ours = |lines: &[String]| -> Vec<netwatch_tests::SockEvent> {
        let events = netwatch_tests::event::sock_events(&netwatch_tests::event::parse_all(lines));
        events.into_iter().filter(|e| e.event == "udp_close" && e.pid == pid).collect()
    };
    // Released in this order, reported in it: once the last socket's
    // close is in, the others' would be too.
    wait::until("the disconnected socket's udp_close", Duration::from_secs(10), || {
        let closes = ours(&nw.lines());
        wait::check(closes.iter().any(|e| e.sport == dropped_port), || format!("{closes:#?}"))
    });
    let closes = ours(&nw.stop().lines);
    let ports: Vec<u16> = closes.iter().map(|e| e.sport).collect();
    assert_eq!(ports, [port, dropped_port], "{closes:#?}");
    let ms = closes[0].duration_ms.unwrap_or_else(|| panic!("no lifetime: {}", closes[0].line));
    // At least the sleep; at most what bind() to drop() took, and a bit.
    assert!(ms >= 100.0 && ms <= lived.as_secs_f64() * 1000.0 + 50.0, "{ms} ms: {}", closes[0].line);
}
