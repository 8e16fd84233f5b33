//! The kernel's side of a TCMU ring, for tests: queues CMD, PAD and TMR entries into a region
//! laid out exactly as `target_core_user.c` lays it out (mailbox, command ring, data area), and
//! reaps completions the way `tcmu_handle_completions` does: from its last cleaned position to
//! `cmd_tail`, completing the command whose `cmd_id` it finds in each CMD entry. Anything the
//! real kernel would treat as breaking the ring panics here, failing the test.

use std::collections::BTreeMap;

use crate::sys::tcmu::{
    CAP_KEEP_BUF, CAP_OOOC, CAP_READ_LEN, CAP_TMR, MAILBOX_VERSION, OP_CMD, OP_MASK, OP_PAD,
    OP_TMR, SENSE_BUFFER_LEN, SharedMemory, UFLAG_READ_LEN, entry, mb,
};

/// The ring starts right after the mailbox, as in the kernel (`CMDR_OFF`).
pub const CMDR_OFF: usize = mb::SIZE;

/// Data buffers: (offset from the region start, length).
type Iovecs = Vec<(usize, usize)>;

/// A command the fake kernel has queued and not yet reaped.
struct Queued {
    blocks: Vec<usize>,
    iovs: Iovecs,
    data_in_len: usize,
}

/// One completion as the kernel would pass it to the initiator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The command.
    pub cmd_id: u16,
    /// Its status.
    pub status: u8,
    /// Data-in as transferred (`read_len` applied).
    pub data: Vec<u8>,
    /// Whether `read_len` was valid (uflags READ_LEN and non-zero).
    pub read_len: Option<u32>,
    /// The sense buffer (96 bytes).
    pub sense: Vec<u8>,
}

/// The kernel half of a TCMU device.
pub struct FakeKernel {
    mem: SharedMemory,
    cmdr_size: usize,
    data_off: usize,
    block: usize,
    free_blocks: Vec<bool>,
    head: usize,
    last_cleaned: usize,
    queued: BTreeMap<u16, Queued>,
    /// PAD entries inserted so far.
    pub pads: usize,
}

impl FakeKernel {
    /// A device with a `cmdr_size`-byte ring and `blocks` data blocks of `block` bytes; returns
    /// the kernel and the handler's view of the same memory.
    pub fn new(cmdr_size: usize, blocks: usize, block: usize) -> (Self, SharedMemory) {
        let data_off = CMDR_OFF + cmdr_size;
        let mem = SharedMemory::heap(data_off + blocks * block);
        mem.write(mb::VERSION, &MAILBOX_VERSION.to_ne_bytes())
            .unwrap();
        let flags = CAP_OOOC | CAP_READ_LEN | CAP_TMR | CAP_KEEP_BUF;
        mem.write(mb::FLAGS, &flags.to_ne_bytes()).unwrap();
        mem.write(mb::CMDR_OFF, &(CMDR_OFF as u32).to_ne_bytes())
            .unwrap();
        mem.write(mb::CMDR_SIZE, &(cmdr_size as u32).to_ne_bytes())
            .unwrap();
        let handler = mem.alias().unwrap();
        let kernel = Self {
            mem,
            cmdr_size,
            data_off,
            block,
            free_blocks: vec![true; blocks],
            head: 0,
            last_cleaned: 0,
            queued: BTreeMap::new(),
            pads: 0,
        };
        (kernel, handler)
    }

    /// The memory, for tampering in tests.
    pub fn mem(&self) -> &SharedMemory {
        &self.mem
    }

    /// `cmd_head` (ring offset).
    pub fn head(&self) -> usize {
        self.head
    }

    /// `cmd_tail` as the handler last stored it.
    pub fn tail(&self) -> usize {
        self.mem.load_acquire(mb::CMD_TAIL).unwrap() as usize
    }

    /// Commands queued and not reaped.
    pub fn in_flight(&self) -> usize {
        self.queued.len()
    }

    fn free_space(&self) -> usize {
        let used = (self.head + self.cmdr_size - self.last_cleaned) % self.cmdr_size;
        self.cmdr_size - used - 1
    }

