//! The bench report: one section per scenario, each row a figure with its
//! target (if it has one) and whether the target was met.

use std::fmt;

use anyhow::Result;

#[derive(Default)]
pub struct Report {
    sections: Vec<Section>,
    /// `--only`: lower-cased title fragments; empty runs everything.
    only: Vec<String>,
}

pub struct Section {
    title: String,
    rows: Vec<Row>,
    error: Option<String>,
}

struct Row {
    label: String,
    value: String,
    target: Option<(String, bool)>,
}

impl Report {
    pub fn new(only: Vec<String>) -> Report {
        Report { sections: Vec::new(), only: only.iter().map(|o| o.to_lowercase()).collect() }
    }

    /// Whether `--only` selects the scenario with this title.
    pub fn selected(&self, title: &str) -> bool {
        let title = title.to_lowercase();
        self.only.is_empty() || self.only.iter().any(|o| title.contains(o))
    }

    /// [`Report::scenario`] if `--only` selects it (or `needed`, when a
    /// selected scenario depends on its result); otherwise skipped.
    pub fn scenario_if<T>(
        &mut self,
        title: &str,
        needed: bool,
        run: impl FnOnce(&mut Section) -> Result<T>,
    ) -> Option<T> {
        match needed || self.selected(title) {
            true => self.scenario(title, run),
            false => None,
        }
    }

    /// Runs one scenario, which fills its section; a failure is recorded in
    /// the section so the other scenarios still run.
    pub fn scenario<T>(&mut self, title: &str, run: impl FnOnce(&mut Section) -> Result<T>) -> Option<T> {
        eprintln!("bench: {title} ...");
        let mut section = Section { title: title.to_string(), rows: Vec::new(), error: None };
        let result = run(&mut section);
        let value = match result {
            Ok(value) => Some(value),
            Err(err) => {
                eprintln!("bench: {title}: failed: {err:#}");
                section.error = Some(format!("{err:#}"));
                None
            }
        };
        self.sections.push(section);
        value
    }

    pub fn failures(&self) -> usize {
        self.sections.iter().filter(|section| section.error.is_some()).count()
    }
}

impl Section {
    pub fn row(&mut self, label: &str, value: impl fmt::Display) {
        self.rows.push(Row { label: label.to_string(), value: value.to_string(), target: None });
    }

    pub fn check(&mut self, label: &str, value: impl fmt::Display, target: &str, met: bool) {
        self.rows.push(Row {
            label: label.to_string(),
            value: value.to_string(),
            target: Some((target.to_string(), met)),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for section in &self.sections {
            writeln!(f, "{}", section.title)?;
            for row in &section.rows {
                let mut line = format!("  {:<34} {:<24}", row.label, row.value);
                if let Some((target, met)) = &row.target {
                    line += &format!(" target {target:<12} {}", if *met { "ok" } else { "MISSED" });
                }
                writeln!(f, "{}", line.trim_end())?;
            }
            if let Some(error) = &section.error {
                writeln!(f, "  FAILED TO RUN: {error}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
