//! `wire-budget`: lmbench's TTFT and chunk gaps against the packets of the same run.
//!
//! ```sh
//! cargo run --release --example loadgen -- wire-budget   # needs tshark, and root to capture
//! ```
//!
//! `error-budget` compares what lmbench measures with what the simulated engine was told to do.
//! This mode compares it with what crossed the loopback interface: for each stream count it
//! starts the engine (fixed mode), starts tshark on `lo` with the filter `tcp port <engine
//! port>`, runs the same closed-loop load through `drive` (the real runner, client and
//! collector), stops tshark, and matches every measured request's record with its packets.
//!
//! Matching. The TCP bytes of each direction of each connection are put back in sequence
//! order, each byte keeping the capture time of the first packet that carried it
//! (retransmitted copies are ignored; a hole, where a packet went missing, ends what is used of
//! that direction). The client's bytes are cut into HTTP/1.1 requests (head up to the blank
//! line, then `content-length` bytes of body); each request is identified by the `x-user-id`
//! header lmbench sends (the example's user id is the request id). The server's bytes are cut
//! into responses (head, then the body de-chunked when `transfer-encoding: chunked`); the k-th
//! response on a connection answers its k-th request (HTTP/1.1 without pipelining). The body
//! goes through lmbench's own SSE decoder one packet's worth at a time, so every event comes
//! out at the packet that completes it: the packet that carries its last byte (the end of the
//! blank line that closes it), which is the first moment the client can read the whole event.
//! Several events in one packet share its time, and an event split over packets belongs to
//! the last of them. A content event is one whose first choice has non-empty `text`,
//! `delta.content` or reasoning (as the client counts them); events after `[DONE]` are ignored.
//!
//! Times. Wire send time: the capture time of the packet carrying the request's first byte.
//! Wire first token: the packet completing the first content event; wire chunk times: the
//! packets completing each content event. lmbench's times are seconds since the run's epoch
//! (an `Instant`, CLOCK_MONOTONIC), the capture's are CLOCK_REALTIME: every figure compared is
//! a difference within one clock (TTFT: first chunk − send; a gap: chunk − previous chunk), so
//! the offset between the two clocks cancels and is never needed. Only the split of the TTFT
//! difference into a send side and a read side needs it: it is placed by causality (a packet
//! is captured after lmbench stamps its send and before lmbench stamps its read), which brackets
//! the offset to within the smallest send plus the smallest read delay of the run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use lmbench::client::{SseDecoder, SseEvent};
use lmbench::record::RequestRecord;
use serde_json::Value;

use super::{
    check_open_files, clear_dir, client_for, drive, failures, fixed_engine, machine, opt, p,
    proc_cpu_s, records_dir, runtime, CpuUse, ErrorBudgetArgs, Load, RunnerOn, Schedule, Sim,
    SimPlace,
};

#[derive(Debug, Clone, Args)]
pub(super) struct WireBudgetArgs {
    /// The same runs as error-budget (streams, engine timings, durations): each one captured.
    #[command(flatten)]
    run: ErrorBudgetArgs,
    /// tshark's capture buffer (`-B`), MiB: where the kernel keeps packets until dumpcap has
    /// written them out.
    #[arg(long, default_value_t = 512)]
    capture_buffer_mib: u32,
    /// The interface to capture on (the engine listens on 127.0.0.1).
    #[arg(long, default_value = "lo")]
    interface: String,
    /// Keep the packet captures (`wire-<streams>.pcap`) in this directory.
    #[arg(long)]
    keep_capture: Option<PathBuf>,
}

const TSHARK_MISSING: &str = "wire-budget captures the loopback traffic with tshark, which is \
    not installed (or not on PATH). Install it (Debian/Ubuntu: \
    `DEBIAN_FRONTEND=noninteractive apt-get install -y tshark`) and run as root, or as a user \
    allowed to capture (the `wireshark` group)";

