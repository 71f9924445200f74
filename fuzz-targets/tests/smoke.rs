//! The fuzz targets' smoke run, on stable Rust, in every `cargo test --workspace` (and so in CI):
//! each target runs every checked-in seed of `fuzz/corpus/<target>/`, then random mutations of
//! those seeds for a bounded time (2 s per target; `TATMX_FUZZ_SMOKE_SECS` changes it, `0` runs
//! the seeds alone).
//!
//! This is not coverage-guided fuzzing. The mutations (bit flips, byte inserts and deletes,
//! truncation, splicing two seeds, a repeated chunk, interesting values) are blind: nothing
//! steers them towards code no input has reached yet, and seconds of them find only shallow
//! bugs. It catches a target that no longer builds or runs, a seed the code now panics on, and
//! what a few thousand near-seed inputs reach; long, coverage-guided runs are `fuzz/run`'s job.
//!
//! The run is replayable: the seed is printed, and `TATMX_FUZZ_SMOKE_SEED` sets it. Each target
//! draws from its own generator, so its inputs do not depend on how fast the others ran. An input
//! that panics is written under the target directory, and the test fails naming it.
//!
//! ```sh
//! cargo test -p tatmx-fuzz-targets --test smoke -- --nocapture
//! ```

use std::panic;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tatmx_fuzz_targets::{TARGETS, Target};

/// Mutation time per target when `TATMX_FUZZ_SMOKE_SECS` is unset: six targets on two cores
/// keep the whole test near 7 s, inside CI's budget.
const DEFAULT_SECS: f64 = 2.0;

/// Inputs grow by inserts and repeats; past this they are cut, as libFuzzer's `-max_len` does,
/// so that time goes to many inputs rather than to a few huge ones.
const MAX_LEN: usize = 64 * 1024;

/// At most this many mutations are stacked on one seed: enough to move away from it, few enough
/// that most inputs still get past the first parser.
const MAX_STACKED: usize = 4;

/// Byte strings that often sit on a parser's edge: integer limits (little-endian, as protobuf's
/// fixed fields and DER lengths see them), varints that are too long, and the tokens of the text
/// formats (JSON, TOML, PEM, Cedar) with numbers no field can hold and awkward UTF-8.
const INTERESTING: &[&[u8]] = &[
    &[0x00],
    &[0x01],
    &[0x7f],
    &[0x80],
    &[0xff],
    &[0xff, 0xff],
    &[0x00, 0x80],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0x00, 0x00, 0x00, 0x80],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ],
    &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"[[",
    b"=",
    b",",
    b":",
    b"\n",
    b"null",
    b"-1",
    b"0",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\\u0000",
    b"\\ud800",
    "\u{e9}".as_bytes(),
    "\u{10ffff}".as_bytes(),
    b"-----BEGIN X509 CRL-----\n",
    b"-----END X509 CRL-----\n",
    b"permit (principal, action, resource);",
    b"when { ",
    b" }",
];

/// What one target's run came to.
struct Report {
    /// The target's name, as in `fuzz/fuzz_targets/` and `fuzz/corpus/`.
    name: &'static str,
    /// Checked-in seeds read (and each run once).
    seeds: usize,
    /// Inputs run, seeds included.
    executions: u64,
    /// Wall time of the seeds and the mutations.
    elapsed: Duration,
    /// The first input that panicked; the target stops there, as libFuzzer does.
    crash: Option<String>,
}

