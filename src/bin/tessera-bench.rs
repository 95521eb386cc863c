//! `tessera-bench`: helpers for scale runs (issue 17, docs/SCALING.md).
//!
//! - `gen`: a synthetic multi-vector collection with queries, as pre-encoded vectors
//!   directories (`tessera index --vectors DIR/corpus`, `tessera eval --query-vectors
//!   DIR/queries`). Streamed to disk block by block: 20 M x 384 f16 vectors (15 GB) need
//!   a few hundred MB of memory.
//!
//! The model (documented in `--help`): a vocabulary of word centres on the unit sphere;
//! each topic prefers a Zipf-weighted subset of the words; a document mixes one to three
//! topics, and each of its token vectors is `normalize(word + context * doc_centre +
//! noise)`, so vectors cluster by word (what PLAID's centroids exploit) and correlate
//! within a document (what MaxSim exploits). Queries are drawn about one target
//! document: part of its words with the document's direction, so each query has one
//! relevant document (OUT/qrels/test.tsv) and exhaustive MaxSim over the queries is the
//! ground truth for the approximate modes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use half::f16;
use npyz::WriterBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[derive(Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Scale-run helpers for Tessera"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a synthetic collection: OUT/corpus and OUT/queries, each with vectors.npy
    /// (f16), offsets.npy and ids.txt. Deterministic for a given seed and settings.
    Gen(GenArgs),
}

#[derive(clap::Args, Clone)]
struct GenArgs {
    /// Output directory (OUT/corpus, OUT/queries).
    #[arg(long)]
    out: PathBuf,
    /// Vector dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Document token vectors to write in all (documents are added until this is
    /// reached; the last one is cut to fit).
    #[arg(long)]
    vectors: u64,
    /// Tokens per document, drawn uniformly from MIN..=MAX.
    #[arg(long, default_value = "40..=160", value_parser = parse_range)]
    doc_len: (usize, usize),
    /// Queries to write.
    #[arg(long, default_value_t = 50)]
    queries: usize,
    /// Tokens per query.
    #[arg(long, default_value_t = 32)]
    query_len: usize,
    /// Word centres (the vocabulary).
    #[arg(long, default_value_t = 32768)]
    words: usize,
    /// Topics; each prefers `--topic-words` of the words.
    #[arg(long, default_value_t = 1024)]
    topics: usize,
    #[arg(long, default_value_t = 256)]
    topic_words: usize,
    /// Weight of the document's own direction in each of its tokens.
    #[arg(long, default_value_t = 0.35)]
    context: f32,
    /// Norm of each token's independent noise.
    #[arg(long, default_value_t = 0.45)]
    noise: f32,
    /// Share of a query's tokens that are words of its target document (the rest are
    /// words of the document's topics).
    #[arg(long, default_value_t = 0.5)]
    query_overlap: f32,
    #[arg(long, default_value_t = 17)]
    seed: u64,
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s
        .split_once("..=")
        .ok_or_else(|| format!("{s:?}: expected MIN..=MAX"))?;
    let a: usize = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: usize = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a == 0 || b < a {
        return Err(format!("{s:?}: need 1 <= MIN <= MAX"));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Gen(args) => gen(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A uniform random unit vector (noise per coordinate uniform: cheap, and after
/// normalisation close enough to isotropic for a benchmark).
fn unit(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| rng.gen::<f32>() - 0.5).collect();
    normalize(&mut v);
    v
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// The words, topics and their Zipf tables.
struct World {
    dim: usize,
    words: Vec<Vec<f32>>,
    topic_centres: Vec<Vec<f32>>,
    /// Per topic: its words and the cumulative Zipf weights over them.
    topic_words: Vec<Vec<u32>>,
    zipf_cdf: Vec<f64>,
    context: f32,
    noise: f32,
}

impl World {
    fn new(a: &GenArgs) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
        let words: Vec<Vec<f32>> = (0..a.words).map(|_| unit(&mut rng, a.dim)).collect();
        let topic_centres: Vec<Vec<f32>> = (0..a.topics).map(|_| unit(&mut rng, a.dim)).collect();
        let topic_words: Vec<Vec<u32>> = (0..a.topics)
            .map(|_| {
                (0..a.topic_words)
                    .map(|_| rng.gen_range(0..a.words as u32))
                    .collect()
            })
            .collect();
        let mut zipf_cdf = Vec::with_capacity(a.topic_words);
        let mut acc = 0.0;
        for r in 0..a.topic_words {
            acc += 1.0 / (r as f64 + 1.0);
            zipf_cdf.push(acc);
        }
        zipf_cdf.iter_mut().for_each(|c| *c /= acc);
        World {
            dim: a.dim,
            words,
            topic_centres,
            topic_words,
            zipf_cdf,
            context: a.context,
            noise: a.noise,
        }
    }

    /// A text's plan: its direction (the normalised mean of its 1-3 topic centres) and
    /// `len` words drawn from its topics' Zipf tables.
    fn plan(&self, rng: &mut ChaCha8Rng, len: usize) -> Plan {
        let n_topics = rng.gen_range(1..=3usize);
        let topics: Vec<usize> = (0..n_topics)
            .map(|_| rng.gen_range(0..self.topic_centres.len()))
            .collect();
        let mut centre = vec![0f32; self.dim];
        for &t in &topics {
            for (c, x) in centre.iter_mut().zip(&self.topic_centres[t]) {
                *c += x;
            }
        }
        normalize(&mut centre);
        let words = (0..len).map(|_| self.topic_word(rng, &topics)).collect();
        Plan {
            topics,
            centre,
            words,
        }
    }

    fn topic_word(&self, rng: &mut ChaCha8Rng, topics: &[usize]) -> u32 {
        let t = topics[rng.gen_range(0..topics.len())];
        let u: f64 = rng.gen();
        let r = self
            .zipf_cdf
            .partition_point(|&c| c < u)
            .min(self.zipf_cdf.len() - 1);
        self.topic_words[t][r]
    }

    /// The token vectors (f16, row-major) of `words` in a text of direction `centre`:
    /// `normalize(word + context * centre + noise)` each.
    fn render(&self, rng: &mut ChaCha8Rng, centre: &[f32], words: &[u32], out: &mut Vec<f16>) {
        let dim = self.dim;
        // Uniform coordinates in [-h, h] have variance h^2 / 3: the noise vector's norm
        // is about `noise`.
        let h = self.noise * (3.0 / dim as f32).sqrt();
        let mut v = vec![0f32; dim];
        for &w in words {
            let word = &self.words[w as usize];
            for i in 0..dim {
                v[i] = word[i] + self.context * centre[i] + h * (2.0 * rng.gen::<f32>() - 1.0);
            }
            normalize(&mut v);
            out.extend(v.iter().map(|&x| f16::from_f32(x)));
        }
    }

    /// One document: planned, then rendered (the generator's draws in this order, so a
    /// block can be replayed to recover a document's plan).
    fn document(&self, rng: &mut ChaCha8Rng, len: usize, out: &mut Vec<f16>) -> Plan {
        let plan = self.plan(rng, len);
        self.render(rng, &plan.centre, &plan.words, out);
        plan
    }
}

/// What a text is made of.
struct Plan {
    topics: Vec<usize>,
    centre: Vec<f32>,
    words: Vec<u32>,
}

/// Writes one vectors directory: vectors.npy streamed, offsets and ids at the end.
struct DirWriter {
    dir: PathBuf,
    npy: npyz::NpyWriter<f16, BufWriter<File>>,
    offsets: Vec<i64>,
    ids: Vec<String>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl DirWriter {
    fn create(dir: &Path, dim: usize, rows: u64) -> Result<DirWriter, String> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join("vectors.npy");
        let file = File::create(&path).map_err(|e| io_err(&path, e))?;
        let npy = npyz::WriteOptions::<f16>::new()
            .default_dtype()
            .shape(&[rows, dim as u64])
            .writer(BufWriter::with_capacity(1 << 22, file))
            .begin_nd()
            .map_err(|e| io_err(&path, e))?;
        Ok(DirWriter {
            dir: dir.to_path_buf(),
            npy,
            offsets: vec![0],
            ids: Vec::new(),
        })
    }

    fn add(&mut self, id: String, rows: &[f16], dim: usize) -> Result<(), String> {
        self.npy
            .extend(rows.iter().copied())
            .map_err(|e| io_err(&self.dir.join("vectors.npy"), e))?;
        let last = *self.offsets.last().unwrap();
        self.offsets.push(last + (rows.len() / dim) as i64);
        self.ids.push(id);
        Ok(())
    }

    fn finish(self) -> Result<(), String> {
        let vpath = self.dir.join("vectors.npy");
        self.npy.finish().map_err(|e| io_err(&vpath, e))?;
        let opath = self.dir.join("offsets.npy");
        let file = File::create(&opath).map_err(|e| io_err(&opath, e))?;
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[self.offsets.len() as u64])
            .writer(BufWriter::new(file))
            .begin_nd()
            .map_err(|e| io_err(&opath, e))?;
        w.extend(self.offsets.iter().copied())
            .map_err(|e| io_err(&opath, e))?;
        w.finish().map_err(|e| io_err(&opath, e))?;
        let ipath = self.dir.join("ids.txt");
        let mut f = BufWriter::new(File::create(&ipath).map_err(|e| io_err(&ipath, e))?);
        for id in &self.ids {
            writeln!(f, "{id}").map_err(|e| io_err(&ipath, e))?;
        }
        f.flush().map_err(|e| io_err(&ipath, e))
    }
}

/// Documents drawn per parallel block (each block has its own seeded generator, so the
/// output does not depend on the number of threads).
const BLOCK_DOCS: usize = 512;

/// Document `target`'s plan, by replaying its block's generator.
fn replay(world: &World, seed: u64, lens: &[usize], target: usize) -> Plan {
    let b = target / BLOCK_DOCS;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1 + b as u64));
    let mut scratch = Vec::new();
    let mut d = b * BLOCK_DOCS;
    loop {
        scratch.clear();
        let plan = world.document(&mut rng, lens[d], &mut scratch);
        if d == target {
            return plan;
        }
        d += 1;
    }
}

fn gen(a: &GenArgs) -> Result<(), String> {
    if a.dim == 0 || a.vectors == 0 || a.words == 0 || a.topics == 0 || a.topic_words == 0 {
        return Err(
            "--dim, --vectors, --words, --topics and --topic-words must be positive".into(),
        );
    }
    let started = Instant::now();
    let world = World::new(a);
    let dim = a.dim;
    // Document lengths first (cheap, sequential): they fix the row count in the header.
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ 0x5eed_1e55);
    let mut lens = Vec::new();
    let mut total = 0u64;
    while total < a.vectors {
        let l = rng.gen_range(a.doc_len.0..=a.doc_len.1) as u64;
        let l = l.min(a.vectors - total);
        lens.push(l as usize);
        total += l;
    }
    let mut corpus = DirWriter::create(&a.out.join("corpus"), dim, total)?;
    let blocks = lens.len().div_ceil(BLOCK_DOCS);
    let threads = rayon::current_num_threads().max(1);
    let mut written = 0usize;
    let mut last_report = Instant::now();
    for group in (0..blocks).collect::<Vec<_>>().chunks(threads * 2) {
        let drawn: Vec<Vec<f16>> = group
            .par_iter()
            .map(|&b| {
                let mut rng = ChaCha8Rng::seed_from_u64(a.seed.wrapping_add(1 + b as u64));
                let docs = &lens[b * BLOCK_DOCS..((b + 1) * BLOCK_DOCS).min(lens.len())];
                let mut out = Vec::with_capacity(docs.iter().sum::<usize>() * dim);
                for &l in docs {
                    world.document(&mut rng, l, &mut out);
                }
                out
            })
            .collect();
        for (&b, rows) in group.iter().zip(&drawn) {
            let mut at = 0;
            let first = b * BLOCK_DOCS;
            let block = &lens[first..((b + 1) * BLOCK_DOCS).min(lens.len())];
            for (d, &len) in (first..).zip(block) {
                let n = len * dim;
                corpus.add(format!("d{d}"), &rows[at..at + n], dim)?;
                at += n;
            }
            written += lens[b * BLOCK_DOCS..((b + 1) * BLOCK_DOCS).min(lens.len())]
                .iter()
                .sum::<usize>();
        }
        if last_report.elapsed().as_secs() >= 10 {
            eprintln!(
                "  {written} / {total} vectors ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    corpus.finish()?;
    // Each query is about one target document: `--query-overlap` of its tokens are
    // words of that document, the rest words of the document's topics, all rendered with
    // the document's direction and fresh noise. The target is the query's one relevant
    // document (qrels/test.tsv); the exhaustive top-k around it is the ground truth the
    // benchmarks compare with.
    let mut queries = DirWriter::create(
        &a.out.join("queries"),
        dim,
        (a.queries * a.query_len) as u64,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ 0x9e37_79b9);
    let mut rows = Vec::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for q in 0..a.queries {
        let target = rng.gen_range(0..lens.len());
        let plan = replay(&world, a.seed, &lens, target);
        let words: Vec<u32> = (0..a.query_len)
            .map(|_| match rng.gen::<f32>() < a.query_overlap {
                true => plan.words[rng.gen_range(0..plan.words.len())],
                false => world.topic_word(&mut rng, &plan.topics),
            })
            .collect();
        rows.clear();
        world.render(&mut rng, &plan.centre, &words, &mut rows);
        queries.add(format!("q{q}"), &rows, dim)?;
        qrels.push_str(&format!("q{q}\td{target}\t1\n"));
    }
    queries.finish()?;
    let qdir = a.out.join("qrels");
    std::fs::create_dir_all(&qdir).map_err(|e| io_err(&qdir, e))?;
    std::fs::write(qdir.join("test.tsv"), qrels).map_err(|e| io_err(&qdir, e))?;
    let summary = serde_json::json!({
        "out": a.out,
        "dim": dim,
        "documents": lens.len(),
        "vectors": total,
        "queries": a.queries,
        "query_len": a.query_len,
        "words": a.words,
        "topics": a.topics,
        "topic_words": a.topic_words,
        "context": a.context,
        "noise": a.noise,
        "query_overlap": a.query_overlap,
        "seed": a.seed,
        "seconds": started.elapsed().as_secs_f64(),
    });
    std::fs::write(
        a.out.join("synthetic.json"),
        serde_json::to_string_pretty(&summary).expect("serialises"),
    )
    .map_err(|e| io_err(&a.out.join("synthetic.json"), e))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).expect("serialises")
    );
    Ok(())
}
