//! netstat's command line, as net-tools 2.10 `netstat.c` `main()` reads it,
//! and the flag arithmetic it does before choosing a view.

use clap::{ArgAction, Args};

const VIEWS: &str = "netstat views (net-tools compatible, examples below)";
const OPTIONS: &str = "netstat options";
const SOCKETS: &str = "netstat <Socket> and <AF> selection";

const EXAMPLES: &str = "netstat examples (output as net-tools netstat 2.10 prints it, for our own network namespace):
  netwatch -tulpn                      listening TCP/UDP sockets, numeric, with PID/Program name
  netwatch -an | grep :22              every socket, numeric
  netwatch -anp | grep ESTABLISHED     with owners
  netwatch -tnpo                       TCP connections with timers
  netwatch -x                          UNIX domain sockets
  netwatch -rn / netwatch -6 -rn       IPv4 / IPv6 routing table
  netwatch -i / netwatch -ie           interface table / ifconfig-style details
  netwatch -s | grep -i retrans        protocol statistics (-t, -u, -w narrow them; -6 for IPv6)
  netwatch -g                          multicast group memberships
  netwatch -tnc                        every second; also lists connections that opened and closed
                                       in between (from eBPF; needs root)
Not supported: -M (masquerade), -C (route cache), -Z (SELinux), SCTP listings and the
AX.25/IPX/NET-ROM/X.25/Bluetooth families.";

/// The flags of net-tools `netstat`, accepted at the top level
/// (`netwatch -tulpn`). Grouped as `netstat --help` groups them.
#[derive(Debug, Default, Clone, PartialEq, Eq, Args)]
#[command(after_help = EXAMPLES)]
pub struct NetstatArgs {
    /// Display routing table
    #[arg(
        short = 'r',
        long,
        help_heading = VIEWS,
        conflicts_with_all = ["interfaces", "statistics"],
        overrides_with = "route"
    )]
    pub route: bool,
    /// Display interface table
    #[arg(short = 'i', long, help_heading = VIEWS, conflicts_with = "statistics", overrides_with = "interfaces")]
    pub interfaces: bool,
    /// Display multicast group memberships
    #[arg(short = 'g', long, help_heading = VIEWS, overrides_with = "groups")]
    pub groups: bool,
    /// Display networking statistics (like SNMP)
    #[arg(short = 's', long, help_heading = VIEWS, overrides_with = "statistics")]
    pub statistics: bool,

    /// Be verbose
    #[arg(short = 'v', long, action = ArgAction::Count, help_heading = OPTIONS)]
    pub verbose: u8,
    /// Don't truncate IP addresses
    #[arg(short = 'W', long, help_heading = OPTIONS, overrides_with = "wide")]
    pub wide: bool,
    /// Don't resolve names
    #[arg(short = 'n', long, help_heading = OPTIONS, overrides_with = "numeric")]
    pub numeric: bool,
    /// Don't resolve host names
    #[arg(long, help_heading = OPTIONS, overrides_with = "numeric_hosts")]
    pub numeric_hosts: bool,
    /// Don't resolve port names
    #[arg(long, help_heading = OPTIONS, overrides_with = "numeric_ports")]
    pub numeric_ports: bool,
    /// Don't resolve user names
    #[arg(long, help_heading = OPTIONS, overrides_with = "numeric_users")]
    pub numeric_users: bool,
    /// Resolve hardware names (with -r: print numeric addresses, as netstat does)
    #[arg(short = 'N', long, help_heading = OPTIONS, overrides_with = "symbolic")]
    pub symbolic: bool,
    /// Display other/more information (twice with -r: more route columns)
    #[arg(short = 'e', long, action = ArgAction::Count, help_heading = OPTIONS)]
    pub extend: u8,
    /// Display PID/Program name for sockets
    #[arg(short = 'p', long, visible_alias = "program", help_heading = OPTIONS, overrides_with = "programs")]
    pub programs: bool,
    /// Display timers
    #[arg(short = 'o', long, help_heading = OPTIONS, overrides_with = "timers")]
    pub timers: bool,
    /// Continuous listing, every second (connection views add an "opened and closed since last refresh" block: root, eBPF)
    #[arg(short = 'c', long, help_heading = OPTIONS, overrides_with = "continuous")]
    pub continuous: bool,
    /// Display listening server sockets
    #[arg(short = 'l', long, visible_alias = "listen", help_heading = OPTIONS, overrides_with = "listening")]
    pub listening: bool,
    /// Display all sockets (default: connected)
    #[arg(short = 'a', long, help_heading = OPTIONS, overrides_with = "all")]
    pub all: bool,
    /// Display Forwarding Information Base (default)
    #[arg(short = 'F', long, help_heading = OPTIONS, overrides_with = "fib")]
    pub fib: bool,

    /// TCP sockets
    #[arg(short = 't', long, help_heading = SOCKETS, overrides_with = "tcp")]
    pub tcp: bool,
    /// UDP sockets
    #[arg(short = 'u', long, help_heading = SOCKETS, overrides_with = "udp")]
    pub udp: bool,
    /// UDP-Lite sockets
    #[arg(short = 'U', long, help_heading = SOCKETS, overrides_with = "udplite")]
    pub udplite: bool,
    /// SCTP sockets (only reported missing: netwatch does not list SCTP)
    #[arg(short = 'S', long, help_heading = SOCKETS, overrides_with = "sctp")]
    pub sctp: bool,
    /// Raw sockets
    #[arg(short = 'w', long, help_heading = SOCKETS, overrides_with = "raw")]
    pub raw: bool,
    /// UNIX domain sockets
    #[arg(short = 'x', long, help_heading = SOCKETS, overrides_with = "unix")]
    pub unix: bool,
    /// IPv4 only (same as -A inet)
    #[arg(short = '4', long, visible_aliases = ["ip", "tcpip"], help_heading = SOCKETS)]
    pub inet: bool,
    /// IPv6 only (same as -A inet6)
    #[arg(short = '6', long, visible_alias = "ip6", help_heading = SOCKETS, overrides_with = "inet6")]
    pub inet6: bool,
    /// Address families, comma separated: inet, inet6, unix (also ip, ip6, tcpip)
    #[arg(short = 'A', long, value_name = "AF", help_heading = SOCKETS)]
    pub protocol: Vec<String>,
}

