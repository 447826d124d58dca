//! Reading the addresses out of a DNS answer (RFC 1035 section 4), for the
//! name the client asked about. The message is whatever arrived from port
//! 53, so every length, count and pointer is checked: a malformed message
//! yields what could be read before the fault, never a panic and never a
//! loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Longest name on the wire (RFC 1035 2.3.4); a longer one is malformed.
const NAME_MAX: usize = 255;
/// Compression pointers followed per name: each must point backwards, so
/// a name can jump at most once per byte before it; this bounds the work
/// on a hostile message far below that.
const JUMPS_MAX: usize = 64;
/// Answer records read per message: more is no resolver's answer.
const ANSWERS_MAX: usize = 64;
/// CNAME links followed from the question's name.
const CHAIN_MAX: usize = 16;

/// What an answer says: the addresses of the name asked about.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The question's name, lower case, without the trailing dot.
    pub name: String,
    /// Its addresses (through any CNAME chain) with their TTLs in seconds.
    pub addrs: Vec<(IpAddr, u32)>,
}

/// The answer in `msg`, if it is a successful response to one question
/// with at least one address for it.
pub fn answer(msg: &[u8]) -> Option<Answer> {
    let header = msg.get(..12)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let (response, opcode, rcode) = (flags & 0x8000 != 0, (flags >> 11) & 0xf, flags & 0xf);
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    if !response || opcode != 0 || rcode != 0 || count(4) != 1 {
        return None;
    }
    let (name, mut at) = read_name(msg, 12)?;
    at = at.checked_add(4).filter(|end| *end <= msg.len())?; // QTYPE, QCLASS
    let mut records = Vec::new();
    for _ in 0..usize::from(count(6)).min(ANSWERS_MAX) {
        // Truncated: what was read stands.
        let Some((r, next)) = read_record(msg, at) else { break };
        records.push(r);
        at = next;
    }
    let aliases = chain(&name, &records);
    let addrs: Vec<_> = records
        .into_iter()
        .filter_map(|r| match r.data {
            Data::Addr(ip) if aliases.contains(&r.owner) => Some((ip, r.ttl)),
            _ => None,
        })
        .collect();
    (!addrs.is_empty()).then_some(Answer { name, addrs })
}

/// The DNS messages in `data`, the start of a TCP segment's payload from
/// port 53: each after its 2-byte length prefix (RFC 1035 4.2.2), the
/// first at the first byte (the kernel copies only segments that start
/// with a whole message). A last message cut short, by the copy's limit or
/// because it goes on in the next segment (not reassembled), is given as
/// far as it goes: [`answer`] reads the records it holds whole, as it does
/// for a UDP answer cut at the same limit.
pub fn tcp_messages(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (prefix, after) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*prefix)).min(after.len());
        let (msg, next) = after.split_at(len);
        rest = next;
        Some(msg)
    })
}

/// The question's name and every name a CNAME chain from it reaches.
fn chain(name: &str, records: &[Record]) -> Vec<String> {
    let mut aliases = vec![name.to_owned()];
    for _ in 0..CHAIN_MAX {
        let next = records.iter().find_map(|r| match &r.data {
            Data::Alias(target) if aliases.contains(&r.owner) && !aliases.contains(target) => Some(target.clone()),
            _ => None,
        });
        let Some(next) = next else { break };
        aliases.push(next);
    }
    aliases
}

struct Record {
    owner: String,
    ttl: u32,
    data: Data,
}

enum Data {
    Addr(IpAddr),
    Alias(String),
    Other,
}

/// One resource record at `at`; the offset after it.
fn read_record(msg: &[u8], at: usize) -> Option<(Record, usize)> {
    let (owner, at) = read_name(msg, at)?;
    let fixed = msg.get(at..at.checked_add(10)?)?;
    let ty = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    // RFC 2181 8: a TTL with the top bit set is read as zero.
    let ttl = match u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]) {
        t if t > i32::MAX as u32 => 0,
        t => t,
    };
    let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let start = at + 10;
    let end = start.checked_add(len)?;
    let rdata = msg.get(start..end)?;
    let data = match (ty, class, rdata.len()) {
        (TYPE_A, CLASS_IN, 4) => Data::Addr(IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))),
        (TYPE_AAAA, CLASS_IN, 16) => Data::Addr(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?))),
        // The target may be compressed, pointing anywhere before it.
        (TYPE_CNAME, CLASS_IN, _) => Data::Alias(read_name(msg, start)?.0),
        _ => Data::Other,
    };
    Some((Record { owner, ttl, data }, end))
}

/// The name at `at` (lower case, dot-separated, no trailing dot; `.` for
/// the root) and the offset after it where it is stored.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut wire = 0usize;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = msg.get(at + 1..at + 1 + usize::from(len))?;
                wire += label.len() + 1;
                if wire > NAME_MAX {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                at += 1 + label.len();
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([len, *msg.get(at + 1)?]) & 0x3fff);
                // Only backwards, and only so often: no loop survives either.
                jumps += 1;
                if target >= at || jumps > JUMPS_MAX {
                    return None;
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            // 0x40 and 0x80: extended label types, obsolete (RFC 6891).
            _ => return None,
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, after.unwrap_or(at + 1)))
}

/// A label as text: letters in lower case (names compare without case),
/// and bytes that are not printable, or a dot inside a label, as `\DDD`
/// (the escape `dig` writes), so a name never injects into the output.
fn push_label(name: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => name.extend(['\\', char::from(b)]),
            0x21..=0x7e => name.push(char::from(b.to_ascii_lowercase())),
            _ => name.push_str(&format!("\\{b:03}")),
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
