use clusterns::feed::checkpoint::{self, Position};
use clusterns::synth;
use clusterns::table::Table;
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(10_000_000);
    let dir = std::path::Path::new("/tmp/ckptprof");
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("t.ckpt");
    if !p.exists() {
        let apps = synth::apps(n, 8, 7);
        let table = Table::build(&apps).unwrap();
        let mut t = table.clone();
        for (i, a) in apps.iter().step_by(10).enumerate() {
            t.upsert(
                a.id.as_str(),
                a.user.as_str(),
                a.slug.as_str(),
                (a.cluster + 1 + i as u16) % 8,
            )
            .unwrap();
        }
        drop(apps);
        let clusters: Vec<String> = (0..8).map(synth::cluster_name).collect();
        checkpoint::write(&p, &t, Position::default(), &clusters).unwrap();
    }
    for _ in 0..3 {
        let s = Instant::now();
        let l = checkpoint::read(&p).unwrap();
        eprintln!(
            "read {:.2} s ({} apps)",
            s.elapsed().as_secs_f64(),
            l.table.len()
        );
    }
}
