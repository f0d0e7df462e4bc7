//! The cluster side of the intake seam: [`apply`] runs an admin
//! [`ChannelCmd`] through Redis and answers what the local table would
//! (`CmdReply`), so `Intake::apply` only has to choose between the local
//! table and this. Deliveries are not made here: they come back from Redis
//! PUB/SUB to every node, this one included.
//!
//! Every failure becomes [`IntakeError::Unavailable`] (503), except `/close`
//! and `/clear` of a channel that does not exist (404). Unlike the local
//! table, a timed-out command may still run in Redis later (a stopped Redis
//! runs what was already written to it when it resumes).

use crate::channel::Signed;
use crate::intake::{ChannelCmd, CmdReply, IntakeError};

use super::{Cluster, ClusterError};

fn unavailable(e: ClusterError) -> IntakeError {
    IntakeError::Unavailable(format!("cluster: {e}"))
}

/// Applies `cmd` through Redis.
pub async fn apply(cluster: &Cluster, cmd: ChannelCmd) -> Result<CmdReply, IntakeError> {
    let store = cluster.store();
    Ok(match cmd {
        ChannelCmd::Publish { cname, content } => {
            CmdReply::Published(store.publish(&cname, &content).await.map_err(unavailable)?.seq)
        }
        ChannelCmd::PublishBatch(items) => {
            let refs: Vec<(&str, &str)> = items.iter().map(|(c, m)| (c.as_str(), &**m)).collect();
            let published = store.publish_batch(&refs).await.map_err(unavailable)?;
            CmdReply::PublishedBatch(published.iter().map(|p| p.seq).collect())
        }
        ChannelCmd::Broadcast { content } => {
            let n = store.broadcast(&content).await.map_err(unavailable)?;
            CmdReply::Broadcast(usize::try_from(n).unwrap_or(usize::MAX))
        }
        ChannelCmd::Sign { cname, expires } => {
            let s = store.sign(&cname, expires).await.map_err(unavailable)?;
            CmdReply::Signed(Signed {
                seq: s.seq,
                token: cluster.token(&cname),
                expires: s.expires,
            })
        }
        ChannelCmd::Close { cname } => match store.close(&cname).await.map_err(unavailable)? {
            Some(n) => CmdReply::Closed(n),
            None => return Err(IntakeError::NoSuchChannel(cname)),
        },
        ChannelCmd::Clear { cname } => match store.clear(&cname).await.map_err(unavailable)? {
            Some(n) => CmdReply::Cleared(n),
            None => return Err(IntakeError::NoSuchChannel(cname)),
        },
    })
}
