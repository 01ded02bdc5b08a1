//! Fuzzes the search request handling of the server (`server/src/query.rs`): the query
//! string through `CheckedQuery::parse` and `build_query` (nesting and size checks, tantivy's grammar, field and
//! wildcard checks, tantivy's query parser) and then executed against a small in-memory
//! index; the request parameters through `parse_search_params` and `parse_time`; cursors.
//!
//! Input: the query string up to the first `\n`, then `name=value&name=value` parameters.
//! Checks beyond "no panic": an accepted request has a limit within `MAX_LIMIT`, a start
//! before its end and a cursor of its own order; a cursor that decodes encodes back to
//! itself; a query that builds can be run (count and top documents) without error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use logward_proto::{Event, Source};
use logward_server::params::parse_search_params;
use logward_server::query::{CheckedQuery, Cursor, MAX_LIMIT, QueryLimits, build_query, parse_time};
use logward_server::schema::{EventMeta, EventSchema};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;
use tantivy::tokenizer::TokenizerManager;
use tantivy::{Index, IndexReader};

const NOW: i64 = 1_714_557_600_000_000_000;

struct Fixture {
    schema: EventSchema,
    parser: QueryParser,
    reader: IndexReader,
}

/// The event schema over a RAM index of a few events, and a query parser set up as the
/// server's store sets it up (message as the default field, AND between terms).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let schema = EventSchema::new();
        let index = Index::create_in_ram(schema.schema.clone());
        let mut writer = index
            .writer_with_num_threads(1, 15_000_000)
            .expect("writer");
        let messages = [
            "Failed password for root from 203.0.113.5 port 52211 ssh2",
            "GET /index.html HTTP/1.1 200 \u{1b}[31mred\u{1b}[0m",
            "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
            "{\"level\":\"error\",\"msg\":\"boom\",\"user\":{\"id\":7}}",
        ];
        for (i, message) in messages.iter().enumerate() {
            let mut event = Event {
                host: format!("web-{i}"),
                source: if i % 2 == 0 {
                    Source::Journald
                } else {
                    Source::Docker
                } as i32,
                timestamp_nanos: NOW + i as i64 * 1_000_000_000,
                message: message.as_bytes().to_vec().into(),
                ..Event::default()
            };
            event.fields.insert(
                "ssh.user".to_owned(),
                logward_proto::Values {
                    values: vec!["root".to_owned(), "alice".to_owned()],
                },
            );
            let id = format!("c-1-{i}");
            let meta = EventMeta {
                id: &id,
                uid: i as u64,
                received_at_nanos: NOW,
                generation: 1,
            };
            writer
                .add_document(schema.document(&event, &meta))
                .expect("add");
        }
        writer.commit().expect("commit");
        let reader = index.reader().expect("reader");
        let mut parser = QueryParser::new(
            schema.schema.clone(),
            vec![schema.message],
            TokenizerManager::default(),
        );
        parser.set_conjunction_by_default();
        Fixture {
            schema,
            parser,
            reader,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (q, params) = text.split_once('\n').unwrap_or((&text, ""));
    let f = fixture();

    for (start, end) in [(None, None), (Some(NOW), Some(NOW + 2_000_000_000))] {
        let built = CheckedQuery::parse(q, &QueryLimits::CEILING)
            .and_then(|checked| build_query(&f.parser, &f.schema, &checked, start, end));
        if let Ok(query) = built {
            let searcher = f.reader.searcher();
            let n = searcher
                .search(&query, &Count)
                .expect("an accepted query runs");
            assert!(n <= 4);
            searcher
                .search(&query, &TopDocs::with_limit(2).order_by_score())
                .expect("an accepted query runs");
        }
    }

    if let Some(c) = Cursor::decode(q) {
        assert_eq!(
            Cursor::decode(&c.encode()),
            Some(c),
            "cursor {q:?} does not round-trip"
        );
    }
    let _ = parse_time(q, NOW);

    let pairs: Vec<(String, String)> = params
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    if let Ok(p) = parse_search_params(&pairs, NOW, &QueryLimits::CEILING) {
        assert!(p.limit <= MAX_LIMIT);
        if let (Some(s), Some(e)) = (p.start, p.end) {
            assert!(s < e, "start {s} not before end {e}");
        }
        if let Some(c) = p.cursor {
            assert_eq!(c.order, p.order);
        }
    }
});
