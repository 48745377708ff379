//! A call's place in its tenant's quotas across the cluster (`[cluster]`): one admission on
//! the shared state for the rate and a concurrency lease, held until the call ends. When
//! the shared state cannot answer, `cluster.on_unavailable` decides: this replica's share
//! of the tenant's limits (`local`), or `503 cluster_unavailable` (`reject`). Without a
//! cluster nothing happens here: the tenant's local slot and rate token are the quota.

use super::App;
use super::problem::Problem;
use super::request::{refusal_problem, reject};
use axum::http::StatusCode;
use tta_cluster::{Admission, Lease, Quota};
use tta_core::config::OnUnavailable;
use tta_runtime::tenant::{Refusal, Tenant};

/// Whether the tenant's rate token is the shared state's to take (with a cluster) rather
/// than the local bucket's.
pub(crate) fn shared(app: &App) -> bool {
    app.cluster.is_some()
}

/// Admits a call that holds its local slot into the tenant's shared quotas; the lease (if
/// any) must be held until the call ends. `None` without a cluster, or when the fallback
/// admitted it locally.
pub(crate) async fn admit(app: &App, tenant: &Tenant) -> Result<Option<Lease>, Problem> {
    let Some(cluster) = &app.cluster else {
        return Ok(None);
    };
    let rate = tenant.rate();
    let quota = Quota {
        max_concurrent: tenant.max_concurrent,
        rate,
    };
    match cluster.admit(&tenant.id, quota).await {
        Admission::Admitted(lease) => Ok(Some(lease)),
        Admission::RateLimited(retry_after) => Err(refusal_problem(
            app,
            tenant,
            Refusal::RateLimited {
                rate: rate.map_or(0.0, |(r, _)| r),
                retry_after,
            },
        )),
        Admission::TooManyInFlight => Err(refusal_problem(
            app,
            tenant,
            Refusal::TooManyInFlight {
                limit: tenant.max_concurrent,
            },
        )),
        Admission::Unavailable(reason) => {
            cluster.count_fallback(reason);
            match cluster.on_unavailable() {
                OnUnavailable::Local => {
                    let share = cluster.replicas();
                    tenant
                        .check_concurrency_share(share)
                        .and_then(|()| tenant.take_rate_share(share))
                        .map_err(|refusal| refusal_problem(app, tenant, refusal))?;
                    Ok(None)
                }
                OnUnavailable::Reject => {
                    reject(app, "cluster_unavailable", &tenant.id);
                    Err(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cluster_unavailable",
                        "the cluster's shared state (Redis) is not answering and this host refuses calls it cannot count (`cluster.on_unavailable = \"reject\"`); retry after the time in `Retry-After`",
                    )
                    .retry_after(cluster.retry_after()))
                }
            }
        }
    }
}
