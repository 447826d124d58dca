use super::*;

#[test]
fn bsearch_misses_where_netstat_misses() {
    // Found: in a sorted stretch.
    assert!(bsearch(tables::TCPEXT, "ListenDrops").is_some());
    assert!(bsearch(tables::TCP, "RetransSegs").is_some());
    // The table is unsorted here ("TCPLossFailures" before "TCPLoss"), and a
    // trailing blank hides this one: netstat misses both.
    assert!(bsearch(tables::ICMP6, "Icmp6OutRouterAdvertisements").is_none());
    assert!(bsearch(tables::TCPEXT, "TCPTimeouts").is_none() || bsearch(tables::TCPEXT, "TCPTSReorder").is_none());
}

#[test]
fn strtoull_wraps_negatives() {
    assert_eq!(strtoull("-1"), u64::MAX);
    assert_eq!(strtoull("42"), 42);
    assert_eq!(strtoull("x"), 0);
}

#[test]
fn unknown_tables_inherit_the_indent_and_ignore_selection() {
    let snmp = "Icmp: InMsgs InErrors InDestUnreachs OutMsgs OutDestUnreachs\nIcmp: 3 0 3 2 2\n\
                IcmpMsg: InType3 OutType3\nIcmpMsg: 3 2\n\
                Tcp: RtoAlgorithm RtoMin MaxConn ActiveOpens\nTcp: 1 200 -1 7\n";
    let mut out = Vec::new();
    print_inet(&mut out, Select { raw: true, ..Select::default() }, snmp, None, None);
    let want =
        "Icmp:\n    3 ICMP messages received\n    0 input ICMP message failed\n    ICMP input histogram:\n        \
                destination unreachable: 3\n    2 ICMP messages sent\n    ICMP output histogram:\n        \
                destination unreachable: 2\nIcmpMsg:\n        InType3: 3\n        OutType3: 2\n";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}
