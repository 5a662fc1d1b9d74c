//! Ctrl-C and SIGTERM, the same way for `lmbench run` and `lmbench sim`: the first signal
//! cancels a token (the run stops sending, keeps what it measured and tears down what it
//! deployed; the simulated engine stops serving), a second one calls `on_second` (the run
//! kills its engines and exits at once).

use tokio_util::sync::CancellationToken;

/// Wait for Ctrl-C or SIGTERM, whichever comes first.
async fn next_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    match term.as_mut() {
        Some(t) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = t.recv() => {},
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Cancel `cancel` on the first Ctrl-C or SIGTERM (logging `first_note` when given) and call
/// `on_second` on the next one. Must be called inside a tokio runtime.
pub fn on_interrupt(
    cancel: CancellationToken,
    first_note: Option<&'static str>,
    on_second: impl FnOnce() + Send + 'static,
) {
    tokio::spawn(async move {
        next_signal().await;
        if let Some(note) = first_note {
            tracing::warn!("{note}");
        }
        cancel.cancel();
        next_signal().await;
        on_second();
    });
}