pub(super) fn wire_budget(a: &WireBudgetArgs) -> anyhow::Result<()> {
    let c = &a.run.common;
    a.run.check()?;
    let tshark = tshark_version()?;
    let nofile = raise_open_files_limit()?;
    let most = a.run.streams.iter().copied().max().unwrap_or(1);
    check_open_files(most * if c.sim == SimPlace::Thread { 2 } else { 1 } + 256);
    println!("# lmbench TTFT and chunk gaps against the wire");
    println!("machine: {}", machine());
    let [engine, load] = a.run.setup_lines();
    println!("{engine}");
    println!("{load}; open-files limit {nofile}");
    println!(
        "capture: {tshark}, `-i {} -f 'tcp port <engine port>' -B {} -F pcap` (µs timestamps), \
         one capture per N, running through warmup and measurement",
        a.interface, a.capture_buffer_mib
    );
    println!(
        "TTFT Δ = lmbench's TTFT (read of the first content chunk − send stamp) − the wire's \
         (packet completing the first content chunk − first packet of the request); ITL Δ = \
         each gap between consecutive content chunks, lmbench's − the wire's; ms"
    );
    println!();
    println!(
        "| streams | measured requests | matched | first on its connection | TTFT Δ p50 | TTFT Δ p99 \
         | TTFT Δ min | TTFT Δ max | ITL Δ p50 | ITL Δ p99 | chunks matched | wire TTFT − ttftMs \
         p50 | packets | dropped | loadgen / engine / capture / other CPU |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (temp, dir) = records_dir(c)?;
    let capture_dir = match &a.keep_capture {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (None, d.clone())
        }
        None => {
            let t = tempfile::Builder::new().prefix("lmbench-wire-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let rt = runtime(c.threads)?;
    let mut notes = Vec::new();
    for &n in &a.run.streams {
        clear_dir(&temp);
        let pcap = capture_dir.1.join(format!("wire-{n}.pcap"));
        let row = measure(a, n, &rt, &dir, &pcap)?;
        if a.keep_capture.is_none() {
            let _ = std::fs::remove_file(&pcap);
        }
        let m = &row.cmp;
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} |",
            m.measured,
            m.matched,
            m.first_on_conn,
            ms(p(&m.ttft, 0.5)),
            ms(p(&m.ttft, 0.99)),
            ms(m.ttft.first().copied()),
            ms(m.ttft.last().copied()),
            ms(p(&m.itl, 0.5)),
            ms(p(&m.itl, 0.99)),
            format_args!(
                "{:.2} %",
                m.chunks_matched as f64 / m.chunks.max(1) as f64 * 100.0
            ),
            ms(p(&m.wire_ttft, 0.5).map(|t| t - a.run.ttft_ms)),
            row.wire.packets,
            row.capture.dropped,
            opt(row.cpu.lg, 2),
            opt(row.cpu.sim, 2),
            opt(row.capture_cpu, 2),
            opt(row.cpu.other.zip(row.capture_cpu).map(|(o, c)| (o - c).max(0.0)), 2),
        );
        notes.extend(row.notes(n));
    }
    println!();
    println!(
        "TTFT Δ cannot be negative (a packet is captured after lmbench stamps the send and before \
         lmbench reads it); ITL Δ is negative where lmbench read a chunk later after its packet than \
         the next one (two chunks read in one go: about −ITL). CPU: cores \
         used on average (user + system time ÷ wall time); capture = tshark and dumpcap; other = the \
         rest of the machine (other processes, hypervisor steal)."
    );
    for line in notes {
        println!("{line}");
    }
    Ok(())
}

/// One stream count: run, capture, compare.
struct Row {
    cmp: Comparison,
    wire: WireStats,
    capture: CaptureReport,
    cpu: CpuUse,
    /// Cores tshark and dumpcap used during the run (part of `cpu.other`).
    capture_cpu: Option<f64>,
    failed: String,
    epoch_after_stamp_ms: Option<f64>,
}

impl Row {
    fn notes(&self, n: u64) -> Vec<String> {
        let m = &self.cmp;
        let w = &self.wire;
        let mut out = vec![format!(
            "N={n}: ITL Δ min {} ms; {} of {} chunks matched; {} connections ({} without a \
             request: the capture's start probes; {} opened before the capture, not used), {} \
             with bytes missing, {} retransmitted packets (bytes already \
             captured: the first copy counts), {} not read to the end as HTTP/1.1, {} responses whose content-chunk count differs from \
             lmbench's; failed {}; tshark: {}",
            ms(m.itl.first().copied()),
            m.chunks_matched,
            m.chunks,
            w.connections,
            w.empty,
            w.joined,
            w.holes,
            w.repeats,
            w.unparsed,
            m.count_mismatch,
            self.failed,
            if self.capture.lines.is_empty() {
                "no report".to_string()
            } else {
                self.capture.lines.join("; ")
            },
        )];
        if let Some(b) = &m.split {
            out.push(format!(
                "N={n}: clocks placed by causality to ±{:.3} ms{} (the run's epoch {} ms after \
                 the wall-clock stamp taken before it); of the TTFT Δ, send stamp → request on \
                 the wire p50 {} p99 {} ms, first chunk on the wire → lmbench's read p50 {} p99 \
                 {} ms",
                b.half_width_s * 1e3,
                if b.consistent {
                    ""
                } else {
                    " (INCONSISTENT: some packet lies outside lmbench's stamps)"
                },
                ms(self.epoch_after_stamp_ms),
                ms(p(&b.send, 0.5)),
                ms(p(&b.send, 0.99)),
                ms(p(&b.read, 0.5)),
                ms(p(&b.read, 0.99)),
            ));
        }
        out
    }
}

fn measure(
    a: &WireBudgetArgs,
    n: u64,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    pcap: &Path,
) -> anyhow::Result<Row> {
    let c = &a.run.common;
    let sim = Sim::start(c, &fixed_engine(a.run.ttft_ms, a.run.itl_ms))?;
    let port = sim.addr.port();
    let capture = Capture::start(&a.interface, sim.addr, a.capture_buffer_mib, pcap)?;
    let client = client_for(&sim, c)?;
    let request_s =
        (a.run.ttft_ms + a.run.itl_ms * f64::from(c.max_tokens.saturating_sub(1))) / 1e3;
    let wl = Load::new(
        Schedule::Closed {
            streams: n,
            stagger_s: request_s / n as f64,
            warmup_s: a.run.warmup,
            end_s: a.run.warmup + a.run.duration,
        },
        c,
    );
    let before: Vec<PathBuf> = jsonl_files(dir)?;
    let capture_cpu0 = capture.cpu_s();
    let stamp = unix_now_s();
    let out = drive(
        rt,
        &sim,
        &client,
        wl,
        dir,
        None,
        None,
        c.runner_on == RunnerOn::Worker,
    )?;
    let capture_cpu = capture
        .cpu_s()
        .zip(capture_cpu0)
        .map(|(b, a)| (b - a) / out.wall_s);
    drop(client);
    // The last responses' packets are written by the time their reads returned; a moment more
    // lets dumpcap take them from the ring.
    std::thread::sleep(Duration::from_millis(300));
    let report = capture.stop()?;
    sim.stop()?;
    let jsonl = jsonl_files(dir)?
        .into_iter()
        .find(|f| !before.contains(f))
        .context("the run wrote no requests file")?;
    let records = read_records(&jsonl)?;
    let file = std::fs::File::open(pcap).with_context(|| format!("opening {}", pcap.display()))?;
    let wire = parse_capture(std::io::BufReader::with_capacity(1 << 20, file), port)?;
    let cmp = compare(&records, &wire.exchanges);
    let epoch_after_stamp_ms = cmp
        .split
        .as_ref()
        .map(|b| (wire.base_unix_s + b.offset_s - stamp) * 1e3);
    Ok(Row {
        cmp,
        wire: wire.stats,
        capture: report,
        cpu: out.cpu,
        capture_cpu,
        failed: failures(&out.summary),
        epoch_after_stamp_ms,
    })
}

/// Milliseconds to the microsecond (the capture's resolution), `-` for none; never `-0.000`.
fn ms(x: Option<f64>) -> String {
    opt(x.map(|v| (v * 1e3).round() / 1e3 + 0.0), 3)
}

fn unix_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn jsonl_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(lmbench::results::REQUESTS_SUFFIX))
        {
            out.push(path);
        }
    }
    Ok(out)
}

fn read_records(path: &Path) -> anyhow::Result<Vec<RequestRecord>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            out.push(serde_json::from_str(&line).context("reading a request record")?);
        }
    }
    Ok(out)
}

// ---- the open-files limit -----------------------------------------------------------------

/// Raises the soft limit on open files to the hard limit (1,000 streams need about 1,100
/// descriptors here and as many in the engine's process, which inherits the limit); returns
/// the limit now in force.
fn raise_open_files_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    // An unlimited hard limit still stops at the kernel's nr_open.
    let target = if hard == RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    if soft < target {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)
            .with_context(|| format!("raising RLIMIT_NOFILE from {soft} to {target}"))?;
        return Ok(target);
    }
    Ok(soft)
}

// ---- tshark -------------------------------------------------------------------------------

/// tshark's version line; an error that says how to install it when it is missing.
fn tshark_version() -> anyhow::Result<String> {
    match Command::new("tshark").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("tshark")
            .trim()
            .trim_end_matches('.')
            .to_string()),
        Ok(out) => bail!(
            "`tshark --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{TSHARK_MISSING}"),
        Err(e) => Err(e).context("running `tshark --version`"),
    }
}

