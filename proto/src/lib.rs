//! logward's wire protocol, `logward.v1`, generated from `proto/logward/v1/ingest.proto`.

#![allow(clippy::all, clippy::pedantic, unused_qualifications)]

/// The `logward.v1` package: `Ingest/Stream` and its messages.
pub mod v1 {
    tonic::include_proto!("logward.v1");
}

pub use v1::{
    Ack, Batch, Container, Event, Source, StreamKind, Values,
    ingest_client::IngestClient,
    ingest_server::{Ingest, IngestServer},
};
