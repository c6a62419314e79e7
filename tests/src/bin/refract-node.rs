//! The `refract` command line, linked into this package so that its end-to-end tests can start
//! real service processes (`CARGO_BIN_EXE_refract-node`) without building the CLI package's
//! binary separately.
//!
//! One extra command, for people: `refract-node cluster` starts the local cluster of the
//! scale-out tests (2 gateways behind a round-robin balancer, 2 runtimes, 2 events, 1
//! workspaces, every one a process of this binary) on the Redis, PostgreSQL and file store of
//! `REFRACT_TEST_REDIS_URL`, `REFRACT_TEST_DATABASE_URL` and `REFRACT_TEST_FILES_URL`, prints
//! where everything is, and runs until Ctrl-C. `REFRACT_CLUSTER_RUNTIMES` changes the number of
//! runtimes (the scale-out benchmark compares 1 and 2). `tests/cluster.sh` wraps it.

use std::process::ExitCode;

use refract_tests::cluster::{LocalCluster, Shape, SharedBackends};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("cluster") {
        return cluster();
    }
    refract::cli::main()
}

fn cluster() -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("refract-node cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let result = async {
            let backends = SharedBackends::from_env().map_err(anyhow::Error::msg)?;
            let bin = std::env::current_exe()?;
            let mut shape = Shape::default();
            if let Ok(n) = std::env::var("REFRACT_CLUSTER_RUNTIMES") {
                shape.runtimes = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    anyhow::anyhow!(
                        "REFRACT_CLUSTER_RUNTIMES={n:?}: expected a number of runtimes, 1 or more"
                    )
                })?;
            }
            let cluster = LocalCluster::start(&bin, &backends, shape).await?;
            println!(
                "Refract cluster {} (Redis namespace and PostgreSQL schema)",
                cluster.namespace
            );
            for (name, url) in cluster.nodes() {
                println!("  {name:5} {url}");
            }
            println!("  logs  {}", cluster.log_dir().display());
            println!("Balancer: {}   (Ctrl-C stops everything)", cluster.url);
            let _ = tokio::signal::ctrl_c().await;
            drop(cluster);
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("refract-node cluster: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
