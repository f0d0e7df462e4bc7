//! The one seam between the admin API and the channels: admin handlers
//! build a [`ChannelCmd`] and hand it to [`Intake::apply`].
//!
//! On a single node the intake applies the command to the local channel
//! table at once (which assigns seqs and queues deliveries). In cluster
//! mode the same commands go to Redis, which assigns the seqs; deliveries
//! then come back from Redis to every node alike, this one included. The
//! admin's queries (`/info`, `/check`) come here too, so that they are
//! cluster-wide in cluster mode. Admin handlers never lock the table, never
//! see which of the two runs, and never deliver anything themselves.

use std::sync::Arc;
use std::time::Instant;

use crate::channel::{Signed, TooManyChannels};
use crate::channels::Channels;
use crate::hooks::Events;

/// A command from the admin API to the channels.
#[derive(Debug, Clone)]
pub enum ChannelCmd {
    /// `/pub`, `/push`: one data message; the content is already JSON-escaped.
    Publish {
        /// The channel (created when missing).
        cname: String,
        /// The escaped content.
        content: Arc<str>,
    },
    /// Many data messages in one request, applied in order.
    PublishBatch(Vec<(String, Arc<str>)>),
    /// `/broadcast`: one message to every existing channel.
    Broadcast {
        /// The escaped content.
        content: Arc<str>,
    },
    /// `/sign`: the channel's token (creating it), with its idle time.
    Sign {
        /// The channel.
        cname: String,
        /// Seconds the channel lives unsubscribed (`<= 0`: `channel_timeout`).
        expires: i32,
    },
    /// `/close`: end every subscriber and free the channel.
    Close {
        /// The channel.
        cname: String,
    },
    /// `/clear`: empty the channel's history.
    Clear {
        /// The channel.
        cname: String,
    },
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdReply {
    /// The message's seq.
    Published(i32),
    /// Each message's seq, in order.
    PublishedBatch(Vec<i32>),
    /// Channels the broadcast reached.
    Broadcast(usize),
    /// The `/sign` answer.
    Signed(Signed),
    /// The closed channel's next seq.
    Closed(i32),
    /// The cleared channel's next seq.
    Cleared(i32),
}

/// Why a command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// `front.max_channels` reached; for a batch, how many were published first.
    #[error("Too Many Channels")]
    TooManyChannels {
        /// Messages of a batch published before the limit stopped it.
        published: usize,
    },
    /// `/close` or `/clear` of a channel that does not exist.
    #[error("channel {0} not connected")]
    NoSuchChannel(String),
    /// The engine behind the intake cannot take commands now (cluster mode:
    /// Redis is unreachable or too slow). A command that timed out may still
    /// run in Redis later (a stopped Redis runs what it had received when it
    /// resumes); it is never delivered on one node only.
    #[error("{0}")]
    Unavailable(String),
}

/// A Redis failure, for the admin side's 503.
fn unavailable(e: crate::cluster::ClusterError) -> IntakeError {
    IntakeError::Unavailable(format!("cluster: {e}"))
}

impl From<TooManyChannels> for IntakeError {
    fn from(_: TooManyChannels) -> IntakeError {
        IntakeError::TooManyChannels { published: 0 }
    }
}

/// Where admin commands go.
#[derive(Debug)]
pub struct Intake {
    local: Arc<Channels>,
}

impl Intake {
    /// An intake that applies commands to this node's table.
    pub fn local(channels: Arc<Channels>) -> Intake {
        Intake { local: channels }
    }

    /// Applies one command that arrives now (see [`Intake::apply_at`]).
    pub async fn apply(&self, cmd: ChannelCmd) -> Result<CmdReply, IntakeError> {
        self.apply_at(cmd, Instant::now()).await
    }

