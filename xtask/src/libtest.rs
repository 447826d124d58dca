//! Counts what libtest reports, so `cargo xtask test` can tell "all passed"
//! from "nothing ran": cargo exits 0 when every test is ignored or filtered.

/// Totals over every `test result:` line (one per test binary).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub filtered_out: u64,
    /// How many `test result:` lines were seen.
    pub binaries: u64,
}

impl Tally {
    /// Adds one line of libtest output; lines other than `test result: ...` are ignored.
    ///
    /// The form is `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s`.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.binaries += 1;
        let counts = rest.split_once(". ").map_or(rest, |(_, counts)| counts);
        for part in counts.split(';') {
            let mut words = part.split_whitespace();
            let (Some(count), Some(what)) = (words.next().and_then(|n| n.parse::<u64>().ok()), words.next()) else {
                continue;
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                "filtered" => self.filtered_out += count,
                _ => {}
            }
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} ignored, {} filtered out",
            self.passed, self.failed, self.ignored, self.filtered_out
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn sums_result_lines_and_skips_the_rest() {
        let mut tally = Tally::default();
        for line in [
            "running 4 tests",
            "test tcp::connect_is_seen ... ok",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.51s",
            "",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            tally.add_line(line);
        }
        assert_eq!(tally, Tally { passed: 4, failed: 2, ignored: 1, filtered_out: 2, binaries: 2 });
    }

    #[test]
    fn no_result_line_means_nothing_ran() {
        let mut tally = Tally::default();
        tally.add_line("error: could not compile `netwatch-tests`");
        assert_eq!(tally, Tally::default());
    }
}
