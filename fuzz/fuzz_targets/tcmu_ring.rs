//! The TCMU command ring over heap memory, with the fuzzer as the kernel side writing any
//! bytes anywhere in the region and moving `cmd_head`: the handler never panics and never
//! reads or writes outside the region (`SharedMemory` checks every access); inconsistent
//! entries are errors, after which it restarts; data-in never exceeds a command's room.
//! API: `transport::tcmu::ring::Ring`, `sys::tcmu::{SharedMemory, mb, constants}`.
#![no_main]

use fcvpn::sys::tcmu::{CAP_OOOC, CAP_READ_LEN, MAILBOX_VERSION, SharedMemory, mb};
use fcvpn::transport::target::TargetEvent;
use fcvpn::transport::tcmu::ring::Ring;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const REGION: usize = 64 << 10;

#[derive(Arbitrary, Debug)]
enum Op {
    /// The kernel writes `bytes` at ring offset `at`.
    Write {
        at: u16,
        bytes: Vec<u8>,
    },
    /// The kernel moves `cmd_head`.
    Head {
        head: u16,
    },
    /// The handler reads events.
    Next {
        n: u8,
    },
    /// The handler completes its `which`-th outstanding command.
    Complete {
        which: u8,
        status: u8,
        sense: u8,
        data_in: u16,
    },
    CompleteAll {
        status: u8,
    },
    Restart,
}

#[derive(Arbitrary, Debug)]
struct Input {
    read_len: bool,
    cmdr_kib: u8,
    ring: Vec<u8>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mem = SharedMemory::heap(REGION);
    let kernel = mem.alias().expect("heap memory has an alias");
    let cmdr_off = mb::SIZE.next_multiple_of(64);
    let cmdr_size = (usize::from(input.cmdr_kib % 32) + 1) * 1024;
    let flags = CAP_OOOC | if input.read_len { CAP_READ_LEN } else { 0 };
    kernel
        .write(mb::VERSION, &MAILBOX_VERSION.to_le_bytes())
        .unwrap();
    kernel.write(mb::FLAGS, &flags.to_le_bytes()).unwrap();
    kernel
        .write(mb::CMDR_OFF, &(cmdr_off as u32).to_le_bytes())
        .unwrap();
    kernel
        .write(mb::CMDR_SIZE, &(cmdr_size as u32).to_le_bytes())
        .unwrap();
    let n = input.ring.len().min(REGION - cmdr_off);
    kernel.write(cmdr_off, &input.ring[..n]).unwrap();
    let Ok(mut ring) = Ring::new(mem) else { return };
    let mut outstanding: Vec<(u64, usize)> = Vec::new();
    for op in input.ops.iter().take(64) {
        match op {
            Op::Write { at, bytes } => {
                let at = cmdr_off + usize::from(*at);
                let len = bytes.len().min(REGION.saturating_sub(at));
                let _ = kernel.write(at, &bytes[..len]);
            }
            Op::Head { head } => {
                let _ = kernel.store_release(mb::CMD_HEAD, u32::from(*head));
            }
            Op::Next { n } => {
                for _ in 0..*n % 16 {
                    match ring.next_event() {
                        Ok(Some(TargetEvent::Command(c))) => {
                            assert!(c.data_out.len() <= REGION && c.data_in_len <= REGION);
                            outstanding.push((c.id, c.data_in_len));
                        }
                        Ok(Some(TargetEvent::Abort(id))) => outstanding.retain(|o| o.0 != id),
                        Ok(None) => break,
                        Err(_) => {
                            outstanding.clear();
                            let _ = ring.restart();
                            break;
                        }
                    }
                }
            }
            Op::Complete {
                which,
                status,
                sense,
                data_in,
            } => {
                if outstanding.is_empty() {
                    continue;
                }
                let (id, _room) = outstanding.remove(usize::from(*which) % outstanding.len());
                let sense = vec![0x70u8; usize::from(*sense)];
                let data = vec![0xa5u8; usize::from(*data_in)];
                if ring.complete(id, *status, &sense, &data).is_err() {
                    outstanding.clear();
                    let _ = ring.restart();
                }
            }
            Op::CompleteAll { status } => {
                let _ = ring.complete_all(*status);
                outstanding.clear();
            }
            Op::Restart => {
                outstanding.clear();
                let _ = ring.restart();
            }
        }
        assert!(
            ring.outstanding() <= cmdr_size,
            "more commands than ring entries"
        );
        assert!(
            ring.tail() < cmdr_size,
            "cmd_tail {:#x} past the ring",
            ring.tail()
        );
    }
});
