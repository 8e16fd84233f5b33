//! Grouping batches for UDP segmentation offload (GSO), and splitting what UDP GRO coalesced.
//!
//! With GSO one `sendmsg` hands the kernel a buffer of back-to-back datagrams and their size:
//! every segment but the last must have exactly that size, the last may be shorter, and the
//! whole must fit one UDP datagram's length field. The kernel then moves the group as one
//! packet through the stack (and across a veth, to a socket with UDP GRO on, whole); each
//! segment still leaves as its own datagram holding one batch, so the wire does not change.
//!
//! [`Coalescer`] decides, batch by batch, whether the next one joins the open group; it does no
//! I/O and keeps no clock, so its boundaries are unit-tested here.

/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels and
/// 128 on newer ones; 64 is accepted by both).
pub const MAX_SEGMENTS: usize = 64;

/// Most payload bytes in one GSO send or GRO receive: a UDP datagram's length field (65535)
/// less the UDP header (8) and a minimal IPv4 header (20).
pub const MAX_GROUP_BYTES: usize = 65_507;

/// What the caller must do after [`Coalescer::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The batch joined the group; more may follow.
    Joined,
    /// The batch joined the group, which must now be sent (it is full, or ended by a shorter
    /// batch).
    JoinedSend,
    /// The batch cannot join: send the group without it (`..start` bytes), then
    /// [`Coalescer::restart`] with the batch moved to the front of the buffer.
    Apart {
        /// Where the rejected batch starts in the buffer.
        start: usize,
    },
}

/// The open group of batches: their total length, segment size and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescer {
    /// Most segments per group (1 turns coalescing off).
    max_segments: usize,
    len: usize,
    segment: usize,
    count: usize,
}

impl Coalescer {
    /// Groups batches, at most `max_segments` per group.
    pub fn new(max_segments: usize) -> Self {
        Self {
            max_segments: max_segments.clamp(1, MAX_SEGMENTS),
            len: 0,
            segment: 0,
            count: 0,
        }
    }

    /// Stops grouping: every batch goes alone (after GSO turned out to be unavailable).
    pub fn disable(&mut self) {
        self.max_segments = 1;
    }

    /// Where the next batch is to be written.
    pub fn offset(&self) -> usize {
        self.len
    }

    /// Bytes of the open group.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Batches in the open group.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The segment size: the first batch's length.
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// A batch of `n` bytes was written at [`Coalescer::offset`].
    pub fn commit(&mut self, n: usize) -> Commit {
        if self.count == 0 {
            self.segment = n;
        } else if n > self.segment {
            return Commit::Apart { start: self.len };
        }
        self.len += n;
        self.count += 1;
        let ended = n < self.segment;
        // Only a batch no longer than the segment may join, so the group is full when one
        // more of those would not fit.
        let full =
            self.count >= self.max_segments || self.len + self.segment.max(1) > MAX_GROUP_BYTES;
        if ended || full {
            Commit::JoinedSend
        } else {
            Commit::Joined
        }
    }

    /// The group was sent: start empty.
    pub fn clear(&mut self) {
        self.len = 0;
        self.segment = 0;
        self.count = 0;
    }

    /// The group was sent and a batch of `n` bytes now sits at the front of the buffer.
    pub fn restart(&mut self, n: usize) -> Commit {
        self.clear();
        self.commit(n)
    }
}

