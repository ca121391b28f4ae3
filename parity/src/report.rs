//! The parity report: one row per check and metric, printed as a table or
//! written as JSON.

use serde::Serialize;

/// One measured check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The case.
    pub case: String,
    /// The check ("logits", "hidden_states", "greedy_tokens", ...).
    pub check: String,
    /// What was measured ("max_abs", "rel", "exact", "error").
    pub metric: String,
    /// The measured value, formatted.
    pub value: String,
    /// The bound, formatted.
    pub tolerance: String,
    /// Whether it holds.
    pub pass: bool,
    /// Where it diverged, or other detail.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The results of one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseReport {
    /// The case name.
    pub case: String,
    /// Its architecture.
    pub arch: String,
    /// The rows.
    pub rows: Vec<Row>,
    /// The first hidden state that fails its tolerance, when logits fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_divergence: Option<String>,
}

impl CaseReport {
    /// True when every row passes.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.pass)
    }

    /// Adds a row.
    pub(crate) fn push(
        &mut self,
        check: &str,
        metric: &str,
        value: String,
        tolerance: String,
        pass: bool,
        note: String,
    ) {
        self.rows.push(Row {
            case: self.case.clone(),
            check: check.into(),
            metric: metric.into(),
            value,
            tolerance,
            pass,
            note,
        });
    }
}

impl CaseReport {
    /// Adds a row for an exact match of token sequences: how many leading
    /// tokens agree out of the expected count.
    pub(crate) fn push_exact(
        &mut self,
        check: &str,
        matching: usize,
        expected: usize,
        pass: bool,
        note: String,
    ) {
        self.push(
            check,
            "exact",
            format!("{matching}/{expected}"),
            "all".into(),
            pass,
            note,
        );
    }
}

/// Formats an error value the way the table shows it.
pub fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.2e}")
    }
}

/// The whole report as an aligned text table, with a summary line.
pub fn render_table(reports: &[CaseReport]) -> String {
    let header = ["case", "check", "metric", "value", "tolerance", "pass"];
    let mut lines: Vec<[String; 6]> = Vec::new();
    for report in reports {
        for r in &report.rows {
            let mut check = r.check.clone();
            if !r.note.is_empty() {
                check = format!("{check} ({})", r.note);
            }
            lines.push([
                r.case.clone(),
                check,
                r.metric.clone(),
                r.value.clone(),
                r.tolerance.clone(),
                if r.pass { "ok".into() } else { "FAIL".into() },
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fmt = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&fmt(&header.map(String::from)));
    out.push('\n');
    out.push_str(&fmt(&widths.map(|w| "-".repeat(w))));
    out.push('\n');
    for line in &lines {
        out.push_str(&fmt(line));
        out.push('\n');
    }
    for report in reports {
        if let Some(layer) = &report.first_divergence {
            out.push_str(&format!(
                "{}: logits diverge; first divergent hidden state: {layer}\n",
                report.case
            ));
        }
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.case.as_str())
        .collect();
    if failed.is_empty() {
        out.push_str(&format!("{} cases passed\n", reports.len()));
    } else {
        out.push_str(&format!(
            "{} of {} cases FAILED: {}\n",
            failed.len(),
            reports.len(),
            failed.join(", ")
        ));
    }
    out
}
