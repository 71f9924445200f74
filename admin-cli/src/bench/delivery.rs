//! The end-to-end measurements: referrals submitted at one node's Agency API until each is
//! stored at the receiver and acknowledged back, told by the sender's `WatchOutbox`.
//!
//! A referral's latency runs from the moment its `SubmitReferral` call starts to the moment the
//! sender announces the receiver's signed receipt, which the receiver gives only once the
//! referral is on its disk. In protocol version 2 that receipt is also the referral's
//! `received` status: no status update travels back. So once every referral is acknowledged,
//! a run reads the receiver's store and confirms each one there, from the other side.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use serde::Serialize;
use tatmx_proto::v1 as pb;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::federation::NodeProcess;
use super::footprint::received_referrals;
use super::report::Latencies;

/// How long, after the last submission, a run waits for the stragglers' acknowledgements.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// What one delivery run did.
#[derive(Debug, Serialize)]
pub struct DeliveryOutcome {
    /// Referrals submitted.
    pub sent: usize,
    /// Distinct referrals the sender holds a receipt for.
    pub acknowledged: usize,
    /// Distinct referrals the receiver's store holds, read there after the run.
    pub confirmed_by_receiver: usize,
    /// Submitted but never acknowledged.
    pub lost: usize,
    /// Acknowledgements beyond the first for the same referral.
    pub duplicated: usize,
    /// Dead letters.
    pub dead: usize,
    /// From the first submission to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged referrals per second over that time.
    pub per_second: f64,
    /// Submission to acknowledgement.
    pub latency: Latencies,
    /// Most resident memory seen at the sender and the receiver during the run.
    pub peak_rss_sender: u64,
    /// Likewise at the receiver.
    pub peak_rss_receiver: u64,
}

/// How referrals are offered.
#[derive(Debug, Clone, Copy)]
pub enum Offered {
    /// As fast as `concurrency` callers can submit.
    MaxRate { concurrency: usize },
    /// At a fixed rate, each at its scheduled time whether or not earlier ones finished.
    Fixed { per_second: f64 },
}

/// Watches a node's outbox and records when each message settles.
struct Watch {
    settled: Arc<Mutex<Settled>>,
    task: JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
struct Settled {
    /// Referral id → when its referral message was acknowledged.
    referrals: HashMap<String, Instant>,
    duplicated: usize,
    dead: usize,
}

impl Watch {
    async fn start(node: &NodeProcess) -> anyhow::Result<Self> {
        let mut stream = tatmx_node::client::agency(&node.team.agency_socket())
            .await?
            .watch_outbox(pb::WatchOutboxRequest {})
            .await
            .context("cannot watch the outbox")?
            .into_inner();
        let settled = Arc::new(Mutex::new(Settled::default()));
        let sink = settled.clone();
        let task = tokio::spawn(async move {
            while let Some(entry) = stream.message().await? {
                let now = Instant::now();
                let mut settled = sink.lock().await;
                if entry.state == pb::DeliveryState::Dead as i32 {
                    settled.dead += 1;
                } else if entry.kind == pb::MessageKind::Referral as i32
                    && settled.referrals.insert(entry.referral_id, now).is_some()
                {
                    settled.duplicated += 1;
                }
            }
            Ok(())
        });
        Ok(Self { settled, task })
    }