/// The datagrams in `len` bytes that arrived coalesced with segment size `segment` (0 or a
/// size at least `len`: one datagram): ranges of `segment` bytes, the last possibly shorter.
pub fn segments(len: usize, segment: usize) -> impl Iterator<Item = core::ops::Range<usize>> {
    let step = if segment == 0 { len.max(1) } else { segment };
    (0..len)
        .step_by(step)
        .map(move |start| start..(start + step).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds batch lengths through a coalescer and returns the groups sent, as lists of lengths.
    fn groups(max_datagram: usize, max_segments: usize, lens: &[usize]) -> Vec<Vec<usize>> {
        let mut c = Coalescer::new(max_segments);
        let mut out = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        for &n in lens {
            assert!(n <= max_datagram);
            assert_eq!(c.offset(), open.iter().sum::<usize>());
            match c.commit(n) {
                Commit::Joined => open.push(n),
                Commit::JoinedSend => {
                    open.push(n);
                    out.push(std::mem::take(&mut open));
                    c.clear();
                }
                Commit::Apart { start } => {
                    assert_eq!(start, open.iter().sum::<usize>());
                    out.push(std::mem::take(&mut open));
                    open.push(n);
                    if c.restart(n) == Commit::JoinedSend {
                        out.push(std::mem::take(&mut open));
                        c.clear();
                    }
                }
            }
            assert_eq!(c.count(), open.len());
        }
        if !c.is_empty() {
            out.push(open);
        }
        out
    }

    /// Every group is GSO-valid: equal segments but a shorter last, within the limits.
    fn check_valid(groups: &[Vec<usize>], max_segments: usize) {
        for g in groups {
            assert!(!g.is_empty() && g.len() <= max_segments, "{g:?}");
            assert!(g.iter().sum::<usize>() <= MAX_GROUP_BYTES, "{g:?}");
            let (last, rest) = g.split_last().unwrap();
            assert!(rest.iter().all(|&n| n == g[0]), "{g:?}");
            assert!(*last <= g[0], "{g:?}");
        }
    }

    #[test]
    fn full_batches_fill_a_group() {
        let lens = vec![1472; 100];
        let g = groups(1472, 64, &lens);
        check_valid(&g, 64);
        // 44 * 1472 = 64768 fits, a 45th would not.
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), [44, 44, 12]);
    }

    #[test]
    fn a_shorter_batch_ends_the_group() {
        let g = groups(1472, 64, &[1472, 1472, 900, 1472, 60]);
        check_valid(&g, 64);
        assert_eq!(g, [vec![1472, 1472, 900], vec![1472, 60]]);
    }

    #[test]
    fn a_longer_batch_starts_a_new_group() {
        let g = groups(1472, 64, &[60, 1472, 1472, 1400, 1472]);
        check_valid(&g, 64);
        assert_eq!(g, [vec![60], vec![1472, 1472, 1400], vec![1472]]);
    }

    #[test]
    fn segment_count_and_size_limits() {
        let g = groups(100, 3, &[100; 7]);
        assert_eq!(g, [vec![100; 3], vec![100; 3], vec![100]]);
        // One segment per group: coalescing off.
        let g = groups(1472, 1, &[1472, 1472, 10]);
        assert_eq!(g, [vec![1472], vec![1472], vec![10]]);
        // Datagrams too large to pair go alone.
        let g = groups(40_000, 64, &[40_000, 40_000, 30_000]);
        assert_eq!(g, [vec![40_000], vec![40_000], vec![30_000]]);
        // Small segments: the group ends before the next could overflow it.
        let g = groups(512, 64, &[512; 200]);
        check_valid(&g, 64);
        assert_eq!(g[0].len(), 64);
    }

    #[test]
    fn disabled_sends_one_at_a_time() {
        let mut c = Coalescer::new(64);
        c.disable();
        assert_eq!(c.commit(1472), Commit::JoinedSend);
    }

    #[test]
    fn seeded_sequences_stay_valid() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let max = rng.usize(512..=9000);
            let lens: Vec<usize> = (0..rng.usize(1..300))
                .map(|_| if rng.bool() { max } else { rng.usize(40..=max) })
                .collect();
            let segs = rng.usize(1..=64);
            let g = groups(max, segs, &lens);
            check_valid(&g, segs);
            assert_eq!(g.concat(), lens, "every batch sent once, in order");
        }
    }

    #[test]
    fn splitting_what_gro_coalesced() {
        let split = |len, seg| segments(len, seg).collect::<Vec<_>>();
        assert_eq!(split(1472 * 3, 1472), [0..1472, 1472..2944, 2944..4416]);
        assert_eq!(
            split(1472 * 2 + 60, 1472),
            [0..1472, 1472..2944, 2944..3004]
        );
        assert_eq!(split(900, 1472), vec![0..900]);
        assert_eq!(split(900, 0), vec![0..900]);
        assert_eq!(split(1472, 1472), vec![0..1472]);
        assert!(split(0, 1472).is_empty());
        assert!(split(0, 0).is_empty());
    }
}
