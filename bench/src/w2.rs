//! W2: server ingest over gRPC in realistic batches, beside raw tantivy indexing of the
//! same documents with the same schema; then W3: searches over what was ingested,
//! through the HTTP API and directly against tantivy in-process.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use logward_e2e::Server;
use logward_proto::{Batch, Container, Event, IngestClient, Source, StreamKind};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;

use crate::Opts;
use crate::datagen::Generator;
use crate::procstat::usage;
use crate::report::{Row, percentile};

const BATCH: usize = 1000;
const WINDOW: usize = 16;
/// Base of event timestamps: 2024-05-01T00:00:00Z, one event every 10 ms.
const T0: i64 = 1_714_521_600_000_000_000;
const STEP: i64 = 10_000_000;

/// Makes `n` events in batches, from the generator's mix.
pub fn batches(n: usize) -> Vec<Vec<Event>> {
    let mut g = Generator::new(42, 1000);
    let mut out = Vec::with_capacity(n / BATCH + 1);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        let (_, line) = g.line();
        let c = i % 20;
        batch.push(Event {
            timestamp_nanos: T0 + i as i64 * STEP,
            host: format!("bench-host-{}", i % 4),
            source: Source::Docker as i32,
            message: line.into_bytes().into(),
            stream: if i % 7 == 0 {
                StreamKind::Stderr
            } else {
                StreamKind::Stdout
            } as i32,
            container: Some(Container {
                id: format!("{:064x}", c),
                name: format!("bench-{c}"),
                image: format!("bench/app-{}:1.0", c % 5),
                image_id: String::new(),
                labels: [("shard".to_owned(), format!("{}", c % 4))].into(),
            }),
            fields: Default::default(),
        });
        if batch.len() == BATCH {
            out.push(std::mem::take(&mut batch));
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// Sends every batch on one stream with a window of unacked batches; returns seconds.
async fn send_all(url: &str, batches: &[Vec<Event>]) -> anyhow::Result<f64> {
    let mut client = IngestClient::connect(url.to_owned())
        .await?
        .max_encoding_message_size(64 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(WINDOW);
    let mut acks = client
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    let mut next = 0;
    let mut acked = 0;
    while acked < batches.len() {
        while next < batches.len() && in_flight.len() < WINDOW {
            let b = Batch {
                collector_id: "bench-w2".into(),
                sequence: next as u64 + 1,
                events: batches[next].clone(),
            };
            tx.send(b).await.context("stream closed")?;
            in_flight.push_back(next);
            next += 1;
        }
        match acks.message().await? {
            Some(_) => {
                in_flight.pop_front();
                acked += 1;
            }
            None => bail!("server closed the stream after {acked} acks"),
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// W2 and W3.
pub fn run(opts: &Opts, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let all = batches(opts.w2_events);
    let raw_bytes: usize = all.iter().flatten().map(|e| e.message.len()).sum();
    let raw = raw_tantivy(&tmp.path().join("raw"), &all)?;

    let n = opts.w2_events as f64;
    let mib = |secs: f64| raw_bytes as f64 / 1048576.0 / secs;
    let gib = raw_bytes as f64 / 1073741824.0;

    // Rules off: the built-in pack disabled in the config file.
    let config = tmp.path().join("rules-off.toml");
    std::fs::write(&config, "[rules]\nbuiltin = false\n")?;
    let off_data = tmp.path().join("data-off");
    let server = Server::start(
        &off_data,
        &["--config".to_owned(), config.display().to_string()],
    )?;
    let off_secs = rt.block_on(send_all(&server.grpc_url(), &all))?;
    let off_u = usage(server.proc.child.id()).context("server /proc")?;
    drop(server);

    // Rules on: the default, the built-in pack live on every batch.
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[])?;
    let secs = rt.block_on(send_all(&server.grpc_url(), &all))?;
    let u = usage(server.proc.child.id()).context("server /proc")?;
    let mut rows = vec![
        Row::new(
            "W2",
            format!("server ingest, {} events, rules off", opts.w2_events),
            n / off_secs,
            "events/s",
        )
        .baseline("raw tantivy, same schema", raw)
        .note(format!("{:.1} MiB/s raw log", mib(off_secs))),
        Row::new(
            "W2",
            format!(
                "server ingest, {} events, built-in rules on",
                opts.w2_events
            ),
            n / secs,
            "events/s",
        )
        .baseline("raw tantivy, same schema", raw)
        .target("≥ 60k/s and ≥ 70% of raw")
        .note(format!("{:.1} MiB/s raw log", mib(secs))),
        Row::new("W2", "server ingest, rules on vs off", n / secs, "events/s")
            .baseline("rules off (same run)", n / off_secs),
        Row::new(
            "W2",
            "server CPU per GiB of raw log, rules off",
            off_u.cpu_secs / gib,
            "CPU-s/GiB",
        ),
        Row::new(
            "W2",
            "server CPU per GiB of raw log, rules on",
            u.cpu_secs / gib,
            "CPU-s/GiB",
        ),
        Row::new(
            "W2",
            "server peak RSS, rules off",
            off_u.peak_rss_kib as f64 / 1024.0,
            "MiB",
        ),
        Row::new(
            "W2",
            "server peak RSS, rules on",
            u.peak_rss_kib as f64 / 1024.0,
            "MiB",
        ),
    ];
    rows.extend(search_rows(opts, &server, &data)?);
    Ok(rows)
}

/// Raw tantivy: the same documents, the same schema, one writer, one commit.
fn raw_tantivy(dir: &Path, batches: &[Vec<Event>]) -> anyhow::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let schema = logward_server::schema::EventSchema::new();
    let index = tantivy::Index::create_in_dir(dir, schema.schema.clone())?;
    let mut writer: tantivy::IndexWriter = index.writer(128 << 20)?;
    let started = Instant::now();
    for (seq, batch) in batches.iter().enumerate() {
        for (i, e) in batch.iter().enumerate() {
            let id = logward_server::EventId::new("raw", seq as u64 + 1, i).to_string();
            let meta = logward_server::schema::EventMeta {
                id: &id,
                uid: logward_server::event_uid(&id),
                received_at_nanos: 1,
                generation: 1,
            };
            writer.add_document(schema.document(e, &meta))?;
        }
    }
    writer.commit()?;
    let n: usize = batches.iter().map(Vec::len).sum();
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// (name, query string, extra API parameters, the same query for tantivy in-process)
const QUERIES: &[(&str, &str, &str, &str)] = &[
    ("term", "password", "", "password"),
    (
        "term AND host",
        "password AND host:bench-host-1",
        "",
        "password AND host:bench-host-1",
    ),
    ("phrase", "\"Failed password\"", "", "\"Failed password\""),
    ("last 100 matching", "GET", "&limit=100", "GET"),
    (
        "term + one-hour range",
        "GET",
        "&start=2024-05-01T00:30:00Z&end=2024-05-01T01:30:00Z",
        "GET AND timestamp:[2024-05-01T00:30:00Z TO 2024-05-01T01:30:00Z}",
    ),
];

fn search_rows(opts: &Opts, server: &Server, data: &Path) -> anyhow::Result<Vec<Row>> {
    let client = reqwest::blocking::Client::new();
    let indexes = find_indexes(data)?;
    let mut rows = Vec::new();
    for (name, q, extra, direct_q) in QUERIES {
        let url = format!(
            "http://{}/api/v1/search?q={}{extra}",
            server.http,
            logward_e2e::encode(q)
        );
        let mut api = Vec::new();
        for _ in 0..opts.search_runs {
            let t = Instant::now();
            let r = client.get(&url).send()?;
            if !r.status().is_success() {
                bail!("W3 {name}: {} {}", r.status(), r.text()?);
            }
            r.bytes()?;
            api.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mut direct = Vec::new();
        let prepared = indexes
            .iter()
            .map(|index| {
                let message = index.schema().get_field("message")?;
                let mut parser = QueryParser::for_index(index, vec![message]);
                parser.set_conjunction_by_default();
                Ok((parser.parse_query(direct_q)?, index.reader()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for _ in 0..opts.search_runs {
            let t = Instant::now();
            for (query, reader) in &prepared {
                let searcher = reader.searcher();
                let newest = TopDocs::with_limit(100)
                    .order_by_fast_field::<tantivy::DateTime>("timestamp", tantivy::Order::Desc);
                let _ = searcher.search(query, &(Count, newest))?;
            }
            direct.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        rows.push(
            Row::new(
                "W3",
                format!("{name} p50, {} events", opts.w2_events),
                percentile(&api, 50.0),
                "ms",
            )
            .baseline("tantivy in-process", percentile(&direct, 50.0))
            .note("count + newest 100 by timestamp"),
        );
        rows.push(
            Row::new("W3", format!("{name} p99"), percentile(&api, 99.0), "ms")
                .baseline("tantivy in-process", percentile(&direct, 99.0))
                .target(if name.contains("range") {
                    "≤ 50 ms"
                } else {
                    ""
                }),
        );
    }
    rows.extend(aggregation_rows(opts, server, &indexes)?);
    Ok(rows)
}

/// W3 aggregations through `/api/v1/aggregate`, beside the same tantivy aggregation
/// requests run in-process over the same index files (merged across partitions, as the
/// server does).
fn aggregation_rows(
    opts: &Opts,
    server: &Server,
    indexes: &[tantivy::Index],
) -> anyhow::Result<Vec<Row>> {
    let client = reqwest::blocking::Client::new();
    let readers = indexes
        .iter()
        .map(|i| i.reader())
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    let cases = [
        ("terms on container.name", "field=container.name&size=10"),
        ("date histogram over everything", "type=date_histogram"),
    ];
    for (name, qs) in cases {
        let url = format!("http://{}/api/v1/aggregate?{qs}", server.http);
        let mut api = Vec::new();
        let mut last = serde_json::Value::Null;
        for _ in 0..opts.search_runs {
            let t = Instant::now();
            let r = client.get(&url).send()?;
            if !r.status().is_success() {
                bail!("W3 {name}: {} {}", r.status(), r.text()?);
            }
            let body = r.bytes()?;
            api.push(t.elapsed().as_secs_f64() * 1000.0);
            last = serde_json::from_slice(&body)?;
        }
        let request = if name.starts_with("terms") {
            serde_json::json!({"agg": {"terms": {"field": "container.name", "size": 10, "segment_size": 100}}})
        } else {
            let interval = last["interval"].as_str().unwrap_or("1h").to_owned();
            serde_json::json!({"agg": {"date_histogram": {"field": "timestamp", "fixed_interval": interval, "min_doc_count": 0}}})
        };
        let aggs: tantivy::aggregation::agg_req::Aggregations = serde_json::from_value(request)?;
        let mut direct = Vec::new();
        for _ in 0..opts.search_runs {
            let t = Instant::now();
            let mut merged: Option<
                tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults,
            > = None;
            for reader in &readers {
                let collector = tantivy::aggregation::DistributedAggregationCollector::from_aggs(
                    aggs.clone(),
                    tantivy::aggregation::AggContextParams::new(
                        tantivy::aggregation::AggregationLimitsGuard::new(
                            Some(200_000_000),
                            Some(10_010),
                        ),
                        tantivy::tokenizer::TokenizerManager::default(),
                    ),
                );
                let (_, fruit) = reader
                    .searcher()
                    .search(&tantivy::query::AllQuery, &(Count, collector))?;
                match &mut merged {
                    None => merged = Some(fruit),
                    Some(m) => m.merge_fruits(fruit)?,
                }
            }
            std::hint::black_box(merged);
            direct.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let buckets = last["buckets"].as_array().map_or(0, Vec::len);
        rows.push(
            Row::new(
                "W3",
                format!("{name} p50, {} events", opts.w2_events),
                percentile(&api, 50.0),
                "ms",
            )
            .baseline("tantivy in-process", percentile(&direct, 50.0))
            .note(format!(
                "/api/v1/aggregate?{qs}: {buckets} buckets, total {}",
                last["total"]
            )),
        );
        rows.push(
            Row::new("W3", format!("{name} p99"), percentile(&api, 99.0), "ms")
                .baseline("tantivy in-process", percentile(&direct, 99.0))
                .target(if name.starts_with("date") {
                    "≤ 200 ms at 10M events"
                } else {
                    ""
                }),
        );
    }
    Ok(rows)
}

/// Every tantivy index below `dir` (a directory holding `meta.json`).
fn find_indexes(dir: &Path) -> anyhow::Result<Vec<tantivy::Index>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if d.join("meta.json").exists() {
            out.push(tantivy::Index::open_in_dir(&d)?);
            continue;
        }
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    Ok(out)
}
