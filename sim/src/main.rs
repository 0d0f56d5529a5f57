//! `osmesh-sim`: runs scenario files and swarm seeds (to come with the simulator issue).

fn main() {
    eprintln!("osmesh-sim: the simulator is not built yet");
    std::process::exit(2);
}
