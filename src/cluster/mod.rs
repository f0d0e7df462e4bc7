//! Cluster mode: N comet nodes sharing one Redis behave as one server.
//!
//! Redis owns every channel's seq, epoch and history, the global channel index
//! (`/check`, `/info`, presence), the node registry and the fan-out between
//! nodes; a node delivers a message to its subscribers only when it comes back
//! from Redis PUB/SUB (also on the node that published it), so every node sees
//! one order per channel. This module is the Redis side only: it knows Redis
//! and icomet semantics, and nothing of comet's workers, sockets or channel
//! table. The node wires it in through three seams: it calls [`Store`] for
//! admin commands, calls [`Subscriptions::join`]/[`Subscriptions::leave`] when
//! a channel is created or freed locally, and receives every
//! [`ClusterEvent`] in one callback.
//!
//! Map: `config` (the `cluster` section), `wire` (bytes in Redis), `keys`
//! (names), `lua/` + `scripts` (the atomic operations), `store`/`batch`/`index`
//! (typed calls), `shard`/`subs`/`push`/`events`/`survey` (PUB/SUB), `token`
//! (stateless `/sign`), `node` ([`Cluster`], the whole set plus maintenance),
//! `intake` (admin commands through Redis, for `Intake::apply`).
//! Design and traps: `shared/reference/scaleout-research.md`.

mod batch;
pub mod config;
mod error;
mod events;
mod index;
pub mod intake;
pub mod keys;
mod node;
mod push;
mod scripts;
mod shard;
mod store;
mod subs;
mod survey;
mod sync;
pub mod token;
pub mod wire;

pub use config::ClusterConfig;
pub use error::{ClusterError, ClusterResult};
pub use events::{ClusterEvent, ConnId, LostReason};
pub use index::{Reaped, Totals};
pub use node::{Cluster, MaintenanceStats};
pub use shard::ConnStats;
pub use store::{ChannelParams, History, Published, Signed, Store, StoreStats};
pub use subs::{ConnCounters, Subscriptions};
pub use survey::Survey;
pub use sync::SYNC_BATCH;
pub use wire::{Control, Epoch, Escaped, HistoryEntry, Kind};

/// What the Redis layer asks of the node: its own counts, read from the
/// channel table. Both are called often (surveys, every registry write) and
/// from Redis reader tasks, so they must be cheap and must not block.
pub trait LocalCounts: Send + Sync + 'static {
    /// Subscribers of `cname` connected to this node.
    fn subscribers_of(&self, cname: &str) -> u64;
    /// (subscribers, channels) on this node.
    fn totals(&self) -> (u64, u64);
    /// Calls `visit(cname, idle_secs_left)` for every channel this node holds,
    /// `idle_secs_left` being how long it would live here without news (at
    /// least `channel_timeout` while it has subscribers). Every
    /// `cluster.index_refresh_interval_ms` these raise the channels' expiry in
    /// the index (never lower it), so the reaper frees a channel only when no
    /// node holds it. The default holds nothing.
    fn held_channels(&self, visit: &mut dyn FnMut(&str, u32)) {
        let _ = visit;
    }
}
