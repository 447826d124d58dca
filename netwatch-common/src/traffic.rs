//! Per-socket traffic counters: the value of the `TRAFFIC` map (key: the
//! socket cookie) and the totals a closing socket's event carries.
//!
//! How bytes are counted (the cgroup_skb programs see every IP packet a
//! socket sends or receives, starting at the IP header):
//! - `*_bytes` is transport payload: the packet's length minus the IP header
//!   (IPv4 options and IPv6 extension headers included) minus the TCP header
//!   with its options, or minus the 8-byte UDP header. It is what the
//!   application wrote or read, exactly (retransmitted payload counts again).
//! - `*_packets` counts IP packets as they leave or arrive: a GSO/GRO
//!   aggregate (loopback hands 64 KiB TCP skbs around whole) counts as the
//!   segments it stands for.
//! - `*_ip_bytes` adds one IP + transport header per packet to the payload:
//!   the bytes an interface carries, link-layer framing aside.

use core::mem::size_of;

/// Sockets the `TRAFFIC` map holds unless the agent sizes it otherwise at
/// load (`NETWATCH_TRAFFIC_SOCKETS`): 131,072 rows of 104 bytes and an 8-byte key.
pub const TRAFFIC_SOCKETS: u32 = 131_072;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub tx_ip_bytes: u64,
    pub rx_ip_bytes: u64,
    /// `tcp:tcp_retransmit_skb` hits (one per retransmitted skb, as tcpretrans counts).
    pub retransmits: u32,
    /// `tcp:tcp_send_reset`: RSTs this socket sent.
    pub resets_sent: u32,
    /// `tcp:tcp_receive_reset`: RSTs this socket received.
    pub resets_received: u32,
    /// `skb:kfree_skb` hits for this socket's packets (kernels 5.17 and
    /// later, where the tracepoint gives a drop reason): packets the kernel
    /// freed as dropped, not consumed, with `skb->sk` naming this socket.
    pub drops: u32,
    /// Why and how fast (TCP only, read from the socket by the event that
    /// carries these totals). `tcp_sock.srtt_us >> 3`: the smoothed RTT in
    /// microseconds, 0 before the first RTT sample.
    pub srtt_us: u32,
    /// `tcp_sock.total_retrans`: every segment the socket retransmitted. On
    /// a connect that never completed, and on the `ESTABLISHED` event that
    /// carries it (sent with totals only when it is not 0), these are the
    /// handshake's SYN (or, passive, SYN-ACK) retransmits.
    pub total_retrans: u32,
    /// `sk_err` (a positive errno, 0 for none): the kernel sets it before
    /// `tcp_done()` when a connection dies of an error (`tcp_reset()`,
    /// `tcp_write_err()`, ICMP in `tcp_v4_err()`). On a `connect_error`
    /// event: `connect()`'s own return, negated.
    pub sk_err: u32,
    /// `sk_err_soft`: the last soft error (an ICMP error that did not kill
    /// the connection, e.g. while SYNs were retransmitted).
    pub sk_err_soft: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`, on `connect_error` events only.
    pub protocol: u16,
    /// The kernel's `enum skb_drop_reason` value of the last of `drops`
    /// (numbering differs between kernels: the agent names it from BTF).
    pub drop_reason: u32,
    /// `drops` per reason: `drop_counts[i]` packets dropped for the reason
    /// in lane `i` (bits `16 * i ..`) of `drop_slots`, a lane of 0 being
    /// free. Three reasons are kept, in the order they first happened;
    /// drops for any further reason are only in `drops` (the difference
    /// is [`Traffic::other_drops`]). The lanes share one u64 so that the
    /// kernel claims a free lane with one compare-and-swap; lane 3 is unused.
    pub drop_counts: [u32; DROP_SLOTS],
    pub drop_slots: u64,
}

/// How many distinct drop reasons a socket's row counts separately.
pub const DROP_SLOTS: usize = 3;

const _: () = assert!(size_of::<Traffic>() == 104);

impl Traffic {
    /// A TCP socket's totals at its close (`self`, payload and segments
    /// from the kernel's own counters) updated with what its teardown saw
    /// later (`later`, the counter row): an abortive close sends its RST
    /// after the close, and resets the socket's own counters.
    pub fn after_close(self, later: &Traffic) -> Traffic {
        Traffic {
            tx_ip_bytes: self.tx_ip_bytes.max(later.tx_ip_bytes),
            rx_ip_bytes: self.rx_ip_bytes.max(later.rx_ip_bytes),
            retransmits: self.retransmits.max(later.retransmits),
            resets_sent: self.resets_sent.max(later.resets_sent),
            resets_received: self.resets_received.max(later.resets_received),
            drops: self.drops.max(later.drops),
            drop_reason: if later.drops > self.drops { later.drop_reason } else { self.drop_reason },
            // Both come from the same row, `later` read after `self`:
            // the per-reason counts of whichever saw more drops.
            drop_counts: if later.drops > self.drops { later.drop_counts } else { self.drop_counts },
            drop_slots: if later.drops > self.drops { later.drop_slots } else { self.drop_slots },
            ..self
        }
    }

    pub const ZERO: Self = Self {
        tx_bytes: 0,
        rx_bytes: 0,
        tx_packets: 0,
        rx_packets: 0,
        tx_ip_bytes: 0,
        rx_ip_bytes: 0,
        retransmits: 0,
        resets_sent: 0,
        resets_received: 0,
        drops: 0,
        srtt_us: 0,
        total_retrans: 0,
        sk_err: 0,
        sk_err_soft: 0,
        protocol: 0,
        drop_reason: 0,
        drop_counts: [0; DROP_SLOTS],
        drop_slots: 0,
    };

    /// `(reason, count)` for each reason with a slot, in the order the
    /// reasons first happened (see [`Traffic::drop_counts`]).
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..DROP_SLOTS).filter_map(move |i| {
            let reason = ((self.drop_slots >> (16 * i)) & 0xffff) as u32;
            (reason != 0).then_some((reason, self.drop_counts[i]))
        })
    }

    /// Drops whose reason found no free slot: `drops` less the slots' counts.
    pub fn other_drops(&self) -> u32 {
        let slotted = self.drop_counts.iter().fold(0u32, |a, &c| a.saturating_add(c));
        self.drops.saturating_sub(slotted)
    }

    /// Both resets directions together.
    pub const fn resets(&self) -> u32 {
        self.resets_sent.saturating_add(self.resets_received)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A close's totals updated by the teardown's later read of the same
    /// row: the per-reason counts go with the total they add up to.
    #[test]
    fn after_close_takes_the_later_drops_with_their_reasons() {
        let close = Traffic { drops: 2, drop_reason: 12, drop_slots: 12, drop_counts: [2, 0, 0], ..Traffic::ZERO };
        let later =
            Traffic { drops: 3, drop_reason: 6, drop_slots: 12 | (6 << 16), drop_counts: [2, 1, 0], ..Traffic::ZERO };
        let merged = close.after_close(&later);
        assert_eq!((merged.drops, merged.drop_reason), (3, 6));
        assert!(merged.drops_by_reason().eq([(12, 2), (6, 1)]));
        assert_eq!(merged.other_drops(), 0);
        // A teardown that saw no more (or a row already gone) changes nothing.
        assert_eq!(close.after_close(&Traffic::ZERO), close);
        assert_eq!(close.after_close(&close), close);
    }

    #[test]
    fn drops_beyond_the_slots_are_other() {
        let t = Traffic { drops: 10, drop_slots: 1 | (2 << 16) | (3 << 32), drop_counts: [2, 3, 4], ..Traffic::ZERO };
        assert!(t.drops_by_reason().eq([(1, 2), (2, 3), (3, 4)]));
        assert_eq!(t.other_drops(), 1);
    }
}