#[test]
fn every_target_survives_its_seeds_and_random_mutations() {
    let seed = env_seed();
    let budget = env_budget();
    println!(
        "fuzz smoke: seed {seed} (replay with TATMX_FUZZ_SMOKE_SEED={seed}), {:.1} s of mutations per target",
        budget.as_secs_f64()
    );

    // Two cores in CI: one worker per core, each taking the next target until none is left.
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(TARGETS.len());
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&target) = TARGETS.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report = smoke(target, seed, budget);
                    reports
                        .lock()
                        .expect("no worker panics while holding the lock")
                        .push(report);
                }
            });
        }
    });
    let wall = started.elapsed();

    let mut reports = reports.into_inner().expect("the workers are done");
    reports.sort_by_key(|r| TARGETS.iter().position(|(name, _)| *name == r.name));
    println!();
    println!(
        "{:<18} {:>6} {:>11} {:>9}  result",
        "target", "seeds", "executions", "per sec"
    );
    for r in &reports {
        println!(
            "{:<18} {:>6} {:>11} {:>9.0}  {}",
            r.name,
            r.seeds,
            r.executions,
            r.executions as f64 / r.elapsed.as_secs_f64().max(1e-9),
            if r.crash.is_some() { "PANIC" } else { "ok" }
        );
    }
    println!(
        "{} workers, {:.1} s wall, seed {seed}",
        workers,
        wall.as_secs_f64()
    );

    let crashes: Vec<&str> = reports.iter().filter_map(|r| r.crash.as_deref()).collect();
    assert!(
        crashes.is_empty(),
        "{} target(s) panicked (seed {seed}):\n{}",
        crashes.len(),
        crashes.join("\n")
    );
}

/// The smoke test runs what `fuzz/` fuzzes: a target added to one and not the other, or one
/// without seeds, fails here rather than going untested.
#[test]
fn every_fuzz_target_is_smoked_and_seeded() {
    let mut in_fuzz: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    in_fuzz.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    here.sort();
    assert_eq!(
        here, in_fuzz,
        "tatmx_fuzz_targets::TARGETS and fuzz/fuzz_targets/ name different targets"
    );
    for (name, _) in TARGETS {
        assert!(!seeds(name).is_empty(), "fuzz/corpus/{name}/ holds no seed");
    }
}

/// Runs one target: its seeds, then mutations until `budget` is spent or an input panics.
fn smoke((name, run): Target, seed: u64, budget: Duration) -> Report {
    let started = Instant::now();
    let seeds = seeds(name);
    let mut report = Report {
        name,
        seeds: seeds.len(),
        executions: 0,
        elapsed: Duration::ZERO,
        crash: None,
    };
    for (file, input) in &seeds {
        report.executions += 1;
        if let Err(message) = run_one(run, input) {
            let origin = format!("seed {}", file.display());
            report.crash = Some(crash(name, seed, &origin, &message, input));
            report.elapsed = started.elapsed();
            return report;
        }
    }

    // Its own generator, so that the inputs of a target depend on the seed alone.
    let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(name.as_bytes()));
    let pool: Vec<Vec<u8>> = seeds.into_iter().map(|(_, input)| input).collect();
    let deadline = Instant::now() + budget;
    let mut mutation: u64 = 0;
    while Instant::now() < deadline {
        mutation += 1;
        let input = mutate(&mut rng, &pool);
        report.executions += 1;
        if let Err(message) = run_one(run, &input) {
            let origin = format!("mutation {mutation}");
            report.crash = Some(crash(name, seed, &origin, &message, &input));
            break;
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Runs one input, turning a panic into its message.
fn run_one(run: fn(&[u8]), input: &[u8]) -> Result<(), String> {
    panic::catch_unwind(|| run(input)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_owned())
    })
}

/// Keeps a panicking input where it can be replayed, and says how.
fn crash(name: &str, seed: u64, origin: &str, message: &str, input: &[u8]) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-smoke")
        .join(name);
    let path = dir.join(format!("crash-{:016x}", fnv1a(input)));
    let kept = match fs::create_dir_all(&dir).and_then(|()| fs::write(&path, input)) {
        Ok(()) => format!("input written to {}", path.display()),
        Err(e) => format!(
            "input not written to {} ({e}); its {} bytes: {input:02x?}",
            path.display(),
            input.len()
        ),
    };
    let mut report = format!("{name}: {origin} panicked: {message}\n  {kept}");
    // A checked-in seed fails on every run; a mutation needs the seed that made it.
    if !origin.starts_with("seed ") {
        report.push_str(&format!(
            "\n  replay: TATMX_FUZZ_SMOKE_SEED={seed} cargo test -p tatmx-fuzz-targets --test smoke -- --nocapture\
             \n  or copy it into fuzz/corpus/{name}/ to run it with the seeds on every smoke and fuzz run"
        ));
    }
    eprintln!("{report}");
    report
}

