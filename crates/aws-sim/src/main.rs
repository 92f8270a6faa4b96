//! `aws-sim --scenario FILE --port P`: the simulator as a process on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "aws-sim",
    version,
    about = "A simulated AWS (STS, IAM, Organizations, S3) with fault injection"
)]
struct Args {
    /// Scenario file (YAML or JSON).
    #[arg(long)]
    scenario: PathBuf,
    /// Port on 127.0.0.1 (0 for any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let scenario = match aws_sim::Scenario::from_file(&args.scenario) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    let sim = match aws_sim::start_on(scenario, SocketAddr::from(([127, 0, 0, 1], args.port))).await
    {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(1);
        }
    };
    println!("aws-sim listening on {}", sim.base_url);
    println!("export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=AKIDHUB AWS_SECRET_ACCESS_KEY=hub AWS_REGION=us-east-1", sim.base_url);
    let _ = tokio::signal::ctrl_c().await;
    let stats = sim.stats();
    println!(
        "served {} requests ({} throttled)",
        stats.requests,
        stats.throttles.values().sum::<u64>()
    );
    sim.shutdown().await;
    ExitCode::SUCCESS
}
