use super::*;

/// A response header for one question and `answers` records.
fn header(answers: u16, flags: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34];
    m.extend_from_slice(&flags.to_be_bytes());
    for n in [1, answers, 0, 0] {
        m.extend_from_slice(&u16::to_be_bytes(n));
    }
    m
}

fn name(m: &mut Vec<u8>, n: &str) {
    for label in n.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
}

fn record(m: &mut Vec<u8>, ty: u16, ttl: u32, rdata: &[u8]) {
    m.extend_from_slice(&ty.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

/// Question for `q` (at offset 12, for pointers), type A, class IN.
fn question(answers: u16, q: &str) -> Vec<u8> {
    let mut m = header(answers, 0x8180);
    name(&mut m, q);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

const PTR_QNAME: [u8; 2] = [0xc0, 12];

/// A record whose owner is a pointer to the question's name.
fn ptr_record(m: &mut Vec<u8>, ty: u16, ttl: u32, rdata: &[u8]) {
    m.extend_from_slice(&PTR_QNAME);
    record(m, ty, ttl, rdata);
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_records_for_the_question_compressed() {
    let mut m = question(2, "Svc.Example.TEST");
    ptr_record(&mut m, TYPE_A, 300, &[127, 0, 0, 77]);
    ptr_record(&mut m, TYPE_A, 60, &[127, 0, 0, 78]);
    let a = answer(&m).unwrap();
    assert_eq!(a.name, "svc.example.test");
    assert_eq!(a.addrs, vec![(v4("127.0.0.77"), 300), (v4("127.0.0.78"), 60)]);
}

#[test]
fn aaaa_record() {
    let mut m = question(1, "six.test");
    name(&mut m, "six.test");
    let ip: Ipv6Addr = "fd00::77".parse().unwrap();
    record(&mut m, TYPE_AAAA, 5, &ip.octets());
    assert_eq!(answer(&m).unwrap().addrs, vec![(IpAddr::V6(ip), 5)]);
}

#[test]
fn cname_chain_gives_the_queried_name() {
    let mut m = question(3, "www.test");
    // www.test CNAME edge.cdn.test (target spelled out), edge.cdn.test
    // CNAME last.test, last.test A: in any order.
    let edge_at = m.len() + 2 + 10;
    let mut target = Vec::new();
    name(&mut target, "edge.cdn.test");
    ptr_record(&mut m, TYPE_CNAME, 30, &target);
    let last_owner = m.len();
    name(&mut m, "last.test");
    record(&mut m, TYPE_A, 30, &[10, 9, 8, 7]);
    m.extend_from_slice(&[0xc0, edge_at as u8]);
    record(&mut m, TYPE_CNAME, 30, &[0xc0, last_owner as u8]);
    let a = answer(&m).unwrap();
    assert_eq!((a.name.as_str(), a.addrs), ("www.test", vec![(v4("10.9.8.7"), 30)]));
}

#[test]
fn addresses_of_other_names_are_not_taken() {
    let mut m = question(1, "asked.test");
    name(&mut m, "other.test");
    record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&m), None);
}

#[test]
fn queries_errors_and_empty_answers_are_not_answers() {
    let mut q = question(0, "a.test");
    q[2] = 0x01; // QR clear: a query
    assert_eq!(answer(&q), None);
    let mut nx = question(1, "a.test");
    nx[3] = 0x83; // NXDOMAIN
    ptr_record(&mut nx, TYPE_A, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&nx), None);
    assert_eq!(answer(&question(0, "a.test")), None);
}

#[test]
fn a_high_ttl_reads_as_zero() {
    let mut m = question(1, "a.test");
    ptr_record(&mut m, TYPE_A, 0x8000_0000, &[1, 2, 3, 4]);
    assert_eq!(answer(&m).unwrap().addrs, vec![(v4("1.2.3.4"), 0)]);
}

#[test]
fn truncation_anywhere_never_panics_and_keeps_whole_records() {
    let mut m = question(2, "a.test");
    ptr_record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
    let first_end = m.len();
    ptr_record(&mut m, TYPE_A, 30, &[5, 6, 7, 8]);
    for cut in 0..m.len() {
        let got = answer(&m[..cut]);
        let want = (cut >= first_end).then(|| vec![(v4("1.2.3.4"), 30)]);
        assert_eq!(got.map(|a| a.addrs), want, "cut at {cut}");
    }
    assert_eq!(answer(&m).unwrap().addrs.len(), 2);
}

#[test]
fn pointer_loops_and_forward_pointers_are_refused() {
    // The question's name points at itself.
    let mut m = header(1, 0x8180);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(answer(&m), None);
    // A record owner pointing forward, at itself, and two pointing at
    // each other.
    for ptr in [[0xc0, 40], [0xc0, 24]] {
        let mut m = question(1, "a.test");
        assert_eq!(m.len(), 24);
        m.extend_from_slice(&ptr);
        record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
        assert_eq!(answer(&m), None, "{ptr:?}");
    }
    let mut m = question(1, "a.test");
    m.extend_from_slice(&[0xc0, 26, 0xc0, 24]);
    record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&m), None);
}