    /// Waits until every id in `ids` is acknowledged, the watch fails, or `limit` passes.
    async fn until_all(
        &self,
        ids: &HashSet<String>,
        limit: Duration,
        progress: &ProgressBar,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.task.is_finished() {
                bail!("the sender's outbox watch ended early");
            }
            // Counting every settled message is cheap; matching them against `ids` is not,
            // and this harness shares the cores with the nodes it measures. So match only once
            // the count says it can be done.
            let acknowledged = self.settled.lock().await.referrals.len();
            progress.set_position(acknowledged.min(ids.len()) as u64);
            if (acknowledged >= ids.len() && self.all_in(ids).await) || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether every id in `ids` is acknowledged.
    async fn all_in(&self, ids: &HashSet<String>) -> bool {
        let settled = self.settled.lock().await;
        ids.iter().all(|id| settled.referrals.contains_key(id))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Submits `count` referrals from `sender` to the receiver named in `draft`, offered as `how`,
/// waits until each is acknowledged, and then looks for each in `receiver`'s store.
pub async fn run(
    sender: &NodeProcess,
    receiver: &NodeProcess,
    draft: &pb::NewReferral,
    count: usize,
    how: Offered,
    progress: &ProgressBar,
) -> anyhow::Result<DeliveryOutcome> {
    let acks = Watch::start(sender).await?;
    progress.set_length(count as u64);
    progress.set_position(0);

    let peak = PeakRss::start(sender, receiver)?;
    let started = Instant::now();
    let submitted = submit_all(sender, draft, count, how).await?;
    let ids: HashSet<String> = submitted.keys().cloned().collect();
    acks.until_all(&ids, SETTLE_LIMIT, progress).await?;
    let (peak_rss_sender, peak_rss_receiver) = peak.finish().await;
    // The receiver commits a referral before it signs the receipt, so every acknowledged one
    // is in its store by now.
    let held = received_referrals(&receiver.team.store).await?;

    let settled = acks.settled.lock().await;
    let mut latency = Latencies::new()?;
    let mut last = started;
    for (id, at) in &submitted {
        if let Some(acked) = settled.referrals.get(id) {
            latency.record(acked.saturating_duration_since(*at))?;
            last = last.max(*acked);
        }
    }
    let acknowledged = ids
        .iter()
        .filter(|id| settled.referrals.contains_key(*id))
        .count();
    let seconds = last.duration_since(started).as_secs_f64();
    Ok(DeliveryOutcome {
        sent: count,
        acknowledged,
        confirmed_by_receiver: ids.iter().filter(|id| held.contains(*id)).count(),
        lost: count - acknowledged,
        duplicated: settled.duplicated,
        dead: settled.dead,
        seconds,
        per_second: if seconds > 0.0 {
            acknowledged as f64 / seconds
        } else {
            0.0
        },
        latency,
        peak_rss_sender,
        peak_rss_receiver,
    })
}

/// What a backlog drain did.
#[derive(Debug, Serialize)]
pub struct DrainOutcome {
    /// Referrals queued while the receiver was down.
    pub queued: usize,
    /// Queued per second at the sender, with nobody to deliver to.
    pub queued_per_second: f64,
    /// Distinct referrals acknowledged after the receiver came back.
    pub acknowledged: usize,
    /// Queued but never acknowledged.
    pub lost: usize,
    /// From the receiver serving again to the last acknowledgement.
    pub seconds: f64,
    /// Acknowledged referrals per second over that time.
    pub per_second: f64,
    /// The sender's resident memory before the referrals were queued, in bytes.
    pub rss_before_sender: u64,
    /// The receiver's once it serves again, before it has received anything.
    pub rss_before_receiver: u64,
    /// The sender's right after the last acknowledgement.
    pub rss_after_sender: u64,
    /// The receiver's at the same moment.
    pub rss_after_receiver: u64,
}

/// Queues `count` referrals while the receiver is stopped, restarts it, and times the drain.
pub async fn drain<F, Fut>(
    sender: &NodeProcess,
    receiver: NodeProcess,
    restart: F,
    draft: &pb::NewReferral,
    count: usize,
    concurrency: usize,
    progress: &ProgressBar,
) -> anyhow::Result<(DrainOutcome, NodeProcess)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<NodeProcess>>,
{
    receiver.stop().await?;
    let rss_before_sender = sender.rss()?;
    let acks = Watch::start(sender).await?;
    progress.set_length(count as u64);
    progress.set_position(0);
    progress.set_message("queueing while the receiver is down");
    let queueing = Instant::now();
    let submitted = submit_all(sender, draft, count, Offered::MaxRate { concurrency }).await?;
    let queued_seconds = queueing.elapsed().as_secs_f64();
    let ids: HashSet<String> = submitted.keys().cloned().collect();

    progress.set_message("draining to the restarted receiver");
    let receiver = restart().await?;
    let back = Instant::now();
    let rss_before_receiver = receiver.rss()?;
    acks.until_all(
        &ids,
        SETTLE_LIMIT + Duration::from_secs(count as u64 / 200),
        progress,
    )
    .await?;
    let (rss_after_sender, rss_after_receiver) = (sender.rss()?, receiver.rss()?);
    let settled = acks.settled.lock().await;
    let acknowledged: Vec<Instant> = ids
        .iter()
        .filter_map(|id| settled.referrals.get(id).copied())
        .collect();
    let last = acknowledged.iter().copied().max().unwrap_or(back);
    let seconds = last.saturating_duration_since(back).as_secs_f64();
    Ok((
        DrainOutcome {
            queued: count,
            queued_per_second: count as f64 / queued_seconds.max(f64::EPSILON),
            acknowledged: acknowledged.len(),
            lost: count - acknowledged.len(),
            seconds,
            per_second: acknowledged.len() as f64 / seconds.max(f64::EPSILON),
            rss_before_sender,
            rss_before_receiver,
            rss_after_sender,
            rss_after_receiver,
        },
        receiver,
    ))
}

/// What a consultation fan-out did.
#[derive(Debug, Serialize)]
pub struct FanOutOutcome {
    /// Partners asked.
    pub partners: usize,
    /// Partners whose copy was acknowledged.
    pub acknowledged: usize,
    /// From the request to the first and to the last acknowledgement.
    pub first_ms: f64,
    /// To the last.
    pub last_ms: f64,
}

/// One consultation from `core` to every partner in `partners`, until each copy is
/// acknowledged.
pub async fn fan_out(
    core: &NodeProcess,
    case: &pb::NewReferral,
    partners: &[String],
    progress: &ProgressBar,
) -> anyhow::Result<FanOutOutcome> {
    let acks = Watch::start(core).await?;
    progress.set_length(partners.len() as u64);
    progress.set_position(0);
    let started = Instant::now();
    let consultation = tatmx_node::client::agency(&core.team.agency_socket())
        .await?
        .request_consultation(pb::RequestConsultationRequest {
            partners: partners.to_vec(),
            question: "Does this pattern of behaviour suggest movement toward an attack?".into(),
            due: None,
            referral: Some(case.clone()),
        })
        .await
        .context("the consultation was refused")?
        .into_inner();
    let ids: HashSet<String> = consultation
        .answers
        .iter()
        .map(|a| a.referral_id.clone())
        .collect();
    acks.until_all(&ids, SETTLE_LIMIT, progress).await?;
    let settled = acks.settled.lock().await;
    let times: Vec<Duration> = ids
        .iter()
        .filter_map(|id| settled.referrals.get(id))
        .map(|at| at.saturating_duration_since(started))
        .collect();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok(FanOutOutcome {
        partners: partners.len(),
        acknowledged: times.len(),
        first_ms: ms(times.iter().min()),
        last_ms: ms(times.iter().max()),
    })
}

/// Submits `count` copies of `draft` and returns each referral's id with the moment its
/// submission started.
async fn submit_all(
    sender: &NodeProcess,
    draft: &pb::NewReferral,
    count: usize,
    how: Offered,
) -> anyhow::Result<HashMap<String, Instant>> {
    let client = tatmx_node::client::agency(&sender.team.agency_socket()).await?;
    let submit = move |mut client: pb::agency_client::AgencyClient<_>, draft: pb::NewReferral| async move {
        let at = Instant::now();
        let response = client
            .submit_referral(pb::SubmitReferralRequest {
                referral: Some(draft),
                dry_run: false,
                idempotency_key: String::new(),
            })
            .await
            .context("a submission was refused")?
            .into_inner();
        anyhow::Ok((response.referral_id, at))
    };
    let mut tasks = Vec::with_capacity(count);
    match how {
        Offered::MaxRate { concurrency } => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency.max(1) {
                let next = next.clone();
                let client = client.clone();
                let draft = draft.clone();
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        mine.push(submit(client.clone(), draft.clone()).await?);
                    }
                    anyhow::Ok(mine)
                }));
            }
        }
        Offered::Fixed { per_second } => {
            let interval = Duration::from_secs_f64(1.0 / per_second.max(1.0));
            let start = tokio::time::Instant::now();
            for i in 0..count {
                tokio::time::sleep_until(start + interval * i as u32).await;
                let client = client.clone();
                let draft = draft.clone();
                tasks.push(tokio::spawn(async move {
                    Ok(vec![submit(client, draft).await?])
                }));
            }
        }
    }
    let mut submitted = HashMap::with_capacity(count);
    for task in tasks {
        for (id, at) in task.await.context("a submitting task failed")?? {
            submitted.insert(id, at);
        }
    }
    Ok(submitted)
}

/// Samples two processes' resident memory every 50 ms and keeps the highest.
struct PeakRss {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<(u64, u64)>,
}

impl PeakRss {
    fn start(sender: &NodeProcess, receiver: &NodeProcess) -> anyhow::Result<Self> {
        let mut peak = (sender.rss()?, receiver.rss()?);
        let pids = (sender.pid()?, receiver.pid()?);
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(rss) = super::federation::rss_of(pids.0) {
                    peak.0 = peak.0.max(rss);
                }
                if let Ok(rss) = super::federation::rss_of(pids.1) {
                    peak.1 = peak.1.max(rss);
                }
                tokio::select! {
                    _ = &mut stopped => return peak,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        Ok(Self { stop, task })
    }

    async fn finish(self) -> (u64, u64) {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
