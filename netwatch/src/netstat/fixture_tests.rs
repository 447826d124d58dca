//! Every /proc-based view against real netstat output for the same files.
//!
//! `tests/fixtures/netstat/proc/net/*` are /proc/net files captured on a
//! test machine (plus a few hand-added rows: a long IPv6 address, a
//! retransmit timer, a host, a reject and a down route);
//! `expected/<name>.txt` is what net-tools 2.10 `netstat` printed for them,
//! made to read those files with the LD_PRELOAD shim in
//! `procnet_redirect.c` (see the README there). Numeric flags only, so
//! the results do not depend on this machine's hosts, services or users.
//! No process owns the fixture inodes, so `-p` prints `-`, as it did.

use std::path::{Path, PathBuf};

use clap::Parser;

use super::{flags::NetstatArgs, names::Names, print_view};

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: NetstatArgs,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netstat")
}

fn render(flags: &[&str]) -> String {
    let argv = std::iter::once("netstat").chain(flags.iter().copied());
    let (view, o) = Cmd::try_parse_from(argv).unwrap().args.resolve().unwrap();
    let mut names = Names::new(o.num_host, o.num_port, o.num_user);
    let mut out = Vec::new();
    print_view(&mut out, view, &o, &mut names, &fixtures().join("proc")).unwrap();
    String::from_utf8(out).unwrap()
}

/// Compares with `expected/<name>.txt`, the name being the flags' letters
/// (`-g -4 -n` is `g4n`).
fn check(flags: &[&str]) {
    let name = flags.concat().replace('-', "");
    let expected = std::fs::read_to_string(fixtures().join("expected").join(format!("{name}.txt"))).unwrap();
    let got = render(flags);
    if got != expected {
        let first = got.lines().zip(expected.lines()).position(|(a, b)| a != b);
        panic!(
            "netstat {flags:?} differs (first differing line {first:?})\n--- netwatch\n{got}\n--- netstat\n{expected}"
        );
    }
}

fn check_each(flags: &[&str]) {
    for flag in flags {
        check(&[flag]);
    }
}

#[test]
fn connection_views_match_netstat() {
    check_each(&[
        "-an", "-ln", "-tn", "-tan", "-un", "-uan", "-wan", "-aUn", "-an4", "-an6", "-anW", "-aen", "-aeen", "-tnoa",
        "-unoa", "-anp", "-tulpn",
    ]);
}

#[test]
fn unix_views_match_netstat() {
    check_each(&["-xn", "-axn", "-lxn"]);
}

#[test]
fn routes_match_netstat() {
    check_each(&["-rn", "-rne", "-rnee", "-6rn"]);
}

#[test]
fn statistics_match_netstat() {
    check_each(&["-s", "-st", "-su", "-sw", "-6s", "-6st"]);
}

#[test]
fn groups_match_netstat() {
    check(&["-gn"]);
    check(&["-g", "-4", "-n"]);
}
