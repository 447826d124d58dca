//! Full-screen mode, left on every exit path: normal return, error, and
//! panic (the hook restores the terminal before the message prints).

use std::{
    io::{self, stdout, BufWriter, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
};

use anyhow::{Context as _, Result};
use crossterm::{
    cursor::{Hide, Show},
    execute, queue,
    terminal::{
        disable_raw_mode, enable_raw_mode, BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen,
        LeaveAlternateScreen,
    },
};
use ratatui::{backend::CrosstermBackend, Terminal};

/// Buffered so that a frame reaches the terminal in one write, not in
/// stdout's 1 KiB pieces: a terminal (or tmux) never shows half a frame.
pub type Term = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// Room for a full frame of a large terminal, styles included.
const FRAME_BUFFER: usize = 256 << 10;

/// Whether the terminal is in full-screen mode, so that restoring twice
/// (guard and panic hook) writes nothing the second time.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal in raw mode on the alternate screen; restored on drop.
pub struct Screen {
    pub term: Term,
}

impl Screen {
    pub fn enter() -> Result<Self> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = || -> io::Result<Term> {
            enable_raw_mode()?;
            execute!(stdout(), EnterAlternateScreen, Hide)?;
            Terminal::new(CrosstermBackend::new(BufWriter::with_capacity(FRAME_BUFFER, stdout())))
        };
        match setup() {
            Ok(term) => Ok(Self { term }),
            Err(e) => {
                restore();
                Err(e).context("switching the terminal to full-screen mode")
            }
        }
    }

    /// Draws one frame as a synchronized update (DEC mode 2026), which
    /// terminals that know it show at once; others ignore the brackets.
    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame)) -> io::Result<()> {
        queue!(self.term.backend_mut(), BeginSynchronizedUpdate)?;
        self.term.draw(render)?;
        execute!(self.term.backend_mut(), EndSynchronizedUpdate)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen, and shows the cursor.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Errors are ignored: nothing better can be done on the way out.
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    }
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
