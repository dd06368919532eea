//! Notices between replicas: a revoked API key, a changed or deleted connection.
//! Each process drops what it cached of it within a second of the change, on
//! every replica: through Redis pub/sub when Redis is configured, else through
//! PostgreSQL's LISTEN/NOTIFY (SQLite is one process: nothing to tell). A
//! listener that (re)connects drops everything it cached, since it may have
//! missed notices while it was away.

use std::time::Duration;

use futures_util::StreamExt;

use crate::config::DatabaseUrl;
use crate::redis::ConnectionManager;
use crate::store::{self, NoticeListener, Store};

/// The Redis channel of notices.
const CHANNEL: &str = "unicontacts:notices";
/// How often a PostgreSQL listener looks for notices.
const PG_POLL: Duration = Duration::from_millis(100);

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An API key was revoked.
    Key(String),
    /// A connection changed or went away.
    Connection(String),
    /// A contact was written: its live-read copy (connection id, remote id).
    Contact(String, String),
    /// Anything may have changed (a listener that was away).
    All,
}

impl Notice {
    fn encode(&self) -> String {
        match self {
            Self::Key(id) => format!("key:{id}"),
            Self::Connection(id) => format!("connection:{id}"),
            Self::Contact(c, r) => format!("contact:{c} {r}"),
            Self::All => "all".into(),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        match s.split_once(':') {
            Some(("key", id)) => Some(Self::Key(id.to_string())),
            Some(("connection", id)) => Some(Self::Connection(id.to_string())),
            Some(("contact", rest)) => rest
                .split_once(' ')
                .map(|(c, r)| Self::Contact(c.to_string(), r.to_string())),
            _ if s == "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// How notices travel between this process and the others.
#[derive(Clone)]
pub enum Notices {
    Redis {
        /// Publishes.
        conn: ConnectionManager,
        /// Subscribes (a connection of its own).
        url: String,
    },
    Postgres {
        store: Store,
        url: String,
    },
    /// One process: nobody to tell.
    Alone,
}

impl Notices {
    pub fn new(redis: Option<(&ConnectionManager, &str)>, store: &Store, db: &DatabaseUrl) -> Self {
        match (redis, db) {
            (Some((conn, url)), _) => Self::Redis {
                conn: conn.clone(),
                url: url.to_string(),
            },
            (None, DatabaseUrl::Postgres(url)) => Self::Postgres {
                store: store.clone(),
                url: url.clone(),
            },
            (None, DatabaseUrl::Sqlite(_)) => Self::Alone,
        }
    }

    /// Tells the other processes. A notice that cannot be sent is logged: the
    /// others' caches then age out (5 minutes at most).
    pub async fn publish(&self, notice: &Notice) {
        let payload = notice.encode();
        let result = match self {
            Self::Redis { conn, .. } => redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(&payload)
                .query_async::<i64>(&mut conn.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Self::Postgres { store: s, .. } => {
                let p = payload.clone();
                s.run(move |conn| store::notify(conn, &p))
                    .await
                    .map_err(|e| e.to_string())
            }
            Self::Alone => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, notice = %payload, "could not tell the other replicas");
        }
    }

    /// Listens for the other processes' notices until `stop`, handing each to
    /// `apply` (and `Notice::All` after every (re)connection).
    pub fn listen(
        &self,
        apply: impl Fn(Notice) + Send + Sync + 'static,
        stop: tokio_util::sync::CancellationToken,
    ) {
        match self.clone() {
            Self::Redis { url, .. } => {
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = listen_redis(&url, &apply) => {}
                    }
                });
            }
            Self::Postgres { url, .. } => {
                let spawned = std::thread::Builder::new()
                    .name("notices".into())
                    .spawn(move || listen_postgres(&url, &apply, &stop));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot listen for the other replicas' notices");
                }
            }
            Self::Alone => {}
        }
    }
}

async fn listen_redis(url: &str, apply: &(impl Fn(Notice) + Send + Sync)) {
    let mut away = false;
    loop {
        let subscribed = async {
            let client = redis::Client::open(url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(mut pubsub) => {
                if away {
                    tracing::info!("listening for the other replicas' notices again");
                }
                away = false;
                apply(Notice::All);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if let Some(n) = msg
                        .get_payload::<String>()
                        .ok()
                        .as_deref()
                        .and_then(Notice::decode)
                    {
                        apply(n);
                    }
                }
            }
            Err(e) => {
                if !away {
                    tracing::warn!(error = %e, "cannot listen for the other replicas' notices; retrying");
                }
                away = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn listen_postgres(
    url: &str,
    apply: &(impl Fn(Notice) + Send + Sync),
    stop: &tokio_util::sync::CancellationToken,
) {
    let mut away = false;
    while !stop.is_cancelled() {
        match NoticeListener::connect(url) {
            Ok(mut listener) => {
                if away {
                    tracing::info!("listening for the other replicas' notices again");
                }
                away = false;
                apply(Notice::All);
                while !stop.is_cancelled() {
                    match listener.poll() {
                        Ok(notices) => {
                            for n in notices.iter().filter_map(|p| Notice::decode(p)) {
                                apply(n);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the notices connection; reconnecting");
                            away = true;
                            break;
                        }
                    }
                    std::thread::sleep(PG_POLL);
                }
            }
            Err(e) => {
                if !away {
                    tracing::warn!(error = %e, "cannot listen for the other replicas' notices; retrying");
                }
                away = true;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_strangers_are_ignored() {
        for n in [
            Notice::Key("key_01".into()),
            Notice::Connection("con_01".into()),
            Notice::Contact("con_01".into(), "919537851844@c.us".into()),
            Notice::All,
        ] {
            assert_eq!(Notice::decode(&n.encode()), Some(n));
        }
        assert_eq!(Notice::decode("weather:sunny"), None);
    }
}