    /// Makes room for `size` contiguous bytes at the head, inserting a PAD to the ring end
    /// when needed (as `ring_insert_padding`); `None` if the ring is too full.
    fn reserve(&mut self, size: usize) -> Option<usize> {
        let to_end = self.cmdr_size - self.head;
        let needed = if to_end >= size { size } else { size + to_end };
        if self.free_space() < needed {
            return None;
        }
        if to_end < size {
            let at = CMDR_OFF + self.head;
            self.mem.fill(at, entry::HEADER_LEN.min(to_end), 0).unwrap();
            self.mem
                .write(
                    at + entry::LEN_OP,
                    &((to_end as u32) | OP_PAD).to_ne_bytes(),
                )
                .unwrap();
            self.publish_head(0);
            self.pads += 1;
        }
        Some(self.head)
    }

    fn publish_head(&mut self, head: usize) {
        self.head = head % self.cmdr_size;
        self.mem
            .store_release(mb::CMD_HEAD, self.head as u32)
            .unwrap();
    }

    /// Takes data blocks for `len` bytes (first free, not necessarily contiguous) and the
    /// iovecs covering them, contiguous blocks merged as the kernel does.
    fn alloc(&mut self, len: usize) -> Option<(Vec<usize>, Iovecs)> {
        let count = len.div_ceil(self.block);
        let blocks: Vec<usize> = (0..self.free_blocks.len())
            .filter(|&b| self.free_blocks[b])
            .take(count)
            .collect();
        if blocks.len() < count {
            return None;
        }
        let mut iovs: Iovecs = Vec::new();
        let mut left = len;
        let mut prev = None;
        for &b in &blocks {
            self.free_blocks[b] = false;
            let n = left.min(self.block);
            left -= n;
            let start = self.data_off + b * self.block;
            match (prev, iovs.last_mut()) {
                (Some(p), Some(last)) if p + 1 == b => last.1 += n,
                _ => iovs.push((start, n)),
            }
            prev = Some(b);
        }
        Some((blocks, iovs))
    }

    /// Queues a command with `data_out` in its buffers, or `data_in_len` bytes of data-in room
    /// (filled with `junk`, as reused pages are); returns its cmd_id, or `None` when the ring
    /// or the data area is full (the kernel would queue it internally).
    pub fn push_cmd(
        &mut self,
        cdb: &[u8],
        data_out: &[u8],
        data_in_len: usize,
        junk: u8,
    ) -> Option<u16> {
        let len = if data_out.is_empty() {
            data_in_len
        } else {
            data_out.len()
        };
        let (blocks, iovs) = self.alloc(len)?;
        let base_size = (entry::IOV + entry::IOV_LEN * iovs.len()).max(entry::CMD_MIN_LEN);
        let size = base_size + cdb.len().div_ceil(8) * 8;
        let Some(head) = self.reserve(size) else {
            for b in blocks {
                self.free_blocks[b] = true;
            }
            return None;
        };
        let cmd_id = (1..=u16::MAX).find(|id| !self.queued.contains_key(id))?;
        let at = CMDR_OFF + head;
        self.mem.fill(at, size, 0).unwrap();
        self.mem
            .write(at + entry::LEN_OP, &((size as u32) | OP_CMD).to_ne_bytes())
            .unwrap();
        self.mem
            .write(at + entry::CMD_ID, &cmd_id.to_ne_bytes())
            .unwrap();
        self.mem
            .write(at + entry::IOV_CNT, &(iovs.len() as u32).to_ne_bytes())
            .unwrap();
        for (i, &(start, n)) in iovs.iter().enumerate() {
            let iov = at + entry::IOV + i * entry::IOV_LEN;
            self.mem
                .write(iov + entry::IOV_BASE_FIELD, &(start as u64).to_ne_bytes())
                .unwrap();
            self.mem
                .write(iov + entry::IOV_LEN_FIELD, &(n as u64).to_ne_bytes())
                .unwrap();
        }
        let cdb_off = at + base_size;
        self.mem
            .write(at + entry::CDB_OFF, &(cdb_off as u64).to_ne_bytes())
            .unwrap();
        self.mem.write(cdb_off, cdb).unwrap();
        let mut rest = data_out;
        for &(start, n) in &iovs {
            if data_out.is_empty() {
                self.mem.fill(start, n, junk).unwrap();
            } else {
                self.mem.write(start, &rest[..n]).unwrap();
                rest = &rest[n..];
            }
        }
        let data_in_len = if data_out.is_empty() { data_in_len } else { 0 };
        self.queued.insert(
            cmd_id,
            Queued {
                blocks,
                iovs,
                data_in_len,
            },
        );
        self.publish_head(head + size);
        Some(cmd_id)
    }