/// A running tshark capture, writing a pcap file. Dropped without [`Capture::stop`] (an error
/// in the run), it kills tshark.
struct Capture {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// What tshark said when it stopped.
#[derive(Debug, Default, PartialEq)]
struct CaptureReport {
    captured: Option<u64>,
    dropped: u64,
    /// Its lines about captured and dropped packets, as printed.
    lines: Vec<String>,
}

impl Capture {
    /// Starts tshark on `interface` for traffic to and from `server`'s port, and returns once
    /// packets reach the file: tshark says "Capturing on" before dumpcap is taking packets
    /// (seconds before, on a busy machine), so empty TCP connections to `server` probe it
    /// until the first is in the file (dumpcap flushes it every 100 ms or so). The probes are
    /// connections without a request: they match nothing.
    fn start(
        interface: &str,
        server: std::net::SocketAddr,
        buffer_mib: u32,
        path: &Path,
    ) -> anyhow::Result<Capture> {
        let port = server.port();
        let mut child = Command::new("tshark")
            .arg("-i")
            .arg(interface)
            .arg("-f")
            .arg(format!("tcp port {port}"))
            .arg("-B")
            .arg(buffer_mib.to_string())
            .arg("-F")
            .arg("pcap")
            .arg("-w")
            .arg(path)
            .arg("-q")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow::anyhow!("{TSHARK_MISSING}")
                } else {
                    anyhow::Error::new(e).context("starting tshark")
                }
            })?;
        let stderr = child.stderr.take().context("tshark's stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Capturing on") {
                    let _ = ready_tx.send(());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let mut cap = Capture {
            child: Some(child),
            lines,
            reader: Some(reader),
        };
        let mut ready = ready_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        if ready {
            ready = false;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if cap
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                    .is_some()
                {
                    break;
                }
                drop(std::net::TcpStream::connect_timeout(
                    &server,
                    Duration::from_secs(1),
                ));
                std::thread::sleep(Duration::from_millis(100));
                // The file's header is 24 bytes; more is a packet.
                if std::fs::metadata(path).is_ok_and(|m| m.len() > 24) {
                    ready = true;
                    break;
                }
            }
        }
        if !ready {
            let said = cap.said();
            drop(cap);
            bail!("tshark did not start capturing on {interface}: {said}");
        }
        Ok(cap)
    }

    /// CPU seconds of tshark and of its children (dumpcap, which does the capturing).
    fn cpu_s(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id().to_string();
        let mut total = proc_cpu_s(&pid)?;
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = e.file_name();
            let Some(other) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{other}/stat")).unwrap_or_default();
            // The parent's pid is the second field after the command name.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1));
            if ppid == Some(pid.as_str()) {
                total += proc_cpu_s(other).unwrap_or(0.0);
            }
        }
        Some(total)
    }

    fn said(&self) -> String {
        self.lines.lock().map(|l| l.join(" | ")).unwrap_or_default()
    }

    /// Stops tshark (SIGINT, as Ctrl-C: it flushes the file and reports its counts).
    fn stop(mut self) -> anyhow::Result<CaptureReport> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let mut child = self.child.take().context("tshark already stopped")?;
        let pid = Pid::from_raw(i32::try_from(child.id()).context("tshark's pid")?);
        kill(pid, Signal::SIGINT).context("stopping tshark")?;
        let mut status = None;
        for _ in 0..1200 {
            if let Some(s) = child.try_wait()? {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("tshark did not stop within 60 s of SIGINT");
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        if !status.success() {
            bail!("tshark failed ({status}): {}", lines.join(" | "));
        }
        Ok(capture_report(&lines))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// tshark's closing counts: `N packets captured`, `N packets dropped from IFACE` (or `N
/// packets dropped`), each line a number first.
fn capture_report(lines: &[String]) -> CaptureReport {
    let mut r = CaptureReport::default();
    for line in lines {
        let l = line.trim();
        let Some((num, rest)) = l.split_once(' ') else {
            continue;
        };
        let Ok(num) = num.parse::<u64>() else {
            continue;
        };
        let rest = rest
            .trim_start_matches("packets")
            .trim_start_matches("packet");
        if rest.trim_start().starts_with("captured") {
            r.captured = Some(num);
        } else if rest.trim_start().starts_with("dropped") {
            r.dropped += num;
        } else {
            continue;
        }
        r.lines.push(l.to_string());
    }
    r
}

// ---- the capture: TCP streams back together -----------------------------------------------

/// One direction of a TCP connection: its bytes in sequence order and, for each packet that
/// brought new bytes, where they end and when it was captured.
#[derive(Debug, Default)]
struct Flow {
    next_seq: Option<u32>,
    data: Vec<u8>,
    /// (end of the packet's new bytes in `data`, capture time).
    arrivals: Vec<(usize, f64)>,
    /// A packet began past `next_seq`: bytes are missing (a dropped packet), and nothing after
    /// them is used.
    hole: bool,
    /// Packets whose bytes had all come before (retransmissions).
    repeats: u64,
}

impl Flow {
    fn syn(&mut self, seq: u32) {
        self.next_seq = Some(seq.wrapping_add(1));
    }

    fn push(&mut self, seq: u32, payload: &[u8], t: f64) {
        if payload.is_empty() || self.hole {
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        // Sequence numbers wrap: the distance as a signed 32-bit number.
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            self.hole = true;
            return;
        }
        let skip = ahead.unsigned_abs() as usize;
        if skip >= payload.len() {
            self.repeats += 1;
            return;
        }
        let new = &payload[skip..];
        self.data.extend_from_slice(new);
        self.arrivals.push((self.data.len(), t));
        self.next_seq = Some(next.wrapping_add(new.len() as u32));
    }

    /// The capture time of the packet that brought byte `offset`.
    fn time_of(&self, offset: usize) -> Option<f64> {
        let i = self.arrivals.partition_point(|(end, _)| *end <= offset);
        self.arrivals.get(i).map(|(_, t)| *t)
    }
}

#[derive(Debug, Default)]
struct Conn {
    /// Client → server.
    up: Flow,
    /// Server → client.
    down: Flow,
    /// The capture has no SYN for it (it was open before the capture started).
    joined: bool,
}

/// One request as the wire saw it.
#[derive(Debug, Clone, PartialEq)]
struct WireExchange {
    /// Its `x-user-id` header.
    user_id: Option<u64>,
    /// The first request on its connection (lmbench's send stamp precedes the TCP handshake).
    first_on_conn: bool,
    /// Capture time of the packet carrying the request's first byte.
    send_t: f64,
    /// Capture times of the packets completing each content event, in order.
    content_t: Vec<f64>,
    /// The response's `[DONE]` arrived.
    done: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct WireStats {
    /// TCP packets to or from the engine's port.
    packets: u64,
    connections: usize,
    /// Connections with bytes missing in either direction.
    holes: usize,
    repeats: u64,
    /// Connections whose bytes could not be read as HTTP/1.1 to the end.
    unparsed: usize,
    /// Connections open before the capture started (no SYN in it) that carried data: their
    /// first request and response may be cut, so none of their requests is used.
    joined: usize,
    /// Connections that carried no request (the probes of [`Capture::start`]).
    empty: usize,
}

#[derive(Debug)]
struct Wire {
    /// Capture times are seconds after this (the first packet's Unix time).
    base_unix_s: f64,
    exchanges: Vec<WireExchange>,
    stats: WireStats,
}

/// Reads a pcap of traffic to and from `server_port` and returns every request with the
/// times its packets give.
fn parse_capture<R: Read>(reader: R, server_port: u16) -> anyhow::Result<Wire> {
    let mut pcap = Pcap::new(reader)?;
    let mut frame = Vec::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut current: HashMap<(IpAddr, u16), usize> = HashMap::new();
    let mut base: Option<Duration> = None;
    let mut packets = 0u64;
    while let Some(at) = pcap.next(&mut frame)? {
        let Some(Segment {
            client,
            up,
            seq,
            syn,
            ack,
            payload,
        }) = tcp_of(pcap.link, &frame, server_port)?
        else {
            continue;
        };
        packets += 1;
        let base = *base.get_or_insert(at);
        let t = at.saturating_sub(base).as_secs_f64();
        let opens = syn && !ack && up;
        let idx = match current.get(&client) {
            // The same SYN again (retransmitted) belongs to the connection it opened.
            Some(&i)
                if opens
                    && conns[i].up.data.is_empty()
                    && conns[i].up.next_seq == Some(seq.wrapping_add(1)) =>
            {
                Some(i)
            }
            // A new connection (a port used again starts a new one).
            Some(_) if opens => None,
            Some(&i) => Some(i),
            None => None,
        };
        let idx = idx.unwrap_or_else(|| {
            conns.push(Conn {
                joined: !opens,
                ..Conn::default()
            });
            current.insert(client, conns.len() - 1);
            conns.len() - 1
        });
        let conn = &mut conns[idx];
        let flow = if up { &mut conn.up } else { &mut conn.down };
        if syn {
            flow.syn(seq);
        } else {
            flow.push(seq, payload, t);
        }
    }
    let mut stats = WireStats {
        packets,
        connections: conns.len(),
        ..WireStats::default()
    };
    let mut exchanges = Vec::new();
    for conn in &conns {
        if conn.up.data.is_empty() && !conn.up.hole {
            stats.empty += 1;
            continue;
        }
        if conn.joined {
            stats.joined += 1;
            continue;
        }
        stats.holes += usize::from(conn.up.hole || conn.down.hole);
        stats.repeats += conn.up.repeats + conn.down.repeats;
        let (requests, up_ok) = requests_of(&conn.up);
        let (responses, down_ok) = responses_of(&conn.down);
        stats.unparsed += usize::from(!(up_ok && down_ok));
        for (k, (user_id, send_t)) in requests.into_iter().enumerate() {
            let (content_t, done) = responses.get(k).cloned().unwrap_or_default();
            exchanges.push(WireExchange {
                user_id,
                first_on_conn: k == 0,
                send_t,
                content_t,
                done,
            });
        }
    }
    Ok(Wire {
        base_unix_s: base.map_or(0.0, |b| b.as_secs_f64()),
        exchanges,
        stats,
    })
}

/// A classic pcap file (what `tshark -F pcap` writes): a 24-byte header, then per packet a
/// 16-byte header (seconds, micro- or nanoseconds, captured length, original length) and the
/// captured bytes; in the writer's byte order, which the magic number tells.
struct Pcap<R> {
    r: R,
    big_endian: bool,
    nanos: bool,
    /// The link type (the first layer of every frame).
    link: u32,
}

impl<R: Read> Pcap<R> {
    fn new(mut r: R) -> anyhow::Result<Self> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h)
            .context("reading the capture's pcap header")?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (big_endian, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => bail!("the capture is pcapng, not pcap (tshark -F pcap)"),
            _ => bail!("the capture is not a pcap file (magic {magic:02x?})"),
        };
        let mut p = Pcap {
            r,
            big_endian,
            nanos,
            link: 0,
        };
        p.link = p.u32_at(&h, 20) & 0x0fff_ffff;
        Ok(p)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }

    /// The next packet's bytes into `frame`; its capture time (since the Unix epoch), or
    /// `None` at the end. A packet cut off by the end of the file ends it too.
    fn next(&mut self, frame: &mut Vec<u8>) -> anyhow::Result<Option<Duration>> {
        let mut h = [0u8; 16];
        let mut got = 0;
        while got < h.len() {
            match self.r.read(&mut h[got..]) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading the capture"),
            }
        }
        let secs = u64::from(self.u32_at(&h, 0));
        let frac = self.u32_at(&h, 4);
        let len = self.u32_at(&h, 8) as usize;
        if len > 1 << 24 {
            bail!("the capture holds a packet of {len} bytes: not a pcap file");
        }
        frame.resize(len, 0);
        match self.r.read_exact(frame) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e).context("reading the capture"),
        }
        let frac = if self.nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        Ok(Some(Duration::from_secs(secs) + frac))
    }
}

