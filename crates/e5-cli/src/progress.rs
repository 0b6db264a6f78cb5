//! What `e5 embed` tells the user: a progress bar on a terminal (texts/s, ETA from the bytes
//! or rows of the input) and a final summary line on stderr. A failing stderr is an error.

use crate::records::Source;
use anyhow::{Context, Result};
use e5::RowInfo;
use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Stats {
    pub texts: usize,
    pub tokens: usize,
    pub truncated: usize,
    start: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { texts: 0, tokens: 0, truncated: 0, start: Instant::now() }
    }
}

impl Stats {
    pub fn count(&mut self, row: &RowInfo) {
        self.tokens += row.tokens;
        self.truncated += row.truncated as usize;
    }

    fn rate(&self) -> f64 {
        self.texts as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    /// The final summary: texts, tokens, truncated, seconds.
    pub fn report(&self) -> Result<()> {
        let secs = self.start.elapsed().as_secs_f64();
        writeln!(
            std::io::stderr(),
            "e5 embed: {} texts, {} tokens, {} truncated, {secs:.2} s ({:.1} texts/s)",
            self.texts,
            self.tokens,
            self.truncated,
            self.rate()
        )
        .context("writing to stderr")
    }
}

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar when stderr is a terminal: by the input's bytes or rows when its size is known.
    pub fn new(source: &dyn Source) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let total = source.position().1;
        let (bar, template) = if total > 0 {
            (indicatif::ProgressBar::new(total), "{bar:40} {percent:>3}%  {msg}  eta {eta}")
        } else {
            (indicatif::ProgressBar::new_spinner(), "{spinner} {msg}  {elapsed}")
        };
        bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
        Progress { bar: Some(bar) }
    }

    pub fn update(&mut self, source: &dyn Source, stats: &Stats) {
        if let Some(bar) = &self.bar {
            bar.set_position(source.position().0);
            bar.set_message(format!("{} texts, {:.0} texts/s", stats.texts, stats.rate()));
        }
    }

    /// A line on stderr, above the bar.
    pub fn warn(&self, line: &str) -> Result<()> {
        let write = || writeln!(std::io::stderr(), "{line}").context("writing to stderr");
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
