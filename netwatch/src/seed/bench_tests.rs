//! Benchmarks, `#[ignore]`d: run them (as root, release build) with
//! `cargo test -p netwatch --release seed::bench -- --ignored --nocapture`.
//!
//! They open 2 x 9,990 loopback connections (39,960 sockets) in helper
//! processes (the per-process descriptor limit here is 20,000);
//! `NETWATCH_SEED_HELPERS` and `NETWATCH_SEED_PAIRS` change that.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use super::{
    live_tests::{own_netns, Helper},
    sys::{cpath, parse_dec, readlink_at, Dir},
    *,
};

/// Helper processes holding loopback connections until dropped; they close
/// with a reset, leaving no TIME_WAIT to skew the next run.
fn hold_sockets() -> Vec<Helper> {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (helpers, pairs) = (env("NETWATCH_SEED_HELPERS", 2), env("NETWATCH_SEED_PAIRS", 9_990));
    let t = Instant::now();
    let held: Vec<Helper> = (0..helpers).map(|_| Helper::spawn(&[], &format!("rst-pairs:{pairs}"))).collect();
    eprintln!("{helpers} helpers with {pairs} connections each ready in {:?}", t.elapsed());
    held
}

fn process_cpu() -> Duration {
    // SAFETY: all-zero is a valid rusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is writable.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Timing of each phase with many sockets; see the module comment.
#[test]
#[ignore = "benchmark: opens 40,000 sockets"]
fn bench_seed() {
    let _held = hold_sockets();

    let ns = own_netns();
    // Each case returns an item count and its result, which is dropped
    // outside the timing (a caller keeps the seed).
    type Case = Box<dyn FnMut() -> (usize, Box<dyn std::any::Any>)>;
    fn boxed(n: usize, v: Box<dyn std::any::Any>) -> (usize, Box<dyn std::any::Any>) {
        (n, v)
    }
    let seed_with = |opts: SeedOptions| -> Case {
        Box::new(move || {
            let seed = seed(&opts).unwrap();
            boxed(seed.sockets.len(), Box::new(seed))
        })
    };
    let opts = |method, scan_threads, owners| SeedOptions { method, scan_threads, owners, ..Default::default() };
    let mut cases: Vec<(&str, Case)> = vec![
        (
            "ss -tanp (reference)",
            Box::new(|| boxed(Command::new("ss").arg("-tanp").output().unwrap().stdout.len(), Box::new(()))),
        ),
        (
            "read /proc/net/tcp (reference)",
            Box::new(|| boxed(std::fs::read("/proc/net/tcp").unwrap().len(), Box::new(()))),
        ),
        (
            "sock_diag dump tcp4+tcp6",
            Box::new(move || {
                let d = diag::DiagSocket::open().unwrap();
                let mut out = Vec::new();
                d.dump(Proto::Tcp, Family::V4, ns, &mut out).unwrap();
                d.dump(Proto::Tcp, Family::V6, ns, &mut out).unwrap();
                boxed(out.len(), Box::new(out))
            }),
        ),
        (
            "/proc/net/tcp+tcp6 read and parse",
            Box::new(move || {
                let dir = Path::new("/proc/net");
                let (a, b) = (
                    proc_net::read_proc_net(dir, ProcNetFile::Tcp, ns).unwrap(),
                    proc_net::read_proc_net(dir, ProcNetFile::Tcp6, ns).unwrap(),
                );
                boxed(a.sockets.len() + b.sockets.len(), Box::new((a, b)))
            }),
        ),
        (
            "fd scan, 1 thread",
            Box::new(|| {
                let scan = scan_owners(Path::new("/proc"), 1).unwrap();
                boxed(scan.stats.socket_fds, Box::new(scan))
            }),
        ),
        (
            "fd scan, 2 threads",
            Box::new(|| {
                let scan = scan_owners(Path::new("/proc"), 2).unwrap();
                boxed(scan.stats.socket_fds, Box::new(scan))
            }),
        ),
        ("seed: sock_diag, scan 1 thread", seed_with(opts(Method::Auto, 1, true))),
        ("seed: sock_diag, scan 2 threads", seed_with(opts(Method::Auto, 2, true))),
        ("seed: /proc text, scan 1 thread", seed_with(opts(Method::ProcOnly, 1, true))),
        ("seed: sock_diag, no owners", seed_with(opts(Method::Auto, 1, false))),
    ];

    // Round-robin, so that a burst of load elsewhere hits every case alike;
    // wall and CPU time (all threads, user + system), median and best.
    let rounds = 9;
    let mut samples = vec![Vec::new(); cases.len()];
    let mut items = vec![0; cases.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let (t, c) = (Instant::now(), process_cpu());
            let (n, result) = f();
            samples[i].push((t.elapsed(), process_cpu() - c));
            items[i] = n;
            drop(result);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!("{:<36} {:>16} {:>16}", "", "wall median/best", "cpu median/best");
    for ((name, _), (mut s, n)) in cases.iter().zip(samples.into_iter().zip(items)) {
        let mut cpu: Vec<Duration> = s.iter().map(|x| x.1).collect();
        s.sort();
        cpu.sort();
        let (w, c) = ((ms(s[rounds / 2].0), ms(s[0].0)), (ms(cpu[rounds / 2]), ms(cpu[0])));
        eprintln!("{name:<36} {:>7.1} /{:>7.1} {:>7.1} /{:>7.1}  ms ({n} items)", w.0, w.1, c.0, c.1);
    }
    let s = seed_all().unwrap();
    eprintln!(
        "last seed_all: owners {:?} + sockets {:?} = {:?}; {} sockets, {} owned, {} namespaces",
        s.stats.elapsed_owners,
        s.stats.elapsed_sockets,
        s.stats.elapsed,
        s.sockets.len(),
        s.stats.owned,
        s.namespaces.len()
    );
}

/// Per-descriptor probes for the owner scan, one thread each, to justify
/// the choice made in `owners.rs`.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// Directory listing only: the floor of the approaches below.
    Listing,
    /// Listing, then `readlinkat` per entry (what `ss -p` does).
    Readlink,
    /// Listing, then `fstatat` per entry (follows the link: could block on
    /// a hung NFS or FUSE file, which readlink never touches).
    Fstatat,
}

fn scan_variant(probe: Probe) -> usize {
    let mut procs = Dir::open_at(libc::AT_FDCWD, c"/proc").unwrap();
    let root = procs.fd();
    let mut pids = Vec::new();
    while let Some(name) = procs.next_name() {
        pids.extend(parse_dec(name.unwrap().to_bytes()));
    }
    let (mut n, mut link, mut path) = (0, [0u8; 64], [0u8; 48]);
    for pid in pids {
        let Ok(mut dir) = Dir::open_at(root, cpath(&mut path, format_args!("{pid}/fd")).unwrap()) else { continue };
        let dfd = dir.fd();
        while let Some(Ok(name)) = dir.next_name() {
            n += usize::from(match probe {
                Probe::Listing => true,
                Probe::Readlink => readlink_at(dfd, name, &mut link).is_ok_and(|l| l.starts_with(b"socket:")),
                Probe::Fstatat => {
                    // SAFETY: all-zero is a valid stat buffer; `name` is NUL-terminated.
                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                    // SAFETY: see above.
                    let rc = unsafe { libc::fstatat(dfd, name.as_ptr(), &mut st, 0) };
                    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
                }
            });
        }
    }
    n
}

#[test]
#[ignore = "benchmark: opens 40,000 sockets"]
fn bench_fd_probes() {
    let _held = hold_sockets();
    let mut variants: Vec<(String, Box<dyn Fn() -> usize>)> = [Probe::Listing, Probe::Readlink, Probe::Fstatat]
        .into_iter()
        .map(|p| (format!("{p:?}"), Box::new(move || scan_variant(p)) as Box<dyn Fn() -> usize>))
        .collect();
    variants.push((
        "scan_owners (probe, then readlink)".into(),
        Box::new(|| scan_owners(Path::new("/proc"), 1).unwrap().stats.socket_fds),
    ));
    let mut best = vec![(Duration::MAX, Duration::MAX, 0); variants.len()];
    for _ in 0..7 {
        for (i, (_, f)) in variants.iter().enumerate() {
            let (t, c) = (Instant::now(), process_cpu());
            let n = f();
            best[i] = (best[i].0.min(t.elapsed()), best[i].1.min(process_cpu() - c), n);
        }
    }
    for ((name, _), (wall, cpu, n)) in variants.iter().zip(best) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!("{name:<36} best wall {:>6.1} ms  cpu {:>6.1} ms  ({n} descriptors)", ms(wall), ms(cpu));
    }
}
