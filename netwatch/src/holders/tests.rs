use netwatch_common::{Bytes16, OwnerSource};

use super::*;
use crate::socket::TcpState;

fn owner(pid: u32, name: &str) -> Owner {
    Owner { pid, comm: Comm::new(name) }
}

fn row(inode: u64, owners: &[Owner]) -> Row {
    Row {
        netns: 1,
        cookie: Some(inode + 1000),
        inode,
        owners: owners.iter().copied().collect(),
        ..Row::fixture(TcpState::Listen, "127.0.0.1:8080", "0.0.0.0:0")
    }
}

fn proc_event(kind: ProcKind, tgid: u32, parent: u32, comm: &str, ts_ns: u64) -> ProcEvent {
    let mut c = [0; 16];
    c[..comm.len()].copy_from_slice(comm.as_bytes());
    ProcEvent { ts_ns, kind: kind as u32, tgid, parent, _pad: 0, comm: Bytes16(c) }
}

fn names(r: &Row) -> Vec<(u32, String)> {
    r.owners.iter().map(|o| (o.pid, o.comm.text().to_owned())).collect()
}

/// [`update_row`] for these execs and exits and forks, with no listener to tell.
fn update(r: &mut Row, execs: &[(u32, &str)], exits: &[u32], fork: impl Fn(u32) -> bool) -> bool {
    let execs: FxHashMap<u32, Comm> = execs.iter().map(|&(p, n)| (p, Comm::new(n))).collect();
    update_row(r, &execs, &exits.iter().copied().collect(), &fork, &mut ListenerOwners::default())
}

#[test]
fn exec_renames_the_holder_at_once_without_a_walk() {
    let mut r = row(7, &[owner(10, "systemd-socket-")]);
    let want = update(&mut r, &[(10, "python3")], &[], |_| false);
    assert!(!want, "the same pid still holds it");
    assert_eq!(names(&r), [(10, "python3".to_owned())]);
}

#[test]
fn a_sole_holders_exit_asks_for_a_walk_and_keeps_it_until_then() {
    let mut r = row(7, &[owner(10, "nginx")]);
    assert!(update(&mut r, &[], &[10], |_| false));
    assert_eq!(names(&r), [(10, "nginx".to_owned())]);
}

#[test]
fn a_shared_sockets_dead_holder_goes_at_once() {
    let mut r = row(7, &[owner(10, "nginx"), owner(11, "nginx"), owner(12, "nginx")]);
    assert!(update(&mut r, &[], &[10], |_| false));
    assert_eq!(names(&r), [(11, "nginx".to_owned()), (12, "nginx".to_owned())]);
}

/// A shell and the child it forked both held a socket and exited in one
/// batch: the row keeps them until the walk (which, finding no holder,
/// keeps the closer for the socket's last events), rather than go
/// ownerless at once.
#[test]
fn holders_that_all_exit_together_stay_until_the_walk() {
    let mut r = row(7, &[owner(10, "sh"), owner(11, "sleep")]);
    assert!(update(&mut r, &[], &[10, 11], |_| false));
    assert_eq!(names(&r), [(10, "sh".to_owned()), (11, "sleep".to_owned())]);
}

#[test]
fn a_holders_fork_asks_for_a_walk_others_do_not() {
    let mut r = row(7, &[owner(10, "server")]);
    assert!(update(&mut r, &[], &[], |pid| pid == 10));
    assert!(!update(&mut r, &[], &[], |pid| pid == 99));
}

#[test]
fn a_walk_lists_each_process_once_in_pid_order() {
    let mut pairs = vec![
        (5, 30, Comm::new("w")),
        (5, 12, Comm::new("m")),
        (5, 30, Comm::new("w")), // a second descriptor of the same process
        (6, 40, Comm::new("x")),
        (5, 20, Comm::new("w")),
    ];
    let w = group(&mut pairs);
    let pids = |i: u64| w[&i].iter().map(|o| o.pid).collect::<Vec<_>>();
    assert_eq!(pids(5), [12, 20, 30]);
    assert_eq!(pids(6), [40]);
}

