//! The header layout, the ioctl numbers, and `SgFile`'s buffer ownership, driven through a
//! socket pair whose far end plays the sg driver (it sees the submitted headers and writes
//! replies; it never copies data, so only headers and ownership are checked here).

use std::io::{Read, Write};
use std::mem::{align_of, offset_of, size_of};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::*;

#[test]
fn header_layout_matches_linux_sg_h() {
    assert_eq!(size_of::<SgIoHdr>(), 88);
    assert_eq!(align_of::<SgIoHdr>(), 8);
    let offsets = [
        (offset_of!(SgIoHdr, interface_id), 0),
        (offset_of!(SgIoHdr, dxfer_direction), 4),
        (offset_of!(SgIoHdr, cmd_len), 8),
        (offset_of!(SgIoHdr, mx_sb_len), 9),
        (offset_of!(SgIoHdr, iovec_count), 10),
        (offset_of!(SgIoHdr, dxfer_len), 12),
        (offset_of!(SgIoHdr, dxferp), 16),
        (offset_of!(SgIoHdr, cmdp), 24),
        (offset_of!(SgIoHdr, sbp), 32),
        (offset_of!(SgIoHdr, timeout), 40),
        (offset_of!(SgIoHdr, flags), 44),
        (offset_of!(SgIoHdr, pack_id), 48),
        (offset_of!(SgIoHdr, pad0), 52),
        (offset_of!(SgIoHdr, usr_ptr), 56),
        (offset_of!(SgIoHdr, status), 64),
        (offset_of!(SgIoHdr, masked_status), 65),
        (offset_of!(SgIoHdr, msg_status), 66),
        (offset_of!(SgIoHdr, sb_len_wr), 67),
        (offset_of!(SgIoHdr, host_status), 68),
        (offset_of!(SgIoHdr, driver_status), 70),
        (offset_of!(SgIoHdr, resid), 72),
        (offset_of!(SgIoHdr, duration), 76),
        (offset_of!(SgIoHdr, info), 80),
        (offset_of!(SgIoHdr, pad1), 84),
    ];
    for (i, (got, want)) in offsets.into_iter().enumerate() {
        assert_eq!(got, want, "field {i}");
    }
}

#[test]
fn ioctl_numbers_match_linux_sg_h() {
    assert_eq!(SG_IO, 0x2285);
    assert_eq!(SG_GET_RESERVED_SIZE, 0x2272);
    assert_eq!(SG_SET_RESERVED_SIZE, 0x2275);
    assert_eq!(SG_GET_SG_TABLESIZE, 0x227F);
    assert_eq!(SG_GET_VERSION_NUM, 0x2282);
    // BLKSECTGET = _IO(0x12, 103) in include/uapi/linux/fs.h. (The ioctl number type is
    // u64 on glibc and i32 on musl, hence the cast.)
    #[allow(clippy::unnecessary_cast)]
    let blksectget = nix::request_code_none!(0x12, 103) as u64;
    assert_eq!(u64::from(BLKSECTGET), blksectget);
    assert_eq!(SG_INTERFACE_ID_ORIG, 0x53);
    assert_eq!(
        (SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_DXFER_FROM_DEV),
        (-1, -2, -3)
    );
}

#[test]
fn timeouts_round_up_and_never_mean_default_or_forever() {
    assert_eq!(timeout_ms(Duration::from_secs(2)), 2000);
    assert_eq!(timeout_ms(Duration::from_micros(1500)), 2);
    assert_eq!(timeout_ms(Duration::ZERO), 1, "0 would be the 30 s default");
    assert_eq!(
        timeout_ms(Duration::MAX),
        u32::MAX - 1,
        "u32::MAX means never"
    );
}

/// An `SgFile` over one end of a socket pair, and the other end as the fake driver.
fn pair() -> (SgFile, UnixStream) {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, flags).unwrap();
    let driver = UnixStream::from(theirs);
    driver.set_nonblocking(false).unwrap();
    (SgFile::for_tests(ours).unwrap(), driver)
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().unwrap()
}

/// What the fake driver reads for one submitted command.
fn submitted(driver: &mut UnixStream) -> [u8; 88] {
    let mut hdr = [0u8; 88];
    assert_eq!(driver.read(&mut hdr).unwrap(), 88);
    hdr
}

