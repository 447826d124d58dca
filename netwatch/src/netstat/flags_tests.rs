use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: NetstatArgs,
}

fn parse(argv: &[&str]) -> Result<(View, Opts), String> {
    let argv = std::iter::once("netstat").chain(argv.iter().copied());
    Cmd::try_parse_from(argv).map_err(|e| e.to_string())?.args.resolve()
}

#[test]
fn combined_short_flags() {
    let (view, o) = parse(&["-tulpn"]).unwrap();
    assert_eq!(view, View::Connections);
    assert!(o.tcp && o.udp && o.listening && o.programs && o.num_host && o.num_port && o.num_user);
    assert!(o.inet && o.inet6 && o.arg && !o.unix && !o.noprot && !o.all);
}

#[test]
fn long_forms_match_short_ones() {
    let long = parse(&["--tcp", "--udp", "--listening", "--programs", "--numeric", "--extend", "--timers", "--wide"]);
    let short = parse(&["-tulpneoW"]);
    assert_eq!(long, short);
    assert_eq!(parse(&["--program", "--listen"]), parse(&["-pl"]));
    assert_eq!(parse(&["--all", "--raw", "--unix", "--verbose"]), parse(&["-awxv"]));
}

#[test]
fn repeated_flags_are_accepted_as_netstat_accepts_them() {
    assert_eq!(parse(&["-tt", "-nn", "-ll"]), parse(&["-tnl"]));
    assert_eq!(parse(&["-ee"]).unwrap().1.exp, 3);
}

#[test]
fn families_imply_every_inet_protocol() {
    let (_, o) = parse(&["-4"]).unwrap();
    assert!(o.noprot && o.tcp && o.udp && o.udplite && o.raw && o.inet && !o.inet6 && !o.unix);
    let (_, o) = parse(&["-A", "inet6,unix"]).unwrap();
    assert!(o.inet6 && o.unix && !o.inet && o.tcp);
    let (_, o) = parse(&["-x"]).unwrap();
    assert!(o.unix && !o.tcp && o.arg);
    let (_, o) = parse(&[]).unwrap();
    assert!(!o.arg && !o.tcp && !o.inet);
}

#[test]
fn extend_counts_and_views() {
    assert_eq!(parse(&["-ree"]).unwrap().0, View::Route);
    assert_eq!(parse(&["-ree"]).unwrap().1.exp, 3);
    assert_eq!(parse(&["-ie"]).unwrap().0, View::Interfaces);
    assert_eq!(parse(&["-st"]).unwrap().0, View::Statistics);
    let (_, o) = parse(&["-s"]).unwrap();
    assert!(o.tcp && o.udp && o.raw && o.noprot);
}

#[test]
fn contradictions_are_usage_errors() {
    assert!(parse(&["-r", "-i"]).is_err());
    assert!(parse(&["-s", "-r"]).is_err());
    assert!(parse(&["-i", "-s"]).is_err());
    assert!(parse(&["-s", "-4", "-6"]).unwrap_err().contains("No statistics support"));
    assert!(parse(&["-rx"]).unwrap_err().contains("No routing for address family `unix'"));
    assert!(parse(&["-A", "ipx"]).unwrap_err().contains("not supported by netwatch"));
    assert!(parse(&["-A", "bogus"]).unwrap_err().contains("Unknown address family `bogus'"));
    assert!(parse(&["-M"]).is_err());
}
