//! `hukou-sync bench`: throughput figures beside the bare limits of this machine, measured in
//! the same run (see BENCHMARKS.md).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Debug, clap::Subcommand)]
enum BenchWhat {
    /// Import N generated children; compare with bare batched inserts into the same backend.
    Import {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Database URL (default: a temporary SQLite file). A PostgreSQL URL gets a fresh schema.
        #[arg(long)]
        database: Option<String>,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        BenchWhat::Import { count, database } => {
            let _ = (count, database);
            anyhow::bail!("not built yet")
        }
    }
}
