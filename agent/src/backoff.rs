//! How long to wait before the next connection attempt: exponential with
//! "equal jitter", so that agents that lost the same manager at the same
//! moment do not all knock on the next one at the same instant, while none
//! of them retries in a hot loop.

use std::time::Duration;

use rand::Rng;

/// The delay before reconnect attempt `attempt` (0 for the first retry).
///
/// The ceiling starts at `min` and doubles with every attempt up to `max`;
/// the delay is half the ceiling plus `jitter` (a random value in `[0, 1]`,
/// clamped) times the other half, so it lies in `[ceiling / 2, ceiling]`.
/// Kept free of randomness so that the bounds can be tested.
pub fn backoff_delay(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    let ceiling = min.saturating_mul(factor).min(max.max(min));
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(jitter)
}

/// The reconnect delays of one agent: grows with each failed attempt and
/// starts over once a manager welcomed the agent.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            attempt: 0,
        }
    }

    /// The next delay with the given jitter in `[0, 1]`; counts an attempt.
    pub fn next_with(&mut self, jitter: f64) -> Duration {
        let delay = backoff_delay(self.attempt, self.min, self.max, jitter);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// The next delay with random jitter; counts an attempt.
    pub fn next_delay(&mut self) -> Duration {
        let jitter: f64 = rand::rng().random();
        self.next_with(jitter)
    }

    /// Starts over from `min`: a manager accepted the agent.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(3);

    #[test]
    fn the_ceiling_doubles_from_min_up_to_max() {
        let ceilings: Vec<Duration> = (0..8).map(|a| backoff_delay(a, MIN, MAX, 1.0)).collect();
        let ms: Vec<u128> = ceilings.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3000, 3000, 3000]);
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_and_the_whole_ceiling() {
        for attempt in 0..10 {
            let ceiling = backoff_delay(attempt, MIN, MAX, 1.0);
            let low = backoff_delay(attempt, MIN, MAX, 0.0);
            assert_eq!(low, ceiling / 2, "attempt {attempt}");
            for j in [0.1, 0.25, 0.5, 0.9, 0.999] {
                let d = backoff_delay(attempt, MIN, MAX, j);
                assert!(
                    d >= low && d <= ceiling,
                    "attempt {attempt}, jitter {j}: {d:?}"
                );
            }
            // The jitter really spreads the delays: it is not a constant.
            assert!(backoff_delay(attempt, MIN, MAX, 0.2) < backoff_delay(attempt, MIN, MAX, 0.8));
        }
        assert_eq!(backoff_delay(0, MIN, MAX, 0.5), Duration::from_millis(75));
    }

    #[test]
    fn huge_attempts_and_odd_jitter_do_not_overflow() {
        assert_eq!(backoff_delay(u32::MAX, MIN, MAX, 1.0), MAX);
        assert_eq!(backoff_delay(64, MIN, Duration::MAX, 1.0), MIN * u32::MAX);
        assert_eq!(
            backoff_delay(3, MIN, MAX, 7.0),
            backoff_delay(3, MIN, MAX, 1.0)
        );
        assert_eq!(
            backoff_delay(3, MIN, MAX, -1.0),
            backoff_delay(3, MIN, MAX, 0.0)
        );
        assert_eq!(
            backoff_delay(3, MIN, MAX, f64::NAN),
            backoff_delay(3, MIN, MAX, 0.0)
        );
        // A max below min cannot make the delay shorter than the first one.
        assert_eq!(backoff_delay(5, MIN, Duration::ZERO, 1.0), MIN);
    }

    #[test]
    fn a_welcome_starts_the_backoff_over() {
        let mut b = Backoff::new(MIN, MAX);
        let first: Vec<Duration> = (0..4).map(|_| b.next_with(1.0)).collect();
        assert_eq!(first, [MIN, MIN * 2, MIN * 4, MIN * 8]);
        b.reset();
        assert_eq!(b.next_with(1.0), MIN);
        let random = b.next_delay();
        assert!(random >= MIN && random <= MIN * 2, "{random:?}");
    }
}