#[test]
fn cname_loops_end() {
    let mut m = question(2, "a.test");
    let mut b = Vec::new();
    name(&mut b, "b.test");
    ptr_record(&mut m, TYPE_CNAME, 30, &b);
    name(&mut m, "b.test");
    record(&mut m, TYPE_CNAME, 30, &PTR_QNAME);
    assert_eq!(answer(&m), None);
}

#[test]
fn odd_bytes_are_escaped_and_long_names_refused() {
    let mut m = header(1, 0x8180);
    m.extend_from_slice(&[3, b'a', 0x0a, b'.', 0]);
    m.extend_from_slice(&[0, 1, 0, 1, 0xc0, 12]);
    record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&m).unwrap().name, "a\\010\\.");
    let long = vec!["x".repeat(63); 5].join(".");
    let mut m = question(1, &long);
    ptr_record(&mut m, TYPE_A, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&m), None);
}

#[test]
fn wrong_rdata_lengths_are_skipped() {
    let mut m = question(2, "a.test");
    ptr_record(&mut m, TYPE_A, 30, &[1, 2, 3]);
    ptr_record(&mut m, TYPE_AAAA, 30, &[1, 2, 3, 4]);
    assert_eq!(answer(&m), None);
}

/// Every byte string of a seeded pseudo-random stream, and mutations of a
/// good answer: nothing panics.
#[test]
fn garbage_never_panics() {
    let mut good = question(1, "a.test");
    ptr_record(&mut good, TYPE_A, 30, &[1, 2, 3, 4]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut m = good.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % m.len();
            m[i] = next() as u8;
        }
        let _ = answer(&m);
        let len = (next() % 80) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = answer(&junk);
    }
}

/// An A answer for `q` to address `ip`, with its TCP length prefix.
fn framed(q: &str, ip: [u8; 4]) -> Vec<u8> {
    let mut m = question(1, q);
    ptr_record(&mut m, TYPE_A, 30, &ip);
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&m);
    out
}

#[test]
fn tcp_messages_split_on_their_length_prefixes() {
    let (one, two) = (framed("a.test", [10, 0, 0, 1]), framed("b.test", [10, 0, 0, 2]));
    let both = [one.clone(), two.clone()].concat();
    let msgs: Vec<&[u8]> = tcp_messages(&both).collect();
    assert_eq!(msgs, [&one[2..], &two[2..]]);
    let names: Vec<String> = msgs.iter().map(|m| answer(m).unwrap().name).collect();
    assert_eq!(names, ["a.test", "b.test"]);
}

#[test]
fn a_tcp_message_cut_short_is_read_as_far_as_it_goes() {
    let one = framed("a.test", [10, 0, 0, 1]);
    // The second message's address record is cut off: its question stands,
    // with no address, so no answer; the first is whole.
    let mut both = [one.clone(), framed("b.test", [10, 0, 0, 2])].concat();
    both.truncate(both.len() - 3);
    let msgs: Vec<&[u8]> = tcp_messages(&both).collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].len(), one.len() - 2 - 3);
    assert_eq!(answer(msgs[0]).unwrap().addrs, [("10.0.0.1".parse().unwrap(), 30)]);
    assert_eq!(answer(msgs[1]), None);
    // A lone byte after a message is no prefix: nothing more.
    let mut odd = one.clone();
    odd.push(0);
    assert_eq!(tcp_messages(&odd).count(), 1);
    assert_eq!(tcp_messages(&[]).count(), 0);
}
