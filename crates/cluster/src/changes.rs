//! Announcements of changed components over Redis pub/sub: a replica that stores or deletes
//! an upload publishes one message, and every replica rescans its uploads at once instead
//! of at its next poll. The poll stays: a message lost while Redis is away (pub/sub keeps
//! nothing) is caught by the next scan, so pub/sub only makes propagation faster, never
//! necessary.

use super::Cluster;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

impl Cluster {
    fn changes_channel(&self) -> String {
        format!("{}:changes", self.config.key_prefix)
    }

    /// Tells every replica that the uploads changed; never waits past `timeout_ms`, and a
    /// failure is only logged (the others find the change at their next poll).
    pub async fn announce_change(&self) {
        let mut redis = self.redis.clone();
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.changes_channel()).arg(&self.replica);
        let publish = command.query_async::<i64>(&mut redis);
        match tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), publish).await {
            Ok(Ok(_)) => {}
            _ => tracing::debug!("cluster state: announcing a change failed; other replicas find it by polling"),
        }
    }

    /// Notified when another replica announces a change. Starts the subscriber task on the
    /// first call; it reconnects every `retry_ms` while Redis is away, and ends with the
    /// cluster.
    pub fn changes(self: &Arc<Self>) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(self);
        let (client, channel, replica, retry) = (
            self.client.clone(),
            self.changes_channel(),
            self.replica.clone(),
            Duration::from_millis(self.config.retry_ms),
        );
        let notified = Arc::clone(&notify);
        tokio::spawn(async move {
            use futures_util::StreamExt as _;
            loop {
                if weak.strong_count() == 0 {
                    return;
                }
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match tokio::time::timeout(retry, subscribed).await {
                    Ok(Ok(pubsub)) => {
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            if weak.strong_count() == 0 {
                                return;
                            }
                            // A replica's own announcement needs no rescan.
                            if message.get_payload::<String>().is_ok_and(|from| from != replica) {
                                notified.notify_one();
                            }
                        }
                    }
                    _ => tracing::debug!("cluster state: cannot subscribe to changes; retrying"),
                }
                tokio::time::sleep(retry).await;
            }
        });
        notify
    }
}