/// The seeds of `fuzz/corpus/<name>/`, by file name so that a seed replays the same inputs.
fn seeds(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let input =
                fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path, input)
        })
        .collect()
}

/// One new input: a random seed with one to [`MAX_STACKED`] random mutations.
fn mutate(rng: &mut StdRng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=MAX_STACKED) {
        mutate_once(rng, &mut data, pool);
    }
    data.truncate(MAX_LEN);
    data
}

fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    // Every mutation but an insert needs a byte to work on.
    let kind = if data.is_empty() {
        2
    } else {
        rng.random_range(0..9)
    };
    let len = data.len();
    match kind {
        // Flip one bit.
        0 => {
            let at = rng.random_range(0..len);
            data[at] ^= 1 << rng.random_range(0..8);
        }
        // Set one byte to anything.
        1 => {
            let at = rng.random_range(0..len);
            data[at] = rng.random();
        }
        // Insert a few random bytes.
        2 => {
            let at = rng.random_range(0..=len);
            let bytes: Vec<u8> = (0..rng.random_range(1..=8)).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        // Delete a run of bytes.
        3 => {
            let at = rng.random_range(0..len);
            let end = (at + rng.random_range(1..=32)).min(len);
            data.drain(at..end);
        }
        // Cut the end off.
        4 => data.truncate(rng.random_range(0..len)),
        // Splice: the front of this input, the back of another seed.
        5 => {
            let other = &pool[rng.random_range(0..pool.len())];
            let at = rng.random_range(0..=len);
            let from = rng.random_range(0..=other.len());
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
        // Repeat a chunk: nesting, repeated fields and long strings.
        6 => {
            let at = rng.random_range(0..len);
            let end = (at + rng.random_range(1..=64)).min(len);
            let chunk = data[at..end].to_vec();
            let times = rng.random_range(1..=32);
            let repeated: Vec<u8> = chunk
                .iter()
                .copied()
                .cycle()
                .take(chunk.len() * times)
                .collect();
            data.splice(end..end, repeated);
        }
        // Overwrite with an interesting value.
        7 => {
            let value = INTERESTING[rng.random_range(0..INTERESTING.len())];
            let at = rng.random_range(0..len);
            let end = (at + value.len()).min(len);
            data.splice(at..end, value.iter().copied());
        }
        // Insert an interesting value.
        _ => {
            let value = INTERESTING[rng.random_range(0..INTERESTING.len())];
            let at = rng.random_range(0..=len);
            data.splice(at..at, value.iter().copied());
        }
    }
}

/// `fuzz/`, where the targets' seeds live (as cargo-fuzz expects them).
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz-targets/ sits in the workspace root")
        .join("fuzz")
}

/// The run's seed: `TATMX_FUZZ_SMOKE_SEED`, or a fresh one (printed, so any run can be replayed).
fn env_seed() -> u64 {
    match env::var("TATMX_FUZZ_SMOKE_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("TATMX_FUZZ_SMOKE_SEED={text:?} is not a u64: {e}")),
        Err(_) => rand::random(),
    }
}

/// Mutation time per target: `TATMX_FUZZ_SMOKE_SECS` (fractions allowed), or [`DEFAULT_SECS`].
fn env_budget() -> Duration {
    let secs = match env::var("TATMX_FUZZ_SMOKE_SECS") {
        Ok(text) => text.trim().parse().unwrap_or_else(|e| {
            panic!("TATMX_FUZZ_SMOKE_SECS={text:?} is not a number of seconds: {e}")
        }),
        Err(_) => DEFAULT_SECS,
    };
    Duration::try_from_secs_f64(secs)
        .unwrap_or_else(|e| panic!("TATMX_FUZZ_SMOKE_SECS={secs} is not a duration: {e}"))
}

/// FNV-1a: a stable hash (unlike std's, which is seeded per process) for the crash file's name
/// and for each target's generator seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