/// Address families netwatch can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Af {
    Inet,
    Inet6,
    Unix,
}

impl Af {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Inet => "inet",
            Self::Inet6 => "inet6",
            Self::Unix => "unix",
        }
    }

    /// lib/af.c `aftrans`: the aliases netstat accepts after `-A`.
    fn parse(alias: &str) -> Result<Self, String> {
        match alias {
            "inet" | "ip" | "tcpip" => Ok(Self::Inet),
            "inet6" | "ip6" => Ok(Self::Inet6),
            "unix" => Ok(Self::Unix),
            "ax25" | "ipx" | "rose" | "appletalk" | "netrom" | "ddp" | "econet" | "x25" | "ash" | "bluetooth" => {
                Err(format!("address family `{alias}' is not supported by netwatch (only inet, inet6 and unix)"))
            }
            other => Err(format!("Unknown address family `{other}'.")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Connections,
    Route,
    Interfaces,
    Statistics,
}

/// The flags after netstat's own arithmetic (main() before the views).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opts {
    pub all: bool,
    pub listening: bool,
    pub wide: bool,
    pub programs: bool,
    pub timers: bool,
    pub continuous: bool,
    pub verbose: bool,
    /// netstat's `flag_exp`: 1 + the number of `-e`.
    pub exp: u8,
    pub num_host: bool,
    pub num_port: bool,
    pub num_user: bool,
    pub symbolic: bool,
    pub tcp: bool,
    pub udp: bool,
    pub udplite: bool,
    pub raw: bool,
    pub sctp: bool,
    pub unix: bool,
    pub groups: bool,
    pub inet: bool,
    pub inet6: bool,
    /// Protocols were implied by `-4`/`-6`/`-s` rather than named.
    pub noprot: bool,
    /// netstat's `flag_arg`: some socket kind was asked for.
    pub arg: bool,
    /// Families in the order given (`afname`), for `-r` and `-s`.
    pub families: Vec<Af>,
}

impl NetstatArgs {
    /// Whether any netstat flag was given.
    pub fn requested(&self) -> bool {
        *self != Self::default()
    }

    /// The view and normalised flags; `Err` is a usage error (exit 2).
    pub fn resolve(&self) -> Result<(View, Opts), String> {
        let a = self;
        let mut families = Vec::new();
        // Order as getopt would see them is lost; netstat only uses the order
        // for `-r` output, where inet before inet6 is what people type.
        if a.inet {
            families.push(Af::Inet);
        }
        if a.inet6 {
            families.push(Af::Inet6);
        }
        for list in &a.protocol {
            for alias in list.split(',') {
                families.push(Af::parse(alias)?);
            }
        }
        if a.unix {
            families.push(Af::Unix);
        }
        let has = |af| families.contains(&af);
        let mut o = Opts {
            all: a.all,
            listening: a.listening,
            wide: a.wide,
            programs: a.programs,
            timers: a.timers,
            continuous: a.continuous,
            verbose: a.verbose > 0,
            exp: 1 + a.extend.min(2),
            num_host: a.numeric || a.numeric_hosts,
            num_port: a.numeric || a.numeric_ports,
            num_user: a.numeric || a.numeric_users,
            symbolic: a.symbolic,
            tcp: a.tcp,
            udp: a.udp,
            udplite: a.udplite,
            raw: a.raw,
            sctp: a.sctp,
            unix: has(Af::Unix),
            groups: a.groups,
            inet: has(Af::Inet),
            inet6: has(Af::Inet6),
            ..Opts::default()
        };
        let any_proto = o.tcp || o.sctp || o.udp || o.udplite || o.raw;
        if (o.inet || o.inet6 || a.statistics) && !any_proto {
            (o.noprot, o.tcp, o.sctp, o.udp, o.udplite, o.raw) = (true, true, true, true, true, true);
        }
        if (o.tcp || o.sctp || o.udp || o.udplite || o.raw || o.groups) && !(o.inet || o.inet6) {
            (o.inet, o.inet6) = (true, true);
        }
        o.arg = o.tcp || o.sctp || o.udp || o.udplite || o.raw || o.unix || o.groups;
        o.families = families;
        let view = if a.route {
            View::Route
        } else if a.interfaces {
            View::Interfaces
        } else if a.statistics {
            View::Statistics
        } else {
            View::Connections
        };
        if view == View::Statistics && !matches!(o.families.as_slice(), [] | [Af::Inet] | [Af::Inet6]) {
            let names: Vec<_> = o.families.iter().map(|f| f.name()).collect();
            return Err(format!("No statistics support for specified address family: {}", names.join(",")));
        }
        if view == View::Route && o.families.contains(&Af::Unix) {
            return Err("No routing for address family `unix'.".into());
        }
        Ok((view, o))
    }
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