    /// Queues a TMR entry naming `cmd_ids`.
    pub fn push_tmr(&mut self, tmr_type: u8, cmd_ids: &[u16]) -> Option<()> {
        let size = (entry::TMR_CMD_IDS + 2 * cmd_ids.len()).div_ceil(8) * 8;
        let head = self.reserve(size)?;
        let at = CMDR_OFF + head;
        self.mem.fill(at, size, 0).unwrap();
        self.mem
            .write(at + entry::LEN_OP, &((size as u32) | OP_TMR).to_ne_bytes())
            .unwrap();
        self.mem.write(at + entry::TMR_TYPE, &[tmr_type]).unwrap();
        self.mem
            .write(
                at + entry::TMR_CMD_CNT,
                &(cmd_ids.len() as u32).to_ne_bytes(),
            )
            .unwrap();
        for (i, id) in cmd_ids.iter().enumerate() {
            self.mem
                .write(at + entry::TMR_CMD_IDS + 2 * i, &id.to_ne_bytes())
                .unwrap();
        }
        self.publish_head(head + size);
        Some(())
    }

    /// What `tcmu_irqcontrol` does on the handler's notification: completes every entry up to
    /// `cmd_tail`, in ring order.
    pub fn reap(&mut self) -> Vec<Reaped> {
        let tail = self.tail();
        assert!(tail < self.cmdr_size, "cmd_tail {tail} past the ring");
        let mut done = Vec::new();
        while self.last_cleaned != tail {
            let at = CMDR_OFF + self.last_cleaned;
            let len_op = self.mem.u32_at(at + entry::LEN_OP).unwrap();
            let len = (len_op & !OP_MASK) as usize;
            assert!(
                len >= entry::HEADER_LEN,
                "entry at {} has length {len}",
                self.last_cleaned
            );
            if len_op & OP_MASK == OP_CMD {
                done.push(self.complete_entry(at));
            }
            self.last_cleaned = (self.last_cleaned + len) % self.cmdr_size;
        }
        done
    }

    fn complete_entry(&mut self, at: usize) -> Reaped {
        let cmd_id = self.mem.u16_at(at + entry::CMD_ID).unwrap();
        let q = self
            .queued
            .remove(&cmd_id)
            .unwrap_or_else(|| panic!("cmd_id {cmd_id} not found, ring is broken"));
        let uflags = self.mem.u8_at(at + entry::UFLAGS).unwrap();
        let status = self.mem.u8_at(at + entry::SCSI_STATUS).unwrap();
        let raw_read_len = self.mem.u32_at(at + entry::READ_LEN).unwrap();
        let read_len = (q.data_in_len > 0 && uflags & UFLAG_READ_LEN != 0 && raw_read_len != 0)
            .then_some(raw_read_len);
        let mut sense = vec![0u8; SENSE_BUFFER_LEN];
        self.mem.read(at + entry::SENSE, &mut sense).unwrap();
        let want = read_len.map_or(q.data_in_len, |n| (n as usize).min(q.data_in_len));
        let mut data = Vec::new();
        for &(start, n) in &q.iovs {
            let k = n.min(want - data.len());
            self.mem.append_to(start, k, &mut data).unwrap();
        }
        if status == crate::scsi::status::CHECK_CONDITION && read_len.is_none() {
            data.clear();
        }
        for b in q.blocks {
            self.free_blocks[b] = true;
        }
        Reaped {
            cmd_id,
            status,
            data,
            read_len,
            sense,
        }
    }

    /// `action/reset_ring`: forgets every command and sets head and tail to 0.
    pub fn reset_ring(&mut self) {
        for (_, q) in std::mem::take(&mut self.queued) {
            for b in q.blocks {
                self.free_blocks[b] = true;
            }
        }
        self.head = 0;
        self.last_cleaned = 0;
        self.mem.store_release(mb::CMD_HEAD, 0).unwrap();
        self.mem.store_release(mb::CMD_TAIL, 0).unwrap();
    }
}
