//! The data path against raw ChaCha20-Poly1305 on the same bytes.
//!
//! `cargo bench --bench datapath` measures, for packets of 1400 and 9000 bytes batched into
//! 1 MiB payloads: frame + seal (accepting packets already read into link buffers, as the
//! driver's TUN reads leave them, and building one sealed batch) and open + deframe (opening the batch and handing every packet to a sink), next to
//! sealing and opening the same number of bytes with the AEAD alone. It ends with a table of
//! throughputs and the ratio link/AEAD (goal: at most 1.25).

#[path = "../tests/support/pair.rs"]
mod pair;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use criterion::{BenchmarkId, Criterion, Throughput};
use fcvpn::link::Link;
use pair::{Faults, Pair, Scenario, SimPath, Traffic, make_packet};

const BATCH: usize = 1 << 20;
const SIZES: [usize; 2] = [1400, 9000];

/// Two established links (no traffic yet).
fn established() -> [Link; 2] {
    let mut sc = Scenario::new(1, vec![SimPath::fc(Faults::NONE)]);
    sc.traffic = [Traffic {
        packets: 0,
        interval: Duration::from_millis(1),
        jumbo: 0.0,
    }; 2];
    sc.tweak = |_, cfg| {
        cfg.rekey_after = Duration::from_secs(1 << 30);
        cfg.reject_after = Duration::from_secs(1 << 31);
    };
    let mut p = Pair::new(sc);
    p.run_until(Duration::from_millis(50));
    assert!(p.links.iter().all(|l| l.is_established()));
    p.links
}

/// Packets of `size` that fill one batch.
fn packets_per_batch(size: usize) -> usize {
    (BATCH - 4096) / (size + 12)
}

/// Virtual time: each step advances 3 ms, of which the acknowledgement uses the last 2.
struct Clock(Duration);

impl Clock {
    fn tick(&mut self) -> Duration {
        self.0 += Duration::from_millis(3);
        self.0
    }
}

/// Buffers holding `n` copies of `packet`, as the driver's TUN reads leave them.
fn read_packets(link: &mut Link, packet: &[u8], n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut b = link.packet_buffer();
            b.extend_from_slice(packet);
            b
        })
        .collect()
}

/// Frames the packets and seals one batch from `links[0]`; returns its length.
fn frame_and_seal(
    links: &mut [Link; 2],
    now: Duration,
    packets: Vec<Vec<u8>>,
    buf: &mut [u8],
) -> usize {
    for p in packets {
        links[0].handle_packet_buffer(now, p).expect("accepted");
    }
    links[0].poll_transmit(now, 0, buf).expect("a batch")
}

/// Delivers a batch to `links[1]`, returns the bytes delivered.
fn open_and_deframe(links: &mut [Link; 2], now: Duration, batch: &mut [u8]) -> usize {
    let mut bytes = 0;
    links[1].handle_batch(now, 0, batch, &mut |p| bytes += black_box(p).len());
    bytes
}

/// Lets the receiver's acknowledgement reach the sender (untimed housekeeping).
fn return_ack(links: &mut [Link; 2], now: Duration, buf: &mut [u8]) {
    links[1].handle_timeout(now + Duration::from_millis(2));
    while let Some(n) = links[1].poll_transmit(now + Duration::from_millis(2), 0, buf) {
        links[0].handle_batch(now, 0, &mut buf[..n], &mut |_| {});
    }
}

