//! Black-box tests: each spawns the app on a random port over a database of its own
//! and talks HTTP to it. Database tests run on SQLite, and on PostgreSQL when
//! `UNICONTACTS_TEST_POSTGRES_URL` is set.

mod helpers;

mod api_keys;
mod auth;
mod chats;
mod cli;
mod connections;
mod contacts;
mod deletion_guard;
mod errors;
mod events;
mod health;
mod identity;
mod layers;
mod live;
mod metrics;
mod openapi;
mod operations;
mod people;
mod processes;
mod provider_errors;
mod quota;
mod readme;
mod replicas;
mod schema;
mod secrets;
mod sync;
mod unit_of_work;
mod webhooks;
mod writes;
