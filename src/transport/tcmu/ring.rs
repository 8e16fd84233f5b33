//! The TCMU command ring: commands out of it, completions into it, over [`SharedMemory`].
//!
//! Sans-IO: the ring never touches the UIO descriptor. [`Ring::next_event`] reads what the
//! kernel queued; [`Ring::complete`] writes completions and moves `cmd_tail`;
//! [`Ring::take_notify`] says whether the kernel must be told (one 4-byte write to the UIO
//! descriptor covers any number of completions).
//!
//! # Completion slots (out-of-order completion)
//!
//! The kernel reclaims the ring from its last cleaned position up to `cmd_tail`, one entry at a
//! time, and completes the command **whose `cmd_id` it finds in each entry**
//! (`tcmu_handle_completions`). So a completion does not go into the command's own entry but
//! into the oldest not-yet-used CMD entry at the tail, with that entry's `cmd_id` rewritten
//! (as tcmu-runner does), and the tail then passes that one entry. A completion is thus never
//! held back behind an older command that is still parked (a READ waiting for a batch): with
//! CAP_OOOC the kernel takes completions in any order. Because every command is copied out
//! (CDB, iovecs, data-out) when it is read, overwriting its entry later loses nothing; and
//! since each consumed CMD entry provides one slot and each completion uses one, the tail
//! never passes an entry that has not been read. PAD and TMR entries need no response: the tail
//! passes them as soon as they reach it.

use std::collections::{HashMap, VecDeque};

use thiserror::Error;

use crate::scsi::status;
use crate::sys::tcmu::{
    CAP_OOOC, CAP_READ_LEN, MAILBOX_VERSION, OP_CMD, OP_MASK, OP_PAD, OP_TMR, OutOfBounds,
    SENSE_BUFFER_LEN, SharedMemory, UFLAG_READ_LEN, entry, mb,
};
use crate::transport::target::{TargetCommand, TargetEvent};

use super::opcode::{cdb_len, is_data_out};

/// Why the ring cannot be used; the kernel's side is inconsistent or our bookkeeping is.
#[derive(Debug, Error)]
pub enum RingError {
    /// The mailbox is not one this code understands.
    #[error("TCMU mailbox: {0}")]
    Mailbox(String),
    /// An entry the kernel queued makes no sense.
    #[error("TCMU ring entry at {at:#x}: {why}")]
    Entry {
        /// Ring offset of the entry.
        at: usize,
        /// What is wrong with it.
        why: String,
    },
    /// An offset the kernel gave points outside the shared region.
    #[error("TCMU ring: {0}")]
    Bounds(#[from] OutOfBounds),
    /// No consumed CMD entry is left at the tail for a completion (a bug, never the kernel's).
    #[error("TCMU ring: no entry at the tail for a completion (tail {tail:#x}, read {next:#x})")]
    NoSlot {
        /// Our `cmd_tail`.
        tail: usize,
        /// Where we read next.
        next: usize,
    },
}

/// Counters of what the ring saw; they only grow.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// CMD entries read.
    pub commands: u64,
    /// Completions written (including aborted commands).
    pub completions: u64,
    /// PAD entries passed.
    pub pads: u64,
    /// TMR entries read.
    pub tmrs: u64,
    /// Commands completed as aborted because a TMR named them.
    pub aborted: u64,
    /// Completions for a command no longer outstanding (aborted, or from before a reset),
    /// dropped.
    pub stale_completions: u64,
}

/// A command read from the ring and not yet completed.
struct Outstanding {
    /// The id handed out in its [`TargetCommand`].
    id: u64,
    /// Its data buffers: (offset from the region start, length).
    iovs: Vec<(usize, usize)>,
    /// Total data-in room (0 for data-out commands).
    data_in_len: usize,
}

