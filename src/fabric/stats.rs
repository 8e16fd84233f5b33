//! What the fabric counted.

/// Counters of one [`super::run`], returned and logged when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FabricStats {
    /// Logins accepted.
    pub logins: u64,
    /// Logins refused (a second target).
    pub rejected_logins: u64,
    /// Logged-in ports whose connection closed, for any reason.
    pub disconnects: u64,
    /// COMMANDs received from initiators.
    pub commands: u64,
    /// COMPLETIONs received from the target.
    pub completions: u64,
    /// ABORTs received from initiators.
    pub aborts: u64,
    /// COMMANDs and COMPLETIONs that vanished by the `drop` fault.
    pub dropped: u64,
    /// COMMANDs and COMPLETIONs failed by the `error` fault.
    pub errored: u64,
    /// COMMANDs answered with "no connection" because no target was logged in.
    pub no_target: u64,
    /// COMMANDs answered with "no connection" because the target disconnected while holding them.
    pub target_lost: u64,
    /// COMPLETIONs for no outstanding command (aborted, dropped, or unknown), discarded.
    pub stray: u64,
    /// COMPLETIONs with more data than the command expected, turned into transport errors.
    pub overruns: u64,
    /// ABORTs the fabric sent to the target for the outstanding commands of a departed initiator.
    pub implicit_aborts: u64,
    /// Connections closed for a malformed frame or a protocol violation.
    pub protocol_errors: u64,
    /// Connections closed because they stopped reading (write buffer over its limit).
    pub slow_ports: u64,
    /// Connections refused because too many were open.
    pub refused: u64,
    /// Connections closed because they sent no LOGIN in time.
    pub login_timeouts: u64,
    /// COMMANDs failed with a transport error, and COMPLETIONs and ABORTs discarded, because a
    /// limit of the fabric (outstanding commands, bytes in the delay queue) was reached.
    pub overloaded: u64,
}
