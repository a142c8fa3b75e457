//! `durable::cancel_on_signals`: the first SIGINT cancels the registered token, and says which signal
//! did, instead of ending the process. In a test binary of its own, as the handler is process-wide
//! (the grace is long enough that the binary has ended before it could run out).

use std::time::{Duration, Instant};

use hoist::durable::{cancel_on_signals, cancelled_by_signal};

#[test]
fn the_first_sigint_cancels_the_registered_token_instead_of_ending_the_process() {
    let token = hoist::CancelToken::new();
    cancel_on_signals(&token, Duration::from_secs(600)).unwrap();
    assert_eq!(cancelled_by_signal(), None);
    // SAFETY: raising a signal is always allowed; its handler only writes to a pipe.
    unsafe {
        libc::raise(libc::SIGINT);
    }
    let start = Instant::now();
    while !token.is_cancelled() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "SIGINT did not cancel the token"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cancelled_by_signal(), Some(libc::SIGINT));
    assert!(matches!(token.check(), Err(hoist::Error::Cancelled)));
}