/// The command ring of one TCMU device, as its only handler sees it.
pub struct Ring {
    mem: SharedMemory,
    cmdr_off: usize,
    cmdr_size: usize,
    data_off: usize,
    read_len: bool,
    /// Ring offset of the next entry to read.
    next: usize,
    /// Our `cmd_tail` (we are its only writer).
    tail: usize,
    outstanding: HashMap<u16, Outstanding>,
    events: VecDeque<TargetEvent>,
    /// Commands read so far: the high bits of the ids we hand out, so an id is never reused
    /// even though the kernel reuses `cmd_id`s at once.
    seq: u64,
    notify: bool,
    stats: RingStats,
}

impl Ring {
    /// Takes over the ring in `mem` (UIO map 0): checks the mailbox and starts reading at
    /// `cmd_tail`, which is where the kernel's head is on a fresh or reset ring.
    pub fn new(mem: SharedMemory) -> Result<Self, RingError> {
        let version = mem.u16_at(mb::VERSION)?;
        if version != MAILBOX_VERSION {
            return Err(RingError::Mailbox(format!(
                "version {version}, expected {MAILBOX_VERSION}"
            )));
        }
        let flags = mem.u16_at(mb::FLAGS)?;
        if flags & CAP_OOOC == 0 {
            return Err(RingError::Mailbox(format!(
                "the kernel does not take out-of-order completions (flags {flags:#x})"
            )));
        }
        let cmdr_off = mem.u32_at(mb::CMDR_OFF)? as usize;
        let cmdr_size = mem.u32_at(mb::CMDR_SIZE)? as usize;
        let data_off = cmdr_off.saturating_add(cmdr_size);
        if cmdr_off < mb::SIZE || cmdr_size < entry::CMD_MIN_LEN || data_off > mem.len() {
            return Err(RingError::Mailbox(format!(
                "ring at {cmdr_off:#x}+{cmdr_size:#x} does not fit a {:#x}-byte region",
                mem.len()
            )));
        }
        let mut ring = Self {
            mem,
            cmdr_off,
            cmdr_size,
            data_off,
            read_len: flags & CAP_READ_LEN != 0,
            next: 0,
            tail: 0,
            outstanding: HashMap::new(),
            events: VecDeque::new(),
            seq: 0,
            notify: false,
            stats: RingStats::default(),
        };
        ring.restart()?;
        Ok(ring)
    }

