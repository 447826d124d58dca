//! Names for the drop reasons the kernel counts per socket
//! (`Traffic::drop_reason`): values of `enum skb_drop_reason`, whose
//! numbering changes between kernel versions, so they are named from the
//! running kernel's BTF, read once, on the first drop there is to name.

use std::{borrow::Cow, sync::OnceLock};

static NAMES: OnceLock<Vec<(u32, String)>> = OnceLock::new();

/// `value`'s name (`NETFILTER_DROP`, ...), or the number itself where the
/// kernel's BTF does not name it.
pub fn name(value: u32) -> Cow<'static, str> {
    let names = NAMES.get_or_init(|| super::btf::drop_reasons().unwrap_or_default());
    lookup(names, value)
}

/// The name of the drops whose reason found no slot of their socket's
/// (`Traffic::other_drops`): lower case, so no kernel reason is ever it.
pub const OTHER: &str = "other";

/// A socket's drops per reason, named, in name order (byte order: a
/// kernel name is upper case, so [`OTHER`], for drops that found no slot,
/// comes last, and the order is the one a JSON map's reader keeps);
/// empty without drops.
pub fn by_reason(t: &netwatch_common::Traffic) -> Vec<(Cow<'static, str>, u32)> {
    let mut out: Vec<(Cow<'static, str>, u32)> = t.drops_by_reason().map(|(r, n)| (name(r), n)).collect();
    out.sort_unstable();
    let other = t.other_drops();
    if other != 0 {
        out.push((Cow::Borrowed(OTHER), other));
    }
    out
}

fn lookup(names: &'static [(u32, String)], value: u32) -> Cow<'static, str> {
    let known = names.iter().find(|(v, _)| *v == value);
    known.map_or_else(|| Cow::Owned(value.to_string()), |(_, n)| Cow::Borrowed(n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_their_number() {
        let names: &'static [(u32, String)] = Box::leak(Box::new([(2, "NOT_SPECIFIED".to_owned())]));
        assert_eq!(lookup(names, 2), "NOT_SPECIFIED");
        assert_eq!(lookup(names, 9999), "9999");
    }

    #[test]
    fn drops_by_reason_in_name_order_then_the_rest() {
        let mut t = netwatch_common::Traffic::ZERO;
        assert!(by_reason(&t).is_empty());
        // Reasons 9999 and 9998 (named by number here), then 9997 in the
        // third lane; two drops beyond the slots.
        (t.drops, t.drop_slots, t.drop_counts) = (9, 9999 | (9998 << 16) | (9997 << 32), [4, 2, 1]);
        let got: Vec<(String, u32)> = by_reason(&t).into_iter().map(|(n, c)| (n.into_owned(), c)).collect();
        let want = [("9997", 1), ("9998", 2), ("9999", 4), (OTHER, 2)].map(|(n, c)| (n.to_owned(), c));
        assert_eq!(got, want);
        // No slot taken (a reason above 16 bits): every drop is "other".
        (t.drop_slots, t.drop_counts) = (0, [0; netwatch_common::DROP_SLOTS]);
        assert_eq!(by_reason(&t), [(Cow::Borrowed(OTHER), 9)]);
    }
}
