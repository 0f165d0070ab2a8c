//! Redrive's integration tests, in one binary so the suite links once.
//! Each module is one area; each test makes its own vhost, queues and
//! database (`common`) and removes them, so tests run in parallel and twice
//! in a row. Tests that need PostgreSQL are `#[ignore]`d with the reason on
//! SQLite (reported as ignored, never as passed); `scripts/test` runs them
//! in its PostgreSQL pass.

mod common;

mod advisor;
mod alerts;
mod api;
mod approval;
mod browse;
mod browser;
mod capture;
mod cluster;
mod crash;
mod degraded;
mod demo;
mod export;
mod groups;
mod holds;
mod hostile;
mod ingest;
mod instances;
mod jobs;
mod links;
mod loops;
mod malformed;
mod masking;
mod message_holds;
mod migrations;
mod notifications;
mod pipeline;
mod plans;
mod plans_ui;
mod policies;
mod replay;
mod search_index;
mod security;
mod sessions;
mod store;
mod sweep;
mod takeover;
mod tap;
mod tap_switch;
mod tap_ui;
mod tour;
mod writers;
