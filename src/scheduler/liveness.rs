//! Whether a datacenter's agent is heard from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Alive, suspect or down, judged from how long an agent has been silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Heard from within `suspect_after`.
    Alive,
    /// Silent longer than `suspect_after`; still schedulable.
    Suspect,
    /// Silent longer than `down_after`: no new placements, its claims at risk.
    Down,
}

impl Liveness {
    /// Lower-case name, as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Down => "down",
        }
    }
}

/// When silence turns an agent suspect, then down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessPolicy {
    /// Silence after which a datacenter is suspect.
    pub suspect_after: Duration,
    /// Silence after which a datacenter is down.
    pub down_after: Duration,
}

impl LivenessPolicy {
    /// The verdict for an agent last heard from `silent_for` ago; `None`
    /// (never heard from since this manager started) counts as silent forever.
    pub fn judge(&self, silent_for: Option<Duration>) -> Liveness {
        match silent_for {
            Some(s) if s <= self.suspect_after => Liveness::Alive,
            Some(s) if s <= self.down_after => Liveness::Suspect,
            _ => Liveness::Down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_turns_alive_into_suspect_into_down() {
        let p = LivenessPolicy {
            suspect_after: Duration::from_secs(15),
            down_after: Duration::from_secs(60),
        };
        assert_eq!(p.judge(Some(Duration::from_secs(1))), Liveness::Alive);
        assert_eq!(p.judge(Some(Duration::from_secs(15))), Liveness::Alive);
        assert_eq!(p.judge(Some(Duration::from_secs(16))), Liveness::Suspect);
        assert_eq!(p.judge(Some(Duration::from_secs(61))), Liveness::Down);
        assert_eq!(p.judge(None), Liveness::Down);
    }
}
