//! comet: an icomet-compatible comet (server-push) server.
//!
//! # Module map
//!
//! How a message travels: an admin request (`admin`) becomes a command
//! (`intake::ChannelCmd`); the intake applies it to the channel table
//! (`channels`, around `channel`), which assigns the seq, keeps the message
//! in history and queues one command per worker that holds subscribers
//! (`mailbox`); each worker thread (`worker`) hands it to its protocol
//! state (`front`), which frames it once per transport and writes it to
//! every subscriber.
//!
//! | module | owns | must not touch |
//! |---|---|---|
//! | [`main`](../comet/index.html) (binary) | command line, exit codes | anything else |
//! | [`server`] | start-up order, listeners, threads, supervision, shutdown | protocol details |
//! | [`config`] | every key, defaults, validation | sockets |
//! | [`reload`] | SIGHUP: which keys change live (one table), applying them, the log line | sockets, threads |
//! | [`shared`] | what the listeners share, and the server's lifecycle | locking (each part has its own) |
//! | [`intake`] | the seam between admin commands and the channels (local table or Redis) | sockets, framing |
//! | [`link`] | cluster mode on this node: Redis events applied to the table, syncs | sockets |
//! | [`channels`] | the table's lock and the fan-out of its notices | sockets, framing |
//! | [`channel`] | the table: names, slots, seqs, history, tokens, expiry (sync, no I/O) | threads, I/O, JSON |
//! | [`cluster`] | cluster mode's Redis side: seq, epoch and history scripts, PUB/SUB subscriptions, the channel index, `/sign` tokens | workers, sockets, the channel table |
//! | [`mailbox`] | cross-thread commands to workers, eventfd wake-ups | the table |
//! | [`presence`] | `/psub` listeners and their bounded queues | the table |
//! | [`front`] | the front protocol: request parsing, transports and framing, subscriptions, delivery, timers (sans-IO, generic over the socket) | descriptors, epoll, threads |
//! | `worker` | threads, private descriptor tables, epoll, accepting, refusals | protocol details |
//! | [`admin`] | the admin HTTP API on hyper | front connections |
//! | [`metrics`] | counters, latency histograms, `/stats` and `/metrics` | the table's internals |
//! | [`incidents`] | refused, closed and kernel-dropped connections: one warn line per burst | the counters' owners |
//! | [`encode`], [`params`] | JSON escaping and message objects; query parsing | state |
//! | [`per_ip`] | connections per client address | sockets |
//! | [`logging`] | text or JSON log lines, switchable at run time | what is logged |
//! | [`malloc`] | glibc allocator settings | everything else |
//! | [`auth`] | JWT subscribe tokens: the key, verification, the refusal reasons | sockets, channels |
//! | [`hooks`] | calls to the application: authorize hook, event hook, long-poll presence rule | subscriber sockets, channel slots, workers |
//! | [`backend`] | the JWT verifier and the hooks as the server runs them: built at start, counted, flushed at shutdown | sockets, channel slots |
//! | [`ttl_cache`] | a bounded cache of entries living a fixed time, keyed by a 128-bit hash | locking, clocks |
//! | [`fuzzing`] | the fuzz targets' property checks (no server, no sockets) | — |
pub mod admin;
pub mod auth;
pub mod backend;
pub mod channel;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod encode;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod incidents;
pub mod intake;
pub mod link;
pub mod logging;
pub mod mailbox;
pub mod malloc;
pub mod metrics;
pub mod params;
pub mod per_ip;
pub mod presence;
pub mod reload;
pub mod server;
pub mod shared;
pub mod ttl_cache;
pub(crate) mod worker;
pub mod ws;
