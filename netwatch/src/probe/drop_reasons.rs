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

fn lookup(names: &'static [(u32, String)], value: u32) -> Cow<'static, str> {
    match names.iter().find(|(v, _)| *v == value) {
        Some((_, n)) => Cow::Borrowed(n.as_str()),
        None => Cow::Owned(value.to_string()),
    }
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
}