/// A TCP segment to or from the server.
struct Segment<'a> {
    /// The client's address and port.
    client: (IpAddr, u16),
    /// It goes to the server.
    up: bool,
    seq: u32,
    syn: bool,
    ack: bool,
    payload: &'a [u8],
}

/// The TCP segment in a captured frame, if it goes to or comes from `server_port`.
fn tcp_of(link: u32, frame: &[u8], server_port: u16) -> anyhow::Result<Option<Segment<'_>>> {
    // pcap link types: Ethernet (Linux loopback), Linux cooked v1, raw IP, BSD loopback (a
    // 4-byte address family, then IP).
    let sliced = match link {
        1 => SlicedPacket::from_ethernet(frame),
        113 => SlicedPacket::from_linux_sll(frame),
        101 | 228 | 229 => SlicedPacket::from_ip(frame),
        0 | 108 if frame.len() >= 4 => SlicedPacket::from_ip(&frame[4..]),
        0 | 108 => return Ok(None),
        other => bail!("the capture's link type {other} is not read here"),
    };
    let Ok(sliced) = sliced else {
        return Ok(None);
    };
    let (src, dst) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => (
            IpAddr::from(ip.header().source_addr()),
            IpAddr::from(ip.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            IpAddr::from(ip.header().source_addr()),
            IpAddr::from(ip.header().destination_addr()),
        ),
        _ => return Ok(None),
    };
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
        return Ok(None);
    };
    let (client, up) = if tcp.destination_port() == server_port {
        ((src, tcp.source_port()), true)
    } else if tcp.source_port() == server_port {
        ((dst, tcp.destination_port()), false)
    } else {
        return Ok(None);
    };
    Ok(Some(Segment {
        client,
        up,
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        payload: tcp.payload(),
    }))
}

// ---- HTTP/1.1 and SSE ---------------------------------------------------------------------

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// An HTTP/1.1 message head.
struct Head {
    /// Where it ends (past the blank line).
    end: usize,
    /// The request or status line.
    first: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
}

