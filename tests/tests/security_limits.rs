//! gRPC limits against the real server: a collector that sends too many events, an
//! oversize message, zstd and gzip bombs (1 GiB of zeros in a few MB, sent as raw gRPC
//! frames), or too many streams is refused with a status naming the `[limits]` key,
//! the bombs are not inflated (peak memory stays bounded), and a well-behaved
//! collector keeps flowing on its open stream throughout. The rate limit slows a
//! collector without dropping anything it sent.

use std::time::Duration;

use logward_e2e::Server;
use logward_e2e::grpc::{Connect, LoadClient, batch, channel, refusal};
use logward_e2e::tls::collectors_toml;
use logward_proto::{Ack, Batch, Event, Source};
use tonic::Code;
use tonic::codec::Codec;

const WAIT: Duration = Duration::from_secs(30);
const GOOD: &str = "lw_test_good_collector";
const BAD: &str = "lw_test_bad_collector";
const GIB: usize = 1 << 30;

fn events(tag: &str, n: usize, size: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut message = format!("{tag} event {i} ").into_bytes();
            message.resize(message.len().max(size), b'x');
            Event {
                timestamp_nanos: 1_714_557_600_000_000_000 + i as i64,
                host: format!("{tag}-host"),
                source: Source::Collector as i32,
                message: message.into(),
                ..Default::default()
            }
        })
        .collect()
}

/// A zstd frame of RLE blocks that inflates to `size` zero bytes (a multiple of
/// 128 KiB): 4 bytes per 128 KiB.
fn zstd_zeros(size: usize) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    // Magic, then a frame header without content size and a 128 KiB window.
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x38];
    let blocks = size / BLOCK;
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((BLOCK as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.push(0);
    }
    out
}

/// Bits written least significant first, as deflate does.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: its bits go out most significant first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A raw deflate stream of one fixed-Huffman block inflating to `size` zeros: one
/// literal, then matches of 258 at distance 1 (13 bits per 258 bytes).
fn deflate_zeros(size: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // last block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    let mut left = size - 1;
    while left >= 258 {
        bits.code(0xC5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    bits.finish()
}

/// A gzip member around `deflate_zeros`. Its CRC is left zero: the decoder would
/// only check it after inflating everything, which the server must never do.
fn gzip_zeros(size: usize) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(deflate_zeros(size));
    out.extend([0, 0, 0, 0]);
    out.extend((size as u32).to_le_bytes());
    out
}

/// Sends one compressed gRPC frame on Ingest/Stream and returns the final status.
async fn send_raw(url: &str, token: &str, encoding: &str, payload: Vec<u8>) -> tonic::Status {
    use tonic::codegen::Service;
    use tonic::codegen::http;
    let mut channel = channel(url, &Connect::default()).await.expect("channel");
    let mut frame = vec![1u8];
    frame.extend(
        u32::try_from(payload.len())
            .expect("frame fits")
            .to_be_bytes(),
    );
    frame.extend(payload);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{url}/logward.v1.Ingest/Stream"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", encoding)
        .header("authorization", format!("Bearer {token}"))
        .body(tonic::body::Body::new(axum::body::Body::from(frame)))
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("ready");
    let response = channel.call(request).await.expect("response");
    let (parts, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status;
    }
    let decoder = tonic_prost::ProstCodec::<Batch, Ack>::default().decoder();
    let mut acks = tonic::Streaming::new_response(decoder, body, parts.status, None, None);
    loop {
        match acks.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return tonic::Status::ok("stream ended"),
            Err(status) => return status,
        }
    }
}

#[test]
fn crafted_bombs_are_real() {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&deflate_zeros(1_000_000)[..])
        .read_to_end(&mut out)
        .expect("valid deflate");
    assert!(out.len() == 1_000_000 && out.iter().all(|&b| b == 0));
    assert!(gzip_zeros(GIB).len() < 8 << 20 && zstd_zeros(GIB).len() < 64 << 10);
}