/// A finished command's header as the driver returns it from read(2).
fn reply(key: u64, status: u8, host: u16, driver: u16, resid: i32, sb_len_wr: u8) -> [u8; 88] {
    let mut hdr = [0u8; 88];
    hdr[0..4].copy_from_slice(&SG_INTERFACE_ID_ORIG.to_ne_bytes());
    hdr[56..64].copy_from_slice(&key.to_ne_bytes());
    hdr[64] = status;
    hdr[65] = status >> 1;
    hdr[67] = sb_len_wr;
    hdr[68..70].copy_from_slice(&host.to_ne_bytes());
    hdr[70..72].copy_from_slice(&driver.to_ne_bytes());
    hdr[72..76].copy_from_slice(&resid.to_ne_bytes());
    hdr[76..80].copy_from_slice(&7u32.to_ne_bytes());
    hdr[80..84].copy_from_slice(&SG_INFO_CHECK.to_ne_bytes());
    hdr
}

const READ16: [u8; 16] = [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 8, 0, 0];

#[test]
fn submit_hands_the_driver_a_v3_header_pointing_into_the_owned_buffer() {
    let (mut sg, mut driver) = pair();
    let data = vec![0u8; 8192];
    let data_at = data.as_ptr() as u64;
    sg.submit(
        7,
        &READ16,
        DataDir::FromDevice,
        data,
        4096,
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!((sg.in_flight(), sg.holds(7)), (1, true));
    let hdr = submitted(&mut driver);
    assert_eq!(c_int::from_ne_bytes(field(&hdr, 0)), SG_INTERFACE_ID_ORIG);
    assert_eq!(c_int::from_ne_bytes(field(&hdr, 4)), SG_DXFER_FROM_DEV);
    assert_eq!((hdr[8], hdr[9]), (16, SENSE_LEN as u8));
    assert_eq!(u16::from_ne_bytes(field(&hdr, 10)), 0, "flat buffer");
    assert_eq!(u32::from_ne_bytes(field(&hdr, 12)), 4096);
    assert_eq!(u64::from_ne_bytes(field(&hdr, 16)), data_at, "dxferp");
    assert_ne!(u64::from_ne_bytes(field(&hdr, 24)), 0, "cmdp");
    assert_ne!(u64::from_ne_bytes(field(&hdr, 32)), 0, "sbp");
    assert_eq!(u32::from_ne_bytes(field(&hdr, 40)), 2000);
    assert_eq!(u32::from_ne_bytes(field(&hdr, 44)), SG_FLAG_Q_AT_TAIL);
    assert_eq!(u64::from_ne_bytes(field(&hdr, 56)), 7, "usr_ptr is the key");
}

#[test]
fn reap_returns_the_same_buffer_and_the_reply_fields() {
    let (mut sg, mut driver) = pair();
    let data = vec![0u8; 8192];
    let data_at = data.as_ptr();
    sg.submit(
        7,
        &READ16,
        DataDir::FromDevice,
        data,
        4096,
        Duration::from_secs(2),
    )
    .unwrap();
    let sense_at = u64::from_ne_bytes(field(&submitted(&mut driver), 32));
    assert!(sg.reap().unwrap().is_none(), "nothing finished yet");
    driver
        .write_all(&reply(7, 0x02, did::OK, DRIVER_SENSE, 100, 18))
        .unwrap();
    let r = sg.reap().unwrap().unwrap();
    assert_eq!(r.key, 7);
    assert_eq!(
        (r.data.as_ptr(), r.data.len()),
        (data_at, 8192),
        "same block"
    );
    let want = Reply {
        status: 0x02,
        masked_status: 0x01,
        sb_len_wr: 18,
        host_status: did::OK,
        driver_status: DRIVER_SENSE,
        resid: 100,
        duration_ms: 7,
        info: SG_INFO_CHECK,
        dxfer_len: 4096,
    };
    assert_eq!(r.reply, want);
    assert_eq!(r.sense.len(), 18);
    assert_ne!(sense_at, 0);
    assert_eq!(sg.in_flight(), 0);
    assert!(sg.reap().unwrap().is_none());
}

#[test]
fn sense_length_is_capped_at_the_buffer() {
    let (mut sg, mut driver) = pair();
    sg.submit(
        1,
        &READ16,
        DataDir::FromDevice,
        vec![0; 512],
        512,
        Duration::from_secs(1),
    )
    .unwrap();
    submitted(&mut driver);
    driver.write_all(&reply(1, 0x02, 0, 0, 0, 255)).unwrap();
    assert_eq!(sg.reap().unwrap().unwrap().sense.len(), SENSE_LEN);
}

#[test]
fn replies_for_keys_not_in_flight_are_skipped_and_counted() {
    let (mut sg, mut driver) = pair();
    sg.submit(
        2,
        &READ16,
        DataDir::FromDevice,
        vec![0; 512],
        512,
        Duration::from_secs(1),
    )
    .unwrap();
    driver.write_all(&reply(99, 0, 0, 0, 0, 0)).unwrap();
    driver.write_all(&reply(2, 0, 0, 0, 0, 0)).unwrap();
    assert_eq!(sg.reap().unwrap().unwrap().key, 2);
    assert_eq!(sg.strays(), 1);
}

#[test]
fn at_most_sg_max_queue_commands_are_in_flight() {
    let (mut sg, _driver) = pair();
    for key in 0..SG_MAX_QUEUE as u64 {
        sg.submit(
            key,
            &READ16,
            DataDir::FromDevice,
            vec![0; 512],
            512,
            Duration::from_secs(1),
        )
        .unwrap();
    }
    let data = vec![1u8; 512];
    let at = data.as_ptr();
    let (back, e) = sg
        .submit(
            99,
            &READ16,
            DataDir::FromDevice,
            data,
            512,
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EDOM));
    assert_eq!(back.as_ptr(), at, "the refused buffer comes back");
    assert_eq!(sg.in_flight(), SG_MAX_QUEUE);
}