/// The HTTP/1.1 message head starting at `pos`, if all of it is there.
fn head_at(data: &[u8], pos: usize) -> Option<Head> {
    let end = find(data, b"\r\n\r\n", pos)? + 4;
    let text = String::from_utf8_lossy(&data[pos..end - 4]);
    let mut lines = text.split("\r\n");
    let first = lines.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Head {
        end,
        first,
        headers,
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The requests on a connection: (`x-user-id`, capture time of the first byte), in order; and
/// whether every byte was read as a request (false: a request cut off, or not HTTP).
fn requests_of(up: &Flow) -> (Vec<(Option<u64>, f64)>, bool) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < up.data.len() {
        let Some(Head {
            end,
            first,
            headers,
        }) = head_at(&up.data, pos)
        else {
            return (out, false);
        };
        if !first.ends_with("HTTP/1.1") {
            return (out, false);
        }
        let body = header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let Some(t) = up.time_of(pos) else {
            return (out, false);
        };
        out.push((
            header(&headers, "x-user-id").and_then(|v| v.parse().ok()),
            t,
        ));
        pos = end + body;
    }
    (out, pos == up.data.len())
}

/// A response body, de-chunked, with the capture time of the packet that brought each run of
/// its bytes: (end of the run in `bytes`, time).
#[derive(Debug, Default)]
struct Body {
    bytes: Vec<u8>,
    marks: Vec<(usize, f64)>,
}

impl Body {
    /// Appends `down.data[from..to]`, cut where packets end.
    fn add(&mut self, down: &Flow, from: usize, to: usize) {
        let mut s = from;
        while s < to {
            let i = down.arrivals.partition_point(|(end, _)| *end <= s);
            let Some(&(end, t)) = down.arrivals.get(i) else {
                return;
            };
            let e = end.min(to);
            self.bytes.extend_from_slice(&down.data[s..e]);
            match self.marks.last_mut() {
                Some(last) if last.1 == t => last.0 = self.bytes.len(),
                _ => self.marks.push((self.bytes.len(), t)),
            }
            s = e;
        }
    }

    /// Capture times of the packets completing each content event, and whether `[DONE]` came:
    /// the body goes through lmbench's SSE decoder one packet's bytes at a time, so each event
    /// comes out with the packet that completes it.
    fn content_times(&self) -> (Vec<f64>, bool) {
        let mut decoder = SseDecoder::default();
        let mut times = Vec::new();
        let mut start = 0;
        for &(end, t) in &self.marks {
            for event in decoder.push(&self.bytes[start..end]) {
                match event {
                    SseEvent::Done => return (times, true),
                    SseEvent::Message { event, data } => {
                        if event.as_deref() != Some("error") && is_content(&data) {
                            times.push(t);
                        }
                    }
                }
            }
            start = end;
        }
        (times, false)
    }
}

/// Whether a streamed chunk carries generated tokens, as lmbench's client counts them: its
/// first choice has non-empty `text`, `delta.content`, `delta.reasoning_content` or
/// `delta.reasoning`.
fn is_content(data: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
        return false;
    };
    let text = |x: Option<&Value>| x.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    text(choice.get("text"))
        || choice.get("delta").is_some_and(|d| {
            text(d.get("content")) || text(d.get("reasoning_content")) || text(d.get("reasoning"))
        })
}

/// The responses on a connection: each one's content-event times and whether `[DONE]` came;
/// and whether every byte was read as a response.
fn responses_of(down: &Flow) -> (Vec<(Vec<f64>, bool)>, bool) {
    let data = &down.data;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let Some(Head {
            end,
            first,
            headers,
        }) = head_at(data, pos)
        else {
            return (out, false);
        };
        if !first.starts_with("HTTP/1.1 ") {
            return (out, false);
        }
        // Interim responses (100 Continue) answer nothing by themselves.
        if first.get(9..10) == Some("1") {
            pos = end;
            continue;
        }
        let mut body = Body::default();
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let mut complete = false;
        if chunked {
            let mut q = end;
            // Chunks: `<hex size>[;ext]\r\n<data>\r\n`, ending with a 0-size chunk and trailers.
            // A chunk cut off, or a size line that is not one, ends what is read of the
            // connection (after the events before it).
            while let Some(line_end) = find(data, b"\r\n", q) {
                let size_text = String::from_utf8_lossy(&data[q..line_end]);
                let size_text = size_text.split(';').next().unwrap_or("").trim();
                let Ok(size) = usize::from_str_radix(size_text, 16) else {
                    break;
                };
                let from = line_end + 2;
                if size == 0 {
                    // Trailers (none here) up to a blank line.
                    if let Some(e) = find(data, b"\r\n", from) {
                        let trailer_end = if e == from {
                            Some(e + 2)
                        } else {
                            find(data, b"\r\n\r\n", from).map(|e| e + 4)
                        };
                        if let Some(e) = trailer_end {
                            q = e;
                            complete = true;
                        }
                    }
                    break;
                }
                let to = (from + size).min(data.len());
                body.add(down, from, to);
                if from + size + 2 > data.len() {
                    break;
                }
                q = from + size + 2;
            }
            let (times, done) = body.content_times();
            out.push((times, done));
            if !complete {
                return (out, false);
            }
            pos = q;
        } else {
            let len = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
            let to = len.map_or(data.len(), |l| (end + l).min(data.len()));
            body.add(down, end, to);
            out.push(body.content_times());
            if len.is_some_and(|l| end + l > data.len()) {
                return (out, false);
            }
            pos = to;
        }
    }
    (out, true)
}

// ---- lmbench against the wire -------------------------------------------------------------

#[derive(Debug, Default)]
struct Comparison {
    /// lmbench's measured requests: not warmup, completed.
    measured: usize,
    /// Of those, found on the wire with their first content chunk.
    matched: usize,
    /// Of the matched, the first request on its connection (lmbench's TTFT then includes the
    /// TCP handshake; the wire's starts at the request).
    first_on_conn: usize,
    /// lmbench's TTFT − the wire's, ms, sorted.
    ttft: Vec<f64>,
    /// Per chunk gap, lmbench's − the wire's, ms, sorted.
    itl: Vec<f64>,
    /// The wire's TTFT, ms, sorted.
    wire_ttft: Vec<f64>,
    /// Content chunks lmbench recorded for the measured requests.
    chunks: usize,
    /// Of those, paired with a content event on the wire.
    chunks_matched: usize,
    /// Complete responses whose count of content events differs from lmbench's.
    count_mismatch: usize,
    split: Option<Split>,
}

/// The TTFT difference split into a send side and a read side, with the clocks' offset placed
/// by causality.
#[derive(Debug)]
struct Split {
    /// Capture time − lmbench time, seconds: the middle of what causality allows.
    offset_s: f64,
    half_width_s: f64,
    /// Causality holds for every packet (the bracket is not empty).
    consistent: bool,
    /// Request's first packet − lmbench's send stamp, ms, sorted.
    send: Vec<f64>,
    /// lmbench's read of the first chunk − its packet, ms, sorted.
    read: Vec<f64>,
}