    /// Applies one command whose admin request arrived at `arrival`: to
    /// this node's table, whose deliveries carry that time to the workers
    /// (which measure `comet_delivery_latency_seconds` from it), or in
    /// cluster mode to Redis (which assigns the seqs; deliveries come back
    /// from Redis, timed from when this node receives them).
    pub async fn apply_at(&self, cmd: ChannelCmd, arrival: Instant) -> Result<CmdReply, IntakeError> {
        // A publish is reported to the event hook (`hooks.events_publish`)
        // here, once, on the node that took the admin request.
        let events = self.local.events().filter(|e| e.wants_publish());
        let publishes = matches!(cmd, ChannelCmd::Publish { .. } | ChannelCmd::PublishBatch(_));
        let copy = events.and_then(|_| publishes.then(|| cmd.clone()));
        let reply = match self.local.cluster() {
            Some(cluster) => crate::cluster::intake::apply(cluster, cmd).await,
            None => self.apply_local(cmd, arrival),
        };
        if let (Some(events), Some(cmd), Ok(reply)) = (events, copy, &reply) {
            report_publish(events, &cmd, reply);
        }
        reply
    }

    /// `(channels, subscribers)` over the whole server (cluster-wide in
    /// cluster mode: the channel index and the nodes' reports).
    pub async fn totals(&self) -> Result<(u64, u64), IntakeError> {
        match self.local.cluster() {
            Some(c) => {
                let t = c.store().totals().await.map_err(unavailable)?;
                Ok((t.channels, t.subscribers))
            }
            None => {
                let (channels, subscribers) = self.local.totals();
                Ok((channels as u64, subscribers))
            }
        }
    }

    /// Subscribers of one channel (cluster-wide in cluster mode: every live
    /// node answers a survey).
    pub async fn subscribers_of(&self, cname: &str) -> Result<u64, IntakeError> {
        match self.local.cluster() {
            Some(c) => Ok(c.subscriptions().survey(cname).await.map_err(unavailable)?.subscribers),
            None => Ok(u64::from(self.local.subscribers_of(cname))),
        }
    }

    /// Which of `names` exist (cluster-wide in cluster mode).
    pub async fn exist(&self, names: &[&str]) -> Result<Vec<bool>, IntakeError> {
        match self.local.cluster() {
            Some(c) => c.store().check(names).await.map_err(unavailable),
            None => Ok(names.iter().map(|n| self.local.exists(n)).collect()),
        }
    }

    fn apply_local(&self, cmd: ChannelCmd, arrival: Instant) -> Result<CmdReply, IntakeError> {
        let c = &self.local;
        Ok(match cmd {
            ChannelCmd::Publish { cname, content } => CmdReply::Published(c.publish_at(&cname, &content, arrival)?),
            ChannelCmd::PublishBatch(items) => match c.publish_many_at(&items, arrival) {
                (seqs, None) => CmdReply::PublishedBatch(seqs),
                (seqs, Some(_)) => return Err(IntakeError::TooManyChannels { published: seqs.len() }),
            },
            ChannelCmd::Broadcast { content } => CmdReply::Broadcast(c.broadcast_at(&content, arrival)),
            ChannelCmd::Sign { cname, expires } => CmdReply::Signed(c.sign(&cname, expires)?),
            ChannelCmd::Close { cname } => match c.close(&cname) {
                Some(n) => CmdReply::Closed(n),
                None => return Err(IntakeError::NoSuchChannel(cname)),
            },
            ChannelCmd::Clear { cname } => match c.clear(&cname) {
                Some(n) => CmdReply::Cleared(n),
                None => return Err(IntakeError::NoSuchChannel(cname)),
            },
        })
    }
}

/// Tells the event hook what a publish command published, each message with
/// its seq (`/broadcast` is not reported: it would be one event per channel).
/// A batch that `max_channels` stopped halfway reports nothing.
fn report_publish(events: &Events, cmd: &ChannelCmd, reply: &CmdReply) {
    match (cmd, reply) {
        (ChannelCmd::Publish { cname, content }, CmdReply::Published(seq)) => events.published(cname, *seq, content),
        (ChannelCmd::PublishBatch(items), CmdReply::PublishedBatch(seqs)) => {
            for ((cname, content), seq) in items.iter().zip(seqs) {
                events.published(cname, *seq, content);
            }
        }
        _ => {}
    }
}
