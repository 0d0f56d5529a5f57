//! `osmesh`: the CLI. `osmesh demo` starts a region and three clusters in one process;
//! the other commands query a region's HTTP API.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("osmesh: not built yet")
}
