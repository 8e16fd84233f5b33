//! The simulated fabric's codec: arbitrary bytes never panic the decoder; a decoded message
//! encodes back to exactly the bytes it came from, and frame_len agrees with decode.
//! API: `fabric::proto::{decode, encode_to_vec, frame_len, Message::encoded_len}`.
#![no_main]

use fcvpn::fabric::proto::{decode, encode_to_vec, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let framed = frame_len(data);
    let Ok(Some((msg, used))) = decode(data) else {
        return;
    };
    assert!(used <= data.len());
    assert_eq!(framed, Ok(Some(used)), "frame_len disagrees with decode");
    let bytes = encode_to_vec(&msg).expect("a decoded message encodes");
    assert_eq!(bytes.len(), msg.encoded_len());
    assert_eq!(&bytes[..], &data[..used], "decode is not canonical");
    let (again, n) = decode(&bytes).expect("re-decode").expect("whole message");
    assert_eq!((again, n), (msg, used));
});