#[test]
fn bad_commands_are_refused_before_the_driver_sees_them() {
    let (mut sg, mut driver) = pair();
    let t = Duration::from_secs(1);
    sg.submit(1, &READ16, DataDir::FromDevice, vec![0; 512], 512, t)
        .unwrap();
    submitted(&mut driver);
    let cases: [(u64, &[u8], DataDir, usize, usize); 5] = [
        (1, &READ16, DataDir::FromDevice, 512, 512), // duplicate key
        (2, &READ16[..5], DataDir::FromDevice, 512, 512),
        (3, &[0u8; 253], DataDir::FromDevice, 512, 512),
        (4, &READ16, DataDir::FromDevice, 512, 513),
        (5, &READ16, DataDir::None, 512, 512),
    ];
    for (key, cdb, dir, cap, len) in cases {
        let (back, e) = sg.submit(key, cdb, dir, vec![0; cap], len, t).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "key {key}");
        assert_eq!(back.len(), cap);
    }
    assert_eq!(sg.in_flight(), 1);
    driver.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 88];
    let nothing = driver.read(&mut buf).unwrap_err();
    assert_eq!(
        nothing.kind(),
        io::ErrorKind::WouldBlock,
        "nothing more was written"
    );
}

#[test]
fn a_no_data_command_has_no_data_pointer() {
    let (mut sg, mut driver) = pair();
    let tur = [0u8; 6];
    sg.submit(
        3,
        &tur,
        DataDir::None,
        Vec::new(),
        0,
        Duration::from_secs(1),
    )
    .unwrap();
    let hdr = submitted(&mut driver);
    assert_eq!(c_int::from_ne_bytes(field(&hdr, 4)), SG_DXFER_NONE);
    assert_eq!(u64::from_ne_bytes(field(&hdr, 16)), 0);
    assert_eq!(hdr[8], 6);
}

#[test]
fn a_driver_that_went_away_is_hung_up() {
    let (sg, driver) = pair();
    assert!(!sg.hung_up());
    drop(driver);
    assert!(sg.hung_up());
}

#[test]
fn short_reads_and_a_closed_driver_are_errors() {
    let (mut sg, mut driver) = pair();
    driver.write_all(&[0u8; 10]).unwrap();
    let e = sg.reap().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    drop(driver);
    let e = sg.reap().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "EOF: {e}");
    let (back, e) = sg
        .submit(
            1,
            &READ16,
            DataDir::FromDevice,
            vec![0; 512],
            512,
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(e.raw_os_error().is_some(), "{e}");
    assert_eq!((back.len(), sg.in_flight()), (512, 0));
}

#[test]
fn the_poll_descriptor_is_readable_only_when_a_reply_waits() {
    let (mut sg, mut driver) = pair();
    let readable = |sg: &SgFile| {
        let mut fds = [PollFd::new(sg.poll_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap();
        fds[0].revents().unwrap().contains(PollFlags::POLLIN)
    };
    sg.submit(
        5,
        &READ16,
        DataDir::FromDevice,
        vec![0; 512],
        512,
        Duration::from_secs(1),
    )
    .unwrap();
    submitted(&mut driver);
    assert!(!readable(&sg));
    driver.write_all(&reply(5, 0, 0, 0, 0, 0)).unwrap();
    assert!(readable(&sg));
    sg.reap().unwrap().unwrap();
    assert!(!readable(&sg));
}

#[test]
fn dropping_a_file_with_commands_in_flight_frees_them() {
    let (mut sg, _driver) = pair();
    for key in 0..4 {
        sg.submit(
            key,
            &READ16,
            DataDir::FromDevice,
            vec![0; 4096],
            4096,
            Duration::from_secs(1),
        )
        .unwrap();
    }
    drop(sg); // Closes the descriptor, then frees the four buffers (checked under Miri/ASan).
}

#[test]
fn page_size_is_sane() {
    let p = page_size();
    assert!(p >= 4096 && p.is_power_of_two(), "{p}");
}