    /// Forgets every command and starts again at `cmd_tail`: after the kernel's
    /// `action/reset_ring`, which completed them all and set head and tail to 0.
    pub fn restart(&mut self) -> Result<(), RingError> {
        let tail = self.mem.load_acquire(mb::CMD_TAIL)? as usize;
        if tail >= self.cmdr_size {
            return Err(RingError::Mailbox(format!(
                "cmd_tail {tail:#x} is past the ring"
            )));
        }
        self.tail = tail;
        self.next = tail;
        self.outstanding.clear();
        self.events.clear();
        self.notify = false;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Commands read and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Our `cmd_tail` (ring offset).
    pub fn tail(&self) -> usize {
        self.tail
    }

    /// Whether completions (or passed PAD/TMR entries) are waiting for the kernel to be told;
    /// clears the flag.
    pub fn take_notify(&mut self) -> bool {
        std::mem::take(&mut self.notify)
    }

    /// The next command or abort, or `None` when the ring holds nothing new.
    ///
    /// A CMD entry becomes [`TargetEvent::Command`] with an id unique for the ring's lifetime;
    /// its CDB, data-out (for data-out opcodes) and data buffers are copied out. A TMR entry
    /// completes every command it names that is still outstanding as TASK ABORTED (so LIO can
    /// finish the abort) and yields [`TargetEvent::Abort`] for each; later completions for
    /// them are ignored. An inconsistent entry is an error: the ring must then be reset.
    pub fn next_event(&mut self) -> Result<Option<TargetEvent>, RingError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            let head = self.mem.load_acquire(mb::CMD_HEAD)? as usize;
            if head >= self.cmdr_size {
                return Err(RingError::Mailbox(format!(
                    "cmd_head {head:#x} is past the ring"
                )));
            }
            if head == self.next {
                return Ok(None);
            }
            let at = self.next;
            let (op, len) = self.header(at)?;
            let queued = (head + self.cmdr_size - at) % self.cmdr_size;
            if len > queued {
                return Err(entry_error(at, format!("length {len} runs past cmd_head")));
            }
            self.next = (at + len) % self.cmdr_size;
            match op {
                OP_PAD => {
                    self.stats.pads += 1;
                    self.pass_passive()?;
                }
                OP_TMR => {
                    self.read_tmr(at, len)?;
                    self.pass_passive()?;
                }
                OP_CMD => return self.read_cmd(at, len).map(Some),
                other => return Err(entry_error(at, format!("unknown opcode {other}"))),
            }
        }
    }

    /// Completes command `id` with a SAM status, sense (kept for CHECK CONDITION, at most 96
    /// bytes) and data-in (written into the command's buffers, at most their size).
    ///
    /// Data-in shorter than the buffers is reported with `read_len` (never 0: the kernel reads
    /// 0 as "all of it"); GOOD with no data-in zeroes the buffers instead, so no stale bytes
    /// reach the initiator. An id that is not outstanding (aborted, completed, or from before
    /// a reset) is ignored: completing it would break the ring.
    pub fn complete(
        &mut self,
        id: u64,
        status: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), RingError> {
        let cmd_id = (id & 0xffff) as u16;
        match self.outstanding.get(&cmd_id) {
            Some(o) if o.id == id => self.finish(cmd_id, status, sense, data_in),
            _ => {
                self.stats.stale_completions += 1;
                Ok(())
            }
        }
    }

    /// Completes every outstanding command with `status` and no data (shutting down, before
    /// the LUN is removed). Returns how many.
    pub fn complete_all(&mut self, status: u8) -> Result<usize, RingError> {
        let ids: Vec<u16> = self.outstanding.keys().copied().collect();
        for &cmd_id in &ids {
            self.finish(cmd_id, status, &[], &[])?;
        }
        Ok(ids.len())
    }

    /// The opcode and length of the entry at ring offset `at`, checked against the ring.
    fn header(&self, at: usize) -> Result<(u32, usize), RingError> {
        let room = self.cmdr_size - at;
        if room < entry::HEADER_LEN {
            return Err(entry_error(
                at,
                format!("only {room} bytes before the ring end"),
            ));
        }
        let len_op = self.mem.u32_at(self.cmdr_off + at + entry::LEN_OP)?;
        let len = (len_op & !OP_MASK) as usize;
        if len < entry::HEADER_LEN || len > room {
            return Err(entry_error(
                at,
                format!("length {len} (room {room} before the ring end)"),
            ));
        }
        Ok((len_op & OP_MASK, len))
    }

    fn read_cmd(&mut self, at: usize, len: usize) -> Result<TargetEvent, RingError> {
        let base = self.cmdr_off + at;
        if len < entry::CMD_MIN_LEN {
            return Err(entry_error(
                at,
                format!("CMD of {len} bytes has no room for a response"),
            ));
        }
        let cmd_id = self.mem.u16_at(base + entry::CMD_ID)?;
        if self.outstanding.contains_key(&cmd_id) {
            return Err(entry_error(
                at,
                format!("cmd_id {cmd_id} is already outstanding"),
            ));
        }
        let iov_cnt = self.mem.u32_at(base + entry::IOV_CNT)? as usize;
        let iov_end = iov_cnt
            .checked_mul(entry::IOV_LEN)
            .and_then(|n| n.checked_add(entry::IOV))
            .filter(|&end| end <= len)
            .ok_or_else(|| entry_error(at, format!("{iov_cnt} iovecs do not fit {len} bytes")))?;
        let cdb = self.read_cdb(at, base, iov_end, len)?;
        let mut iovs = Vec::with_capacity(iov_cnt);
        let mut total = 0usize;
        for i in 0..iov_cnt {
            let iov = base + entry::IOV + i * entry::IOV_LEN;
            let start = self.mem.u64_at(iov + entry::IOV_BASE_FIELD)?;
            let n = self.mem.u64_at(iov + entry::IOV_LEN_FIELD)?;
            let (start, n) = (usize::try_from(start), usize::try_from(n));
            let (Ok(start), Ok(n)) = (start, n) else {
                return Err(entry_error(
                    at,
                    format!("iovec {i} does not fit an address"),
                ));
            };
            let inside = start >= self.data_off
                && start
                    .checked_add(n)
                    .is_some_and(|end| end <= self.mem.len());
            if !inside {
                return Err(entry_error(
                    at,
                    format!("iovec {i} ({start:#x}+{n:#x}) is outside the data area"),
                ));
            }
            total = total.saturating_add(n);
            iovs.push((start, n));
        }
        let opcode = cdb.first().copied().unwrap_or(0);
        let mut data_out = Vec::new();
        let data_in_len = if is_data_out(opcode) {
            data_out.reserve_exact(total);
            for &(start, n) in &iovs {
                self.mem.append_to(start, n, &mut data_out)?;
            }
            0
        } else {
            total
        };
        self.seq += 1;
        let id = (self.seq << 16) | u64::from(cmd_id);
        self.outstanding.insert(
            cmd_id,
            Outstanding {
                id,
                iovs,
                data_in_len,
            },
        );
        self.stats.commands += 1;
        Ok(TargetEvent::Command(TargetCommand {
            id,
            cdb,
            data_out,
            data_in_len,
        }))
    }

    /// The CDB at `cdb_off`, which must lie after the iovecs and inside the entry; its length
    /// follows from the opcode as in the kernel's `scsi_command_size`, cut at the entry's end.
    fn read_cdb(
        &self,
        at: usize,
        base: usize,
        iov_end: usize,
        len: usize,
    ) -> Result<Vec<u8>, RingError> {
        let cdb_off = self.mem.u64_at(base + entry::CDB_OFF)?;
        let end = base + len;
        let cdb_off = usize::try_from(cdb_off)
            .ok()
            .filter(|&off| off >= base + iov_end && off < end)
            .ok_or_else(|| entry_error(at, format!("cdb_off {cdb_off:#x} is outside the entry")))?;
        let room = end - cdb_off;
        let opcode = self.mem.u8_at(cdb_off)?;
        let byte7 = if room > 7 {
            Some(self.mem.u8_at(cdb_off + 7)?)
        } else {
            None
        };
        let want = cdb_len(opcode, byte7);
        let mut cdb = vec![0u8; want.min(room)];
        self.mem.read(cdb_off, &mut cdb)?;
        Ok(cdb)
    }

    fn read_tmr(&mut self, at: usize, len: usize) -> Result<(), RingError> {
        let base = self.cmdr_off + at;
        if len < entry::TMR_CMD_IDS {
            return Err(entry_error(at, format!("TMR of {len} bytes")));
        }
        let tmr_type = self.mem.u8_at(base + entry::TMR_TYPE)?;
        let count = self.mem.u32_at(base + entry::TMR_CMD_CNT)? as usize;
        if count
            .checked_mul(2)
            .and_then(|n| n.checked_add(entry::TMR_CMD_IDS))
            .is_none_or(|n| n > len)
        {
            return Err(entry_error(
                at,
                format!("TMR lists {count} ids in {len} bytes"),
            ));
        }
        self.stats.tmrs += 1;
        let mut aborted = 0;
        for i in 0..count {
            let cmd_id = self.mem.u16_at(base + entry::TMR_CMD_IDS + 2 * i)?;
            let Some(id) = self.outstanding.get(&cmd_id).map(|o| o.id) else {
                continue;
            };
            self.finish(cmd_id, status::TASK_ABORTED, &[], &[])?;
            self.events.push_back(TargetEvent::Abort(id));
            aborted += 1;
        }
        self.stats.aborted += aborted;
        tracing::debug!("tcmu: TMR type {tmr_type} names {count} commands, {aborted} outstanding");
        Ok(())
    }

    /// Writes the completion of outstanding `cmd_id` into the slot at the tail and passes it.
    fn finish(
        &mut self,
        cmd_id: u16,
        scsi_status: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), RingError> {
        let Some(cmd) = self.outstanding.remove(&cmd_id) else {
            return Ok(());
        };
        let read_len = self.write_data_in(&cmd, scsi_status, data_in)?;
        self.pass_passive()?;
        if self.tail == self.next {
            return Err(RingError::NoSlot {
                tail: self.tail,
                next: self.next,
            });
        }
        let (op, len) = self.header(self.tail)?;
        if op != OP_CMD {
            return Err(RingError::NoSlot {
                tail: self.tail,
                next: self.next,
            });
        }
        let slot = self.cmdr_off + self.tail;
        let uflags = if read_len.is_some() {
            UFLAG_READ_LEN
        } else {
            0
        };
        self.mem
            .write(slot + entry::CMD_ID, &cmd_id.to_ne_bytes())?;
        self.mem.write(slot + entry::UFLAGS, &[uflags])?;
        self.mem
            .write(slot + entry::SCSI_STATUS, &[scsi_status, 0, 0, 0])?;
        let read_len = u32::try_from(read_len.unwrap_or(0)).unwrap_or(u32::MAX);
        self.mem
            .write(slot + entry::READ_LEN, &read_len.to_ne_bytes())?;
        self.mem.fill(slot + entry::SENSE, SENSE_BUFFER_LEN, 0)?;
        if scsi_status == status::CHECK_CONDITION {
            let n = sense.len().min(SENSE_BUFFER_LEN);
            self.mem.write(slot + entry::SENSE, &sense[..n])?;
        }
        self.advance_tail((self.tail + len) % self.cmdr_size)?;
        self.stats.completions += 1;
        self.pass_passive()
    }

    /// Scatters `data_in` over the command's buffers; returns the `read_len` to report, if
    /// the data is shorter than the buffers and the kernel honours `read_len`.
    fn write_data_in(
        &self,
        cmd: &Outstanding,
        scsi_status: u8,
        data_in: &[u8],
    ) -> Result<Option<usize>, RingError> {
        if cmd.data_in_len == 0 {
            return Ok(None);
        }
        let n = data_in.len().min(cmd.data_in_len);
        let mut rest = &data_in[..n];
        for &(start, len) in &cmd.iovs {
            let k = rest.len().min(len);
            self.mem.write(start, &rest[..k])?;
            rest = &rest[k..];
        }
        if n == cmd.data_in_len {
            return Ok(None);
        }
        if n > 0 && self.read_len {
            return Ok(Some(n));
        }
        if scsi_status == status::GOOD {
            // The kernel will transfer the whole buffer: make the part we did not fill zeros.
            let mut skip = n;
            for &(start, len) in &cmd.iovs {
                let k = skip.min(len);
                skip -= k;
                self.mem.fill(start + k, len - k, 0)?;
            }
        }
        Ok(None)
    }

    /// Moves the tail over PAD and TMR entries that were already read.
    fn pass_passive(&mut self) -> Result<(), RingError> {
        while self.tail != self.next {
            let (op, len) = self.header(self.tail)?;
            if op == OP_CMD {
                break;
            }
            self.advance_tail((self.tail + len) % self.cmdr_size)?;
        }
        Ok(())
    }

    fn advance_tail(&mut self, tail: usize) -> Result<(), RingError> {
        let value = u32::try_from(tail).map_err(|_| RingError::NoSlot {
            tail,
            next: self.next,
        })?;
        self.mem.store_release(mb::CMD_TAIL, value)?;
        self.tail = tail;
        self.notify = true;
        Ok(())
    }
}

fn entry_error(at: usize, why: String) -> RingError {
    RingError::Entry { at, why }
}
