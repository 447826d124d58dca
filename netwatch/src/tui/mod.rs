//! `netwatch` on a terminal: a full-screen live view of the table, the
//! latest events and the recently closed connections.
//!
//! The screen follows the events, coalesced: a redraw when `Live::next`
//! brings changes, at most every [`MIN_REDRAW`], plus one a second for the
//! ages and the rate, plus one per key. Drawing never reads /proc; it reads
//! an [`app::Snapshot`] of the table, re-copied only when the rows changed.
//! `Live::next` is never cancelled mid-way (it applies events before it
//! returns them): keys are handled while it is pending, from the snapshot.

mod app;
mod details;
mod events_pane;
mod format;
mod group;
mod header;
mod help;
mod input;
mod rate;
mod table_view;
mod talkers;
mod terminal;
mod ui;
mod view;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod render_tests;

use std::{
    panic::AssertUnwindSafe,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use crossterm::event::EventStream;
use futures_util::{FutureExt as _, StreamExt as _};
use jiff::tz::TimeZone;

use self::{app::App, input::Action, terminal::Screen};
use crate::{
    event::clock::monotonic_ns,
    live::{Live, Update},
};

/// Coalescing: at most ten redraws a second however fast events come...
const MIN_REDRAW: Duration = Duration::from_millis(100);
/// ...and fewer when a redraw is expensive (tens of thousands of rows
/// changing all the time): redraws then take at most 1/[`COST_SHARE`] of
/// the time, but still happen every [`TICK`].
const COST_SHARE: u32 = 8;
/// Ages and the rate move even when nothing happens.
const TICK: Duration = Duration::from_secs(1);

/// Runs the full-screen view until `q`, Ctrl-C, SIGTERM or an error, then
/// restores the terminal and detaches the programs (also after a panic).
pub async fn run(mut live: Live) -> Result<()> {
    // The RTT column shows what the kernel's `tcp_info` says now.
    live.live_rtt = true;
    let outcome = AssertUnwindSafe(drive(&mut live)).catch_unwind().await;
    // The terminal is restored by now (guard or panic hook).
    let finished = live.finish().await.context("detaching the kernel programs");
    match outcome {
        Ok(Ok(Exit::Quit)) => finished.map(drop),
        // The reader's own error, from `finish`, says why it stopped.
        Ok(Ok(Exit::ReaderStopped)) => {
            finished?;
            bail!("the kernel event reader stopped unexpectedly")
        }
        Ok(Err(e)) => Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

enum Exit {
    Quit,
    ReaderStopped,
}

enum Step {
    Update(Option<Update>),
    Quit,
}

async fn drive(live: &mut Live) -> Result<Exit> {
    let mut screen = Screen::enter()?;
    let tz = TimeZone::try_system().unwrap_or(TimeZone::UTC);
    let mut app = App::new(live.degraded().map(str::to_owned), tz);
    let mut keys = EventStream::new();
    // Raw mode turns Ctrl-C into a key, but `kill -INT` still sends SIGINT.
    let mut stop = crate::live::StopSignals::install()?;
    let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;

    app.refresh(&live.table, monotonic_ns());
    draw(&mut screen, &mut app)?;
    let mut last_draw = Instant::now();
    let mut next_tick = last_draw + TICK;
    let mut min_redraw = MIN_REDRAW;
    loop {
        let now = Instant::now();
        let wake = if app.table_dirty() && !app.ui.paused { last_draw + min_redraw } else { next_tick };
        let wait = wake.saturating_duration_since(now).max(Duration::from_millis(1));
        let step = {
            let next = live.next(wait);
            tokio::pin!(next);
            loop {
                tokio::select! {
                    update = &mut next => break Step::Update(update),
                    key = keys.next() => {
                        let Some(key) = key else { break Step::Quit };
                        let ev = key.context("reading the terminal")?;
                        match input::on_terminal_event(&mut app, &ev) {
                            Action::Quit => break Step::Quit,
                            Action::Redraw => draw(&mut screen, &mut app)?,
                            Action::None => {}
                        }
                    }
                    () = stop.recv() => break Step::Quit,
                }
            }
        };
        let update = match step {
            Step::Quit => return Ok(Exit::Quit),
            Step::Update(None) => return Ok(Exit::ReaderStopped),
            Step::Update(Some(update)) => update,
        };
        // Keys that came while the model worked synchronously (applying a
        // step) are answered now, before the copy of the table below, not
        // after it.
        if !answer_pending_keys(&mut app, &mut keys, &mut screen, &waker)? {
            return Ok(Exit::Quit);
        }
        let repaint = update.reseeded;
        app.ingest(update);
        if repaint {
            // A rebuild may have printed warnings over the screen: repaint
            // it all, now if paused (nothing else will).
            screen.term.clear().context("clearing the terminal")?;
            if app.ui.paused {
                draw(&mut screen, &mut app)?;
            }
        }
        let now = Instant::now();
        let tick = now >= next_tick;
        if tick {
            next_tick = now + TICK;
            app.mark_table_dirty();
        }
        let due = app.table_dirty() && now.duration_since(last_draw) >= min_redraw;
        if !app.ui.paused && (tick || due) {
            let go_on = app.refresh_sliced(&live.table, monotonic_ns(), |app| {
                answer_pending_keys(app, &mut keys, &mut screen, &waker)
            })?;
            if !go_on {
                return Ok(Exit::Quit);
            }
            draw(&mut screen, &mut app)?;
            last_draw = now;
            min_redraw = (now.elapsed() * COST_SHARE).clamp(MIN_REDRAW, TICK);
        }
    }
}

/// Handles the keys already typed, without waiting for more; `false` on
/// quit. `waker` must be the task's own: the stream asks its reader thread
/// for a wake-up only once until it comes, so one given to a throw-away
/// waker (`now_or_never`) would leave the `select!` above deaf to keys.
fn answer_pending_keys(app: &mut App, keys: &mut EventStream, screen: &mut Screen, waker: &Waker) -> Result<bool> {
    let mut cx = Context::from_waker(waker);
    while let Poll::Ready(key) = keys.poll_next_unpin(&mut cx) {
        let Some(key) = key else { return Ok(false) };
        match input::on_terminal_event(app, &key.context("reading the terminal")?) {
            Action::Quit => return Ok(false),
            Action::Redraw => draw(screen, app)?,
            Action::None => {}
        }
    }
    Ok(true)
}

fn draw(screen: &mut Screen, app: &mut App) -> Result<()> {
    let now = monotonic_ns();
    screen.draw(|f| ui::draw(f, app, now)).context("drawing the screen")
}
