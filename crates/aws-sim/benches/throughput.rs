//! Simulator throughput with latency injection off: `cargo bench -p aws-sim --bench throughput`.
//! Drives IAM ListRoles and the Access Advisor calls over keep-alive HTTP connections from the
//! same process, so the figure is a lower bound (client and server share the machine's cores).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 32;
const RUN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let sim = aws_sim::start(aws_sim::Scenario::generated(1, 10, 40))
        .await
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let url = sim.base_url.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let account = format!("{:012}", 100_000_000_000u64 + (worker % 10) as u64);
            let key = format!("ASIA{account}0001");
            let auth = format!("AWS4-HMAC-SHA256 Credential={key}/20261124/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0");
            let bodies = [
                "Action=ListRoles&Version=2010-05-08&MaxItems=20".to_owned(),
                format!("Action=GenerateServiceLastAccessedDetails&Version=2010-05-08&Arn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Frole-0001"),
            ];
            let mut n = 0usize;
            while started.elapsed() < RUN {
                let reply = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(bodies[n % 2].clone())
                    .send()
                    .await
                    .unwrap();
                assert!(reply.status().is_success());
                reply.bytes().await.unwrap();
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    println!("aws-sim throughput: {total} requests in {elapsed:.2} s = {:.0} requests/s ({CONNECTIONS} connections, latency off)", total as f64 / elapsed);
    sim.shutdown().await;
}