#[test]
fn on_procs_tracks_forks_and_forgets_exited_parents() {
    let mut h = Holders::default();
    let mut t = Table::new(0);
    let now = monotonic_ns();
    h.on_procs(&mut t, &mut ListenerOwners::default(), &[proc_event(ProcKind::Fork, 21, 20, "srv", now)]);
    assert!(h.forked.contains_key(&20));
    h.on_procs(&mut t, &mut ListenerOwners::default(), &[proc_event(ProcKind::Exit, 20, 0, "srv", now)]);
    assert!(!h.forked.contains_key(&20));
    assert!(!h.wanted, "no row is held by either");
}

/// A connection that arrived between a daemon parent's exit and the walk
/// was lent the parent (its listener's holder then); the walk finds the
/// child holding the listener, and the connection, which has no file of
/// its own until `accept()`, is lent the child, not left with nobody.
#[test]
fn a_lent_connection_follows_its_listeners_new_holder() {
    let mut listeners = ListenerOwners::default();
    let seeded = crate::seed::SeedSocket {
        cookie: Some(1007),
        netns: 1,
        owners: vec![crate::seed::Process { pid: 10, comm: "daemon".into(), fd: 3 }],
        ..crate::seed::SeedSocket::fixture(TcpState::Listen, "127.0.0.1:8080", "0.0.0.0:0")
    };
    listeners.seed(&[seeded]);
    let mut t = Table::new(0);
    t.insert_row_for_tests(row(7, &[owner(10, "daemon")]));
    let child = Row {
        state: TcpState::Established,
        remote: "127.0.0.1:5000".parse().unwrap(),
        cookie: Some(2000),
        owner_source: OwnerSource::Listener,
        ..row(0, &[owner(10, "daemon")])
    };
    t.insert_row_for_tests(child);
    let walk: Walk = [(7, [owner(11, "daemon")].into_iter().collect())].into_iter().collect();
    apply_walk(&mut t, &mut listeners, &walk, &[10].into_iter().collect());
    let by_cookie = |c: u64| t.rows().find(|r| r.cookie == Some(c)).map(names);
    assert_eq!(by_cookie(1007), Some(vec![(11, "daemon".to_owned())]));
    assert_eq!(by_cookie(2000), Some(vec![(11, "daemon".to_owned())]), "the lent connection");
}

/// The cost of a walk's grouping and application for 10,000 sockets held
/// by 100 processes (the kernel's side, the iterator read, is measured by
/// the integration tests' report); printed with `--nocapture`.
#[test]
fn grouping_ten_thousand_sockets_is_cheap() {
    let mut pairs: Vec<(u64, u32, Comm)> =
        (0..10_000u64).map(|i| (i + 1, 1000 + (i % 100) as u32, Comm::new("srv"))).collect();
    let mut t = Table::new(0);
    let started = Instant::now();
    let w = group(&mut pairs);
    apply_walk(&mut t, &mut ListenerOwners::default(), &w, &FxHashSet::default());
    let cost = started.elapsed();
    println!("grouping 10,000 sockets: {cost:?}");
    assert_eq!(w.len(), 10_000);
}

/// What one walk costs with 10,000 more sockets open (this process holds
/// them), the iterator's kernel side included. Loads a BPF program, so
/// root and by hand, under the privileged-test lock:
/// `cargo test --release -p netwatch walk_cost -- --ignored --nocapture`.
#[test]
#[ignore = "needs root; a measurement, run by hand"]
fn walk_cost_with_ten_thousand_sockets() {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let lim = libc::rlimit { rlim_cur: 20_000, rlim_max: 20_000 };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let held: Vec<std::net::UdpSocket> =
        (0..10_000).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    for iterator in [true, false] {
        let mut costs = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let w = walk(iterator).unwrap();
            costs.push(started.elapsed());
            found = w.values().filter(|o| o.iter().any(|o| o.pid == std::process::id())).count();
        }
        costs.sort();
        println!(
            "walk ({}): median {:?} of {costs:?}; our sockets {found}",
            if iterator { "iterator" } else { "/proc scan" },
            costs[2]
        );
        assert!(found >= held.len());
    }
}
