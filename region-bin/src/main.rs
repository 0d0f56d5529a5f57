//! `regiond`: the region controller (to come with the daemons issue).

fn main() {
    eprintln!("regiond: not built yet");
    std::process::exit(2);
}
