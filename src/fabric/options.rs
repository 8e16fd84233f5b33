//! What `fcvpn fabric` is told to do.

use std::path::PathBuf;
use std::time::Duration;

use super::FabricError;

/// The longest delay the fabric accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Options of [`super::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct FabricOptions {
    /// The Unix socket ports connect to.
    pub socket: PathBuf,
    /// Probability in [0, 1] that a COMMAND or a COMPLETION silently vanishes.
    pub drop: f64,
    /// Probability in [0, 1] that a COMMAND or a COMPLETION fails with a transport error;
    /// `drop + error` is at most 1.
    pub error: f64,
    /// How long every forwarded COMMAND, COMPLETION and ABORT is held before it is written
    /// (at most [`MAX_DELAY`]).
    pub delay: Duration,
    /// Seed of the fault model (see [`super::FaultModel`]).
    pub seed: u64,
}

impl FabricOptions {
    /// A fabric on `socket` with no faults and no delay.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        FabricOptions {
            socket: socket.into(),
            drop: 0.0,
            error: 0.0,
            delay: Duration::ZERO,
            seed: 0,
        }
    }

    /// Checks the probabilities and the delay; [`FabricError::InvalidOptions`] says which is wrong.
    pub fn validate(&self) -> Result<(), FabricError> {
        let probability = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(FabricError::InvalidOptions(format!(
                    "{name} = {p} is not a probability in [0, 1]"
                )))
            }
        };
        probability("drop", self.drop)?;
        probability("error", self.error)?;
        if self.drop + self.error > 1.0 {
            return Err(FabricError::InvalidOptions(format!(
                "drop + error = {} exceeds 1",
                self.drop + self.error
            )));
        }
        if self.delay > MAX_DELAY {
            return Err(FabricError::InvalidOptions(format!(
                "delay {:?} exceeds {MAX_DELAY:?}",
                self.delay
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let ok = FabricOptions::new("/tmp/x");
        assert!(ok.validate().is_ok());
        let bad = [
            FabricOptions {
                drop: -0.1,
                ..ok.clone()
            },
            FabricOptions {
                error: 1.5,
                ..ok.clone()
            },
            FabricOptions {
                drop: f64::NAN,
                ..ok.clone()
            },
            FabricOptions {
                drop: 0.6,
                error: 0.5,
                ..ok.clone()
            },
            FabricOptions {
                delay: Duration::from_secs(61),
                ..ok.clone()
            },
        ];
        for o in bad {
            assert!(
                matches!(o.validate(), Err(FabricError::InvalidOptions(_))),
                "{o:?}"
            );
        }
        let edge = FabricOptions {
            drop: 0.5,
            error: 0.5,
            delay: MAX_DELAY,
            ..ok
        };
        assert!(edge.validate().is_ok());
    }
}
