//! Notices between replicas: a revoked API key, a changed or deleted connection.
//! Each process drops what it cached of it within a second of the change, on
//! every replica: through Redis pub/sub when Redis is configured, else through
//! PostgreSQL's LISTEN/NOTIFY (SQLite is one process: nothing to tell). A
//! listener that (re)connects drops everything it cached, since it may have
//! missed notices while it was away. Each notice names the process that sent
//! it, which ignores its own when they come back: it forgot at once what it
//! changed, and an echo arriving after it cached the new copy would drop that.

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

    /// The notice on the wire: who sent it, then what changed.
    fn wire(&self, origin: &str) -> String {
        format!("{origin}|{}", self.encode())
    }

    /// The notice of a payload that did not come from `me` (one without a
    /// sender, from an older replica, counts as another's).
    fn from_another(payload: &str, me: &str) -> Option<Self> {
        match payload.split_once('|') {
            Some((origin, _)) if origin == me => None,
            Some((_, notice)) => Self::decode(notice),
            None => Self::decode(payload),
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

/// How notices travel between this process and the others, and who this process is.
#[derive(Clone)]
pub struct Notices {
    /// This process, as its notices name it.
    origin: std::sync::Arc<str>,
    route: Route,
}

#[derive(Clone)]
enum Route {
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
        let route = match (redis, db) {
            (Some((conn, url)), _) => Route::Redis {
                conn: conn.clone(),
                url: url.to_string(),
            },
            (None, DatabaseUrl::Postgres(url)) => Route::Postgres {
                store: store.clone(),
                url: url.clone(),
            },
            (None, DatabaseUrl::Sqlite(_)) => Route::Alone,
        };
        Self {
            origin: crate::ids::new_id("proc").into(),
            route,
        }
    }

    /// Tells the other processes. A notice that cannot be sent is logged: the
    /// others' caches then age out (5 minutes at most).
    pub async fn publish(&self, notice: &Notice) {
        let payload = notice.wire(&self.origin);
        let result = match &self.route {
            Route::Redis { conn, .. } => redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(&payload)
                .query_async::<i64>(&mut conn.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Route::Postgres { store: s, .. } => {
                let p = payload.clone();
                s.run(move |conn| store::notify(conn, &p))
                    .await
                    .map_err(|e| e.to_string())
            }
            Route::Alone => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, notice = %notice.encode(), "could not tell the other replicas");
        }
    }

    /// Listens for the other processes' notices until `stop`, handing each to
    /// `apply` (and `Notice::All` after every (re)connection); this process's
    /// own come back and are dropped.
    pub fn listen(
        &self,
        apply: impl Fn(Notice) + Send + Sync + 'static,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let me = self.origin.clone();
        let apply = move |payload: &str| {
            if let Some(n) = Notice::from_another(payload, &me) {
                apply(n);
            }
        };
        match self.route.clone() {
            Route::Redis { url, .. } => {
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = listen_redis(&url, &apply) => {}
                    }
                });
            }
            Route::Postgres { url, .. } => {
                let spawned = std::thread::Builder::new()
                    .name("notices".into())
                    .spawn(move || listen_postgres(&url, &apply, &stop));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot listen for the other replicas' notices");
                }
            }
            Route::Alone => {}
        }
    }
}

/// `apply` takes each payload as it came; `Notice::All`'s after a (re)connection.
async fn listen_redis(url: &str, apply: &(impl Fn(&str) + Send + Sync)) {
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
                apply(&Notice::All.encode());
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(payload) = msg.get_payload::<String>() {
                        apply(&payload);
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
    apply: &(impl Fn(&str) + Send + Sync),
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
                apply(&Notice::All.encode());
                while !stop.is_cancelled() {
                    match listener.poll() {
                        Ok(payloads) => {
                            for p in &payloads {
                                apply(p);
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

    /// A process drops its own notices when they come back (it forgot at once what
    /// it changed) and takes every other's, including an older replica's untagged one.
    #[test]
    fn a_process_drops_its_own_notices_and_takes_the_others() {
        let n = Notice::Contact("con_01".into(), "919537851844@c.us".into());
        let sent = n.wire("proc_a");
        assert_eq!(Notice::from_another(&sent, "proc_a"), None);
        assert_eq!(Notice::from_another(&sent, "proc_b"), Some(n.clone()));
        assert_eq!(Notice::from_another(&n.encode(), "proc_a"), Some(n));
        assert_eq!(Notice::from_another("proc_b|weather:sunny", "proc_a"), None);
    }
}