fn bench_link(c: &mut Criterion) {
    let mut g = c.benchmark_group("link");
    for size in SIZES {
        let n = packets_per_batch(size);
        let packet = make_packet(0, 1, size);
        g.throughput(Throughput::Bytes((n * size) as u64));
        g.bench_function(BenchmarkId::new("frame_seal", size), |b| {
            let mut links = established();
            let (mut buf, mut ack) = (vec![0u8; BATCH], vec![0u8; BATCH]);
            let mut clock = Clock(Duration::from_millis(60));
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let now = clock.tick();
                    let packets = read_packets(&mut links[0], &packet, n);
                    let t = Instant::now();
                    let len = frame_and_seal(&mut links, now, packets, &mut buf);
                    spent += t.elapsed();
                    open_and_deframe(&mut links, now, &mut buf[..len]);
                    return_ack(&mut links, now, &mut ack);
                }
                spent
            });
        });
        g.bench_function(BenchmarkId::new("open_deframe", size), |b| {
            let mut links = established();
            let (mut buf, mut ack) = (vec![0u8; BATCH], vec![0u8; BATCH]);
            let mut clock = Clock(Duration::from_millis(60));
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let now = clock.tick();
                    let packets = read_packets(&mut links[0], &packet, n);
                    let len = frame_and_seal(&mut links, now, packets, &mut buf);
                    let t = Instant::now();
                    let got = open_and_deframe(&mut links, now, &mut buf[..len]);
                    spent += t.elapsed();
                    assert_eq!(got, n * size);
                    return_ack(&mut links, now, &mut ack);
                }
                spent
            });
        });
    }
    g.finish();
}

/// Raw ChaCha20-Poly1305 over the same bytes, in the same 64 KiB records.
fn bench_aead(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead");
    let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
    for size in SIZES {
        let len = packets_per_batch(size) * size;
        let mut buf = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("seal", size), |b| {
            b.iter(|| seal_records(&aead, &mut buf));
        });
        let tags = seal_records(&aead, &mut buf);
        let sealed = buf.clone();
        g.bench_function(BenchmarkId::new("open", size), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |ct| open_records(&aead, ct, &tags),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&(i as u32).to_le_bytes());
    n.into()
}

fn seal_records(aead: &ChaCha20Poly1305, buf: &mut [u8]) -> Vec<[u8; 16]> {
    buf.chunks_mut(65536)
        .enumerate()
        .map(|(i, c)| {
            aead.encrypt_inout_detached(&nonce(i), b"aad", c.into())
                .expect("seal")
                .into()
        })
        .collect()
}

fn open_records(aead: &ChaCha20Poly1305, buf: &mut [u8], tags: &[[u8; 16]]) {
    for (i, c) in buf.chunks_mut(65536).enumerate() {
        let tag = tags[i].into();
        aead.decrypt_inout_detached(&nonce(i), b"aad", c.into(), &tag)
            .expect("open");
    }
}

/// Mean time per iteration of a finished benchmark, from criterion's estimates.
fn mean_ns(id: &str) -> Option<f64> {
    let path = format!("{}/criterion/{id}/new/estimates.json", target_dir());
    let json = std::fs::read_to_string(path).ok()?;
    let after = &json[json.find("\"mean\"")?..];
    let v = &after[after.find("\"point_estimate\":")? + 17..];
    v[..v.find([',', '}'])?].trim().parse().ok()
}

fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")))
}

fn summary() {
    println!(
        "\n{:<8} {:>14} {:>14} {:>7}   {:>14} {:>14} {:>7}",
        "packet", "frame+seal", "AEAD seal", "ratio", "open+deframe", "AEAD open", "ratio"
    );
    for size in SIZES {
        let bytes = (packets_per_batch(size) * size) as f64;
        let gbs = |ns: f64| bytes / ns;
        let get = |id: String| mean_ns(&id);
        let (Some(fs), Some(as_), Some(od), Some(ao)) = (
            get(format!("link/frame_seal/{size}")),
            get(format!("aead/seal/{size}")),
            get(format!("link/open_deframe/{size}")),
            get(format!("aead/open/{size}")),
        ) else {
            println!("{size:<8} (run the whole bench to get the table)");
            continue;
        };
        println!(
            "{size:<8} {:>9.2} GB/s {:>9.2} GB/s {:>7.2}   {:>9.2} GB/s {:>9.2} GB/s {:>7.2}",
            gbs(fs),
            gbs(as_),
            fs / as_,
            gbs(od),
            gbs(ao),
            od / ao
        );
    }
    println!("ratio = link time / AEAD time on the same bytes (goal: at most 1.25)");
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_aead(&mut c);
    bench_link(&mut c);
    c.final_summary();
    summary();
}
