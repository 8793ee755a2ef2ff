//! How much of the trail is kept: at most `max_events`, none older than
//! `max_age`. Trimming takes the oldest first, so it never drops an event
//! younger than the age limit while the count allows it.

/// How deep the history is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// The most events kept.
    pub max_events: usize,
    /// The oldest event kept, in ms before now.
    pub max_age_ms: u64,
}

/// How many of `times` (the events' times, oldest first) to drop from the
/// front so that what is left is within `depth` at `now_ms`.
pub fn excess(
    times: impl IntoIterator<Item = u64>,
    count: usize,
    depth: Depth,
    now_ms: u64,
) -> usize {
    let cutoff = now_ms.saturating_sub(depth.max_age_ms);
    let over = count.saturating_sub(depth.max_events);
    let mut drop = 0;
    for time in times {
        if drop >= count || (drop >= over && time >= cutoff) {
            break;
        }
        drop += 1;
    }
    drop
}