#[test]
fn abusive_collector_is_refused_while_another_keeps_flowing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "{}\n[limits]\nmax_events_per_batch = 100\nmax_streams_per_collector = 2\n",
        collectors_toml(&[("good", Some(GOOD)), ("bad", Some(BAD))])
    );
    let server =
        Server::start_with_config(&tmp.path().join("data"), &config).expect("server starts");
    let url = server.grpc_url();
    let token = |t: &str| Connect {
        token: Some(t.to_owned()),
        ..Connect::default()
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut good_seq = 0;
    let peak_before = rt.block_on(async {
        // The good collector compresses its batches, as the real collector does.
        let zstd = Connect {
            compression: Some(tonic::codec::CompressionEncoding::Zstd),
            ..token(GOOD)
        };
        let (mut good, _) = LoadClient::connect_with(&url, "good-1", &zstd)
            .await
            .expect("good connects");
        let mut flow = async |good: &mut LoadClient| {
            good_seq += 1;
            let ack = good
                .send(batch("good-1", good_seq, events("good", 50, 100)))
                .await
                .expect("the good collector keeps flowing");
            assert_eq!(ack.sequence, good_seq);
        };
        flow(&mut good).await;
        let peak_before = server.peak_rss_kib();

        // Too many events in one batch.
        let (mut bad, _) = LoadClient::connect_with(&url, "bad-1", &token(BAD))
            .await
            .expect("bad connects");
        let (code, message) = refusal(bad.send(batch("bad-1", 1, events("bad", 101, 10))).await);
        assert_eq!(code, Code::InvalidArgument);
        assert!(
            message.contains("limits.max_events_per_batch = 100"),
            "{message}"
        );
        flow(&mut good).await;

        // One message over 16 MiB.
        let (mut bad, _) = LoadClient::connect_with(&url, "bad-1", &token(BAD))
            .await
            .expect("bad connects");
        let (code, message) = refusal(
            bad.send(batch("bad-1", 1, events("bad", 1, 17 << 20)))
                .await,
        );
        assert_eq!(code, Code::ResourceExhausted);
        assert!(
            message.contains("limits.grpc_max_message_bytes = 16777216"),
            "{message}"
        );
        flow(&mut good).await;

        // Bombs: 1 GiB of zeros each, a few MB on the wire.
        for (encoding, payload) in [("zstd", zstd_zeros(GIB)), ("gzip", gzip_zeros(GIB))] {
            let status = send_raw(&url, BAD, encoding, payload).await;
            assert_eq!(
                status.code(),
                Code::ResourceExhausted,
                "{encoding}: {status:?}"
            );
            assert!(
                status.message().contains("limits.grpc_max_message_bytes"),
                "{encoding}: {status:?}"
            );
            flow(&mut good).await;
        }

        // Streams per identity.
        let _one = LoadClient::connect_with(&url, "bad-1", &token(BAD))
            .await
            .expect("1st");
        let _two = LoadClient::connect_with(&url, "bad-2", &token(BAD))
            .await
            .expect("2nd");
        let (code, message) = refusal(LoadClient::connect_with(&url, "bad-3", &token(BAD)).await);
        assert_eq!(code, Code::ResourceExhausted);
        assert!(
            message.contains("limits.max_streams_per_collector = 2"),
            "{message}"
        );
        flow(&mut good).await;
        peak_before
    });
    let total = good_seq * 50;
    server
        .wait_for_total("host:good-host", total, WAIT)
        .expect("every good event is searchable");
    let bad = server
        .search(&[("q", "host:bad-host"), ("limit", "0")])
        .expect("search");
    assert_eq!(bad["total"], 0, "nothing of the refused batches is stored");
    if let (Some(before), Some(after)) = (peak_before, server.peak_rss_kib()) {
        eprintln!("server peak memory: {before} KiB before the abuse, {after} KiB after");
        assert!(
            after < before + 256 * 1024,
            "peak memory grew from {before} KiB to {after} KiB: a bomb was inflated"
        );
    }
    let (_, metrics) = server.get("/metrics").expect("metrics");
    let text = metrics.as_str().unwrap_or_default();
    for (limit, n) in [
        ("max_events_per_batch", 1),
        ("grpc_max_message_bytes", 3),
        ("max_streams_per_collector", 1),
    ] {
        assert!(
            text.contains(&format!(
                "logward_limit_rejections_total{{limit=\"{limit}\"}} {n}"
            )),
            "{limit} not counted {n} times:\n{text}"
        );
    }
}

#[test]
fn rate_limit_slows_a_collector_without_dropping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = "[limits]\ncollector_events_per_s = 2000\ncollector_burst_events = 100\n";
    let server =
        Server::start_with_config(&tmp.path().join("data"), config).expect("server starts");
    let url = server.grpc_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut c, _) = LoadClient::connect(&url, "fast").await.expect("connects");
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        c.send_range(1, 20, 8, |_| events("fast", 100, 10), &acked)
            .await
            .expect("every batch acked");
        assert_eq!(acked.load(std::sync::atomic::Ordering::SeqCst), 20);
    });
    server
        .wait_for_total("host:fast-host", 2000, WAIT)
        .expect("nothing dropped");
    assert!(
        server
            .proc
            .log()
            .iter()
            .any(|l| l
                .contains("ingest and API are open (no credentials configured, loopback only)")),
        "open mode on loopback is announced"
    );
    let (_, metrics) = server.get("/metrics").expect("metrics");
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("logward_limit_rejections_total{limit=\"collector_events_per_s\"}"),
        "throttling counted:\n{text}"
    );
}
