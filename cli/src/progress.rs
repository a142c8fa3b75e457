//! Rendering library progress events on stderr: indicatif bars on a terminal (one per blob in flight
//! plus a total), one line per finished blob otherwise, or JSON lines for machines. Never stdout, so
//! `docker-archive:/dev/stdout`-style destinations and `--format json` output stay clean.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use hoist::Digest;
use hoist::progress::{BlobOutcome, Event, Sink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Bars on a terminal, lines otherwise.
    #[default]
    Auto,
    /// Bars (only drawn when stderr is a terminal).
    Bars,
    /// One line per finished blob.
    Lines,
    /// One JSON object per event.
    Json,
    /// Nothing.
    None,
}

fn outcome_word(how: BlobOutcome) -> &'static str {
    match how {
        BlobOutcome::Copied => "copied",
        BlobOutcome::Linked => "linked",
        BlobOutcome::Skipped => "skipped (already present)",
        BlobOutcome::Mounted => "mounted from another repository",
        BlobOutcome::Foreign => "left out (foreign layer)",
        BlobOutcome::Verified => "verified",
        BlobOutcome::Applied => "applied",
        _ => "done",
    }
}

/// A progress sink for a verb that works silently unless watched (`unpack`, `verify`, `repack`):
/// `mode` when given, else bars on a terminal and nothing otherwise.
pub fn when_watched(mode: Option<Mode>, quiet: bool) -> Option<Sink> {
    let mode = mode.unwrap_or(if std::io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::None
    });
    sink(mode, quiet)
}

/// A progress sink for `mode` (`quiet` forces [`Mode::None`]).
pub fn sink(mode: Mode, quiet: bool) -> Option<Sink> {
    let mode = match (quiet, mode) {
        (true, _) => Mode::None,
        (false, Mode::Auto) if std::io::stderr().is_terminal() => Mode::Bars,
        (false, Mode::Auto) => Mode::Lines,
        (false, m) => m,
    };
    match mode {
        Mode::None => None,
        Mode::Json => Some(Sink::new(|ev: &Event| {
            if let Ok(line) = serde_json::to_string(ev) {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        })),
        Mode::Lines | Mode::Auto => Some(Sink::new(|ev: &Event| match ev {
            Event::BlobDone { digest, size, how } => eprintln!(
                "blob {} {} ({})",
                digest.short(),
                outcome_word(*how),
                hoist::limits::human_bytes(*size)
            ),
            Event::Step { name, .. } => eprintln!("{name}"),
            _ => {}
        })),
        Mode::Bars => Some(bars()),
    }
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: HashMap<Digest, (ProgressBar, u64)>,
    /// The bar (or spinner) of the current step, if one is running.
    step: Option<ProgressBar>,
}

fn bars() -> Sink {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let total = multi.add(ProgressBar::new(0));
    total.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    total.set_prefix("total");
    let state = Mutex::new(Bars {
        multi,
        total,
        blobs: HashMap::new(),
        step: None,
    });
    let blob_style =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let step_style =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    Sink::new(move |ev: &Event| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            Event::Plan { bytes, .. } => s.total.set_length(*bytes),
            Event::BlobStarted { digest, size } => {
                let bar = s.multi.add(ProgressBar::new(*size));
                bar.set_style(blob_style.clone());
                bar.set_prefix(digest.hex()[..12].to_string());
                s.blobs.insert(digest.clone(), (bar, 0));
            }
            Event::BlobProgress { digest, done } => {
                let mut delta = 0;
                if let Some((bar, seen)) = s.blobs.get_mut(digest) {
                    bar.set_position(*done);
                    delta = done.saturating_sub(*seen);
                    *seen = *done;
                }
                s.total.inc(delta);
            }
            Event::BlobDone { digest, size, how } => {
                let seen = match s.blobs.remove(digest) {
                    Some((bar, seen)) => {
                        bar.finish_and_clear();
                        s.multi.remove(&bar);
                        seen
                    }
                    None => 0,
                };
                s.total.inc(size.saturating_sub(seen));
                let _ = s
                    .multi
                    .println(format!("{} {}", digest.short(), outcome_word(*how)));
            }
            Event::Step { name, total } => {
                if let Some(old) = s.step.take() {
                    old.finish_and_clear();
                    s.multi.remove(&old);
                }
                let bar = match total {
                    Some(len) => {
                        let bar = s.multi.add(ProgressBar::new(*len));
                        bar.set_style(step_style.clone());
                        bar
                    }
                    None => {
                        let bar = s.multi.add(ProgressBar::new_spinner());
                        bar.enable_steady_tick(std::time::Duration::from_millis(120));
                        bar
                    }
                };
                bar.set_message(name.clone());
                s.step = Some(bar);
            }
            Event::StepProgress { done } => {
                if let Some(bar) = &s.step {
                    let done = bar.length().map_or(*done, |len| (*done).min(len));
                    bar.set_position(done);
                }
            }
            _ => {}
        }
    })
}
