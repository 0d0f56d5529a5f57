//! `clusterd`: the cluster controller (to come with the daemons issue).

fn main() {
    eprintln!("clusterd: not built yet");
    std::process::exit(2);
}