fn compare(records: &[RequestRecord], wire: &[WireExchange]) -> Comparison {
    // A request sent twice (lmbench resends once on a keep-alive connection the server had
    // just closed) is found by the copy that was answered.
    let mut by_user: HashMap<u64, &WireExchange> = HashMap::new();
    for w in wire {
        if let Some(u) = w.user_id {
            let better = by_user
                .get(&u)
                .is_none_or(|old| old.content_t.len() < w.content_t.len());
            if better {
                by_user.insert(u, w);
            }
        }
    }
    let mut m = Comparison::default();
    let mut pairs = Vec::new();
    for r in records.iter().filter(|r| !r.warmup && r.ok()) {
        m.measured += 1;
        m.chunks += r.chunk_times_s.len();
        let Some(w) = r.user_id.and_then(|u| by_user.get(&u)) else {
            continue;
        };
        let (Some(first), Some(&wire_first)) = (r.first_token_s, w.content_t.first()) else {
            continue;
        };
        m.matched += 1;
        m.first_on_conn += usize::from(w.first_on_conn);
        m.ttft
            .push(((first - r.sent_s) - (wire_first - w.send_t)) * 1e3);
        m.wire_ttft.push((wire_first - w.send_t) * 1e3);
        if w.done && w.content_t.len() != r.chunk_times_s.len() {
            m.count_mismatch += 1;
        }
        let k = w.content_t.len().min(r.chunk_times_s.len());
        m.chunks_matched += k;
        for i in 1..k {
            let lm = r.chunk_times_s[i] - r.chunk_times_s[i - 1];
            let wi = w.content_t[i] - w.content_t[i - 1];
            m.itl.push((lm - wi) * 1e3);
        }
        pairs.push((r, *w, k));
    }
    // Offset = capture clock − lmbench clock. Every request's first packet comes after
    // lmbench's send stamp: offset ≤ send_t − sent_s. Every chunk's packet comes before
    // lmbench's read: offset ≥ content_t − chunk_time.
    let mut hi = f64::INFINITY;
    let mut lo = f64::NEG_INFINITY;
    for (r, w, k) in &pairs {
        hi = hi.min(w.send_t - r.sent_s);
        for i in 0..*k {
            lo = lo.max(w.content_t[i] - r.chunk_times_s[i]);
        }
    }
    if hi.is_finite() && lo.is_finite() {
        let offset_s = (lo + hi) / 2.0;
        let mut send: Vec<f64> = pairs
            .iter()
            .map(|(r, w, _)| (w.send_t - r.sent_s - offset_s) * 1e3)
            .collect();
        let mut read: Vec<f64> = pairs
            .iter()
            .filter_map(|(r, w, _)| {
                Some((r.first_token_s? + offset_s - w.content_t.first()?) * 1e3)
            })
            .collect();
        send.sort_unstable_by(f64::total_cmp);
        read.sort_unstable_by(f64::total_cmp);
        m.split = Some(Split {
            offset_s,
            half_width_s: (hi - lo).abs() / 2.0,
            consistent: lo <= hi,
            send,
            read,
        });
    }
    m.ttft.sort_unstable_by(f64::total_cmp);
    m.itl.sort_unstable_by(f64::total_cmp);
    m.wire_ttft.sort_unstable_by(f64::total_cmp);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const SERVER: u16 = 8000;
    /// Capture times in the tests are seconds after this Unix time.
    const T0: u64 = 1_700_000_000;

    /// One packet of a test capture, between 127.0.0.1:`port` and 127.0.0.1:`server`.
    struct Pkt {
        t: f64,
        port: u16,
        server: u16,
        up: bool,
        seq: u32,
        syn: bool,
        payload: Vec<u8>,
    }

    /// A classic pcap (little-endian, microseconds, Ethernet) of `packets`.
    fn pcap(packets: &[Pkt]) -> Vec<u8> {
        let mut out = Vec::new();
        for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for p in packets {
            let (sp, dp) = if p.up {
                (p.port, p.server)
            } else {
                (p.server, p.port)
            };
            let b = PacketBuilder::ethernet2([0; 6], [0; 6])
                .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
                .tcp(sp, dp, p.seq, 65535);
            let b = match (p.syn, p.up) {
                (true, true) => b.syn(),
                (true, false) => b.syn().ack(1),
                (false, _) => b.ack(1),
            };
            let mut frame = Vec::new();
            b.write(&mut frame, &p.payload).unwrap();
            let us = (p.t * 1e6).round() as u32;
            for x in [T0 as u32 + us / 1_000_000, us % 1_000_000] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            let len = frame.len() as u32;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&frame);
        }
        out
    }

    /// A test connection: the handshake, then bytes each way with the sequence numbers kept.
    struct Conv {
        port: u16,
        up: u32,
        down: u32,
        packets: Vec<Pkt>,
    }

    impl Conv {
        fn open(port: u16, t: f64) -> Conv {
            let mut c = Conv {
                port,
                up: 1000,
                down: 5000,
                packets: Vec::new(),
            };
            c.packets.push(c.pkt(t, true, 999, true, b""));
            c.packets.push(c.pkt(t + 0.0001, false, 4999, true, b""));
            c
        }

        fn pkt(&self, t: f64, up: bool, seq: u32, syn: bool, payload: &[u8]) -> Pkt {
            Pkt {
                t,
                port: self.port,
                server: SERVER,
                up,
                seq,
                syn,
                payload: payload.to_vec(),
            }
        }

        fn send(&mut self, t: f64, up: bool, bytes: &[u8]) {
            let seq = if up { &mut self.up } else { &mut self.down };
            let s = *seq;
            *seq = seq.wrapping_add(bytes.len() as u32);
            let p = self.pkt(t, up, s, false, bytes);
            self.packets.push(p);
        }

        /// Bytes the server never got to send (a packet the capture lost).
        fn lose(&mut self, n: usize) {
            self.down = self.down.wrapping_add(n as u32);
        }
    }

    fn request(user: u64) -> Vec<u8> {
        let body = format!("{{\"prompt\":\"Question {user}:\",\"stream\":true}}");
        format!(
            "POST /v1/completions HTTP/1.1\r\ncontent-type: application/json\r\nx-user-id: \
             {user}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n";

    fn token(word: &str) -> String {
        format!("data: {{\"choices\":[{{\"index\":0,\"text\":\" {word}\"}}]}}\n\n")
    }

    /// One chunk of the chunked transfer encoding.
    fn chunk(s: &str) -> String {
        format!("{:x}\r\n{s}\r\n", s.len())
    }

    /// A test time as the capture gives it: seconds after its first packet (at 1.0).
    fn at(t: f64) -> f64 {
        t - 1.0
    }

    #[test]
    fn flow_reassembles_in_sequence_order() {
        let mut f = Flow::default();
        f.syn(99);
        f.push(100, b"abc", 1.0);
        f.push(100, b"abc", 1.5); // retransmitted: its bytes came at 1.0
        f.push(101, b"bcde", 2.0); // overlaps: only "de" is new
        assert_eq!(f.data, b"abcde");
        assert_eq!(f.repeats, 1);
        assert_eq!(f.time_of(0), Some(1.0));
        assert_eq!(f.time_of(2), Some(1.0));
        assert_eq!(f.time_of(3), Some(2.0));
        assert_eq!(f.time_of(5), None);
        f.push(110, b"zz", 3.0); // bytes 105..110 never came
        assert!(f.hole);
        f.push(105, b"fgh", 3.5);
        assert_eq!(f.data, b"abcde", "nothing after a hole is used");
        // Sequence numbers wrap.
        let mut w = Flow::default();
        w.syn(u32::MAX - 1);
        w.push(u32::MAX, b"xy", 1.0);
        w.push(1, b"z", 2.0);
        assert_eq!(w.data, b"xyz");
        assert!(!w.hole);
    }

    #[test]
    fn capture_gives_each_request_its_send_and_chunk_times() {
        // Connection 1, request 7: sent in two packets. Its response: the head and half of the
        // first event; the rest of that event, all of the second and the start of the third
        // (then the same packet again, retransmitted); the end of the third; a usage event
        // (no content), [DONE] and the last chunk.
        let mut c1 = Conv::open(40000, 1.0);
        let req7 = request(7);
        c1.send(1.001, true, &req7[..20]);
        c1.send(1.002, true, &req7[20..]);
        let events = format!("{}{}{}", token("a"), token("b"), token("c"));
        let resp7 = format!("{HEAD}{}", chunk(&events));
        let data_at = HEAD.len() + format!("{:x}\r\n", events.len()).len();
        let cut1 = data_at + token("a").len() / 2;
        let cut2 = data_at + token("a").len() + token("b").len() + 5;
        c1.send(1.100, false, &resp7.as_bytes()[..cut1]);
        c1.send(1.102, false, &resp7.as_bytes()[cut1..cut2]);
        let again = c1.packets.last().map(|p| Pkt {
            t: 1.105,
            payload: p.payload.clone(),
            ..*p
        });
        c1.packets.extend(again);
        c1.send(1.120, false, &resp7.as_bytes()[cut2..]);
        let tail = format!(
            "{}{}0\r\n\r\n",
            chunk("data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n"),
            chunk("data: [DONE]\n\n")
        );
        c1.send(1.121, false, tail.as_bytes());
        // Request 8 on the same connection, one chunk per packet.
        c1.send(2.0, true, &request(8));
        c1.send(
            2.1,
            false,
            format!("{HEAD}{}", chunk(&token("x"))).as_bytes(),
        );
        let rest = format!(
            "{}{}0\r\n\r\n",
            chunk(&token("y")),
            chunk("data: [DONE]\n\n")
        );
        c1.send(2.12, false, rest.as_bytes());
        // Connection 2, request 9: a packet of its response is lost after the first chunk.
        let mut c2 = Conv::open(40001, 3.0);
        c2.send(3.001, true, &request(9));
        c2.send(
            3.1,
            false,
            format!("{HEAD}{}", chunk(&token("p"))).as_bytes(),
        );
        c2.lose(3);
        c2.send(3.2, false, chunk(&token("q")).as_bytes());
        // Connection 3 was open before the capture began (no SYN): not used, since what the
        // capture has of it may begin inside a request or response.
        let mut c3 = Conv::open(40002, 0.0);
        c3.packets.clear();
        c3.send(3.3, true, &request(10));
        // Another port's traffic is not read.
        let other = Pkt {
            t: 3.4,
            port: 40003,
            server: 9999,
            up: true,
            seq: 1,
            syn: false,
            payload: request(11),
        };
        let mut packets = Vec::new();
        for c in [c1, c2, c3] {
            packets.extend(c.packets);
        }
        packets.push(other);
        let wire = parse_capture(&pcap(&packets)[..], SERVER).unwrap();
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
        };
        assert_eq!(wire.base_unix_s, (T0 + 1) as f64);
        assert_eq!(wire.exchanges.len(), 3, "{:?}", wire.exchanges);
        let e7 = &wire.exchanges[0];
        assert_eq!(e7.user_id, Some(7));
        assert!(e7.first_on_conn);
        assert!((e7.send_t - at(1.001)).abs() < 1e-9);
        assert!(
            close(&e7.content_t, &[at(1.102), at(1.102), at(1.120)]),
            "{:?}",
            e7.content_t
        );
        assert!(e7.done);
        let e8 = &wire.exchanges[1];
        assert_eq!(e8.user_id, Some(8));
        assert!(!e8.first_on_conn);
        assert!((e8.send_t - at(2.0)).abs() < 1e-9);
        assert!(close(&e8.content_t, &[at(2.1), at(2.12)]));
        assert!(e8.done);
        let e9 = &wire.exchanges[2];
        assert_eq!(e9.user_id, Some(9));
        assert!(e9.first_on_conn);
        assert!(close(&e9.content_t, &[at(3.1)]), "{:?}", e9.content_t);
        assert!(!e9.done);
        assert_eq!(wire.stats.connections, 3);
        assert_eq!(wire.stats.joined, 1);
        assert_eq!(wire.stats.holes, 1);
        assert_eq!(wire.stats.repeats, 1);
        assert_eq!(wire.stats.packets, packets.len() as u64 - 1);
    }

    /// A pcap file of one packet: the file header's six words, the packet header's four, the
    /// packet, each word written by `word`.
    fn pcap_file(
        head: [u32; 6],
        packet: [u32; 4],
        data: &[u8],
        word: fn(u32) -> [u8; 4],
    ) -> Vec<u8> {
        let mut out: Vec<u8> = head.into_iter().chain(packet).flat_map(word).collect();
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn pcap_headers_are_read_in_either_byte_order() {
        let head = [0xa1b2_3c4d, 0x0004_0002, 0, 0, 65535, 101];
        let le = pcap_file(head, [5, 7, 3, 3], b"abc", u32::to_le_bytes);
        let mut p = Pcap::new(&le[..]).unwrap();
        assert_eq!(p.link, 101);
        let mut frame = Vec::new();
        assert_eq!(
            p.next(&mut frame).unwrap(),
            Some(Duration::new(5, 7)),
            "nanosecond pcap"
        );
        assert_eq!(frame, b"abc");
        assert_eq!(p.next(&mut frame).unwrap(), None);
        let head = [0xa1b2_c3d4, 0x0002_0004, 0, 0, 65535, 1];
        let be = pcap_file(head, [5, 7, 2, 2], b"xy", u32::to_be_bytes);
        let mut p = Pcap::new(&be[..]).unwrap();
        assert_eq!(p.link, 1);
        assert_eq!(p.next(&mut frame).unwrap(), Some(Duration::new(5, 7_000)));
        let ng = [0x0a, 0x0d, 0x0d, 0x0a].repeat(6);
        assert!(Pcap::new(&ng[..]).is_err());
    }

    fn record(id: u64, sent: f64, chunks: &[f64], warmup: bool) -> RequestRecord {
        RequestRecord {
            id,
            user_id: Some(id),
            round: 1,
            warmup,
            due_s: sent,
            slot_s: None,
            sent_s: sent,
            new_connection: Some(false),
            connect_ms: None,
            first_token_s: chunks.first().copied(),
            end_s: chunks.last().copied().unwrap_or(sent),
            chunk_times_s: chunks.to_vec(),
            prompt_tokens: None,
            completion_tokens: None,
            cached_tokens: None,
            client_prompt_tokens: 4,
            client_completion_tokens: chunks.len() as u64,
            content_chunks: chunks.len() as u64,
            max_tokens: 16,
            status: Some(200),
            error: None,
        }
    }

    fn exchange(user: u64, send: f64, content: &[f64], first: bool) -> WireExchange {
        WireExchange {
            user_id: Some(user),
            first_on_conn: first,
            send_t: send,
            content_t: content.to_vec(),
            done: true,
        }
    }

    #[test]
    fn comparison_pairs_records_with_their_packets() {
        // The capture clock is 100 s ahead of lmbench's. Request 1: sent 0.2 ms before its
        // packet, chunks read 0.3 ms, 0.1 ms and 0.5 ms after theirs. Request 2: its two chunks
        // arrived in separate packets 20 ms apart but were read together.
        let off = 100.0;
        let records = vec![
            record(1, 1.0, &[1.1003, 1.1201, 1.1405], false),
            record(2, 2.0, &[2.1004, 2.1204], false),
            // Warmup, and a request the capture never saw: not compared.
            record(3, 0.5, &[0.6], true),
            record(4, 3.0, &[3.1], false),
        ];
        let wire = vec![
            // A resend that got no answer, then the answered copy.
            exchange(1, off + 0.999, &[], true),
            exchange(1, off + 1.0002, &[off + 1.1, off + 1.12, off + 1.14], false),
            exchange(2, off + 2.0001, &[off + 2.1, off + 2.12], true),
            exchange(3, off + 0.5, &[off + 0.6], true),
        ];
        let m = compare(&records, &wire);
        assert_eq!(m.measured, 3);
        assert_eq!(m.matched, 2);
        assert_eq!(m.first_on_conn, 1);
        assert_eq!(m.chunks, 6);
        assert_eq!(m.chunks_matched, 5);
        assert_eq!(m.count_mismatch, 0);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        // TTFT Δ: (100.3 − 100.0) − (100 − 99.8) = 0.5 ms; (100.4) − (99.9) = 0.5 ms.
        assert!(near(m.ttft[0], 0.5) && near(m.ttft[1], 0.5), "{:?}", m.ttft);
        assert!(near(m.wire_ttft[0], 99.8) && near(m.wire_ttft[1], 99.9));
        // Gaps: 19.8 − 20, 20.4 − 20, 20.0 − 20 → −0.2, 0, 0.4 ms.
        let want = [-0.2, 0.0, 0.4];
        assert!(
            m.itl.iter().zip(want).all(|(a, b)| near(*a, b)),
            "{:?}",
            m.itl
        );
        let s = m.split.unwrap();
        assert!(s.consistent);
        // Causality: offset ≤ min(0.2, 0.1) ms after 100 s, ≥ max(−0.1, −0.4, …) ms.
        assert!(near((s.offset_s - off) * 1e3, 0.0), "{}", s.offset_s - off);
        assert!(near(s.half_width_s * 1e3, 0.1));
    }

    #[test]
    fn content_events_are_the_clients() {
        assert!(is_content(r#"{"choices":[{"index":0,"text":" a"}]}"#));
        assert!(is_content(r#"{"choices":[{"delta":{"content":"a"}}]}"#));
        assert!(is_content(
            r#"{"choices":[{"delta":{"reasoning_content":"a"}}]}"#
        ));
        assert!(!is_content(
            r#"{"choices":[{"delta":{"role":"assistant"}}]}"#
        ));
        assert!(!is_content(r#"{"choices":[],"usage":{}}"#));
        assert!(!is_content(r#"{"choices":[{"text":""}]}"#));
        assert!(!is_content("not json"));
    }

    #[test]
    fn tshark_counts_are_read() {
        let lines: Vec<String> = [
            "Running as user \"root\" and group \"root\". This could be dangerous.",
            "Capturing on 'Loopback: lo'",
            "tshark: ",
            "1234 packets captured",
            "7 packets dropped from lo",
            "1 packet dropped",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = capture_report(&lines);
        assert_eq!(r.captured, Some(1234));
        assert_eq!(r.dropped, 8);
        assert_eq!(r.lines.len(), 3);
    }

    /// The effective user is root (capturing needs it, or a capture group).
    fn root() -> bool {
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                == Some("0")
        })
    }

    /// The mode itself, small (1 and 20 streams, 2 s each, the engine on a runtime of this
    /// process), against a real tshark capture: every measured request and chunk is found on
    /// the wire, no packet is dropped, and the TTFT difference is never negative. Runs where
    /// tshark is installed and this is root; LMBENCH_REQUIRE_TSHARK=1 makes a missing tshark
    /// (or a failed capture) a failure instead of a skip.
    #[test]
    fn wire_budget_against_a_real_capture() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: WireBudgetArgs,
        }
        let required = std::env::var("LMBENCH_REQUIRE_TSHARK").is_ok_and(|v| v == "1");
        if let Err(e) = tshark_version() {
            assert!(!required, "LMBENCH_REQUIRE_TSHARK=1: {e:#}");
            eprintln!("skipped: {e:#}");
            return;
        }
        if !required && !root() {
            eprintln!("skipped: capturing needs root (LMBENCH_REQUIRE_TSHARK=1 runs it anyway)");
            return;
        }
        let a = Cli::parse_from([
            "wire-budget",
            "--sim",
            "thread",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--capture-buffer-mib",
            "64",
        ])
        .a;
        raise_open_files_limit().unwrap();
        let (_temp, dir) = records_dir(&a.run.common).unwrap();
        let pcaps = tempfile::tempdir().unwrap();
        let rt = runtime(a.run.common.threads).unwrap();
        for n in [1, 20] {
            let row = measure(&a, n, &rt, &dir, &pcaps.path().join(format!("{n}.pcap"))).unwrap();
            let m = &row.cmp;
            let say = row.notes(n).join("\n");
            assert_eq!(row.capture.dropped, 0, "{say}");
            assert!(m.measured >= 3 * n as usize, "{say}");
            assert_eq!(m.matched, m.measured, "{say}");
            assert_eq!(m.chunks_matched, m.chunks, "{say}");
            assert_eq!(m.count_mismatch, 0, "{say}");
            // Capture times have microseconds: a difference of two may be 2 µs off.
            assert!(m.ttft[0] > -0.005, "TTFT Δ min {} ms; {say}", m.ttft[0]);
            assert!(p(&m.ttft, 0.5).unwrap() < 50.0, "{say}");
            assert!(m.split.as_ref().is_some_and(|s| s.consistent), "{say}");
            let wire_ttft = p(&m.wire_ttft, 0.5).unwrap();
            assert!(
                (99.0..200.0).contains(&wire_ttft),
                "wire TTFT {wire_ttft}; {say}"
            );
        }
    }
}
