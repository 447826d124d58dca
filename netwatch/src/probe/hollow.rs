//! `NETWATCH_BENCH_HOLLOW`: programs that stay attached but return at once.
//!
//! Only for `cargo xtask bench`, which measures with it what the kernel
//! charges a traced workload for calling netwatch's hooks at all, before
//! they do anything: the floor under any figure a program body can reach.
//! Events go missing in this mode, so netwatch says so when it is set.

use anyhow::{bail, Result};
use netwatch_common::names::hollow;

pub const ENV: &str = "NETWATCH_BENCH_HOLLOW";

/// The `names::GLOBAL_HOLLOW` bits for a value of [`ENV`].
pub fn parse(value: &str) -> Result<u32> {
    Ok(match value {
        "" | "none" => 0,
        "set_state" => hollow::SET_STATE,
        "all" => hollow::SET_STATE | hollow::OTHERS,
        other => bail!("{ENV}={other:?} is not one of none, set_state, all"),
    })
}

/// The bits asked for in the environment, with a warning on stderr when
/// any are.
pub fn from_env() -> Result<u32> {
    let Some(value) = std::env::var_os(ENV) else { return Ok(0) };
    let Some(value) = value.to_str() else { bail!("{ENV} is not valid UTF-8") };
    let bits = parse(value)?;
    if bits != 0 {
        eprintln!("netwatch: {ENV}={value}: those programs are attached but do nothing; events will be missing");
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_the_programs_left_hollow() {
        assert_eq!(parse("").unwrap(), 0);
        assert_eq!(parse("none").unwrap(), 0);
        assert_eq!(parse("set_state").unwrap(), hollow::SET_STATE);
        assert_eq!(parse("all").unwrap(), hollow::SET_STATE | hollow::OTHERS);
        let err = parse("everything").unwrap_err().to_string();
        assert!(err.contains("NETWATCH_BENCH_HOLLOW=\"everything\""), "{err}");
    }
}
