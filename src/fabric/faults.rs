//! The fabric's seeded fault model: which messages vanish and which fail.
//!
//! Two independent streams, both seeded from the one seed: one decides the fate of COMMANDs, the
//! other of COMPLETIONs, each with one draw per message. So the faults that hit commands depend only
//! on the order in which commands reach the fabric, and those that hit completions only on the
//! order of completions: a run with one initiator that sends commands in a fixed order sees the same
//! faults every time, however the two directions interleave.

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Delivered as sent.
    Pass,
    /// Vanishes silently; the initiator's own timeout notices.
    Drop,
    /// Fails with a transport error (`DID_ERROR`): a COMMAND is answered at once instead of being
    /// forwarded, a COMPLETION loses its status and data.
    Error,
}

/// The seeded fault decisions, one per message.
#[derive(Clone, Debug)]
pub struct FaultModel {
    drop: f64,
    error: f64,
    commands: fastrand::Rng,
    completions: fastrand::Rng,
}

/// Separates the completion stream's seed from the command stream's.
const COMPLETION_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

impl FaultModel {
    /// A model that drops each message with probability `drop` and fails it with probability
    /// `error` (one draw `u` in [0, 1) per message: drop when `u < drop`, else fail when
    /// `u < drop + error`). The caller checks that both are in [0, 1] and sum to at most 1
    /// (see [`super::FabricOptions::validate`]).
    pub fn new(drop: f64, error: f64, seed: u64) -> Self {
        FaultModel {
            drop,
            error,
            commands: fastrand::Rng::with_seed(seed),
            completions: fastrand::Rng::with_seed(seed ^ COMPLETION_STREAM),
        }
    }

    /// The fate of the next COMMAND that would be forwarded to the target.
    pub fn command(&mut self) -> Fault {
        Self::decide(&mut self.commands, self.drop, self.error)
    }

    /// The fate of the next COMPLETION that would be forwarded to an initiator.
    pub fn completion(&mut self) -> Fault {
        Self::decide(&mut self.completions, self.drop, self.error)
    }

    fn decide(rng: &mut fastrand::Rng, drop: f64, error: f64) -> Fault {
        let u = rng.f64();
        if u < drop {
            Fault::Drop
        } else if u < drop + error {
            Fault::Error
        } else {
            Fault::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_streams_are_independent() {
        let mut a = FaultModel::new(0.3, 0.2, 7);
        let mut b = FaultModel::new(0.3, 0.2, 7);
        let cmds_a: Vec<Fault> = (0..100).map(|_| a.command()).collect();
        // Interleave completions on b: its command stream is unaffected.
        let cmds_b: Vec<Fault> = (0..100)
            .map(|_| {
                b.completion();
                b.command()
            })
            .collect();
        assert_eq!(cmds_a, cmds_b);
    }

    #[test]
    fn rates_are_roughly_right() {
        let mut m = FaultModel::new(0.25, 0.5, 99);
        let n = 20_000;
        let faults: Vec<Fault> = (0..n).map(|_| m.command()).collect();
        let drops = faults.iter().filter(|f| **f == Fault::Drop).count();
        let errors = faults.iter().filter(|f| **f == Fault::Error).count();
        assert!((4500..5500).contains(&drops), "{drops}");
        assert!((9500..10500).contains(&errors), "{errors}");
    }

    #[test]
    fn extremes() {
        let mut none = FaultModel::new(0.0, 0.0, 1);
        let mut all_drop = FaultModel::new(1.0, 0.0, 1);
        let mut all_error = FaultModel::new(0.0, 1.0, 1);
        for _ in 0..1000 {
            assert_eq!(none.command(), Fault::Pass);
            assert_eq!(all_drop.completion(), Fault::Drop);
            assert_eq!(all_error.command(), Fault::Error);
        }
    }
}
