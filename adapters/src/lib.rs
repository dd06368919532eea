//! Everything that speaks a provider's language: the [`Provider`] trait the
//! service calls and the [`Adapter`] gate around it, the canonical contact, the
//! upstream HTTP client with its shared quota, and per provider its wire types,
//! client and mapping. It never touches the database or the service's HTTP
//! layer. This file only declares the modules and what the crate offers from
//! them; read them top-down: `adapter` (the gate, and what each provider can do)
//! over the providers (`periskope`, `wacr`, `gateway`) over `provider` (the
//! trait), `provider_kind`, `connection_config`, `upstream`, `quota` and the rest.

pub mod adapter;
pub mod canonical;
pub mod capabilities;
pub mod chats;
pub mod connection_config;
pub mod error;
pub mod gateway;
pub mod json_split;
pub mod metrics;
pub mod paging;
pub mod periskope;
pub mod phone;
pub mod provider;
pub mod provider_kind;
pub mod quota;
pub mod upstream;
pub mod wacr;

pub use adapter::{connect, Adapter};
pub use canonical::{CanonicalContact, ContactRecord};
pub use capabilities::{Capabilities, Operation, WriteField};
pub use connection_config::ConnectionConfig;
pub use error::AdapterError;
pub use paging::PageToken;
pub use provider::{BatchOutcome, ContactInput, ContactPage, Provider};
pub use provider_kind::{CredentialField, InvalidRemoteId, ProviderKind, RemoteId};
pub use upstream::{Upstream, UpstreamConfig, UpstreamStats};
